"""The cluster path as a lab uses it: ``bench run --executor dask`` against a scheduler and two workers
started with dask's own command-line tools, sharing one results folder and one model cache, and a
worker killed with SIGKILL while it holds a job."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pandas as pd
import pytest

from dask_cli_cluster import CliCluster
from test_faults import CELLS, GRID, claims_of, counts, one_row_per_cell

pytest.importorskip("distributed")
pytestmark = pytest.mark.slow


def cluster_run(bench_script, workspace, cluster, *extra) -> subprocess.Popen:
    return subprocess.Popen([str(bench_script), "run", *GRID, "--executor", "dask", "--set",
                             f'executor.address="{cluster.address}"', *extra], cwd=workspace,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_a_run_on_a_scheduler_and_two_worker_processes(third_party, workspace, bench_script):
    # the workers run elsewhere (their own folder): paths reach them absolute
    with CliCluster(workers=2, cwd=workspace / "cluster") as cluster:
        run = cluster_run(bench_script, workspace, cluster)
        _, err = run.communicate(timeout=600)
        assert run.returncode == 0, err + cluster.log_text()
    assert counts(err)["ok"] == CELLS
    df = one_row_per_cell(workspace / "results")
    # executor.threads (default 1) reaches the processes that compress, not only the dask workers (no
    # nanny here, so nothing else sets OMP_NUM_THREADS): two full thread teams on two cores ran 6x slower
    assert {json.loads(e)["stats"]["torch_threads"] for e in df["extras"]} == {1}
    assert not list((workspace / "cluster").glob("results"))


def test_a_worker_killed_while_it_holds_a_job(third_party, workspace, bench_script):
    results = workspace / "results"
    with CliCluster(workers=2, cwd=workspace / "cluster") as cluster:
        pids = {proc.pid for proc in cluster.workers}
        run = cluster_run(bench_script, workspace, cluster, "--set", "compressor.toy-sign.delay=2")
        deadline, held = time.time() + 300, []
        while time.time() < deadline and not held:
            held = [path for pid in pids for path in claims_of(results, pid)]
            time.sleep(0.02)
        assert held, "no worker took a job"
        victim = json.loads(held[0].read_text())["pid"]
        cluster.kill_worker(victim)  # mid-job: its compressor sleeps 2 s
        killed = time.time()
        _, err = run.communicate(timeout=600)
        recovered = time.time() - killed
        assert run.returncode == 0, err + cluster.log_text()
    df = one_row_per_cell(results)
    assert not list((results / "_claims").glob("*.*"))
    print(f"FAULT worker-killed: run done {recovered:.1f} s after the kill of worker pid {victim}; "
          f"cells {len(df)}, lost 0, duplicated {len(df) - df['cell_id'].nunique()}")
