"""Published certificates beside ours (``bench.anchors``): the data file is well formed and holds the
figures read in their sources; a task gets them only on its dataset's own sample and labels; the
leaderboard prints them beside the headline and the size-vs-bound figure draws them as labelled marks."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from bench import leaderboard, report
from bench.anchors import anchors_for, load_anchors
from bench.boards import FOLDER, Board
from bench.registry import load_registry


def test_the_data_file_is_well_formed():
    anchors = load_anchors()
    datasets = set(load_registry().names("datasets"))
    assert len(anchors) >= 10
    for a in anchors:
        assert a.dataset in datasets, a
        assert a.prior in ("data-free", "transfer", "data-dependent"), a
        assert 0 < a.bound < 1 and a.citation and a.source and a.method, a
        assert math.isnan(a.test_err) or 0 <= a.test_err < a.bound, a  # a certificate is above its test error


def test_the_figures_read_in_their_sources():
    """Lotfi et al. 2022 (their repository's figure script) and Recursive PAC-Bayes (Table 1), as the
    issue quotes them."""
    table = {(a.dataset, a.prior, a.citation.split(",")[0]): a for a in load_anchors()}
    assert table[("fashion-mnist", "data-free", "Lotfi et al. 2022")].bound == pytest.approx(0.328)
    assert table[("mnist", "data-free", "Lotfi et al. 2022")].bound == pytest.approx(0.116)
    assert table[("cifar10", "data-free", "Lotfi et al. 2022")].bound == pytest.approx(0.582)
    recursive = table[("fashion-mnist", "data-dependent", "Wu et al. 2024")]
    assert (recursive.bound, recursive.test_err) == (pytest.approx(0.242), pytest.approx(0.192))


def test_only_the_datasets_own_sample_gets_them():
    full = anchors_for("fashion-mnist", {})
    assert [a.bound for a in full] == sorted(a.bound for a in full) and len(full) == 4
    assert anchors_for("fashion-mnist", {"prior_fraction": 0.5}) == full  # the same sample, split for a prior
    assert anchors_for("fashion-mnist", {"merge_classes": 2}) == []  # other labels
    assert anchors_for("fashion-mnist", {"train_fraction": 0.1}) == []  # a smaller sample
    assert anchors_for("digits", {}) == []


def test_the_leaderboard_and_the_figure_place_them_beside_ours(tmp_path):
    meta = tmp_path / "_artifacts" / "a1" / "meta.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"task": {"dataset": "fashion-mnist", "dataset_params": {}}}))
    rows = pd.DataFrame({"task": ["t"], "artifact_id": ["a1"], FOLDER: [str(tmp_path)]})
    anchors = Board([tmp_path], rows, {}, {}).anchors()
    assert [a.bound for a in anchors["t"]] == [a.bound for a in anchors_for("fashion-mnist", {})]
    table = leaderboard.published(anchors["t"])
    assert "fashion-mnist" in table.title and list(table.frame["error bound %"])[0] == "24.20"
    certs = pd.DataFrame({"compressor": ["id"], "message_bits": [2400.0], "error_bound": [0.22], "seed": [0],
                          "target_test_err": [0.15], "refuted": [False]})
    svg = report.size_vs_bound(certs, 0.1, anchors["t"])
    assert all(f'id="anchor-{i}"' in svg for i in range(4))
    assert "Lotfi et al. 2022 (data-free) 32.8 %" in svg
    assert 'id="anchor-0"' not in report.size_vs_bound(certs, 0.1, [])
