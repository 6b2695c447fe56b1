"""An independent reference for every bound row: recomputes a row from its raw columns with mpmath.

Written from BOUNDS.md, not from ``bench.kit.bounds``: exact integer bit lengths, the binomial CDF as
mpmath's regularized incomplete beta at 50 digits, every inversion by plain bisection, Catoni's
infimum by a grid and golden-section search in mpmath. Slow and small on purpose; it shares no code
with the harness, so a bug in the harness's arithmetic or in a plugin's assembly of its row shows up
as a disagreement.
"""

from __future__ import annotations

import json
import math

import mpmath as mp

mp.mp.dps = 50
LN2 = mp.log(2)
SIGMA_01 = mp.mpf(1) / 2


def elias_delta_len(n: int) -> int:
    """Length of the Elias delta code of ``n >= 1``: N = ⌊log2 n⌋, L = ⌊log2(N + 1)⌋, N + 2L + 1."""
    assert n >= 1
    big_n = len(bin(n)) - 3  # ⌊log2 n⌋ from the binary expansion
    big_l = len(bin(big_n + 1)) - 3
    return big_n + 2 * big_l + 1


def binom_cdf(k: int, n: int, p) -> mp.mpf:
    """P[Bin(n, p) <= k] = Σ_{j<=k} C(n, j) p^j (1-p)^(n-j), summed term by term (mpmath has no
    underflow: the deep tail is as exact as the rest)."""
    if k >= n or p <= 0:
        return mp.mpf(1)
    if p >= 1:
        return mp.mpf(0)
    p = mp.mpf(p)
    ratio = p / (1 - p)
    term = (1 - p) ** n
    total = term
    for j in range(k):
        term *= ratio * (n - j) / (j + 1)
        total += term
    return total


def bisect(predicate, lo, hi, steps: int = 80):
    """The largest x in [lo, hi] with ``predicate(x)`` true (predicate true at lo, monotone)."""
    lo, hi = mp.mpf(lo), mp.mpf(hi)
    if predicate(hi):
        return hi
    for _ in range(steps):
        mid = (lo + hi) / 2
        if predicate(mid):
            lo = mid
        else:
            hi = mid
    return hi


def binomial_bound(k: int, n: int, kl, delta) -> mp.mpf:
    threshold = mp.mpf(delta) * mp.exp(-mp.mpf(kl))
    return bisect(lambda p: binom_cdf(k, n, p) >= threshold, mp.mpf(k) / n, 1)


def kl_bernoulli(q, p) -> mp.mpf:
    q, p = mp.mpf(q), mp.mpf(p)
    out = mp.mpf(0)
    if q > 0:
        out += q * mp.log(q / p)
    if q < 1:
        out += (1 - q) * mp.log((1 - q) / (1 - p))
    return out


def kl_inverse(q, c) -> mp.mpf:
    q = mp.mpf(q)
    if q >= 1:
        return mp.mpf(1)
    return bisect(lambda p: p < 1 and kl_bernoulli(q, p) <= c, q, 1)


def catoni_bound(e, n: int, kl, delta, alpha) -> mp.mpf:
    e, kl, delta, alpha = (mp.mpf(x) for x in (e, kl, delta, alpha))

    def value(t):
        lam = mp.exp(t)
        c = kl + mp.log(1 / delta) + 2 * mp.log(mp.log(alpha**2 * lam) / mp.log(alpha))
        gamma = lam / n
        x = e + alpha / lam * c
        return (1 - mp.exp(-gamma * x)) / (1 - mp.exp(-gamma))

    lo, hi = mp.log(1 + mp.mpf("1e-9")), mp.log(mp.mpf(n) * mp.mpf("1e12"))
    grid = [lo + (hi - lo) * i / 3000 for i in range(3001)]
    values = [value(t) for t in grid]
    i = min(range(len(values)), key=values.__getitem__)
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    golden = (mp.sqrt(5) - 1) / 2
    for _ in range(120):
        c1, c2 = b - golden * (b - a), a + golden * (b - a)
        if value(c1) < value(c2):
            b = c2
        else:
            a = c1
    best = min(values[i], value((a + b) / 2))
    return min(mp.mpf(1), max(e, best))


def bound_of(form: str, e, n: int, kl, delta, alpha=None) -> mp.mpf:
    if form == "binomial":
        k = round(float(e) * n)
        assert abs(k - float(e) * n) < 1e-6, "a binomial row's empirical term must be a count over n"
        return max(mp.mpf(e), binomial_bound(k, n, kl, delta))
    if form == "kl":
        return kl_inverse(e, (mp.mpf(kl) + mp.log(1 / mp.mpf(delta))) / n)
    if form == "maurer":
        return kl_inverse(e, (mp.mpf(kl) + mp.log(2 * mp.sqrt(n) / mp.mpf(delta))) / n)
    if form == "catoni":
        return catoni_bound(e, n, kl, delta, alpha)
    raise AssertionError(f"unknown form {form}")


