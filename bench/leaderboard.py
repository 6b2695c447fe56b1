"""Ranked tables from the results table: certificates per task by error bound (mean ± std over seeds).

Per task: a headline (the best certificate of the sample: every certificate already pays its
configuration's code word, so by Kraft they all hold at once and the best needs no further union
bound; the folder's ledger count stands beside it as the record of the search), then non-vacuous
certificates (ranked), vacuous ones, expectation bounds and lower bounds (diagnostics, never
certificates), refuted certificates (never ranked), the failed cells, and one line per pair that does
not apply (skipped cells, by compressor and reason). Rows are averaged
over seeds only when they are the same certificate: same task configuration, compressor and bound
configurations, target and δ. Rows from several results folders merge as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from bench.anchors import Anchor
from bench.rows import VACUOUS

GROUP = ["task", "task_hash", "compressor", "compressor_params", "bound", "bound_params", "bound_kind", "target",
         "delta"]
SECTIONS = [
    ("certificates", "Certificates (hold with probability ≥ 1 − δ), ranked by error bound"),
    ("vacuous", "Vacuous certificates (bound rounds to 100 %)"),
    ("expectation", "Expectation bounds (bound the expected risk over training sets)"),
    ("lower_bound", "Lower bounds (diagnostic floors, never certificates)"),
    ("refuted", "Refuted certificates (below the Clopper–Pearson lower limit at δ of their target's test "
                "error): a bug in the compressor or the bound, never ranked"),
]


def latest_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: the most recent ``ok`` row if there is one, else the most recent row."""
    if df.empty:
        return df
    df = df.assign(_ok=(df["status"] == "ok").astype(int)).sort_values(["_ok", "started_at"])
    return df.drop_duplicates("cell_id", keep="last").drop(columns="_ok")


def _short_params(params: pd.Series, defaults: dict[str, Any] | None = None) -> pd.Series:
    """The parameters that differ from the plugin's defaults (when they are known: the plugin is
    installed), else those that differ between the configurations shown."""
    parsed = params.map(json.loads)
    if defaults is not None:
        same = lambda k, v: json.dumps(v, sort_keys=True) == json.dumps(defaults.get(k), sort_keys=True)  # noqa: E731
        return parsed.map(lambda d: ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(d.items())
                                              if k not in defaults or not same(k, v)) or "default")
    keys = sorted({k for d in parsed for k in d})
    varying = [k for k in keys if len({json.dumps(d.get(k), sort_keys=True) for d in parsed}) > 1]
    return parsed.map(lambda d: ", ".join(f"{k}={json.dumps(d.get(k))}" for k in varying) or "default")


def plugin_defaults(registry) -> dict[tuple[str, str], dict[str, Any]]:
    """Every installed compressor's and bound's default parameters, keyed by (kind, name)."""
    out = {}
    for kind, singular in (("compressors", "compressor"), ("bounds", "bound")):
        for name in registry.names(kind):
            out[(singular, name)] = json.loads(json.dumps(registry.get(kind, name).defaults()))
    return out


def _pm(mean: float, std: float, n: int, scale: float = 100.0, digits: int = 2) -> str:
    if mean is None or not np.isfinite(mean):
        return "—"
    text = f"{mean * scale:.{digits}f}"
    return text + (f" ± {std * scale:.{digits}f}" if n > 1 and np.isfinite(std) else "")


def refuted_rows(df: pd.DataFrame) -> list[str]:
    """Certificates refuted by their own target's test error, one line each naming the cell."""
    df = latest_rows(df)
    if df.empty or "refuted" not in df:
        return []
    bad = df[(df["status"] == "ok") & (df["refuted"] == True)]  # noqa: E712  (nullable column)
    return [f"certificate {r.error_bound:.4f} is below its target's test error {r.target_test_err:.4f} beyond "
            f"chance at δ = {r.delta:g} (cell {r.cell_id}: {r.task} {r.compressor} {r.bound}): refuted"
            for r in bad.itertuples()]


def floor_violations(df: pd.DataFrame) -> list[str]:
    """A lower-bound row (a floor on a family of certificates) above a certificate of that family for
    the same decoded model, one line each: the floor's estimate and the certificate's Monte Carlo
    disagree, which must be looked at, not hidden. A plugin names the family a floor covers in its
    extras (``floor_of``: the bound and the values of its ``form`` parameter)."""
    df = latest_rows(df)
    ok = df[df["status"] == "ok"]
    lines = []
    for row in ok[ok["bound_kind"] == "lower_bound"].itertuples():
        covers = json.loads(row.extras).get("bound", {}).get("floor_of")
        if not covers:
            continue
        same = ok[(ok["artifact_id"] == row.artifact_id) & (ok["bound"] == covers["bound"])
                  & (ok["bound_kind"] == "certificate")]
        for cert in same.itertuples():
            if json.loads(cert.bound_params).get("form") in covers["forms"] and cert.error_bound < row.error_bound:
                lines.append(f"the {row.bound} floor {row.error_bound:.4f} is above the {cert.bound} certificate "
                             f"{cert.error_bound:.4f} of the same model (cells {row.cell_id}, {cert.cell_id}): "
                             f"the floor's quadratic estimate and the certificate's Monte Carlo disagree")
    return lines


