"""The selection ledger of a results folder: every configuration ever evaluated on a training sample.

Quoting the best of many certificates is itself a search. Under the configuration code
(``bench.configcode``) every certificate already pays for its configuration, so the search is paid
wherever it ran; the ledger is the record of it: every (task, seed, compressor configuration, bound
configuration, δ) ever started against a training sample in this folder, in any run, failed, killed or
narrowed, shown beside the headline so a reader sees how much was tried.

Entries are written (and synced) *before* a configuration touches the data, as JSON lines in
``_ledger/<writer>.jsonl``: one file per writing process, appended only, so concurrent workers never
share a file. A line cut short by a kill is ignored (its configuration never ran).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from bench.api.params import canonical_json, content_hash


#: Dataset parameters that do not change the training sample: every prior_fraction splits the same S
#: (the union bound over configurations tried with any p holds over S), so they share one ledger.
SAME_SAMPLE = ("prior_fraction",)


def sample_id(task_config: dict[str, Any], defaults: dict[str, Any] | None = None) -> str:
    """The training sample a task's bounds are computed on: its dataset and those of the dataset's
    parameters that differ from their defaults (so a parameter added later, at its default, does not
    start a new ledger). Every task on the same sample shares one ledger, whatever its model."""
    defaults = defaults or {}
    params = {k: v for k, v in task_config["dataset_params"].items()
              if (k not in defaults or defaults[k] != v) and k not in SAME_SAMPLE}
    return content_hash({"dataset": task_config["dataset"], "version": task_config["dataset_version"],
                         "params": params})


def config_key(artifact_id: str, bound: str, bound_version: str, bound_params: dict[str, Any],
               delta: float) -> str:
    """One evaluated configuration: an artifact (task, seed, compressor configuration) and a bound
    configuration at a δ. Grid sizes are not part of it: a narrowed rerun is the same configuration."""
    return content_hash({"artifact": artifact_id, "bound": bound, "version": bound_version,
                         "params": bound_params, "delta": delta})


class Ledger:
    def __init__(self, results: Path) -> None:
        self.root = Path(results) / "_ledger"

    def record(self, writer: str, entries: Iterable[dict[str, Any]]) -> None:
        """Append entries (each with ``sample`` and ``config``) durably, before they are evaluated."""
        lines = "".join(canonical_json(e) + "\n" for e in entries)
        if not lines:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f"{writer}.jsonl", "a", encoding="utf-8") as f:
            f.write(lines)
            f.flush()
            os.fsync(f.fileno())

    def entries(self) -> list[dict[str, Any]]:
        out = []
        if not self.root.exists():
            return out
        for path in sorted(self.root.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue  # cut short by a kill: that configuration never ran
                if isinstance(entry, dict) and "sample" in entry and "config" in entry:
                    out.append(entry)
        return out

    def configs(self) -> dict[str, set[str]]:
        """The distinct configurations tried on each training sample."""
        seen: dict[str, set[str]] = {}
        for entry in self.entries():
            seen.setdefault(entry["sample"], set()).add(entry["config"])
        return seen

    def counts(self) -> dict[str, int]:
        """Distinct configurations per training sample."""
        return {sample: len(configs) for sample, configs in self.configs().items()}

    def count(self, sample: str) -> int:
        return self.counts().get(sample, 0)
