"""The runner: tasks x seeds x compressor configurations x bound configurations -> one row per cell.

Each compressor configuration compresses once per (task, seed); every bound reuses the artifact. A
failing compressor or bound writes ``failed`` rows and the run goes on; a bound that does not apply
writes a ``skipped`` row. Every finished cell is written at once, atomically, so a killed run loses at
most the cell in flight, and running the same command again skips the cells that have an ``ok`` row.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import secrets
import socket
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

import bench
from bench.config import RunConfig
from bench.contracts import (BoundResult, Compressed, Compressor, Evaluated, RunContext, TaskInstance,
                             TaskSpec)
from bench.environment import environment, git_commit, resolve_device
from bench.evaluation import error_rate, predict
from bench.params import ConfigError, canonical_json, content_hash, expand_grid, params_dict
from bench.progress import progress, say
from bench.registry import Registry, UnknownName
from bench.results import ResultsStore
from bench.stats import inference_flops
from bench.tasks import BaseModels, instantiate_task, merge_task, seeded_model_factory, task_config
from bench.timeouts import time_limit
from bench.training import ModelCache, default_cache_dir


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
    def params_json(self) -> str:
        return canonical_json(self.params)


@dataclass
class RunSummary:
    run_id: str
    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "failed": 0, "skipped": 0, "cached": 0})
    failures: list[str] = field(default_factory=list)


def expand_plugins(kind: str, names: list[str] | None, params: dict[str, dict], registry: Registry) -> list[list[PluginConfig]]:
    """Resolve names (``None``: all registered) and expand each one's parameter grid."""
    singular = kind[:-1]
    for name in params:
        if name not in registry.entries[kind]:
            known = ", ".join(registry.names(kind)) or "(none)"
            raise UnknownName(f"configuration for unknown {singular} '{name}' (known: {known})")
    out = []
    for name in names if names is not None else registry.names(kind):
        entry = registry.entry(kind, name)
        cls = entry.obj
        owner = f"{singular} '{name}'"
        grid = expand_grid(cls.Params, params.get(name, {}), owner=owner)
        out.append([
            PluginConfig(name, cls.version, entry.plugin, entry.plugin_version, cls,
                         cls(**point).params_json(), len(grid))
            for point in grid
        ])
    return out


def resolve_tasks(config: RunConfig, registry: Registry) -> list[TaskSpec]:
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


def models_agree(a: nn.Module, b: nn.Module, x: torch.Tensor) -> str | None:
    """``None`` when the decoded model ``b`` is exactly the compressor's model ``a``, else why not.

    Same architecture: every floating-point tensor (parameters and buffers such as BatchNorm
    statistics) must be bit-identical; integer buffers (BatchNorm's ``num_batches_tracked``) do not
    take part in the evaluated function. Otherwise the outputs on ``x`` must be bit-identical.
    """
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() == sb.keys():
        for key in sa:
            if not sa[key].is_floating_point():
                continue
            if not torch.equal(sa[key].detach().cpu(), sb[key].detach().cpu()):
                return f"decoded tensor '{key}' differs from the compressor's model"
        return None
    if not torch.equal(predict(a, x).cpu(), predict(b, x).cpu()):
        return "decoded model's outputs differ from the compressor's model"
    return None


def build_context(task: TaskInstance, seed: int, device: torch.device, base_models: BaseModels,
                  delta: float, hparam_bits: float = 0.0) -> RunContext:
    """The context a compressor or bound sees; ``bench verify`` rebuilds exactly the same one."""
    return RunContext(
        task=task, seed=seed, device=device,
        make_model=seeded_model_factory(task, seed, device),
        base_model=lambda: base_models.get(task, seed),
        evaluate=lambda model, split: error_rate(model, split, task.data.task_type),
        progress=progress, rng=np.random.default_rng(seed), delta=delta, hparam_bits=hparam_bits,
    )


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _finite(*values: float | None) -> bool:
    return all(v is None or math.isfinite(v) for v in values)


@dataclass(frozen=True)
class Job:
    """One unit of work: one compressor configuration on one (task, seed), with all its bound cells."""

    task: str
    seed: int
    compressor: int  # index into Runner.compressors
    point: int  # index into that compressor's grid


@dataclass
class JobResult:
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    cells: int = 0


