"""Data-dependent priors: the split of the training set, S_bound as every bound's sample, a prior model
that depends on S_prior alone, and the compressors that use it."""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binom

from bench import report
from bench.cli import main
from bench.api.contracts import Split
from bench.progress import progress
from bench.registry import load_registry
from bench.kit.models import state_digest
from bench.tasks import BaseModels, instantiate_task, merge_task
from bench.cache import ModelCache

TASK = {"dataset": "digits", "dataset_params": {"prior_fraction": 0.5}, "model": "mlp",
        "model_params": {"widths": [16]}, "recipe": {"epochs": 4, "batch_size": 64, "lr": 0.01}}
DATADEP = ["--set", "task.tiny.dataset_params.prior_fraction=0.5"]


def task(params=None):
    registry = load_registry()
    return instantiate_task(merge_task(None, {**TASK, **(params or {})}, "datadep"), registry)


def test_the_split_is_deterministic_stratified_and_disjoint():
    a, b = task(), task()
    assert torch.equal(a.data.prior_indices, b.data.prior_indices)
    prior, bound = a.data.prior_split(), a.data.bound_split()
    assert len(prior) + len(bound) == len(a.data.train)
    idx = set(a.data.prior_indices.tolist())
    assert len(idx) == len(prior) and all(0 <= i < len(a.data.train) for i in idx)
    rest = [i for i in range(len(a.data.train)) if i not in idx]
    assert torch.equal(bound.y, a.data.train.y[rest])  # disjoint, and together the training set
    for c in range(10):  # stratified: half of each class, to rounding
        n_c = int((a.data.train.y == c).sum())
        assert abs(int((prior.y == c).sum()) - n_c / 2) <= 0.5
    other = task({"dataset_params": {"prior_fraction": 0.8}})
    assert len(other.data.prior_split()) == pytest.approx(0.8 * len(a.data.train), abs=10)


def test_the_prior_models_key_and_weights_depend_on_s_prior_only(tmp_path):
    t = task()
    models = BaseModels(ModelCache(tmp_path / "a"), torch.device("cpu"), progress)
    key, weights = models.prior_key(t, 0), state_digest(models.prior(t, 0))
    # change one example of S_bound: the prior model's key and weights are the same
    bound_idx = int(np.setdiff1d(np.arange(len(t.data.train)), t.data.prior_indices.numpy())[0])
    x = t.data.train.x.clone()
    x[bound_idx] += 1.0
    changed = dataclasses.replace(t, data=dataclasses.replace(t.data, train=Split(x, t.data.train.y)))
    fresh = BaseModels(ModelCache(tmp_path / "b"), torch.device("cpu"), progress)  # nothing cached: trains again
    assert fresh.prior_key(changed, 0) == key
    assert state_digest(fresh.prior(changed, 0)) == weights
    # change one example of S_prior: a new key
    x = t.data.train.x.clone()
    x[int(t.data.prior_indices[0])] += 1.0
    moved = dataclasses.replace(t, data=dataclasses.replace(t.data, train=Split(x, t.data.train.y)))
    assert fresh.prior_key(moved, 0) != key


def test_bounds_use_s_bound_and_the_prior_compressor_is_a_binomial_tail_bound(workspace, capsys):
    assert main(["run", "--compressors", "prior,quantize", "--bounds", "occam", "--no-leaderboard", *DATADEP,
                 "--set", 'compressor.quantize.origin="prior"', "--set", "compressor.quantize.levels=4"]) == 0
    df = pd.read_parquet(workspace / "results")
    assert (df["status"] == "ok").all()
    t = task({"model_params": {"widths": [16]}, "recipe": {"epochs": 5, "batch_size": 128, "lr": 0.01}})
    n_bound = len(t.data.bound_split())
    assert (df["n_train"] == n_bound).all() and (df["n_prior"] == len(t.data.train) - n_bound).all()
    assert (df["prior_fraction"] == 0.5).all()
    row = df[df["compressor"] == "prior"].iloc[0]
    assert row["message_bits"] == 0 and row["length_code_bits"] == 1  # the empty message
    # the prior's own model, counted by hand on S_bound
    models = BaseModels(ModelCache(__import__("bench.cache", fromlist=["x"]).default_cache_dir()),
                        torch.device("cpu"), progress)
    prior_model = models.prior(t, 0)
    split = t.data.bound_split()
    k = int((prior_model(split.x).argmax(1) != split.y).sum())
    assert row["train_errors"] == k
    # by hand: max { p : P[Bin(n, p) <= k] >= δ·2^-(ℓ + len + L(c)) } with ℓ = 0 and len = 1 bit
    L = row["config_bits"]
    assert L > 16  # the prior's recipe and prior_fraction are paid
    threshold = 0.05 * 2.0 ** -(0 + 1 + L)
    lo, hi = k / n_bound, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if binom.cdf(k, n_bound, mid) >= threshold else (lo, mid)
    assert row["error_bound"] == pytest.approx(hi, rel=1e-9)
    # beside every row: the prior model's own count on S_bound and its held-out bound with 0 bits
    assert (df["prior_train_errors"] == k).all()
    lo, hi = k / n_bound, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if binom.cdf(k, n_bound, mid) >= 0.05 else (lo, mid)
    assert df["prior_bound"].to_numpy() == pytest.approx(hi, rel=1e-9)
    assert row["error_bound"] > row["prior_bound"]  # the prior's own row pays a length code and its configuration
    # shown beside each certificate: in the leaderboard's table and in the report's drill-down
    assert main(["leaderboard", "--format", "csv"]) == 0
    board = pd.read_csv(io.StringIO(capsys.readouterr().out))
    diag = board[board["section"].str.startswith("Data-dependent priors")]
    assert len(diag) == len(df) and (diag["prior alone, 0 bits %"] == round(hi * 100, 2)).all()
    assert (diag["prior err on S_bound %"] == round(k / n_bound * 100, 2)).all()
    page = report.build(workspace / "results", workspace / "page").read_text()
    assert page.count("held-out bound of the prior alone (0 bits)") == len(df)


def test_id_from_the_prior_decodes_exactly(workspace, capsys):
    argv = ["run", "--compressors", "id", "--bounds", "occam", "--no-leaderboard", *DATADEP,
            "--set", 'compressor.id.origin="prior"', "--set", "compressor.id.dim=30",
            "--set", "compressor.id.epochs=2", "--set", "compressor.id.progressive_stages=2"]
    assert main(argv) == 0  # the decoded model (θ₀ = the prior's model) is the compressor's, bit for bit
    df = pd.read_parquet(workspace / "results")
    assert (df["status"] == "ok").all()
    capsys.readouterr()
    assert main(["verify", *df["cell_id"]]) == 0
    out = capsys.readouterr().out
    assert "AGREES" in out and "ok  prior_bound" in out and "ok  prior_train_errors" in out


def test_the_prior_compressor_is_skipped_without_a_prior(workspace):
    assert main(["run", "--compressors", "prior", "--bounds", "occam", "--no-leaderboard"]) == 0
    df = pd.read_parquet(workspace / "results")
    assert df["status"].iloc[0] == "skipped" and "needs a data-dependent prior" in df["error"].iloc[0]
    assert math.isnan(df["error_bound"].iloc[0])
    assert df["prior_train_errors"].isna().all() and df["prior_bound"].isna().all()  # no prior: no diagnostics
