"""Regenerate the reference board that ships with the project (``reference/``).

Runs the reference profiles from an empty model cache into this folder, keeps the rows, the ledger, the
runs' sidecars and the artifact of each compressor's best certificate per task (so ``bench verify
--results reference CELL`` re-checks it from the message, the prior and the data), drops the other
artifacts, and writes
``_README.md``: when and on what it was made, each profile's wall time, and the folder's size::

    python reference/_regenerate.py                       # every reference profile (35 min on 2 cores, then 5 min of verify)
    python reference/_regenerate.py --profiles fashion-mnist
    python reference/_regenerate.py --screenshot-only     # the README's figure, from the board as it is
    python reference/_regenerate.py --verify-only         # bench verify every row whose artifact is kept

Run it from the repository's root, with nothing else running (the wall times are part of the record).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROFILES = ("fashion-mnist", "fashion-mnist-datadep", "fashion-mnist-vibnet", "fashion-mnist2-hessian")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_profile(profile: str, cache: Path) -> float:
    start = time.perf_counter()
    env = {**os.environ, "BENCH_CACHE_DIR": str(cache)}
    subprocess.run([sys.executable, "-m", "bench.cli", "run", "--profile", profile, "--results", str(HERE),
                    "--no-leaderboard"], env=env, check=True)
    return time.perf_counter() - start


def keep_certificate_artifacts() -> tuple[int, int]:
    """Keep the artifact of each compressor's best certificate on each task (what a reader re-checks
    first, within a few MB: a K-means LeNet-5 artifact alone is about 1 MB); drop the others, whose rows
    stay for the record. Returns (kept, dropped)."""
    from bench.results import ResultsStore

    rows = ResultsStore(HERE).read()
    certs = rows[(rows["status"] == "ok") & (rows["bound_kind"] == "certificate") & ~rows["refuted"].fillna(False)]
    best = certs.sort_values(["error_bound", "message_bits"]).drop_duplicates(["task", "compressor"])
    wanted = set(best["artifact_id"].dropna())
    kept = dropped = 0
    for folder in sorted((HERE / "_artifacts").iterdir()):
        if folder.name in wanted:
            kept += 1
        else:
            shutil.rmtree(folder)
            dropped += 1
    return kept, dropped


def verify_kept() -> tuple[int, int]:
    """``bench verify`` on every ok row whose artifact is kept; the output goes to ``_verified.txt``.
    Returns (agreeing, checked)."""
    from bench.results import ResultsStore

    store = ResultsStore(HERE)
    rows = store.read()
    cells = sorted(rows.loc[(rows["status"] == "ok") & rows["artifact_id"].map(store.has_artifact), "cell_id"])
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.cli", "verify", "--results", str(HERE), *cells],
                          capture_output=True, text=True)
    (HERE / "_verified.txt").write_text(done.stdout + done.stderr)
    agreeing = done.stdout.count(": AGREES")
    (HERE / "_verified.json").write_text(json.dumps({
        "date": time.strftime("%Y-%m-%d"), "agreeing": agreeing, "checked": len(cells),
        "minutes": (time.perf_counter() - start) / 60, "cells": cells}, indent=2))
    print(f"bench verify: {agreeing} of {len(cells)} kept cells agree (reference/_verified.txt)")
    return agreeing, len(cells)


def folder_bytes() -> int:
    return sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())


def write_readme(times: dict[str, float], kept: int) -> None:
    """The record of how the board was made: the commit and the time come from its own rows."""
    import torch

    from bench.results import ResultsStore

    rows = ResultsStore(HERE).read()
    commits = ", ".join(f"`{c[:7]}`" for c in sorted(set(rows["git_commit"].dropna())))
    made = rows["started_at"].max()
    lines = [
        "# The reference board",
        "",
        "Results that ship with the project, so a new compressor or bound can be ranked among the built-ins",
        "without rerunning them: `bench leaderboard --with-reference` and `bench report --with-reference` merge",
        "these rows with yours (every row pays its configuration's code word, so rows from anywhere rank",
        "together), and `bench verify --results reference CELL` re-checks a certificate kept here from its",
        "message, the prior and the data.",
        "",
        "It is a results folder like any other: every file that is not a row starts with `_`, so",
        "`pandas.read_parquet(\"reference\")` reads exactly its rows (packed into `packed.parquet`).",
        "",
        f"- Made on {made:%Y-%m-%d} (last row {made:%H:%M} UTC) by `python reference/_regenerate.py`, at commit "
        f"{commits}, from an empty model cache.",
        f"- Hardware: {cpu_model()}, {os.cpu_count()} logical cores, no GPU; Python {platform.python_version()}, "
        f"torch {torch.__version__}.",
        f"- {len(rows)} rows. Size: {folder_bytes() / 2**20:.1f} MiB, with the artifacts of {kept} certified models: "
        "each compressor's best certificate on each task (the other artifacts are dropped; their rows stay, "
        "for the record, and `bench verify` says their evidence is not here).",
        "",
        *verified_lines(),
        "| profile | wall time on that machine |",
        "|---|---|",
        *[f"| `{p}` | {t / 60:.1f} min |" for p, t in times.items()],
        "",
    ]
    (HERE / "_README.md").write_text("\n".join(lines))


def verified_lines() -> list[str]:
    """What the last ``--verify-only`` found (``_verified.json``)."""
    try:
        found = json.loads((HERE / "_verified.json").read_text())
    except (OSError, ValueError):
        return ["- `bench verify` has not been run over this board (`python reference/_regenerate.py --verify-only`).", ""]
    return [f"- `bench verify` re-checked every row whose artifact is kept, on {found['date']}: {found['agreeing']} of "
            f"{found['checked']} agree (its output is `_verified.txt`; `python reference/_regenerate.py --verify-only` "
            f"redoes it, {found['minutes']:.0f} min on that machine).", ""]


def screenshot(task: str = "fashion-mnist-lenet5", out: Path = HERE.parent / "docs" / "report-fashion-mnist.png") -> None:
    """The README's figure: the report's figures of ``task``, as Debian's Chromium renders them."""
    from playwright.sync_api import sync_playwright

    from bench import report

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("the screenshot needs Debian's chromium (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as folder:
        index = report.build(HERE, Path(folder), task)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.goto(index.as_uri())
                page.locator(".figs").first.screenshot(path=str(out))
            finally:
                browser.close()
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES))
    parser.add_argument("--screenshot-only", action="store_true", help="only redo the README's figure")
    parser.add_argument("--verify-only", action="store_true",
                        help="only run bench verify over the kept cells and rewrite _README.md")
    parser.add_argument("--finish-only", action="store_true",
                        help="only trim the artifacts and write _README.md (times from _times.json) and the figure")
    args = parser.parse_args(argv)
    if args.screenshot_only:
        screenshot()
        return
    if args.finish_only:
        finish(json.loads((HERE / "_times.json").read_text()))
        return
    if args.verify_only:
        verify_kept()
        write_readme(json.loads((HERE / "_times.json").read_text()), len(list((HERE / "_artifacts").iterdir())))
        return
    for path in HERE.iterdir():  # start afresh: only this script stays
        if path.name != "_regenerate.py":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    times = {}
    with tempfile.TemporaryDirectory(prefix="bench-reference-cache-") as cache:
        for profile in args.profiles:
            times[profile] = run_profile(profile, Path(cache))
            print(f"{profile}: {times[profile] / 60:.1f} min", flush=True)
    (HERE / "_times.json").write_text(json.dumps(times, indent=2))
    finish(times)


def finish(times: dict[str, float]) -> None:
    from bench.results import ResultsStore

    shutil.rmtree(HERE / "_claims", ignore_errors=True)  # the claims of jobs being computed: none now
    kept, dropped = keep_certificate_artifacts()
    ResultsStore(HERE).pack_rows()  # one file for the rows: 2.2 MB as files of one row, 0.1 MB packed
    verify_kept()
    write_readme(times, kept)
    print(f"reference/: {folder_bytes() / 2**20:.1f} MiB, {kept} artifacts kept, {dropped} dropped")
    if "fashion-mnist" in times:
        screenshot()


if __name__ == "__main__":
    main()
