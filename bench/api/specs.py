"""What a task is, as plain data (no torch): a dataset and a model by registered name, with their
parameters, and the recipe its base model is trained with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from bench.api.params import build_params, params_dict
from bench.kit.ranges import Ge, Gt


@dataclass(frozen=True)
class Recipe:
    """How a task's base model is trained (the run's seed is added by the harness)."""

    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: Annotated[float, Gt(0)] = 1e-3
    epochs: Annotated[int, Ge(0)] = 10
    batch_size: Annotated[int, Ge(1)] = 128
    weight_decay: Annotated[float, Ge(0)] = 0.0
    momentum: Annotated[float, Ge(0)] = 0.9
    schedule: Literal["constant", "cosine"] = "cosine"


@dataclass(frozen=True)
class TaskSpec:
    """A task: a dataset and a model (both by registered name, with parameters) and a recipe."""

    name: str
    dataset: str
    model: str
    description: str = ""
    dataset_params: dict[str, Any] = field(default_factory=dict)
    model_params: dict[str, Any] = field(default_factory=dict)
    recipe: dict[str, Any] = field(default_factory=dict)
    version: str = "0.1.0"
    kind: ClassVar[str] = "task"

    def defaults(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "model": self.model,
            "dataset_params": self.dataset_params,
            "model_params": self.model_params,
            "recipe": params_dict(build_params(Recipe, self.recipe, owner=f"task '{self.name}'")),
        }
