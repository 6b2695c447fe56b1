"""Discovers plugins through entry points and collects what they register.

Each entry point is loaded and asked to register on its own, so a plugin that fails to import or to
register is recorded with its error and cannot take the tool down (``BENCH_STRICT_PLUGINS=1`` makes it
fatal). ``BENCH_LOAD_PLUGINS=a,b`` loads only the built-ins and the named third-party plugins.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import traceback
from dataclasses import dataclass, field
from typing import Any

import pluggy

from bench.api import hookspecs
from bench.api.contracts import KIND_BY_NAME, KINDS, TaskSpec, declare_streams
from bench.errors import PluginError, UnknownName  # noqa: F401  (re-exported)
from bench.api.params import ConfigError

ENTRY_POINT_GROUP = "compression_bench"
BUILTIN_DISTRIBUTION = "compression-bench"


@dataclass
class PluginRecord:
    name: str
    module: str
    distribution: str
    version: str
    builtin: bool
    error: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Entry:
    obj: Any  # a registered class, or a TaskSpec
    plugin: str  # the entry-point name that registered it
    plugin_version: str


class Registry:
    def __init__(self) -> None:
        self.plugins: list[PluginRecord] = []
        self.entries: dict[str, dict[str, Entry]] = {kind.plural: {} for kind in KINDS}

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def entry(self, kind: str, name: str) -> Entry:
        table = self.entries[kind]
        if name in table:
            return table[name]
        if kind == "models" and ":" in name and name.split(":", 1)[0] in table:
            return table[name.split(":", 1)[0]]
        known = ", ".join(self.names(kind)) or "(none)"
        raise UnknownName(f"unknown {KIND_BY_NAME[kind].singular} '{name}' (known: {known})")

    def get(self, kind: str, name: str) -> Any:
        return self.entry(kind, name).obj

    def failed(self) -> list[PluginRecord]:
        return [p for p in self.plugins if p.error]


def _strict() -> bool:
    return os.environ.get("BENCH_STRICT_PLUGINS", "") not in ("", "0", "false", "no")


def _wanted() -> set[str] | None:
    value = os.environ.get("BENCH_LOAD_PLUGINS")
    if value is None:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


def _entry_points() -> list[md.EntryPoint]:
    seen: set[tuple[str, str]] = set()
    eps = []
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        key = (ep.name, ep.value)
        if key not in seen:
            seen.add(key)
            eps.append(ep)
    return sorted(eps, key=lambda ep: (ep.dist is None or ep.dist.name != BUILTIN_DISTRIBUTION, ep.name))


def _check_registered(kind: str, obj: Any) -> str:
    base = KIND_BY_NAME[kind].base
    if base is TaskSpec:
        if not isinstance(obj, TaskSpec):
            raise TypeError(f"tasks must be registered as TaskSpec instances, got {obj!r}")
        return obj.name
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise TypeError(f"{kind} must be subclasses of {base.__name__}, got {obj!r}")
    if not obj.name:
        raise TypeError(f"{obj.__name__} has no name")
    declare_streams(obj.streams, f"{kind[:-1]} '{obj.name}'")
    paid = obj.paid_params()
    if paid is not None:
        import dataclasses

        fields = {f.name for f in dataclasses.fields(obj.Params)} if dataclasses.is_dataclass(obj.Params) else set()
        unknown = sorted(set(paid) - fields)
        if unknown:
            raise TypeError(f"{obj.__name__} declares '{unknown[0]}' as a paid (decoder-side or prior-side) "
                            f"parameter, but has no such parameter")
    return obj.name


def load_registry() -> Registry:
    """Load every entry point of the group, each in isolation, and return what they registered."""
    registry = Registry()
    strict, wanted = _strict(), _wanted()
    for ep in _entry_points():
        dist = ep.dist.name if ep.dist else "?"
        record = PluginRecord(
            name=ep.name,
            module=ep.value,
            distribution=dist,
            version=ep.dist.version if ep.dist else "?",
            builtin=dist == BUILTIN_DISTRIBUTION,
        )
        if wanted is not None and not record.builtin and ep.name not in wanted:
            continue
        registry.plugins.append(record)
        try:
            module = ep.load()
            _register_one(registry, record, module)
        except Exception as exc:  # a broken plugin is recorded, not fatal
            record.error = f"{type(exc).__name__}: {exc}"
            record.registered = {}
            for table in registry.entries.values():
                for name in [n for n, e in table.items() if e.plugin == record.name]:
                    del table[name]
            if strict:
                raise PluginError(
                    f"plugin '{record.name}' ({record.module}) failed: {record.error}\n"
                    + traceback.format_exc()
                ) from exc
    return registry


def _register_one(registry: Registry, record: PluginRecord, module: Any) -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(module, name=record.name)
    for kind in KINDS:
        collected: list[tuple[str, Any]] = []

        def register(obj: Any, _kind: str = kind.plural, _out: list = collected) -> None:
            _out.append((_check_registered(_kind, obj), obj))

        getattr(pm.hook, kind.hook)(register=register)
        for name, obj in collected:
            table = registry.entries[kind.plural]
            if name in table:
                other = table[name].plugin
                raise ValueError(f"{kind.singular} '{name}' is already registered by plugin '{other}'")
            table[name] = Entry(obj=obj, plugin=record.name, plugin_version=record.version)
            record.registered.setdefault(kind.plural, []).append(name)
