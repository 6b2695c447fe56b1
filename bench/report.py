"""``bench report``: the leaderboard as one self-contained web page, with the plots people look for.

The page (``index.html``) opens from disk with no network: the figures are inline SVG drawn by
matplotlib (with a fixed hash salt and no date, so two builds of the same results are identical), and
the only script is a few lines inline that sort tables. Per task: the leaderboard's sections, then

* **size vs bound**: message size (log axis) against the error bound, one marker per compressor, the
  Pareto frontier (no other certificate is both smaller and tighter), the base model's test error;
* **bound vs test error**: each certificate against its target's test error with y = x; a point below
  the line is suspect, and refuted when it is below by more than the Clopper–Pearson limit;
* **rate–risk** for the K-means families (message size against test error and cross-entropy, as seed
  001 Figure 3) and the **curvature floor** beside the curvature certificates of the same model,
  when those rows exist;
* a drill-down per certificate (``#cell-<id>``): where its bits go, the KL, the empirical term, δ,
  what it certifies, and the ``bench verify`` command that re-checks it.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from bench import leaderboard
from bench.anchors import Anchor
from bench.atomic import write_atomically
from bench.bitsbar import bit_items, bits_bar
from bench.svgfig import COLOURS, new_figure, to_svg
from bench.boards import FOLDER, Board, read_board
from bench.results import ResultsStore

KMEANS = ("hw-kmeans", "drhw-kmeans")
MARKERS = "osD^v<>pXh*"
LINESTYLES = ("-", "--", "-.", ":")
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:1200px;color:#222}
h1{font-size:1.6rem}h2{border-bottom:1px solid #ccc;margin-top:2.5rem}h3{font-size:1.05rem;margin-top:1.6rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}th,td{border:1px solid #ddd;padding:.2rem .5rem}
th{background:#f3f3f3;cursor:pointer;user-select:none}tr:nth-child(even) td{background:#fafafa}
.figs{display:flex;flex-wrap:wrap;gap:1rem}.fig{flex:0 1 540px;margin:0}.fig svg{width:100%;height:auto}
figcaption{font-size:.8rem;color:#555;margin-top:.2rem}
details{border:1px solid #ddd;padding:.3rem .6rem;margin:.3rem 0}summary{cursor:pointer}
code{background:#f3f3f3;padding:0 .2rem}.note{color:#555;font-size:.9rem}
"""
SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th, i) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0], rows = Array.from(body.rows);
    var up = th.dataset.dir !== 'up'; th.dataset.dir = up ? 'up' : 'down';
    var key = function (r) { var t = r.cells[i].innerText, n = parseFloat(t); return isNaN(n) ? t : n; };
    rows.sort(function (a, b) { var x = key(a), y = key(b); return (x > y ? 1 : x < y ? -1 : 0) * (up ? 1 : -1); });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


# ----------------------------------------------------------------------------- the data of the plots
def certificates(df: pd.DataFrame) -> pd.DataFrame:
    ok = leaderboard.with_kinds(leaderboard.latest_rows(df))
    ok = ok[(ok["status"] == "ok") & (ok["bound_kind"] == "certificate")]
    return ok.reset_index(drop=True)


