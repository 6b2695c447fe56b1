"""Executors: the dask executor runs jobs in worker processes and writes the same rows as local."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.cli import main
from dask_cli_cluster import free_port

pytest.importorskip("dask.distributed")


def test_dask_executor_matches_local(third_party, workspace):
    common = ["run", "--tasks", "toy-digits", "--compressors", "toy-sign", "--bounds", "occam,catoni",
              "--set", "compressor.toy-sign.variant=[0,1,2]", "--no-leaderboard"]
    assert main([*common, "--results", "local"]) == 0
    assert main([*common, "--results", "dask", "--executor", "dask", "--set", "executor.workers=2"]) == 0
    local = pd.read_parquet(workspace / "local").sort_values("cell_id").reset_index(drop=True)
    dask = pd.read_parquet(workspace / "dask").sort_values("cell_id").reset_index(drop=True)
    assert len(dask) == 6 and (dask["status"] == "ok").all()
    assert list(local["cell_id"]) == list(dask["cell_id"])
    for column in ("message_bits", "train_err", "test_err", "error_bound"):
        assert list(local[column]) == list(dask[column]), column
    # rerunning with either executor finds nothing left to do
    assert main([*common, "--results", "dask"]) == 0
    assert len(pd.read_parquet(workspace / "dask")) == 6


def test_unknown_executor_lists_the_known(workspace, capsys):
    assert main(["run", "--executor", "nope"]) == 2
    assert "unknown executor 'nope' (known: dask, local)" in capsys.readouterr().err


def test_dask_resources_are_parsed_once_at_construction(workspace, capsys):
    from bench_plugins.executors import job_resources

    assert job_resources("") == {} and job_resources("GPU=1, MEMORY=8e9") == {"GPU": 1.0, "MEMORY": 8e9}
    for bad in ("GPU", "GPU=0", "=1", "GPU=many"):
        assert main(["run", "--executor", "dask", "--set", f'executor.resources="{bad}"']) == 2
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "resources:" in err and f"'{bad}'" in err


def test_an_address_where_no_scheduler_answers_is_one_line(workspace, capsys, monkeypatch):
    monkeypatch.setenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "1s")
    import dask

    dask.config.refresh()
    try:
        port = free_port()  # nothing listens there
        assert main(["run", "--executor", "dask", "--set", f'executor.address="tcp://127.0.0.1:{port}"']) == 2
    finally:
        monkeypatch.delenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT")
        dask.config.refresh()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("bench run: error: executor 'dask': no scheduler answers at tcp://127.0.0.1:")
