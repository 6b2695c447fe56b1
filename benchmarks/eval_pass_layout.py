"""One evaluation pass of LeNet-5 (70 000 images of Fashion-MNIST's shape): the harness's passes
(``bench.kit.evaluation.predict``: channels-last inputs on the CPU, batches of 512) against the old ones
(the usual layout, batches of 4096), timed alternately in one process, with how far the outputs are apart
and how many predictions differ::

    python benchmarks/eval_pass_layout.py [--rounds 3] [--images 70000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.kit.evaluation import eval_mode, predict
from bench_plugins.models import LeNet5Net


def old_predict(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad(), eval_mode(model):
        return torch.cat([model(x[i : i + 4096]) for i in range(0, len(x), 4096)])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=70_000)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = LeNet5Net(1, (28, 28), 10).eval()
    x = torch.randn(args.images, 1, 28, 28)
    times: dict[str, list[float]] = {"old": [], "harness": []}
    for _ in range(args.rounds):
        for name, run in (("old", old_predict), ("harness", predict)):
            start = time.perf_counter()
            out = run(model, x)
            times[name].append(time.perf_counter() - start)
            if name == "old":
                old = out
    new = out
    old_s, new_s = statistics.median(times["old"]), statistics.median(times["harness"])
    print(f"{args.images} images, {torch.get_num_threads()} threads: old {old_s:.2f} s, harness {new_s:.2f} s, "
          f"ratio {new_s / old_s:.2f}; outputs apart by at most {(old - new).abs().max().item():.2e}, "
          f"{int((old.argmax(1) != new.argmax(1)).sum())} predictions differ")


if __name__ == "__main__":
    main()
