"""Hessian-weighted K-means (Choi et al. 2017) and its diameter-regularized variant (seed 001 Sec. 6),
scalar and vector, and the codes it gives a model's weight tensors (for ``bench.kit.quantization``'s
message layout)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from torch import nn

from bench.kit.quantization import TensorCode, coded_tensor_names, nearest

__all__ = ["hw_objective", "to_blocks", "weighted_kmeans", "weighted_quantize_tensors"]


# ------------------------------------------------ Hessian-weighted K-means (seed 001, Choi et al.)
def _kmeanspp(points: np.ndarray, mass: np.ndarray, levels: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding with each point's probability also proportional to its weight ``mass``."""
    p = mass / mass.sum() if mass.sum() > 0 else np.full(len(points), 1 / len(points))
    centres = [points[rng.choice(len(points), p=p)]]
    d2 = ((points - centres[0]) ** 2).sum(1)
    for _ in range(levels - 1):
        score = mass * d2
        if score.sum() <= 0:
            break
        centres.append(points[rng.choice(len(points), p=score / score.sum())])
        d2 = np.minimum(d2, ((points - centres[-1]) ** 2).sum(1))
    return np.array(centres)


def _initial_centres(points: np.ndarray, weights: np.ndarray, levels: int, init: str,
                     rng: np.random.Generator) -> np.ndarray:
    if init == "auto":
        init = "linear" if points.shape[1] == 1 else "kmeans++"
    if init == "linear":  # evenly between the (coordinate-wise) extremes, Han et al.'s choice for m = 1
        return np.linspace(points.min(0), points.max(0), levels)
    if init == "kmeans++":
        return _kmeanspp(points, weights.sum(1), levels, rng)
    if init == "random":  # Algorithm 1: K distinct weight vectors at random
        distinct = np.unique(points, axis=0)
        return distinct[rng.choice(len(distinct), levels, replace=False)]
    raise ValueError(f"init must be 'auto', 'linear', 'kmeans++' or 'random', got {init!r}")


