"""Published certificates to place beside ours (``bench/data/anchors.csv``).

A reader of a leaderboard asks how its numbers compare with the literature's. The data file lists the
strongest published high-probability test-error certificates we could confirm in a stored copy of their
source (the paper's code or table, named in each line), with the dataset, the kind of prior, the bound,
the test error where it is published, and the citation. A published figure only compares with a task
on the same sample and labels: the dataset at its default parameters (a data-dependent prior's split,
``prior_fraction``, does not change the sample), so a subset (``train_fraction``) or a merged-class
version (``merge_classes``) gets none.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

ANCHORS_FILE = Path(__file__).parent / "data" / "anchors.csv"
SAME_SAMPLE = ("prior_fraction",)  # dataset parameters that leave the sample and its labels as they are


@dataclass(frozen=True)
class Anchor:
    dataset: str
    prior: str  # data-free, transfer, data-dependent
    bound: float  # the certificate, a fraction
    test_err: float  # nan where the source gives none
    method: str
    citation: str
    source: str

    def label(self) -> str:
        return f"{self.citation.split(',')[0]} ({self.prior}) {self.bound * 100:.1f} %"


@lru_cache(maxsize=None)
def load_anchors(path: Path = ANCHORS_FILE) -> tuple[Anchor, ...]:
    with open(path, newline="", encoding="utf-8") as f:
        return tuple(
            Anchor(r["dataset"], r["prior"], float(r["bound_percent"]) / 100,
                   float(r["test_percent"]) / 100 if r["test_percent"] else math.nan,
                   r["method"], r["citation"], r["source"])
            for r in csv.DictReader(f))


def anchors_for(dataset: str, dataset_params: dict[str, Any] | None) -> list[Anchor]:
    """The published certificates that compare with a task on ``dataset`` with these (non-default)
    parameters: none unless the sample and labels are the dataset's own."""
    if any(k not in SAME_SAMPLE for k in (dataset_params or {})):
        return []
    return sorted((a for a in load_anchors() if a.dataset == dataset), key=lambda a: a.bound)


def task_dataset(meta_path: Path) -> tuple[str, dict[str, Any]] | None:
    """The dataset and its non-default parameters of the task an artifact was made on (its meta.json),
    or None when it cannot be read."""
    try:
        task = json.loads(Path(meta_path).read_text())["task"]
        return str(task["dataset"]), dict(task.get("dataset_params") or {})
    except (OSError, ValueError, KeyError, TypeError):
        return None
