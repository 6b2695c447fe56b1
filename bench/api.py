"""The plugin API: the one module a plugin author imports, with the research toolkit ``bench.kit``.

Everything named here is promised to stay (additions only, until a major version); everything else in
``bench`` is the harness's own and may change. A plugin is a module of ``@hookimpl`` functions that
each hand objects to a ``register`` callback, published under the entry-point group
``compression_bench`` (see the README's "Writing a plugin", or ``bench new-plugin``)::

    from bench.api import Compressed, Compressor, Prior, RunContext, hookimpl
    from bench.kit import coding

Parameters are a frozen dataclass (``Params``) with defaults; ``Annotated[int, Ge(1)]`` declares a
range that is checked when a configuration is built (the error names the key).
"""

from __future__ import annotations

from torch import nn

from bench import kit
import bench.kit.pruning  # noqa: F401  (kit.pruning below)
from bench.contracts import (BOUND_KINDS, TARGETS, Bound, BoundKind, BoundResult, BoundSkipped, Compressed,
                             Compressor, DataBundle, Dataset, DatasetUnavailable, Evaluated, Executor, LayerCode,
                             ModelCache, ModelFamily, Posterior, Prior, PriorSpec, Recipe, RunContext, Split,
                             TaskInstance, TaskSpec, stream_seed)
from bench.hookspecs import Register, hookimpl
from bench.kit.ranges import Between, Ge, Gt, Le, Lt
from bench.params import canonical_json, content_hash

__all__ = [
    "BOUND_KINDS", "TARGETS", "Between", "Bound", "BoundKind", "BoundResult", "BoundSkipped", "Compressed",
    "Compressor", "DataBundle", "Dataset", "DatasetUnavailable", "Evaluated", "Executor", "Ge", "Gt", "LayerCode",
    "Le", "Lt", "ModelCache", "ModelFamily", "Posterior", "Prior", "PriorSpec", "Recipe", "Register", "RunContext",
    "Split", "TaskInstance", "TaskSpec", "canonical_json", "classification_only", "content_hash", "hookimpl", "kit",
    "sparse_compressed", "stream_seed",
]


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
