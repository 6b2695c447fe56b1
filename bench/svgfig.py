"""Matplotlib figures as inline SVG that is the same for the same data: a fixed hash salt, no date, no
metadata, text kept as text (so a page's figures can be diffed, searched and checked in a browser)."""

from __future__ import annotations

import io

#: Okabe and Ito's palette: distinguishable by readers with any common colour-vision deficiency.
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def to_svg(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    plt.close(fig)
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    start, end = text.find("<metadata>"), text.find("</metadata>")
    return text[:start] + text[end + len("</metadata>"):] if start >= 0 and end > start else text


def new_figure():
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update({"svg.hashsalt": "compression-bench", "svg.fonttype": "none",
                                "font.size": 9})
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(6.2, 4.0))
