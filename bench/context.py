"""What a plugin sees of a task: the context a compressor or a bound runs in, built the same way by every
process that runs one (the compressing process, a job's worker, ``bench verify``)."""

from __future__ import annotations

import dataclasses

import torch

from bench.api.contracts import Prior, RunContext, TaskInstance
from bench.cache import ModelCache, default_cache_dir
from bench.kit.evaluation import error_rate
from bench.outputs import OutputsMemo
from bench.progress import progress
from bench.tasks import BaseModels, prior_spec, seeded_model_factory


def plugin_view(task: TaskInstance, role: str = "compressor") -> TaskInstance:
    """The task as plugins see it: the test split is withheld; a bound's training set is ``S_bound``
    (the whole training set unless the task has a data-dependent prior)."""
    data = task.data.for_bounds() if role == "bound" else task.data.without_test()
    return dataclasses.replace(task, data=data)


def build_context(task: TaskInstance, seed: int, device: torch.device, base_models: BaseModels,
                  delta: float, config_bits: float = 0.0, role: str = "compressor",
                  prior: Prior | None = None, memo: OutputsMemo | None = None) -> RunContext:
    """The context a compressor (``role``) or bound sees; ``bench verify`` rebuilds exactly the same.
    ``prior``: already built (from its spec, in a process that must not train the prior's model).
    ``memo``: forward passes already made (a worker's, shared by its bounds); without one, a
    compressor's evaluations of a model it is changing are computed afresh."""
    if prior is None:
        prior = Prior(prior_spec(task, seed, device, base_models), seeded_model_factory(task, seed, device))
    view = plugin_view(task, role)
    task_type = task.data.task_type
    if memo is None:  # RunContext's own ``outputs``: a fresh forward pass
        shared = {"evaluate": lambda model, split: error_rate(model, split, task_type)}
    else:
        shared = {"evaluate": lambda model, split: memo.error_rate(model, split, task_type), "outputs": memo.outputs}
    return RunContext(
        task=view, seed=seed, device=device, make_model=prior.make_model,
        base_model=lambda: base_models.get(task, seed), **shared,
        progress=progress, cache=lambda namespace: ModelCache(default_cache_dir() / namespace), delta=delta,
        config_bits=config_bits, prior=prior,
    )
