"""Throughput of the shared symbol coder (pytest-benchmark).

Run with::

    python -m pytest benchmarks/test_coding_speed.py -o addopts="" -p no:cacheprovider

Symbols per second end up in each benchmark's ``extra_info``.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.kit.coding import decode_symbols, encode_symbols

N_SYMBOLS = 10**6


def skewed(alphabet: int) -> np.ndarray:
    rng = np.random.default_rng(alphabet)
    probabilities = rng.dirichlet(np.full(alphabet, 0.5))
    return rng.choice(alphabet, size=N_SYMBOLS, p=probabilities)


@pytest.mark.parametrize("alphabet", [7, 256])
def test_encode_symbols_speed(benchmark, alphabet: int) -> None:
    symbols = skewed(alphabet)
    data = benchmark(encode_symbols, symbols, alphabet)
    benchmark.extra_info["symbols_per_s"] = N_SYMBOLS / benchmark.stats.stats.min
    benchmark.extra_info["bits_per_symbol"] = 8 * len(data) / N_SYMBOLS


@pytest.mark.parametrize("alphabet", [7, 256])
def test_decode_symbols_speed(benchmark, alphabet: int) -> None:
    symbols = skewed(alphabet)
    data = encode_symbols(symbols, alphabet)
    decoded = benchmark(decode_symbols, data)
    np.testing.assert_array_equal(decoded, symbols)
    benchmark.extra_info["symbols_per_s"] = N_SYMBOLS / benchmark.stats.stats.min
