"""The linear-regression testbed of seed 001 Section 5: exact formulas by hand, and Monte Carlo over many
draws of S against Lemma 3, Figure 2c (K-means lowers the population risk), Proposition 2 (the
distortion of K-means lies above the D(R) bound; the Oracle channel attains distortion D)."""

from __future__ import annotations

import numpy as np
import pytest

import linreg
from bench_plugins.datasets import LinearRegressionParams


def test_exact_formulas_by_hand():
    # d = 50, n = 80, σ'² = 1: (50/80)(2 + 51/29) = 2.3491379...
    assert linreg.erm_generalization_error(50, 80) == pytest.approx(0.625 * (2 + 51 / 29))
    assert linreg.erm_population_risk(50, 80) == pytest.approx(1 + 50 / 29)
    assert linreg.erm_empirical_risk(50, 80) == pytest.approx(30 / 80)
    assert linreg.erm_empirical_risk(50, 80) + linreg.erm_generalization_error(50, 80) == pytest.approx(
        linreg.erm_population_risk(50, 80))
    assert linreg.erm_generalization_error(50, 80, noise_var=2.0) == pytest.approx(2 * 2.3491379, abs=1e-6)
    assert linreg.distortion_rate_bound(0.0, 50, 80) == pytest.approx(50 / 29)
    assert linreg.distortion_rate_bound(25.0, 50, 80) == pytest.approx(50 / 29 * np.exp(-1.0))
    for rate in (1.0, 10.0, 100.0):  # eqs. (24) and (25) are inverses of each other for R > 0
        assert linreg.rate_distortion_bound(linreg.distortion_rate_bound(rate, 50, 80), 50, 80) == pytest.approx(rate)
    assert linreg.rate_distortion_bound(10.0, 50, 80) == 0.0  # D above dσ'²/(n-d-1): rate 0
    assert linreg.compressed_generalization_bound(80.0, 1.0, 80) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        linreg.erm_generalization_error(50, 51)


def test_erm_generalization_error_matches_lemma_3():
    sim = linreg.simulate(draws=3000, levels=(), seed=0)
    mean, se = linreg.Outcome.summary(sim.erm.generalization)
    assert abs(mean - linreg.erm_generalization_error(50, 80)) < 4 * se
    mean, se = linreg.Outcome.summary(sim.erm.population)
    assert abs(mean - linreg.erm_population_risk(50, 80)) < 4 * se


def test_kmeans_with_small_k_lowers_the_population_risk_figure_2c():
    sim = linreg.simulate(draws=400, levels=(2, 3), seed=1, message_rates=False)
    erm, _ = linreg.Outcome.summary(sim.erm.population)
    k2, se2 = linreg.Outcome.summary(sim.kmeans[2].population)
    k3, _ = linreg.Outcome.summary(sim.kmeans[3].population)
    assert k2 + 10 * se2 < erm and k3 < erm
    assert k2 < k3  # w* takes two values: K = 2 is best
    gen2, _ = linreg.Outcome.summary(sim.kmeans[2].generalization)
    assert gen2 < 0.2 * linreg.erm_generalization_error(50, 80)  # compression shrinks the generalization error
    assert (sim.kmeans[2].distortion >= -1e-12).all()  # the ERM minimizes L_S: d_S >= 0


def test_kmeans_distortion_lies_above_the_distortion_rate_bound():
    sim = linreg.simulate(draws=60, levels=(1, 2, 4, 8), seed=2)
    for k, outcome in sim.kmeans.items():
        rate = outcome.rate_nats.mean()
        assert rate > 0
        bound = linreg.distortion_rate_bound(rate, 50, 80)
        assert outcome.distortion.mean() > bound, k
        # also against the smaller rate d·ln K (the assignments alone, no centres): a stricter bound
        assert outcome.distortion.mean() > linreg.distortion_rate_bound(50 * np.log(k), 50, 80), k
    rows = {(r["method"], r["setting"]): r for r in sim.table()}
    assert rows[("kmeans", 2)]["distortion_rate_bound"] < rows[("kmeans", 2)]["distortion"]


def test_oracle_channel_attains_distortion_d():
    sim = linreg.simulate(draws=1500, levels=(), oracle_distortions=(0.1, 0.4), seed=3)
    for dist, outcome in sim.oracle.items():
        mean, se = linreg.Outcome.summary(outcome.distortion)
        assert abs(mean - dist) < 4 * se
    with pytest.raises(ValueError):
        linreg.oracle_channel(np.zeros((1, 50)), np.zeros(50), 1.0, 80, 1.0, np.random.default_rng(0))


def test_uses_the_dataset_plugins_sampler():
    p = LinearRegressionParams(d=4, n=9, noise=0.5, w_values=(2.0, -3.0))
    sim = linreg.simulate(p, draws=5, levels=(2,), seed=0)
    assert sim.erm.population.shape == (5,) and sim.noise_var == 0.25
    assert np.all(sim.erm.population >= 0.25)  # L_μ(w) = ||w - w*||² + σ'²
