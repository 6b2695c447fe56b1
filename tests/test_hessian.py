"""Bound ``hessian`` (seed 004, BOUNDS.md section 5): the closed forms on a quadratic problem by hand,
the Lemma 4.2 identity, zero curvature and zero displacement, block posteriors, and the plugin through
the runner with every form (rows recomputed by the oracle, the floor below the diagonal certificates)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

import oracle
from bench.cli import main
from bench_plugins.hessian import Block, baseline_posterior, block_posterior, diag_posterior, lemma42


def test_lemma41_posterior_and_kl_by_hand():
    # L(w) = ½ h (w - w*)²: the Hessian is exactly h. One coordinate, prior N(θ₀, s₁²), posterior N(μ₀, s₀²).
    h, d, s1, beta = np.array([4.0]), np.array([0.5]), 0.3, 0.2
    var, delta, kl = diag_posterior(h, d, s1, beta)
    expected_var = beta / (4.0 + beta / 0.09)  # Lemma 4.1
    assert var[0] == pytest.approx(expected_var)
    assert delta == pytest.approx(0.5 * 4.0 * expected_var)  # E_Q[L] - L(μ₀) = ½ h s₀², exact for a quadratic
    assert kl == pytest.approx(0.5 * (expected_var / 0.09 + 0.25 / 0.09 - 1 + math.log(0.09 / expected_var)))

    def objective(v):  # E_Q[L] + β KL as a function of the posterior variance: Lemma 4.1 minimizes it
        return 0.5 * 4.0 * v + beta * 0.5 * (v / 0.09 + 0.25 / 0.09 - 1 + math.log(0.09 / v))

    for factor in (0.9, 1.1):
        assert objective(expected_var * factor) > objective(expected_var)


def test_baseline_by_hand():
    delta, kl = baseline_posterior(np.array([1.0, 3.0]), np.array([0.2, -0.4]), 0.5)
    assert delta == pytest.approx(0.5 * 0.25 * 4.0)
    assert kl == pytest.approx(0.5 * (0.04 + 0.16) / 0.25)


def test_lemma42_closed_form_and_identity():
    rng = np.random.default_rng(0)
    h, d = rng.uniform(0.1, 5.0, 50), rng.normal(0, 0.3, 50)
    for beta in (1e-3, 0.1, 2.0):
        a = (np.sqrt(h**2 + 4 * beta * h / d**2) - h) / (2 * beta)
        delta, kl = lemma42(h, d, beta)
        assert delta == pytest.approx(0.5 * np.sum(h * beta / (h + beta * a)))
        assert kl == pytest.approx(0.5 * np.sum(a * d**2 + np.log1p(h / (beta * a)) - h / (h + beta * a)))
        # BOUNDS.md: Δ_β + β·KL_β = ½β Σ [a d² + ln(1 + h/(βa))]
        assert delta + beta * kl == pytest.approx(0.5 * beta * np.sum(a * d**2 + np.log1p(h / (beta * a))), rel=1e-10)
        # a is the prior precision that minimizes Δ + βKL over each coordinate's prior (numerically)
        for i in range(3):
            def total(prec, i=i):
                var = beta / (h[i] + beta * prec)
                return 0.5 * h[i] * var + beta * 0.5 * (var * prec + d[i] ** 2 * prec - 1 - math.log(var * prec))
            assert total(a[i]) <= min(total(a[i] * 0.97), total(a[i] * 1.03))


def test_zero_curvature_and_zero_displacement_contribute_nothing():
    h = np.array([0.0, 2.0, 0.0, 1.5])
    d = np.array([0.3, 0.0, 0.0, 0.2])
    with np.errstate(all="raise"):  # no division by zero anywhere
        delta, kl = lemma42(h, d, 0.5)
        only, only_kl = lemma42(h[3:], d[3:], 0.5)
        assert (delta, kl) == pytest.approx((only, only_kl))
        var, _, _ = diag_posterior(h, d, 0.1, 0.5)
        assert var[0] == pytest.approx(0.01) and var[2] == pytest.approx(0.01)  # h = 0: the prior's variance


def test_block_posterior_reduces_to_diagonal_for_an_identity_block():
    d = np.array([[0.1, -0.2, 0.3], [0.0, 0.5, -0.1]])
    block = Block("w", np.eye(3), np.array([1.0, 1.0, 1.0]), np.array([2.0, 0.5]))
    var, delta, kl = block_posterior(block, d.ravel(), 0.2, 0.1)
    h = np.repeat(block.kappa, 3)  # κ_j·e_k on the diagonal
    dv, dd, dk = diag_posterior(h, d.ravel(), 0.2, 0.1)
    assert var.ravel() == pytest.approx(dv) and delta == pytest.approx(dd) and kl == pytest.approx(dk)


def test_every_form_through_the_runner(workspace):
    argv = ["run", "--compressors", "dense,prune", "--bounds", "hessian,catoni", "--no-leaderboard",
            "--set", 'bound.hessian.form=["lower","baseline","diag","layerwise"]',
            "--set", "bound.hessian.prior_std_grid=8", "--set", "bound.hessian.beta_grid=9"]
    assert main(argv) == 0
    df = pd.read_parquet(workspace / "results")
    assert (df["status"] == "ok").all() and len(df) == 2 * 5
    hessian = df[df["bound"] == "hessian"]
    for _, row in hessian.iterrows():
        oracle.check_row(row)
    form = hessian["bound_params"].map(lambda p: json.loads(p)["form"])
    lower = hessian[form == "lower"]
    assert (lower["bound_kind"] == "lower_bound").all()
    certs = hessian[form != "lower"]
    assert (certs["bound_kind"] == "certificate").all() and (certs["target"] == "stochastic").all()
    assert certs["config_bits"].nunique() > 1  # each form's value is paid on its own
    for artifact, rows in hessian.groupby("artifact_id"):
        floor = rows.loc[form[rows.index] == "lower", "error_bound"].iloc[0]
        diagonal = rows.loc[form[rows.index].isin(["baseline", "diag"]), "error_bound"]
        assert (floor <= diagonal).all(), (artifact, floor, diagonal.tolist())
