"""The configuration bits of a cell: ``bench.configcode`` applied to a run's task, seed, δ, compressor
and bound, with the declarations of the installed plugins (which parameters are paid, their types and
defaults). ``bench run`` charges them, ``bench verify`` re-derives them, ``bench calc config-bits``
prints them item by item."""

from __future__ import annotations

from typing import Any, Mapping

from bench import configcode
from bench.api.specs import Recipe
from bench.configcode import Coded, Configuration, Declaration, Declarations
from bench.taskconfig import model_name_and_params


def declaration(cls: type) -> Declaration:
    """A registered class's paid parameters (``paid_params()``: ``None`` means every one)."""
    paid = cls.paid_params() if hasattr(cls, "paid_params") else None
    return Declaration.of(cls.Params, paid)


def configuration(task_config: Mapping[str, Any], seed: int, delta: float, compressor: str,
                  compressor_params: Mapping[str, Any], bound: str, bound_params: Mapping[str, Any]) -> Configuration:
    family, model_params = model_name_and_params(task_config["model"], task_config.get("model_params", {}))
    return Configuration(
        dataset_params=dict(task_config.get("dataset_params", {})), model=family, model_params=model_params,
        recipe=dict(task_config.get("recipe", {})), seed=int(seed), delta=float(delta), compressor=compressor,
        compressor_params=dict(compressor_params), bound=bound, bound_params=dict(bound_params))


def declarations(registry, c: Configuration, dataset: str) -> Declarations:
    return Declarations(
        dataset=declaration(registry.get("datasets", dataset)),
        model=declaration(registry.get("models", c.model)),
        recipe=Declaration.of(Recipe),
        compressor=declaration(registry.get("compressors", c.compressor)),
        bound=declaration(registry.get("bounds", c.bound)),
    )


def code_of(registry, task_config: Mapping[str, Any], seed: int, delta: float, compressor: str,
            compressor_params: Mapping[str, Any], bound: str, bound_params: Mapping[str, Any]) -> Coded:
    """The itemized code word of one cell's configuration."""
    c = configuration(task_config, seed, delta, compressor, compressor_params, bound, bound_params)
    return configcode.encode(c, declarations(registry, c, task_config["dataset"]))


def decoder(registry, dataset: str):
    """The ``declare`` callback of ``configcode.decode`` for a sample of ``dataset``."""
    def declare(kind: str, name: str | None) -> Declaration:
        if kind == "dataset":
            return declaration(registry.get("datasets", dataset))
        if kind == "recipe":
            return Declaration.of(Recipe)
        return declaration(registry.get({"model": "models", "compressor": "compressors", "bound": "bounds"}[kind], name))

    return declare
