"""Regenerate the reference board that ships with the project (``reference/``).

Runs the reference profiles from an empty model cache into this folder, keeps the rows, the ledger, the
runs' sidecars and the artifacts of every certificate (so ``bench verify --results reference CELL``
re-checks any of them from the message, the prior and the data), drops the other artifacts, and writes
``README.md``: when and on what it was made, each profile's wall time, and the folder's size::

    python reference/regenerate.py                       # every reference profile (about 1.5 h on 2 cores)
    python reference/regenerate.py --profiles fashion-mnist

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
from datetime import datetime, timezone
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
    """Drop the artifacts no certificate row uses; returns (kept, dropped)."""
    from bench.results import ResultsStore

    rows = ResultsStore(HERE).read()
    wanted = set(rows.loc[(rows["status"] == "ok") & (rows["bound_kind"] == "certificate"), "artifact_id"].dropna())
    kept = dropped = 0
    for folder in sorted((HERE / "_artifacts").iterdir()):
        if folder.name in wanted:
            kept += 1
        else:
            shutil.rmtree(folder)
            dropped += 1
    return kept, dropped


def folder_bytes() -> int:
    return sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())


def write_readme(times: dict[str, float], kept: int) -> None:
    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lines = [
        "# The reference board",
        "",
        "Results that ship with the project, so a new compressor or bound can be ranked among the built-ins",
        "without rerunning them: `bench leaderboard --with-reference` and `bench report --with-reference` merge",
        "these rows with yours (every row pays its configuration's code word, so rows from anywhere rank",
        "together), and `bench verify --results reference CELL` re-checks any certificate here from its",
        "message, the prior and the data.",
        "",
        f"- Made on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `python reference/regenerate.py`, at commit "
        f"`{commit}`, from an empty model cache.",
        f"- Hardware: {cpu_model()}, {os.cpu_count()} logical cores, no GPU; Python {platform.python_version()}, "
        f"torch {torch.__version__}.",
        f"- Size: {folder_bytes() / 2**20:.1f} MiB, with the artifacts of its {kept} certified models (the other "
        "artifacts are dropped: their rows stay, for the record).",
        "",
        "| profile | wall time |",
        "|---|---|",
        *[f"| `{p}` | {t / 60:.1f} min |" for p, t in times.items()],
        "",
    ]
    (HERE / "README.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES))
    args = parser.parse_args(argv)
    for path in HERE.iterdir():  # start afresh: only this script stays
        if path.name != "regenerate.py":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    times = {}
    with tempfile.TemporaryDirectory(prefix="bench-reference-cache-") as cache:
        for profile in args.profiles:
            times[profile] = run_profile(profile, Path(cache))
            print(f"{profile}: {times[profile] / 60:.1f} min", flush=True)
    (HERE / "times.json").write_text(json.dumps(times, indent=2))
    shutil.rmtree(HERE / "_claims", ignore_errors=True)  # the claims of jobs being computed: none now
    kept, dropped = keep_certificate_artifacts()
    write_readme(times, kept)
    print(f"reference/: {folder_bytes() / 2**20:.1f} MiB, {kept} artifacts kept, {dropped} dropped")


if __name__ == "__main__":
    main()