def _nearest_centres(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre in the unweighted Euclidean distance (Algorithm 1's assignment)."""
    if points.shape[1] == 1:
        order = np.argsort(centres[:, 0], kind="stable")
        return order[nearest(points[:, 0], centres[order, 0])]
    d2 = (centres**2).sum(1)[None, :] - 2.0 * points @ centres.T  # + |w|², the same for every centre
    return d2.argmin(1)


def _farthest_pair(centres: np.ndarray) -> tuple[int, int]:
    d2 = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    k1, k2 = np.unravel_index(np.argmax(d2), d2.shape)
    return int(k1), int(k2)


class _ClusterSums:
    """Assignment and per-cluster sums of the weights and weighted points.

    For m = 1 the points are sorted once and a cluster is a run of them: an assignment is the K run
    boundaries (the midpoints between sorted centres, searched in the sorted points) and the sums come
    from prefix sums, so an iteration costs O(K log N) instead of O(N). Ties go to the lower centre,
    as in :func:`nearest`.
    """

    def __init__(self, points: np.ndarray, weights: np.ndarray) -> None:
        self.points, self.weights = points, weights
        self.scalar = points.shape[1] == 1
        if self.scalar:
            self.order = np.argsort(points[:, 0], kind="stable")
            self.sorted = points[self.order, 0]
            w = weights[self.order, 0]
            self.cum_w = np.concatenate([[0.0], np.cumsum(w)])
            self.cum_wx = np.concatenate([[0.0], np.cumsum(w * self.sorted)])

    def assign(self, centres: np.ndarray):
        if not self.scalar:
            return _nearest_centres(self.points, centres)
        rank = np.argsort(centres[:, 0], kind="stable")
        c = centres[rank, 0]
        ends = np.searchsorted(self.sorted, (c[1:] + c[:-1]) / 2, side="right")
        return rank, np.concatenate([[0], ends, [len(self.sorted)]])

    def sums(self, assignment, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.scalar:
            m = self.points.shape[1]
            mass = np.stack([np.bincount(assignment, self.weights[:, d], minlength=k) for d in range(m)], 1)
            moment = np.stack([np.bincount(assignment, self.weights[:, d] * self.points[:, d], minlength=k)
                               for d in range(m)], 1)
            return mass, moment
        rank, bounds = assignment
        mass, moment = np.zeros((k, 1)), np.zeros((k, 1))
        mass[rank, 0] = np.diff(self.cum_w[bounds])
        moment[rank, 0] = np.diff(self.cum_wx[bounds])
        return mass, moment

    def same(self, a, b) -> bool:
        if not self.scalar:
            return np.array_equal(a, b)
        return np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])

    def labels(self, assignment) -> np.ndarray:
        if not self.scalar:
            return assignment
        rank, bounds = assignment
        out = np.empty(len(self.sorted), np.int64)
        out[self.order] = np.repeat(rank, np.diff(bounds))
        return out


def hw_objective(points: np.ndarray, weights: np.ndarray, codebook: np.ndarray, assignments: np.ndarray,
                 beta: float = 0.0) -> float:
    """Seed 001 eqs. (34)/(35): Σ_j (w_j - c_{q_j})ᵀ H_j (w_j - c_{q_j}) + β max_{k1,k2} ||c_k1 - c_k2||²."""
    points, weights = np.atleast_2d(points.T).T, np.atleast_2d(weights.T).T
    codebook = codebook.reshape(-1, points.shape[1])
    value = float((weights * (points - codebook[assignments]) ** 2).sum())
    if beta and len(codebook) > 1:
        k1, k2 = _farthest_pair(codebook)
        value += beta * float(((codebook[k1] - codebook[k2]) ** 2).sum())
    return value


def weighted_kmeans(points: np.ndarray, weights: np.ndarray, levels: int, seed: int, beta: float = 0.0,
                    init: str = "auto", iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Hessian-weighted K-means (Choi et al. 2017) and its diameter-regularized variant (seed 001 Sec. 6).

    ``points`` is (N,) or (N, m) (m = block length, vector quantization), ``weights`` the same shape:
    the diagonal Hessian ``H^(j)`` of each coordinate (>= 0). Minimizes, by alternation (seed 001
    Algorithm 1),

        Σ_k Σ_{j ∈ C_k} (w_j - c_k)ᵀ H^(j) (w_j - c_k)  +  β max_{k1,k2} ||c_k1 - c_k2||²    (eqs. 34/35)

    * Assignment: each point to the nearest centre in the *unweighted* distance ``||w_j - c_k||²``, as
      Algorithm 1 (eq. 36) says. For m = 1 this is also the best assignment for the weighted objective
      (``h_j`` scales all K distances alike); for m > 1 eq. (35)'s objective would weigh coordinates by
      ``H^(j)``: where the paper's Algorithm 1 and its eq. 35 differ, this follows Algorithm 1.
    * Update: every centre is the curvature-weighted mean of its cluster (eq. 38). With β > 0 the
      farthest pair ``(k1, k2)`` of the previous centres is pulled together with weight β (eq. 37).
      Eq. (37) has each new centre of the pair on the other's right-hand side; it is solved exactly, as
      the 2×2 linear system per coordinate it is (its solution is the joint minimizer over ``(c_k1,
      c_k2)`` with the assignments and other centres fixed).
    * A cluster with no weight keeps its centre; it stops when assignments and centres repeat, or after
      ``iterations``. Unused centres are dropped at the end; for m = 1 the codebook is sorted.

    ``init``: ``linear`` (evenly between the extremes), ``kmeans++`` (weighted D² seeding), ``random``
    (K distinct points, Algorithm 1), ``auto`` (linear for m = 1, kmeans++ otherwise); randomness from
    ``seed``. Returns ``(codebook (K', m) float64 — (K',) when points are 1-D, assignments int64)``.
    """
    scalar = np.ndim(points) == 1
    points = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    weights = np.asarray(weights, dtype=np.float64).reshape(points.shape)
    if levels < 1 or beta < 0 or iterations < 0:
        raise ValueError("levels must be >= 1, beta >= 0 and iterations >= 0")
    if np.any(weights < 0) or not np.all(np.isfinite(weights)) or not np.all(np.isfinite(points)):
        raise ValueError("points must be finite and weights finite and >= 0")
    m = points.shape[1]
    if len(points) == 0:
        return (np.zeros(0) if scalar else np.zeros((0, m))), np.zeros(0, np.int64)
    distinct, inverse = np.unique(points, axis=0, return_inverse=True)
    if len(distinct) <= levels:
        codebook, assignments = distinct, inverse.reshape(-1).astype(np.int64)
    else:
        rng = np.random.default_rng(seed)
        centres = _initial_centres(points, weights, levels, init, rng)
        sums = _ClusterSums(points, weights)
        assignments = None
        for _ in range(iterations):
            new = sums.assign(centres)
            mass, moment = sums.sums(new, len(centres))
            updated = np.where(mass > 0, moment / np.where(mass > 0, mass, 1.0), centres)
            if beta > 0 and len(centres) > 1:
                k1, k2 = _farthest_pair(centres)
                a1, a2 = mass[k1] + beta, mass[k2] + beta
                det = a1 * a2 - beta**2
                ok = det > 0
                safe = np.where(ok, det, 1.0)
                c1 = (a2 * moment[k1] + beta * moment[k2]) / safe
                c2 = (a1 * moment[k2] + beta * moment[k1]) / safe
                updated[k1] = np.where(ok, c1, updated[k1])
                updated[k2] = np.where(ok, c2, updated[k2])
            converged = assignments is not None and sums.same(new, assignments) and np.array_equal(updated, centres)
            assignments, centres = new, updated
            if converged:
                break
        assignments = sums.labels(assignments) if assignments is not None else _nearest_centres(points, centres)
        used = np.unique(assignments)
        codebook, assignments = centres[used], np.searchsorted(used, assignments).astype(np.int64)
    if m == 1:
        order = np.argsort(codebook[:, 0], kind="stable")
        codebook, assignments = codebook[order], np.argsort(order)[assignments]
    return (codebook[:, 0] if scalar else codebook), assignments


def to_blocks(values: np.ndarray, block: int) -> np.ndarray:
    """Consecutive values as rows of ``block``; the last row is padded with zeros."""
    values = np.asarray(values).ravel()
    padded = np.zeros(-(-len(values) // block) * block, dtype=values.dtype)
    padded[: len(values)] = values
    return padded.reshape(-1, block)


def weighted_quantize_tensors(model: nn.Module, curvature: dict[str, np.ndarray], levels: int, seed: int, *,
                              scope: Literal["layer", "network"] = "layer", block: int = 1, beta: float = 0.0,
                              init: str = "auto", iterations: int = 100,
                              masks: dict[str, np.ndarray] | None = None,
                              beta_scale: Literal["absolute", "mass"] = "absolute") -> list[TensorCode]:
    """(Diameter-regularized) Hessian-weighted K-means codes for every coded tensor (seed 001 Sec. 6).

    ``curvature`` holds the diagonal Hessian (e.g. ``bench.kit.curvature.diagonal_curvature``) of every coded
    tensor. ``scope='layer'``: one codebook per tensor; ``'network'``: one codebook for all (encode with
    ``shared_codebook=True``). ``block = m > 1``: vector quantization of ``m`` consecutive kept weights
    (the last block of a tensor is padded with a zero of zero curvature). With ``masks`` only the kept
    weights are clustered (positions go in the message: encode with ``sparse=True``). A tiny damping
    (1e-8 × the mean curvature) keeps weights of zero curvature from leaving a cluster weightless.
    ``beta_scale='mass'`` multiplies β by the clustered group's total curvature ``Σ_j h_j`` (a tensor,
    or the network), which makes β scale-free: the penalty is then ``β·diameter²`` against the
    curvature-weighted *mean* squared error; ``'absolute'`` uses β as in seed 001 eq. (34).
    """
    if scope not in ("layer", "network"):
        raise ValueError(f"scope must be 'layer' or 'network', got {scope!r}")
    if beta_scale not in ("absolute", "mass"):
        raise ValueError(f"beta_scale must be 'absolute' or 'mass', got {beta_scale!r}")
    names = coded_tensor_names(model)
    parts = []  # (name, shape, positions, blocks of values, blocks of weights)
    for name in names:
        w = model.get_parameter(name).detach().cpu().numpy().astype(np.float64).ravel()
        h = np.asarray(curvature[name], dtype=np.float64).ravel()
        if h.shape != w.shape:
            raise ValueError(f"curvature of '{name}' has {h.size} values, the tensor {w.size}")
        positions = None if masks is None else np.flatnonzero(np.asarray(masks[name]).ravel())
        if positions is not None:
            w, h = w[positions], h[positions]
        parts.append([name, tuple(model.get_parameter(name).shape), positions, w, h])
    all_h = np.concatenate([p[4] for p in parts]) if parts else np.zeros(0)
    for part in parts:
        group_h = all_h if scope == "network" else part[4]
        damping = 1e-8 * (float(group_h.mean()) if group_h.size and group_h.mean() > 0 else 1.0)
        part[3], part[4] = to_blocks(part[3], block), to_blocks(part[4] + damping, block)
    def scaled(weights: np.ndarray) -> float:
        return beta * float(weights.sum()) if beta_scale == "mass" else beta

    if scope == "network":
        points, weights = np.concatenate([p[3] for p in parts]), np.concatenate([p[4] for p in parts])
        codebook, assignments = weighted_kmeans(points, weights, levels, seed, scaled(weights), init, iterations)
        bounds = np.cumsum([0] + [len(p[3]) for p in parts])
        results = [(codebook, assignments[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    else:
        results = [weighted_kmeans(p[3], p[4], levels, seed + i, scaled(p[4]), init, iterations)
                   for i, p in enumerate(parts)]
    return [TensorCode(name, shape, positions, np.asarray(cb, np.float32).ravel(), q.astype(np.int64), block)
            for (name, shape, positions, _, _), (cb, q) in zip(parts, results)]
