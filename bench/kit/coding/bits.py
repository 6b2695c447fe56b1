"""Bit-level I/O: Elias delta codes and MSB-first bit fields, vectorized with numpy.

Everything the entropy coders write besides constriction's ANS words goes through
:class:`BitWriter` / :class:`BitReader`: small headers (Elias delta integers, mode bits)
and large arrays of raw variable-width fields (the low bits of gaps and counts).  Arrays
are packed with a handful of numpy passes instead of a Python loop per field, because
the counts tables and gap arrays of large layers can hold millions of entries.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CorruptMessage", "BitReader", "BitWriter", "elias_delta_bits", "elias_delta_bits_array"]


class CorruptMessage(ValueError):
    """A message is truncated, too long, or internally inconsistent."""


def elias_delta_bits(n: int) -> int:
    """Length in bits of the Elias delta code of ``n >= 1``.

    ``floor(log2 n) + 2*floor(log2(floor(log2 n) + 1)) + 1``; exact for arbitrarily large
    Python ints (no float logarithms).
    """
    if n < 1:
        raise ValueError(f"Elias delta codes positive integers, got {n}")
    length = n.bit_length()
    return (length - 1) + 2 * (length.bit_length() - 1) + 1


def _bit_length(values: np.ndarray) -> np.ndarray:
    """Bit length of each entry of a non-negative integer array below 2**53 (exact)."""
    return np.frexp(np.asarray(values, dtype=np.float64))[1].astype(np.int64)


def elias_delta_bits_array(values: np.ndarray) -> np.ndarray:
    """Vectorized :func:`elias_delta_bits` for integers in ``[1, 2**53)``."""
    length = _bit_length(values)
    return (length - 1) + 2 * (_bit_length(length) - 1) + 1


def _pack_fields(values: np.ndarray, widths: np.ndarray) -> tuple[bytes, int]:
    """Concatenate fields MSB-first; returns (bytes zero-padded to a byte, number of bits)."""
    keep = widths > 0
    values, widths = values[keep], widths[keep]
    if widths.size == 0:
        return b"", 0
    ends = np.cumsum(widths)
    total = int(ends[-1])
    starts = ends - widths
    word, offset = starts >> 6, starts & 63
    words = np.zeros((total + 63) // 64 + 1, dtype=np.uint64)
    # A field lands in word ``word`` and, if it crosses the word boundary, spills into the
    # next one. Shift amounts stay in 0..63 so numpy's shifts are well defined.
    shift = 64 - offset - widths
    head = np.where(
        shift >= 0,
        values << np.maximum(shift, 0).astype(np.uint64),
        values >> np.maximum(-shift, 0).astype(np.uint64),
    )
    _or_sorted(words, word, head)
    spill = shift < 0
    if spill.any():
        tail = values[spill] << (64 + shift[spill]).astype(np.uint64)
        _or_sorted(words, word[spill] + 1, tail)
    data = words.astype(">u8").tobytes()[: (total + 7) // 8]
    return data, total


def _or_sorted(words: np.ndarray, index: np.ndarray, parts: np.ndarray) -> None:
    """``words[index] |= parts`` for a non-decreasing ``index`` with repeats."""
    first = np.flatnonzero(np.r_[True, index[1:] != index[:-1]])
    words[index[first]] |= np.bitwise_or.reduceat(parts, first)


class BitWriter:
    """Append-only MSB-first bit buffer.

    Fields are collected and packed in one vectorized pass when the bytes are needed;
    :meth:`write_bytes` byte-aligns (zero padding) and then appends raw bytes, which is how
    constriction's compressed words are embedded.
    """

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._values: list[np.ndarray] = []
        self._widths: list[np.ndarray] = []
        self._scalar_values: list[int] = []
        self._scalar_widths: list[int] = []
        self._flushed_bits = 0  # bits in self._chunks (a multiple of 8)
        self._pending_bits = 0

    @property
    def bit_length(self) -> int:
        """Number of bits written so far (before final padding)."""
        return self._flushed_bits + self._pending_bits

    def write_bits(self, value: int, nbits: int) -> None:
        """Write ``value`` as an ``nbits``-bit unsigned integer (any size of Python int)."""
        value, nbits = int(value), int(nbits)
        if nbits < 0 or value < 0 or value >> nbits:
            raise ValueError(f"{value} does not fit in {nbits} bits")
        while nbits > 64:  # split big integers into 64-bit fields, most significant first
            nbits -= 64
            self._scalar_values.append(value >> nbits)
            self._scalar_widths.append(64)
            value &= (1 << nbits) - 1
            self._pending_bits += 64
        self._scalar_values.append(value)
        self._scalar_widths.append(nbits)
        self._pending_bits += nbits

    def write_elias_delta(self, n: int) -> None:
        """Write ``n >= 1``: unary-prefixed bit length L of n, then n without its top bit."""
        n = int(n)
        if n < 1:
            raise ValueError(f"Elias delta codes positive integers, got {n}")
        length = n.bit_length()
        self.write_bits(length, 2 * length.bit_length() - 1)  # the leading zeros are implicit
        self.write_bits(n - (1 << (length - 1)), length - 1)

    def write_fields(self, values: np.ndarray, widths: np.ndarray) -> None:
        """Write ``values[i]`` in ``widths[i]`` bits each (widths 0..64), vectorized."""
        values = np.ascontiguousarray(values, dtype=np.uint64).ravel()
        widths = np.ascontiguousarray(widths, dtype=np.int64).ravel()
        if values.shape != widths.shape:
            raise ValueError("values and widths differ in length")
        if widths.size == 0:
            return
        if widths.min() < 0 or widths.max() > 64:
            raise ValueError("field widths must be in 0..64")
        narrow = widths < 64
        if np.any(values[narrow] >> widths[narrow].astype(np.uint64)):
            raise ValueError("a value does not fit in its field width")
        self._flush_scalars()
        self._values.append(values)
        self._widths.append(widths)
        self._pending_bits += int(widths.sum())

    def write_elias_delta_array(self, values: np.ndarray) -> None:
        """Vectorized :meth:`write_elias_delta` for integers in ``[1, 2**53)``."""
        values = np.asarray(values, dtype=np.uint64).ravel()
        if values.size == 0:
            return
        if values.min() < 1 or values.max() >= 1 << 53:
            raise ValueError("array Elias delta codes integers in [1, 2**53)")
        length = _bit_length(values)
        low_width = length - 1
        fields = np.stack([length.astype(np.uint64), values - (np.uint64(1) << low_width.astype(np.uint64))], 1)
        widths = np.stack([2 * _bit_length(length) - 1, low_width], 1)
        self.write_fields(fields.ravel(), widths.ravel())

    def write_bytes(self, data: bytes) -> None:
        """Pad to a byte boundary with zero bits, then append ``data`` verbatim."""
        self._flush()
        if data:
            self._chunks.append(bytes(data))
            self._flushed_bits += 8 * len(data)

    def getvalue(self) -> bytes:
        """All bits written so far, zero-padded to a whole number of bytes."""
        self._flush()
        return b"".join(self._chunks)

    def _flush_scalars(self) -> None:
        if self._scalar_values:
            self._values.append(np.array(self._scalar_values, dtype=np.uint64))
            self._widths.append(np.array(self._scalar_widths, dtype=np.int64))
            self._scalar_values, self._scalar_widths = [], []

    def _flush(self) -> None:
        self._flush_scalars()
        if self._values:
            data, nbits = _pack_fields(np.concatenate(self._values), np.concatenate(self._widths))
            self._chunks.append(data)
            self._flushed_bits += 8 * len(data)
            self._values, self._widths = [], []
        self._pending_bits = 0


class BitReader:
    """Reads what :class:`BitWriter` wrote; every overrun raises :class:`CorruptMessage`."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._end = 8 * len(self._data)
        self.pos = 0  # bit position

    @property
    def remaining_bits(self) -> int:
        return self._end - self.pos

    def _need(self, nbits: int) -> None:
        if nbits > self._end - self.pos:
            raise CorruptMessage("message truncated: needs more bits than it holds")

    def read_bits(self, nbits: int) -> int:
        """Read an ``nbits``-bit unsigned integer (any size)."""
        if nbits == 0:
            return 0
        self._need(nbits)
        first, stop = self.pos >> 3, (self.pos + nbits + 7) >> 3
        chunk = int.from_bytes(self._data[first:stop], "big")
        value = (chunk >> (8 * (stop - first) - (self.pos & 7) - nbits)) & ((1 << nbits) - 1)
        self.pos += nbits
        return value

    def read_elias_delta(self, max_length_bits: int = 64) -> int:
        """Read one Elias delta integer; refuses codes of numbers above 2**(2**max_length_bits)."""
        zeros = 0
        while self.read_bits(1) == 0:
            zeros += 1
            if zeros >= max_length_bits:
                raise CorruptMessage("Elias delta prefix too long")
        length = (1 << zeros) | self.read_bits(zeros)
        low = self.read_bits(length - 1)  # checks the bits exist before 1 << (length - 1)
        return (1 << (length - 1)) | low

    def read_fields(self, widths: np.ndarray) -> np.ndarray:
        """Read fields of the given widths (0..64); vectorized inverse of ``write_fields``."""
        widths = np.ascontiguousarray(widths, dtype=np.int64).ravel()
        if widths.size == 0:
            return np.zeros(0, dtype=np.uint64)
        if widths.min() < 0 or widths.max() > 64:
            raise CorruptMessage("field width outside 0..64")
        total = int(widths.sum())
        self._need(total)
        if total == 0:
            return np.zeros(widths.size, dtype=np.uint64)
        first = self.pos >> 3
        stop = (self.pos + total + 7) >> 3
        raw = self._data[first:stop]
        raw += bytes(-len(raw) % 8 + 16)  # whole words plus spares for spills and empty fields
        words = np.frombuffer(raw, dtype=">u8").astype(np.uint64)
        ends = np.cumsum(widths) + (self.pos & 7)
        starts = ends - widths
        word, offset = starts >> 6, (starts & 63).astype(np.uint64)
        spill = np.where(offset > 0, words[word + 1] >> ((64 - offset) & 63), 0)
        window = (words[word] << offset) | spill  # the 64 bits that start at each field
        values = np.where(widths > 0, window >> (64 - np.maximum(widths, 1)).astype(np.uint64), 0)
        self.pos += total
        return values.astype(np.uint64)

    def read_bytes(self, nbytes: int) -> bytes:
        """Skip the zero padding to the next byte boundary, then read ``nbytes`` raw bytes."""
        self.align()
        self._need(8 * nbytes)
        start = self.pos >> 3
        self.pos += 8 * nbytes
        return self._data[start : start + nbytes]

    def align(self) -> None:
        """Move to the next byte boundary; the skipped padding bits must be zero."""
        if self.pos & 7 and self.read_bits(-self.pos & 7):
            raise CorruptMessage("nonzero padding bits")

    def finish(self) -> None:
        """Check that only zero padding is left, i.e. the message has no trailing data."""
        self.align()
        if self.pos != self._end:
            raise CorruptMessage(f"{(self._end - self.pos) // 8} unexpected trailing bytes")
