"""What a second dask worker buys: the wall time of one grid on a cluster of 2 workers over 1, in one
session, on a real scheduler and real ``dask worker`` processes (started with dask's own CLIs).

    python benchmarks/cluster_scaling.py [--rounds 2] [--levels 2,3,4,5,6,7,8,9] [--seeds 0,1]

The grid: the built-in default task (digits-mlp), ``quantize`` at each of ``--levels`` x ``--seeds``
with 30 epochs of centroid fine-tuning (so that a job is work, not start-up), bound ``occam`` (16 cells
by default). One warm-up run trains the base models into a model cache that
every measured run shares, so the runs measure compressing, decoding and bounding, not training. The
measured runs alternate 1 worker and 2 workers, each into a fresh results folder, and the ratio of the
medians is printed. Each worker gets one torch thread; on a machine with fewer free cores than
workers the ratio says so (it tends to 1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from dask_cli_cluster import CliCluster  # noqa: E402

BENCH = Path(sys.executable).parent / "bench"


def grid(levels: str, seeds: str) -> list[str]:
    return ["--tasks", "digits-mlp", "--compressors", "quantize", "--bounds", "occam", "--seeds", seeds,
            "--set", f"compressor.quantize.levels=[{levels}]", "--set", "compressor.quantize.codebook_epochs=30",
            "--no-leaderboard"]


def timed_run(args: list[str], results: Path, env: dict[str, str], cwd: Path) -> float:
    began = time.perf_counter()
    done = subprocess.run([str(BENCH), "run", *args, "--results", str(results)], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"bench run failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--levels", default="2,3,4,5,6,7,8,9")
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    base = grid(args.levels, args.seeds)
    cells = len(args.levels.split(",")) * len(args.seeds.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        env = {**os.environ, "BENCH_CACHE_DIR": str(tmp_path / "cache"), "BENCH_PROGRESS": "0"}
        timed_run(base, tmp_path / "warm-up", env, tmp_path)  # trains the base models, once
        times: dict[int, list[float]] = {1: [], 2: []}
        for r in range(args.rounds):
            for n in (1, 2):
                with CliCluster(workers=n, cwd=tmp_path / f"cluster-{n}-{r}", env=env) as cluster:
                    run = [*base, "--executor", "dask", "--set", f'executor.address="{cluster.address}"']
                    seconds = timed_run(run, tmp_path / f"results-{n}-{r}", env, tmp_path)
                times[n].append(seconds)
                print(f"round {r}: {n} worker(s), {cells} cells: {seconds:.1f} s", flush=True)
    one, two = statistics.median(times[1]), statistics.median(times[2])
    print(f"median: 1 worker {one:.1f} s, 2 workers {two:.1f} s; ratio 2/1 = {two / one:.2f} "
          f"({os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
