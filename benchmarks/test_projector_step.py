"""One training step of LeNet-5 (Fashion-MNIST shape, batch 128: forward, backward, Adam step): ordinary
training of all D = 431 080 weights ("dense step") against subspace training θ₀ + P·z with each
projector at d ∈ {1 000, 10 000, 100 000}; and, with ``--layouts``, each step on the batch as it comes
against the batch in the layout training gives it (``bench.kit.evaluation.input_layout``:
channels-last for a convolutional model).

As a script, it prints the time ratio to the dense step (medians of interleaved rounds, measured in
one process, so load from other processes hits every configuration alike) and each configuration's
peak memory (maximum resident set of a fresh child process running it, minus that of a child running
the dense step)::

    python benchmarks/test_projector_step.py [--threads 1] [--rounds 15] [--dims 1000 10000 100000]
    python benchmarks/test_projector_step.py --layouts [--threads 2] [--rounds 15] [--dims 1000]

With pytest-benchmark (absolute times; the ratio test asserts kron and fastfood at d = 10 000 are
within 2x the dense step)::

    python -m pytest benchmarks/test_projector_step.py -o addopts="" -p no:cacheprovider
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bench.kit.evaluation import input_layout
from bench.kit.projectors import DenseProjector
from bench.kit.subspace import Subspace

D_LENET5 = 431_080
DIMS = (1_000, 10_000, 100_000)
PROJECTORS = ("dense", "sparse", "fastfood", "kron")
BATCH = 128


def lenet5() -> torch.nn.Module:
    from bench_plugins.models import LeNet5Net

    torch.manual_seed(0)
    return LeNet5Net(1, (28, 28), 10)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(BATCH, 1, 28, 28, generator=g), torch.randint(0, 10, (BATCH,), generator=g)


def available(projector: str, d: int) -> bool:
    return projector != "dense" or D_LENET5 * d <= DenseProjector.MAX_ENTRIES


def make_step(projector: str | None, d: int = 0, layout: bool = False):
    """A closure running one training step; ``projector=None`` trains all weights directly; ``layout``:
    the batch in the layout training gives it."""
    model = lenet5()
    x, y = batch()
    if layout:
        x = input_layout(model, x[:8])(x)
    if projector is None:
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step():
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

        return step
    space = Subspace(model, projector, d, seed=0, device=torch.device("cpu"))
    z = torch.zeros(d, requires_grad=True)
    opt = torch.optim.Adam([z], lr=1e-2)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(space(z, x), y).backward()
        opt.step()

    return step


def configurations(dims=DIMS) -> list[tuple[str | None, int]]:
    return [(None, 0)] + [(p, d) for d in dims for p in PROJECTORS if available(p, d)]


def label(projector: str | None, d: int) -> str:
    return "dense step" if projector is None else f"{projector} d={d}"


def time_ratios(dims=DIMS, rounds: int = 15, warmup: int = 2, layouts: bool = False) -> dict[str, dict[str, float]]:
    """Median seconds per step and ratio to the dense step, rounds interleaved across configurations;
    ``layouts``: kron only, each configuration also on the training layout's batch."""
    if layouts:
        configs = [(None, 0)] + [("kron", d) for d in dims]
        steps = {label(*c) + tail: make_step(*c, layout=bool(tail)) for c in configs for tail in ("", ", training layout")}
    else:
        steps = {label(*c): make_step(*c) for c in configurations(dims)}
    times: dict[str, list[float]] = {k: [] for k in steps}
    for r in range(warmup + rounds):
        for name, step in steps.items():
            slow = name.startswith(("dense d=", "sparse d=100000"))
            if slow and r >= warmup + max(3, rounds // 5):  # a few rounds suffice for the slow ones
                continue
            start = time.perf_counter()
            step()
            if r >= warmup:
                times[name].append(time.perf_counter() - start)
    base = statistics.median(times["dense step"])
    return {k: {"seconds": statistics.median(v), "ratio": statistics.median(v) / base} for k, v in times.items()}


def own_peak_bytes() -> int:
    """This process's peak resident memory. VmHWM starts afresh at exec; ru_maxrss (the fallback off
    Linux) is inherited from a forking parent, so it can only overstate."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child_peak(projector: str | None, d: int, threads: int) -> int:
    """Peak resident memory (bytes) of a fresh process that runs 3 steps of one configuration."""
    code = (f"import sys, torch; sys.path.insert(0, {str(Path(__file__).parent)!r}); torch.set_num_threads({threads});"
            "import test_projector_step as b;"
            f"s = b.make_step({projector!r}, {d}); [s() for _ in range(3)];"
            "print(b.own_peak_bytes())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def peak_memory(dims=DIMS, threads: int = 1) -> dict[str, int]:
    peaks = {label(*c): _child_peak(*c, threads) for c in configurations(dims)}
    base = peaks["dense step"]
    return {k: v - base for k, v in peaks.items()}


# ------------------------------------------------------------------------------ pytest-benchmark
@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_dense_step(benchmark):
    benchmark.group = "lenet5-step"
    benchmark(make_step(None))


@pytest.mark.parametrize("d", DIMS)
@pytest.mark.parametrize("projector", PROJECTORS)
def test_subspace_step(benchmark, projector, d):
    if not available(projector, d):
        pytest.skip(f"'dense' regenerates D·d = {D_LENET5 * d} entries per product (over its limit)")
    benchmark.group = "lenet5-step"
    if projector == "dense" or (projector == "sparse" and d == 100_000):
        benchmark.pedantic(make_step(projector, d), rounds=2, warmup_rounds=1)
    else:
        benchmark(make_step(projector, d))


@pytest.mark.parametrize("layout", [False, True], ids=["as-it-comes", "training-layout"])
@pytest.mark.parametrize("projector", [None, "kron"], ids=["dense", "kron-1000"])
def test_step_by_layout(benchmark, projector, layout):
    benchmark.group = "lenet5-step-layout"
    benchmark(make_step(projector, 1_000 if projector else 0, layout=layout))


def test_kron_and_fastfood_within_twice_the_dense_step():
    ratios = time_ratios(dims=(10_000,), rounds=9)
    assert ratios["kron d=10000"]["ratio"] <= 2.0, ratios
    assert ratios["fastfood d=10000"]["ratio"] <= 2.0, ratios


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--dims", type=int, nargs="+", default=list(DIMS))
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--layouts", action="store_true", help="the dense and kron steps on the batch as it comes "
                        "and in the training layout (no memory figures)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    ratios = time_ratios(tuple(args.dims), args.rounds, layouts=args.layouts)
    memory = {} if args.no_memory or args.layouts else peak_memory(tuple(args.dims), args.threads)
    if args.json:
        print(json.dumps({"ratios": ratios, "peak_memory_bytes": memory}, indent=2))
        return
    print(f"LeNet-5 training step, batch {BATCH}, {args.threads} thread(s), torch {torch.__version__}")
    print(f"{'configuration':<38} {'s/step':>8} {'x dense':>8} {'peak MB':>9}")
    for name, r in ratios.items():
        mem = memory.get(name)
        mem_text = "" if mem is None else f"{mem / 2**20:+9.1f}"
        print(f"{name:<38} {r['seconds']:8.4f} {r['ratio']:8.2f} {mem_text}")


if __name__ == "__main__":
    main()
