"""The runner: tasks x seeds x compressor configurations x bound configurations -> one row per cell.

Each compressor configuration compresses once per (task, seed), in a fresh process of its own
(``bench.compressing``); every bound reuses the artifact. The compressor's message is decoded in another
fresh process from the prior alone (``bench.sandbox``); the decoded model must be bit-identical to the
compressor's own and predict as it does, and it is the decoded model that is evaluated and certified,
in the worker, where no ``compress`` ever ran. Every cell pays the length of its configuration under
the configuration code (``bench.configcode``): that, not the grid it ran in, is its configuration
bits. A failing compressor or bound writes ``failed`` rows and the run goes on; a bound that does not
apply writes a ``skipped`` row. Jobs run in a worker process that is killed when a plugin overruns its
time limit (``bench.supervisor``). Every finished cell is written at once, atomically, so a killed run
loses at most the cell in flight, and running the same command again skips the cells that have an
``ok`` row. Every configuration is entered in the folder's ledger (the record of what was tried) before
it touches the data (``bench.ledger``).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
import pickle
import secrets
import socket
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

import bench
from bench.config import RunConfig
from bench.configbits import code_of
from bench.configcode import CODE_VERSION, Coded
from bench.contracts import (KIND_BY_NAME, BoundResult, BoundSkipped, Compressed, Evaluated, Prior,
                             RunContext, TaskInstance, TaskSpec, seeded_generator, stream_offset)
from bench.environment import environment, git_commit, resolve_device
from bench.kit.evaluation import error_rate, predict
from bench.ledger import Ledger, config_key, sample_id
from bench.params import ConfigError, canonical_json, content_hash, expand_grid
from bench.progress import progress, say
from bench.registry import Registry, UnknownName
from bench.results import ResultsStore
from bench.rows import (ContractError, bound_columns, check_bound_result, check_layers, check_same_outputs,
                        check_sections, target_columns)
from bench.kit.models import first_difference, state_digest
from bench.children import ChildDied
from bench.sandbox import Decoder
from bench.stats import inference_flops
from bench.kit.stochastic import posterior_error_count
from bench.tasks import BaseModels, instantiate_task, merge_task, prior_spec, seeded_model_factory, task_config
from bench.timeouts import time_limit
from bench.cache import ModelCache, default_cache_dir

if TYPE_CHECKING:
    from bench.compressing import CompressReply

ARTIFACT_FORMAT = 2  # bump when what an artifact id stands for changes (2: decoded from the prior alone)


class CompressFailed(RuntimeError):
    """``compress`` failed in its own process; the message is its error, the traceback its own."""

    def __init__(self, error: str, tb: str | None) -> None:
        super().__init__(error)
        self.tb = tb


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
    refuted: list[str] = field(default_factory=list)
    decode_seconds: float = 0.0


def expand_plugins(kind: str, names: list[str] | None, params: dict[str, dict], registry: Registry) -> list[list[PluginConfig]]:
    """Resolve names (``None``: all registered) and expand each one's parameter grid."""
    singular = KIND_BY_NAME[kind].singular
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


def models_agree(a: nn.Module, b: nn.Module, x: torch.Tensor | None = None) -> str | None:
    """``None`` when ``b`` is bit-identical to ``a`` in every tensor of its state and, given inputs
    ``x``, computes the same outputs on them; else what differs."""
    if state_digest(a) != state_digest(b):
        return first_difference(a, b)
    if x is not None:
        try:
            check_same_outputs(predict(a, x).float().cpu(), predict(b, x).float().cpu(), "the model")
        except ContractError as exc:
            return str(exc)
    return None


