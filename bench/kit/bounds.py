"""Bounds arithmetic: Occam prior, binomial-tail / kl / Maurer / Catoni error bounds (BOUNDS.md 1-3).

Pure functions, no plugin state. Every function validates its arguments and raises ``ValueError``
naming the bad one. Conventions (BOUNDS.md): ``n`` training examples, ``train_err`` (ê) the empirical
0-1 error, ``kl_nats`` the complexity in nats, ``delta`` the confidence parameter. Every returned bound is
a float in ``[train_err, 1]``, rounded *up* (a bisection returns the end of its bracket that is known to
be at least the exact value), so a rounding error never makes a certificate claim more than it may.

Numerical notes
---------------
* The binomial CDF is evaluated in log space (:func:`binomial_logcdf`): it falls back to a
  log-sum-exp over the lower tail when the CDF is below the normal-float range, so thresholds like
  ``exp(-10**6)`` are handled without underflowing to ``-inf``.
* ``kl_inverse(0, c) = 1 - e^{-c}`` and the binomial inversion with ``k = 0`` (``1 - t^{1/n}``) are
  computed in closed form with ``expm1``; ``c`` huge gives ``1.0``.
* Catoni's ``Φ⁻¹_γ(x) = expm1(-γx) / expm1(-γ)`` (no cancellation for small ``γ``); the infimum over
  ``λ`` is taken over ``t = ln λ`` on a dense grid then refined by bounded Brent; the returned ``λ`` is
  one at which the formula is evaluated, so the result is always a valid bound.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

from bench.kit.coding.bits import elias_delta_bits as _coding_elias_delta_bits

__all__ = [
    "DEFAULT_CATONI_ALPHA",
    "FORMS",
    "CatoniResult",
    "KLParts",
    "binomial_logcdf",
    "binomial_tail_inversion",
    "catoni_bound",
    "catoni_objective",
    "clopper_pearson_lower",
    "elias_delta_bits",
    "error_bound",
    "errors_from_rate",
    "kl_bernoulli",
    "kl_inverse",
    "message_length_code_bits",
    "maurer_bound",
    "mc_error_upper_bound",
    "occam_binomial_bound",
    "occam_kl_bound",
    "occam_kl_nats",
]

LN2 = math.log(2.0)

#: Catoni's ``α`` when none is given (fixed before seeing data; record it with the bound).
DEFAULT_CATONI_ALPHA = 1.0001

#: The error-bound forms :func:`error_bound` knows.
FORMS: tuple[str, ...] = ("binomial", "kl", "maurer", "catoni")

# Catoni's λ is searched over (1, _CATONI_LAMBDA_MAX_FACTOR · n].
_CATONI_LAMBDA_MAX_FACTOR = 1e12
_CATONI_GRID_POINTS = 4000

# Below this the incomplete-beta CDF is not trusted to full relative precision (it underflows to
# subnormals, then 0); the log-space tail sum takes over.
_LOGCDF_DIRECT_MIN = 1e-280


# --------------------------------------------------------------------------- validation helpers


def _real(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    x = float(value)
    if math.isnan(x):
        raise ValueError(f"{name} must not be NaN")
    return x


def _check_unit(name: str, value) -> float:
    x = _real(name, value)
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return x


def _check_count(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if isinstance(value, numbers.Integral):
        k = int(value)
    elif isinstance(value, numbers.Real) and math.isfinite(float(value)) and float(value).is_integer():
        k = int(value)
    else:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if k < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return k


def _check_kl(name: str, value) -> float:
    x = _real(name, value)
    if not (math.isfinite(x) and x >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return x


def _check_delta(name: str, value) -> float:
    x = _real(name, value)
    if not 0.0 < x < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value!r}")
    return x


def _check_alpha(value) -> float:
    x = _real("alpha", value)
    if not (math.isfinite(x) and x > 1.0):
        raise ValueError(f"alpha must be a finite number > 1, got {value!r}")
    return x


# --------------------------------------------------------------------------- description length


def elias_delta_bits(n: int) -> int:
    """Length in bits of the Elias delta code of ``n >= 1`` (the coder's own, see ``bench.kit.coding``)."""
    return _coding_elias_delta_bits(_check_count("n", n))


@dataclass(frozen=True)
class KLParts:
    """An Occam KL for a point-mass posterior, ``(message + length code + configuration) bits · ln 2``."""

    message_bits: float
    length_code_bits: float
    config_bits: float
    nats: float

    @property
    def total_bits(self) -> float:
        return self.message_bits + self.length_code_bits + self.config_bits


def message_length_code_bits(message_bits) -> int:
    """The prefix code of a message's length ``ℓ >= 0``: Elias delta of ``ℓ + 1`` (so that the empty
    message of a configuration that sends nothing, e.g. a data-dependent prior's own model, has a
    code too). A non-integer ``ℓ`` is rounded up (a message has a whole number of bits)."""
    return elias_delta_bits(math.ceil(_check_kl("message_bits", message_bits)) + 1)


def occam_kl_nats(message_bits, config_bits=0.0, length_code_bits=None) -> KLParts:
    """KL of the point mass on a ``message_bits``-bit message under the Occam prior (BOUNDS.md 1).

    ``length_code_bits`` defaults to :func:`message_length_code_bits` (Elias delta of ``ℓ + 1``).
    ``config_bits`` is ``L(c)``, the length of the configuration under the configuration code.
    """
    message = _check_kl("message_bits", message_bits)
    hparam = _check_kl("config_bits", config_bits)
    if length_code_bits is None:
        length = float(message_length_code_bits(message))
    else:
        length = _check_kl("length_code_bits", length_code_bits)
    return KLParts(
        message_bits=message,
        length_code_bits=length,
        config_bits=hparam,
        nats=(message + length + hparam) * LN2,
    )


# --------------------------------------------------------------------------- binomial tail


def _log_binom_pmf(j: np.ndarray, n: int, p: float) -> np.ndarray:
    """ln P[Bin(n, p) = j] for 0 < p < 1, via ``C(n, j) = 1 / ((n + 1) B(n - j + 1, j + 1))``."""
    return -math.log(n + 1) - special.betaln(n - j + 1.0, j + 1.0) + j * math.log(p) + (n - j) * math.log1p(-p)


def binomial_logcdf(k, n, p) -> float:
    """``ln P[Binomial(n, p) <= k]`` without underflow.

    Uses ``log1p(-P[X > k])`` when the CDF is above 1/2, the log of the regularized incomplete beta
    function in the normal range, and a
    log-sum-exp of the pmf from ``k`` downwards (a geometrically decaying series, truncated when the
    remainder is below 1e-17 relative) when the CDF is too small for a float. ``k`` may be any integer
    (``k < 0`` gives ``-inf``, ``k >= n`` gives ``0``).
    """
    n = _check_count("n", n, minimum=0)
    if isinstance(k, bool) or not isinstance(k, numbers.Real) or math.isnan(float(k)):
        raise ValueError(f"k must be an integer, got {k!r}")
    if not (isinstance(k, numbers.Integral) or float(k).is_integer() or math.isinf(float(k))):
        raise ValueError(f"k must be an integer, got {k!r}")
    p = _check_unit("p", p)
    if k < 0:
        return -math.inf
    if k >= n:
        return 0.0
    return _binomial_logcdf(int(k), n, p)


def _binomial_logcdf(k: int, n: int, p: float) -> float:
    """:func:`binomial_logcdf` for validated ``0 <= k < n``, ``p`` in [0, 1]."""
    if p == 0.0:
        return 0.0
    if p == 1.0:
        return -math.inf
    # P[X <= k] = 1 - I_p(k + 1, n - k); scipy's betaincc is accurate to ~1 ulp here in relative
    # terms, unlike bdtr (~1e-9 relative at n = 10^6).
    cdf = float(special.betaincc(k + 1, n - k, p))
    if cdf > 0.5:
        return math.log1p(-float(special.betainc(k + 1, n - k, p)))
    if cdf >= _LOGCDF_DIRECT_MIN:
        return math.log(cdf)
    # Lower tail far below the mean. Ratio pmf(j-1)/pmf(j) = j(1-p)/((n-j+1)p) decreases as j
    # decreases, so the terms below k decay at least geometrically with ratio r = r(k).
    r = k * (1.0 - p) / ((n - k + 1) * p)
    if 0.0 < r < 1.0:
        # r^M / (1 - r) <= 1e-17 (relative to the largest term)
        m_terms = math.ceil((40.0 + math.log(1.0 / (1.0 - r))) / -math.log(r)) + 1
        m_terms = min(m_terms, k + 1)
    else:
        m_terms = k + 1
    j = np.arange(k, k - m_terms, -1, dtype=np.float64)
    terms = _log_binom_pmf(j, n, p)
    top = float(terms.max())
    return top + math.log(float(np.sum(np.exp(terms - top))))


def binomial_tail_inversion(k: int, n: int, log_threshold: float) -> float:
    """``max { p : P[Binomial(n, p) <= k] >= exp(log_threshold) }`` (``log_threshold <= 0``).

    Bisection in ``p`` on :func:`binomial_logcdf` (monotone decreasing in ``p``) down to adjacent
    floats; the upper end of the final bracket is returned (never below the exact value). ``k = 0`` is
    the closed form ``1 - t^{1/n} = -expm1(ln t / n)``; ``k >= n`` gives ``1.0``.
    """
    n = _check_count("n", n)
    k = _check_count("k", k, minimum=0)
    log_t = _real("log_threshold", log_threshold)
    if log_t > 0.0:
        raise ValueError(f"log_threshold must be <= 0 (a probability threshold), got {log_threshold!r}")
    if k >= n or log_t == -math.inf:
        return 1.0
    if k == 0:
        # (1 - p)^n >= t  <=>  p <= 1 - t^{1/n}; expm1 keeps it exact for t near 1.
        return -math.expm1(log_t / n)
    lo, hi = 0.0, 1.0  # logcdf(lo) = 0 >= log_t; logcdf(hi) = -inf < log_t
    for _ in range(2200):  # bisection to adjacent floats takes at most ~1100 halvings
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if _binomial_logcdf(k, n, mid) >= log_t:
            lo = mid
        else:
            hi = mid
    return hi


def errors_from_rate(train_err, n) -> int:
    """Number of training errors ``k`` behind an error rate: ``n·ê`` rounded to the nearest integer
    when it is one up to floating-point noise (relative 1e-10), otherwise rounded *up* (conservative)."""
    e = _check_unit("train_err", train_err)
    n = _check_count("n", n)
    x = e * n
    nearest = round(x)
    if abs(x - nearest) <= 1e-10 * max(1.0, x):
        return int(nearest)
    return min(n, math.ceil(x))


def occam_binomial_bound(train_err, n, kl_nats, delta) -> float:
    """Occam bound by binomial tail inversion: ``max { p : P[Bin(n, p) <= k] >= δ·e^{-KL} }``.

    ``k = n·ê`` (see :func:`errors_from_rate` for a non-integer ``n·ê``: nearest integer within
    floating-point noise, else ceil). The result is floored at ``ê`` (only matters for ``δ > 1/2``,
    where the inversion may fall below the empirical rate; a larger upper bound stays valid).
    """
    e = _check_unit("train_err", train_err)
    n = _check_count("n", n)
    kl = _check_kl("kl_nats", kl_nats)
    delta = _check_delta("delta", delta)
    k = errors_from_rate(e, n)
    return max(e, binomial_tail_inversion(k, n, math.log(delta) - kl))


# --------------------------------------------------------------------------- kl inversion


def kl_bernoulli(q, p) -> float:
    """``kl(q‖p) = q ln(q/p) + (1-q) ln((1-q)/(1-p))`` with ``0 ln 0 = 0`` (``inf`` where unbounded)."""
    q = _check_unit("q", q)
    p = _check_unit("p", p)
    return _kl(q, p)


def _kl(q: float, p: float) -> float:
    if q == p:
        return 0.0
    if q == 0.0:
        t1 = 0.0
    elif p == 0.0:
        return math.inf
    else:
        t1 = q * (math.log(q) - math.log(p))
    if q == 1.0:
        t2 = 0.0
    elif p == 1.0:
        return math.inf
    else:
        t2 = (1.0 - q) * (math.log1p(-q) - math.log1p(-p))
    return max(0.0, t1 + t2)


def kl_inverse(q, c) -> float:
    """``kl⁻¹(q, c) = sup { p ∈ [q, 1] : kl(q‖p) <= c }``.

    ``q = 0``: ``1 - e^{-c}`` exactly (``-expm1(-c)``); ``q = 1`` or ``c = inf``: ``1``; ``c = 0``:
    ``q``. Otherwise bisection on ``[q, 1]`` to adjacent floats, returning the upper end (the exact
    value rounded up). A huge ``c`` (e.g. ``10**6``) converges to ``1.0``.
    """
    q = _check_unit("q", q)
    c = _real("c", c)
    if c < 0.0:
        raise ValueError(f"c must be >= 0, got {c!r}")
    if q == 1.0 or c == math.inf:
        return 1.0
    if c == 0.0:
        return q
    if q == 0.0:
        return -math.expm1(-c)
    lo, hi = q, 1.0  # kl(q‖lo) = 0 <= c < inf = kl(q‖hi)
    for _ in range(2200):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if _kl(q, mid) <= c:
            lo = mid
        else:
            hi = mid
    return hi


def occam_kl_bound(train_err, n, kl_nats, delta) -> float:
    """``kl⁻¹(ê, (KL + ln(1/δ)) / n)``: the kl form for a point mass over a countable prior."""
    e = _check_unit("train_err", train_err)
    n = _check_count("n", n)
    kl = _check_kl("kl_nats", kl_nats)
    delta = _check_delta("delta", delta)
    return kl_inverse(e, (kl - math.log(delta)) / n)


def maurer_bound(train_err, n, kl_nats, delta) -> float:
    """``kl⁻¹(ê, (KL + ln(2√n/δ)) / n)``: Maurer's form, valid for a general posterior."""
    e = _check_unit("train_err", train_err)
    n = _check_count("n", n)
    kl = _check_kl("kl_nats", kl_nats)
    delta = _check_delta("delta", delta)
    return kl_inverse(e, (kl + LN2 + 0.5 * math.log(n) - math.log(delta)) / n)


def mc_error_upper_bound(err_mc, m, delta_prime, config_bits=0.0) -> float:
    """Sample-convergence bound on a stochastic classifier's error from ``m`` Monte-Carlo weight
    samples: ``kl⁻¹(ê_MC, ln(2/δ'') / m)`` with ``δ'' = δ'·2^-config_bits`` (BOUNDS.md 1 and 3): holds
    with probability ``1 - δ''``, so the terms of all configurations together fail with probability at
    most ``δ'`` (Kraft). The logarithm is taken in parts, so no ``2^-L`` underflows."""
    e = _check_unit("err_mc", err_mc)
    m = _check_count("m", m)
    dp = _check_delta("delta_prime", delta_prime)
    bits = _check_kl("config_bits", config_bits)
    return kl_inverse(e, (LN2 - math.log(dp) + bits * LN2) / m)


def clopper_pearson_lower(k, m, delta) -> float:
    """One-sided Clopper–Pearson lower confidence limit at level ``δ`` for a Bernoulli rate from ``k``
    successes in ``m`` independent trials: the ``p`` with ``P[Bin(m, p) >= k] = δ``, i.e. the
    ``δ``-quantile of ``Beta(k, m - k + 1)`` (0 when ``k = 0``). A certificate below it is refuted by
    its own test set at confidence ``1 - δ``."""
    m = _check_count("m", m)
    k = _check_count("k", k, minimum=0)
    if k > m:
        raise ValueError(f"k must be <= m, got k={k}, m={m}")
    delta = _check_delta("delta", delta)
    if k == 0:
        return 0.0
    return float(special.betaincinv(k, m - k + 1, delta))


# --------------------------------------------------------------------------- Catoni


@dataclass(frozen=True)
class CatoniResult:
    """Catoni's bound (clipped to 1), the ``λ`` that attains it, and the ``α`` it was computed with."""

    bound: float
    lam: float
    alpha: float


def _catoni_t(t, e: float, n: int, kl: float, delta: float, alpha: float):
    """Catoni's objective (unclipped) as a function of ``t = ln λ`` (scalar or array)."""
    t = np.asarray(t, dtype=np.float64)
    lam = np.exp(t)
    log_alpha = math.log(alpha)
    # ln(α²λ) / ln α = 2 + ln λ / ln α  (> 2 for λ > 1, so the log is positive)
    penalty = kl - math.log(delta) + 2.0 * np.log(2.0 + t / log_alpha)
    x = e + (alpha / lam) * penalty
    gamma = lam / n
    # Φ⁻¹_γ(x) = (1 - e^{-γx}) / (1 - e^{-γ}), with expm1 for both (no cancellation at small γ)
    return np.expm1(-gamma * x) / np.expm1(-gamma)


def catoni_objective(lam, train_err, n, kl_nats, delta, alpha=DEFAULT_CATONI_ALPHA) -> float:
    """Catoni's formula at one ``λ > 1`` (not clipped):
    ``Φ⁻¹_{λ/n}( ê + (α/λ)[KL + ln(1/δ) + 2 ln(ln(α²λ)/ln α)] )``."""
    lam = _real("lam", lam)
    if not (math.isfinite(lam) and lam > 1.0):
        raise ValueError(f"lam must be a finite number > 1, got {lam!r}")
    e = _check_unit("train_err", train_err)
    n = _check_count("n", n)
    kl = _check_kl("kl_nats", kl_nats)
    delta = _check_delta("delta", delta)
    alpha = _check_alpha(alpha)
    return float(_catoni_t(math.log(lam), e, n, kl, delta, alpha))


def catoni_bound(train_err, n, kl_nats, delta, alpha=DEFAULT_CATONI_ALPHA) -> CatoniResult:
    """Catoni's bound (seed 002, Theorem 2.1): the infimum over ``λ > 1`` of :func:`catoni_objective`.

    Searched over ``t = ln λ ∈ (0, ln(1e12·n)]``: a grid (geometric near ``λ = 1``, then uniform in
    ``t`` with step ≈ 0.01), then bounded Brent refinement on the two cells around the grid minimum.
    The returned ``lam`` is where the formula was evaluated, so ``bound`` is that value (clipped to
    ``[ê, 1]``; the unclipped value exceeds 1 when the bound is vacuous).
    """
    e = _check_unit("train_err", train_err)
    n = _check_count("n", n)
    kl = _check_kl("kl_nats", kl_nats)
    delta = _check_delta("delta", delta)
    alpha = _check_alpha(alpha)

    t_max = math.log(_CATONI_LAMBDA_MAX_FACTOR * n)
    grid = np.unique(
        np.concatenate([np.geomspace(1e-12, 1.0, 64), np.linspace(0.0, t_max, _CATONI_GRID_POINTS)[1:]])
    )
    values = _catoni_t(grid, e, n, kl, delta, alpha)
    i = int(np.argmin(values))
    best_t, best_v = float(grid[i]), float(values[i])
    lo = float(grid[i - 1]) if i > 0 else 0.5 * float(grid[0])
    hi = float(grid[min(i + 1, grid.size - 1)])
    if hi > lo:
        res = optimize.minimize_scalar(
            lambda t: float(_catoni_t(t, e, n, kl, delta, alpha)),
            bounds=(lo, hi),
            method="bounded",
            options={"xatol": 1e-12 * max(1.0, hi)},
        )
        t_ref = float(res.x)
        v_ref = float(_catoni_t(t_ref, e, n, kl, delta, alpha))
        if v_ref < best_v:
            best_t, best_v = t_ref, v_ref
    # Report the λ actually returned, and the formula's value at exactly that λ.
    lam = math.exp(best_t)
    value = float(_catoni_t(math.log(lam), e, n, kl, delta, alpha))
    bound = min(1.0, max(e, value))
    return CatoniResult(bound=bound, lam=lam, alpha=alpha)


# --------------------------------------------------------------------------- dispatcher


def error_bound(form: str, train_err, n, kl_nats, delta, alpha=DEFAULT_CATONI_ALPHA) -> float:
    """The error bound of the given ``form`` (one of :data:`FORMS`) as a float in ``[ê, 1]``.

    ``alpha`` is used by ``"catoni"`` only (and validated only there).
    """
    if form == "binomial":
        return occam_binomial_bound(train_err, n, kl_nats, delta)
    if form == "kl":
        return occam_kl_bound(train_err, n, kl_nats, delta)
    if form == "maurer":
        return maurer_bound(train_err, n, kl_nats, delta)
    if form == "catoni":
        return catoni_bound(train_err, n, kl_nats, delta, alpha).bound
    raise ValueError(f"unknown bound form {form!r}; known forms: {', '.join(FORMS)}")
