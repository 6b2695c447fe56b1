"""Bound ``mi`` (seed 001 Theorem 1): the formula by hand, its decomposition, rows next to ``occam`` on
the same artifacts, a clear skip for regression, and ``bench verify``."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from bench.cli import main
from bench_plugins.mi import mi_generalization_term


def test_generalization_term_by_hand():
    # R = 1000 bits = 693.147 nats, n = 1000, σ = 1/2: sqrt(2 · 0.25 · 693.147 / 1000) = 0.588705
    assert mi_generalization_term(1000 * math.log(2), 1000) == pytest.approx(0.5887050, abs=1e-7)
    assert mi_generalization_term(0.0, 10) == 0.0
    assert mi_generalization_term(4.0, 2, sigma=1.0) == pytest.approx(2.0)
    assert mi_generalization_term(2.0, 1, sigma=1.0) == pytest.approx(2.0)  # n = 1 is allowed
    for bad in ((-1.0, 10), (1.0, 0), (1.0, 10, 0.0)):
        with pytest.raises(ValueError, match="rate_nats must be >= 0, n >= 1 and sigma > 0"):
            mi_generalization_term(*bad)


def test_rows_decompose_and_verify(workspace, capsys):
    argv = ["run", "--tasks", "tiny", "--compressors", "quantize,hw-kmeans", "--bounds", "occam,mi",
            "--set", "compressor.quantize.levels=2", "--no-leaderboard"]
    assert main(argv) == 0
    df = pd.read_parquet(workspace / "results")
    assert (df["status"] == "ok").all() and len(df) == 4
    mi = df[df["bound"] == "mi"]
    for _, row in mi.iterrows():
        extras = json.loads(row["extras"])["bound"]
        gen = math.sqrt(2 * 0.25 * row["message_bits"] * math.log(2) / row["n_train"])
        assert row["bound_kind"] == "expectation"
        assert extras["generalization_term"] == pytest.approx(gen)
        assert row["error_bound"] == pytest.approx(min(1.0, row["train_err"] + gen))
        assert row["kl_nats"] == pytest.approx(row["message_bits"] * math.log(2))
        assert extras["base_train_err"] == pytest.approx(row["base_train_err"])
        assert extras["distortion_01"] == pytest.approx(row["train_err"] - row["base_train_err"])
        assert extras["distortion_ce"] == pytest.approx(extras["train_ce"] - extras["base_train_ce"])
        assert extras["train_ce"] > 0 and extras["base_train_ce"] > 0
    occam = df[df["bound"] == "occam"]
    assert sorted(occam["artifact_id"]) == sorted(mi["artifact_id"])
    assert (occam["error_bound"] >= occam["test_err"]).all()
    capsys.readouterr()
    assert main(["verify", *mi["cell_id"]]) == 0
    assert capsys.readouterr().out.count("AGREES") == 2


def test_regression_is_skipped_with_the_reason(workspace):
    code = main(["run", "--tasks", "linear-regression", "--compressors", "dense", "--bounds", "mi",
                 "--set", "task.linear-regression.recipe.epochs=5", "--no-leaderboard"])
    assert code == 0
    df = pd.read_parquet(workspace / "results")
    assert list(df["status"]) == ["skipped"] and "unbounded" in df["error"].iloc[0]
