"""Rate-risk table of HW and DRHW K-means from a results folder (seed 001 Figure 3, on any task).

    python benchmarks/hw_kmeans_rate_risk.py RESULTS [--task fashion-mnist-mlp] [--markdown]

For every ``hw-kmeans`` / ``drhw-kmeans`` artifact in ``RESULTS`` (e.g. a run of the ``fashion-mnist-mlp``
profile) it decodes the stored message (nothing but the prior and the message, as ``bench verify``
does), evaluates the decoded model's cross-entropy on the training and test sets (seed 001 plots the
cross-entropy; the rows hold the 0-1 errors), and prints, per configuration, means over seeds of: the
message size and compression ratio, 0-1 train/test error, train/test cross-entropy, the generalization
gaps, and the ``mi`` and ``occam`` bounds of the rows. The base model's numbers come first. Nothing here
chooses anything: it reports every configuration that was run.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd

from bench.api.contracts import TaskSpec
from bench.environment import resolve_device
from bench.progress import progress
from bench.registry import load_registry
from bench.results import ResultsStore
from bench.context import build_context
from bench.tasks import BaseModels, instantiate_task
from bench.cache import ModelCache, default_cache_dir
from bench_plugins.mi import cross_entropy

COMPRESSORS = ("hw-kmeans", "drhw-kmeans")


def _config_label(row: pd.Series) -> tuple[str, float, int, int]:
    params = json.loads(row["compressor_params"])
    beta = float(params.get("beta", 0.0)) if row["compressor"] == "drhw-kmeans" else 0.0
    return row["compressor"], beta, int(params.get("block", 1)), int(params["levels"])


def collect(results: Path, task_name: str | None) -> pd.DataFrame:
    store = ResultsStore(results)
    df = store.read()
    df = df[(df["status"] == "ok") & df["compressor"].isin(COMPRESSORS)]
    if task_name:
        df = df[df["task"] == task_name]
    registry = load_registry()
    device = resolve_device("auto")
    records, tasks, bases = [], {}, {}
    for artifact_id, rows in df.groupby("artifact_id"):
        row = rows.iloc[0]
        message, meta, _ = store.load_artifact(str(artifact_id))
        tc = meta["task"]
        if tc["name"] not in tasks:
            spec = TaskSpec(name=tc["name"], dataset=tc["dataset"], model=tc["model"],
                            dataset_params=tc["dataset_params"], model_params=tc["model_params"],
                            recipe=tc["recipe"])
            tasks[tc["name"]] = instantiate_task(spec, registry)
        task, seed = tasks[tc["name"]], int(meta["seed"])
        base_models = BaseModels(ModelCache(default_cache_dir()), device, progress)
        ctx = build_context(task, seed, device, base_models, float(row["delta"]))
        model = registry.get("compressors", meta["compressor"])(**meta["compressor_params"]).decode(message, ctx.prior)
        if (task.name, seed) not in bases:
            base = ctx.base_model().eval()
            bases[(task.name, seed)] = {"train_ce": cross_entropy(base, task.data.train),
                                        "test_ce": cross_entropy(base, task.data.test)}
        by_bound = {b: r for b, r in zip(rows["bound"], rows.itertuples())}
        compressor, beta, block, levels = _config_label(row)
        records.append({
            "task": task.name, "seed": seed, "compressor": compressor, "beta": beta, "block": block,
            "levels": levels, "bits": float(row["message_bits"]), "ratio": float(row["compression_ratio"]),
            "train_err": float(row["train_err"]), "test_err": float(row["test_err"]),
            "train_ce": cross_entropy(model, task.data.train), "test_ce": cross_entropy(model, task.data.test),
            "base_train_err": float(row["base_train_err"]), "base_test_err": float(row["base_test_err"]),
            "base_train_ce": bases[(task.name, seed)]["train_ce"], "base_test_ce": bases[(task.name, seed)]["test_ce"],
            "mi_bound": float(by_bound["mi"].error_bound) if "mi" in by_bound else math.nan,
            "occam_bound": float(by_bound["occam"].error_bound) if "occam" in by_bound else math.nan,
        })
    return pd.DataFrame(records)


def table(records: pd.DataFrame) -> pd.DataFrame:
    records = records.assign(gap_err=records["test_err"] - records["train_err"],
                             gap_ce=records["test_ce"] - records["train_ce"])
    keys = ["task", "compressor", "beta", "block", "levels"]
    agg = records.groupby(keys).agg(
        seeds=("seed", "nunique"), kbits=("bits", lambda b: b.mean() / 1000), ratio=("ratio", "mean"),
        train_err=("train_err", "mean"), test_err=("test_err", "mean"), test_err_sd=("test_err", "std"),
        train_ce=("train_ce", "mean"), test_ce=("test_ce", "mean"), test_ce_sd=("test_ce", "std"),
        gap_err=("gap_err", "mean"), gap_ce=("gap_ce", "mean"), mi=("mi_bound", "mean"),
        occam=("occam_bound", "mean"),
    ).reset_index()
    base = records.groupby("task").agg(
        seeds=("seed", "nunique"), train_err=("base_train_err", "mean"), test_err=("base_test_err", "mean"),
        train_ce=("base_train_ce", "mean"), test_ce=("base_test_ce", "mean")).reset_index()
    base = base.assign(compressor="base (uncompressed)", beta=math.nan, block=1, levels=0,
                       gap_err=base["test_err"] - base["train_err"], gap_ce=base["test_ce"] - base["train_ce"])
    return pd.concat([base, agg], ignore_index=True)[
        ["task", "compressor", "beta", "block", "levels", "seeds", "kbits", "ratio", "train_err", "test_err",
         "test_err_sd", "gap_err", "train_ce", "test_ce", "test_ce_sd", "gap_ce", "mi", "occam"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--task", default=None)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--csv", type=Path, default=None, help="also write the per-artifact records here")
    args = parser.parse_args()
    records = collect(args.results, args.task)
    if args.csv:
        records.to_csv(args.csv, index=False)
    out = table(records)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_rows", 500)
    print(out.to_markdown(index=False, floatfmt=".4f") if args.markdown else out.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
