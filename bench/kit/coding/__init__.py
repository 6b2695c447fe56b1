"""The coding library every compressor shares: lossless, deterministic, constriction-based.

* ``encode_symbols``/``decode_symbols``: integer arrays under their own empirical
  categorical model (the histogram travels in the message).
* ``encode_symbols_gaussian``/``decode_symbols_gaussian``: a known number of symbols over a known
  alphabet under a discrete Gaussian whose width is one byte of the message (symbols on an evenly
  spaced lattice, such as a rounded z; no histogram sent).
* ``encode_positions``/``decode_positions``: sparse kept indices as entropy-coded gaps.
* ``encode_floats``/``decode_floats``/``round_to_precision``: float16/float32 values.
* ``pack_sections``/``unpack_sections``: named sections in one self-delimiting message;
  ``split_known_lengths``: a plain concatenation whose lengths the decoder knows, but one.
* ``BitWriter``/``BitReader``/``elias_delta_bits``: the bit-level layer underneath.

Every decoder raises :class:`CorruptMessage` on truncated, overlong or inconsistent input.
"""

from .bits import BitReader, BitWriter, CorruptMessage, elias_delta_bits
from .container import pack_sections, section_lengths, split_known_lengths, unpack_sections
from .floats import PRECISIONS, decode_floats, encode_floats, round_to_precision
from .gaussian import decode_symbols_gaussian, encode_symbols_gaussian
from .symbols import decode_positions, decode_symbols, encode_positions, encode_symbols

__all__ = [
    "BitReader",
    "BitWriter",
    "CorruptMessage",
    "PRECISIONS",
    "decode_floats",
    "decode_positions",
    "decode_symbols",
    "decode_symbols_gaussian",
    "elias_delta_bits",
    "encode_floats",
    "encode_positions",
    "encode_symbols",
    "encode_symbols_gaussian",
    "pack_sections",
    "round_to_precision",
    "section_lengths",
    "split_known_lengths",
    "unpack_sections",
]
