"""Self-delimiting concatenation of named byte sections.

Layout: for each section, in order, Elias delta of ``len(section) + 1`` at bit level; zero
padding to a byte; then the sections' bytes back to back.  Names and order are prior
knowledge of the decoder (they cost no bits); every length is stored, the last included,
so that both truncation and trailing garbage are detected.

Where the decoder already knows every section's length but one (a lattice step, a model's float
buffers), :func:`split_known_lengths` splits a plain concatenation instead: no header at all, and the
one unknown section is whatever the others leave. The harness's length code already delimits the
whole message, so nothing inside it needs to; the remainder's own decoder must then refuse bytes it
cannot account for (an ANS payload with leftover data, a float section of the wrong size).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .bits import BitReader, BitWriter, CorruptMessage

__all__ = ["pack_sections", "section_lengths", "split_known_lengths", "unpack_sections"]


def pack_sections(sections: Mapping[str, bytes]) -> bytes:
    """Concatenate ``sections`` (in mapping order) into one message."""
    bodies = [bytes(body) for body in sections.values()]
    writer = BitWriter()
    for body in bodies:
        writer.write_elias_delta(len(body) + 1)
    return writer.getvalue() + b"".join(bodies)


def section_lengths(message: bytes, count: int) -> tuple[int, list[int]]:
    """``(header bytes, [byte length of each section])`` of a message of ``count`` sections, read
    from its own header (no names needed: anyone can check a claimed layout against the message)."""
    reader = BitReader(message)
    lengths = [reader.read_elias_delta() - 1 for _ in range(count)]
    reader.align()
    start = reader.pos // 8
    if start + sum(lengths) != len(message):
        raise CorruptMessage(
            f"sections need {start + sum(lengths)} bytes but the message has {len(message)}"
        )
    return start, lengths


def unpack_sections(message: bytes, names: Sequence[str]) -> dict[str, bytes]:
    """Split a message written by :func:`pack_sections` with sections ``names``, in order."""
    names = list(names)
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate section names in {names}")
    start, lengths = section_lengths(message, len(names))
    sections = {}
    for name, length in zip(names, lengths):
        sections[name] = bytes(message[start : start + length])
        start += length
    return sections


def split_known_lengths(message: bytes, lengths: Mapping[str, int | None]) -> dict[str, bytes]:
    """Split a concatenation of sections (in ``lengths``' order) whose byte lengths the decoder knows,
    except exactly one (``None``): that one gets the bytes the others leave."""
    unknown = [name for name, length in lengths.items() if length is None]
    if len(unknown) != 1:
        raise ValueError(f"exactly one section may have an unknown length, got {unknown}")
    if any(length is not None and length < 0 for length in lengths.values()):
        raise ValueError(f"negative section length in {dict(lengths)}")
    known = sum(length for length in lengths.values() if length is not None)
    if known > len(message):
        raise CorruptMessage(f"the fixed sections need {known} bytes but the message has {len(message)}")
    sections, start = {}, 0
    for name, length in lengths.items():
        size = len(message) - known if length is None else length
        sections[name] = bytes(message[start : start + size])
        start += size
    return sections
