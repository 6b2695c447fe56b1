"""Running jobs where they can be stopped: every executor's time limit, whatever a plugin does.

A SIGALRM only interrupts Python code on the main thread; a plugin stuck in C code, or any plugin under
an executor that runs jobs on worker threads (dask), would never return. So each process that runs
jobs (``bench run`` itself, or each dask worker) hands them to a *worker process* of its own
(``bench.children``) and watches it: the worker announces every phase (compress, decode, each bound)
with its time limit, and when a phase overruns its limit by more than a grace period the worker is
killed with everything it was doing, the job's unfinished cells get ``failed`` rows that say so, and
the next job starts a fresh worker. Inside the worker, SIGALRM still stops Python code on time and
cleanly, without losing the process.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable

from bench.children import Child, ChildDied

if TYPE_CHECKING:
    from bench.runner import Job, JobResult, Runner


def grace(limit: float) -> float:
    """How long past its limit a phase may run before its process is killed (SIGALRM gets first go)."""
    return 5.0 + 0.1 * limit


class JobSupervisor:
    """The parent's side: one worker process, reused across jobs, replaced after a kill or a crash."""

    def __init__(self, runner: "Runner", started: Child | None = None) -> None:
        self.runner = runner
        self.child = started  # a worker started early (``prestart``) still waits for the run's payload
        self.configured = False

    @staticmethod
    def prestart() -> Child:
        """A worker started before the run is configured, so that its imports overlap the parent's."""
        return Child("worker", None)

    def _worker(self) -> Child:
        r = self.runner
        payload = {"config": r.config, "argv": r.argv, "run_id": r.run_id}
        if self.child is None or not self.child.alive():
            self.child, self.configured = Child("worker", payload), True
        elif not self.configured:
            self.child.conn.send(payload)
            self.configured = True
        return self.child

    def run(self, job: "Job", done: frozenset[str], tick: Callable[[int], Any]) -> "JobResult":
        from bench.runner import JobResult, tally

        child = self._worker()
        child.conn.send((job, done))
        seen = JobResult()  # what the worker reported, kept in case it never finishes
        written: set[str] = set()
        what, limit, deadline = "the job", None, None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                got, message = child.receive(timeout)
            except ChildDied as exc:
                self.child = None
                return self._fail_rest(job, done, written, seen, tick, f"WorkerDied: {exc} during {what}")
            if not got:
                child.kill()
                self.child = None
                return self._fail_rest(job, done, written, seen, tick,
                                       f"CellTimeout: {what} exceeded its time limit of {limit:g} s and did not "
                                       f"stop; its worker process was killed")
            kind = message[0]
            if kind == "tick":
                tick(message[1])
            elif kind == "phase":
                what, limit = message[1] or "the job", message[2]
                deadline = None if limit is None else time.monotonic() + limit + grace(limit)
            elif kind == "wrote":
                rows = message[1]
                written.update(row["cell_id"] for row in rows)
                tally(rows, seen)
            elif kind == "done":
                return message[1]

    def _fail_rest(self, job: "Job", done: frozenset[str], written: set[str], seen: "JobResult",
                   tick: Callable[[int], Any], error: str) -> "JobResult":
        from bench.progress import say

        _, _, cells = self.runner.cells(job)
        rest = [row for _, row in cells if row["cell_id"] not in done and row["cell_id"] not in written]
        say(f"{job.task} seed={job.seed}: {error}")
        if rest:
            self.runner.write(self.runner.failed_rows(rest, error), seen)
            tick(len(rest))
        seen.cells = len(cells)
        seen.counts["cached"] = sum(1 for _, row in cells if row["cell_id"] in done)
        return seen

    def close(self) -> None:
        if self.child is not None:
            self.child.close()
            self.child = None


class _ChannelReport:
    """The worker's side of the reports (``bench.runner.Report``), sent to the supervisor."""

    def __init__(self, conn) -> None:
        self.conn = conn

    def tick(self, n: int) -> None:
        if n:
            self.conn.send(("tick", n))

    def phase(self, what: str | None, limit: float | None = None) -> None:
        self.conn.send(("phase", what, limit))

    def wrote(self, rows: list[dict[str, Any]]) -> None:
        keep = ("cell_id", "status", "error", "task", "seed", "compressor", "bound", "refuted", "error_bound",
                "target_test_err")
        self.conn.send(("wrote", [{k: row.get(k) for k in keep} for row in rows]))


def gpu_present() -> bool:
    """Whether this machine has an NVIDIA device (checked without initializing CUDA)."""
    import os

    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0"))


def serve(conn, payload: dict[str, Any]) -> None:
    """The worker process: build the run's runner once, then run the jobs it is sent until EOF."""
    from bench.registry import load_registry
    from bench.runner import Runner
    from bench.sandbox import Decoder

    registry = load_registry()
    # The zygote that compressing and decoding processes are forked from starts now, before the run's
    # configuration arrives, so that its imports overlap the parent's set-up. Nothing has been computed
    # here yet, so it can be a fork of this process, unless a GPU is present: a process that has
    # touched CUDA must not fork, and the device is not known yet.
    decoder = Decoder()
    decoder.start(fork=not gpu_present())
    if payload is None:  # started early: the run's configuration comes now
        payload = conn.recv()
    runner = Runner(payload["config"], registry, payload["argv"], run_id=payload["run_id"])
    runner.decoder = decoder
    report = _ChannelReport(conn)
    try:
        while True:
            job, done = conn.recv()
            result = runner.run_job(job, done, report)
            conn.send(("done", result))
    finally:
        runner.close()
