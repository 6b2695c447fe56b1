"""Hessian-weighted K-means (bench.kit.kmeans.weighted_kmeans) against hand-derived fixed points, the
diameter regularizer's 2x2 update, Algorithm 1's unweighted assignment; the message layout's shared
codebook and vector blocks by round trip; compressors ``hw-kmeans`` / ``drhw-kmeans`` exactly decoded,
reproducible, and through the real runner with ``bench verify``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import paying
import pytest
import torch
from torch import nn

from bench.kit import coding
from bench.cli import main
from bench.api.params import ConfigError
from bench.kit.kmeans import _nearest_centres, hw_objective, to_blocks, weighted_kmeans, weighted_quantize_tensors
from bench.kit.quantization import decode_model, encode_model
from bench.cell import models_agree
from bench_plugins.hw_kmeans import DRHWKMeans, HWKMeans, prune_masks


# ------------------------------------------------------------------------------- the algorithm
def test_centres_are_curvature_weighted_means():
    points = np.array([0.0, 1.0, 10.0, 11.0])
    codebook, q = weighted_kmeans(points, np.array([1.0, 3.0, 1.0, 1.0]), 2, seed=0)
    assert np.allclose(codebook, [0.75, 10.5]) and list(q) == [0, 0, 1, 1]


def test_few_distinct_values_are_kept_exactly():
    codebook, q = weighted_kmeans(np.array([2.0, -1.0, 2.0]), np.ones(3), 4, seed=0)
    assert list(codebook) == [-1.0, 2.0] and list(q) == [1, 0, 1]


def test_diameter_regularizer_solves_the_pair_update_exactly():
    """Clusters {0, 0.1} and {10, 10.1}, h = 1, β = 1: eq. 37's 2x2 system gives c = (20.4/8, 60.4/8)."""
    points, weights = np.array([0.0, 0.1, 10.0, 10.1]), np.ones(4)
    codebook, q = weighted_kmeans(points, weights, 2, seed=0, beta=1.0)
    assert np.allclose(codebook, [20.4 / 8, 60.4 / 8]) and list(q) == [0, 0, 1, 1]
    plain, _ = weighted_kmeans(points, weights, 2, seed=0, beta=0.0)
    assert np.allclose(plain, [0.05, 10.05])
    # the pair update is the joint minimizer of the objective with the assignments fixed
    base = hw_objective(points, weights, codebook, q, beta=1.0)
    for dc in ([0.01, 0], [0, -0.01], [-0.01, 0.01]):
        assert hw_objective(points, weights, codebook + np.array(dc), q, beta=1.0) > base


def test_beta_shrinks_the_diameter_and_beta_zero_is_hw_kmeans():
    rng = np.random.default_rng(0)
    w, h = rng.standard_normal(3000), rng.gamma(0.5, 1.0, 3000)
    diameters = []
    for beta in (0.0, 10.0, 100.0, 1000.0):
        codebook, q = weighted_kmeans(w, h, 6, seed=0, beta=beta)
        diameters.append(codebook.max() - codebook.min())
    assert all(a > b for a, b in zip(diameters, diameters[1:]))
    codebook, q = weighted_kmeans(w, h, 6, seed=0)
    # converged HW K-means: every centre is the weighted mean of its cluster, every point at its nearest
    for k in range(len(codebook)):
        assert np.isclose(codebook[k], np.average(w[q == k], weights=h[q == k]))
    assert np.array_equal(q, np.abs(w[:, None] - codebook[None]).argmin(1))


def test_vector_assignment_uses_the_unweighted_distance():
    """Algorithm 1 (eq. 36): (0, 1) goes to (0.8, 1), although H = diag(100, 0.01) would prefer (0, 0)."""
    centres = np.array([[0.0, 0.0], [0.8, 1.0]])
    assert list(_nearest_centres(np.array([[0.0, 1.0]]), centres)) == [1]
    rng = np.random.default_rng(1)
    pts, wts = rng.standard_normal((500, 2)), rng.gamma(1.0, 1.0, (500, 2))
    codebook, q = weighted_kmeans(pts, wts, 5, seed=3, beta=0.5)
    assert codebook.shape[1] == 2 and q.shape == (500,) and q.max() < len(codebook)
    again = weighted_kmeans(pts, wts, 5, seed=3, beta=0.5)
    assert np.array_equal(again[0], codebook) and np.array_equal(again[1], q)  # seeded


def test_blocks_pad_the_tail_with_zeros():
    assert to_blocks(np.arange(1, 6), 2).tolist() == [[1, 2], [3, 4], [5, 0]]


# ----------------------------------------------------------------------------- message layout
def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(7, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3)).eval()


@pytest.mark.parametrize("scope,block,prune", [("layer", 1, 0.0), ("network", 1, 0.0), ("layer", 3, 0.0),
                                               ("network", 2, 0.4)])
