"""Where a run's time goes. Each process that runs jobs keeps a ``Stopwatch`` of named phases (the base
model, each compressor, decoding, evaluating, each bound, the targets' Monte Carlo); each job reports
the seconds it added, and ``bench run`` sums them into the table it prints at the end, keeps in the
run's sidecar, and the report shows. Without it, finding what a slow profile spends its time on meant
reading rows by hand."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator


class Stopwatch:
    """Seconds by phase. Phases nest exclusively: a phase inside another (decoding inside evaluating,
    the Monte Carlo inside a bound) is counted in its own line only, so the lines add up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._inner: list[float] = []  # per open phase: the seconds of the phases inside it

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            inner = self._inner.pop()
            self.add(name, elapsed - inner)
            if self._inner:
                self._inner[-1] += elapsed

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def since(self, before: dict[str, float]) -> dict[str, float]:
        """What was added since ``before`` (a copy of ``seconds`` taken earlier)."""
        return {k: v - before.get(k, 0.0) for k, v in self.seconds.items() if v - before.get(k, 0.0) > 0}


#: The order of the table: the fixed phases first, then compressors and bounds by name.
_ORDER = ("base model", "data-dependent prior", "compress", "decode", "evaluate", "bound", "targets' Monte Carlo")
REST = "rest (start-up, claims, writing rows)"


def _rank(name: str) -> tuple[int, str]:
    for i, prefix in enumerate(_ORDER):
        if name == prefix or name.startswith(prefix + " "):
            return i, name
    return len(_ORDER), name


def breakdown(phases: dict[str, float], wall: float, local: bool) -> dict[str, float]:
    """The phases in table order, with the rest of the wall time when the jobs ran in this run's own
    worker (on a cluster the phases are summed over workers and can exceed the wall time)."""
    out = {name: phases[name] for name in sorted(phases, key=_rank)}
    if local:
        out[REST] = max(0.0, wall - sum(phases.values()))
    return out


def render(table: dict[str, float], wall: float) -> str:
    total = sum(table.values()) or 1.0
    width = max([len(name) for name in table] + [5])
    lines = [f"where the time went ({wall:.1f} s wall):", f"  {'phase':<{width}}  {'seconds':>8}  {'share':>6}"]
    lines += [f"  {name:<{width}}  {seconds:8.1f}  {100 * seconds / total:5.1f} %" for name, seconds in table.items()]
    return "\n".join(lines)
