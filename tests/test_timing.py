"""The time breakdown: phases nest exclusively (so the lines add up to the time spent), the table keeps
a fixed order, and a real run prints it, keeps it in its sidecar and shows it in the report."""

from __future__ import annotations

import json

import pytest

import bench.timing as timing
from bench.timing import REST, Stopwatch, breakdown, render


@pytest.fixture
def clock(monkeypatch):
    """A clock that moves only when the test says."""
    now = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: now[0])
    return now


def test_nested_phases_count_once(clock):
    watch = Stopwatch()
    with watch.phase("evaluate"):
        clock[0] += 1.0
        with watch.phase("decode"):
            clock[0] += 3.0
        clock[0] += 0.5
    with watch.phase("bound mi"):
        clock[0] += 2.0
        with watch.phase("targets' Monte Carlo"):
            clock[0] += 0.25
    assert watch.seconds == {"evaluate": 1.5, "decode": 3.0, "bound mi": 2.0, "targets' Monte Carlo": 0.25}
    assert sum(watch.seconds.values()) == clock[0]  # the lines add up to the time spent
    before = dict(watch.seconds)
    with watch.phase("decode"):
        clock[0] += 1.0
    assert watch.since(before) == {"decode": 1.0}


def test_a_phase_that_raises_is_still_counted(clock):
    watch = Stopwatch()
    with pytest.raises(RuntimeError):
        with watch.phase("bound hessian"):
            clock[0] += 2.0
            raise RuntimeError("plugin failed")
    assert watch.seconds == {"bound hessian": 2.0}


def test_the_table_order_and_the_rest():
    phases = {"bound occam": 1.0, "decode": 2.0, "compress id": 5.0, "base model": 4.0, "targets' Monte Carlo": 1.0,
              "bound catoni": 1.0, "compress dense": 1.0, "evaluate": 1.0}
    table = breakdown(phases, wall=20.0, local=True)
    assert list(table) == ["base model", "compress dense", "compress id", "decode", "evaluate", "bound catoni",
                           "bound occam", "targets' Monte Carlo", REST]
    assert table[REST] == 4.0
    assert REST not in breakdown(phases, wall=20.0, local=False)  # on a cluster phases are summed over workers
    text = render(table, 20.0)
    assert "compress id" in text and "25.0 %" in text  # 5 of 20 s


def test_a_run_prints_keeps_and_shows_its_time_table(workspace, run_bench):
    from bench import report

    done = run_bench("run", "--compressors", "dense,quantize", "--bounds", "occam", "--no-leaderboard",
                     "--set", "compressor.quantize.levels=4", cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert "where the time went" in done.stderr
    [sidecar] = (workspace / "results" / "_runs").glob("*.json")
    table = json.loads(sidecar.read_text())["time_breakdown"]
    names = [name for name, _ in table["phases"]]
    for phase in ("base model", "compress dense", "compress quantize", "decode", "evaluate", "bound occam", REST):
        assert phase in names, names
    assert abs(sum(s for _, s in table["phases"]) - table["wall_seconds"]) < 1e-6
    for name, _ in table["phases"]:
        assert name in done.stderr
    page = report.build(workspace / "results", workspace / "page").read_text()
    assert "Where the time went" in page and "compress quantize" in page