def test_round_trip_shared_codebooks_and_blocks(scope, block, prune):
    model = small_model()
    curv = {n: np.random.default_rng(0).gamma(1.0, 1.0, tuple(p.shape))
            for n, p in model.named_parameters() if p.dim() > 1}
    masks = prune_masks(model, curv, prune, "saliency") if prune else None
    codes = weighted_quantize_tensors(model, curv, 3, seed=0, scope=scope, block=block, beta=0.1, masks=masks)
    if scope == "network":
        assert all(np.array_equal(c.codebook, codes[0].codebook) for c in codes)
    encoded = encode_model(model, codes, masks is not None, "float16", "float32", shared_codebook=scope == "network",
                           block=block)
    decoded = decode_model(encoded.message, small_model(), masks is not None, "float16", "float32",
                           shared_codebook=scope == "network", block=block)
    assert models_agree(encoded.model, decoded, torch.randn(4, 7)) is None
    state = decoded.state_dict()
    for layer in encoded.layers:  # the (S, C, Q) exposed per layer reproduces the weights (block > 1 too)
        w = state[layer.name].flatten().numpy()
        assert np.array_equal(w[layer.positions], layer.codebook[layer.assignments])
    if scope == "network":
        assert [l.codebook_bits > 0 for l in encoded.layers] == [True, False]
    with pytest.raises(coding.CorruptMessage):
        decode_model(encoded.message[:-3], small_model(), masks is not None, "float16", "float32",
                     shared_codebook=scope == "network", block=block)


# ---------------------------------------------------------------------------------- compressors
@pytest.fixture(scope="module")
def ctx():
    from bench.progress import progress
    from bench.registry import load_registry
    from bench.context import build_context
    from bench.tasks import BaseModels, instantiate_task, merge_task
    from bench.cache import ModelCache, default_cache_dir

    registry = load_registry()
    spec = merge_task(None, {"dataset": "digits", "model": "mlp", "model_params": {"widths": [16]},
                             "recipe": {"epochs": 5, "batch_size": 128, "lr": 0.01}}, "tiny")
    task = instantiate_task(spec, registry)
    base = BaseModels(ModelCache(default_cache_dir()), torch.device("cpu"), progress)
    return build_context(task, 0, torch.device("cpu"), base, 0.05)


def test_compressors_decode_exactly_and_reproduce_their_bytes(ctx):
    hw = HWKMeans(levels=4).compress(ctx)
    assert hw.message == HWKMeans(levels=4).compress(ctx).message
    assert models_agree(hw.model, HWKMeans(levels=4).decode(hw.message, ctx.prior), ctx.task.data.train.x) is None
    assert all(len(l.codebook) <= 4 for l in hw.layers)
    same = DRHWKMeans(levels=4, beta=0.0).compress(ctx)
    assert same.message == hw.message  # β = 0, m = 1 is HW K-means
    for params in ({"levels": 4, "beta": 0.05, "block": 2, "scope": "network"},
                   {"levels": 3, "beta": 0.01, "prune": 0.5, "prune_criterion": "saliency"}):
        c = DRHWKMeans(**params).compress(ctx)
        assert models_agree(c.model, DRHWKMeans(**params).decode(c.message, ctx.prior), ctx.task.data.train.x) is None
        assert c.extras["taylor_distortion"] > 0
    pruned = HWKMeans(levels=4, prune=0.5).compress(ctx)
    n_weights = sum(l.size for l in pruned.layers)
    assert sum(len(l.positions) for l in pruned.layers) == pytest.approx(n_weights / 2, abs=2)
    assert pruned.stats["n_params_kept"] < sum(p.numel() for p in pruned.model.parameters())


def test_params_are_validated_by_name():
    for cls, bad, key in ((HWKMeans, {"levels": 0}, "levels"), (HWKMeans, {"prune": 1.0}, "prune"),
                          (DRHWKMeans, {"beta": -1.0}, "beta"), (DRHWKMeans, {"block": 0}, "block"),
                          (HWKMeans, {"curvature": "hessian"}, "curvature")):
        with pytest.raises(ConfigError, match=key):
            cls(**bad)
    with pytest.raises(ConfigError, match="beta"):
        HWKMeans(beta=1.0)  # HW K-means has no β


def test_through_the_runner_with_mi_and_verify(workspace, capsys):
    argv = ["run", "--tasks", "tiny", "--compressors", "hw-kmeans,drhw-kmeans", "--bounds", "occam,mi",
            "--set", "compressor.hw-kmeans.levels=[2,4]", "--set", "compressor.drhw-kmeans.block=2",
            "--no-leaderboard"]
    assert main(argv) == 0
    df = pd.read_parquet(workspace / "results")
    assert (df["status"] == "ok").all() and len(df) == 6
    occam, mi = df[df["bound"] == "occam"], df[df["bound"] == "mi"]
    assert (occam["error_bound"] >= occam["test_err"]).all() and (occam["bound_kind"] == "certificate").all()
    assert (mi["bound_kind"] == "expectation").all()
    assert set(occam["artifact_id"]) == set(mi["artifact_id"])  # both bounds on the same artifacts
    assert paying.charged_as_coded(df, workspace / "results")
    capsys.readouterr()
    assert main(["verify", *df["cell_id"]]) == 0
    out = capsys.readouterr().out
    assert out.count("AGREES") == 6 and "DIFFERS" not in out
    assert main(["leaderboard"]) == 0
    board = capsys.readouterr().out
    assert "Expectation bounds" in board and "drhw-kmeans" in board
