"""The plugin API: the one package a plugin author imports, with the research toolkit ``bench.kit``.

Everything named here is promised to stay (additions only, until a major version); everything else in
``bench`` is the harness's own and may change. A plugin is a module of ``@hookimpl`` functions that
each hand objects to a ``register`` callback, published under the entry-point group
``compression_bench`` (see the README's "Writing a plugin", or ``bench new-plugin``)::

    from bench.api import Compressed, Compressor, Prior, RunContext, hookimpl
    from bench.kit import coding

Parameters are a frozen dataclass (``Params``) with defaults; ``Annotated[int, Ge(1)]`` declares a
range that is checked when a configuration is built (the error names the key).

Names are imported on first use (``bench.api.jobs`` and ``bench.api.params`` need no torch, so the
harness can plan a run without loading it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "bench.api.contracts": ("BOUND_KINDS", "TARGETS", "Bound", "BoundKind", "BoundResult", "BoundSkipped",
                            "Compressed", "Compressor", "DataBundle", "Dataset", "Evaluated", "Executor", "LayerCode",
                            "ModelCache", "ModelFamily", "Posterior", "Prior", "PriorSpec", "RunContext", "Split",
                            "TaskInstance", "stream_seed"),
    "bench.api.specs": ("Recipe", "TaskSpec"),
    "bench.api.errors": ("DatasetUnavailable",),
    "bench.api.helpers": ("best_compressed", "classification_only", "scored_trial", "sparse_compressed"),
    "bench.api.hookspecs": ("Register", "hookimpl"),
    "bench.api.jobs": ("Job", "JobReport", "JobResult", "Tick", "Work"),
    "bench.api.params": ("canonical_json", "content_hash"),
    "bench.kit.ranges": ("Between", "Ge", "Gt", "Le", "Lt"),
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}

__all__ = sorted([*_MODULE_OF, "kit"])


def __getattr__(name: str) -> Any:
    if name == "kit":
        return importlib.import_module("bench.kit")
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'bench.api' has no attribute '{name}'")


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # what the names are, for type checkers and editors
    from bench import kit  # noqa: F401
    from bench.api.contracts import (BOUND_KINDS, TARGETS, Bound, BoundKind, BoundResult, BoundSkipped,  # noqa: F401
                                     Compressed, Compressor, DataBundle, Dataset, Evaluated, Executor, LayerCode,
                                     ModelCache, ModelFamily, Posterior, Prior, PriorSpec, RunContext, Split,
                                     TaskInstance, stream_seed)
    from bench.api.specs import Recipe, TaskSpec  # noqa: F401
    from bench.api.errors import DatasetUnavailable  # noqa: F401
    from bench.api.helpers import best_compressed, classification_only, scored_trial, sparse_compressed  # noqa: F401
    from bench.api.hookspecs import Register, hookimpl  # noqa: F401
    from bench.api.jobs import Job, JobReport, JobResult, Tick, Work  # noqa: F401
    from bench.api.params import canonical_json, content_hash  # noqa: F401
    from bench.kit.ranges import Between, Ge, Gt, Le, Lt  # noqa: F401
