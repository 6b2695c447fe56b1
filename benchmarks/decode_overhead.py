"""What decoding in a separate, prior-only process costs: the default digits run, A/B in one session.

    python benchmarks/decode_overhead.py [--rounds 3]

Runs ``bench run`` (the embedded default profile, a fresh model cache and results folder each time)
alternately with the real decoder (a separate process that has only the message and the prior) and
with a stand-in that decodes in the worker process itself, injected for this benchmark only through a
``sitecustomize`` module on ``PYTHONPATH`` (the product has no such switch). Prints each run's wall time,
the medians and their ratio; the difference is the cost of the separate process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IN_PROCESS = textwrap.dedent('''
    import os
    if os.environ.get("BENCH_BENCHMARK_DECODE") == "in-process":
        import bench.sandbox as sandbox

        class InProcessDecoder(sandbox.Decoder):
            """Decodes in the calling process: what the harness did before the prior-only process."""

            registry = None

            def start(self, fork=False):
                pass

            def close(self):
                pass

            def _decode(self, compressor, version, params, message, prior, timeout):
                from bench.registry import load_registry
                from bench.tasks import prior_from_spec

                if InProcessDecoder.registry is None:
                    InProcessDecoder.registry = load_registry()
                cls = InProcessDecoder.registry.get("compressors", compressor)
                model = cls(**params).decode(message, prior_from_spec(prior, InProcessDecoder.registry)).eval()
                return model, sandbox.state_digest(model)

        sandbox.Decoder = InProcessDecoder
''')


def one_run(mode: str, site: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "BENCH_CACHE_DIR": f"{tmp}/cache", "BENCH_PROGRESS": "0",
               "BENCH_BENCHMARK_DECODE": mode,
               "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
        start = time.perf_counter()
        out = subprocess.run([str(Path(sys.executable).parent / "bench"), "run", "--results", f"{tmp}/results",
                              "--no-leaderboard"], env=env, capture_output=True, text=True, cwd=ROOT)
        seconds = time.perf_counter() - start
        if out.returncode != 0:
            raise SystemExit(f"bench run ({mode}) failed:\n{out.stderr}")
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"in-process": [], "separate": []}
    with tempfile.TemporaryDirectory() as site:
        (Path(site) / "sitecustomize.py").write_text(IN_PROCESS)
        for _ in range(args.rounds):
            for mode in times:
                seconds = one_run(mode, Path(site))
                times[mode].append(seconds)
                print(f"{mode:>10}: {seconds:6.2f} s", flush=True)
    a, b = statistics.median(times["in-process"]), statistics.median(times["separate"])
    print(f"median: in-process {a:.2f} s, separate process {b:.2f} s; "
          f"the separate process costs {b - a:+.2f} s ({100 * (b / a - 1):+.1f} % of the run)")


if __name__ == "__main__":
    main()
