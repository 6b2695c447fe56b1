"""Random projections P: R^d -> R^D for subspace training (θ = θ₀ + P·z, seed 000 and Li et al. 2018).

Every projector is rebuilt from ``(D, d, seed)`` alone (P is part of the prior, never of a message), on
the CPU or a CUDA device, and covers *every* one of the D coordinates and uses every one of the d
coordinates of z, whatever D and d are (no perfect squares or powers of two needed). Columns have unit
norm (exactly for ``kron``, approximately for the others). One interface:

* ``project(z)``: P·z, differentiable (its backward is ``adjoint``, computed directly, so autograd
  keeps no intermediate of the projection alive);
* ``adjoint(v)``: Pᵀ·v;
* ``nbytes``: the memory the projector holds (what it stores to avoid regenerating).

Both accept float32 or float64 (the stored factors are cast on the fly), so a decoder can compute
θ in double precision and round once.

Projectors:

* ``dense``: i.i.d. N(0, 1/D) entries, regenerated chunk by chunk from per-chunk seeds in every
  product, never stored whole. O(D·d) time per product: only for small D·d.
* ``sparse``: Li, Hastie and Church's very sparse random projection (density 1/√D, entries ±1),
  each row given at least one nonzero (so no coordinate of θ is left untrained) and each column's
  entries scaled to unit norm. O(D·max(1, d/√D)) memory and time.
* ``fastfood``: Le, Sarlós and Smola's S·H·G·Π·H·B per block of n = 2^⌈log2 d⌉ rows, ⌈D/n⌉ blocks,
  truncated to D rows; the Walsh-Hadamard transform H is a vectorized product of small Sylvester
  factors (batched matmuls, no Python loop over elements, no host round trip on a GPU).
* ``kron``: a random row permutation of the direct sum (A ⊗ B) ⊕ R, A and B of shape ⌊√D⌋ × ⌊√d⌋ with
  orthonormal columns (QR of Gaussians), R a small Gaussian block for the remainder rows and columns
  (≤ 2√D+1 by ≤ 2√d+1; orthonormal columns when it has more rows than columns, else unit-norm ones). Memory O(√(D·d)) plus the remainder block and the
  permutation; P·z costs two small matmuls.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

__all__ = ["PROJECTORS", "Projector", "DenseProjector", "SparseProjector", "FastfoodProjector",
           "KronProjector", "make_projector", "fwht"]

_MIX = 0x9E3779B97F4A7C15  # golden-ratio constant: separates the seeds of independent random parts


def _sub_seed(seed: int, part: int) -> int:
    """A 63-bit seed for part ``part`` of a projector built from ``seed`` (deterministic)."""
    x = (int(seed) * 1_000_003 + int(part) * _MIX + 0x5851F42D4C957F2D) % (1 << 64)
    x ^= x >> 31
    x = (x * 0xBF58476D1CE4E5B9) % (1 << 64)
    x ^= x >> 29
    return x % (1 << 63)


def _gen(seed: int, part: int) -> torch.Generator:
    return torch.Generator().manual_seed(_sub_seed(seed, part))


class _Project(torch.autograd.Function):
    """P·z with P's adjoint as the backward (no intermediates kept)."""

    @staticmethod
    def forward(ctx, z, projector):  # type: ignore[override]
        ctx.projector = projector
        return projector._apply(z)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        return ctx.projector._apply_t(grad), None


