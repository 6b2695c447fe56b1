"""The hooks a plugin implements: each receives a ``register`` callback and calls it once per object.

The ``register`` pattern (as in Simon Willison's ``llm``) keeps plugins free of harness internals: a
plugin only constructs its objects and hands them over.
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

PROJECT = "compression_bench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Register = Callable[[Any], None]


@hookspec
def bench_register_datasets(register: Register) -> None:
    """Register dataset classes (subclasses of ``bench.api.contracts.Dataset``)."""


@hookspec
def bench_register_models(register: Register) -> None:
    """Register model classes (subclasses of ``bench.api.contracts.ModelFamily``)."""


@hookspec
def bench_register_tasks(register: Register) -> None:
    """Register tasks (``bench.api.contracts.TaskSpec``: a dataset, a model and a training recipe)."""


@hookspec
def bench_register_compressors(register: Register) -> None:
    """Register compressor classes (subclasses of ``bench.api.contracts.Compressor``)."""


@hookspec
def bench_register_bounds(register: Register) -> None:
    """Register bound classes (subclasses of ``bench.api.contracts.Bound``)."""


@hookspec
def bench_register_executors(register: Register) -> None:
    """Register executors (subclasses of ``bench.api.contracts.Executor``): where a run's jobs execute."""
