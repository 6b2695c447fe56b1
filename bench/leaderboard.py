"""Ranked tables from the results table: certificates per task by error bound (mean ± std over seeds).

Sections per task: non-vacuous certificates (ranked), vacuous certificates, expectation bounds and
lower bounds (diagnostics, never certificates), and a count of failed and skipped cells.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

GROUP = ["task", "compressor", "compressor_params", "bound", "bound_params", "bound_kind"]
SECTIONS = [
    ("certificates", "Certificates (hold with probability ≥ 1 − δ), ranked by error bound"),
    ("vacuous", "Vacuous certificates (bound ≥ 100 %)"),
    ("expectation", "Expectation bounds (bound the expected risk over training sets)"),
    ("lower_bound", "Lower bounds (diagnostic floors, never certificates)"),
]


def latest_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: the most recent ``ok`` row if there is one, else the most recent row."""
    if df.empty:
        return df
    df = df.assign(_ok=(df["status"] == "ok").astype(int)).sort_values(["_ok", "started_at"])
    return df.drop_duplicates("cell_id", keep="last").drop(columns="_ok")


def _short_params(params: pd.Series) -> pd.Series:
    """Show only the parameters that differ between configurations of the same plugin."""
    parsed = params.map(json.loads)
    keys = sorted({k for d in parsed for k in d})
    varying = [k for k in keys if len({json.dumps(d.get(k), sort_keys=True) for d in parsed}) > 1]
    return parsed.map(lambda d: ", ".join(f"{k}={json.dumps(d.get(k))}" for k in varying) or "default")


def _pm(mean: float, std: float, n: int, scale: float = 100.0, digits: int = 2) -> str:
    if not np.isfinite(mean):
        return "—"
    text = f"{mean * scale:.{digits}f}"
    return text + (f" ± {std * scale:.{digits}f}" if n > 1 and np.isfinite(std) else "")


def below_test_error(df: pd.DataFrame) -> list[str]:
    """Certificates below the decoded model's test error: a bug, or (rarely) the δ event. Say so."""
    df = latest_rows(df)
    bad = df[(df["status"] == "ok") & (df["bound_kind"] == "certificate") & (df["error_bound"] < df["test_err"])]
    return [f"certificate {r.error_bound:.4f} is below the test error {r.test_err:.4f} "
            f"(cell {r.cell_id}: {r.task} {r.compressor} {r.bound}); check the bound" for r in bad.itertuples()]


@dataclass
class Table:
    title: str
    frame: pd.DataFrame  # display columns, already ranked


def build(df: pd.DataFrame, task: str | None = None) -> dict[str, list[Table]]:
    df = latest_rows(df)
    if task is not None:
        df = df[df["task"] == task]
    out: dict[str, list[Table]] = {}
    for task_name, tdf in df.groupby("task", sort=True):
        tables: list[Table] = []
        ok = tdf[tdf["status"] == "ok"].copy()
        if not ok.empty:
            ok["compressor_config"] = ok.groupby("compressor")["compressor_params"].transform(_short_params)
            ok["bound_config"] = ok.groupby("bound")["bound_params"].transform(_short_params)
            agg = ok.groupby(GROUP, dropna=False).agg(
                seeds=("seed", "nunique"), bound_mean=("error_bound", "mean"), bound_std=("error_bound", "std"),
                test_mean=("test_err", "mean"), train_mean=("train_err", "mean"),
                gap_mean=("bound_minus_test", "mean"), bits_mean=("message_bits", "mean"),
                kl_mean=("kl_nats", "mean"), vacuous=("is_vacuous", "all"),
                compressor_config=("compressor_config", "first"), bound_config=("bound_config", "first"),
            ).reset_index().sort_values(["bound_mean", "bits_mean"])
            agg["section"] = np.where(agg["bound_kind"] != "certificate", agg["bound_kind"],
                                      np.where(agg["vacuous"], "vacuous", "certificates"))
            for key, title in SECTIONS:
                part = agg[agg["section"] == key]
                if part.empty:
                    continue
                frame = pd.DataFrame({
                    "rank": range(1, len(part) + 1),
                    "compressor": part["compressor"], "config": part["compressor_config"],
                    "bound": part["bound"], "bound config": part["bound_config"],
                    "error bound %": [_pm(m, s, n) for m, s, n in zip(part["bound_mean"], part["bound_std"], part["seeds"])],
                    "test err %": [_pm(m, 0, 1) for m in part["test_mean"]],
                    "train err %": [_pm(m, 0, 1) for m in part["train_mean"]],
                    "bound − test %": [_pm(m, 0, 1) for m in part["gap_mean"]],
                    "size KB": [f"{b / 8192:.3f}" if np.isfinite(b) else "—" for b in part["bits_mean"]],
                    "seeds": part["seeds"],
                })
                tables.append(Table(title, frame.reset_index(drop=True)))
        bad = tdf[tdf["status"] != "ok"]
        if not bad.empty:
            frame = bad[["status", "compressor", "bound", "seed", "error"]].sort_values(["status", "compressor", "bound"])
            tables.append(Table("Failed and skipped cells", frame.reset_index(drop=True)))
        out[str(task_name)] = tables
    return out


def _markdown(frame: pd.DataFrame) -> str:
    cols = list(frame.columns)
    cells = [[str(v) for v in row] for row in frame.itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    return "\n".join([line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in cells])


def render(boards: dict[str, list[Table]], fmt: str = "markdown") -> str:
    if fmt == "csv":
        frames = [t.frame.assign(task=task, section=t.title) for task, tables in boards.items() for t in tables]
        return pd.concat(frames).to_csv(index=False) if frames else ""
    parts = []
    for task, tables in boards.items():
        if fmt == "html":
            parts.append(f"<h2>{task}</h2>")
            parts += [f"<h3>{t.title}</h3>\n" + t.frame.to_html(index=False) for t in tables]
        else:
            parts.append(f"## {task}\n")
            parts += [f"### {t.title}\n\n{_markdown(t.frame)}\n" for t in tables]
    return "\n".join(parts)
