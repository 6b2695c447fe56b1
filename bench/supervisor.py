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
from typing import Any, Callable

from bench.api.jobs import Job, JobResult, Tick
from bench.children import Child, ChildDied

#: What to do when a job's worker died or was killed during ``what``: write ``failed`` rows for the
#: job's unfinished cells with the error, and return the job's result. (job, done, written, seen, error)
Abort = Callable[[Job, frozenset[str], set[str], JobResult, str], JobResult]


def grace(limit: float) -> float:
    """How long past its limit a phase may run before its process is killed (SIGALRM gets first go)."""
    return 5.0 + 0.1 * limit


class JobSupervisor:
    """The parent's side: one worker process, reused across jobs, replaced after a kill or a crash.
    ``payload`` is what a worker needs to build the run's runner; ``abort`` writes what a killed job
    leaves unfinished."""

    def __init__(self, payload: dict[str, Any], abort: Abort, started: Child | None = None) -> None:
        self.payload, self.abort = payload, abort
        self.child = started  # a worker started early (``prestart``) still waits for the run's payload
        self.configured = False

    @staticmethod
    def prestart() -> Child:
        """A worker started before the run is configured, so that its imports overlap the parent's."""
        return Child("worker", None)

    def _worker(self) -> Child:
        if self.child is None or not self.child.alive():
            self.child, self.configured = Child("worker", self.payload), True
        elif not self.configured:
            self.child.conn.send(self.payload)
            self.configured = True
        return self.child

    def run(self, job: Job, done: frozenset[str], tick: Tick) -> JobResult:
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
                return self._abort(job, done, written, seen, tick, f"WorkerDied: {exc} during {what}")
            if not got:
                child.kill()
                self.child = None
                return self._abort(job, done, written, seen, tick,
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
                seen.record(rows)
            elif kind == "done":
                return message[1]

    def _abort(self, job: Job, done: frozenset[str], written: set[str], seen: JobResult, tick: Tick,
               error: str) -> JobResult:
        before = len(seen.failures)
        result = self.abort(job, done, written, seen, error)
        tick(len(result.failures) - before)  # the cells it failed
        return result

    def kill(self) -> None:
        """End the worker now, with whatever it was doing (a run that is interrupted)."""
        if self.child is not None:
            self.child.kill()
            self.child = None

    def close(self) -> None:
        if self.child is not None:
            self.child.close()
            self.child = None


class ChannelReport:
    """The worker's side of a job's reports (``bench.api.jobs.JobReport``), sent to its supervisor."""

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


