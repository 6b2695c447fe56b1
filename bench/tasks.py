"""Turning a task's configuration into data, a seeded model factory and a (cached) trained model."""

from __future__ import annotations

import copy
import functools
import io
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from bench.api.contracts import DataBundle, Prior, PriorSpec, Recipe, Split, TaskInstance, TaskSpec
from bench.kit.evaluation import error_count, error_rate
from bench.outputs import OutputsMemo
from bench.api.params import build_params, canonical_json
from bench.registry import Registry
from bench.taskconfig import merge_task, model_name_and_params, task_config  # noqa: F401  (used here and re-exported)
from bench.cache import ModelCache
from bench.ledger import SAME_SAMPLE
from bench.kit.training import fit

@functools.lru_cache(maxsize=4)
def _load_data(dataset_cls: type, params_json: str, data_dir: str | None, download: bool) -> DataBundle:
    import json

    dataset = dataset_cls(**json.loads(params_json))
    return dataset.load(Path(data_dir) if data_dir else None, download)


def instantiate_task(
    spec: TaskSpec, registry: Registry, data_dir: Path | None = None, download: bool = False
) -> TaskInstance:
    config = task_config(spec, registry)
    ds_cls = registry.get("datasets", spec.dataset)
    data = _load_data(ds_cls, canonical_json(config["dataset_params"]), str(data_dir) if data_dir else None, download)
    family, mparams = model_name_and_params(spec.model, spec.model_params)
    family_obj = registry.get("models", family)(**mparams)
    recipe = build_params(Recipe, spec.recipe, owner=f"task '{spec.name}'")

    def build_model() -> nn.Module:
        return family_obj.build(data.input_shape, data.num_classes)

    return TaskInstance(spec.name, spec, data, recipe, config, build_model)


def seeded_factory(build: Callable[[], nn.Module], seed: int, device: torch.device) -> Callable[[], nn.Module]:
    """The untrained model of the run's seed: built on the CPU from a seeded RNG, so the same seed
    gives the same initialization on every device (the initialization is part of the prior)."""

    def make() -> nn.Module:
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(seed)
            model = build()
        finally:
            torch.random.set_rng_state(state)
        return model.to(device)

    return make


def seeded_model_factory(task: TaskInstance, seed: int, device: torch.device) -> Callable[[], nn.Module]:
    return seeded_factory(task.build_model, seed, device)


def prior_spec(task: TaskInstance, seed: int, device: torch.device, models: "BaseModels | None" = None) -> PriorSpec:
    """What a decoder of this task and seed may know, as plain data: with a data-dependent prior, the
    prior model's weights (trained on ``S_prior`` only, by ``models``)."""
    data = task.data
    state = None
    if data.prior_indices is not None:
        if models is None:
            raise ValueError(f"task '{task.name}' has a data-dependent prior: its prior model is needed")
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in models.prior(task, seed).state_dict().items()}, buffer)
        state = buffer.getvalue()
    return PriorSpec(task=task.config, seed=seed, device=str(device), input_shape=tuple(data.input_shape),
                     num_classes=data.num_classes, task_type=data.task_type, prior_state=state)


def prior_from_spec(spec: PriorSpec, registry: Registry) -> Prior:
    """The prior rebuilt from its spec and the registry alone: no dataset is loaded."""
    config = spec.task
    family, params = model_name_and_params(config["model"], config["model_params"])
    model = registry.get("models", family)(**params)

    def build() -> nn.Module:
        return model.build(tuple(spec.input_shape), spec.num_classes)

    return Prior(spec, seeded_factory(build, spec.seed, torch.device(spec.device)))


def split_digest(split: Split) -> str:
    """sha256 of a split's inputs and labels: what a model trained on it depends on."""
    return split.digest()


class BaseModels:
    """Trained models per (task, seed): trained once, cached on disk, copied on every request.

    ``get``: the base model, trained on the whole training set. ``prior``: a data-dependent prior's
    model, trained on ``S_prior`` only and cached under a key made of ``S_prior``'s content, the model
    and the recipe (so nothing in ``S_bound`` can change it, or its key)."""

    def __init__(self, cache: ModelCache, device: torch.device, progress: Callable[..., Any]) -> None:
        self.cache, self.device, self.progress = cache, device, progress
        self._memo: dict[str, nn.Module] = {}
        self.errors: dict[str, tuple[float, float]] = {}
        self.prior_error_counts: dict[str, int] = {}
        self.outputs = OutputsMemo()  # the base model's training outputs stay here for the bounds (ctx.outputs)

    def key(self, task: TaskInstance, seed: int) -> str:
        """The base model trains on the whole training set: a prior_fraction does not change it."""
        config = {k: v for k, v in task.config.items() if k != "name"}
        config["dataset_params"] = {k: v for k, v in config["dataset_params"].items() if k not in SAME_SAMPLE}
        return ModelCache.key({"task": config, "seed": seed, "device": self.device.type})

    def prior_key(self, task: TaskInstance, seed: int) -> str:
        config = task.config
        return ModelCache.key({"prior_data": split_digest(task.data.prior_split()), "model": config["model"],
                               "model_version": config["model_version"], "model_params": config["model_params"],
                               "recipe": config["recipe"], "seed": seed, "device": self.device.type})

    def _trained(self, task: TaskInstance, seed: int, key: str, split: Split, what: str) -> nn.Module:
        if key not in self._memo:
            model = seeded_model_factory(task, seed, self.device)()
            with self.cache.lock(key):
                if not self.cache.load(key, model):
                    generator = torch.Generator().manual_seed(seed)
                    r = task.recipe
                    fit(model, split, optimizer=r.optimizer, lr=r.lr, epochs=r.epochs, batch_size=r.batch_size,
                        weight_decay=r.weight_decay, momentum=r.momentum, schedule=r.schedule, generator=generator,
                        task_type=task.data.task_type, progress=self.progress, desc=f"train {what} {task.name} seed={seed}")
                    self.cache.save(key, model, {"task": task.config, "seed": seed, "device": self.device.type,
                                                 "trained_on": what, "examples": len(split)})
            model.to(self.device).eval()
            self._memo[key] = model
        return copy.deepcopy(self._memo[key])

    def get(self, task: TaskInstance, seed: int) -> nn.Module:
        key = self.key(task, seed)
        model = self._trained(task, seed, key, task.data.train, "base")
        if key not in self.errors:
            self.errors[key] = (self.outputs.error_rate(model, task.data.train, task.data.task_type),
                                error_rate(model, task.data.test, task.data.task_type))
        return model

    def prior(self, task: TaskInstance, seed: int) -> nn.Module:
        if task.data.prior_indices is None:
            raise ValueError(f"task '{task.name}' has no data-dependent prior")
        return self._trained(task, seed, self.prior_key(task, seed), task.data.prior_split(), "prior")

    def prior_errors(self, task: TaskInstance, seed: int) -> int:
        """The prior model's exact error count on ``S_bound`` (the examples it never saw)."""
        key = self.prior_key(task, seed)
        if key not in self.prior_error_counts:
            self.prior_error_counts[key] = error_count(self.prior(task, seed), task.data.bound_split())
        return self.prior_error_counts[key]

    def base_errors(self, task: TaskInstance, seed: int) -> tuple[float, float]:
        self.get(task, seed)
        return self.errors[self.key(task, seed)]
