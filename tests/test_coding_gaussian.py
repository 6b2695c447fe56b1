"""Gaussian symbol coding (bench.kit.coding.gaussian): round trips, a size derived here from the
Gaussian's closed form (not from the coder's weights), the best width chosen, and clean failures."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.kit.coding import CorruptMessage, decode_symbols_gaussian, encode_symbols, encode_symbols_gaussian
from bench.kit.coding.gaussian import gaussian_weights

PROPERTY = settings(derandomize=True, deadline=None, max_examples=60, database=None)


def width_sigma(width: int) -> float:
    """σ of width byte ``b``, from the module's stated grid: 1 - ρ = (16 + b mod 16)·2^-(b div 16 + 5)."""
    one_minus_rho = (16 + width % 16) / 2 ** (width // 16 + 5)
    return math.sqrt(-1 / (8 * math.log1p(-one_minus_rho)))


def gaussian_bits(symbols: np.ndarray, alphabet: int, sigma: float) -> float:
    centre = (alphabet - 1) / 2
    log_w = [-((s - centre) ** 2) / (2 * sigma**2) for s in range(alphabet)]
    top = max(log_w)
    log_norm = top + math.log(sum(math.exp(v - top) for v in log_w))
    return -sum((log_w[s] - log_norm) for s in symbols) / math.log(2)


def sampled_lattice(seed: int, n: int, alphabet: int, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.round(rng.normal(0, sigma, n)) + (alphabet - 1) // 2, 0, alphabet - 1).astype(np.int64)


@PROPERTY
@given(st.integers(0, 2**31), st.integers(1, 40), st.integers(0, 400), st.floats(0.05, 5.0))
def test_round_trip(seed: int, alphabet: int, count: int, concentration: float) -> None:
    rng = np.random.default_rng(seed)
    x = rng.choice(alphabet, size=count, p=rng.dirichlet(np.full(alphabet, concentration)))
    data = encode_symbols_gaussian(x, alphabet)  # any distribution codes; a bell codes short
    assert np.array_equal(decode_symbols_gaussian(data, count, alphabet), x)


def test_size_is_the_gaussian_information_plus_the_width_byte_and_the_ans_flush() -> None:
    x = sampled_lattice(5, 1000, 9, 1.4)  # a z of d = 1000 on nine levels, as at the data-free frontier
    data = encode_symbols_gaussian(x, 9)
    ideal = gaussian_bits(x, 9, width_sigma(data[0]))
    assert ideal + 8 <= 8 * len(data) <= ideal + 8 + 64
    best = min(gaussian_bits(x, 9, width_sigma(b)) for b in range(256))
    assert ideal <= best + 0.5  # the encoder's byte is the grid's best width (up to the weights' rounding)
    assert abs(width_sigma(data[0]) - 1.4) < 0.1


def test_a_bell_is_cheaper_than_sending_the_counts() -> None:
    x = sampled_lattice(7, 1000, 9, 1.4)
    assert 8 * len(encode_symbols_gaussian(x, 9)) < 8 * len(encode_symbols(x, 9)) - 15


def test_even_alphabets_and_wide_bells_round_trip() -> None:
    for alphabet, sigma in [(10, 1.5), (2, 0.5), (301, 40.0), (5, 0.2)]:
        x = sampled_lattice(1, 500, alphabet, sigma)
        assert np.array_equal(decode_symbols_gaussian(encode_symbols_gaussian(x, alphabet), 500, alphabet), x)


def test_weights_are_pinned_integers() -> None:
    """The model is rebuilt from these exact integers on every machine: a change of formula shows here."""
    w = gaussian_weights(77, 9)  # 1 - ρ = 29/512, σ ≈ 1.46
    assert w.tolist() == [25718092.0, 131606695.0, 422410385.0, 850371212.0, 1073741825.0,
                          850371212.0, 422410385.0, 131606695.0, 25718092.0]
    sigma = width_sigma(77)
    closed = [2**30 * math.exp(-((k - 4) ** 2) / (2 * sigma**2)) for k in range(9)]
    assert np.allclose(w, closed, rtol=1e-9, atol=1.5)  # floor(2^30·ρ^m) + 1 is the stated Gaussian
    assert all(v == int(v) for v in gaussian_weights(200, 301))
    assert gaussian_weights(0, 40)[0] == 1.0  # far tails keep a nonzero weight


def test_trivial_cases_cost_nothing() -> None:
    assert encode_symbols_gaussian(np.zeros(50, dtype=np.int64), 1) == b""
    assert encode_symbols_gaussian(np.zeros(0, dtype=np.int64), 7) == b""
    assert decode_symbols_gaussian(b"", 50, 1).tolist() == [0] * 50
    assert decode_symbols_gaussian(b"", 0, 7).size == 0


def test_invalid_input_is_refused() -> None:
    with pytest.raises(ValueError, match="lie in"):
        encode_symbols_gaussian(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="integers"):
        encode_symbols_gaussian(np.array([0.5]), 3)
    with pytest.raises(ValueError, match="alphabet"):
        encode_symbols_gaussian(np.array([0]), 0)


def test_corrupt_payloads_fail_cleanly() -> None:
    x = sampled_lattice(2, 300, 9, 1.4)
    data = encode_symbols_gaussian(x, 9)
    for bad in (b"", data[:1], data + b"\0", data + b"\x07\x01\x00\x05", b"\x00" + data[1:]):
        try:
            decoded = decode_symbols_gaussian(bad, 300, 9)
        except CorruptMessage:
            continue
        assert not np.array_equal(decoded, x), bad[:8]
    with pytest.raises(CorruptMessage):
        decode_symbols_gaussian(b"\x01", 5, 1)  # a payload where nothing is coded
