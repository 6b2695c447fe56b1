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
from typing import Any

from bench.api.params import ConfigError

PROFILE_KEYS = {
    "description": str,
    "tasks": list,
    "seeds": list,
    "compressors": (list, str),
    "bounds": (list, str),
    "delta": (float, int),
    "device": str,
    "cell_timeout": (float, int),
    "results": str,
    "executor": (str, dict),
    "compressor": dict,
    "bound": dict,
    "task": dict,
}
TOP_KEYS = {"profiles", "tasks"}
DEVICES = ("auto", "cpu", "cuda")


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
    executor: str = "local"
    executor_params: dict[str, Any] = field(default_factory=dict)
    data_dir: Path | None = None
    download: bool = False


def _check_type(where: str, key: str, value: Any, expected: Any) -> None:
    types_ = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool) and bool not in types_:
        ok = False
    else:
        ok = isinstance(value, types_)
    if not ok:
        names = " or ".join(t.__name__ for t in types_)
        raise ConfigError(f"{where}: '{key}' must be {names}, got {value!r}")


def parse_names(where: str, key: str, value: Any) -> list[str] | None:
    """A list of plugin names, a comma-separated string, or "all" (``None``)."""
    if value == "all":
        return None
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: '{key}' must be a list of names or \"all\"")
    return list(value)


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key '{unknown[0]}' (known: {', '.join(sorted(TOP_KEYS))})")
    return data


def load_config(path: Path | None, profile: str = "default") -> RunConfig:
    data = read_toml(path) if path is not None else {}
    where = f"{path or 'config'}"
    profiles = data.get("profiles", {})
    if profile not in profiles:
        if path is None and profile == "default":
            return RunConfig()
        known = ", ".join(sorted(profiles)) or "(none)"
        raise ConfigError(f"{where}: unknown profile '{profile}' (known: {known})")
    prof = profiles[profile]
    pwhere = f"{where}: profile '{profile}'"
    for key, value in prof.items():
        if key not in PROFILE_KEYS:
            raise ConfigError(f"{pwhere}: unknown key '{key}' (known: {', '.join(sorted(PROFILE_KEYS))})")
        _check_type(pwhere, key, value, PROFILE_KEYS[key])
    cfg = RunConfig(profile=profile)
    cfg.tasks = list(prof.get("tasks", []))
    if not all(isinstance(t, str) for t in cfg.tasks):
        raise ConfigError(f"{pwhere}: 'tasks' must be a list of task names")
    cfg.seeds = list(prof.get("seeds", [0]))
    if not cfg.seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in cfg.seeds):
        raise ConfigError(f"{pwhere}: 'seeds' must be a non-empty list of integers")
    cfg.compressors = parse_names(pwhere, "compressors", prof.get("compressors", "all"))
    cfg.bounds = parse_names(pwhere, "bounds", prof.get("bounds", "all"))
    for sect in ("compressor", "bound", "task"):
        for name, params in prof.get(sect, {}).items():
            if not isinstance(params, dict):
                raise ConfigError(f"{pwhere}: '{sect}.{name}' must be a table of parameters")
    cfg.compressor_params = {k: dict(v) for k, v in prof.get("compressor", {}).items()}
    cfg.bound_params = {k: dict(v) for k, v in prof.get("bound", {}).items()}
    overrides = {k: dict(v) for k, v in data.get("tasks", {}).items()}
    for name, table in prof.get("task", {}).items():
        merged = overrides.setdefault(name, {})
        for key, value in table.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value
    cfg.task_overrides = overrides
    cfg.delta = float(prof.get("delta", 0.05))
    if not 0 < cfg.delta < 1:
        raise ConfigError(f"{pwhere}: 'delta' must be in (0, 1), got {cfg.delta}")
    cfg.device = prof.get("device", "auto")
    if cfg.device not in DEVICES:
        raise ConfigError(f"{pwhere}: 'device' must be one of {', '.join(DEVICES)}, got {cfg.device!r}")
    timeout = prof.get("cell_timeout")
    cfg.cell_timeout = float(timeout) if timeout else None
    cfg.results = Path(prof.get("results", "results"))
    executor = prof.get("executor", "local")
    if isinstance(executor, dict):
        executor = dict(executor)
        if not isinstance(executor.get("name"), str):
            raise ConfigError(f"{pwhere}: 'executor' table needs a 'name'")
        cfg.executor = executor.pop("name")
        cfg.executor_params = executor
    else:
        cfg.executor = executor
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
