"""A task's configuration as plain data (no torch, no data): a registered task merged with its
``bench.toml`` overrides, validated against the registered dataset and model, in canonical form."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.api.params import ConfigError, build_params, params_dict
from bench.api.specs import Recipe, TaskSpec

if TYPE_CHECKING:
    from bench.registry import Registry

TASK_KEYS = ("dataset", "model", "description", "dataset_params", "model_params", "recipe")


def merge_task(spec: TaskSpec, override: dict[str, Any] | None, name: str) -> TaskSpec:
    """Apply a ``[tasks.NAME]`` table to a registered task (or define a new one from scratch)."""
    override = dict(override or {})
    unknown = sorted(set(override) - set(TASK_KEYS))
    if unknown:
        raise ConfigError(f"task '{name}': unknown key '{unknown[0]}' (known: {', '.join(TASK_KEYS)})")
    for key in ("dataset_params", "model_params", "recipe"):
        if key in override and not isinstance(override[key], dict):
            raise ConfigError(f"task '{name}': '{key}' must be a table")
    fields = {
        "name": name,
        "dataset": override.get("dataset", spec.dataset if spec else None),
        "model": override.get("model", spec.model if spec else None),
        "description": override.get("description", spec.description if spec else "defined in bench.toml"),
        # a changed dataset or model starts from that object's own defaults
        "dataset_params": {**(spec.dataset_params if spec and "dataset" not in override else {}),
                           **override.get("dataset_params", {})},
        "model_params": {**(spec.model_params if spec and "model" not in override else {}),
                         **override.get("model_params", {})},
        "recipe": {**(spec.recipe if spec else {}), **override.get("recipe", {})},
    }
    for key in ("dataset", "model"):
        if not isinstance(fields[key], str):
            raise ConfigError(f"task '{name}': '{key}' must name a registered {key}")
    return TaskSpec(**fields)


def model_name_and_params(model: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """``timm:resnet18`` is the ``timm`` family with ``arch = "resnet18"``."""
    if ":" in model:
        family, arch = model.split(":", 1)
        return family, {**params, "arch": arch}
    return model, params


def task_config(spec: TaskSpec, registry: Registry) -> dict[str, Any]:
    """The canonical configuration of a task: everything that determines its data and base model.

    Validates the names and parameters (errors name the key), so a bad task fails before any work.
    """
    owner = f"task '{spec.name}'"
    ds_entry = registry.entry("datasets", spec.dataset)
    family, mparams = model_name_and_params(spec.model, spec.model_params)
    model_entry = registry.entry("models", family)
    dataset = ds_entry.obj(**spec.dataset_params)
    model = model_entry.obj(**mparams)
    recipe = build_params(Recipe, spec.recipe, owner=owner)
    return {
        "name": spec.name,
        "dataset": spec.dataset,
        "dataset_version": ds_entry.obj.version,
        "dataset_params": nondefault(dataset.params_dict(), ds_entry.obj.defaults()),
        "model": spec.model,
        "model_version": model_entry.obj.version,
        "model_params": nondefault(model.params_dict(), model_entry.obj.defaults()),
        "recipe": params_dict(recipe),
    }


def nondefault(params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The parameters that differ from their defaults: a parameter added later at its default changes
    no cache key, artifact or cell id."""
    return {k: v for k, v in params.items() if k not in defaults or defaults[k] != v}


