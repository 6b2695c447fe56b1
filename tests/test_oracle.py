"""Every bound row, every form, both robust modes: recomputed from the row's raw columns by the
independent mpmath oracle (``tests/oracle.py``), agreeing within 1e-9; and the arithmetic core against
the oracle where the harness has its own numerics (the binomial deep tail, Catoni's infimum)."""

from __future__ import annotations

import math

import mpmath as mp
import pandas as pd
import pytest

import oracle
from bench.kit import bounds as bm
from bench.cli import main


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> pd.DataFrame:
    """One run with every bound configuration on a sparse artifact (robust needs its layers)."""
    import os

    folder = tmp_path_factory.mktemp("oracle")
    (folder / "bench.toml").write_text("""
[tasks.small]
dataset = "digits"
model = "mlp"
model_params = { widths = [12] }
recipe = { epochs = 8, batch_size = 64, lr = 0.01 }

[profiles.default]
tasks = ["small"]
seeds = [0]
compressors = ["prune", "id"]
bounds = ["occam", "catoni", "mi"]

[profiles.default.compressor.prune]
sparsity = 0.7
steps = 1
retrain_epochs = 2
levels = 4

[profiles.default.compressor.id]
dim = 40
epochs = 3
lr = 0.05
levels = 5
progressive_stages = 2
progressive_epochs = 1

[profiles.default.bound.occam]
form = ["binomial", "kl", "catoni"]

[profiles.default.bound.catoni]
robust = [false, true]
noise = ["search", "always"]
sigma_select_examples = 600
sigma_grid = [0.05, 0.2]
sigma_refine_rounds = 1
mc_passes = 2
""")
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        assert main(["run", "--no-leaderboard"]) == 0
    finally:
        os.chdir(cwd)
    df = pd.read_parquet(folder / "results")
    assert (df["status"] != "failed").all()
    return df[df["status"] == "ok"]


@pytest.mark.slow  # a run of every compressor and bound
def test_every_row_agrees_with_the_oracle(rows):
    kinds = set()
    for _, row in rows.iterrows():
        oracle.check_row(row)
        kinds.add((row["bound"], row["bound_params"].count('"robust":true') > 0, row["target"]))
    # the run covered every form and both robust modes, with a stochastic and a decoded robust target
    forms = {f for f in rows["form"].dropna()}
    assert {"binomial", "kl", "catoni"} <= forms
    assert ("catoni", True, "stochastic") in kinds and ("mi", False, "decoded") in kinds
    assert len(rows[rows["bound"] == "occam"]) == 6 and len(rows[rows["bound"] == "catoni"]) >= 6


@pytest.mark.parametrize("k, n, p", [(0, 60000, 0.2), (1, 60000, 0.2), (1, 2000, 0.35), (2, 1500, 0.45), (3, 1500, 0.5),
                                     (5, 5000, 0.6)])
def test_binomial_logcdf_in_the_deep_tail(k, n, p):
    exact = mp.log(oracle.binom_cdf(k, n, p))
    assert exact < math.log(1e-280)  # where the harness sums the tail itself
    assert bm.binomial_logcdf(k, n, p) == pytest.approx(float(exact), rel=1e-9)


@pytest.mark.parametrize("e, n, kl, delta, alpha", [(0.02, 60000, 2093.0, 0.05, 1.0001), (0.1, 1347, 400.0, 0.05, 1.1),
                                                     (0.0, 50000, 10.0, 0.01, 2.0), (0.3, 2000, 5000.0, 0.05, 1.0001)])
def test_catoni_infimum_matches_the_oracle(e, n, kl, delta, alpha):
    assert bm.catoni_bound(e, n, kl, delta, alpha).bound == pytest.approx(
        float(oracle.catoni_bound(e, n, kl, delta, alpha)), rel=1e-9)


@pytest.mark.parametrize("form", ["binomial", "kl", "maurer"])
@pytest.mark.parametrize("k, n, kl", [(0, 1000, 5.0), (37, 1347, 300.0), (7000, 60000, 3386.0)])
def test_occam_forms_match_the_oracle(form, k, n, kl):
    assert bm.error_bound(form, k / n, n, kl, 0.05) == pytest.approx(
        float(oracle.bound_of(form, mp.mpf(k) / n, n, kl, 0.05)), rel=1e-9)


def test_elias_delta_lengths_match_the_oracle():
    for value in (1, 2, 3, 4, 7, 8, 15, 16, 4864, 2**20 - 1, 2**20, 10**12):
        assert bm.elias_delta_bits(value) == oracle.elias_delta_len(value)
