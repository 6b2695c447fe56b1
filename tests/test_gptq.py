"""Second-order quantization of z (bench.kit.gptq): the level choice against a hand-derived case and
the quadratic it minimizes, and the Fisher against a plain per-example autograd loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.kit.gptq import fisher_z, gptq_quantize
from bench.kit.subspace import Subspace
from bench.kit.types import Split


def quadratic(z: np.ndarray, q: np.ndarray, h: np.ndarray) -> float:
    delta = q - z
    return float(delta @ h @ delta)


def test_two_coupled_coordinates_by_hand():
    # H = [[1, .9], [.9, 1]], z = (.4, .4), levels {0, 1}. Nearest rounding gives (0, 0) at a cost of
    # δᵀHδ = .16 + .16 + 2·.9·.16 = .608. Fixing z₀ at 0 moves the best z₁ to .4 + (.9/1)·.4 = .76, which
    # rounds to 1: (0, 1) costs .16 + .36 - 2·.9·.24 = .088.
    h = np.array([[1.0, 0.9], [0.9, 1.0]])
    z = np.array([0.4, 0.4])
    levels = np.array([0.0, 1.0])
    assert gptq_quantize(z, h, levels, damp=0.0).tolist() == [0, 1]
    assert quadratic(z, levels[[0, 1]], h) == pytest.approx(0.088)
    assert quadratic(z, levels[[0, 0]], h) == pytest.approx(0.608)


def test_diagonal_curvature_is_nearest_rounding():
    rng = np.random.default_rng(0)
    z = rng.normal(size=50)
    levels = np.linspace(-2, 2, 7)
    nearest = np.abs(z[:, None] - levels[None, :]).argmin(axis=1)
    assert np.array_equal(gptq_quantize(z, np.diag(rng.uniform(0.5, 2, 50)), levels), nearest)


def test_correlated_curvature_beats_nearest_rounding():
    rng = np.random.default_rng(1)
    d = 60
    a = rng.normal(size=(d, d // 3))
    h = a @ a.T + 0.05 * np.eye(d)  # strongly coupled, like a Gauss-Newton matrix of few outputs
    levels = np.linspace(-1.5, 1.5, 5)
    costs = []
    for trial in range(5):
        z = rng.normal(size=d) * 0.6
        nearest = np.abs(z[:, None] - levels[None, :]).argmin(axis=1)
        chosen = gptq_quantize(z, h, levels)
        costs.append((quadratic(z, levels[chosen], h), quadratic(z, levels[nearest], h)))
    assert all(g < 0.5 * n for g, n in costs), costs


def test_shape_is_checked():
    with pytest.raises(ValueError, match="hessian"):
        gptq_quantize(np.zeros(3), np.eye(2), np.array([0.0, 1.0]))


def test_fisher_matches_a_per_example_autograd_loop():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    space = Subspace(model, "kron", 7, 3, torch.device("cpu"), "init")
    z = torch.randn(7) * 0.3
    x, y = torch.randn(20, 5), torch.randint(0, 3, (20,))
    train = Split(x, y)
    got = fisher_z(space, z, train, examples=12, generator=torch.Generator().manual_seed(5), batch_size=64)
    # the oracle: the same draws (one batch), gradients one example at a time through θ₀ + P·z
    g = torch.Generator().manual_seed(5)
    order = torch.randperm(20, generator=g)[:12]
    with torch.no_grad():
        probs = space(z, x[order]).softmax(dim=1).double()
    labels = torch.multinomial(probs, 1, generator=g).squeeze(1)
    want = torch.zeros(7, 7, dtype=torch.float64)
    for i, label in zip(order.tolist(), labels.tolist()):
        zz = z.clone().requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(space(zz, x[i : i + 1]), torch.tensor([label]))
        (gz,) = torch.autograd.grad(loss, zz)
        want += torch.outer(gz.double(), gz.double())
    assert np.allclose(got, (want / 12).numpy(), rtol=1e-4, atol=1e-8)
    assert np.allclose(got, got.T) and np.linalg.eigvalsh(got).min() > -1e-10
