"""Executors: the dask executor runs jobs in worker processes and writes the same rows as local."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.cli import main

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