class _State:
    """A state dict standing in for a model in ``first_difference``."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        self.state = state

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.state


def plugin_view(task: TaskInstance, role: str = "compressor") -> TaskInstance:
    """The task as plugins see it: the test split is withheld; a bound's training set is ``S_bound``
    (the whole training set unless the task has a data-dependent prior)."""
    data = task.data.for_bounds() if role == "bound" else task.data.without_test()
    return dataclasses.replace(task, data=data)


def build_context(task: TaskInstance, seed: int, device: torch.device, base_models: BaseModels,
                  delta: float, config_bits: float = 0.0, role: str = "compressor",
                  prior: Prior | None = None) -> RunContext:
    """The context a compressor (``role``) or bound sees; ``bench verify`` rebuilds exactly the same.
    ``prior``: already built (from its spec, in a process that must not train the prior's model)."""
    if prior is None:
        prior = Prior(prior_spec(task, seed, device, base_models), seeded_model_factory(task, seed, device))
    view = plugin_view(task, role)
    return RunContext(
        task=view, seed=seed, device=device, make_model=prior.make_model,
        base_model=lambda: base_models.get(task, seed),
        evaluate=lambda model, split: error_rate(model, split, task.data.task_type),
        progress=progress, cache=lambda namespace: ModelCache(default_cache_dir() / namespace), delta=delta,
        config_bits=config_bits, prior=prior,
    )


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


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
    refuted: list[str] = field(default_factory=list)
    cells: int = 0
    decode_seconds: float = 0.0  # waiting on the prior-only decoding process


class Report:
    """What a running job tells whoever supervises it (nothing, when it runs in place)."""

    def tick(self, n: int) -> None: ...

    def phase(self, what: str | None, limit: float | None = None) -> None: ...

    def wrote(self, rows: list[dict[str, Any]]) -> None: ...


@dataclass
class Measured:
    """The decoded model's test errors: the harness's alone, never shown to plugins."""

    test_errors: int | None
    n_test: int
    test_err: float
    train_ce: float | None = None  # mean cross-entropy (nats) of the decoded model, for the tables
    test_ce: float | None = None


class Runner:
    def __init__(self, config: RunConfig, registry: Registry, argv: list[str] | None = None,
                 run_id: str | None = None) -> None:
        self.config, self.registry, self.argv = config, registry, argv or []
        self.device = resolve_device(config.device)
        self.specs = {spec.name: spec for spec in resolve_tasks(config, registry)}
        self.task_configs = {name: task_config(spec, registry) for name, spec in self.specs.items()}
        self.sample_ids = {name: sample_id(cfg, registry.get("datasets", cfg["dataset"]).defaults())
                           for name, cfg in self.task_configs.items()}
        self.compressors = expand_plugins("compressors", config.compressors, config.compressor_params, registry)
        self.bounds = expand_plugins("bounds", config.bounds, config.bound_params, registry)
        if not any(self.compressors) or not any(self.bounds):
            raise ConfigError("nothing to run: no compressors or no bounds selected")
        executor_entry = registry.entry("executors", config.executor)
        self.executor = executor_entry.obj(**config.executor_params)
        self.store = ResultsStore(config.results)
        self.ledger = Ledger(config.results)
        self.base_models = BaseModels(ModelCache(default_cache_dir()), self.device, progress)
        self.run_id = run_id or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        self.worker = f"{socket.gethostname()[:16]}-{os.getpid()}"
        self._seq = 0
        self._tasks: dict[str, TaskInstance] = {}
        self._codes: dict[tuple, Coded] = {}
        self.decoder = Decoder()  # also the zygote the compressing process is forked from
        self.compressing: Any = None  # bench.children.Child: where this worker's compressions run
        self.supervisor: Any = None  # bench.supervisor.JobSupervisor, made on first use

    # ------------------------------------------------------------------------------ identities
    def n_cells(self) -> int:
        per_task_seed = sum(len(g) for g in self.compressors) * sum(len(g) for g in self.bounds)
        return len(self.specs) * len(self.config.seeds) * per_task_seed

    def artifact_id(self, task: str, seed: int, comp: PluginConfig) -> str:
        return content_hash({"task": self.task_configs[task], "seed": seed, "compressor": comp.name,
                             "version": comp.version, "params": comp.params, "device": self.device.type,
                             "format": ARTIFACT_FORMAT})

    def cell_id(self, artifact_id: str, bound: PluginConfig) -> str:
        """A cell is its configuration: the grid it ran in does not change what it certifies."""
        return content_hash({"artifact": artifact_id, "bound": bound.name, "version": bound.version,
                             "params": bound.params, "delta": self.config.delta, "code": CODE_VERSION})

    def config_code(self, task: str, seed: int, comp: PluginConfig, bound: PluginConfig) -> Coded:
        """The cell's configuration under the configuration code: what its certificate pays for."""
        key = (task, seed, comp.name, comp.params_json, bound.name, bound.params_json)
        if key not in self._codes:
            self._codes[key] = code_of(self.registry, self.task_configs[task], seed, self.config.delta, comp.name,
                                       comp.params, bound.name, bound.params)
        return self._codes[key]

    def context(self, task: TaskInstance, seed: int, config_bits: float = 0.0, role: str = "compressor") -> RunContext:
        return build_context(task, seed, self.device, self.base_models, self.config.delta, config_bits, role)

    def task(self, name: str) -> TaskInstance:
        if name not in self._tasks:
            self._tasks[name] = instantiate_task(self.specs[name], self.registry, self.config.data_dir,
                                                 self.config.download)
        return self._tasks[name]

    # ------------------------------------------------------------------------------------- rows
    def base_row(self, task: str, seed: int, comp: PluginConfig, bound: PluginConfig,
                 artifact_id: str) -> dict[str, Any]:
        spec = self.specs[task]
        code = self.config_code(task, seed, comp, bound)
        return {
            "run_id": self.run_id, "cell_id": self.cell_id(artifact_id, bound), "artifact_id": artifact_id,
            "task": task, "dataset": spec.dataset, "model": spec.model, "seed": seed,
            "task_hash": content_hash(self.task_configs[task]), "sample_id": self.sample_ids[task],
            "compressor": comp.name, "compressor_version": comp.version, "compressor_params": comp.params_json,
            "grid_size": comp.grid_size, "bound": bound.name, "bound_version": bound.version,
            "bound_params": bound.params_json, "bound_grid_size": bound.grid_size,
            "bound_kind": bound.instance().bound_kind, "delta": self.config.delta,
            "config_bits": float(code.length), "config_code": code.version,
            "device": str(self.device), "torch_version": torch.__version__,
            "bench_version": bench.__version__, "git_commit": git_commit(),
            "plugin_versions": canonical_json({comp.plugin: comp.plugin_version, bound.plugin: bound.plugin_version}),
            "started_at": datetime.now(timezone.utc),
        }

    def cells(self, job: Job) -> tuple[PluginConfig, str, list[tuple[PluginConfig, dict[str, Any]]]]:
        comp = self.compressors[job.compressor][job.point]
        artifact_id = self.artifact_id(job.task, job.seed, comp)
        return comp, artifact_id, [(b, self.base_row(job.task, job.seed, comp, b, artifact_id))
                                   for grid in self.bounds for b in grid]

    def write(self, rows: list[dict[str, Any]], result: JobResult) -> None:
        self.store.append(rows, f"{self.run_id}-{self.worker}", self._seq)
        self._seq += 1
        tally(rows, result)

    def failed_rows(self, rows: list[dict[str, Any]], error: str, tb: str | None = None) -> list[dict[str, Any]]:  # noqa: D401
        extras = canonical_json({"traceback": tb}) if tb else None
        return [{**row, "status": "failed", "error": error, "extras": extras} for row in rows]

    # ---------------------------------------------------------------------------------- running
    def jobs(self) -> list[Job]:
        return [Job(task, seed, i, j) for task in self.specs for seed in self.config.seeds
                for i, grid in enumerate(self.compressors) for j in range(len(grid))]

    def run(self) -> RunSummary:
        """Hand every job to the executor; each writes its own rows, the summary collects counts."""
        summary = RunSummary(self.run_id)
        done = frozenset(self.store.ok_cells())
        self.store.write_sidecar(self.run_id, self.sidecar())
        self.enter_in_ledger(done)
        bar = progress(total=self.n_cells(), desc="cells", leave=True)
        _WORKER_RUNNERS.clear()
        _WORKER_RUNNERS[self.run_id] = self  # jobs the executor runs in this process use this runner
        work = functools.partial(run_job, self.config, self.argv, self.run_id, done)
        try:
            for result in self.executor.execute(self.jobs(), work, bar.update):
                for key, value in result.counts.items():
                    summary.counts[key] = summary.counts.get(key, 0) + value
                summary.failures += result.failures
                summary.refuted += result.refuted
                summary.decode_seconds += result.decode_seconds
        finally:
            bar.close()
            self.close()
        return summary

    def close(self) -> None:
        if self.supervisor is not None:
            self.supervisor.close()
        if self.compressing is not None:
            self.compressing.close()
            self.compressing = None
        self.decoder.close()

    def supervise(self, job: Job, done: frozenset[str], tick: Callable[[int], Any] | None = None) -> JobResult:
        """Run ``job`` in this process's worker process, which is killed if a plugin overruns."""
        from bench.supervisor import JobSupervisor

        if self.supervisor is None:
            self.supervisor = JobSupervisor(self)
        return self.supervisor.run(job, done, tick or (lambda n: None))

    def run_job(self, job: Job, done: frozenset[str], report: Report | None = None) -> JobResult:
        """Compress, decode (from the prior alone), evaluate and bound one job, writing its rows."""
        report = report or Report()
        result = JobResult()
        waited = self.decoder.seconds
        try:
            return self._run_job(job, done, report, result)
        finally:
            result.decode_seconds = self.decoder.seconds - waited

    def _run_job(self, job: Job, done: frozenset[str], report: Report, result: JobResult) -> JobResult:
        comp, artifact_id, cells = self.cells(job)
        pending = [(b, row) for b, row in cells if row["cell_id"] not in done]
        if len(pending) < len(cells) and self.store.load_artifact_or_set_aside(artifact_id) is None:
            pending = cells  # the evidence of its finished cells is missing or damaged: redo them
        result.counts["cached"] = len(cells) - len(pending)
        result.cells = len(cells)
        report.tick(len(cells) - len(pending))
        if not pending:
            return result
        ledger_configs = self.ledger.count(self.sample_ids[job.task])
        try:
            task = self.task(job.task)
            reason = comp.instance().skip_reason(self.context(task, job.seed))
            if reason:
                rows = [{**row, "status": "skipped", "error": reason, "ledger_configs": ledger_configs}
                        for _, row in pending]
                self.write(rows, result)
                report.wrote(rows)
                report.tick(len(pending))
                return result
            report.phase(f"training the base model of {job.task}", None)
            self.compress(task, job.seed, None, None)  # trained (once, cached) where training is warm
            base_train, base_test = self.base_models.base_errors(task, job.seed)
            evaluated, measured, compress_seconds = self.obtain(task, job.seed, comp, artifact_id, report)
        except Exception as exc:
            error = str(exc) if isinstance(exc, CompressFailed) else f"{type(exc).__name__}: {exc}"
            tb = exc.tb if isinstance(exc, CompressFailed) else traceback.format_exc(limit=8)
            say(f"{job.task} seed={job.seed} {comp.name} {comp.params_json}: {error}")
            rows = self.failed_rows([{**row, "ledger_configs": ledger_configs} for _, row in pending], error, tb)
            self.write(rows, result)
            report.wrote(rows)
            report.tick(len(pending))
            return result
        finally:
            report.phase(None)
        c = evaluated.compressed
        n_params = count_params(evaluated.model)
        common = {
            "n_train": evaluated.n_train, "n_test": measured.n_test, "n_params": n_params,
            "n_prior": len(task.data.train) - evaluated.n_train,
            "prior_fraction": float(task.config["dataset_params"].get("prior_fraction", 0.0)),
            "n_params_kept": int(c.stats.get("n_params_kept", n_params)),
            "message_bits": float(c.bits), "train_errors": evaluated.train_errors, "test_errors": measured.test_errors,
            "train_err": evaluated.train_err, "test_err": measured.test_err,
            "base_train_err": base_train, "base_test_err": base_test, "compress_seconds": compress_seconds,
            "compression_ratio": 32.0 * n_params / max(c.bits, 1),
            "flops": inference_flops(evaluated.model, task.data.input_shape),
            "base_flops": inference_flops(seeded_model_factory(task, job.seed, self.device)(), task.data.input_shape),
            "model_digest": state_digest(evaluated.model), "ledger_configs": ledger_configs,
            "train_ce": measured.train_ce, "test_ce": measured.test_ce,
        }
        for bound, row in pending:
            row.update(common)
            report.phase(f"bound {bound.name}", self.config.cell_timeout)
            row.update(self.run_bound(task, job.seed, bound, evaluated, measured,
                                      self.config_code(job.task, job.seed, comp, bound)))
            report.phase(None)
            self.write([row], result)
            report.wrote([row])
            report.tick(1)
        return result

    def enter_in_ledger(self, done: frozenset[str]) -> None:
        """Record every configuration this run will evaluate, before any of them touches the data (the
        record of the search, shown beside the headline; the configuration code is what pays for it)."""
        entries = []
        for job in self.jobs():
            comp, artifact_id, cells = self.cells(job)
            sample = self.sample_ids[job.task]
            entries += [
                {"sample": sample, "config": config_key(artifact_id, b.name, b.version, b.params, self.config.delta),
                 "task": job.task, "seed": job.seed, "compressor": comp.name, "compressor_params": comp.params,
                 "bound": b.name, "bound_params": b.params, "delta": self.config.delta, "run_id": self.run_id}
                for b, row in cells if row["cell_id"] not in done]
        self.ledger.record(f"{self.run_id}-{self.worker}", entries)

    def obtain(self, task: TaskInstance, seed: int, comp: PluginConfig, artifact_id: str,
               report: Report) -> tuple[Evaluated, Measured, float]:
        """The evaluated artifact (from the kept message, or compressed now in a process of its own)
        decoded from the prior alone in a fresh process, its test errors and its compression time."""
        limit = self.config.cell_timeout
        prior = prior_spec(task, seed, self.device, self.base_models)  # trains a data-dependent prior here
        loaded = self.store.load_artifact_or_set_aside(artifact_id)
        own_outputs = own_state = None
        if loaded is not None:
            message, meta, layers = loaded
            compressed = Compressed(message=message, layers=layers, stats=meta.get("stats", {}),
                                    extras=meta.get("extras", {}), sections=meta.get("sections"))
            expected = meta["model_digest"]
            seconds = float(meta.get("compress_seconds", float("nan")))
        else:
            report.phase(f"compressor {comp.name}", limit)
            reply = self.compress(task, seed, comp, prior)
            compressed, expected, seconds = reply.compressed(), reply.digest, reply.seconds
            own_outputs, own_state = reply.outputs, reply.state
        report.phase(f"decoding and evaluating for compressor {comp.name}", limit)
        result = self.decoder.decode(comp.name, comp.version, comp.instance().decoder_side(comp.params),
                                     compressed.message, prior, limit, evaluation_inputs(task))
        decoded, digest = result.model, result.digest
        if digest != expected:
            why = first_difference(_State(own_state), decoded) if own_state is not None else "its digest is not the stored one"
            raise ContractError(f"compressor '{comp.name}': the model decoded from the message and the prior alone "
                                f"is not the compressor's model ({why})")
        if compressed.sections is not None:
            check_sections(compressed.message, compressed.sections, comp.name)
        if compressed.layers:
            check_layers(compressed.layers, decoded, comp.name)
        evaluated, measured, outputs = evaluate(decoded, compressed, task, result.outputs)
        if own_outputs is not None:
            check_same_outputs(own_outputs, outputs, f"compressor '{comp.name}'")
        if loaded is None:
            self.store.save_artifact(artifact_id, compressed.message, {
                "artifact_id": artifact_id, "task": task.config, "seed": seed, "compressor": comp.name,
                "compressor_version": comp.version, "compressor_params": comp.params,
                "device": self.device.type, "stats": compressed.stats, "extras": compressed.extras,
                "sections": compressed.sections, "compress_seconds": seconds, "bits": compressed.bits,
                "sha256": hashlib.sha256(compressed.message).hexdigest(), "model_digest": digest,
            }, compressed.layers)
        return evaluated, measured, seconds

    def compress(self, task: TaskInstance, seed: int, comp: PluginConfig | None, prior: Any) -> "CompressReply":
        """Run ``compress`` in this worker's compressing process (forked from the zygote; never this one).
        ``comp = None``: train the task's base model there (the worker then loads it from the cache)."""
        from bench.compressing import CompressRequest

        name = comp.name if comp is not None else "the base model"
        request = CompressRequest(spec=self.specs[task.name], seed=seed, device=str(self.device),
                                  delta=self.config.delta, compressor=comp and comp.name,
                                  params=comp.params if comp is not None else {}, prior=prior,
                                  limit=self.config.cell_timeout,
                                  data_dir=str(self.config.data_dir) if self.config.data_dir else None,
                                  download=self.config.download)
        if self.compressing is None or not self.compressing.alive():
            self.decoder.start(fork=self.device.type == "cpu")
            self.compressing = self.decoder.spawn("compressor", None)
        try:
            self.compressing.conn.send(request)
            _, data = self.compressing.receive(None)
        except ChildDied as exc:
            self.compressing = None
            raise CompressFailed(f"WorkerDied: the compressing process of '{name}' died ({exc})", None) from None
        reply = pickle.loads(data)
        if not reply.ok:
            raise CompressFailed(reply.error, reply.traceback)
        return reply

    def run_bound(self, task: TaskInstance, seed: int, bound: PluginConfig, evaluated: Evaluated,
                  measured: Measured, code: Coded) -> dict[str, Any]:
        config_bits = float(code.length)
        ctx = self.context(task, seed, config_bits, role="bound")
        limit = self.config.cell_timeout
        try:
            instance = bound.instance()
            reason = instance.skip_reason(evaluated, ctx)
            if reason:
                return {"status": "skipped", "error": reason}
            start = time.perf_counter()
            with time_limit(limit, f"bound {bound.name}"):
                result = instance.compute(evaluated, ctx)
                seconds = time.perf_counter() - start
                check_bound_result(result, bound.name, instance.bound_kind, evaluated, ctx.delta, config_bits)
                cols = bound_columns(result, evaluated, seconds, ctx.delta, config_bits)
                cols.update(measure_target(task, seed, result, measured, ctx.delta))
        except BoundSkipped as exc:
            return {"status": "skipped", "error": str(exc) or "the bound does not apply"}
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            say(f"{task.name} seed={seed} bound {bound.name}: {error}")
            return {"status": "failed", "error": error,
                    "extras": canonical_json({"traceback": traceback.format_exc(limit=8)})}
        cols["extras"] = canonical_json({"bound": result.extras, "stats": evaluated.compressed.stats,
                                         "config": code.itemized()})
        return cols

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


def evaluation_inputs(task: TaskInstance) -> dict[str, torch.Tensor]:
    """The inputs the decoded model is evaluated on, without their labels: ``S_bound`` and the test split."""
    return {"train": task.data.bound_split().x, "test": task.data.test.x}


def evaluate(decoded: nn.Module, compressed: Compressed, task: TaskInstance,
             outputs: dict[str, torch.Tensor] | None = None) -> tuple[Evaluated, Measured, torch.Tensor]:
    """Exact error counts of the decoded model: training (what bounds see, on ``S_bound``) and test (the
    harness's), from its ``outputs`` on ``evaluation_inputs`` (computed in the decoding process; here
    when not given), and the training outputs themselves."""
    decoded.eval()
    data = task.data
    sample = data.bound_split()  # the training error a bound uses is on S_bound
    outputs = outputs or {name: predict(decoded, x).detach() for name, x in evaluation_inputs(task).items()}
    train_out, test_out = outputs["train"], outputs["test"]
    train_ce = test_ce = None
    if data.task_type == "classification":
        train_errors, train_ce = _errors_and_ce(train_out, sample.y)
        test_errors, test_ce = _errors_and_ce(test_out, data.test.y)
        train_err, test_err = train_errors / len(sample), test_errors / len(data.test)
    else:
        train_errors, test_errors = None, None
        train_err, test_err = (float(torch.nn.functional.mse_loss(out.double().cpu(), y.double().cpu()))
                               for out, y in ((train_out, sample.y), (test_out, data.test.y)))
    if not (math.isfinite(train_err) and math.isfinite(test_err)):
        raise FloatingPointError(f"decoded model has non-finite error (train {train_err}, test {test_err})")
    return (Evaluated(compressed, decoded, train_errors, len(sample), train_err),
            Measured(test_errors, len(data.test), test_err, train_ce, test_ce), train_out.float().cpu())


def _errors_and_ce(outputs: torch.Tensor, y: torch.Tensor) -> tuple[int, float]:
    """Misclassified examples (an exact integer) and the mean cross-entropy in nats (float64)."""
    outputs, y = outputs.cpu(), y.cpu()
    errors = int((outputs.argmax(dim=1) != y).sum())
    ce = float(torch.nn.functional.cross_entropy(outputs.double(), y, reduction="sum")) / max(len(y), 1)
    return errors, ce


def measure_target(task: TaskInstance, seed: int, result: BoundResult, measured: Measured,
                   delta: float) -> dict[str, Any]:
    """The test error of what the row certifies, measured by the harness, and whether it refutes the
    row. A stochastic target is sampled with the harness's own generator, one draw per example."""
    if result.target == "stochastic" and task.data.task_type == "classification":
        errors, trials = posterior_error_count(result.posterior, task.data.test,
                                               seeded_generator(seed, stream_offset("harness.target-test")))
        rate = errors / trials
    else:
        errors, trials, rate = measured.test_errors, measured.n_test, measured.test_err
    if measured.test_errors is None:  # regression: no counts, nothing to refute with
        errors, trials = None, None
    return target_columns(errors, trials, rate, result.error_bound, result.kind, delta)


def tally(rows: list[dict[str, Any]], result: JobResult) -> None:
    for row in rows:
        result.counts[row["status"]] = result.counts.get(row["status"], 0) + 1
        where = f"{row['task']} seed={row['seed']} {row['compressor']} {row['bound']} (cell {row['cell_id']})"
        if row["status"] == "failed":
            result.failures.append(f"{where}: {row['error']}")
        if row.get("refuted"):
            result.refuted.append(f"{where}: certificate {row['error_bound']:.4f} is below the test error "
                                  f"{row['target_test_err']:.4f} of its target beyond chance at δ")


_WORKER_RUNNERS: dict[str, Runner] = {}


def run_job(config: RunConfig, argv: list[str], run_id: str, done: frozenset[str], job: Job,
            tick: Callable[[int], Any] | None = None) -> JobResult:
    """Run one job under supervision from this process (a picklable entry point for executors that
    run jobs elsewhere). Each process builds its own runner for the run once."""
    from bench.registry import load_registry

    if run_id not in _WORKER_RUNNERS:
        _WORKER_RUNNERS.clear()
        _WORKER_RUNNERS[run_id] = Runner(config, load_registry(), argv, run_id=run_id)
    return _WORKER_RUNNERS[run_id].supervise(job, done, tick)