def with_kinds(df: pd.DataFrame) -> pd.DataFrame:
    """Rows from before a column existed read it as null; give them the values they would have had."""
    df = df.copy()
    df["target"] = df["target"].fillna("decoded")
    df["refuted"] = df["refuted"].fillna(False).astype(bool)
    df["task_hash"] = df["task_hash"].fillna("")
    df["target_test_err"] = df["target_test_err"].fillna(df["test_err"])
    return df


@dataclass
class Table:
    title: str
    frame: pd.DataFrame  # display columns, already ranked
    cells: list[str] | None = None  # a cell id per row (the report links each row to its drill-down)


def headline(ok: pd.DataFrame, ledger_counts: dict[str, int],
             ledger_note: Callable[[str], str] | None = None) -> Table | None:
    """The best certificate of a task's sample, with the ledger's count of what was tried beside it
    (a record, not a price: the configuration code already paid for every search); ``ledger_note``
    gives the count per results folder when several are merged."""
    certs = ok[(ok["bound_kind"] == "certificate") & ~ok["refuted"] & (ok["error_bound"] < VACUOUS)]
    if certs.empty:
        return None
    row = certs.sort_values(["error_bound", "message_bits"]).iloc[0]
    tried = max(ledger_counts.get(row["sample_id"], 0), _int(row.get("ledger_configs")))
    frame = pd.DataFrame({
        "error bound %": [_pm(row["error_bound"], 0, 1)], "compressor": [row["compressor"]], "bound": [row["bound"]],
        "seed": [row["seed"]], "target": [row["target"]], "target test err %": [_pm(row["target_test_err"], 0, 1)],
        "configuration bits": [_bits(row.get("config_bits"))], "message bits": [_bits(row.get("message_bits"))],
        "configurations tried (ledger)": [tried], "cell": [row["cell_id"]],
    })
    per_folder = ledger_note(row["sample_id"]) if ledger_note is not None else ""
    title = (f"Headline: the best certificate of this training sample (each pays its configuration's code "
             f"word, so all hold at once); the ledger records {tried} configuration{'' if tried == 1 else 's'} "
             f"tried on it" + (f" ({per_folder})" if per_folder else ""))
    return Table(title, frame, [row["cell_id"]])


def published(anchors: list[Anchor]) -> Table:
    """The published certificates on the task's dataset, beside the headline (``bench.anchors``)."""
    frame = pd.DataFrame({
        "error bound %": [f"{a.bound * 100:.2f}" for a in anchors],
        "test err %": [f"{a.test_err * 100:.2f}" if np.isfinite(a.test_err) else "—" for a in anchors],
        "prior": [a.prior for a in anchors], "method": [a.method for a in anchors],
        "citation": [a.citation for a in anchors], "source": [a.source for a in anchors],
    })
    return Table(f"Published certificates on {anchors[0].dataset}, for comparison (bench/data/anchors.csv)", frame)


def prior_diagnostics(ok: pd.DataFrame) -> Table | None:
    """Beside every certificate with a data-dependent prior: p, n_prior, the prior model's own error on
    ``S_bound``, the held-out bound it gives alone with 0 bits (``bench.priordiag``), and what the
    compressor changed (the certificate less that bound: negative when compression helped)."""
    if "prior_bound" not in ok:
        return None
    rows = ok[(ok["bound_kind"] == "certificate") & ok["prior_bound"].notna()].sort_values("error_bound")
    if rows.empty:
        return None
    frame = pd.DataFrame({
        "compressor": rows["compressor"], "config": rows.get("compressor_config", rows["compressor_params"]),
        "bound": rows["bound"], "seed": rows["seed"], "p": rows["prior_fraction"], "n_prior": rows["n_prior"],
        "n_bound": rows["n_train"],
        "prior err on S_bound %": [_pm(e / n, 0, 1) for e, n in zip(rows["prior_train_errors"], rows["n_train"])],
        "prior alone, 0 bits %": [_pm(b, 0, 1) for b in rows["prior_bound"]],
        "certificate %": [_pm(b, 0, 1) for b in rows["error_bound"]],
        "compression changed it by %": [f"{(c - b) * 100:+.2f}" for c, b in zip(rows["error_bound"], rows["prior_bound"])],
    })
    return Table("Data-dependent priors: what the prior alone certifies (a held-out bound on S_bound, 0 bits) and "
                 "what compression changed", frame.reset_index(drop=True), list(rows["cell_id"]))


