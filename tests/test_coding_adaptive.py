"""Adaptive symbol coding (bench.kit.coding.adaptive): round trips, the size Laplace's rule predicts
(derived here from its closed form, not from the coder), and clean failures on corrupt payloads."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.kit.coding import CorruptMessage, decode_symbols_adaptive, encode_symbols, encode_symbols_adaptive

PROPERTY = settings(derandomize=True, deadline=None, max_examples=60, database=None)


def laplace_rule_bits(symbols: np.ndarray, alphabet: int) -> float:
    """-log2 of the sequential probability Π (c_k(t) + 1) / (t + L): it depends only on the counts,
    log2 (n + L - 1)! / ((L - 1)! Π c_k!)."""
    counts = np.bincount(symbols, minlength=alphabet)
    n = len(symbols)
    nats = math.lgamma(n + alphabet) - math.lgamma(alphabet) - sum(math.lgamma(c + 1) for c in counts)
    return nats / math.log(2)


@PROPERTY
@given(st.integers(0, 2**31), st.integers(1, 40), st.integers(0, 400), st.floats(0.05, 5.0))
def test_round_trip(seed: int, alphabet: int, count: int, concentration: float) -> None:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(alphabet, concentration))
    x = rng.choice(alphabet, size=count, p=p)
    data = encode_symbols_adaptive(x, alphabet)
    assert np.array_equal(decode_symbols_adaptive(data, count, alphabet), x)


def test_size_is_the_laplace_rule_information_plus_the_ans_flush() -> None:
    rng = np.random.default_rng(3)
    counts = [7, 40, 70, 120, 191, 172, 164, 129, 56, 43, 8]  # a z of d = 1000 on 11 levels
    x = rng.permutation(np.repeat(np.arange(11), counts))
    bits = 8 * len(encode_symbols_adaptive(x, 11))
    ideal = laplace_rule_bits(x, 11)
    assert ideal <= bits <= ideal + 64
    entropy = -sum(c * math.log2(c / 1000) for c in counts)
    assert ideal - entropy < 5 * math.log2(1000) + 10  # (L-1)/2 · log2 n, about 40 bits here
    assert bits < 8 * len(encode_symbols(x, 11)) - 100  # cheaper than sending the histogram


def test_trivial_cases_cost_nothing() -> None:
    assert encode_symbols_adaptive(np.zeros(50, dtype=np.int64), 1) == b""
    assert encode_symbols_adaptive(np.zeros(0, dtype=np.int64), 7) == b""
    assert decode_symbols_adaptive(b"", 50, 1).tolist() == [0] * 50
    assert decode_symbols_adaptive(b"", 0, 7).size == 0


def test_invalid_input_is_refused() -> None:
    with pytest.raises(ValueError, match="lie in"):
        encode_symbols_adaptive(np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="integers"):
        encode_symbols_adaptive(np.array([0.5]), 3)


def test_corrupt_payloads_raise_corrupt_message() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=300)
    data = encode_symbols_adaptive(x, 5)
    for bad in (b"", data + b"\x00", data[:-4], data + b"\x01\x02\x03\x04", b"\x01" * 8):
        with pytest.raises(CorruptMessage):
            decode_symbols_adaptive(bad, 300, 5)
    with pytest.raises(CorruptMessage):
        decode_symbols_adaptive(b"\x05", 10, 1)
    for i in range(0, len(data) - 1, 3):  # a flipped byte decodes to other symbols or fails cleanly
        mutated = bytearray(data)
        mutated[i] ^= 0x5A
        try:
            out = decode_symbols_adaptive(bytes(mutated), 300, 5)
        except CorruptMessage:
            continue
        assert not np.array_equal(out, x)
