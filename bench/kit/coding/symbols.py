"""Entropy coding of integer symbols and of sparse positions, on constriction's ANS coder.

Three layers, each self-describing given only what the decoder already knows:

* ``_write_ans``/``_decode_ans``: i.i.d. ranks under a categorical model built from integer
  weights.  constriction's ``Categorical(weights, perfect=False)`` quantizes with plain IEEE
  f64 sums/products/floors of the weights it is given; integer counts (exact in f64) make
  that bit-exact on any machine, so the decoder rebuilds the identical model from counts.
* ``_write_uints``/``_read_uints``: a sequence of positive integers of known length (gaps,
  counts).  The encoder picks the cheapest of: Elias delta per value (short sequences), or
  "log buckets" -- the bit length plus ``m`` leading mantissa bits of each value, entropy
  coded with the bucket histogram in the message, followed by the remaining low bits raw.
  With ``m`` mantissa bits a bucket spans at most a 2**-m relative range, so even smooth
  (e.g. geometric) distributions lose little by coding the low bits uniformly.
* the public ``encode_symbols``/``encode_positions`` on top of those.
"""

from __future__ import annotations

import constriction
import numpy as np

from .bits import BitReader, BitWriter, CorruptMessage, _bit_length, elias_delta_bits, elias_delta_bits_array

__all__ = ["encode_symbols", "decode_symbols", "encode_positions", "decode_positions"]

MAX_VALUE = 1 << 53  # exclusive bound on symbols, gaps and counts (exact in float64)
MAX_ITEMS = 1 << 31  # a decoder refuses to allocate more symbols/positions than this
_ELIAS_MAX_ITEMS = 4096  # Elias delta per value is only chosen for short sequences
_MAX_MANTISSA_BITS = 4
_MODE_BITS = 3  # 0: Elias delta per value; 1 + m: log buckets with m mantissa bits
_ANS_MAX_WEIGHTS = (1 << 24) - 2  # constriction's default ANS has 24-bit probabilities


# --- categorical ANS with the model rebuilt from integer weights -------------------------


def _categorical(weights: np.ndarray) -> constriction.stream.model.Categorical:
    return constriction.stream.model.Categorical(np.asarray(weights, dtype=np.float64), perfect=False)


def _ans_payload(ranks: np.ndarray, weights: np.ndarray) -> bytes:
    """The ANS bytes of ``ranks`` (in ``0..len(weights)-1``, 2 <= len(weights)) under ``Categorical(weights)``."""
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(np.ascontiguousarray(ranks, dtype=np.int32), _categorical(weights))
    # The last (top) word is never zero, so trailing zero bytes carry nothing: drop them.
    return coder.get_compressed().astype("<u4").tobytes().rstrip(b"\0")


def _write_ans(writer: BitWriter, ranks: np.ndarray, weights: np.ndarray) -> None:
    """Code ``ranks`` as byte length + :func:`_ans_payload`."""
    payload = _ans_payload(ranks, weights)
    writer.write_elias_delta(len(payload) + 1)
    writer.write_bytes(payload)


def _read_ans_payload(reader: BitReader) -> bytes:
    """The bytes :func:`_write_ans` stored (read them, and check what follows, first)."""
    payload = reader.read_bytes(reader.read_elias_delta() - 1)
    if payload[-1:] == b"\0":
        raise CorruptMessage("ANS payload ends in a zero byte")
    return payload


def _information_bits(weights: np.ndarray, count: int, is_histogram: bool) -> float:
    """Lower bound on the payload size of ``count`` symbols under ``Categorical(weights)``.

    Replicates ``fast_quantized_cdf`` (constriction 0.5, 24-bit probabilities): symbol i gets
    ``floor(W_i * scale) + i`` as left cumulative, ``W_i`` the weight sum before it and
    ``scale = (2**24 - k) / W``.  If the weights are the symbols' own histogram the bound
    is their exact information content, otherwise ``count`` times the cheapest symbol.  A
    valid payload is never shorter (checked on random histograms), so decoders use this to
    refuse absurd symbol counts before allocating them.
    """
    k = weights.size
    scale = float((1 << 24) - k) / float(weights.sum())
    left = np.floor(np.concatenate([[0.0], np.cumsum(weights)[:-1]]) * scale) + np.arange(k)
    cost = 24.0 - np.log2(np.diff(np.append(left, float(1 << 24))))
    return float((weights * cost).sum()) if is_histogram else count * float(cost.min())


