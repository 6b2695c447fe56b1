"""Re-check a certificate from its evidence: decode the kept message with nothing but the prior
(task, seed, compressor configuration), re-evaluate, recompute the bound, compare with the row."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.contracts import Compressed, Evaluated, TaskSpec
from bench.environment import resolve_device
from bench.evaluation import error_rate
from bench.params import ConfigError
from bench.progress import progress
from bench.registry import Registry
from bench.results import ResultsStore
from bench.runner import build_context, result_columns
from bench.tasks import BaseModels, instantiate_task
from bench.training import ModelCache, default_cache_dir

ERROR_TOLERANCE = 1e-12  # errors are counts / n: exactly reproducible
BOUND_TOLERANCE = 1e-9  # relative


@dataclass
class Report:
    cell_id: str
    ok: bool
    checks: list[tuple[str, object, object, bool]] = field(default_factory=list)  # name, stored, recomputed, agree
    problem: str | None = None

    def add(self, name: str, stored, recomputed, agree: bool) -> None:
        self.checks.append((name, stored, recomputed, agree))
        self.ok = self.ok and agree

    def text(self) -> str:
        lines = [f"cell {self.cell_id}: {'AGREES' if self.ok else 'DIFFERS'}"]
        if self.problem:
            lines.append(f"  {self.problem}")
        for name, stored, recomputed, agree in self.checks:
            lines.append(f"  {'ok ' if agree else 'BAD'} {name}: stored {stored}, recomputed {recomputed}")
        return "\n".join(lines)


def find_row(df: pd.DataFrame, cell_id: str) -> pd.Series:
    rows = df[df["cell_id"].astype(str).str.startswith(cell_id) & (df["status"] == "ok")]
    if rows.empty:
        raise ConfigError(f"no ok row for cell '{cell_id}' in the results")
    if rows["cell_id"].nunique() > 1:
        raise ConfigError(f"cell prefix '{cell_id}' is ambiguous: {', '.join(sorted(rows['cell_id'].unique()))}")
    return rows.sort_values("started_at").iloc[-1]


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def _close(a: float | None, b: float | None, rel: float) -> bool:
    """Equal within ``rel`` (relative, at least absolute); two missing values also agree."""
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def verify_cell(cell_id: str, results: Path, registry: Registry, data_dir: Path | None = None,
                device: str = "auto") -> Report:
    store = ResultsStore(results)
    row = find_row(store.read(), cell_id)
    report = Report(str(row["cell_id"]), ok=True)
    message, meta, layers = store.load_artifact(str(row["artifact_id"]))
    tc = meta["task"]
    spec = TaskSpec(name=tc["name"], dataset=tc["dataset"], model=tc["model"],
                    dataset_params=tc["dataset_params"], model_params=tc["model_params"], recipe=tc["recipe"])
    task = instantiate_task(spec, registry, data_dir)
    seed = int(meta["seed"])
    dev = resolve_device(device)
    base_models = BaseModels(ModelCache(default_cache_dir()), dev, progress)
    compressor_cls = registry.get("compressors", meta["compressor"])
    bound_cls = registry.get("bounds", str(row["bound"]))
    for name, cls, stored in (("compressor", compressor_cls, meta["compressor_version"]),
                              ("bound", bound_cls, row["bound_version"])):
        if cls.version != stored:
            report.problem = f"{name} version is {cls.version}, the row was made by {stored}"
    comp_bits = math.log2(int(row["grid_size"]))
    ctx = build_context(task, seed, dev, base_models, float(row["delta"]), float(row["hparam_bits"]))
    digest = hashlib.sha256(message).hexdigest()
    report.add("message sha256", meta["sha256"][:16], digest[:16], meta["sha256"] == digest)
    report.add("message bits", int(meta["bits"]), 8 * len(message),
               float(meta["bits"]) == 8 * len(message))
    try:
        model = compressor_cls(**meta["compressor_params"]).decode(message, ctx).eval()
    except Exception as exc:  # a corrupted message must fail cleanly
        report.ok = False
        report.problem = f"decoding the stored message failed: {type(exc).__name__}: {exc}"
        return report
    train_err = error_rate(model, task.data.train, task.data.task_type)
    test_err = error_rate(model, task.data.test, task.data.task_type)
    for key, value in (("train_err", train_err), ("test_err", test_err)):
        report.add(key, float(row[key]), value, _close(float(row[key]), value, ERROR_TOLERANCE))
    compressed = Compressed(message=message, layers=layers, stats=meta.get("stats", {}),
                            extras=meta.get("extras", {}), hparam_bits=comp_bits)
    evaluated = Evaluated(compressed, model, train_err, test_err)
    bound = bound_cls(**json.loads(row["bound_params"]))
    try:
        result = bound.compute(evaluated, ctx)
        cols = result_columns(result, evaluated, 0.0, ctx.delta)
    except Exception as exc:
        report.ok = False
        report.problem = f"recomputing the bound failed: {type(exc).__name__}: {exc}"
        return report
    for key in ("kl_nats", "error_bound"):
        stored = None if pd.isna(row[key]) else float(row[key])
        report.add(key, stored, cols[key], _close(stored, cols[key], BOUND_TOLERANCE))
    return report
