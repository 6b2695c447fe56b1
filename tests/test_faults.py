"""Faults a shared results folder brings, through the real ``bench`` entry point: concurrent runs,
runs killed mid-cell, owners on other machines that stopped renewing their claims. Each test counts
what the fault table in the README reports: cells lost, rows duplicated, seconds to recover."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pandas as pd
import pytest

from bench.results import ResultsStore

pytestmark = pytest.mark.slow

GRID = ["--tasks", "toy-digits", "--compressors", "toy-sign", "--bounds", "occam,catoni", "--seeds", "0,1",
        "--set", "compressor.toy-sign.variant=[0,1]", "--no-leaderboard"]  # 2 x 2 x 2 = 8 cells in 4 jobs
CELLS = 8


def start(bench_script, workspace, *extra, log=None):
    return subprocess.Popen([str(bench_script), "run", *GRID, *extra], cwd=workspace, env={**os.environ},
                            stdout=subprocess.DEVNULL if log else subprocess.PIPE,
                            stderr=open(log, "w") if log else subprocess.PIPE, text=True)


def counts(stderr: str) -> dict[str, int]:
    [line] = [l for l in stderr.splitlines() if " finished in " in l]
    return {k: int(v) for v, k in re.findall(r"(\d+) (ok|failed|skipped|cached)", line)}


def one_row_per_cell(results) -> pd.DataFrame:
    df = pd.read_parquet(results)
    assert len(df) == CELLS and df["cell_id"].nunique() == CELLS, "a cell lost or duplicated"
    assert (df["status"] == "ok").all(), df.loc[df["status"] != "ok", "error"].tolist()
    return df


def claims_of(results, pid: int) -> list:
    out = []
    for path in (results / "_claims").glob("*.*"):
        try:
            if json.loads(path.read_text())["pid"] == pid:
                out.append(path)
        except (OSError, ValueError):
            pass
    return out


def test_two_runs_started_together_compute_every_cell_once(third_party, workspace, bench_script):
    delay = ["--set", "compressor.toy-sign.delay=0.5"]
    a, b = start(bench_script, workspace, *delay), start(bench_script, workspace, *delay)
    outs = [p.communicate(timeout=600) for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outs
    got = [counts(err) for _, err in outs]
    assert sum(c["ok"] for c in got) == CELLS  # each cell computed by exactly one of them
    assert sum(c["cached"] for c in got) == CELLS  # and found done by the other
    one_row_per_cell(workspace / "results")


def test_a_run_killed_mid_cell_leaves_its_cell_to_the_other(third_party, workspace, bench_script):
    delay = ["--set", "compressor.toy-sign.delay=2"]
    a = start(bench_script, workspace, *delay, log=workspace / "a.log")
    b = start(bench_script, workspace, *delay, log=workspace / "b.log")
    results = workspace / "results"
    deadline = time.time() + 300
    while time.time() < deadline and not claims_of(results, a.pid):
        time.sleep(0.02)
    [held] = claims_of(results, a.pid)
    abandoned = held.name.rsplit(".", 1)[0]  # the artifact of the job A holds
    a.send_signal(signal.SIGKILL)  # A is inside that job: killed mid-cell
    killed = time.time()
    a.wait()
    recovered = None
    while b.poll() is None or recovered is None:
        if recovered is None and (ResultsStore(results).read()["artifact_id"] == abandoned).sum() == 2:
            recovered = time.time() - killed  # the abandoned job's cells are done
        if b.poll() is not None and recovered is None:
            break
        time.sleep(0.1)
    err = (workspace / "b.log").read_text()
    assert b.returncode == 0, err
    df = one_row_per_cell(results)
    assert "took over" in err  # B computed A's abandoned job
    assert not list((results / "_claims").glob("*.*"))  # nothing left claimed
    assert recovered is not None
    print(f"FAULT kill-one-of-two: abandoned job done {recovered:.1f} s after the kill (a 2 s job); "
          f"rows by run: {sorted(df['run_id'].value_counts().tolist())}")


def test_a_claim_not_renewed_from_another_machine_is_taken_over(third_party, workspace, run_bench):
    """An owner on another host cannot be asked whether it is alive: its claim is taken over once it
    has not been renewed for ``claim_timeout`` seconds."""
    from bench.config import load_config
    from bench.planning import Plan, Stamp
    from bench.registry import load_registry

    (workspace / "bench.toml").write_text((workspace / "bench.toml").read_text().replace(
        "[profiles.default]\n", "[profiles.default]\nclaim_timeout = 3\n"))
    # the first job's claim, held by a process on another machine that has stopped renewing it
    import bench.commands.run as run_command
    import argparse

    parser = argparse.ArgumentParser()
    run_command.configure(parser)
    cfg = run_command.build_config(parser.parse_args(GRID))
    assert cfg.claim_timeout == 3
    plan = Plan(cfg, load_registry(), "probe", Stamp("cpu", "", "", ""))
    first = plan.cells(plan.jobs()[0])[1]
    claims = workspace / "results" / "_claims"
    claims.mkdir(parents=True)
    (claims / f"{first}.0").write_text(json.dumps({"host": "another-machine", "pid": 1, "run_id": "away"}))
    began = time.time()
    done = run_bench("run", *GRID, cwd=workspace)
    assert done.returncode == 0, done.stderr
    assert "took over" in done.stderr and "another-machine" in done.stderr
    assert time.time() - began >= 3 - 0.5  # it waited for the claim to go stale, not less
    one_row_per_cell(workspace / "results")
    print(f"FAULT stale-claim-elsewhere: run done in {time.time() - began:.1f} s with claim_timeout = 3 s")


SMALL = ["--compressors", "dense", "--bounds", "occam", "--no-leaderboard"]


def test_a_truncated_cache_entry_costs_one_retraining(workspace, run_bench, monkeypatch):
    """A base model cut to 100 bytes in the cache: one line names it, it is trained again, every cell
    is ok."""
    monkeypatch.setenv("BENCH_CACHE_DIR", str(workspace / "cache"))
    first = run_bench("run", *SMALL, cwd=workspace)
    assert first.returncode == 0, first.stderr
    [entry] = (workspace / "cache" / "models").glob("*.pt")
    entry.write_bytes(entry.read_bytes()[:100])
    began = time.time()
    healed = run_bench("run", *SMALL, "--results", "again", cwd=workspace)
    took = time.time() - began
    assert healed.returncode == 0, healed.stderr
    warnings = [l for l in healed.stderr.splitlines() if "damaged" in l]
    assert len(warnings) == 1 and str(entry) in warnings[0], healed.stderr
    assert "Traceback" not in healed.stderr and "Error" not in healed.stderr.replace(warnings[0], "")
    assert (pd.read_parquet(workspace / "again")["status"] == "ok").all()
    print(f"FAULT truncated-cache-entry: run with one retraining done in {took:.1f} s, cells failed 0")


def descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(todo.pop())], capture_output=True, text=True)
        children = {int(p) for p in found.stdout.split()}
        out |= children
        todo += children
    return out


def test_sigterm_mid_cell_stops_cleanly_and_the_next_run_resumes(third_party, workspace, bench_script):
    from bench.children import process_alive

    results = workspace / "results"
    delay = ["--set", "compressor.toy-sign.delay=2"]
    run = start(bench_script, workspace, *delay, log=workspace / "a.log")
    deadline = time.time() + 300
    while time.time() < deadline and not (ResultsStore(results).row_files() and claims_of(results, run.pid)):
        time.sleep(0.05)  # a job finished, and the next one is being computed
    helpers = descendants(run.pid)
    assert helpers, "no worker process to end"
    run.send_signal(signal.SIGTERM)
    sent = time.time()
    run.wait(timeout=60)
    stopped = time.time() - sent
    err = (workspace / "a.log").read_text()
    assert run.returncode == 128 + signal.SIGTERM and "stopped by SIGTERM" in err, err
    assert "Traceback" not in err and "failed" not in err.split("results in results")[-1], err
    assert stopped < 4  # "within a few seconds"
    time.sleep(0.5)  # a child's death by its parent's is asynchronous
    assert not [pid for pid in helpers if process_alive(pid)], "a worker or decoder outlived the run"
    df = pd.read_parquet(results)
    assert (df["status"] == "ok").all() and df["cell_id"].is_unique  # no failed or partial row
    assert not list(results.rglob(".tmp-*")) and not list((results / "_claims").glob("*.*"))
    assert all((d / "meta.json").exists() for d in (results / "_artifacts").iterdir())  # no half artifact
    finished = len(df)
    again = start(bench_script, workspace, *delay)  # the same command
    out, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert counts(err)["ok"] == CELLS - finished, err  # resumed: only what was left is computed
    assert counts(err)["cached"] == finished
    one_row_per_cell(results)
    print(f"FAULT sigterm-mid-cell: stopped {stopped:.2f} s after SIGTERM, {len(helpers)} helper processes "
          f"ended, {finished} cells kept, {CELLS - finished} computed by the rerun, cells lost 0")
