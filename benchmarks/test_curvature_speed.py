"""Speed of ``bench.kit.curvature`` (pytest-benchmark).

Run with::

    python -m pytest benchmarks/test_curvature_speed.py -o addopts="" -p no:cacheprovider -s

* ``test_small_model_agrees_with_the_naive_loop``: the digits MLP (64-32-10) on the 1347 digits training
  images: the naive per-example loop, the torch.func ``vmap`` method and the layer-hook method give the
  same diagonal (checked), and their times (one process, so the ratios are meaningful on a busy machine).
* ``test_lenet5_full_fashion_mnist``: the sampled GGN/Fisher diagonal of LeNet-5 over all 60 000
  Fashion-MNIST training images on 2 CPU threads (target: under 2 minutes), with the time of one plain
  training pass (forward + backward, batch 128) over the same images and the ``vmap`` method on a subset,
  for ratios. Skipped when the Fashion-MNIST files are not installed.

Seconds and ratios end up in each benchmark's ``extra_info`` and are printed.
"""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F

from bench.api.contracts import Split
from bench.kit.curvature import diagonal_curvature, diagonal_curvature_loop


def _registry_task(name: str):
    from bench.registry import load_registry
    from bench.tasks import instantiate_task

    registry = load_registry()
    return instantiate_task(registry.get("tasks", name), registry)


def _seconds(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def _agree(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max() / b[k].abs().max().clamp_min(1e-30)) for k in b)


def test_small_model_agrees_with_the_naive_loop(benchmark) -> None:
    torch.set_num_threads(2)
    task = _registry_task("digits-mlp")
    torch.manual_seed(0)
    model = task.build_model().eval()
    data = task.data.train
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731  the same sampled labels for all three
    diagonal_curvature(model, Split(data.x[:8], data.y[:8]), method="vmap")  # torch.func's one-time warm-up
    naive, t_naive = _seconds(diagonal_curvature_loop, model, data, "sampled", generator=gen())
    vmapped, t_vmap = _seconds(diagonal_curvature, model, data, "sampled", generator=gen(), method="vmap")
    hooked = benchmark.pedantic(diagonal_curvature, rounds=3, iterations=1,
                                setup=lambda: ((model, data, "sampled"), {"generator": gen(), "method": "hooks"}))
    t_hooks = benchmark.stats.stats.min
    assert _agree(vmapped, naive) < 1e-4 and _agree(hooked, naive) < 1e-4
    info = {"examples": len(data), "naive_s": t_naive, "vmap_s": t_vmap, "hooks_s": t_hooks,
            "naive_over_vmap": t_naive / t_vmap, "naive_over_hooks": t_naive / t_hooks,
            "max_rel_diff_vmap": _agree(vmapped, naive), "max_rel_diff_hooks": _agree(hooked, naive)}
    benchmark.extra_info.update(info)
    print("\ndigits-mlp curvature:", {k: f"{v:.3g}" if isinstance(v, float) else v for k, v in info.items()})


def test_lenet5_full_fashion_mnist(benchmark) -> None:
    from bench.api.contracts import DatasetUnavailable

    torch.set_num_threads(2)
    try:
        task = _registry_task("fashion-mnist-lenet5")
    except DatasetUnavailable as exc:
        pytest.skip(str(exc))
    torch.manual_seed(0)
    model = task.build_model().eval()
    data = task.data.train
    curv = benchmark.pedantic(diagonal_curvature, args=(model, data, "sampled"),
                              kwargs={"generator": torch.Generator().manual_seed(0)}, rounds=1, iterations=1)
    t_full = benchmark.stats.stats.min
    assert all(torch.isfinite(v).all() and (v >= 0).all() for v in curv.values())

    def one_training_pass():
        for i in range(0, len(data), 128):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(data.x[i : i + 128]), data.y[i : i + 128]).backward()

    _, t_pass = _seconds(one_training_pass)
    subset = Split(data.x[:2048], data.y[:2048])
    diagonal_curvature(model, Split(data.x[:8], data.y[:8]), method="vmap")  # torch.func's one-time warm-up
    _, t_hooks_sub = _seconds(diagonal_curvature, model, subset, "sampled", method="hooks")
    _, t_vmap_sub = _seconds(diagonal_curvature, model, subset, "sampled", method="vmap")
    info = {"examples": len(data), "threads": torch.get_num_threads(), "curvature_s": t_full,
            "training_pass_s": t_pass, "curvature_over_training_pass": t_full / t_pass,
            "vmap_over_hooks_2048": t_vmap_sub / t_hooks_sub, "target_s": 120.0}
    benchmark.extra_info.update(info)
    print("\nLeNet-5 / Fashion-MNIST curvature:", {k: f"{v:.3g}" if isinstance(v, float) else v
                                                   for k, v in info.items()})
