"""Forward passes are shared by content: the same model on the same split is computed once, a model
changed in place is computed again, and the errors read from kept outputs are the kit's own."""

from __future__ import annotations

import torch
from torch import nn

from bench.api.contracts import Compressed, Evaluated, TaskSpec
from bench.cache import ModelCache
from bench.context import build_context
from bench.kit.evaluation import error_rate
from bench.kit.models import state_digest
from bench.kit.types import Split
from bench.outputs import OutputsMemo
from bench.registry import load_registry
from bench.tasks import BaseModels, instantiate_task


def split(n: int, seed: int, classes: int = 3) -> Split:
    g = torch.Generator().manual_seed(seed)
    return Split(torch.randn(n, 5, generator=g), torch.randint(0, classes, (n,), generator=g))


def test_the_same_model_on_the_same_split_is_computed_once():
    torch.manual_seed(0)
    model, memo = nn.Linear(5, 3), OutputsMemo()
    a, b = split(50, 1), split(50, 2)
    first = memo.outputs(model, a)
    assert memo.outputs(model, a) is first and memo.computed == 1
    same_content = Split(a.x.clone(), a.y.clone())
    assert memo.outputs(model, same_content) is first and memo.computed == 1  # keyed by content
    memo.outputs(model, b)
    assert memo.computed == 2
    with torch.no_grad():
        model.weight.add_(0.1)  # changed in place: a new model
    assert not torch.equal(memo.outputs(model, a), first) and memo.computed == 3


def test_errors_from_kept_outputs_are_the_kits():
    torch.manual_seed(1)
    memo = OutputsMemo()
    classifier, data = nn.Linear(5, 3), split(200, 3)
    assert memo.error_rate(classifier, data) == error_rate(classifier, data)
    regressor = nn.Linear(5, 1)
    targets = Split(data.x, torch.randn(200, 1, generator=torch.Generator().manual_seed(4)))
    assert memo.error_rate(regressor, targets, "regression") == error_rate(regressor, targets, "regression")


def test_mi_reads_the_harness_outputs_instead_of_recomputing(tmp_path):
    from bench_plugins.mi import MutualInformation

    registry = load_registry()
    spec = TaskSpec(name="t", dataset="digits", model="mlp", model_params={"widths": [8]}, recipe={"epochs": 2})
    task = instantiate_task(spec, registry)
    models = BaseModels(ModelCache(tmp_path), torch.device("cpu"), None)
    memo = models.outputs  # a worker's: the base model's evaluation leaves its outputs there
    ctx = build_context(task, 0, torch.device("cpu"), models, 0.05, role="bound", memo=memo)
    decoded = models.get(task, 0)
    models.base_errors(task, 0)
    with torch.no_grad():
        for p in decoded.parameters():
            p.mul_(0.5)
    train = ctx.task.data.train
    out = memo.outputs(decoded, train)  # what the harness's evaluation leaves
    before = memo.computed
    errors = int((out.argmax(1) != train.y).sum())
    evaluated = Evaluated(Compressed(message=b"x" * 100), decoded, errors, len(train), errors / len(train))
    calls = []
    decoded.register_forward_hook(lambda *_: calls.append(1))
    bound = MutualInformation()
    first = bound.compute(evaluated, ctx)
    assert not calls  # the decoded model never ran again
    assert memo.computed == before  # the base model's outputs are its evaluation's
    second = bound.compute(evaluated, build_context(task, 0, torch.device("cpu"), models, 0.05, role="bound",
                                                    memo=memo))
    assert memo.computed == before  # nothing again, in a new context of the same worker
    assert first.extras == second.extras
    assert state_digest(decoded) == state_digest(evaluated.model)
