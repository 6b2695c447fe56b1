"""The job protocol between the harness and an executor: a run is a list of ``Job``s, each one
compressor configuration on one (task, seed) with all its bound cells; running one (``Work``) writes its
rows and returns a ``JobResult``; while it runs it tells whoever supervises it what it is doing through a
``JobReport``. Plain data and callables only, so executors can ship jobs to other processes or machines."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

Tick = Callable[[int], Any]  # advance the run's progress bar by n cells


@dataclass(frozen=True)
class Job:
    """One unit of work: one compressor configuration on one (task, seed), with all its bound cells."""

    task: str
    seed: int
    compressor: int  # index into the run's compressor grids
    point: int  # index into that compressor's grid


@dataclass
class JobResult:
    """What a finished job reports: cells by status, failures and refutations (one line each)."""

    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    refuted: list[str] = field(default_factory=list)
    cells: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # by phase (bench.timing): where the time went
    deferred: list[Job] = field(default_factory=list)  # claimed by another live process: try again later

    def record(self, rows: list[dict[str, Any]]) -> None:
        """Count rows by status, and note each failed or refuted cell in one line."""
        for row in rows:
            self.counts[row["status"]] = self.counts.get(row["status"], 0) + 1
            where = f"{row['task']} seed={row['seed']} {row['compressor']} {row['bound']} (cell {row['cell_id']})"
            if row["status"] == "failed":
                self.failures.append(f"{where}: {row['error']}")
            if row.get("refuted"):
                self.refuted.append(f"{where}: certificate {row['error_bound']:.4f} is below the test error "
                                    f"{row['target_test_err']:.4f} of its target beyond chance at δ")

    def add(self, other: "JobResult") -> None:
        for key, value in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + value
        self.failures += other.failures
        self.refuted += other.refuted
        self.cells += other.cells
        for key, value in other.seconds.items():
            self.seconds[key] = self.seconds.get(key, 0.0) + value
        self.deferred += other.deferred


class Work(Protocol):
    """Runs one job where it is called (picklable: executors may call it in other processes)."""

    def __call__(self, job: Job, tick: Tick | None = None) -> JobResult: ...


class JobReport:
    """What a running job tells whoever supervises it; nothing, when it runs in place."""

    def tick(self, n: int) -> None: ...

    def phase(self, what: str | None, limit: float | None = None) -> None: ...

    def wrote(self, rows: list[dict[str, Any]]) -> None: ...
