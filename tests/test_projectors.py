"""Random projections: adjointness, unit-norm columns, full coverage of θ and z, determinism, the
Walsh-Hadamard transform against scipy's Hadamard matrix."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch

from bench.kit.projectors import PROJECTORS, DenseProjector, KronProjector, fwht, kron_shape, make_projector

# (D, d): squares, non-squares, powers of two and not, d = 1, d = D, one side a square and not the other
SHAPES = [(100, 7), (2410, 250), (4096, 64), (1000, 1), (81, 9), (82, 9), (81, 10), (50, 50), (1777, 130)]


def dense_matrix(P) -> torch.Tensor:
    """P as a D x d matrix: rows are Pᵀ·e_i when D is the smaller side (``dense`` regenerates P on
    every product, so the fewer products the better)."""
    if isinstance(P, DenseProjector):
        return torch.cat([block.double() for _, _, block in P._chunks(torch.float64)]) * P.scale
    eye = torch.eye(P.d, dtype=torch.float64)
    return torch.stack([P.project(eye[j]) for j in range(P.d)], dim=1)


@pytest.mark.parametrize("name", sorted(PROJECTORS))
@pytest.mark.parametrize("D,d", SHAPES)
def test_adjoint_agrees_and_every_coordinate_is_covered(name, D, d):
    P = make_projector(name, D, d, seed=3)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(d, generator=g, dtype=torch.float64)
    v = torch.randn(D, generator=g, dtype=torch.float64)
    lhs, rhs = torch.dot(P.project(z), v), torch.dot(z, P.adjoint(v))
    assert float(abs(lhs - rhs)) <= 1e-12 * max(1.0, float(abs(lhs)))
    z32, v32 = z.float(), v.float()
    lhs32, rhs32 = torch.dot(P.project(z32), v32), torch.dot(z32, P.adjoint(v32))
    assert float(abs(lhs32 - rhs32)) <= 1e-5 * float(P.project(z32).norm() * v32.norm())
    M = dense_matrix(P)
    assert M.shape == (D, d)
    assert torch.allclose(M @ z, P.project(z), rtol=1e-10, atol=1e-10)
    assert int((M.abs().sum(dim=1) == 0).sum()) == 0, "a coordinate of θ is left out"
    assert int((M.abs().sum(dim=0) == 0).sum()) == 0, "a coordinate of z is unused"
    assert torch.allclose(M.T @ v, P.adjoint(v), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name,tolerance,spread", [("kron", 1e-6, 1e-6), ("sparse", 0.02, 0.1),
                                                   ("fastfood", 0.02, 0.1), ("dense", 0.03, 0.15)])
def test_columns_have_unit_norm(name, tolerance, spread):
    for D, d in [(2410, 250), (4099, 64)]:
        norms = dense_matrix(make_projector(name, D, d, seed=1)).norm(dim=0)
        assert abs(float(norms.mean()) - 1) <= tolerance, (D, d, float(norms.mean()))
        assert float((norms - 1).abs().max()) <= spread, (D, d, float(norms.min()), float(norms.max()))


def test_kron_columns_are_orthonormal():
    for D, d in [(1000, 40), (1024, 36)]:  # with and without a remainder block
        M = dense_matrix(make_projector("kron", D, d, seed=0))
        assert torch.allclose(M.T @ M, torch.eye(d, dtype=torch.float64), atol=1e-6)
    # a remainder with more columns than rows (1025 = 32² + 1, 36 = 5² + 11) cannot be orthonormal
    norms = dense_matrix(make_projector("kron", 1025, 36, seed=0)).norm(dim=0)
    assert torch.allclose(norms, torch.ones(36, dtype=torch.float64), atol=1e-6)


@pytest.mark.parametrize("name", sorted(PROJECTORS))
def test_backward_is_the_adjoint(name):
    P = make_projector(name, 3000, 77, seed=5)
    z = torch.randn(77, requires_grad=True)
    v = torch.randn(3000)
    (P.project(z) * v).sum().backward()
    assert torch.allclose(z.grad, P.adjoint(v), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(PROJECTORS))
def test_rebuilt_from_the_seed(name):
    z = torch.randn(64, generator=torch.Generator().manual_seed(1))
    a = make_projector(name, 3000, 64, seed=11).project(z)
    b = make_projector(name, 3000, 64, seed=11).project(z)
    c = make_projector(name, 3000, 64, seed=12).project(z)
    assert torch.equal(a, b) and not torch.allclose(a, c)


@pytest.mark.parametrize("name", ["kron", "fastfood", "sparse"])
def test_lenet5_size_covers_every_parameter(name):
    D, d = 431_080, 2_500  # LeNet-5 on 28x28 inputs
    P = make_projector(name, D, d, seed=0)
    theta = P.project(torch.randn(d, generator=torch.Generator().manual_seed(0)))
    assert theta.shape == (D,) and int((theta == 0).sum()) == 0
    assert abs(float(theta.norm()) / math.sqrt(d) - 1) < 0.05  # unit columns, nearly orthogonal
    if name == "kron":
        assert P.nbytes < 4 * 8 * math.sqrt(D * d) + 8 * D  # O(√(D·d)) factors + the permutation


def test_fwht_matches_the_hadamard_matrix():
    for m in range(0, 12):
        n = 1 << m
        x = torch.randn(3, n, dtype=torch.float64, generator=torch.Generator().manual_seed(m))
        expected = x @ torch.from_numpy(scipy.linalg.hadamard(n).astype(np.float64)).T
        assert torch.allclose(fwht(x), expected, atol=1e-9), n
    with pytest.raises(ValueError, match="power-of-two"):
        fwht(torch.zeros(6))


def test_kron_shape_never_leaves_rows_or_columns_out():
    assert kron_shape(100, 25) == (10, 5, 0, 0)
    assert kron_shape(101, 25) == (10, 4, 1, 9)  # remainder rows need remainder columns
    assert kron_shape(100, 26) == (9, 5, 19, 1)  # and the other way round
    assert kron_shape(101, 1) == (0, 0, 101, 1)
    for D in range(1, 60):
        for d in range(1, D + 1):
            rD, rd, D_rem, d_rem = kron_shape(D, d)
            assert rD * rD + D_rem == D and rd * rd + d_rem == d and rd <= rD
            assert (D_rem == 0) == (d_rem == 0)


def test_dimension_errors_name_the_parameter():
    with pytest.raises(ValueError, match="'dim'"):
        make_projector("kron", 10, 11, seed=0)
    with pytest.raises(ValueError, match="unknown projector 'nope'"):
        make_projector("nope", 10, 2, seed=0)
    with pytest.raises(ValueError, match="'dense'"):
        make_projector("dense", 10**7, 10**3, seed=0)
    with pytest.raises(ValueError, match="length 5"):
        KronProjector(20, 5, seed=0).project(torch.zeros(4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(PROJECTORS))
def test_cuda_matches_cpu(name):
    z = torch.randn(100, generator=torch.Generator().manual_seed(0))
    cpu = make_projector(name, 5000, 100, seed=2)
    gpu = make_projector(name, 5000, 100, seed=2, device="cuda")
    out = gpu.project(z.cuda())
    assert out.device.type == "cuda"
    if name != "dense":  # dense draws its chunks with the device's own generator
        assert torch.allclose(out.cpu(), cpu.project(z), atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("D, d", [(431_080, 1000), (431_080, 10_000), (60_000, 3_000), (5_000, 400), (3, 3), (10, 9)])
def test_sparse_reaches_every_coordinate_for_every_seed_and_size(seed, D, d):
    """Every row of P has a nonzero entry once duplicates are summed (a row repeating a column with
    opposite signs used to cancel: ~200 dead weights of LeNet-5 at d = 1000)."""
    P = make_projector("sparse", D, d, seed=seed)
    rows = torch.arange(D).repeat_interleave(P.m)
    matrix = torch.sparse_coo_tensor(torch.stack([rows, P.cols.cpu()]), P.vals.cpu().double().reshape(-1), (D, d),
                                     check_invariants=True).coalesce()
    nonzero = matrix.indices()[0][matrix.values() != 0]
    assert torch.unique(nonzero).numel() == D
    assert torch.unique(P.cols).numel() == d  # and every coordinate of z is used
