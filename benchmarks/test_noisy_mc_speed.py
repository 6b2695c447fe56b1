"""Cost of one Monte-Carlo pass of the stochastic classifier (a fresh weight draw per example,
``bench.kit.stochastic.noisy_error_count``) against one clean evaluation pass, on an untrained LeNet-5 with
2 % of its weights noisy and 4000 synthetic 28x28 images.

    python -m pytest benchmarks/test_noisy_mc_speed.py -o addopts="" -p no:cacheprovider

Compare the two means as a ratio (same process, same machine)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.api.contracts import Split
from bench.kit.evaluation import error_rate
from bench.kit.stochastic import NoiseSpec, noisy_error_count
from bench_plugins.models import LeNet5Net


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = LeNet5Net(1, (28, 28), 10).eval()
    split = Split(torch.randn(4000, 1, 28, 28), torch.randint(0, 10, (4000,)))
    rng = np.random.default_rng(0)
    noise = {}
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            kept = np.sort(rng.choice(p.numel(), max(1, p.numel() // 50), replace=False))
            noise[name] = NoiseSpec(kept, 0.01)
    return model, split, noise


def test_clean_pass(benchmark, setup):
    model, split, _ = setup
    benchmark.pedantic(error_rate, args=(model, split), rounds=3, iterations=1)


def test_noisy_pass(benchmark, setup):
    model, split, noise = setup
    benchmark.pedantic(lambda: noisy_error_count(model, noise, split, torch.Generator().manual_seed(0),
                                                 batch_size=500), rounds=3, iterations=1)