def _decode_ans(payload: bytes, weights: np.ndarray, count: int, is_histogram: bool = True) -> np.ndarray:
    """Inverse of :func:`_write_ans`: ``count`` ranks (int32) under ``Categorical(weights)``."""
    weights = np.asarray(weights, dtype=np.float64)
    if 8 * len(payload) + 64 < _information_bits(weights, count, is_histogram) * (1 - 1e-9):
        raise CorruptMessage("ANS payload too short for the number of symbols")
    words = np.frombuffer(payload + bytes(-len(payload) % 4), dtype="<u4").astype(np.uint32)
    try:
        coder = constriction.stream.stack.AnsCoder(words)
        ranks = coder.decode(_categorical(weights), count)
    except (ValueError, RuntimeError, AssertionError) as error:
        raise CorruptMessage(f"invalid ANS payload: {error}") from error
    if not coder.is_empty():
        raise CorruptMessage("ANS payload has leftover data")
    return ranks


# --- sequences of positive integers -------------------------------------------------------


def _buckets(values: np.ndarray, m: int, bit_length: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Log bucket of each value (>= 1) and the number of low bits left to write raw."""
    if bit_length is None:
        bit_length = _bit_length(values)
    shift = np.maximum(bit_length - 1 - m, 0)
    return (shift << m) + (values >> shift.astype(np.uint64)).astype(np.int64), shift


def _bucket_shift(buckets: np.ndarray, m: int) -> np.ndarray:
    return np.maximum((buckets >> m) - 1, 0)


def _max_bucket(m: int) -> int:
    return int(_buckets(np.array([MAX_VALUE - 1], dtype=np.uint64), m)[0][0])


def _entropy_bits(counts: np.ndarray) -> float:
    """Empirical entropy in bits of a histogram, times its total (n * H)."""
    counts = counts[counts > 0].astype(np.float64)
    total = counts.sum()
    return float(total * np.log2(total) - (counts * np.log2(counts)).sum())


def _bucket_plan(values: np.ndarray, bit_length: np.ndarray, m: int) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Estimated size in bits of log-bucket mode ``m`` and its buckets/shifts/histogram."""
    buckets, shift = _buckets(values, m, bit_length)
    low = int(buckets.min())
    histogram = np.bincount(buckets - low)
    bits = elias_delta_bits(low) + elias_delta_bits(histogram.size) + int(shift.sum())
    bits += int(elias_delta_bits_array(histogram[:-1] + 1).sum())
    if histogram.size > 1:  # payload estimate: information + ANS flush + length + padding
        payload = _entropy_bits(histogram) + 48
        bits += payload + elias_delta_bits(int(payload) // 8 + 1)
    return float(bits), buckets, shift, histogram


def _write_uints(writer: BitWriter, values: np.ndarray) -> None:
    """Code positive integers (< 2**53); their number is known to the decoder."""
    values = np.asarray(values, dtype=np.uint64)
    if values.size == 0:
        return
    if values.min() < 1 or values.max() >= MAX_VALUE:
        raise ValueError("values must be in [1, 2**53)")
    best = (np.inf, 0, None)
    if values.size <= _ELIAS_MAX_ITEMS:
        best = (float(elias_delta_bits_array(values).sum()), 0, None)
    bit_length = _bit_length(values)
    for m in range(_MAX_MANTISSA_BITS + 1):
        plan = _bucket_plan(values, bit_length, m)
        if plan[0] < best[0]:
            best = (plan[0], 1 + m, plan[1:])
    _, mode, plan = best
    writer.write_bits(mode, _MODE_BITS)
    if mode == 0:
        writer.write_elias_delta_array(values)
        return
    buckets, shift, histogram = plan
    low = int(buckets.min())
    writer.write_elias_delta(low)
    writer.write_elias_delta(histogram.size)
    writer.write_elias_delta_array(histogram[:-1] + 1)  # the last count follows from the total
    if histogram.size > 1:
        _write_ans(writer, buckets - low, histogram)
    writer.write_fields(values & ((np.uint64(1) << shift.astype(np.uint64)) - np.uint64(1)), shift)


def _read_uints(reader: BitReader, count: int) -> np.ndarray:
    """Inverse of :func:`_write_uints` (uint64)."""
    if count == 0:
        return np.zeros(0, dtype=np.uint64)
    mode = reader.read_bits(_MODE_BITS)
    if mode == 0:
        if count > _ELIAS_MAX_ITEMS:
            raise CorruptMessage("Elias delta mode used for a long sequence")
        values = [reader.read_elias_delta() for _ in range(count)]
        if max(values) >= MAX_VALUE:
            raise CorruptMessage("value out of range")
        return np.array(values, dtype=np.uint64)
    m = mode - 1
    if m > _MAX_MANTISSA_BITS:
        raise CorruptMessage(f"unknown integer coding mode {mode}")
    low = reader.read_elias_delta()
    size = reader.read_elias_delta()
    if low + size - 1 > _max_bucket(m):
        raise CorruptMessage("bucket table out of range")
    head = [reader.read_elias_delta() - 1 for _ in range(size - 1)]
    last = count - sum(head)
    if last < 1:
        raise CorruptMessage("bucket counts exceed the number of values")
    if size == 1:
        buckets = np.full(count, low, dtype=np.int64)
    else:
        histogram = np.array(head + [last], dtype=np.float64)
        buckets = _decode_ans(_read_ans_payload(reader), histogram, count).astype(np.int64) + low
    shift = _bucket_shift(buckets, m)
    top = (buckets - (shift << m)).astype(np.uint64)
    return (top << shift.astype(np.uint64)) | reader.read_fields(shift)


# --- public API ---------------------------------------------------------------------------


def _integer_array(values: np.ndarray, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "iub":
        raise ValueError(f"{what} must be integers, got dtype {array.dtype}")
    return array.ravel()


def _write_table(writer: BitWriter, support: np.ndarray, counts: np.ndarray) -> None:
    """Distinct symbols (as gaps) and their counts, the last count implied by n."""
    writer.write_elias_delta(support.size)
    _write_uints(writer, np.diff(support, prepend=-1))
    if support.size > 1:
        _write_uints(writer, counts[:-1])


def encode_symbols(symbols: np.ndarray, alphabet_size: int | None = None) -> bytes:
    """Entropy-code integer symbols in ``[0, alphabet_size)`` under their own histogram.

    Layout (bit level, integers Elias delta): ``n+1``; if n > 0 a mode bit, then either
    *table mode*: ``k`` (number of distinct symbols), the sorted distinct symbols as gaps
    and the counts of all but the last of them (both via the integer-sequence coder), and,
    if k > 1, the ANS payload of the symbols' ranks under ``Categorical(counts)``;
    or *uniform mode* (chosen when the table would cost more than it saves, e.g. few
    symbols from a big alphabet): ``max+1`` and the ANS payload of the symbols under a
    uniform model over ``0..max``.  An all-equal array costs a few bytes.
    ``alphabet_size`` only validates the input; it is not stored.
    """
    x = _integer_array(symbols, "symbols")
    if x.dtype.kind == "b":
        x = x.view(np.uint8)
    writer = BitWriter()
    writer.write_elias_delta(x.size + 1)
    if x.size == 0:
        return writer.getvalue()
    lo = 0 if x.dtype.kind == "u" else int(x.min())
    hi = int(x.max())
    limit = MAX_VALUE - 1 if alphabet_size is None else min(int(alphabet_size), MAX_VALUE - 1)
    if lo < 0 or hi >= limit:
        raise ValueError(f"symbols must lie in [0, {limit}), got range [{lo}, {hi}]")
    if hi < max(1 << 16, 4 * x.size):
        histogram = np.bincount(x, minlength=hi + 1)
        support = np.flatnonzero(histogram)
        counts = histogram[support]
        if support.size == hi + 1:  # every symbol 0..hi occurs: ranks are the symbols
            ranks = x
        else:
            ranks = (np.cumsum(histogram > 0) - 1).astype(np.int32)[x]
    else:  # sparse huge alphabet: avoid a table of size hi
        support, ranks, counts = np.unique(x, return_inverse=True, return_counts=True)
    if support.size > _ANS_MAX_WEIGHTS:
        raise ValueError(f"{support.size} distinct symbols exceed constriction's 24-bit model")
    # Table mode is written optimistically; the uniform mode replaces it if cheaper.
    writer.write_bits(0, 1)
    _write_table(writer, support, counts)
    table_bits = writer.bit_length + (_entropy_bits(counts) if support.size > 1 else 0.0)
    uniform_bits = elias_delta_bits(x.size + 1) + 1 + elias_delta_bits(hi + 1) + x.size * np.log2(hi + 1)
    if support.size > 1 and hi < _ANS_MAX_WEIGHTS and uniform_bits < table_bits:
        writer = BitWriter()
        writer.write_elias_delta(x.size + 1)
        writer.write_bits(1, 1)
        writer.write_elias_delta(hi + 1)
        _write_ans(writer, x, np.ones(hi + 1))
    elif support.size > 1:
        _write_ans(writer, ranks, counts)
    return writer.getvalue()


def decode_symbols(data: bytes) -> np.ndarray:
    """Inverse of :func:`encode_symbols`: a 1-D int64 array (the caller reshapes)."""
    reader = BitReader(data)
    n = reader.read_elias_delta() - 1
    if n > MAX_ITEMS:
        raise CorruptMessage(f"implausible symbol count {n}")
    if n == 0:
        reader.finish()
        return np.zeros(0, dtype=np.int64)
    if reader.read_bits(1):  # uniform mode
        size = reader.read_elias_delta()
        if not 2 <= size <= _ANS_MAX_WEIGHTS:
            raise CorruptMessage(f"uniform alphabet of size {size}")
        payload = _read_ans_payload(reader)
        reader.finish()
        return _decode_ans(payload, np.ones(size), n, is_histogram=False).astype(np.int64)
    k = reader.read_elias_delta()
    if k > min(n, _ANS_MAX_WEIGHTS):
        raise CorruptMessage(f"{k} distinct symbols among {n}")
    gaps = _read_uints(reader, k)
    if gaps.sum(dtype=np.float64) > MAX_VALUE:
        raise CorruptMessage("symbol out of range")
    support = np.cumsum(gaps.astype(np.int64)) - 1
    if k == 1:
        reader.finish()
        return np.full(n, support[0], dtype=np.int64)
    head = _read_uints(reader, k - 1)
    last = n - int(head.sum(dtype=np.float64))  # float is exact: n < 2**53
    if last < 1:
        raise CorruptMessage("symbol counts exceed the number of symbols")
    payload = _read_ans_payload(reader)
    reader.finish()
    ranks = _decode_ans(payload, np.append(head.astype(np.float64), last), n)
    if support[-1] == k - 1:
        return ranks.astype(np.int64)
    return support[ranks]


def encode_positions(indices: np.ndarray, length: int) -> bytes:
    """Code sorted unique indices into ``range(length)`` as entropy-coded gaps.

    Layout: Elias delta ``n+1``, then the gaps ``indices[0]+1, diff(indices)`` (all >= 1)
    via the integer-sequence coder.  ``length`` is known to the decoder and not stored.
    For i.i.d. (Bernoulli) masks the gaps are geometric and cost ~ ``length * h2(density)``.
    """
    idx = _integer_array(indices, "indices").astype(np.int64)
    length = int(length)
    if idx.size and (idx[0] < 0 or idx[-1] >= length or np.any(np.diff(idx) <= 0)):
        raise ValueError(f"indices must be strictly increasing and lie in [0, {length})")
    if length >= MAX_VALUE:
        raise ValueError("length must be below 2**53")
    writer = BitWriter()
    writer.write_elias_delta(idx.size + 1)
    _write_uints(writer, np.diff(idx, prepend=-1))
    return writer.getvalue()


def decode_positions(data: bytes, length: int) -> np.ndarray:
    """Inverse of :func:`encode_positions`: sorted int64 indices."""
    reader = BitReader(data)
    n = reader.read_elias_delta() - 1
    if n > min(int(length), MAX_ITEMS):
        raise CorruptMessage(f"{n} positions in a layer of length {length}")
    gaps = _read_uints(reader, n)
    reader.finish()
    if gaps.sum(dtype=np.float64) > length + 1:  # float: guards the int64 cumsum below
        raise CorruptMessage("positions run past the end of the layer")
    positions = np.cumsum(gaps.astype(np.int64)) - 1
    if n and positions[-1] >= length:
        raise CorruptMessage("positions run past the end of the layer")
    return positions
