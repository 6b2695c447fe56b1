"""``bench.toml``: profiles of tasks, seeds, compressor and bound configurations; CLI overrides on top.

Layout::

    [profiles.NAME]            tasks, seeds, compressors, bounds, delta, device, cell_timeout, results
    [profiles.NAME.compressor.X]   parameters of compressor X (a list value is a grid)
    [profiles.NAME.bound.Y]        parameters of bound Y (a list value is a grid)
    [profiles.NAME.task.T]     overrides of task T for this profile
    [tasks.T]                  overrides of task T (or a new task) for every profile

Unknown keys, wrong types and unknown names are ``ConfigError``s that name them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from bench.api.params import ConfigError, build_params, coerce, field_types
from bench.kit.ranges import Gt, Lt
from bench.starter import BENCH_TOML

TOP_KEYS = {"profiles", "tasks"}


@dataclass(frozen=True)
class Profile:
    """One ``[profiles.NAME]`` table, validated like a plugin's parameters (``bench.api.params``): an
    unknown key or a wrong type or range is a one-line error naming the key. δ is checked here and
    nowhere else (``checked``, for the values the command line overrides)."""

    description: str = ""
    tasks: tuple[str, ...] = ()
    seeds: tuple[int, ...] = (0,)
    compressors: str | tuple[str, ...] = "all"  # a list of names, a comma-separated string, or "all"
    bounds: str | tuple[str, ...] = "all"
    delta: Annotated[float, Gt(0), Lt(1)] = 0.05
    device: Literal["auto", "cpu", "cuda"] = "auto"
    cell_timeout: Annotated[float, Gt(0)] | None = None  # seconds a compressor, decoder or bound may take
    results: str = "results"
    claim_timeout: Annotated[float, Gt(0)] = 60.0  # seconds after which a claim not renewed is taken over
    executor: str | dict = "local"  # a name, or a table with "name" and the executor's parameters
    compressor: dict = field(default_factory=dict)  # NAME -> its parameters (a list value is a grid)
    bound: dict = field(default_factory=dict)
    task: dict = field(default_factory=dict)  # NAME -> overrides of that task

    def validate(self) -> None:
        if not self.seeds:
            raise ValueError("parameter 'seeds' must be a non-empty list of integers")
        for section in ("compressor", "bound", "task"):
            for name, params in getattr(self, section).items():
                if not isinstance(params, dict):
                    raise ValueError(f"parameter '{section}.{name}' must be a table of parameters")
        if isinstance(self.executor, dict) and not isinstance(self.executor.get("name"), str):
            raise ValueError("parameter 'executor' as a table needs a 'name'")


def checked(key: str, value: Any, where: str) -> Any:
    """``value`` for the profile field ``key``, validated by the field's declaration (one place for δ,
    the device and the time limit, whether they come from bench.toml or the command line)."""
    try:
        return coerce(value, field_types(Profile)[key], key)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


@dataclass
class RunConfig:
    profile: str = "default"
    tasks: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])
    compressors: list[str] | None = None  # None: every registered compressor
    bounds: list[str] | None = None  # None: every registered bound
    compressor_params: dict[str, dict[str, Any]] = field(default_factory=dict)  # raw, lists are grids
    bound_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    delta: float = 0.05
    device: str = "auto"
    cell_timeout: float | None = None
    results: Path = Path("results")
    claim_timeout: float = 60.0
    executor: str = "local"
    executor_params: dict[str, Any] = field(default_factory=dict)
    data_dir: Path | None = None
    download: bool = False


def parse_names(where: str, key: str, value: Any) -> list[str] | None:
    """A list of plugin names, a comma-separated string, or "all" (``None``)."""
    if value == "all":
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: '{key}' must be a list of names or \"all\"")
    return list(value)


def read_toml(path: Path | None) -> dict[str, Any]:
    """The configuration file's tables; ``None``: the built-in default (``bench.starter``)."""
    try:
        if path is None:
            data = tomllib.loads(BENCH_TOML)
        else:
            with open(path, "rb") as f:
                data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a folder") from None
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line L, column C)"
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key '{unknown[0]}' (known: {', '.join(sorted(TOP_KEYS))})")
    return data


def load_config(path: Path | None, profile: str = "default") -> RunConfig:
    data = read_toml(path)
    where = f"{path or 'the built-in configuration (no bench.toml)'}"
    profiles = data.get("profiles", {})
    if profile not in profiles:
        known = ", ".join(sorted(profiles)) or "(none)"
        raise ConfigError(f"{where}: unknown profile '{profile}' (known: {known})")
    pwhere = f"{where}: profile '{profile}'"
    prof = build_params(Profile, profiles[profile], owner=pwhere)
    cfg = RunConfig(profile=profile, tasks=list(prof.tasks), seeds=list(prof.seeds), delta=prof.delta,
                    device=prof.device, cell_timeout=prof.cell_timeout, results=Path(prof.results),
                    claim_timeout=prof.claim_timeout)
    cfg.compressors = parse_names(pwhere, "compressors", prof.compressors)
    cfg.bounds = parse_names(pwhere, "bounds", prof.bounds)
    cfg.compressor_params = {k: dict(v) for k, v in prof.compressor.items()}
    cfg.bound_params = {k: dict(v) for k, v in prof.bound.items()}
    overrides = {k: dict(v) for k, v in data.get("tasks", {}).items()}
    for name, table in prof.task.items():
        merged = overrides.setdefault(name, {})
        for key, value in table.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    cfg.task_overrides = overrides
    if isinstance(prof.executor, dict):
        executor = dict(prof.executor)
        cfg.executor = executor.pop("name")
        cfg.executor_params = executor
    else:
        cfg.executor = prof.executor
    return cfg


def parse_assignment(text: str) -> tuple[list[str], Any]:
    """``compressor.quantize.levels=[2,4]`` -> (["compressor", "quantize", "levels"], [2, 4])."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    parts = [p.strip() for p in key.strip().split(".")]
    if not ((len(parts) >= 3 and parts[0] in ("compressor", "bound", "task"))
            or (len(parts) == 2 and parts[0] == "executor")):
        raise ConfigError(f"--set key must look like compressor.NAME.PARAM, bound.NAME.PARAM, "
                          f"task.NAME.KEY or executor.PARAM, got {key!r}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare string
    return parts, value


def apply_assignment(cfg: RunConfig, parts: list[str], value: Any) -> None:
    if parts[0] == "executor":
        cfg.executor_params[parts[1]] = value
        return
    section, name, rest = parts[0], parts[1], parts[2:]
    if section == "task":
        table = cfg.task_overrides.setdefault(name, {})
    else:
        table = (cfg.compressor_params if section == "compressor" else cfg.bound_params).setdefault(name, {})
    for p in rest[:-1]:
        table = table.setdefault(p, {})
    table[rest[-1]] = value
