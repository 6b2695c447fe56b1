"""What every process forked from a zygote needs first: the plugins, and the libraries that decoding and
compressing use, imported once in the zygote so each fork starts with them (``bench.children.Zygote``).

The modules are named as strings: this is a list of what to load, not code that uses them.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

#: Imported in this order by ``prepare``.
MODULES = ("torch", "torch.func", "pandas", "scipy.special", "sklearn.cluster", "sklearn.datasets",
           "bench.kit.coding", "bench.kit.evaluation", "bench.kit.quantization", "bench.cell", "bench.compressing")

_PREPARED: dict[str, Any] = {}


def prepare() -> None:
    """Import ``MODULES`` and load the plugin registry, once per process."""
    if _PREPARED:
        return
    sys.dont_write_bytecode = True
    for name in MODULES:
        importlib.import_module(name)
    _PREPARED["registry"] = importlib.import_module("bench.registry").load_registry()


def preloaded_registry() -> Any:
    """The registry ``prepare`` loaded (loading it now if this process was not prepared)."""
    prepare()
    return _PREPARED["registry"]
