"""Small float arrays (scales, codebooks, biases) stored at a chosen precision.

The stored bytes are the little-endian IEEE values, nothing else: the container already
knows each section's byte length, hence the number of values.  ``round_to_precision``
runs the very conversion ``encode_floats`` runs, so a compressor can evaluate exactly the
model the decoder will rebuild.
"""

from __future__ import annotations

import numpy as np

from .bits import CorruptMessage

__all__ = ["PRECISIONS", "encode_floats", "decode_floats", "round_to_precision"]

PRECISIONS: dict[str, np.dtype] = {"float16": np.dtype("<f2"), "float32": np.dtype("<f4")}


def _storage_dtype(precision: str) -> np.dtype:
    try:
        return PRECISIONS[precision]
    except KeyError:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}") from None


def _to_storage(values: np.ndarray, precision: str) -> np.ndarray:
    """Round to the storage dtype (one direct, correctly rounded cast; no double rounding)."""
    dtype = _storage_dtype(precision)
    array = np.asarray(values)
    if array.dtype.kind not in "fiub":
        raise ValueError(f"cannot store dtype {array.dtype} as {precision}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError("cannot store NaN or infinite values")
    with np.errstate(over="ignore"):
        stored = array.astype(dtype)
    if not np.all(np.isfinite(stored)):
        worst = float(np.max(np.abs(array[~np.isfinite(stored)])))
        raise ValueError(
            f"value {worst:g} overflows {precision} (largest finite {float(np.finfo(dtype).max):g}); "
            "rescale it or use a wider precision"
        )
    return stored


def round_to_precision(values: np.ndarray, precision: str) -> np.ndarray:
    """The float32 values (same shape) that ``decode_floats(encode_floats(values))`` yields.

    Values tiny enough to underflow become (signed) zero or subnormal, as rounding does;
    only overflow is an error.
    """
    return _to_storage(values, precision).astype(np.float32)


def encode_floats(values: np.ndarray, precision: str) -> bytes:
    """The values, flattened, as little-endian float16 or float32 bytes."""
    return _to_storage(values, precision).ravel().tobytes()


def decode_floats(data: bytes, precision: str) -> np.ndarray:
    """Inverse of :func:`encode_floats`: a 1-D float32 array."""
    dtype = _storage_dtype(precision)
    if len(data) % dtype.itemsize:
        raise CorruptMessage(f"{len(data)} bytes is not a whole number of {precision} values")
    values = np.frombuffer(data, dtype=dtype).astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise CorruptMessage("non-finite value in a float section")
    return values
