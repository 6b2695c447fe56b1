"""What the ``hessian`` bound costs: every form of one configuration on LeNet-5 with the whole
Fashion-MNIST training set (the curvature is computed once and shared by the forms).

    python benchmarks/hessian_cost.py [--task fashion-mnist-lenet5] [--threads 2]

Trains (or loads from the cache) the task's base model, then times the curvature and each form in
turn in one process, as the runner's worker does, and prints the seconds and each form's bound.
"""

from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="fashion-mnist-lenet5")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from bench.api.contracts import Compressed, Evaluated
    from bench.kit.evaluation import error_count
    from bench.progress import progress
    from bench.registry import load_registry
    from bench.context import build_context
    from bench.tasks import BaseModels, instantiate_task
    from bench.cache import ModelCache, default_cache_dir
    from bench_plugins.hessian import Hessian

    registry = load_registry()
    task = instantiate_task(registry.get("tasks", args.task), registry)
    device = torch.device("cpu")
    models = BaseModels(ModelCache(default_cache_dir()), device, progress)
    model = models.get(task, 0)
    errors = error_count(model, task.data.train)
    evaluated = Evaluated(Compressed(message=b""), model, errors, len(task.data.train), errors / len(task.data.train))
    ctx = build_context(task, 0, device, models, 0.05, config_bits=2.0, role="bound")
    start = time.perf_counter()
    total = 0.0
    for form in ("lower", "baseline", "diag", "layerwise"):
        t0 = time.perf_counter()
        result = Hessian(form=form).compute(evaluated, ctx)
        seconds = time.perf_counter() - t0
        total += seconds
        print(f"{form:>10}: {seconds:7.1f} s  bound {result.error_bound:.4f}  ({result.kind})", flush=True)
    print(f"all forms of one configuration: {time.perf_counter() - start:.1f} s "
          f"(the first includes the curvature, computed once)")


if __name__ == "__main__":
    main()
