"""Errors the CLI reports as one line (no traceback). Kept free of heavy imports so every command
starts fast."""

from __future__ import annotations

from bench.api.errors import DatasetUnavailable
from bench.api.params import ConfigError


class UnknownName(ConfigError):
    """A name that no plugin registered; the message lists the known ones."""


class PluginError(RuntimeError):
    """A plugin failed to load or register while ``BENCH_STRICT_PLUGINS=1``."""


class Stopped(KeyboardInterrupt):
    """A signal (SIGTERM, SIGHUP) stopped the command: handled as Ctrl-C is, exit status 128 + its number."""

    def __init__(self, number: int) -> None:
        super().__init__(number)
        self.number = number


USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, DatasetUnavailable, PluginError)
