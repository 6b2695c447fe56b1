"""Planning a run, as plain data: the tasks, seeds and grids a configuration names, the jobs, each
cell's identity and the skeleton of its row, its configuration's code word, and the ledger's entries.

Nothing here trains, loads data or needs torch, so a plan is cheap to make and to test, and every
process of a run (the ``bench run`` process, each worker) makes the same one from the same
configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from bench.api.jobs import Job
from bench.api.params import ConfigError, canonical_json, content_hash, expand_grid
from bench.api.specs import TaskSpec
from bench.config import RunConfig
from bench.configbits import code_of
from bench.configcode import CODE_VERSION, Coded
from bench.errors import UnknownName
from bench.ledger import config_key, sample_id
from bench.taskconfig import merge_task, task_config

if TYPE_CHECKING:
    from bench.registry import Registry

ARTIFACT_FORMAT = 2  # bump when what an artifact id stands for changes (2: decoded from the prior alone)
SINGULAR = {"compressors": "compressor", "bounds": "bound"}


@dataclass(frozen=True)
class PluginConfig:
    """One point of a compressor's or bound's grid."""

    name: str
    version: str
    plugin: str
    plugin_version: str
    cls: type
    params: dict[str, Any]  # validated, canonical
    grid_size: int

    def instance(self) -> Any:
        return self.cls(**self.params)

    @property
    def params_text(self) -> str:
        """The parameters as canonical JSON (the results table's column)."""
        return canonical_json(self.params)


def expand_plugins(kind: str, names: list[str] | None, params: dict[str, dict], registry: "Registry") -> list[list[PluginConfig]]:
    """Resolve names (``None``: all registered) and expand each one's parameter grid."""
    singular = SINGULAR[kind]
    for name in params:
        if name not in registry.entries[kind]:
            known = ", ".join(registry.names(kind)) or "(none)"
            raise UnknownName(f"configuration for unknown {singular} '{name}' (known: {known})")
    out = []
    for name in names if names is not None else registry.names(kind):
        entry = registry.entry(kind, name)
        cls = entry.obj
        grid = expand_grid(cls.Params, params.get(name, {}), owner=f"{singular} '{name}'")
        out.append([PluginConfig(name, cls.version, entry.plugin, entry.plugin_version, cls,
                                 cls(**point).params_dict(), len(grid)) for point in grid])
    return out


def resolve_tasks(config: RunConfig, registry: "Registry") -> list[TaskSpec]:
    if not config.tasks:
        raise ConfigError(f"profile '{config.profile}' names no tasks (known: {', '.join(registry.names('tasks'))})")
    specs = []
    for name in config.tasks:
        override = config.task_overrides.get(name)
        if name in registry.entries["tasks"]:
            spec = registry.get("tasks", name)
        elif override is not None:
            spec = None  # defined in bench.toml
        else:
            registry.entry("tasks", name)  # raises UnknownName listing the known tasks
        spec = merge_task(spec, override, name)
        task_config(spec, registry)  # validates names and parameters before any work
        specs.append(spec)
    return specs


@dataclass(frozen=True)
class Stamp:
    """Where and with what a run happens, for its rows (the runner fills it in)."""

    device: str
    torch_version: str
    bench_version: str
    git_commit: str


class Plan:
    """Every job and cell of a run, and what identifies them."""

    def __init__(self, config: RunConfig, registry: "Registry", run_id: str, stamp: Stamp) -> None:
        self.config, self.registry, self.run_id, self.stamp = config, registry, run_id, stamp
        self.specs = {spec.name: spec for spec in resolve_tasks(config, registry)}
        self.task_configs = {name: task_config(spec, registry) for name, spec in self.specs.items()}
        self.sample_ids = {name: sample_id(cfg, registry.get("datasets", cfg["dataset"]).defaults())
                           for name, cfg in self.task_configs.items()}
        self.compressors = expand_plugins("compressors", config.compressors, config.compressor_params, registry)
        self.bounds = expand_plugins("bounds", config.bounds, config.bound_params, registry)
        if not any(self.compressors) or not any(self.bounds):
            raise ConfigError("nothing to run: no compressors or no bounds selected")
        self._codes: dict[tuple, Coded] = {}

    # ------------------------------------------------------------------------------ identities
    def jobs(self) -> list[Job]:
        return [Job(task, seed, i, j) for task in self.specs for seed in self.config.seeds
                for i, grid in enumerate(self.compressors) for j in range(len(grid))]

    def n_cells(self) -> int:
        per_task_seed = sum(len(g) for g in self.compressors) * sum(len(g) for g in self.bounds)
        return len(self.specs) * len(self.config.seeds) * per_task_seed

    def compressor(self, job: Job) -> PluginConfig:
        return self.compressors[job.compressor][job.point]

    def artifact_id(self, task: str, seed: int, comp: PluginConfig) -> str:
        return content_hash({"task": self.task_configs[task], "seed": seed, "compressor": comp.name,
                             "version": comp.version, "params": comp.params, "device": self.stamp.device.split(":")[0],
                             "format": ARTIFACT_FORMAT})

    def cell_id(self, artifact_id: str, bound: PluginConfig) -> str:
        """A cell is its configuration: the grid it ran in does not change what it certifies."""
        return content_hash({"artifact": artifact_id, "bound": bound.name, "version": bound.version,
                             "params": bound.params, "delta": self.config.delta, "code": CODE_VERSION})

    def config_code(self, task: str, seed: int, comp: PluginConfig, bound: PluginConfig) -> Coded:
        """The cell's configuration under the configuration code: what its certificate pays for."""
        key = (task, seed, comp.name, comp.params_text, bound.name, bound.params_text)
        if key not in self._codes:
            self._codes[key] = code_of(self.registry, self.task_configs[task], seed, self.config.delta, comp.name,
                                       comp.params, bound.name, bound.params)
        return self._codes[key]

    # ------------------------------------------------------------------------------------- rows
    def base_row(self, task: str, seed: int, comp: PluginConfig, bound: PluginConfig,
                 artifact_id: str) -> dict[str, Any]:
        """What a cell's row says before anything is computed."""
        spec, code = self.specs[task], self.config_code(task, seed, comp, bound)
        return {
            "run_id": self.run_id, "cell_id": self.cell_id(artifact_id, bound), "artifact_id": artifact_id,
            "task": task, "dataset": spec.dataset, "model": spec.model, "seed": seed,
            "task_hash": content_hash(self.task_configs[task]), "sample_id": self.sample_ids[task],
            "compressor": comp.name, "compressor_version": comp.version, "compressor_params": comp.params_text,
            "grid_size": comp.grid_size, "bound": bound.name, "bound_version": bound.version,
            "bound_params": bound.params_text, "bound_grid_size": bound.grid_size,
            "bound_kind": bound.instance().bound_kind, "delta": self.config.delta,
            "config_bits": float(code.length), "config_code": code.version,
            "device": self.stamp.device, "torch_version": self.stamp.torch_version,
            "bench_version": self.stamp.bench_version, "git_commit": self.stamp.git_commit,
            "plugin_versions": canonical_json({comp.plugin: comp.plugin_version, bound.plugin: bound.plugin_version}),
            "started_at": datetime.now(timezone.utc),
        }

    def cells(self, job: Job) -> tuple[PluginConfig, str, list[tuple[PluginConfig, dict[str, Any]]]]:
        """A job's compressor configuration, its artifact id, and each bound configuration with its row."""
        comp = self.compressor(job)
        artifact_id = self.artifact_id(job.task, job.seed, comp)
        return comp, artifact_id, [(b, self.base_row(job.task, job.seed, comp, b, artifact_id))
                                   for grid in self.bounds for b in grid]

    def ledger_entries(self, done: frozenset[str]) -> list[dict[str, Any]]:
        """Every configuration this run will evaluate (the record of the search), before any touches data."""
        entries = []
        for job in self.jobs():
            comp, artifact_id, cells = self.cells(job)
            entries += [
                {"sample": self.sample_ids[job.task],
                 "config": config_key(artifact_id, b.name, b.version, b.params, self.config.delta),
                 "task": job.task, "seed": job.seed, "compressor": comp.name, "compressor_params": comp.params,
                 "bound": b.name, "bound_params": b.params, "delta": self.config.delta, "run_id": self.run_id}
                for b, row in cells if row["cell_id"] not in done]
        return entries

    def sidecar(self, argv: list[str], environment: dict[str, Any]) -> dict[str, Any]:
        """The run's full configuration and environment, kept beside its rows."""
        cfg = self.config
        return {
            "run_id": self.run_id, "argv": argv, "profile": cfg.profile,
            "started_at": datetime.now(timezone.utc).isoformat(),
            "config": {
                "tasks": cfg.tasks, "seeds": cfg.seeds, "delta": cfg.delta, "device": cfg.device,
                "cell_timeout": cfg.cell_timeout, "results": str(cfg.results), "claim_timeout": cfg.claim_timeout,
                "data_dir": str(cfg.data_dir) if cfg.data_dir else None, "download": cfg.download,
                "compressors": [[{"name": p.name, "params": p.params} for p in g] for g in self.compressors],
                "bounds": [[{"name": p.name, "params": p.params} for p in g] for g in self.bounds],
                "task_overrides": cfg.task_overrides,
            },
            "tasks": self.task_configs, "executor": {"name": cfg.executor, **cfg.executor_params},
            "plugins": [
                {"name": p.name, "module": p.module, "distribution": p.distribution, "version": p.version,
                 "error": p.error, "registered": p.registered} for p in self.registry.plugins
            ],
            "environment": environment,
        }