class Runner:
    def __init__(self, config: RunConfig, registry: Registry, argv: list[str] | None = None,
                 run_id: str | None = None) -> None:
        self.config, self.registry, self.argv = config, registry, argv or []
        self.device = resolve_device(config.device)
        self.specs = {spec.name: spec for spec in resolve_tasks(config, registry)}
        self.task_configs = {name: task_config(spec, registry) for name, spec in self.specs.items()}
        self.compressors = expand_plugins("compressors", config.compressors, config.compressor_params, registry)
        self.bounds = expand_plugins("bounds", config.bounds, config.bound_params, registry)
        if not any(self.compressors) or not any(self.bounds):
            raise ConfigError("nothing to run: no compressors or no bounds selected")
        executor_entry = registry.entry("executors", config.executor)
        self.executor = executor_entry.obj(**config.executor_params)
        self.store = ResultsStore(config.results)
        self.base_models = BaseModels(ModelCache(default_cache_dir()), self.device, progress)
        self.run_id = run_id or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        self.worker = f"{socket.gethostname()[:16]}-{os.getpid()}"
        self._seq = 0
        self._tasks: dict[str, TaskInstance] = {}

    # ------------------------------------------------------------------------------ identities
    def n_cells(self) -> int:
        per_task_seed = sum(len(g) for g in self.compressors) * sum(len(g) for g in self.bounds)
        return len(self.specs) * len(self.config.seeds) * per_task_seed

    def artifact_id(self, task: str, seed: int, comp: PluginConfig) -> str:
        return content_hash({"task": self.task_configs[task], "seed": seed, "compressor": comp.name,
                             "version": comp.version, "params": comp.params, "device": self.device.type})

    def cell_id(self, artifact_id: str, comp: PluginConfig, bound: PluginConfig) -> str:
        return content_hash({"artifact": artifact_id, "grid": comp.grid_size, "bound": bound.name,
                             "version": bound.version, "params": bound.params, "bound_grid": bound.grid_size,
                             "delta": self.config.delta})

    def context(self, task: TaskInstance, seed: int, hparam_bits: float = 0.0) -> RunContext:
        return build_context(task, seed, self.device, self.base_models, self.config.delta, hparam_bits)

    def task(self, name: str) -> TaskInstance:
        if name not in self._tasks:
            self._tasks[name] = instantiate_task(self.specs[name], self.registry, self.config.data_dir,
                                                 self.config.download)
        return self._tasks[name]

    # ------------------------------------------------------------------------------------- rows
    def base_row(self, task: str, seed: int, comp: PluginConfig, bound: PluginConfig,
                 artifact_id: str) -> dict[str, Any]:
        spec = self.specs[task]
        return {
            "run_id": self.run_id, "cell_id": self.cell_id(artifact_id, comp, bound), "artifact_id": artifact_id,
            "task": task, "dataset": spec.dataset, "model": spec.model, "seed": seed,
            "compressor": comp.name, "compressor_version": comp.version, "compressor_params": comp.params_json,
            "grid_size": comp.grid_size, "bound": bound.name, "bound_version": bound.version,
            "bound_params": bound.params_json, "bound_kind": bound.cls.bound_kind, "delta": self.config.delta,
            "device": str(self.device), "torch_version": torch.__version__,
            "bench_version": bench.__version__, "git_commit": git_commit(),
            "plugin_versions": canonical_json({comp.plugin: comp.plugin_version, bound.plugin: bound.plugin_version}),
            "started_at": datetime.now(timezone.utc),
        }

    def write(self, rows: list[dict[str, Any]], result: JobResult) -> None:
        self.store.append(rows, f"{self.run_id}-{self.worker}", self._seq)
        self._seq += 1
        for row in rows:
            result.counts[row["status"]] = result.counts.get(row["status"], 0) + 1
            if row["status"] == "failed":
                result.failures.append(f"{row['task']} seed={row['seed']} {row['compressor']} "
                                       f"{row['bound']}: {row['error']}")

    # ---------------------------------------------------------------------------------- running
    def jobs(self) -> list[Job]:
        return [Job(task, seed, i, j) for task in self.specs for seed in self.config.seeds
                for i, grid in enumerate(self.compressors) for j in range(len(grid))]

    def run(self) -> RunSummary:
        """Hand every job to the executor; each writes its own rows, the summary collects counts."""
        summary = RunSummary(self.run_id)
        done = frozenset(self.store.ok_cells())
        self.store.write_sidecar(self.run_id, self.sidecar())
        bar = progress(total=self.n_cells(), desc="cells", leave=True)
        _WORKER_RUNNERS.clear()
        _WORKER_RUNNERS[self.run_id] = self  # jobs the executor runs in this process use this runner
        work = functools.partial(run_job, self.config, self.argv, self.run_id, done)
        try:
            for result in self.executor.execute(self.jobs(), work, bar.update):
                for key, value in result.counts.items():
                    summary.counts[key] = summary.counts.get(key, 0) + value
                summary.failures += result.failures
        finally:
            bar.close()
        return summary

    def run_job(self, job: Job, done: frozenset[str], tick: Callable[[int], Any] | None = None) -> JobResult:
        tick = tick or (lambda n: None)
        result = JobResult()
        comp = self.compressors[job.compressor][job.point]
        artifact_id = self.artifact_id(job.task, job.seed, comp)
        cells = [(b, self.base_row(job.task, job.seed, comp, b, artifact_id)) for grid in self.bounds for b in grid]
        pending = [(b, row) for b, row in cells if row["cell_id"] not in done]
        result.counts["cached"] = len(cells) - len(pending)
        result.cells = len(cells)
        tick(len(cells) - len(pending))
        if not pending:
            return result
        comp_bits = math.log2(comp.grid_size)
        try:
            task = self.task(job.task)
            base_train, base_test = self.base_models.base_errors(task, job.seed)
            with time_limit(self.config.cell_timeout, f"compressor {comp.name}"):
                evaluated, compress_seconds = self.obtain(task, job.seed, comp, artifact_id, comp_bits)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            say(f"{job.task} seed={job.seed} {comp.name} {comp.params_json}: {error}")
            rows = [{**row, "status": "failed", "error": error,
                     "extras": canonical_json({"traceback": traceback.format_exc(limit=8)})} for _, row in pending]
            self.write(rows, result)
            tick(len(pending))
            return result
        c = evaluated.compressed
        n_params = count_params(evaluated.model)
        common = {
            "n_train": task.n_train, "n_params": n_params, "n_params_kept": int(c.stats.get("n_params_kept", n_params)),
            "message_bits": float(c.bits), "train_err": evaluated.train_err, "test_err": evaluated.test_err,
            "base_train_err": base_train, "base_test_err": base_test, "compress_seconds": compress_seconds,
            "compression_ratio": 32.0 * n_params / max(c.bits, 1),
            "flops": inference_flops(evaluated.model, task.data.input_shape),
            "base_flops": inference_flops(seeded_model_factory(task, job.seed, self.device)(), task.data.input_shape),
        }
        for bound, row in pending:
            row.update(common)
            row.update(self.run_bound(task, job.seed, bound, evaluated, comp_bits + math.log2(bound.grid_size)))
            self.write([row], result)
            tick(1)
        return result

    def obtain(self, task: TaskInstance, seed: int, comp: PluginConfig, artifact_id: str,
               comp_bits: float) -> tuple[Evaluated, float]:
        """The evaluated artifact: from the artifact cache (the kept message) or compressed now."""
        compressor: Compressor = comp.instance()
        ctx = self.context(task, seed, comp_bits)
        if self.store.has_artifact(artifact_id):
            message, meta, layers = self.store.load_artifact(artifact_id)
            compressed = Compressed(message=message, layers=layers, stats=meta.get("stats", {}),
                                    extras=meta.get("extras", {}), hparam_bits=comp_bits)
            seconds = float(meta.get("compress_seconds", float("nan")))
            decoded = compressor.decode(message, ctx)
        else:
            start = time.perf_counter()
            compressed = compressor.compress(ctx)
            seconds = time.perf_counter() - start
            if not isinstance(compressed, Compressed):
                raise TypeError(f"compressor {comp.name} returned {type(compressed).__name__}, not Compressed")
            compressed.hparam_bits = comp_bits
            decoded = compressor.decode(compressed.message, self.context(task, seed, comp_bits))
            if compressed.model is not None:
                problem = models_agree(compressed.model, decoded, task.data.train.x[:2048])
                if problem:
                    raise RuntimeError(f"decode check failed: {problem}")
            self.store.save_artifact(artifact_id, compressed.message, {
                "artifact_id": artifact_id, "task": task.config, "seed": seed, "compressor": comp.name,
                "compressor_version": comp.version, "compressor_params": comp.params,
                "device": self.device.type, "stats": compressed.stats, "extras": compressed.extras,
                "compress_seconds": seconds, "bits": compressed.bits,
                "sha256": hashlib.sha256(compressed.message).hexdigest(),
            }, compressed.layers)
        decoded.eval()
        train_err = error_rate(decoded, task.data.train, task.data.task_type)
        test_err = error_rate(decoded, task.data.test, task.data.task_type)
        if not _finite(train_err, test_err):
            raise FloatingPointError(f"decoded model has non-finite error (train {train_err}, test {test_err})")
        return Evaluated(compressed, decoded, train_err, test_err), seconds

    def run_bound(self, task: TaskInstance, seed: int, bound: PluginConfig, evaluated: Evaluated,
                  hparam_bits: float) -> dict[str, Any]:
        ctx = self.context(task, seed, hparam_bits)
        try:
            instance = bound.instance()
            reason = instance.skip_reason(evaluated, ctx)
            if reason:
                return {"status": "skipped", "error": reason, "hparam_bits": hparam_bits}
            start = time.perf_counter()
            with time_limit(self.config.cell_timeout, f"bound {bound.name}"):
                result = instance.compute(evaluated, ctx)
            seconds = time.perf_counter() - start
            return result_columns(result, evaluated, seconds, ctx.delta)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            say(f"{task.name} seed={seed} bound {bound.name}: {error}")
            return {"status": "failed", "error": error, "hparam_bits": hparam_bits,
                    "extras": canonical_json({"traceback": traceback.format_exc(limit=8)})}

    def sidecar(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "run_id": self.run_id, "argv": self.argv, "profile": cfg.profile,
            "started_at": datetime.now(timezone.utc).isoformat(),
            "config": {
                "tasks": cfg.tasks, "seeds": cfg.seeds, "delta": cfg.delta, "device": cfg.device,
                "cell_timeout": cfg.cell_timeout, "results": str(cfg.results),
                "data_dir": str(cfg.data_dir) if cfg.data_dir else None, "download": cfg.download,
                "compressors": [[{"name": p.name, "params": p.params} for p in g] for g in self.compressors],
                "bounds": [[{"name": p.name, "params": p.params} for p in g] for g in self.bounds],
                "task_overrides": cfg.task_overrides,
            },
            "tasks": self.task_configs, "executor": {"name": self.config.executor, **self.config.executor_params},
            "plugins": [
                {"name": p.name, "module": p.module, "distribution": p.distribution, "version": p.version,
                 "error": p.error, "registered": p.registered} for p in self.registry.plugins
            ],
            "environment": environment(self.device),
        }


