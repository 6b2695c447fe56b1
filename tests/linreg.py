"""The linear-regression testbed of seed 001 (Bu et al. 2021, Section 5): exact formulas and Monte Carlo.

``Y = Xᵀw* + ε``, ``X ~ N(0, Σ_X)``, ``ε ~ N(0, σ'²)``, squared loss, ERM ``W = (XXᵀ)⁻¹XY``. With
``Σ_X = I`` (the testbed's choice, and this module's) the population risk of any ``w`` is exactly
``L_μ(w) = ||w - w*||² + σ'²``, so a Monte-Carlo run over many draws of ``S`` needs no test set.

Exact formulas (``d`` features, ``n`` examples, ``σ'²`` the noise variance):

* Lemma 3 (eq. 19): ``gen(μ, P_W|S) = σ'²(d/n)(2 + (d+1)/(n-d-1))`` for the ERM, ``n > d + 1``.
* Proposition 1 (eq. 21): ``gen(μ, P_Ŵ|S) ≤ 2(C(w*)||Σ_X|| + σ'²)·sqrt(I(W;Ŵ)/n)``.
* Proposition 2 (eqs. 24-25): ``R(D) ≤ (d/2)(ln(dσ'²/((n-d-1)D)))⁺`` and
  ``D(R) ≤ dσ'²/(n-d-1)·e^{-2R/d}`` (R in nats), the distortion being ``d_S(W, Ŵ) = L_S(Ŵ) - L_S(W)``.
* The achievability channel of eq. 26, ``Ŵ = (1-α)W + αw* + ξ``, ``ξ ~ N(0, (1-α)(D/d)Σ_X⁻¹)``,
  ``α = nD/(dσ'²)``, has expected distortion exactly ``D`` (Appendix C; it needs ``w*``: the "Oracle").

:func:`simulate` draws ``S`` many times (the dataset plugin's own sampler, ``linear_regression_sample``)
and compares the ERM with K-means compression of its coordinates (the paper's Figure 2: ``K``
clusters, centres the cluster means) and the Oracle: empirical risk, population risk, generalization
error, distortion, and the rate of each K-means model as the length of a real message (constriction-
coded assignments and the float32 centres) in nats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from bench.kit import coding
from bench_plugins.datasets import LinearRegressionParams, linear_regression_sample, linear_regression_w_star

LN2 = math.log(2.0)


# --------------------------------------------------------------------------------- exact formulas
def _check_dims(d: int, n: int, need: int = 1) -> None:
    if d < 1 or n - d - 1 < need:
        raise ValueError(f"needs d >= 1 and n > d + {need} (got d = {d}, n = {n})")


def erm_generalization_error(d: int, n: int, noise_var: float = 1.0) -> float:
    """Seed 001 Lemma 3: the ERM's expected generalization error ``σ'²(d/n)(2 + (d+1)/(n-d-1))``."""
    _check_dims(d, n)
    return noise_var * d / n * (2.0 + (d + 1) / (n - d - 1))


def erm_population_risk(d: int, n: int, noise_var: float = 1.0) -> float:
    """``E[L_μ(W)] = σ'² + E||W - w*||² = σ'²(1 + d/(n-d-1))`` (Σ_X = I)."""
    _check_dims(d, n)
    return noise_var * (1.0 + d / (n - d - 1))


def erm_empirical_risk(d: int, n: int, noise_var: float = 1.0) -> float:
    """``E[L_S(W)] = σ'²(n-d)/n`` (the residual of a least-squares fit)."""
    _check_dims(d, n, need=0)
    return noise_var * (n - d) / n


def distortion_rate_bound(rate_nats, d: int, n: int, noise_var: float = 1.0):
    """Seed 001 Proposition 2, eq. (25): ``D(R) ≤ dσ'²/(n-d-1)·e^{-2R/d}`` (R in nats)."""
    _check_dims(d, n)
    return d * noise_var / (n - d - 1) * np.exp(-2.0 * np.asarray(rate_nats, dtype=float) / d)