class Projector:
    """P ∈ R^{D×d}, rebuilt from ``seed``. Subclasses implement ``_apply`` and ``_apply_t``."""

    name: ClassVar[str] = ""

    def __init__(self, D: int, d: int, seed: int, device: torch.device | str = "cpu") -> None:
        D, d = int(D), int(d)
        if d < 1:
            raise ValueError(f"parameter 'dim' must be >= 1, got {d}")
        if d > D:
            raise ValueError(f"parameter 'dim' ({d}) exceeds the number of parameters D = {D}")
        self.D, self.d, self.seed = D, d, int(seed)
        self.device = torch.device(device)

    # -- the interface -------------------------------------------------------------------------
    def project(self, z: torch.Tensor) -> torch.Tensor:
        """P·z for a vector z of length d (differentiable)."""
        self._check(z, self.d, "z")
        return _Project.apply(z, self)

    def adjoint(self, v: torch.Tensor) -> torch.Tensor:
        """Pᵀ·v for a vector v of length D."""
        self._check(v, self.D, "v")
        return self._apply_t(v)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self._stored())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(D={self.D}, d={self.d}, seed={self.seed}, device={self.device})"

    # -- for subclasses ------------------------------------------------------------------------
    def _apply(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _apply_t(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _stored(self) -> list[torch.Tensor]:
        return []

    def _check(self, x: torch.Tensor, n: int, what: str) -> None:
        if x.dim() != 1 or x.shape[0] != n:
            raise ValueError(f"{what} must be a vector of length {n}, got shape {tuple(x.shape)}")


# ------------------------------------------------------------------------------------------ dense
class DenseProjector(Projector):
    """Gaussian N(0, 1/D) entries, regenerated in row chunks on every product (never stored whole)."""

    name: ClassVar[str] = "dense"
    MAX_ENTRIES: ClassVar[int] = 1 << 31
    CHUNK_ENTRIES: ClassVar[int] = 1 << 22

    def __init__(self, D, d, seed, device="cpu") -> None:
        super().__init__(D, d, seed, device)
        if self.D * self.d > self.MAX_ENTRIES:
            raise ValueError(f"projector 'dense' regenerates all D·d = {self.D * self.d} entries on every "
                             f"product (limit {self.MAX_ENTRIES}); use 'kron', 'fastfood' or 'sparse'")
        self.rows = max(1, self.CHUNK_ENTRIES // self.d)
        self.scale = 1.0 / math.sqrt(self.D)

    def _chunks(self, dtype: torch.dtype):
        for k, start in enumerate(range(0, self.D, self.rows)):
            stop = min(start + self.rows, self.D)
            if self.device.type == "cuda":  # generated where it is used: no host round trip
                g = torch.Generator(device=self.device).manual_seed(_sub_seed(self.seed, k))
                block = torch.randn(stop - start, self.d, generator=g, device=self.device)
            else:
                block = torch.randn(stop - start, self.d, generator=_gen(self.seed, k))
            yield start, stop, block.to(dtype)

    def _apply(self, z):
        out = torch.empty(self.D, dtype=z.dtype, device=z.device)
        for start, stop, block in self._chunks(z.dtype):
            out[start:stop] = block @ z
        return out * self.scale

    def _apply_t(self, v):
        out = torch.zeros(self.d, dtype=v.dtype, device=v.device)
        for start, stop, block in self._chunks(v.dtype):
            out += block.T @ v[start:stop]
        return out * self.scale


# ----------------------------------------------------------------------------------------- sparse
class SparseProjector(Projector):
    """Very sparse random projection: about d/√D nonzeros ±1 per row, at least one in every row.

    Row i's first nonzero goes to column ``c[i]`` of a balanced random assignment (so every column
    gets ⌊D/d⌋ or more rows); the other ``m - 1`` columns of the row are uniform among the columns the
    row does not use yet, so a row never repeats a column: its ``m`` entries cannot cancel, and every
    row (every coordinate of θ) is nonzero. Every column is scaled to unit norm.
    """

    name: ClassVar[str] = "sparse"

    def __init__(self, D, d, seed, device="cpu") -> None:
        super().__init__(D, d, seed, device)
        D, d = self.D, self.d
        self.m = m = max(1, round(d / math.sqrt(D)))
        g = _gen(seed, 0)
        first = (torch.arange(D) % d)[torch.randperm(D, generator=g)]
        cols = first[:, None]
        if m > 1:
            cols = torch.cat([cols, _distinct_in_rows(first, m - 1, d, g)], dim=1)
        signs = torch.randint(0, 2, (D, m), generator=g).float() * 2 - 1
        counts = torch.bincount(cols.reshape(-1), minlength=d).float()
        self.cols = cols.reshape(-1).to(self.device)  # int64: index_select/index_add are fastest
        self.vals = (signs / counts.sqrt()[cols]).to(self.device)

    def _stored(self):
        return [self.cols, self.vals]

    def _apply(self, z):
        return (self.vals.to(z.dtype) * z.index_select(0, self.cols).view(self.D, self.m)).sum(dim=1)

    def _apply_t(self, v):
        contrib = (self.vals.to(v.dtype) * v[:, None]).reshape(-1)
        return torch.zeros(self.d, dtype=v.dtype, device=v.device).index_add_(0, self.cols, contrib)


def _distinct_in_rows(first: torch.Tensor, k: int, d: int, g: torch.Generator) -> torch.Tensor:
    """``k`` columns per row, uniform in [0, d), distinct within the row and from ``first``: rows with
    a repeat are drawn again (rare when k << d, the sparse case), deterministically from ``g``."""
    rest = torch.randint(0, d, (len(first), k), generator=g)
    while True:
        both = torch.cat([first[:, None], rest], dim=1).sort(dim=1).values
        again = (both[:, 1:] == both[:, :-1]).any(dim=1).nonzero().flatten()
        if not len(again):
            return rest
        if 2 * (k + 1) > d:  # dense rows: a permutation per row is cheaper than rejection
            for i in again.tolist():
                others = torch.randperm(d - 1, generator=g)[:k]
                rest[i] = others + (others >= first[i]).long()
            return rest
        rest[again] = torch.randint(0, d, (len(again), k), generator=g)


# --------------------------------------------------------------------------------------- fastfood
_HADAMARD_CACHE: dict[tuple[int, torch.dtype, str], torch.Tensor] = {}
_MAX_FACTOR_BITS = 5  # Sylvester factors of at most 32 x 32


def _hadamard(bits: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    key = (bits, dtype, str(device))
    if key not in _HADAMARD_CACHE:
        h = torch.ones(1, 1, dtype=dtype)
        for _ in range(bits):
            h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
        _HADAMARD_CACHE[key] = h.to(device)
    return _HADAMARD_CACHE[key]


def _factor_bits(m: int) -> list[int]:
    """Split m bits into near-equal factors of at most ``_MAX_FACTOR_BITS`` bits."""
    if m == 0:
        return []
    k = -(-m // _MAX_FACTOR_BITS)
    return [m // k + (1 if i < m % k else 0) for i in range(k)]


def fwht(x: torch.Tensor) -> torch.Tensor:
    """Unnormalized Walsh-Hadamard transform (Sylvester order) along the last dimension (a power of 2).

    H_{2^m} = H_{2^a1} ⊗ H_{2^a2} ⊗ ..., so the transform is one small matmul per factor on a reshaped
    view (no transposes, no Python loop over elements): a few vectorized passes over the data.
    """
    n = x.shape[-1]
    m = n.bit_length() - 1
    if n != 1 << m:
        raise ValueError(f"fwht needs a power-of-two length, got {n}")
    y = x.reshape(-1, n)
    rows = y.shape[0]
    before = 1
    for b in _factor_bits(m):
        f = 1 << b
        after = n // (before * f)
        h = _hadamard(b, x.dtype, x.device)
        if after == 1:  # the last factor: one GEMM from the right (h is symmetric)
            y = y.reshape(-1, f) @ h
        else:
            y = torch.matmul(h, y.reshape(rows * before, f, after))
        before *= f
    return y.reshape(x.shape)


class FastfoodProjector(Projector):
    """Stacked Fastfood blocks V_i = S_i·H·G_i·Π_i·H·B_i of size n = 2^⌈log2 d⌉, truncated to D rows.

    B: random signs; Π: random permutation; G: Gaussian diagonal; S: chi(n)/√n row scales. Each block
    is normalized by 1/(√n·‖G_i‖) so that H·G·Π·H·B has unit-norm columns, and the stack by √(n/D), so
    P's columns have unit norm in expectation over S (about ±1/√(2n)·√(n/D) relative spread).
    """

    name: ClassVar[str] = "fastfood"

    def __init__(self, D, d, seed, device="cpu") -> None:
        super().__init__(D, d, seed, device)
        self.n = n = 1 << max(1, (self.d - 1).bit_length())
        self.blocks = k = -(-self.D // n)
        g = _gen(seed, 0)
        signs = torch.randint(0, 2, (k, n), generator=g).float() * 2 - 1
        perm = torch.stack([torch.randperm(n, generator=g) for _ in range(k)])
        gauss = torch.randn(k, n, generator=g)
        chi = torch.randn(k, n, n if n <= 64 else 1, generator=g)  # chi(n) draws, exact for small n
        if n <= 64:
            s = chi.pow(2).sum(-1).sqrt()
        else:  # chi(n) = sqrt(chi2(n)); Wilson-Hilferty normal approximation of chi2(n) for large n
            t = 2.0 / (9 * n)
            s = (n * (1 - t + chi[..., 0] * math.sqrt(t)).clamp_min(1e-3) ** 3).sqrt()
        # H·G·Π·H·B has columns of norm √n·‖G‖; stacking ⌈D/n⌉ blocks truncated to D rows: √(D/n)
        scale = math.sqrt(n / self.D) / (math.sqrt(n) * gauss.norm(dim=1, keepdim=True))
        dev = self.device
        offsets = torch.arange(k)[:, None] * n  # permutations as flat indices (index_select is fast)
        self.B = signs.to(dev)
        self.perm = (perm + offsets).reshape(-1).to(torch.int32).to(dev)
        self.inv_perm = (torch.argsort(perm, dim=1) + offsets).reshape(-1).to(torch.int32).to(dev)
        self.G = gauss.to(dev)
        self.S = (s / math.sqrt(n) * scale).to(dev)  # row scale, all constants folded in

    def _stored(self):
        return [self.B, self.perm, self.inv_perm, self.G, self.S]

    def _apply(self, z):
        dt = z.dtype
        x = torch.zeros(self.blocks, self.n, dtype=dt, device=z.device)
        x[:, : self.d] = z  # every block sees the whole (padded) z
        x = fwht(x * self.B.to(dt))
        x = x.reshape(-1).index_select(0, self.perm).view(self.blocks, self.n) * self.G.to(dt)
        x = fwht(x) * self.S.to(dt)
        return x.reshape(-1)[: self.D]

    def _apply_t(self, v):
        dt = v.dtype
        y = torch.zeros(self.blocks * self.n, dtype=dt, device=v.device)
        y[: self.D] = v
        y = fwht(y.view(self.blocks, self.n) * self.S.to(dt)) * self.G.to(dt)
        y = y.reshape(-1).index_select(0, self.inv_perm).view(self.blocks, self.n)
        y = fwht(y) * self.B.to(dt)
        return y.sum(dim=0)[: self.d]


# ------------------------------------------------------------------------------------------- kron
def _orthonormal(rows: int, cols: int, g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(rows, cols, generator=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()  # sign fix: a deterministic Haar draw


def kron_shape(D: int, d: int) -> tuple[int, int, int, int]:
    """(rD, rd, D_rem, d_rem): the Kronecker block is rD² × rd², the remainder D_rem × d_rem.

    rD = ⌊√D⌋, rd = ⌊√d⌋, except that a remainder never has rows without columns or columns without
    rows (those coordinates would be left out): then the side with an exact square takes ⌊√(n-1)⌋.
    """
    rD, rd = math.isqrt(D), math.isqrt(d)
    if D - rD * rD > 0 and d - rd * rd == 0:
        rd = math.isqrt(d - 1)
    elif d - rd * rd > 0 and D - rD * rD == 0:
        rD = math.isqrt(D - 1)
    if rd == 0:  # d == 1 and D not a square: a single Gaussian column
        rD = 0
    return rD, rd, D - rD * rD, d - rd * rd


class KronProjector(Projector):
    """P = Π·((A ⊗ B) ⊕ R): θ coordinates permuted at random, the Kronecker block from two orthonormal
    factors, the remainder rows/columns from a Gaussian block with unit-norm columns."""

    name: ClassVar[str] = "kron"

    def __init__(self, D, d, seed, device="cpu") -> None:
        super().__init__(D, d, seed, device)
        self.rD, self.rd, self.D_rem, self.d_rem = kron_shape(self.D, self.d)
        g = _gen(seed, 0)
        dev = self.device
        self.A = _orthonormal(self.rD, self.rd, g).to(dev)
        self.B = _orthonormal(self.rD, self.rd, g).to(dev)
        if self.D_rem >= self.d_rem:  # orthonormal too: then all of P's columns are orthonormal
            self.R = _orthonormal(self.D_rem, self.d_rem, g).to(dev)
        else:
            rem = torch.randn(self.D_rem, self.d_rem, generator=g, dtype=torch.float64)
            self.R = (rem / rem.norm(dim=0, keepdim=True)).float().to(dev)
        perm = torch.randperm(self.D, generator=g)
        self.perm = perm.to(torch.int32).to(dev)
        self.inv_perm = torch.argsort(perm).to(torch.int32).to(dev)

    def _stored(self):
        return [self.A, self.B, self.R, self.perm, self.inv_perm]

    def _apply(self, z):
        dt = z.dtype
        k = self.rd * self.rd
        zm = z[:k].view(self.rd, self.rd)
        main = (self.A.to(dt) @ zm @ self.B.to(dt).T).reshape(-1)  # (A ⊗ B) vec(Z), row-major
        rem = self.R.to(dt) @ z[k:]
        return torch.cat([main, rem]).index_select(0, self.perm)

    def _apply_t(self, v):
        dt = v.dtype
        w = v.index_select(0, self.inv_perm)
        k = self.rD * self.rD
        wm = w[:k].view(self.rD, self.rD)
        main = (self.A.to(dt).T @ wm @ self.B.to(dt)).reshape(-1)
        rem = self.R.to(dt).T @ w[k:]
        return torch.cat([main, rem])


PROJECTORS: dict[str, type[Projector]] = {
    cls.name: cls for cls in (DenseProjector, SparseProjector, FastfoodProjector, KronProjector)
}


def make_projector(name: str, D: int, d: int, seed: int, device: torch.device | str = "cpu") -> Projector:
    try:
        cls = PROJECTORS[name]
    except KeyError:
        raise ValueError(f"unknown projector '{name}' (known: {', '.join(PROJECTORS)})") from None
    return cls(D, d, seed, device)
