"""Where a profile's time goes, from an empty model cache: the table ``bench run`` prints at its end (from
the run's sidecar), and the rows' own per-cell figures (seconds per bound row, per compressor artifact).

    python benchmarks/time_breakdown.py --profile fashion-mnist [any other bench run arguments]
    python benchmarks/time_breakdown.py --warm --profile default     # a model cache trained beforehand

Run it before and after a change on the same machine to compare the two tables.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(sys.executable).parent / "bench"


def main() -> None:
    args = sys.argv[1:]
    warm = "--warm" in args
    args = [a for a in args if a != "--warm"]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "BENCH_CACHE_DIR": f"{tmp}/cache", "BENCH_PROGRESS": "0"}
        if warm:
            subprocess.run([str(BENCH), "run", "--results", f"{tmp}/warm-up", "--no-leaderboard", *args], cwd=ROOT,
                           env=env, capture_output=True, check=False)
        began = time.perf_counter()
        done = subprocess.run([str(BENCH), "run", "--results", f"{tmp}/results", "--no-leaderboard", *args],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - began
        if done.returncode not in (0, 1):
            raise SystemExit(done.stderr[-3000:])
        [sidecar] = Path(tmp, "results", "_runs").glob("*.json")
        table = json.loads(sidecar.read_text())["time_breakdown"]
        df = pd.read_parquet(f"{tmp}/results")
    total = sum(seconds for _, seconds in table["phases"]) or 1.0
    print(f"bench run {' '.join(args)}: {wall:.1f} s wall ({'warm' if warm else 'empty'} model cache), "
          f"{len(df)} cells: {df['status'].value_counts().to_dict()}")
    print("\n| phase | seconds | share |\n|---|---:|---:|")
    for name, seconds in table["phases"]:
        print(f"| {name} | {seconds:.1f} | {100 * seconds / total:.1f} % |")
    ok = df[df["status"] == "ok"]
    print("\n| bound | rows | seconds per row (mean) | max |\n|---|---:|---:|---:|")
    for bound, rows in ok.groupby("bound"):
        print(f"| {bound} | {len(rows)} | {rows['bound_seconds'].mean():.2f} | {rows['bound_seconds'].max():.2f} |")
    artifacts = ok.drop_duplicates("artifact_id")
    print("\n| compressor | artifacts | compress seconds (sum) |\n|---|---:|---:|")
    for comp, rows in artifacts.groupby("compressor"):
        print(f"| {comp} | {len(rows)} | {rows['compress_seconds'].sum():.1f} |")


if __name__ == "__main__":
    main()