def rate_distortion_bound(distortion, d: int, n: int, noise_var: float = 1.0):
    """Seed 001 Proposition 2, eq. (24): ``R(D) ≤ (d/2)(ln(dσ'²/((n-d-1)D)))⁺`` nats."""
    _check_dims(d, n)
    ratio = d * noise_var / ((n - d - 1) * np.asarray(distortion, dtype=float))
    return d / 2.0 * np.maximum(np.log(ratio), 0.0)


def compressed_generalization_bound(mi_nats, diameter_sq: float, n: int, noise_var: float = 1.0,
                                    sigma_x_norm: float = 1.0):
    """Seed 001 Proposition 1, eq. (21): ``2(C(w*)||Σ_X|| + σ'²)·sqrt(I(W;Ŵ)/n)``."""
    return 2.0 * (diameter_sq * sigma_x_norm + noise_var) * np.sqrt(np.asarray(mi_nats, dtype=float) / n)


def population_risk(w: np.ndarray, w_star: np.ndarray, noise_var: float = 1.0) -> np.ndarray:
    """``L_μ(w) = ||w - w*||² + σ'²`` for Σ_X = I (rows of ``w`` are models)."""
    return ((np.asarray(w) - w_star) ** 2).sum(-1) + noise_var


# ---------------------------------------------------------------------------------- estimators
def erm(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares for a batch of datasets: ``x`` (B, n, d), ``y`` (B, n) -> ``W`` (B, d)."""
    xtx = np.einsum("bni,bnj->bij", x, x)
    xty = np.einsum("bni,bn->bi", x, y)
    return np.linalg.solve(xtx, xty[..., None])[..., 0]


def empirical_risk(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``L_S(w) = (1/n)||Y - Xᵀw||²`` per dataset of the batch."""
    return ((y - np.einsum("bnd,bd->bn", x, w)) ** 2).mean(-1)


def kmeans_rows(w: np.ndarray, levels: int, iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """1-D K-means of each row's coordinates (Lloyd, centres started evenly between min and max), all rows
    at once: returns centres (B, K) and assignments (B, d). A centre left without points keeps its place."""
    w = np.asarray(w, dtype=np.float64)
    centres = np.linspace(w.min(1), w.max(1), levels, axis=1)
    assign = np.zeros(w.shape, np.int64)
    for _ in range(iterations):
        new = np.abs(w[:, :, None] - centres[:, None, :]).argmin(-1)
        onehot = new[:, :, None] == np.arange(levels)
        count = onehot.sum(1)
        total = (onehot * w[:, :, None]).sum(1)
        updated = np.where(count > 0, total / np.maximum(count, 1), centres)
        done = np.array_equal(new, assign) and np.array_equal(updated, centres)
        assign, centres = new, updated
        if done:
            break
    return centres, assign


def kmeans_message_nats(centres: np.ndarray, assign: np.ndarray, precision: str = "float32") -> float:
    """Length in nats of a real message for one K-means model: the used centres at ``precision`` and the
    entropy-coded assignments (``bench.kit.coding``), in one section container."""
    used, q = np.unique(assign, return_inverse=True)
    sections = {"C": coding.encode_floats(centres[used], precision),
                "Q": coding.encode_symbols(q.reshape(-1), max(len(used), 1))}
    return 8 * len(coding.pack_sections(sections)) * LN2


def oracle_channel(w: np.ndarray, w_star: np.ndarray, distortion: float, n: int, noise_var: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Seed 001 eq. (26) for Σ_X = I: ``(1-α)W + αw* + N(0, (1-α)(D/d)I)``, ``α = nD/(dσ'²) ≤ 1``."""
    d = w.shape[-1]
    alpha = n * distortion / (d * noise_var)
    if not 0 <= alpha <= 1:
        raise ValueError(f"the oracle needs 0 <= D <= dσ'²/n = {d * noise_var / n}, got D = {distortion}")
    noise = rng.standard_normal(w.shape) * math.sqrt((1 - alpha) * distortion / d)
    return (1 - alpha) * w + alpha * w_star + noise


# --------------------------------------------------------------------------------- Monte Carlo
@dataclass
class Outcome:
    """Per-draw values of one method (ERM, K-means with K levels, Oracle with distortion D)."""

    empirical: np.ndarray
    population: np.ndarray
    distortion: np.ndarray  # L_S(Ŵ) - L_S(W)
    rate_nats: np.ndarray | None = None

    @property
    def generalization(self) -> np.ndarray:
        return self.population - self.empirical

    @staticmethod
    def summary(values: np.ndarray) -> tuple[float, float]:
        """Mean and its standard error."""
        return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


@dataclass
class Simulation:
    params: LinearRegressionParams
    draws: int
    erm: Outcome
    kmeans: dict[int, Outcome] = field(default_factory=dict)
    oracle: dict[float, Outcome] = field(default_factory=dict)

    @property
    def noise_var(self) -> float:
        return self.params.noise**2

    def table(self) -> list[dict[str, float]]:
        """One row per method: means (± standard errors) and the matching exact formulas."""
        p = self.params
        rows = []
        items = [("erm", None, self.erm)] + [("kmeans", k, o) for k, o in self.kmeans.items()] + [
            ("oracle", d, o) for d, o in self.oracle.items()]
        for method, setting, o in items:
            row = {"method": method, "setting": setting}
            for name, values in (("empirical", o.empirical), ("population", o.population),
                                 ("generalization", o.generalization), ("distortion", o.distortion)):
                row[name], row[f"{name}_se"] = Outcome.summary(values)
            if o.rate_nats is not None:
                row["rate_nats"] = float(o.rate_nats.mean())
                row["distortion_rate_bound"] = float(distortion_rate_bound(row["rate_nats"], p.d, p.n, self.noise_var))
            rows.append(row)
        return rows


def simulate(params: LinearRegressionParams | None = None, draws: int = 10_000, levels: Sequence[int] = (2, 3, 4),
             oracle_distortions: Sequence[float] = (), seed: int = 0, chunk: int = 500,
             precision: str = "float32", message_rates: bool = True) -> Simulation:
    """Monte Carlo over ``draws`` independent training sets of the testbed (default: seed 001's d = 50,
    n = 80, σ'² = 1, w* with two values). Data come from ``linear_regression_sample``; ``seed`` fixes them.
    ``message_rates=False`` skips coding a message per draw and K (a few ms each) when rates are not needed."""
    p = params or LinearRegressionParams()
    noise_var = p.noise**2
    w_star = linear_regression_w_star(p.d, p.w_values)
    rng = np.random.default_rng(seed)
    oracle_rng = np.random.default_rng([seed, 1])  # the Oracle's noise does not shift the data draws
    parts: dict[tuple[str, object], list[list[np.ndarray]]] = {}

    def add(key, *values):
        bucket = parts.setdefault(key, [[] for _ in values])
        for store, v in zip(bucket, values):
            store.append(v)

    for start in range(0, draws, chunk):
        b = min(chunk, draws - start)
        x, y = linear_regression_sample(p, b * p.n, rng)
        x, y = x.reshape(b, p.n, p.d), y.reshape(b, p.n)
        w = erm(x, y)
        base = empirical_risk(w, x, y)
        add(("erm", None), base, population_risk(w, w_star, noise_var), np.zeros(b))
        for k in levels:
            centres, assign = kmeans_rows(w, k)
            w_hat = np.take_along_axis(centres, assign, 1)
            emp = empirical_risk(w_hat, x, y)
            values = [emp, population_risk(w_hat, w_star, noise_var), emp - base]
            if message_rates:
                values.append(np.array([kmeans_message_nats(c, a, precision) for c, a in zip(centres, assign)]))
            add(("kmeans", k), *values)
        for dist in oracle_distortions:
            w_hat = oracle_channel(w, w_star, dist, p.n, noise_var, oracle_rng)
            emp = empirical_risk(w_hat, x, y)
            add(("oracle", dist), emp, population_risk(w_hat, w_star, noise_var), emp - base)

    def outcome(key) -> Outcome:
        return Outcome(*[np.concatenate(v) for v in parts[key]])

    sim = Simulation(p, draws, outcome(("erm", None)))
    sim.kmeans = {k: outcome(("kmeans", k)) for k in levels}
    sim.oracle = {dist: outcome(("oracle", dist)) for dist in oracle_distortions}
    return sim
