"""The report's figures read the same way everywhere: one colour (Okabe-Ito) and marker per compressor
on a whole page, several seeds drawn as a mean with their range, no empty axis."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from bench import report
from bench.svgfig import COLOURS


def certs(seeds=(0, 1, 2)) -> pd.DataFrame:
    rows = []
    for name, base in (("id", 0.2), ("prune", 0.5)):
        for s in seeds:
            rows.append({"task": "t", "task_hash": "h", "compressor": name, "compressor_params": "{}", "bound": "occam",
                         "bound_params": "{}", "bound_kind": "certificate", "target": "decoded", "delta": 0.05,
                         "seed": s, "message_bits": 1000.0 * (1 + s), "error_bound": base + 0.01 * s,
                         "target_test_err": base / 2, "refuted": False})
    return pd.DataFrame(rows)


def test_a_compressor_keeps_its_colour_and_marker_whatever_else_is_on_the_figure():
    everything = report.compressor_styles(["prune", "id", "dns", "id"])
    assert everything["id"] == (COLOURS[1], report.MARKERS[1])  # by name order: dns, id, prune
    assert set(c for c, _ in everything.values()) <= set(COLOURS)
    svg_all = report.size_vs_bound(certs(), None, styles=everything)
    alone = report.size_vs_bound(certs()[lambda d: d["compressor"] == "id"], None, styles=everything)
    colour = everything["id"][0].lower()
    assert colour in svg_all.lower() and colour in alone.lower()


def test_several_seeds_are_a_mean_with_their_range():
    points = report.seed_summary(report._with_flags(certs()))
    assert list(points["seeds"]) == [3, 3]
    row = points[points["compressor"] == "id"].iloc[0]
    assert np.isclose(row["bound_mean"], 0.21) and (row["bound_lo"], row["bound_hi"]) == (0.2, 0.22)
    assert np.isclose(row["bits_mean"], 2000.0)


def test_no_empty_cross_entropy_axis():
    rows = pd.DataFrame({"compressor": ["hw-kmeans"] * 2, "artifact_id": ["a", "b"], "message_bits": [100.0, 200.0],
                         "test_err": [0.3, 0.2], "test_ce": [np.nan, np.nan]})
    assert "cross-entropy" not in report.rate_risk(rows)
    rows["test_ce"] = [0.9, 0.7]
    assert "cross-entropy" in report.rate_risk(rows)


def test_every_figure_on_the_page_has_a_caption():
    captions = report.CAPTIONS
    assert all(len(text) > 40 for text in captions.values())
    assert re.search("mean over its seeds", captions["size"]) and re.search("mean over its seeds", captions["test"])
