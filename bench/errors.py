"""Errors the CLI reports as one line (no traceback). Kept free of heavy imports so every command
starts fast."""

from __future__ import annotations

from bench.params import ConfigError


PRIOR_ONLY = ("a decoder sees only the message and the prior (seed, task configuration, input shape, "
              "classes, device, the seeded untrained model): no training data, no trained model, no cache")


class DatasetUnavailable(RuntimeError):
    """The files of a dataset are missing; the message says how to get them."""


class PluginError(RuntimeError):
    """A plugin failed to load or register while ``BENCH_STRICT_PLUGINS=1``."""


USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, DatasetUnavailable, PluginError)