def pareto_frontier(bits: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points (no other point has at most the bits and at most the bound,
    one of them strictly less), in order of increasing size."""
    bits, bounds = np.asarray(bits, float), np.asarray(bounds, float)
    keep = []
    index = np.arange(len(bits))
    for i in range(len(bits)):
        better = (bits < bits[i]) | (bounds < bounds[i])
        same_earlier = (bits == bits[i]) & (bounds == bounds[i]) & (index < i)  # of equal points, the first
        if not np.any((bits <= bits[i]) & (bounds <= bounds[i]) & (better | same_earlier)):
            keep.append(i)
    return np.array(sorted(keep, key=lambda i: (bits[i], bounds[i])), dtype=int)


def below_the_line(certs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Masks of the certificates below y = x (bound < target test error): suspect, and refuted (below
    the Clopper–Pearson lower limit at δ, the harness's ``refuted`` column)."""
    below = (certs["error_bound"] < certs["target_test_err"]).to_numpy()
    refuted = certs["refuted"].astype(bool).to_numpy()
    return below & ~refuted, refuted


# ----------------------------------------------------------------------------------- the figures
Style = dict[str, tuple[str, str]]  # compressor -> (colour, marker), the same in every figure of a page


def compressor_styles(names) -> Style:
    """One colour (Okabe-Ito, safe for colour-blind readers) and one marker per compressor, by name
    order, so a compressor looks the same in every figure of a page."""
    names = sorted({str(n) for n in names})
    return {n: (COLOURS[i % len(COLOURS)], MARKERS[i % len(MARKERS)]) for i, n in enumerate(names)}


def seed_summary(certs: pd.DataFrame) -> pd.DataFrame:
    """One point per certificate configuration: the mean over its seeds, with their range."""
    keys = [c for c in leaderboard.GROUP if c in certs]
    return certs.groupby(keys, dropna=False, sort=True).agg(
        seeds=("seed", "nunique"), bits_mean=("message_bits", "mean"),
        bound_mean=("error_bound", "mean"), bound_lo=("error_bound", "min"), bound_hi=("error_bound", "max"),
        test_mean=("target_test_err", "mean"), test_lo=("target_test_err", "min"), test_hi=("target_test_err", "max"),
        suspect=("_suspect", "any"), refuted=("refuted", "any"),
    ).reset_index()


def _with_flags(certs: pd.DataFrame) -> pd.DataFrame:
    suspect, _ = below_the_line(certs)
    return certs.assign(_suspect=suspect, refuted=certs["refuted"].astype(bool))


def _range(mean: pd.Series, lo: pd.Series, hi: pd.Series) -> np.ndarray:
    return np.vstack([(mean - lo).to_numpy(), (hi - mean).to_numpy()]) * 100


def size_vs_bound(certs: pd.DataFrame, base_test: float | None, anchors: list[Anchor] | None = None,
                  styles: Style | None = None) -> str:
    """``anchors``: published certificates on the task's dataset, drawn as labelled horizontal marks
    (they have no message size here: a level to compare with, not a point)."""
    styles = styles or compressor_styles(certs["compressor"])
    points = seed_summary(_with_flags(certs))
    fig, ax = new_figure()
    for i, (name, group) in enumerate(points.groupby("compressor", sort=True)):
        colour, marker = styles[name]
        bars = ax.errorbar(group["bits_mean"].clip(lower=1), group["bound_mean"] * 100,
                           yerr=_range(group["bound_mean"], group["bound_lo"], group["bound_hi"]), fmt=marker,
                           color=colour, label=name, alpha=0.85, capsize=2, lw=1)
        bars[0].set_gid(f"marks-{i}")
    front = pareto_frontier(points["bits_mean"].clip(lower=1), points["bound_mean"])
    if len(front):
        pts = points.iloc[front]
        ax.step(pts["bits_mean"].clip(lower=1), pts["bound_mean"] * 100, where="post", color="k", lw=1,
                label="Pareto frontier")
    if base_test is not None and np.isfinite(base_test):
        ax.axhline(base_test * 100, color="gray", ls="--", lw=1, label="base model test error")
    for i, anchor in enumerate(anchors or []):
        ax.axhline(anchor.bound * 100, color="#999999", ls=":", lw=1, gid=f"anchor-{i}")
        ax.annotate(anchor.label(), (0.99, anchor.bound * 100), xycoords=("axes fraction", "data"), ha="right",
                    va="bottom", fontsize=6.5, color="#555555", gid=f"anchor-label-{i}")
    ax.set_xscale("log")
    ax.set_xlabel("message size (bits, log scale)")
    ax.set_ylabel("error bound (%)")
    ax.legend(fontsize=7)
    ax.set_title("size vs bound")
    return to_svg(fig)


def bound_vs_test(certs: pd.DataFrame, styles: Style | None = None) -> str:
    styles = styles or compressor_styles(certs["compressor"])
    points = seed_summary(_with_flags(certs))
    fig, ax = new_figure()
    x, y = points["test_mean"] * 100, points["bound_mean"] * 100
    for i, (name, group) in enumerate(points.groupby("compressor", sort=True)):
        colour, marker = styles[name]
        bars = ax.errorbar(group["test_mean"] * 100, group["bound_mean"] * 100,
                           xerr=_range(group["test_mean"], group["test_lo"], group["test_hi"]),
                           yerr=_range(group["bound_mean"], group["bound_lo"], group["bound_hi"]), fmt=marker,
                           color=colour, label=name, alpha=0.85, capsize=2, lw=1)
        bars[0].set_gid(f"marks-{i}")
    suspect, refuted = points["suspect"] & ~points["refuted"], points["refuted"]
    if suspect.any():
        ax.scatter(x[suspect], y[suspect], marker="o", s=120, facecolors="none", edgecolors="#E69F00", lw=1.5,
                   label="below y = x (suspect)")
    if refuted.any():
        ax.scatter(x[refuted], y[refuted], marker="X", color="#D55E00", s=70, label="refuted")
    top = max(float(np.nanmax(y)) if len(y) else 100.0, float(np.nanmax(x)) if len(x) else 100.0, 1.0)
    ax.plot([0, top], [0, top], color="k", lw=1, label="y = x")
    ax.set_xlabel("test error of what is certified (%)")
    ax.set_ylabel("error bound (%)")
    ax.legend(fontsize=7)
    ax.set_title("bound vs test error")
    return to_svg(fig)


def rate_risk(rows: pd.DataFrame, styles: Style | None = None) -> str | None:
    rows = rows[rows["compressor"].isin(KMEANS)].drop_duplicates("artifact_id")
    if rows.empty:
        return None
    styles = styles or compressor_styles(rows["compressor"])
    has_ce = bool(rows["test_ce"].notna().any())
    fig, ax = new_figure()
    ax2 = ax.twinx() if has_ce else None  # no cross-entropy, no empty second axis
    for i, (name, group) in enumerate(rows.groupby("compressor", sort=True)):
        group = group.sort_values("message_bits")
        colour, marker = styles[name]
        ax.plot(group["message_bits"], group["test_err"] * 100, marker=marker, color=colour,
                label=f"{name}: test error", gid=f"marks-{i}")
        if ax2 is not None and group["test_ce"].notna().any():
            ax2.plot(group["message_bits"], group["test_ce"], marker=marker, color=colour, ls=":", mfc="none",
                     label=f"{name}: test CE")
    ax.set_xscale("log")
    ax.set_xlabel("rate: message size (bits, log scale)")
    ax.set_ylabel("test error (%)")
    ax.legend(loc="upper right", fontsize=7)
    if ax2 is not None:
        ax2.set_ylabel("test cross-entropy (nats)")
        ax2.legend(loc="lower left", fontsize=7)
    ax.set_title("rate–risk of the K-means families (seed 001 Fig. 3)")
    return to_svg(fig)


def _bound_extras(row: Any) -> dict[str, Any]:
    """What the row's bound put in its extras (empty when the row has none)."""
    return json.loads(row.extras).get("bound", {}) if isinstance(row.extras, str) else {}


def curvature_tradeoff(rows: pd.DataFrame, styles: Style | None = None) -> str | None:
    """Seed 004 Figure 3: per form, the (KL, estimated training error) Pareto points of the grids, and
    each row's own point (its KL and empirical term) with its bound."""
    rows = rows[(rows["bound"] == "hessian") & (rows["status"] == "ok")]
    curves = []
    for r in rows.itertuples():
        extras = _bound_extras(r)
        if extras.get("pareto"):
            curves.append((extras.get("form", "?"), r.compressor, np.array(extras["pareto"]), r))
    if not curves:
        return None
    styles = styles or compressor_styles(c[1] for c in curves)
    forms = sorted({c[0] for c in curves})
    fig, ax = new_figure()
    for i, (form, compressor, points, r) in enumerate(sorted(curves, key=lambda c: (c[1], c[0]))):
        colour, marker = styles[compressor]
        ax.plot(points[:, 0], points[:, 1] * 100, marker=marker, ms=3, lw=1, color=colour,
                ls=LINESTYLES[forms.index(form) % len(LINESTYLES)], label=f"{compressor} {form}", gid=f"marks-{i}")
        ax.scatter([r.kl_nats], [r.empirical_term * 100], color=colour, marker="*", s=80)
        ax.annotate(f"{r.error_bound * 100:.1f} %", (r.kl_nats, r.empirical_term * 100), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("KL (nats, log scale)")
    ax.set_ylabel("training error, estimated (%)")
    ax.legend(fontsize=7)
    ax.set_title("curvature bounds: KL vs training error (★ each row, with its bound)")
    return to_svg(fig)


def curvature_floor(rows: pd.DataFrame, styles: Style | None = None) -> str | None:
    rows = rows[(rows["bound"] == "hessian") & (rows["status"] == "ok")]
    if rows.empty or not (rows["bound_kind"] == "lower_bound").any():
        return None
    styles = styles or compressor_styles(rows["compressor"])
    fig, ax = new_figure()
    labels, values, colors, hatches = [], [], [], []
    for artifact, group in rows.groupby("artifact_id", sort=True):
        for r in group.sort_values("bound_kind", ascending=False).itertuples():
            form = json.loads(r.bound_params).get("form", "")
            floor = r.bound_kind == "lower_bound"
            labels.append(f"{r.compressor}\n{form}")
            values.append(r.error_bound * 100)
            colors.append("#BBBBBB" if floor else styles[r.compressor][0])
            hatches.append("//" if floor else "")
    bars = ax.bar(range(len(values)), values, color=colors, gid="marks")
    for bar, hatch in zip(bars, hatches):
        bar.set_hatch(hatch)
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    ax.set_ylabel("bound (%)")
    ax.set_title("curvature floor (gray, hatched) beside the curvature certificates of the same model")
    return to_svg(fig)


TOP_BARS = 6  # certificates per task in the itemized-bits figure
SEEDS = "A point is a configuration's mean over its seeds; its bars, when there are several, their range. "
CAPTIONS = {
    "size": "Size vs bound: each certificate's message size (log scale) against its error bound, with the Pareto "
            "frontier (no other certificate is both smaller and tighter) and the base model's test error. " + SEEDS,
    "anchors": "Dotted lines: published certificates on this dataset (bench/data/anchors.csv).",
    "test": "Bound vs test error: each certificate against the test error of what it certifies; a point below "
            "y = x is suspect (ringed) and refuted (a cross) when below it beyond chance at δ. " + SEEDS,
    "bits": "Itemized bits: what the bound charges for each of the best certificates, split into the message's "
            "sections, its length code, the configuration's code word, and a posterior KL or the bits a "
            "robustness adjustment gives back (hatched); the black tick is the net total.",
    "rate": "Rate–risk of the K-means families: message size against the decoded model's test error (solid) and, "
            "where recorded, its test cross-entropy (dotted, right axis).",
    "floor": "The curvature floor (a lower bound on this family of certificates, gray and hatched) beside the "
             "curvature certificates of the same decoded model.",
    "tradeoff": "Curvature bounds: the grid's Pareto points of KL against estimated training error, per form; "
                "a star marks each row's own point, labelled with its bound.",
}


def _bar_name(row: Any) -> str:
    return f"{row.compressor} + {row.bound} ({row.error_bound * 100:.1f} %)"


def _items(row: Any) -> list[tuple[str, float]]:
    meta = _meta(ResultsStore(getattr(row, FOLDER)), row.artifact_id) if hasattr(row, FOLDER) else None
    return bit_items(row, meta.get("sections") if meta else None)


def top_bits(certs: pd.DataFrame) -> str:
    """The task's best certificates, each one stacked bar of where its bits go (``bench.bitsbar``)."""
    top = certs[~certs["refuted"].astype(bool)].sort_values(["error_bound", "message_bits"]).head(TOP_BARS)
    return bits_bar([(_bar_name(r), _items(r)) for r in top.itertuples()],
                    f"itemized bits of the {len(top)} best certificates")


# ----------------------------------------------------------------------------------- the page
def _table(frame: pd.DataFrame, links: list[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = [html.escape(str(v)) for v in row]
        if links is not None and links[i]:
            cells[0] = f'<a href="#cell-{links[i]}">{cells[0]}</a>'
        body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _config_items(row: Any) -> list[tuple[str, int]]:
    try:
        return [(str(what), int(bits)) for what, bits in json.loads(row.extras).get("config", [])]
    except (TypeError, ValueError, AttributeError):
        return []


def _prior_fields(row: Any) -> list[tuple[str, Any]]:
    """A data-dependent prior's diagnostics (``bench.priordiag``), for a row that has one."""
    bound = getattr(row, "prior_bound", None)
    if bound is None or not pd.notna(bound):
        return []
    return [("data-dependent prior: p, n_prior", f"{row.prior_fraction:g}, {row.n_prior}"),
            ("prior model's error on S_bound", f"{row.prior_train_errors / row.n_train:.6f} "
                                               f"({row.prior_train_errors} of {row.n_train})"),
            ("held-out bound of the prior alone (0 bits)", f"{bound:.6f}"),
            ("compression changed the bound by", f"{row.error_bound - bound:+.6f}")]


def drill_down(row: Any, meta: dict[str, Any] | None, results: Path, configs: int) -> str:
    sections = meta.get("sections") if meta else None
    parts = "".join(f"<tr><td>{html.escape(str(n))}</td><td>{b}</td></tr>" for n, b in sections) if sections else \
        "<tr><td colspan=2>(the compressor declared no sections)</td></tr>"
    extras = _bound_extras(row)
    fields = [
        ("target", row.target), ("error bound", f"{row.error_bound:.6f}"),
        ("target test error", f"{row.target_test_err:.6f}" + (f" ± {row.target_test_err_se:.6f}" if pd.notna(row.target_test_err_se) else "")),
        ("empirical term", f"{row.empirical_term:.6f}"), ("form", row.form),
        ("message bits", row.message_bits), ("length code bits", row.length_code_bits),
        (f"configuration bits (code v{row.config_code})", row.config_bits),
        *[(f"  {what}", bits) for what, bits in _config_items(row)],
        ("configurations tried on this sample (ledger, a record)", configs),
        ("adjustment (nats)", row.adjustment_nats), ("KL (nats)", row.kl_nats), ("δ", row.delta),
        ("δ′ (Monte Carlo)", row.delta_prime), ("Monte-Carlo samples", row.mc_samples),
        ("n", row.n_train),
        *_prior_fields(row),
    ]
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in fields)
    verify = f"bench verify --results {results} {row.cell_id}"
    return (f'<details id="cell-{row.cell_id}"><summary>{html.escape(row.compressor)} + {html.escape(row.bound)} '
            f'(seed {row.seed}): {row.error_bound * 100:.2f} % — cell {row.cell_id}</summary>'
            f"<table><tr><th colspan=2>decomposition</th></tr>{table}</table>"
            f"<table><tr><th>message section</th><th>bits</th></tr>{parts}</table>"
            f'<div class="fig bits">{bits_bar([(_bar_name(row), bit_items(row, sections))], "itemized bits")}</div>'
            f"<p class=note>bound extras: <code>{html.escape(json.dumps(extras)[:600])}</code></p>"
            f"<p>Re-check it: <code>{html.escape(verify)}</code></p></details>")


def time_section(store: ResultsStore, run_ids: set[str], folder: Path | None = None) -> str:
    """The time breakdown of the latest run whose rows the page shows (bench.timing); ``folder``: which
    results folder it is, when the page merges several."""
    latest = None
    for run_id in sorted(run_ids, reverse=True):  # run ids start with their UTC start time
        latest = store.read_sidecar(run_id)
        if latest and "time_breakdown" in latest:
            break
    else:
        return ""
    table = latest["time_breakdown"]
    phases = [(str(name), float(seconds)) for name, seconds in table["phases"]]  # in the table's order
    total = sum(seconds for _, seconds in phases) or 1.0
    frame = pd.DataFrame([(name, f"{seconds:.1f}", f"{100 * seconds / total:.1f} %") for name, seconds in phases],
                         columns=["phase", "seconds", "share"])
    title = "Where the time went" + (f" ({html.escape(str(folder))})" if folder is not None else "")
    return (f"<h2>{title}</h2><p class=note>Run <code>{html.escape(latest['run_id'])}</code>, "
            f"{table['wall_seconds']:.1f} s wall.</p>{_table(frame)}")


def build(results: Board | Path | Sequence[Path], out: Path, task: str | None = None,
          defaults: dict[tuple[str, str], dict[str, Any]] | None = None) -> Path:
    """The page of one results folder or of several merged (``bench.boards``): each certificate's
    drill-down reads its artifact from, and its ``bench verify`` command names, the folder its row
    came from."""
    board = results if isinstance(results, Board) else \
        read_board([results] if isinstance(results, (str, Path)) else results)
    df, counts = board.rows, board.counts
    anchors = board.anchors()  # the report places published certificates beside the headline and on a figure
    boards = leaderboard.build(df, task, counts, defaults, board.ledger_note, anchors)
    latest = leaderboard.latest_rows(df)
    styles = compressor_styles(latest["compressor"].dropna())  # one look per compressor on the whole page
    sections = []
    for name, tables in boards.items():
        rows = latest[latest["task"] == name]
        certs = certificates(rows)
        parts = [f'<h2 id="task-{html.escape(name)}">{html.escape(name)}</h2>']
        drilled = set(certs["cell_id"])
        for t in tables:
            links = [c if c in drilled else None for c in t.cells] if t.cells else None
            parts.append(f"<h3>{html.escape(t.title)}</h3>{_table(t.frame, links)}")
        figs: list[tuple[str, str]] = []  # (figure, caption)
        if not certs.empty:
            base = rows["base_test_err"].dropna()
            figs += [(size_vs_bound(certs, float(base.iloc[0]) if len(base) else None, anchors.get(name), styles),
                      CAPTIONS["size"] + (CAPTIONS["anchors"] if anchors.get(name) else "")),
                     (bound_vs_test(certs, styles), CAPTIONS["test"]), (top_bits(certs), CAPTIONS["bits"])]
        for key, extra in (("rate", rate_risk(rows, styles)), ("floor", curvature_floor(rows, styles)),
                           ("tradeoff", curvature_tradeoff(rows, styles))):
            if extra:
                figs.append((extra, CAPTIONS[key]))
        if figs:
            parts.append('<div class="figs">' + "".join(
                f'<figure class="fig">{f}<figcaption>{html.escape(c)}</figcaption></figure>' for f, c in figs) + "</div>")
        if not certs.empty:
            k = max(counts.get(certs["sample_id"].iloc[0], 0), 1) if "sample_id" in certs else 1
            parts.append("<h3>Every certificate, drilled down</h3>" + "".join(
                drill_down(r, _meta(ResultsStore(r.results_folder), r.artifact_id), Path(r.results_folder), k)
                for r in certs.sort_values("error_bound").itertuples()))
        sections.append("\n".join(parts))
    times = "".join(time_section(ResultsStore(folder), set(df.loc[df[FOLDER] == str(folder), "run_id"].dropna()),
                                 folder if len(board.folders) > 1 else None) for folder in board.folders)
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>compression-bench report</title>"
            f"<style>{STYLE}</style></head><body><h1>compression-bench report</h1>"
            f"<p class=note>Results: {', '.join(f'<code>{html.escape(str(f))}</code>' for f in board.folders)}"
            f"{' (merged: a cell found in several folders is shown once)' if len(board.folders) > 1 else ''}. "
            f"Every certificate holds with "
            f"probability ≥ 1 − δ about its target and pays its configuration's code word, so all hold at once "
            f"and the headline is the best of them; the ledger's count of what was tried stands beside it. "
            f"Tables sort by a click on a column.</p>"
            + "\n".join(sections) + times
            + f"<script>{SORT_JS}</script></body></html>\n")
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    write_atomically(index, page)
    return index


def _meta(store: ResultsStore, artifact_id: str) -> dict[str, Any] | None:
    path = store.artifact_dir(str(artifact_id)) / "meta.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
