"""Small helpers built-in plugins share, part of the API so third parties can use them too."""

from __future__ import annotations

import copy

from torch import nn

from bench import kit
import bench.kit.ladders  # noqa: F401  (kit.ladders below)
import bench.kit.pruning  # noqa: F401  (kit.pruning below)
from bench.api.contracts import Compressed, RunContext


def sparse_compressed(model: nn.Module, masks: kit.pruning.Masks, p: kit.pruning.CodingParams, ctx: RunContext,
                      stream: str, stats: dict | None = None, extras: dict | None = None) -> Compressed:
    """A pruned model quantized and coded (``bench.kit.pruning.quantize_and_encode``, centroids
    fine-tuned with the random stream ``stream``) as the ``Compressed`` a compressor returns."""
    code = kit.pruning.quantize_and_encode(model, masks, p, ctx.seed, ctx.task.data.train, ctx.task.recipe.batch_size,
                                           ctx.generator(stream), ctx.task.data.task_type, ctx.progress, stats, extras)
    return Compressed(message=code.encoded.message, model=code.encoded.model, layers=code.encoded.layers,
                      stats=code.stats, extras=code.extras, sections=code.encoded.sections)


def classification_only(ctx: RunContext) -> str | None:
    """A ``skip_reason`` for bounds of the 0-1 loss: why a regression task does not apply."""
    if ctx.task.data.task_type != "classification":
        return f"needs a classification task (0-1 loss); '{ctx.task.name}' is {ctx.task.data.task_type}"
    return None


def scored_trial(ctx: RunContext, choice: dict, out: Compressed) -> kit.ladders.Trial:
    """``out`` as a candidate of an encoder-side search, scored by the Occam certificate its message and
    training errors would get (``bench.kit.ladders``). Its model is copied, so that the next candidate
    may reuse the module it came from."""
    out.model = copy.deepcopy(out.model)
    train = ctx.task.data.train
    errors = int(round(ctx.evaluate(out.model, train) * len(train)))
    bits = 8 * len(out.message)
    return kit.ladders.Trial(choice, bits, errors, kit.ladders.occam_score(errors, len(train), bits, ctx.delta), out)


def best_compressed(ctx: RunContext, trials: list[kit.ladders.Trial]) -> Compressed:
    """The winning candidate's ``Compressed``, its extras saying what was tried (``search``), what won
    (``chosen``) and, when no candidate's certificate falls below 100 %, why (``note``)."""
    won = kit.ladders.best_trial(trials)
    out: Compressed = won.payload
    out.extras["search"] = kit.ladders.trial_table(trials)
    out.extras["chosen"] = won.choice
    note = kit.ladders.unreachable_note(trials, len(ctx.task.data.train))
    if note:
        out.extras["note"] = note
    return out
