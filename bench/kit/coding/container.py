"""Self-delimiting concatenation of named byte sections.

Layout: for each section, in order, Elias delta of ``len(section) + 1`` at bit level; zero
padding to a byte; then the sections' bytes back to back.  Names and order are prior
knowledge of the decoder (they cost no bits); every length is stored, the last included,
so that both truncation and trailing garbage are detected.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .bits import BitReader, BitWriter, CorruptMessage

__all__ = ["pack_sections", "section_lengths", "unpack_sections"]


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