def close(a, b, rel: float = 1e-9) -> bool:
    a, b = float(a), float(b)
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def recompute(row) -> dict[str, float]:
    """What a row's columns say its KL, empirical term and error bound must be (raises on a column that
    contradicts BOUNDS.md)."""
    params = json.loads(row["bound_params"])
    extras = json.loads(row["extras"])["bound"]
    n, delta = int(row["n_train"]), mp.mpf(row["delta"])
    config = mp.mpf(row["config_bits"])  # L(c): the configuration code has known-answer tests of its own
    assert close(row["length_code_bits"], elias_delta_len(int(row["message_bits"]) + 1)), \
        "a row's length code is the Elias delta code of its artifact's length + 1"
    train_err = mp.mpf(int(row["train_errors"])) / n
    bound = row["bound"]
    if bound == "mi":
        rate = mp.mpf(row["message_bits"]) * LN2
        return {"kl_nats": rate, "empirical_term": train_err,
                "error_bound": min(mp.mpf(1), train_err + mp.sqrt(2 * SIGMA_01**2 * rate / n))}
    if bound == "hessian":
        # KL = the posterior's KL to the prior (adjustment_nats) + the prior grid's and the run's bits
        if params["form"] == "lower":
            kl = mp.mpf(row["adjustment_nats"])
            return {"kl_nats": kl, "error_bound": bound_of("maurer", mp.mpf(row["empirical_term"]), n, kl, delta)}
        grid = int(params.get("prior_std_grid", 16))
        kl = mp.mpf(row["adjustment_nats"]) + (mp.log(grid, 2) + config) * LN2
        delta_prime = delta * mp.mpf(params.get("delta_prime_fraction", 0.1))
        assert close(row["delta_prime"], delta_prime), "the Monte-Carlo estimate must spend δ' = 0.1 δ"
        m = int(row["mc_samples"])
        empirical = kl_inverse(mp.mpf(int(row["mc_errors"])) / m, (mp.log(2 / delta_prime) + config * LN2) / m)
        return {"kl_nats": kl, "empirical_term": empirical,
                "error_bound": bound_of("maurer", empirical, n, kl, delta - delta_prime)}
    if bound == "catoni" and params.get("robust"):
        code_bits = mp.mpf(extras["code_bits"])
        length = elias_delta_len(math.ceil(extras["code_bits"]) + 1)  # of the modified code's length + 1
        choice = len(extras["layers"]) * mp.log(params.get("lambda_grid", 511) + 1, 2)
        assert close(extras["lambda_choice_bits"], choice), "λ-choice bits are not log2(G + 1) per layer"
        assert close(extras["message_bits_real"], row["message_bits"]), "the row's message is not the artifact's"
        kl = max(mp.mpf(0), (code_bits + choice + length + config) * LN2 + mp.mpf(row["adjustment_nats"]))
        delta_prime = delta * mp.mpf(params.get("delta_prime_fraction", 0.1))
        assert close(row["delta_prime"], delta_prime), "robust mode must spend δ' = 0.1 δ"
        if row["target"] == "stochastic":
            m = int(row["mc_samples"])
            assert m == n * int(params.get("mc_passes", 1)), "m is not n·mc_passes"
            empirical = kl_inverse(mp.mpf(int(row["mc_errors"])) / m, (mp.log(2 / delta_prime) + config * LN2) / m)
        else:
            empirical = train_err
        value = max(catoni_bound(empirical, n, kl, delta - delta_prime, params.get("alpha", 1.0001)), empirical)
        return {"kl_nats": kl, "empirical_term": empirical, "error_bound": value}
    # a point mass under the Occam prior of the message
    bits = int(row["message_bits"])
    length = elias_delta_len(bits + 1)  # the length ℓ >= 0 is coded as Elias delta of ℓ + 1
    kl = (mp.mpf(bits) + length + config) * LN2
    form = "catoni" if bound == "catoni" else params.get("form", "binomial")
    alpha = params.get("alpha", 1.0001)
    assert close(row["delta_prime"], 0), "a point mass spends no δ on Monte Carlo"
    return {"kl_nats": kl, "empirical_term": train_err, "error_bound": bound_of(form, train_err, n, kl, delta, alpha),
            "length_code_bits": length}


def check_row(row) -> None:
    """Every recomputed quantity agrees with the row within 1e-9 (relative)."""
    want = recompute(row)
    for key, value in want.items():
        assert close(row[key], value), f"{row['bound']} {row['bound_params']}: {key} {row[key]!r} != oracle {float(value)!r}"