_WORKER_RUNNERS: dict[str, Runner] = {}


def run_job(config: RunConfig, argv: list[str], run_id: str, done: frozenset[str], job: Job,
            tick: Callable[[int], Any] | None = None) -> JobResult:
    """Run one job in this process (a picklable entry point for executors that run jobs elsewhere).

    Each process builds its own runner for the run once (plugins, data, base models are per process).
    """
    from bench.registry import load_registry

    if run_id not in _WORKER_RUNNERS:
        _WORKER_RUNNERS.clear()
        _WORKER_RUNNERS[run_id] = Runner(config, load_registry(), argv, run_id=run_id)
    return _WORKER_RUNNERS[run_id].run_job(job, done, tick)


def result_columns(result: BoundResult, evaluated: Evaluated, seconds: float, delta: float) -> dict[str, Any]:
    """A bound's result as table columns, with the sanity checks every certificate must pass."""
    if not isinstance(result, BoundResult):
        raise TypeError(f"bound returned {type(result).__name__}, not BoundResult")
    if not _finite(result.error_bound, result.empirical_term, result.kl_nats):
        raise FloatingPointError(f"bound is not finite: {result.error_bound} (KL {result.kl_nats})")
    if result.kind == "certificate" and result.error_bound < result.empirical_term - 1e-12:
        raise ArithmeticError(f"certificate {result.error_bound} is below its empirical term "
                              f"{result.empirical_term}: a bug in the bound")
    return {
        "status": "ok", "error": None, "bound_kind": result.kind, "error_bound": result.error_bound,
        "empirical_term": result.empirical_term, "kl_nats": result.kl_nats,
        "message_bits": result.message_bits if result.message_bits is not None else float(evaluated.compressed.bits),
        "length_code_bits": result.length_code_bits, "hparam_bits": result.hparam_bits,
        "adjustment_nats": result.adjustment_nats,
        "delta": result.delta if result.delta is not None else delta, "mc_samples": result.mc_samples,
        "is_vacuous": bool(result.error_bound >= 1.0),
        "bound_minus_test": result.error_bound - evaluated.test_err,
        "bound_seconds": seconds,
        "extras": canonical_json({"bound": result.extras, "stats": evaluated.compressed.stats}),
    }
