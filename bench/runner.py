"""The runner: a run's plan (``bench.planning``) handed to an executor, one job at a time, one row per cell.

Each compressor configuration compresses once per (task, seed); every bound reuses the artifact. In the
``bench run`` process the runner only orchestrates: it writes the run's sidecar and ledger entries and
gives the executor a picklable ``work`` that runs a job under supervision (``bench.supervisor``: a
worker process, killed when a plugin overruns its time limit). In that worker the runner runs the job
(``run_job``): compress, decode and evaluate through ``bench.cell``, bound every cell, and write each
finished cell at once, atomically, so a killed run loses at most the cell in flight and running the
same command again skips the cells that have an ``ok`` row.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import secrets
import socket
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

import bench
from bench.api.contracts import TaskInstance
from bench.api.jobs import Job, JobReport, JobResult, Tick
from bench.api.params import canonical_json
from bench.cache import ModelCache, default_cache_dir
from bench.claims import Claims
from bench.cell import CellRunner, CompressFailed, artifact_columns
from bench.config import RunConfig
from bench.environment import environment, git_commit, resolve_device
from bench.ledger import Ledger
from bench.planning import Plan, Stamp
from bench.priordiag import prior_columns
from bench.progress import progress, say
from bench.registry import Registry
from bench.results import ResultsStore
from bench.supervisor import JobSupervisor
from bench.tasks import BaseModels, instantiate_task, prior_spec
from bench.timing import breakdown


@dataclass
class RunSummary:
    run_id: str
    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "failed": 0, "skipped": 0, "cached": 0})
    failures: list[str] = field(default_factory=list)
    refuted: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # by phase, over every job (bench.timing)
    wall_seconds: float = 0.0

    @property
    def decode_seconds(self) -> float:
        return self.seconds.get("decode", 0.0)

    def time_table(self, local: bool) -> dict[str, float]:
        return breakdown(self.seconds, self.wall_seconds, local)


class Runner:
    def __init__(self, config: RunConfig, registry: Registry, argv: list[str] | None = None,
                 run_id: str | None = None, worker: Any = None) -> None:
        """``worker``: a worker process started early (``JobSupervisor.prestart``), to run the jobs."""
        self.config, self.registry, self.argv = config, registry, argv or []
        self.executor = registry.entry("executors", config.executor).obj(**config.executor_params)
        self.device = resolve_device(config.device, here=self.executor.runs_here())
        self.run_id = run_id or datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
        self.plan = Plan(config, registry, self.run_id,
                         Stamp(str(self.device), torch.__version__, bench.__version__, git_commit()))
        self.store = ResultsStore(config.results)
        self.store.prepare()
        self.claims = Claims(self.store.root / "_claims", self.run_id, config.claim_timeout)
        self.started = time.time()
        self.ledger = Ledger(config.results)
        self.base_models = BaseModels(ModelCache(default_cache_dir()), self.device, progress)
        self.cells = CellRunner(self.device, self.base_models, config.delta, config.cell_timeout,
                                str(config.data_dir) if config.data_dir else None, config.download)
        self.worker = f"{socket.gethostname()[:16]}-{os.getpid()}"
        self._tasks: dict[str, TaskInstance] = {}
        self._prestarted = worker
        self.supervisor: JobSupervisor | None = None  # made on first use

    def n_cells(self) -> int:
        return self.plan.n_cells()

    def task(self, name: str) -> TaskInstance:
        if name not in self._tasks:
            self._tasks[name] = instantiate_task(self.plan.specs[name], self.registry, self.config.data_dir,
                                                 self.config.download)
        return self._tasks[name]

    # ------------------------------------------------------------------- the bench run process
    def run(self) -> RunSummary:
        """Hand every job to the executor; each writes its own rows, the summary collects counts."""
        summary = RunSummary(self.run_id)
        self.store.sweep(self.claims)  # what a killed run of this host left half written
        done = frozenset(self.store.ok_cells())
        self.sidecar = self.plan.sidecar(self.argv, environment(self.device))
        self.store.write_sidecar(self.run_id, self.sidecar)
        self.ledger.record(f"{self.run_id}-{self.worker}", self.plan.ledger_entries(done))
        bar = progress(total=self.n_cells(), desc="cells", leave=True)
        _WORKER_RUNNERS.clear()
        _WORKER_RUNNERS[self.run_id] = self  # jobs the executor runs in this process use this runner
        work = functools.partial(run_job, self.shipped_config(), self.argv, self.run_id, self.started, done)
        try:
            total = JobResult()
            jobs = self.plan.jobs()
            while jobs:  # again, for the jobs another process held (JobResult.deferred)
                this_pass = JobResult()
                for result in self.executor.execute(jobs, work, bar.update):
                    this_pass.add(result)
                total.add(this_pass)
                jobs = this_pass.deferred
                if jobs:
                    self.wait_for_claims(jobs)
            for key, value in total.counts.items():
                summary.counts[key] = summary.counts.get(key, 0) + value
            summary.failures, summary.refuted = total.failures, total.refuted
            summary.seconds = total.seconds
            summary.wall_seconds = time.time() - self.started
            self.sidecar["time_breakdown"] = {"wall_seconds": summary.wall_seconds,
                                              "phases": list(summary.time_table(self.executor.runs_here()).items())}
            self.store.write_sidecar(self.run_id, self.sidecar)
        finally:
            bar.close()
            self.close()
        return summary

    def shipped_config(self) -> RunConfig:
        """The configuration as workers get it: folders absolute, since a worker (a dask worker, maybe
        on another machine that mounts the same folders) starts in a folder of its own."""
        resolve = lambda path: None if path is None else Path(path).resolve()  # noqa: E731
        return dataclasses.replace(self.config, results=resolve(self.config.results),
                                   data_dir=resolve(self.config.data_dir))

    def close(self) -> None:
        if self.supervisor is not None:
            self.supervisor.close()
        elif self._prestarted is not None:  # interrupted before its first job
            self._prestarted.kill()
        self.cells.close()

    def wait_for_claims(self, jobs: list[Job]) -> None:
        """Wait until another process releases (or abandons) the claim of one of ``jobs``."""
        names = [self.plan.cells(job)[1] for job in jobs]
        say(f"{len(jobs)} job(s) are being computed by another process; waiting for them")
        while not any(self.claims.is_free(name) for name in names):
            time.sleep(self.claims.interval)

    def supervise(self, job: Job, done: frozenset[str], tick: Tick | None = None) -> JobResult:
        """Claim ``job`` and run it in this process's worker process, which is killed if a plugin
        overruns. A job another live process has claimed comes back ``deferred``, to be tried again
        when its claim is free; cells finished elsewhere meanwhile are not computed again."""
        _, artifact_id, cells = self.plan.cells(job)
        claim = self.claims.take(artifact_id)
        if claim is None:
            return JobResult(deferred=[job])
        with claim:
            done = done | self.store.settled([row["cell_id"] for _, row in cells], self.started)
            if self.supervisor is None:
                payload = {"config": self.config, "argv": self.argv, "run_id": self.run_id}
                self.supervisor = JobSupervisor(payload, self.abort_job, self._prestarted)
            try:
                return self.supervisor.run(job, frozenset(done), tick or (lambda n: None))
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the worker ends first, then what it left
                self.supervisor.kill()
                self.store.discard_partial(artifact_id)
                self.store.sweep()
                raise

    def abort_job(self, job: Job, done: frozenset[str], written: set[str], seen: JobResult, error: str) -> JobResult:
        """What the supervisor does when a job's worker died or was killed: ``failed`` rows for the
        cells it had not written, with ``error``."""
        _, _, cells = self.plan.cells(job)
        rest = [row for _, row in cells if row["cell_id"] not in done and row["cell_id"] not in written]
        say(f"{job.task} seed={job.seed}: {error}")
        if rest:
            self.write(failed_rows(rest, error), seen)
        seen.cells = len(cells)
        seen.counts["cached"] = sum(1 for _, row in cells if row["cell_id"] in done)
        return seen

    # ------------------------------------------------------------------------------- a worker
    def write(self, rows: list[dict[str, Any]], result: JobResult) -> None:
        self.store.write_rows(rows)
        result.record(rows)

    def run_job(self, job: Job, done: frozenset[str], report: JobReport | None = None) -> JobResult:
        """Compress, decode (from the prior alone), evaluate and bound one job, writing its rows."""
        report = report or JobReport()
        result = JobResult()
        before = dict(self.cells.clock.seconds)
        try:
            return self._run_job(job, done, report, result)
        finally:
            result.seconds = self.cells.clock.since(before)

    def _finish(self, rows: list[dict[str, Any]], result: JobResult, report: JobReport) -> JobResult:
        self.write(rows, result)
        report.wrote(rows)
        report.tick(len(rows))
        return result

    def _run_job(self, job: Job, done: frozenset[str], report: JobReport, result: JobResult) -> JobResult:
        comp, artifact_id, cells = self.plan.cells(job)
        pending = [(b, row) for b, row in cells if row["cell_id"] not in done]
        if len(pending) < len(cells) and self.store.load_artifact_or_set_aside(artifact_id) is None:
            pending = cells  # the evidence of its finished cells is missing or damaged: redo them
        result.counts["cached"] = len(cells) - len(pending)
        result.cells = len(cells)
        report.tick(len(cells) - len(pending))
        if not pending:
            return result
        ledger_configs = self.ledger.count(self.plan.sample_ids[job.task])
        pending = [(b, {**row, "ledger_configs": ledger_configs}) for b, row in pending]
        try:
            task = self.task(job.task)
            reason = comp.instance().skip_reason(self.cells.context(task, job.seed))
            if reason:
                return self._finish([{**row, "status": "skipped", "error": reason} for _, row in pending], result,
                                    report)
            report.phase(f"training the base model of {job.task}", None)
            with self.cells.clock.phase("base model"):
                self.cells.compress(self.plan.specs[job.task], job.seed, None, {}, None)  # trained where training is warm
                base_train, base_test = self.base_models.base_errors(task, job.seed)
            with self.cells.clock.phase("data-dependent prior"):
                prior = prior_spec(task, job.seed, self.device, self.base_models)  # trains one here if the task has it
                prior_cols = prior_columns(task, job.seed, self.base_models, self.cells.delta)
            evaluated, measured, compress_seconds = self.cells.obtain(task, self.plan.specs[job.task], job.seed, comp,
                                                                      artifact_id, prior, self.store, report)
        except Exception as exc:
            error = str(exc) if isinstance(exc, CompressFailed) else f"{type(exc).__name__}: {exc}"
            tb = exc.tb if isinstance(exc, CompressFailed) else traceback.format_exc(limit=8)
            say(f"{job.task} seed={job.seed} {comp.name} {comp.params_text}: {error}")
            return self._finish(failed_rows([row for _, row in pending], error, tb), result, report)
        finally:
            report.phase(None)
        common = artifact_columns(task, job.seed, evaluated, measured, self.device)
        common.update(base_train_err=base_train, base_test_err=base_test, compress_seconds=compress_seconds, **prior_cols)
        for bound, row in pending:
            row.update(common)
            report.phase(f"bound {bound.name}", self.config.cell_timeout)
            row.update(self.cells.bound(task, job.seed, bound.name, bound.instance(), evaluated, measured,
                                        self.plan.config_code(job.task, job.seed, comp, bound)))
            report.phase(None)
            self._finish([row], result, report)
        return result


def failed_rows(rows: list[dict[str, Any]], error: str, tb: str | None = None) -> list[dict[str, Any]]:
    extras = canonical_json({"traceback": tb}) if tb else None
    return [{**row, "status": "failed", "error": error, "extras": extras} for row in rows]


_WORKER_RUNNERS: dict[str, Runner] = {}


def run_job(config: RunConfig, argv: list[str], run_id: str, started: float, done: frozenset[str], job: Job,
            tick: Tick | None = None) -> JobResult:
    """Run one job under supervision from this process (a picklable entry point for executors that
    run jobs elsewhere). Each process builds its own runner for the run once."""
    from bench.registry import load_registry

    if run_id not in _WORKER_RUNNERS:
        _WORKER_RUNNERS.clear()
        _WORKER_RUNNERS[run_id] = Runner(config, load_registry(), argv, run_id=run_id)
        _WORKER_RUNNERS[run_id].started = started
    return _WORKER_RUNNERS[run_id].supervise(job, done, tick)
