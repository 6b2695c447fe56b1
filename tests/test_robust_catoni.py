"""The robustness-adjusted Catoni bound (seed 002 Thm 4.3, BOUNDS.md 3) and ``bench.kit.stochastic``: the
mixture KL against closed forms and Monte Carlo, its sign convention, the noisy network's sampling,
and the bound through the real runner with ``bench verify``."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import oracle
from bench.cli import main
from bench.api.contracts import Split
from bench.kit.stochastic import (NoiseSpec, best_prior_scale, codebook_kl, gaussian_kl_single, mixture_kl,
                              mixture_kl_jensen, noisy_error_count, noisy_network)


def mc_mixture_kl(mu, sigma, centers, lam, n=400_000, seed=0):
    """Monte-Carlo estimate of KL(N(mu, σ²) ‖ Σ_j N(c_j, λ²)) and its standard error."""
    rng = np.random.default_rng(seed)
    x = rng.normal(mu, sigma, n)
    log_q = -0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)
    z = -0.5 * ((x[:, None] - np.asarray(centers)[None, :]) / lam) ** 2
    top = z.max(axis=1)
    log_p = top + np.log(np.exp(z - top[:, None]).sum(axis=1)) - math.log(lam) - 0.5 * math.log(2 * math.pi)
    d = log_q - log_p
    return d.mean(), d.std() / math.sqrt(n)


@pytest.mark.parametrize("sigma,lam,offset", [(0.1, 0.2, 0.0), (0.05, 0.05, 0.0), (0.3, 0.01, 0.0),
                                              (0.02, 0.5, 0.0), (0.1, 0.2, 0.15), (0.01, 0.03, -0.2)])
def test_one_component_matches_the_closed_form(sigma, lam, offset):
    expected = math.log(lam / sigma) + (sigma**2 + offset**2) / (2 * lam**2) - 0.5
    got = mixture_kl([0.3 + offset], sigma, [0.3], lam)[0]
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-10)
    if offset == 0:
        assert gaussian_kl_single(sigma, lam) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("mu,sigma,lam", [(0.07, 0.04, 0.06), (-0.2, 0.02, 0.1), (0.0, 0.05, 0.02),
                                          (0.3, 0.1, 0.3)])
def test_several_components_match_monte_carlo(mu, sigma, lam):
    centers = [-0.2, -0.05, 0.0, 0.07, 0.3]
    got = mixture_kl([mu], sigma, centers, lam)[0]
    mc, se = mc_mixture_kl(mu, sigma, centers, lam)
    assert abs(got - mc) < 5 * se + 1e-6
    assert got <= mixture_kl_jensen([mu], sigma, centers, lam)[0] + 1e-12


def test_sign_convention_overlapping_components_give_nats_back():
    # r coincident components: the unnormalized mixture is r·N(c, λ²), so the KL drops by exactly ln r
    for r in (2, 8, 16):
        got = mixture_kl([0.1], 0.05, [0.1] * r, 0.07)[0]
        assert got == pytest.approx(gaussian_kl_single(0.05, 0.07) - math.log(r), rel=1e-9)
    # wide, overlapping components at σ = λ: the term is negative, i.e. a gain of -KL nats
    assert mixture_kl([0.0], 0.1, np.linspace(-0.05, 0.05, 8), 0.1)[0] < -1.5
    # well-separated components: no gain (the term equals the one-component value, >= 0)
    far = mixture_kl([0.0], 0.01, [0.0, 1.0, 2.0], 0.01)[0]
    assert far == pytest.approx(0.0, abs=1e-9)


def test_codebook_kl_weights_the_centroid_terms_by_counts():
    codebook = np.array([-0.1, 0.0, 0.12, 0.3])
    counts = np.array([3, 0, 5, 1])
    per = mixture_kl(codebook, 0.04, codebook, 0.05)
    assert codebook_kl(codebook, counts, 0.04, 0.05) == pytest.approx(float(per @ counts), rel=1e-12)
    assert codebook_kl(codebook, np.zeros(4), 0.04, 0.05) == 0.0


def test_best_prior_scale_is_the_grid_minimum():
    rng = np.random.default_rng(3)
    codebook = np.sort(rng.normal(0, 0.1, 8))
    counts = rng.integers(1, 200, 8)
    grid = np.geomspace(1e-3, 1.0, 60)
    index, value = best_prior_scale(codebook, counts, 0.02, grid)
    brute = [codebook_kl(codebook, counts, 0.02, lam) for lam in grid]
    assert value == pytest.approx(brute[index], rel=1e-12)
    assert value <= min(brute) + 1e-6 * abs(min(brute))


# ---------------------------------------------------------------------------- the noisy network


def test_linear_local_reparameterization_is_exact_in_distribution():
    torch.manual_seed(0)
    layer = nn.Linear(5, 3)
    x = torch.randn(1, 5).repeat(20_000, 1)
    positions = np.array([0, 2, 7, 11, 14])  # flat indices into the 3x5 weight
    sigma = 0.3
    gen = torch.Generator().manual_seed(1)
    model = nn.Sequential(layer)
    with torch.no_grad(), noisy_network(model, {"0.weight": NoiseSpec(positions, sigma)}, gen):
        out = model(x)
    clean = layer(x[:1]).detach()
    mask = torch.zeros(15)
    mask[positions] = 1
    expected_var = (sigma**2 * mask.view(3, 5) * x[0] ** 2).sum(dim=1)
    assert torch.allclose(out.mean(0), clean[0], atol=4 * float(expected_var.max().sqrt()) / math.sqrt(20_000))
    assert torch.allclose(out.var(0), expected_var, rtol=0.05)


def test_conv_noise_is_a_fresh_kernel_per_example():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = torch.randn(1, 2, 5, 5)
    positions = np.arange(0, 54, 2)
    sigma = 0.2
    model = nn.Sequential(conv)
    with torch.no_grad(), noisy_network(model, {"0.weight": NoiseSpec(positions, sigma)}, torch.Generator().manual_seed(2)):
        out = model(x.repeat(6000, 1, 1, 1))
    # exact moments of conv(x, W + E) with E_k ~ N(0, σ²) on the kept positions, one E per example:
    # mean conv(x, W); Cov(y_o,p, y_o,p') = σ² Σ_k mask_ok patch_p,k patch_p',k (same output channel)
    mask = torch.zeros(54)
    mask[positions] = 1
    patches = nn.functional.unfold(x, 3, padding=1)[0].T  # (25 positions, 18 = in·kh·kw)
    m = mask.view(3, 18)
    with torch.no_grad():
        assert torch.allclose(out.mean(0), conv(x)[0], atol=0.03)
    for o in range(3):
        cov = sigma**2 * (patches * m[o]) @ patches.T  # (25, 25)
        emp = torch.cov(out[:, o].reshape(6000, 25).T)
        assert torch.allclose(emp.diagonal(), cov.diagonal(), rtol=0.1, atol=1e-3)
        assert torch.allclose(emp, cov, atol=0.1 * float(cov.diagonal().max()))


def test_noisy_error_count_is_deterministic_and_zero_noise_is_the_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(8, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    split = Split(torch.randn(300, 8), torch.randint(0, 3, (300,)))
    errors0, m0 = noisy_error_count(model, {"1.weight": NoiseSpec(np.arange(48), 0.0)}, split,
                                    torch.Generator().manual_seed(0), passes=2, batch_size=64)
    clean = int((model(split.x).argmax(1) != split.y).sum())
    assert (errors0, m0) == (2 * clean, 600)
    noise = {"1.weight": NoiseSpec(np.arange(0, 48, 3), 0.5), "3.weight": NoiseSpec(np.arange(18), 0.2)}
    a = noisy_error_count(model, noise, split, torch.Generator().manual_seed(9), batch_size=64)
    b = noisy_error_count(model, noise, split, torch.Generator().manual_seed(9), batch_size=64)
    assert a == b
    assert not model.training and not model[1]._forward_hooks  # hooks removed, mode restored


# ------------------------------------------------------------------------ through the runner


def test_robust_catoni_through_the_runner_and_verify(workspace, capsys):
    argv = ["run", "--compressors", "prune", "--bounds", "catoni",
            "--set", "compressor.prune.retrain_epochs=1", "--set", "compressor.prune.sparsity=0.6",
            "--set", "compressor.prune.steps=1",
            "--set", "bound.catoni.robust=[false,true]", "--set", "bound.catoni.sigma_select_examples=500",
            "--set", "bound.catoni.sigma_grid=[0.05,0.2]", "--set", "bound.catoni.sigma_refine_rounds=1",
            "--set", 'bound.catoni.noise="always"', "--no-leaderboard"]
    assert main(argv) == 0
    df = pd.read_parquet(workspace / "results")
    assert (df["status"] == "ok").all() and len(df) == 2
    robust = df[df["bound_params"].str.contains('"robust":true')].iloc[0]
    plain = df[df["bound_params"].str.contains('"robust":false')].iloc[0]
    import json
    extras = json.loads(robust["extras"])["bound"]
    layers = extras["layers"]
    assert set(layers) == {"1.weight", "3.weight"}
    # every number of both rows recomputed by the independent oracle from the rows' raw columns
    oracle.check_row(robust)
    oracle.check_row(plain)
    assert robust["adjustment_nats"] == pytest.approx(sum(v["mixture_kl_nats"] for v in layers.values()))
    assert extras["gain_nats"] == pytest.approx(-robust["adjustment_nats"])
    assert robust["config_bits"] > plain["config_bits"]  # robust = true and its settings are paid
    assert extras["lambda_choice_bits"] == pytest.approx(2 * math.log2(512))  # G + 1 options per layer
    assert robust["message_bits"] == plain["message_bits"] == extras["message_bits_real"]  # the artifact's
    q = sum(v["q_bits_fixed"] - v["q_bits_coded"] for v in layers.values() if v["sigma"] > 0)
    assert extras["code_bits"] == pytest.approx(extras["message_bits_real"] + q)
    assert robust["mc_samples"] == robust["n_train"] and extras["m"] == robust["n_train"]
    assert extras["delta_prime"] == pytest.approx(0.005)
    assert robust["empirical_term"] >= extras["err_mc"]
    # the robust row certifies the noisy classifier and carries that classifier's own test error
    assert robust["target"] == "stochastic" and plain["target"] == "decoded"
    assert robust["target_test_trials"] == robust["n_test"] and 0 < robust["target_test_err_se"] < 0.05
    assert robust["target_test_err"] == robust["target_test_errors"] / robust["n_test"]
    assert robust["target_test_err"] != robust["test_err"]  # measured on the noisy classifier, not the decoded one
    assert robust["bound_minus_test"] == pytest.approx(robust["error_bound"] - robust["target_test_err"])
    assert plain["target_test_err"] == plain["test_err"] and plain["delta_prime"] == 0
    assert robust["delta_prime"] == pytest.approx(0.005)
    for row in (robust, plain):
        assert row["error_bound"] >= row["target_test_err"] and row["error_bound"] >= row["empirical_term"]
    capsys.readouterr()
    assert main(["verify", robust["cell_id"], plain["cell_id"]]) == 0
    out = capsys.readouterr().out
    assert out.count("AGREES") == 2 and "DIFFERS" not in out
