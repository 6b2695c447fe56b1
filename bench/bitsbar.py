"""Itemized bits: where a certificate's complexity goes, as one stacked bar per certificate.

A bound charges ``kl_nats``; a reader needs to see it split into what was paid for: the message's
sections by name (as the compressor declared them), its length code, the configuration's code word, and
the part that is not a code length (a PAC-Bayes posterior's KL, or a robustness adjustment, negative when
it gives bits back). An item missing from the message (parameters a compressor forgot to send) shows
at a glance as a section that is not there. The split is read off the row alone, the same way for every
bound, so a third party's bound is drawn as honestly as ours:

* ``configuration`` = ``config_bits``;
* ``adjustment_nats`` (in bits), labelled as a KL beyond the code when positive and as the robustness
  adjustment when negative;
* the rest of ``kl_nats``: when it is the message and its length code (to within a bit), the message's
  sections and the length code; otherwise one item, "the rest of the KL as the bound charged it".
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from bench.svgfig import COLOURS, new_figure, to_svg

LN2 = math.log(2.0)
FIXED_COLOURS = {"length code": "#999999", "configuration": "#444444"}


def bit_items(row: Any, sections: Sequence[Sequence[Any]] | None) -> list[tuple[str, float]]:
    """``(label, bits)`` items whose sum is the row's ``kl_nats`` in bits."""
    total = float(row.kl_nats) / LN2
    config = float(row.config_bits or 0.0)
    adjustment = float(row.adjustment_nats or 0.0) / LN2
    rest = total - config - adjustment
    message, length = float(row.message_bits or 0.0), float(row.length_code_bits or 0.0)
    items: list[tuple[str, float]] = []
    if abs(rest - message - length) <= 1.0:
        declared = [(str(name), float(bits)) for name, bits in sections or []]
        if declared and abs(sum(b for _, b in declared) - message) <= 1.0:
            items += [(f"message: {name}", bits) for name, bits in declared]
        else:
            items.append(("message", message))
        items.append(("length code", rest - message))
    else:
        items.append(("the rest of the KL as the bound charged it", rest))
    items.append(("configuration", config))
    if adjustment > 0:
        items.append(("KL beyond the code (posterior)", adjustment))
    elif adjustment < 0:
        items.append(("robustness adjustment (bits given back)", adjustment))
    return [(label, bits) for label, bits in items if bits != 0.0]


def colours(labels: Sequence[str]) -> dict[str, str]:
    """One colour per item label, stable within a figure (fixed ones for the length and configuration)."""
    out, free = {}, iter(COLOURS * (1 + len(labels) // len(COLOURS)))
    for label in labels:
        if label not in out:
            out[label] = FIXED_COLOURS.get(label) or next(free)
    return out


def bits_bar(bars: Sequence[tuple[str, list[tuple[str, float]]]], title: str) -> str:
    """A horizontal stacked bar per ``(name, items)`` (bits on a linear axis); negative items are drawn
    hatched, back from the end of the positive ones, and a black tick marks each bar's net total."""
    fig, ax = new_figure()
    fig.set_size_inches(4.6, 1.0 + 0.4 * len(bars))
    palette = colours([label for _, items in bars for label, _ in items])
    seen: set[str] = set()
    for y, (_, items) in enumerate(bars):
        left = 0.0
        for label, bits in [i for i in items if i[1] > 0]:
            ax.barh(y, bits, left=left, color=palette[label], label=None if label in seen else label,
                    gid=f"marks-bits-{y}-{len(seen)}")
            seen.add(label)
            left += bits
        for label, bits in [i for i in items if i[1] < 0]:
            ax.barh(y, bits, left=left, color="white", edgecolor=palette[label], hatch="//",
                    label=None if label in seen else label)
            seen.add(label)
            left += bits
        ax.plot([left, left], [y - 0.4, y + 0.4], color="k", lw=1.5)
    ax.set_yticks(range(len(bars)), [name for name, _ in bars], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("bits the bound charges (kl_nats / ln 2); black tick: the net total")
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title)
    return to_svg(fig)
