"""Adaptive entropy coding of symbols whose count and alphabet the decoder already knows.

``encode_symbols`` sends the symbols' histogram so that the decoder can rebuild their model; for a
short sequence over a small alphabet (a subspace vector z of a thousand coordinates on eleven levels)
that table costs several times what it saves. Here nothing about the distribution is sent: symbol t is
coded under Laplace's rule, weights ``1 + (times each symbol occurred before t)``, which the decoder
rebuilds as it goes. The price over the empirical entropy is about ``(L-1)/2·log2 n`` bits, and the
integer weights make constriction's model (and so the bytes) identical on every machine.

ANS is last-in first-out, so the encoder computes every step's weights first and codes in reverse; the
decoder reads forwards, one symbol (and one model) at a time.
"""

from __future__ import annotations

import constriction
import numpy as np

from .bits import CorruptMessage

__all__ = ["encode_symbols_adaptive", "decode_symbols_adaptive"]

_FAMILY = constriction.stream.model.Categorical(perfect=False)


def _check(count: int, alphabet: int) -> None:
    if count < 0 or not 1 <= alphabet < (1 << 24) - 1:
        raise ValueError(f"{count} symbols over an alphabet of {alphabet} cannot be coded adaptively")


def encode_symbols_adaptive(symbols: np.ndarray, alphabet: int) -> bytes:
    """The ANS payload of ``symbols`` (integers in ``[0, alphabet)``) under Laplace's sequential rule."""
    x = np.asarray(symbols).ravel()
    if x.dtype.kind not in "iu":
        raise ValueError(f"symbols must be integers, got dtype {x.dtype}")
    _check(x.size, alphabet)
    if x.size and (int(x.min()) < 0 or int(x.max()) >= alphabet):
        raise ValueError(f"symbols must lie in [0, {alphabet})")
    if alphabet == 1 or x.size == 0:
        return b""
    seen = np.zeros((x.size, alphabet), dtype=np.float64)
    seen[np.arange(x.size), x] = 1.0
    weights = 1.0 + np.cumsum(seen, axis=0) - seen  # counts strictly before each position
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(x.astype(np.int32), _FAMILY, weights)
    return coder.get_compressed().astype("<u4").tobytes().rstrip(b"\0")


def decode_symbols_adaptive(data: bytes, count: int, alphabet: int) -> np.ndarray:
    """Inverse of :func:`encode_symbols_adaptive` for ``count`` symbols over ``alphabet`` (int64)."""
    _check(count, alphabet)
    if alphabet == 1 or count == 0:
        if data:
            raise CorruptMessage("a payload where there is nothing to code")
        return np.zeros(count, dtype=np.int64)
    if not data or data[-1:] == b"\0":
        raise CorruptMessage("empty ANS payload, or one ending in a zero byte")
    words = np.frombuffer(data + bytes(-len(data) % 4), dtype="<u4").astype(np.uint32)
    weights = np.ones((1, alphabet), dtype=np.float64)
    out = np.empty(count, dtype=np.int64)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        for t in range(count):
            k = int(coder.decode(_FAMILY, weights)[0])
            out[t] = k
            weights[0, k] += 1.0
    except (ValueError, RuntimeError, AssertionError) as error:
        raise CorruptMessage(f"invalid ANS payload: {error}") from error
    if not coder.is_empty():
        raise CorruptMessage("ANS payload has leftover data")
    return out
