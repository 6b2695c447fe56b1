"""Tests for bench.kit.bounds: hand-derived values, exact references, brute force, BOUNDS.md properties."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from bench.kit import bounds as bm

pytestmark = pytest.mark.filterwarnings("error")

DET = settings(derandomize=True, deadline=None, max_examples=25, database=None)


# --------------------------------------------------------------------------- Elias delta, Occam KL


def _elias_delta_code(n: int) -> str:
    binary = bin(n)[2:]
    length = len(binary)  # ⌊log2 n⌋ + 1
    length_binary = bin(length)[2:]
    return "0" * (len(length_binary) - 1) + length_binary + binary[1:]


def test_elias_delta_bits_matches_explicit_code():
    for n in list(range(1, 2000)) + [2**20 - 1, 2**20, 2**20 + 1, 10**9, 2**63 + 5]:
        assert bm.elias_delta_bits(n) == len(_elias_delta_code(n)), n
    assert [bm.elias_delta_bits(n) for n in (1, 2, 3, 4, 7, 8, 15, 16)] == [1, 4, 4, 5, 5, 8, 8, 9]


def test_elias_delta_bits_formula():
    for n in (1, 5, 1000, 123456789):
        fl = math.floor(math.log2(n))
        assert bm.elias_delta_bits(n) == fl + 2 * math.floor(math.log2(fl + 1)) + 1


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "7"])
def test_elias_delta_bits_rejects(bad):
    with pytest.raises(ValueError, match="n"):
        bm.elias_delta_bits(bad)


def test_occam_kl_nats_parts():
    parts = bm.occam_kl_nats(3000, config_bits=3)
    assert parts.message_bits == 3000
    assert parts.length_code_bits == bm.elias_delta_bits(3001) == 18  # Elias delta of ℓ + 1
    assert parts.config_bits == 3
    assert parts.total_bits == 3021
    assert parts.nats == pytest.approx(3021 * math.log(2), rel=1e-15)
    with pytest.raises(AttributeError):
        parts.nats = 0.0  # frozen

    explicit = bm.occam_kl_nats(1000, length_code_bits=2 * math.log2(1000))
    assert explicit.nats == pytest.approx((1000 + 2 * math.log2(1000)) * math.log(2))
    assert bm.occam_kl_nats(1000.3).length_code_bits == bm.elias_delta_bits(1002)
    assert bm.occam_kl_nats(0, length_code_bits=0).nats == 0.0
    assert bm.occam_kl_nats(0).length_code_bits == 1  # the empty message: Elias delta of 1
    assert bm.occam_kl_nats(1023).length_code_bits == bm.elias_delta_bits(1024) == 17  # one more than Elias(1023)
    with pytest.raises(ValueError, match="message_bits"):
        bm.occam_kl_nats(-1)
    with pytest.raises(ValueError, match="config_bits"):
        bm.occam_kl_nats(10, config_bits=-1)
    with pytest.raises(ValueError, match="length_code_bits"):
        bm.occam_kl_nats(10, length_code_bits=float("nan"))


# --------------------------------------------------------------------------- binomial log CDF


def _exact_logcdf_dyadic(k: int, n: int, log2_den: int, num_p: int) -> float:
    """ln P[Bin(n, p) <= k] from exact integers, p = num_p / 2**log2_den (exactly representable)."""
    q = (1 << log2_den) - num_p
    # sum_j C(n,j) num_p^j q^(n-j) / den^n  =  q^(n-k) * s / den^n,  s = sum_j C(n,j) num_p^j q^(k-j)
    s, c, a_pow = 0, 1, 1
    for j in range(k + 1):  # Horner in q
        s = s * q + c * a_pow
        c = c * (n - j) // (j + 1)
        a_pow *= num_p
    as_float = (q ** (n - k) * s) / (1 << (n * log2_den))  # int / int is correctly rounded
    if as_float > 1e-300:
        return math.log(as_float)
    return (n - k) * math.log(q) + math.log(s) - n * log2_den * math.log(2)


@pytest.mark.parametrize(
    "k, n, log2_den, num_p",
    [
        (0, 10, 2, 1),
        (3, 10, 2, 1),
        (280, 1000, 4, 5),  # just below the mean
        (100, 10**6, 1, 1),  # deep lower tail at n = 10^6 (p = 1/2): the CDF underflows a float
        (0, 10**5, 6, 1),
        (30, 10**5, 6, 1),  # p = 1/64: deep tail at n = 10^5
        (2000, 10**5, 3, 1),  # deep tail, many terms
        (12400, 10**5, 3, 1),  # just below the mean 12500 at n = 10^5
    ],
)
def test_binomial_logcdf_exact(k, n, log2_den, num_p):
    p = num_p / 2**log2_den
    expected = _exact_logcdf_dyadic(k, n, log2_den, num_p)
    got = bm.binomial_logcdf(k, n, p)
    assert math.isfinite(got)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-14)


def test_binomial_logcdf_near_one_uses_complement():
    # k far above the mean: ln CDF = ln(1 - sf) with sf tiny; compare with the exact sf.
    n, k = 200, 20
    p = Fraction(1, 32)
    sf = sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k + 1, n + 1))
    got = bm.binomial_logcdf(k, n, float(p))
    assert got < 0
    assert got == pytest.approx(math.log1p(-float(sf)), rel=1e-9)


def test_binomial_logcdf_edges_and_scipy():
    assert bm.binomial_logcdf(5, 5, 0.3) == 0.0
    assert bm.binomial_logcdf(-1, 5, 0.3) == -math.inf
    assert bm.binomial_logcdf(2, 5, 0.0) == 0.0
    assert bm.binomial_logcdf(2, 5, 1.0) == -math.inf
    assert bm.binomial_logcdf(0, 10**6, 0.01) == pytest.approx(10**6 * math.log1p(-0.01), rel=1e-13)
    for k, n, p in [(3, 20, 0.4), (50, 100, 0.5), (7, 1000, 0.003)]:
        assert bm.binomial_logcdf(k, n, p) == pytest.approx(stats.binom.logcdf(k, n, p), rel=1e-10)
    with pytest.raises(ValueError, match="p"):
        bm.binomial_logcdf(1, 5, 1.5)
    with pytest.raises(ValueError, match="k"):
        bm.binomial_logcdf(1.5, 5, 0.5)


def test_binomial_logcdf_continuous_across_the_tail_switch():
    # The tail log-sum-exp takes over below ~1e-280: the two sides must agree and be monotone in p.
    n, k = 10**5, 500
    ps = np.linspace(0.0145, 0.0185, 400)
    vals = [bm.binomial_logcdf(k, n, float(p)) for p in ps]
    assert min(vals) < math.log(1e-280) < max(vals)
    assert all(b < a for a, b in zip(vals, vals[1:]))
    assert np.max(np.abs(np.diff(vals))) < 1.0


# --------------------------------------------------------------------------- binomial tail inversion


@pytest.mark.parametrize("n", [1, 10, 60000, 10**6])
@pytest.mark.parametrize("log_t", [math.log(0.05), math.log(0.05) - 2093, -1e-12])
def test_binomial_inversion_k0_closed_form(n, log_t):
    # (1 - p)^n >= t  <=>  p <= 1 - t^{1/n}; t^{1/n} taken in logs (t itself may underflow)
    got = bm.binomial_tail_inversion(0, n, log_t)
    assert got == pytest.approx(-math.expm1(log_t / n), rel=1e-15)
    if abs(log_t / n) > 1e-6:  # the naive form is only accurate away from cancellation
        assert got == pytest.approx(1 - math.exp(log_t / n), rel=1e-9)


@pytest.mark.parametrize(
    "k, n, t",
    [(1, 10, 0.05), (3, 10, 0.2), (5, 100, 0.05), (37, 200, 0.01), (120, 1000, 1e-6), (9, 10, 0.5),
     (0, 7, 0.05), (400, 20000, 1e-30)],
)
def test_binomial_inversion_matches_clopper_pearson(k, n, t):
    # P[Bin(n, p) <= k] = P[Beta(k + 1, n - k) > p], so the maximizer is the beta (1 - t)-quantile;
    # for tiny t, 1 - t rounds to 1, so use the inverse survival function there.
    got = bm.binomial_tail_inversion(k, n, math.log(t))
    expected = stats.beta.ppf(1 - t, k + 1, n - k) if t > 1e-8 else stats.beta.isf(t, k + 1, n - k)
    assert got == pytest.approx(expected, rel=1e-9)


def test_binomial_inversion_is_rounded_up_and_tight():
    for k, n, log_t in [(1200, 60000, math.log(0.05) - 2093), (10, 10**6, -1e6), (999, 1000, -5.0)]:
        p = bm.binomial_tail_inversion(k, n, log_t)
        assert bm.binomial_logcdf(k, n, p) <= log_t  # never below the exact maximizer
        below = math.nextafter(p, 0.0)
        assert bm.binomial_logcdf(k, n, below) >= log_t  # and only one float above it


def test_binomial_inversion_edges():
    assert bm.binomial_tail_inversion(10, 10, -3.0) == 1.0
    assert bm.binomial_tail_inversion(3, 10, -math.inf) == 1.0
    # threshold exp(-10^6) with n = 60000: p* = 1 - O(e^{-16}), finite and < 1
    p = bm.binomial_tail_inversion(5, 60000, -1e6)
    assert 0.999 < p <= 1.0
    with pytest.raises(ValueError, match="log_threshold"):
        bm.binomial_tail_inversion(3, 10, 0.1)
    with pytest.raises(ValueError, match="k"):
        bm.binomial_tail_inversion(-1, 10, -1.0)


def test_errors_from_rate():
    assert bm.errors_from_rate(0.02, 60000) == 1200  # 0.02 * 60000 = 1200.0000000000002
    assert bm.errors_from_rate(1 / 3, 3) == 1
    assert bm.errors_from_rate(0.5, 3) == 2  # 1.5 errors: ceil, conservative
    assert bm.errors_from_rate(0.3, 3) == 1  # 0.8999999999999999: not an integer, ceil
    assert bm.errors_from_rate(0.0, 5) == 0
    assert bm.errors_from_rate(1.0, 5) == 5
    for n in (7, 60000, 10**6):
        for k in (0, 1, n // 3, n - 1, n):
            assert bm.errors_from_rate(k / n, n) == k


def test_occam_binomial_hand_values():
    # ê = 0: bound = 1 - (δ π)^{1/n}, π = e^{-KL}
    for n, kl, delta in [(60000, 2093.0, 0.05), (100, 0.0, 0.1), (10**6, 12.5, 0.01)]:
        expected = 1 - math.exp((math.log(delta) - kl) / n)  # 1 - (δπ)^{1/n}, in logs
        assert bm.occam_binomial_bound(0.0, n, kl, delta) == pytest.approx(expected, rel=1e-9)
    # ê = 0.5 with n = 3 counts ceil(1.5) = 2 errors
    assert bm.occam_binomial_bound(0.5, 3, 1.0, 0.05) == bm.binomial_tail_inversion(2, 3, math.log(0.05) - 1)


# --------------------------------------------------------------------------- kl and its inverse


def test_kl_bernoulli_values():
    assert bm.kl_bernoulli(0.3, 0.3) == 0.0
    q, p = 0.1, 0.4
    assert bm.kl_bernoulli(q, p) == pytest.approx(q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p)))
    assert bm.kl_bernoulli(0.0, 0.25) == pytest.approx(-math.log(0.75))
    assert bm.kl_bernoulli(1.0, 0.25) == pytest.approx(-math.log(0.25))
    assert bm.kl_bernoulli(0.0, 1.0) == math.inf
    assert bm.kl_bernoulli(0.5, 0.0) == math.inf
    assert bm.kl_bernoulli(1.0, 1.0) == 0.0
    assert bm.kl_bernoulli(0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="q"):
        bm.kl_bernoulli(-0.1, 0.5)


@pytest.mark.parametrize("c", [1e-8, 0.01, 1.0, 30.0, 700.0])
def test_kl_inverse_q0_closed_form(c):
    assert bm.kl_inverse(0.0, c) == pytest.approx(1 - math.exp(-c), rel=1e-15)


@pytest.mark.parametrize("q, c", [(0.02, 0.035), (0.3, 0.001), (0.5, 2.0), (0.9, 0.01), (1e-4, 3e-5), (0.99, 0.01)])
def test_kl_inverse_brute_force(q, c):
    got = bm.kl_inverse(q, c)
    grid = np.linspace(q, 1.0, 1_000_001)[:-1]
    with np.errstate(divide="ignore"):
        kls = q * np.log(q / grid) + (1 - q) * np.log((1 - q) / (1 - grid))
    feasible = grid[kls <= c]
    step = grid[1] - grid[0]
    assert feasible.max() <= got <= feasible.max() + step + 1e-15
    assert bm.kl_bernoulli(q, got) >= c  # rounded up
    assert bm.kl_bernoulli(q, got) == pytest.approx(c, rel=1e-9)


def test_kl_inverse_edges():
    assert bm.kl_inverse(1.0, 5.0) == 1.0
    assert bm.kl_inverse(0.3, 0.0) == 0.3
    assert bm.kl_inverse(0.3, 1e6) == 1.0
    assert bm.kl_inverse(0.0, 1e6) == 1.0
    assert bm.kl_inverse(0.3, math.inf) == 1.0
    with pytest.raises(ValueError, match="c"):
        bm.kl_inverse(0.3, -1.0)


def test_occam_kl_and_maurer_hand_values():
    n, kl, delta = 60000, 2093.0, 0.05
    assert bm.occam_kl_bound(0.0, n, kl, delta) == pytest.approx(-math.expm1(-(kl + math.log(1 / delta)) / n))
    c = (kl + math.log(2 * math.sqrt(n) / delta)) / n
    assert bm.maurer_bound(0.0, n, kl, delta) == pytest.approx(1 - math.exp(-c), rel=1e-14)
    assert bm.maurer_bound(0.02, n, kl, delta) == bm.kl_inverse(0.02, c)


# --------------------------------------------------------------------------- Catoni


def test_catoni_single_lambda_by_hand():
    e, n, kl, delta, alpha, lam = 0.1, 100, 5.0, 0.05, 2.0, 50.0
    x = e + (alpha / lam) * (kl + math.log(1 / delta) + 2 * math.log(math.log(alpha**2 * lam) / math.log(alpha)))
    gamma = lam / n
    expected = (1 - math.exp(-gamma * x)) / (1 - math.exp(-gamma))
    assert bm.catoni_objective(lam, e, n, kl, delta, alpha) == pytest.approx(expected, rel=1e-13)
    # Φ⁻¹ at tiny γ: expm1 keeps full precision where 1 - exp(-γ) would cancel
    small = bm.catoni_objective(1.5, 0.0, 10**9, 0.0, 0.05, 1.0001)
    x = (1.0001 / 1.5) * (math.log(20) + 2 * math.log(math.log(1.0001**2 * 1.5) / math.log(1.0001)))
    gamma = 1.5e-9
    assert small == pytest.approx(x * (1 - gamma * x / 2) / (1 - gamma / 2), rel=1e-12)


@pytest.mark.parametrize(
    "e, n, kl, delta, alpha",
    [
        (0.02, 60000, 2093.0, 0.05, 1.0001),
        (0.0, 60000, 2093.0, 0.05, 1.0001),
        (0.1, 1000, 10.0, 0.05, 2.0),
        (0.0, 10**6, 0.0, 0.05, 1.0001),
        (0.3, 50, 3.0, 0.2, 1.5),
        (0.05, 10**6, 5e4, 0.01, 1.01),
        (0.0, 1, 0.0, 0.5, 3.0),
    ],
)
def test_catoni_infimum_against_brute_force(e, n, kl, delta, alpha):
    res = bm.catoni_bound(e, n, kl, delta, alpha)
    assert res.alpha == alpha and res.lam > 1.0
    # a valid evaluation of the formula at the returned λ
    at_lam = bm.catoni_objective(res.lam, e, n, kl, delta, alpha)
    assert res.bound == pytest.approx(min(1.0, at_lam), rel=1e-14)
    # not worse than a dense brute-force grid over λ
    lams = np.concatenate([1 + np.geomspace(1e-9, 1.0, 2000), np.geomspace(2.0, 1e13 * n, 200_000)])
    grid_min = min(bm.catoni_objective(float(lam), e, n, kl, delta, alpha) for lam in lams[::50])
    t = np.log(lams)
    penalty = kl + math.log(1 / delta) + 2 * np.log(2 + t / math.log(alpha))
    x = e + alpha / lams * penalty
    gamma = lams / n
    values = np.expm1(-gamma * x) / np.expm1(-gamma)
    assert values.min() <= grid_min + 1e-15
    assert at_lam <= values.min() * (1 + 1e-12) + 1e-15


def test_catoni_example_value():
    res = bm.catoni_bound(0.02, 60000, 2093, 0.05, 1.0001)
    assert 0.08 < res.bound < 0.083
    assert 1e4 < res.lam < 1e6


# --------------------------------------------------------------------------- dispatcher, validation


def test_error_bound_dispatch():
    args = (0.02, 60000, 2093.0, 0.05)
    assert bm.error_bound("binomial", *args) == bm.occam_binomial_bound(*args)
    assert bm.error_bound("kl", *args) == bm.occam_kl_bound(*args)
    assert bm.error_bound("maurer", *args) == bm.maurer_bound(*args)
    assert bm.error_bound("catoni", *args, alpha=1.01) == bm.catoni_bound(*args, alpha=1.01).bound
    with pytest.raises(ValueError, match="binomial, kl, maurer, catoni"):
        bm.error_bound("pinsker", *args)
    # Occam forms: binomial <= kl (Chernoff) <= maurer
    b, k, m = (bm.error_bound(f, *args) for f in ("binomial", "kl", "maurer"))
    assert b <= k <= m


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(train_err=-0.1), "train_err"),
        (dict(train_err=1.5), "train_err"),
        (dict(train_err=float("nan")), "train_err"),
        (dict(n=0), "n"),
        (dict(n=10.5), "n"),
        (dict(kl_nats=-1.0), "kl_nats"),
        (dict(kl_nats=float("inf")), "kl_nats"),
        (dict(delta=0.0), "delta"),
        (dict(delta=1.0), "delta"),
        (dict(delta=2.0), "delta"),
        (dict(alpha=1.0), "alpha"),
        (dict(alpha=0.5), "alpha"),
    ],
)
@pytest.mark.parametrize("form", bm.FORMS)
def test_validation_names_the_argument(form, kwargs, name):
    args = dict(train_err=0.1, n=100, kl_nats=5.0, delta=0.05, alpha=1.1) | kwargs
    if name == "alpha" and form != "catoni":  # alpha is Catoni's only: ignored, the bound is as without it
        without = {k: v for k, v in args.items() if k != "alpha"}
        assert bm.error_bound(form, **args) == bm.error_bound(form, **without)
        return
    with pytest.raises(ValueError, match=name):
        bm.error_bound(form, **args)


# --------------------------------------------------------------------------- BOUNDS.md section 2 properties

errors = st.integers(min_value=0, max_value=200)
ns = st.sampled_from([200, 1000, 5000, 60000])
kls = st.floats(min_value=0.0, max_value=5000.0, allow_nan=False)
deltas = st.sampled_from([0.01, 0.05, 0.2])

TOL = 1e-9


@pytest.mark.parametrize("form", bm.FORMS)
@DET
@given(k=errors, n=ns, kl=kls, delta=deltas)
def test_bound_at_least_train_err_and_at_most_one(form, k, n, kl, delta):
    e = min(k, n) / n
    b = bm.error_bound(form, e, n, kl, delta)
    assert e <= b <= 1.0


@pytest.mark.parametrize("form", bm.FORMS)
@DET
@given(k=errors, n=ns, kl=kls, extra=st.floats(min_value=0.5, max_value=500.0), delta=deltas)
def test_bound_increases_with_kl(form, k, n, kl, extra, delta):
    e = k / n
    assert bm.error_bound(form, e, n, kl + extra, delta) >= bm.error_bound(form, e, n, kl, delta) - TOL


@pytest.mark.parametrize("form", bm.FORMS)
@DET
@given(k=errors, dk=st.integers(min_value=1, max_value=50), n=ns, kl=kls, delta=deltas)
def test_bound_increases_with_train_err(form, k, dk, n, kl, delta):
    lo, hi = k / n, min(n, k + dk) / n
    assert bm.error_bound(form, hi, n, kl, delta) >= bm.error_bound(form, lo, n, kl, delta) - TOL


@pytest.mark.parametrize("form", bm.FORMS)
@DET
@given(k=errors, n=ns, factor=st.sampled_from([2, 3, 10]), kl=kls, delta=deltas)
def test_bound_decreases_with_n(form, k, n, factor, kl, delta):
    e = k / n  # n·ê stays an integer at factor·n, so the binomial form counts exactly factor·k errors
    assert bm.error_bound(form, e, factor * n, kl, delta) <= bm.error_bound(form, e, n, kl, delta) + TOL


@pytest.mark.parametrize("form", ["binomial", "kl"])
@pytest.mark.parametrize("delta", [0.01, 0.05])
def test_zero_kl_zero_error_large_n_is_log_one_over_delta_over_n(form, delta):
    n = 10**6
    b = bm.error_bound(form, 0.0, n, 0.0, delta)
    assert b == pytest.approx(math.log(1 / delta) / n, rel=1e-5)


def test_zero_kl_zero_error_large_n_maurer_and_catoni():
    n, delta = 10**6, 0.05
    assert bm.maurer_bound(0.0, n, 0.0, delta) == pytest.approx(math.log(2 * math.sqrt(n) / delta) / n, rel=1e-5)
    # Catoni pays α and the 2 ln(ln(α²λ)/ln α) term for optimizing λ, on top of ln(1/δ)
    c = bm.catoni_bound(0.0, n, 0.0, delta, 1.0001).bound
    assert math.log(1 / delta) / n < c < 30 * math.log(1 / delta) / n


# --------------------------------------------------------------------------- extremes


@pytest.mark.parametrize("form", bm.FORMS)
def test_extremes(form):
    # KL = 10^6 nats is vacuous for n up to ~10^5
    assert bm.error_bound(form, 0.0, 10_000, 1e6, 0.05) == 1.0
    assert bm.error_bound(form, 0.3, 60_000, 1e6, 0.05) == pytest.approx(1.0, abs=1e-6)
    # ê = 1 is vacuous
    assert bm.error_bound(form, 1.0, 10**6, 0.0, 0.05) == 1.0
    assert bm.error_bound(form, 1.0, 1, 0.0, 0.05) == 1.0
    # n = 10^6 with KL = 10^6: c = KL/n = 1, finite and well inside (0, 1)
    b = bm.error_bound(form, 0.01, 10**6, 1e6, 0.05)
    assert 0.6 < b < 0.7
    # n = 10^6, ê = 0, KL = 0
    assert 0.0 < bm.error_bound(form, 0.0, 10**6, 0.0, 0.05) < 1e-4
    # n = 1
    assert 0.0 < bm.error_bound(form, 0.0, 1, 0.0, 0.5) <= 1.0


# --------------------------------------------------------------------------- Monte-Carlo correction


def test_mc_error_upper_bound():
    for e in (0.0, 0.01, 0.2, 1.0):
        prev = 1.0
        for m in (10, 100, 1000, 10**4, 10**5):
            b = bm.mc_error_upper_bound(e, m, 0.01)
            assert e <= b <= prev
            assert b == bm.kl_inverse(e, math.log(2 / 0.01) / m)
            prev = b
    assert bm.mc_error_upper_bound(0.0, 1000, 0.01) == pytest.approx(1 - (0.01 / 2) ** (1 / 1000), rel=1e-12)
    assert bm.mc_error_upper_bound(0.05, 10**5, 0.01) < bm.mc_error_upper_bound(0.05, 10**3, 0.01)
    with pytest.raises(ValueError, match="delta_prime"):
        bm.mc_error_upper_bound(0.1, 100, 1.0)
    with pytest.raises(ValueError, match="m"):
        bm.mc_error_upper_bound(0.1, 0, 0.1)


def test_clopper_pearson_lower_limit_matches_its_definition():
    # P[Bin(m, p_L) >= k] = δ at the limit; 0 errors give 0
    from scipy.stats import binom

    for k, m in ((1, 10), (30, 450), (5000, 10000)):
        p = bm.clopper_pearson_lower(k, m, 0.05)
        assert binom.sf(k - 1, m, p) == pytest.approx(0.05, rel=1e-9)
    assert bm.clopper_pearson_lower(0, 100, 0.05) == 0.0
    assert bm.clopper_pearson_lower(10, 10, 0.05) == pytest.approx(0.05 ** (1 / 10), rel=1e-12)  # k = m: p^m = δ
    for bad, message in (((11, 10, 0.05), "k must be <= m, got k=11, m=10"), ((0, 0, 0.05), "m must be an integer >= 1"),
                         ((-1, 10, 0.05), "k must be an integer >= 0"), ((1, 10, 1.0), "delta must be in \\(0, 1\\)")):
        with pytest.raises(ValueError, match=message):
            bm.clopper_pearson_lower(*bad)



# Every argument check names the argument it rejects, as the message's first word (a caller who
# passes the wrong thing learns which one).
GOOD = {"train_err": 0.1, "n": 1000, "kl_nats": 10.0, "delta": 0.05}
ARGUMENT_CASES = [
    (bm.binomial_logcdf, {"k": 3, "n": -1, "p": 0.1}, "n must be an integer >= 0, got -1"),
    (bm.binomial_logcdf, {"k": True, "n": 10, "p": 0.1}, "k must be an integer, got True"),
    (bm.binomial_logcdf, {"k": "3", "n": 10, "p": 0.1}, "k must be an integer, got '3'"),
    (bm.binomial_logcdf, {"k": float("nan"), "n": 10, "p": 0.1}, "k must be an integer, got nan"),
    (bm.binomial_logcdf, {"k": 2.5, "n": 10, "p": 0.1}, "k must be an integer, got 2.5"),
    (bm.binomial_logcdf, {"k": 3, "n": 10, "p": 1.5}, "p must be in \\[0, 1\\], got 1.5"),
    (bm.kl_bernoulli, {"q": -0.1, "p": 0.5}, "q must be in \\[0, 1\\], got -0.1"),
    (bm.kl_bernoulli, {"q": 0.1, "p": 1.5}, "p must be in \\[0, 1\\], got 1.5"),
    (bm.mc_error_upper_bound, {"err_mc": 1.5, "m": 10, "delta_prime": 0.05}, "err_mc must be in \\[0, 1\\]"),
    (bm.mc_error_upper_bound, {"err_mc": 0.1, "m": 0, "delta_prime": 0.05}, "m must be an integer >= 1"),
    (bm.mc_error_upper_bound, {"err_mc": 0.1, "m": 10, "delta_prime": 1.0}, "delta_prime must be in \\(0, 1\\)"),
] + [
    (bound, {**GOOD, name: bad}, message)
    for bound in (bm.occam_kl_bound, bm.maurer_bound, bm.occam_binomial_bound, bm.catoni_bound)
    for name, bad, message in (("train_err", 1.5, "train_err must be in \\[0, 1\\], got 1.5"),
                               ("n", 0, "n must be an integer >= 1, got 0"),
                               ("n", 2.5, "n must be an integer >= 1, got 2.5"),
                               ("kl_nats", -1.0, "kl_nats must be a finite number >= 0, got -1.0"),
                               ("delta", 0.0, "delta must be in \\(0, 1\\), got 0.0"))
]


ARGUMENT_CASES += [
    (bm.catoni_objective, {"lam": 2.0, **GOOD, name: bad}, message)
    for name, bad, message in (("train_err", 1.5, "train_err must be in \\[0, 1\\], got 1.5"),
                               ("n", 0, "n must be an integer >= 1, got 0"),
                               ("kl_nats", -1.0, "kl_nats must be a finite number >= 0, got -1.0"),
                               ("delta", 1.0, "delta must be in \\(0, 1\\), got 1.0"),
                               ("lam", 1.0, "lam must be a finite number > 1, got 1.0"),
                               ("lam", float("inf"), "lam must be a finite number > 1, got inf"),
                               ("lam", "x", "lam must be a real number, got 'x'"))
] + [
    (bm.catoni_bound, {**GOOD, "alpha": 1.0}, "alpha must be a finite number > 1, got 1.0"),
    (bm.catoni_bound, {**GOOD, "alpha": float("inf")}, "alpha must be a finite number > 1, got inf"),
    (bm.kl_inverse, {"q": 1.5, "c": 1.0}, "q must be in \\[0, 1\\], got 1.5"),
    (bm.kl_inverse, {"q": 0.1, "c": -1.0}, "c must be >= 0, got -1.0"),
    (bm.kl_inverse, {"q": 0.1, "c": float("nan")}, "c must not be NaN"),
    (bm.errors_from_rate, {"train_err": 0.1, "n": 0}, "n must be an integer >= 1, got 0"),
    (bm.errors_from_rate, {"train_err": 1.5, "n": 10}, "train_err must be in \\[0, 1\\], got 1.5"),
    (bm.binomial_tail_inversion, {"k": -1, "n": 10, "log_threshold": -3.0}, "k must be an integer >= 0, got -1"),
    (bm.binomial_tail_inversion, {"k": 3, "n": 0, "log_threshold": -3.0}, "n must be an integer >= 1, got 0"),
    (bm.binomial_tail_inversion, {"k": 3, "n": 10, "log_threshold": 1.0},
     "log_threshold must be <= 0 \\(a probability threshold\\), got 1.0"),
    (bm.elias_delta_bits, {"n": 0}, "n must be an integer >= 1, got 0"),
    (bm.elias_delta_bits, {"n": True}, "n must be an integer >= 1, got True"),
    (bm.message_length_code_bits, {"message_bits": -1}, "message_bits must be a finite number >= 0, got -1"),
    (bm.occam_kl_nats, {"message_bits": -1}, "message_bits must be a finite number >= 0, got -1"),
    (bm.occam_kl_nats, {"message_bits": 10, "config_bits": -1.0}, "config_bits must be a finite number >= 0, got -1.0"),
]


@pytest.mark.parametrize("function,kwargs,message", ARGUMENT_CASES,
                         ids=[f"{f.__name__}-{m.split()[0]}-{i}" for i, (f, _, m) in enumerate(ARGUMENT_CASES)])
def test_argument_checks_name_the_argument(function, kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        function(**kwargs)


def test_binomial_logcdf_edges_of_k():
    assert bm.binomial_logcdf(10, 10, 0.3) == 0.0 and bm.binomial_logcdf(11, 10, 0.3) == 0.0  # k >= n
    assert bm.binomial_logcdf(9, 10, 0.3) < 0.0
    assert bm.binomial_logcdf(-1, 10, 0.3) == -math.inf and bm.binomial_logcdf(float("-inf"), 10, 0.3) == -math.inf
    assert bm.binomial_logcdf(0, 0, 0.3) == 0.0  # n = 0 is allowed
