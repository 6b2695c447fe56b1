"""Several results folders read as one board, for ``bench leaderboard`` and ``bench report``.

Every row pays its own configuration's code word (``bench.configcode``), so rows from anywhere rank
together: a researcher's folder beside a colleague's, or beside a shipped reference set. What must stay
visible is where each row came from (its drill-down reads the artifact from that folder, and its
``bench verify`` command names it) and how much was tried in each folder: the ledgers are a record of
the search, so they are shown per folder and merged (one configuration tried in two folders counts once).
A cell present in several folders (the same cell id: the same configuration on the same sample) is one
row of the board: the most recent ``ok`` one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from bench.anchors import Anchor, anchors_for, task_dataset
from bench.api.params import ConfigError
from bench.ledger import Ledger
from bench.results import COLUMNS, ResultsStore

FOLDER = "results_folder"  # the column naming the folder a row was read from
#: The reference board that ships with the project (``reference/_README.md`` says how it was made).
REFERENCE = Path(__file__).resolve().parent.parent / "reference"


def with_reference(folders: Sequence[Path]) -> list[Path]:
    """``folders`` and the shipped reference board after them (a clear error where it is not shipped:
    an installed wheel has no ``reference/``; a clone of the repository has)."""
    if not (REFERENCE / "_README.md").exists():
        raise ConfigError(f"--with-reference: the reference board is not at {REFERENCE}: it ships with a clone of the repository "
                                f"(reference/), not with an installed package")
    return [*folders, REFERENCE]


@dataclass
class Board:
    folders: list[Path]
    rows: pd.DataFrame  # every row of every folder, with ``FOLDER``
    counts: dict[str, int]  # distinct configurations per training sample, all folders merged
    per_folder: dict[str, dict[str, int]]  # the same, per folder (keyed by the folder as given)

    @property
    def empty(self) -> bool:
        return self.rows.empty

    def where(self) -> str:
        return ", ".join(map(str, self.folders))

    def ledger_note(self, sample: str) -> str:
        """How many configurations each folder's ledger records on ``sample``, when there are several
        folders ("" for one)."""
        if len(self.folders) < 2:
            return ""
        parts = [f"{folder}: {self.per_folder[str(folder)].get(sample, 0)}" for folder in self.folders]
        return f"{'; '.join(parts)}; {self.counts.get(sample, 0)} in total"

    def anchors(self) -> dict[str, list[Anchor]]:
        """Per task, the published certificates that compare with it (``bench.anchors``), found from
        the task configuration kept with one of its artifacts."""
        out: dict[str, list[Anchor]] = {}
        for task, rows in self.rows.dropna(subset=["artifact_id"]).groupby("task", sort=True):
            for row in rows.itertuples():
                found = task_dataset(ResultsStore(Path(getattr(row, FOLDER))).artifact_dir(str(row.artifact_id))
                                     / "meta.json")
                if found is not None:
                    out[str(task)] = anchors_for(*found)
                    break
        return out


def read_board(folders: Sequence[Path]) -> Board:
    folders = list(dict.fromkeys(Path(f) for f in folders))  # a folder named twice is read once
    frames = []
    for folder in folders:
        frame = ResultsStore(folder).read()
        if not frame.empty:
            frames.append(frame.assign(**{FOLDER: str(folder)}))
    rows = (pd.concat(frames, ignore_index=True) if frames else
            pd.DataFrame({c: pd.Series(dtype=object) for c in [*COLUMNS, FOLDER]}))
    per_folder = {str(f): Ledger(f).configs() for f in folders}  # each ledger read once
    merged: dict[str, set[str]] = {}
    for configs in per_folder.values():  # one configuration tried in two folders counts once
        for sample, tried in configs.items():
            merged.setdefault(sample, set()).update(tried)
    return Board(folders, rows, {s: len(c) for s, c in merged.items()},
                 {f: {s: len(c) for s, c in configs.items()} for f, configs in per_folder.items()})
