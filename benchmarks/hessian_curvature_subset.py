"""What the ``hessian`` bound's curvature subset costs and buys: one ``diag`` row of the same decoded model
with the curvature from the whole training set and from seeded subsets, alternately, in one process.

    python benchmarks/hessian_curvature_subset.py [--task fashion-mnist-lenet5] [--examples 0 20000 10000]
                                                  [--compressor quantize] [--rounds 1]

Builds the task and its base model (trained once into ``$BENCH_CACHE_DIR``), takes it through a real
compressor (``quantize`` at 16 levels by default, or any other by name, at its defaults) as the decoded
model, and for each value of ``curvature_examples`` (0: the whole set) times ``compute`` with
the curvature recomputed, as a profile's row does, and prints the certificate it gives. The Monte
Carlo and the bound use the whole training set whatever the subset.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="fashion-mnist-lenet5")
    parser.add_argument("--examples", type=int, nargs="+", default=[0, 20_000, 10_000])
    parser.add_argument("--compressor", default="quantize")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    import bench_plugins.hessian as hessian
    from bench.cache import ModelCache, default_cache_dir
    from bench.cell import evaluate
    from bench.context import build_context
    from bench.kit.models import state_digest
    from bench.progress import progress
    from bench.registry import load_registry
    from bench.tasks import BaseModels, instantiate_task

    registry = load_registry()
    task = instantiate_task(registry.entry("tasks", args.task).obj, registry)
    device = torch.device("cpu")
    models = BaseModels(ModelCache(default_cache_dir()), device, progress)
    params = {"levels": 16} if args.compressor == "quantize" else {}
    compressor = registry.entry("compressors", args.compressor).obj(**params)
    compressed = compressor.compress(build_context(task, 0, device, models, 0.05))
    decoded = compressed.model.eval()
    evaluated, _, outputs = evaluate(decoded, compressed, task)  # the harness's evaluation
    memo = models.outputs
    view = task.data.bound_split()
    print(f"{args.task}: n = {len(view)}, decoded model ({args.compressor}) train error {evaluated.train_err:.4f}, "
          f"{torch.get_num_threads()} threads")
    seconds: dict[int, list[float]] = {k: [] for k in args.examples}
    bounds: dict[int, float] = {}
    for _ in range(args.rounds):
        for examples in args.examples:
            hessian._CURVATURE.clear()  # every row of a profile is a new decoded model
            memo.put(state_digest(decoded), view, outputs)  # as the decoded model's evaluation leaves it
            ctx = build_context(task, 0, device, models, 0.05, role="bound", memo=memo)
            start = time.perf_counter()
            result = hessian.Hessian(form="diag", curvature_examples=examples).compute(evaluated, ctx)
            seconds[examples].append(time.perf_counter() - start)
            bounds[examples] = result.error_bound
            print(f"  curvature_examples = {examples or 'all':>6}: {seconds[examples][-1]:5.1f} s, certificate "
                  f"{result.error_bound:.4f} (Monte-Carlo training error {result.extras['err_mc']:.4f})", flush=True)
    full = statistics.median(seconds[args.examples[0]])
    for examples in args.examples:
        print(f"curvature_examples = {examples or 'all':>6}: {statistics.median(seconds[examples]):5.1f} s a row "
              f"(ratio {statistics.median(seconds[examples]) / full:.2f}), certificate {bounds[examples]:.4f}")


if __name__ == "__main__":
    main()
