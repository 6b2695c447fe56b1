"""Seconds per bound row, before and after the bounds shared the harness's forward passes, in one run.

    python benchmarks/bound_row_cost.py [--task fashion-mnist-lenet5] [--rows 3] [--bounds mi,hessian]

Builds the task and its base model (trained once into ``$BENCH_CACHE_DIR``), takes the base model
through a real compressor (``quantize``, 16 levels) as the decoded model, and times each bound's
``compute`` the two ways, alternately:

- *before*: a context without the worker's memo of forward passes (every ``ctx.outputs`` and
  ``ctx.evaluate`` runs the model again, as the bounds did before), and the curvature and Monte-Carlo
  passes in the model's own memory layout (``fast_copy`` switched off);
- *after*: a worker's context, whose memo holds the decoded model's outputs from its evaluation and
  the base model's from the base model's (``BaseModels.base_errors``), as the harness leaves them, and
  those passes on the channels-last copy.

``hessian`` keeps its curvature per decoded model in its process; in a profile every decoded model is a
new one, so each row here computes it again (``--keep-curvature`` keeps it, as several configurations of
the bound on one model would). Prints the median seconds per row of each and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="fashion-mnist-lenet5")
    parser.add_argument("--rows", type=int, default=3)
    parser.add_argument("--bounds", default="mi,hessian")
    parser.add_argument("--keep-curvature", action="store_true")
    args = parser.parse_args()

    import bench.kit.curvature
    import bench.kit.stochastic
    import bench_plugins.hessian

    fast_copy = bench.kit.stochastic.fast_copy

    def layout(fast: bool) -> None:
        chosen = fast_copy if fast else (lambda model, probe: (model, lambda x: x))
        bench.kit.curvature.fast_copy = bench.kit.stochastic.fast_copy = chosen

    from bench.api.contracts import Compressed
    from bench.cell import evaluate
    from bench.kit.models import state_digest
    from bench.cache import ModelCache, default_cache_dir
    from bench.context import build_context
    from bench.progress import progress
    from bench.registry import load_registry
    from bench.tasks import BaseModels, instantiate_task

    registry = load_registry()
    task = instantiate_task(registry.entry("tasks", args.task).obj, registry)
    device = torch.device("cpu")
    models = BaseModels(ModelCache(default_cache_dir()), device, progress)
    compressor = registry.entry("compressors", "quantize").obj(levels=16)
    compressed: Compressed = compressor.compress(build_context(task, 0, device, models, 0.05))
    decoded = compressed.model.eval()
    memo = models.outputs  # a worker's: the base model's evaluation (base_errors) left its outputs here
    evaluated, _, outputs = evaluate(decoded, compressed, task)  # the harness's evaluation
    view = task.data.bound_split()
    print(f"{args.task}: n = {len(view)}, base train error {models.base_errors(task, 0)[0]:.4f}, "
          f"decoded (quantize, 16 levels) {evaluated.train_err:.4f}, {torch.get_num_threads()} threads")
    for name in args.bounds.split(","):
        bound = registry.entry("bounds", name).obj()
        times: dict[str, list[float]] = {"before": [], "after": []}
        for row in range(args.rows + 1):  # the first round warms what a process keeps (hessian's curvature)
            for way in ("before", "after"):
                if way == "after":
                    memo.put(state_digest(decoded), view, outputs)  # as each decoded model's evaluation leaves it
                ctx = build_context(task, 0, device, models, 0.05, role="bound",
                                    memo=memo if way == "after" else None)
                layout(way == "after")
                if not args.keep_curvature:
                    bench_plugins.hessian._CURVATURE.clear()  # a new decoded model, as in a profile
                start = time.perf_counter()
                bound.compute(evaluated, ctx)
                if row:
                    times[way].append(time.perf_counter() - start)
                else:
                    print(f"  {name} {way}, first row: {time.perf_counter() - start:.2f} s")
        b, a = statistics.median(times["before"]), statistics.median(times["after"])
        print(f"  {name}: {b:.2f} s per row before, {a:.2f} s after (median of {args.rows}); ratio {a / b:.3f}")


if __name__ == "__main__":
    main()
