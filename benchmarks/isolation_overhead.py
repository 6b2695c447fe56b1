"""What the clean processes cost: the default digits run, A/B in one session.

    python benchmarks/isolation_overhead.py [--rounds 3] [--warm]

The harness compresses each configuration in a fresh process of its own and decodes each message in
another fresh process (both forked from a zygote that has only loaded the plugins), then evaluates the
decoded model in the worker, where no ``compress`` ran. This runs ``bench run`` (the embedded default
profile; a fresh model cache each time, or with ``--warm`` one cache trained once beforehand, and a
fresh results folder) alternately that way and with a stand-in that compresses and decodes in the
worker process itself, as the harness did before, injected for this benchmark only through a
``sitecustomize`` module on ``PYTHONPATH`` (the product has no such switch). Prints each run's wall
time, the medians and their ratio; the difference is the cost of the clean processes.
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
    if os.environ.get("BENCH_BENCHMARK_ISOLATION") == "in-process":
        import bench.compressing as compressing
        import bench.runner as runner
        import bench.sandbox as sandbox

        class InProcessDecoder(sandbox.Decoder):
            """Decodes in the calling process: what the harness did before the prior-only process."""

            registry = None

            def start(self, fork=False):
                pass

            def close(self):
                pass

            def _decode(self, compressor, version, params, message, prior, timeout, inputs):
                from bench.kit.evaluation import predict
                from bench.registry import load_registry
                from bench.tasks import prior_from_spec

                if InProcessDecoder.registry is None:
                    InProcessDecoder.registry = load_registry()
                cls = InProcessDecoder.registry.get("compressors", compressor)
                decoder = cls.for_decoding(params)
                model = decoder.decode(message, prior_from_spec(prior, InProcessDecoder.registry)).eval()
                outputs = None if inputs is None else {k: predict(model, x) for k, x in inputs.items()}
                return sandbox.Decoded(model, sandbox.state_digest(model), outputs)

        def compress_in_process(self, task, seed, comp, prior):
            """Compresses in the worker itself: what the harness did before the compressing process."""
            request = compressing.CompressRequest(spec=self.specs[task.name], seed=seed, device=str(self.device),
                                                  delta=self.config.delta, compressor=comp and comp.name,
                                                  params=comp.params if comp else {}, prior=prior,
                                                  limit=self.config.cell_timeout)
            reply = compressing.compress(request, self.registry)
            if not reply.ok:
                raise runner.CompressFailed(reply.error, reply.traceback)
            return reply

        sandbox.Decoder = InProcessDecoder
        runner.Runner.compress = compress_in_process
''')


def one_run(mode: str, site: Path, cache: str | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "BENCH_CACHE_DIR": cache or f"{tmp}/cache", "BENCH_PROGRESS": "0",
               "BENCH_BENCHMARK_ISOLATION": mode,
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
    parser.add_argument("--warm", action="store_true", help="one model cache for every run, trained first")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"in-process": [], "isolated": []}
    with tempfile.TemporaryDirectory() as site, tempfile.TemporaryDirectory() as warm:
        (Path(site) / "sitecustomize.py").write_text(IN_PROCESS)
        cache = warm if args.warm else None
        if cache:
            one_run("isolated", Path(site), cache)
        for _ in range(args.rounds):
            for mode in times:
                seconds = one_run(mode, Path(site), cache)
                times[mode].append(seconds)
                print(f"{mode:>10}: {seconds:6.2f} s", flush=True)
    a, b = statistics.median(times["in-process"]), statistics.median(times["isolated"])
    print(f"median: in-process {a:.2f} s, isolated {b:.2f} s; the clean processes cost {b - a:+.2f} s "
          f"({100 * (b / a - 1):+.1f} % of the run)")


if __name__ == "__main__":
    main()