def skipped_pairs(skipped: pd.DataFrame) -> Table | None:
    """The pairs that do not apply to the task, one line per compressor and reason (which bounds, and
    why), instead of a row per cell: the rows stay in the results as the record, but a first screen
    shows only what means something."""
    if skipped.empty:
        return None
    lines = []
    for (compressor, reason), part in skipped.groupby(["compressor", "error"], sort=True, dropna=False):
        lines.append(f"{compressor} × {', '.join(sorted(set(part['bound'])))}: {reason}")
    return Table("Skipped: these pairs do not apply to the task", pd.DataFrame({"compressor × bounds: why": lines}))


def _int(value: Any) -> int:
    return int(value) if value is not None and np.isfinite(value) else 0


def _bits(value: Any) -> str:
    return f"{float(value):g}" if value is not None and np.isfinite(value) else "—"


def build(df: pd.DataFrame, task: str | None = None, ledger_counts: dict[str, int] | None = None,
          defaults: dict[tuple[str, str], dict[str, Any]] | None = None,
          ledger_note: Callable[[str], str] | None = None,
          anchors: dict[str, list[Anchor]] | None = None) -> dict[str, list[Table]]:
    df = latest_rows(df)
    if task is not None:
        df = df[df["task"] == task]
    out: dict[str, list[Table]] = {}
    for task_name, tdf in df.groupby("task", sort=True):
        tables: list[Table] = []
        ok = with_kinds(tdf[tdf["status"] == "ok"])
        if not ok.empty:
            top = headline(ok, ledger_counts or {}, ledger_note)
            if top is not None:
                tables.append(top)
            if (anchors or {}).get(task_name):
                tables.append(published(anchors[task_name]))
            for kind in ("compressor", "bound"):
                ok[f"{kind}_config"] = ok.groupby(kind)[f"{kind}_params"].transform(
                    lambda params, kind=kind: _short_params(params, (defaults or {}).get((kind, params.name))
                                                            if defaults is not None else None))
            agg = ok.groupby(GROUP, dropna=False).agg(
                seeds=("seed", "nunique"), bound_mean=("error_bound", "mean"), bound_std=("error_bound", "std"),
                test_mean=("target_test_err", "mean"), se_mean=("target_test_err_se", "mean"),
                train_mean=("train_err", "mean"), gap_mean=("bound_minus_test", "mean"),
                bits_mean=("message_bits", "mean"), kl_mean=("kl_nats", "mean"),
                refuted=("refuted", "any"), ledger=("ledger_configs", "max"), cell=("cell_id", "first"),
                compressor_config=("compressor_config", "first"), bound_config=("bound_config", "first"),
            ).reset_index().sort_values(["bound_mean", "bits_mean"])
            vacuous = agg["bound_mean"] >= VACUOUS
            agg["section"] = np.where(agg["bound_kind"] != "certificate", agg["bound_kind"],
                                      np.where(agg["refuted"], "refuted",
                                               np.where(vacuous, "vacuous", "certificates")))
            for key, title in SECTIONS:
                part = agg[agg["section"] == key]
                if part.empty:
                    continue
                frame = pd.DataFrame({
                    "rank": range(1, len(part) + 1) if key == "certificates" else ["—"] * len(part),
                    "compressor": part["compressor"], "config": part["compressor_config"],
                    "bound": part["bound"], "bound config": part["bound_config"], "target": part["target"],
                    "error bound %": [_pm(m, s, n) for m, s, n in zip(part["bound_mean"], part["bound_std"], part["seeds"])],
                    "test err %": [_pm(m, 0, 1) + (f" (±{se * 100:.2f})" if t == "stochastic" and np.isfinite(se) else "")
                                   for m, se, t in zip(part["test_mean"], part["se_mean"], part["target"])],
                    "train err %": [_pm(m, 0, 1) for m in part["train_mean"]],
                    "bound − test %": [_pm(m, 0, 1) for m in part["gap_mean"]],
                    "size KB": [f"{b / 8192:.3f}" if np.isfinite(b) else "—" for b in part["bits_mean"]],
                    "seeds": part["seeds"],
                })
                tables.append(Table(title, frame.reset_index(drop=True), list(part["cell"])))
            diagnostics = prior_diagnostics(ok)
            if diagnostics is not None:
                tables.append(diagnostics)
        violations = floor_violations(tdf)
        if violations:
            tables.append(Table("LOWER-BOUND VIOLATIONS (a floor above a certificate it should be below)",
                                pd.DataFrame({"violation": violations})))
        failed = tdf[tdf["status"] == "failed"]
        if not failed.empty:
            frame = failed[["compressor", "bound", "seed", "error"]].sort_values(["compressor", "bound", "seed"])
            tables.append(Table("Failed cells", frame.reset_index(drop=True)))
        skipped = skipped_pairs(tdf[tdf["status"] == "skipped"])
        if skipped is not None:
            tables.append(skipped)
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
