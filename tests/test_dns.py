"""Compressor ``dns`` (Dynamic Network Surgery): the prune/splice rule, gradients reaching masked
weights, masks reaching the configured sparsity, and the exact decode of the quantized sparse model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from bench.cli import main
from bench.api.params import ConfigError
from bench_plugins.dns import DNS, DNSParams, Surgery, cubic_schedule, std_threshold, surgery_update


def toy_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 3))


def toy_data(n: int = 512, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, generator=g)
    y = (x[:, :3].argmax(dim=1)).long()
    return x, y


def test_surgery_rule_prunes_splices_and_keeps_the_band():
    w = torch.tensor([0.05, 0.5, 0.95, 1.05, 2.0, 0.99])
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    new = surgery_update(w, mask, a=0.9, b=1.1)
    # |w| <= a: pruned; a < |w| <= b: unchanged; |w| > b: spliced back
    assert new.tolist() == [0.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="exceeds"):
        surgery_update(w, mask, a=1.2, b=1.1)


def test_std_rule_is_mean_plus_c_std_of_magnitudes():
    w = torch.tensor([-1.0, 2.0, -3.0, 4.0])
    mag = np.abs(w.numpy())
    assert std_threshold(w, 0.5) == pytest.approx(mag.mean() + 0.5 * mag.std())
    assert std_threshold(w, -10.0) == 0.0
    assert cubic_schedule(0.9, 0.0) == 0.0 and cubic_schedule(0.9, 1.0) == pytest.approx(0.9)


def train_step(surgery: Surgery, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer) -> None:
    """One step as the shared training loop takes it, through the surgery's masked forward."""
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(surgery.forward(x), y).backward()
    opt.step()


def test_gradients_reach_masked_weights_and_a_spliced_weight_comes_back():
    model = toy_model()
    p = DNSParams(rule="std", c=(0.5,), gamma=0.0, margin=0.1, epochs=1)
    surgery = Surgery(model, p, total_steps=100, rng=np.random.default_rng(0))
    surgery.maybe_update(0)  # p(0) = 1: the first update always happens
    mask = surgery.masks["1.weight"]
    assert 0 < float(mask.mean()) < 1
    pruned = torch.nonzero(mask.flatten() == 0)[0].item()
    w = model.get_parameter("1.weight")
    before = w.detach().flatten()[pruned].item()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = toy_data(64)
    train_step(surgery, x, y, opt)
    after = w.detach().flatten()[pruned].item()
    assert after != before  # straight-through: the masked weight moved
    # grow the pruned weight past b: the next update splices it back
    mean, std = surgery.moments["1.weight"]
    b = 1.1 * max(mean + 0.5 * std, 0.0)
    with torch.no_grad():
        w.view(-1)[pruned] = 1.5 * b
    surgery.maybe_update(1)
    assert surgery.masks["1.weight"].flatten()[pruned] == 1
    # and shrinking it below a prunes it again
    with torch.no_grad():
        w.view(-1)[pruned] = 0.0
    surgery.maybe_update(2)
    assert surgery.masks["1.weight"].flatten()[pruned] == 0


def test_update_probability_decays_and_masks_freeze_after_the_stop():
    model = toy_model()
    p = DNSParams(gamma=0.01, power=1.0, stop_fraction=0.5)
    surgery = Surgery(model, p, total_steps=10, rng=np.random.default_rng(0))
    assert surgery.update_probability(0) == 1.0
    assert surgery.update_probability(100) == pytest.approx(0.5)
    before = {n: m.clone() for n, m in surgery.masks.items()}
    with torch.no_grad():
        model.get_parameter("1.weight").zero_()
    surgery.maybe_update(5)  # at/after stop_step: no change whatever the weights
    assert all(torch.equal(before[n], surgery.masks[n]) for n in before)


@pytest.mark.parametrize("layer_sparsity", [(), (0.5, 0.3)])
def test_quantile_rule_reaches_the_configured_sparsity(layer_sparsity):
    model = toy_model()
    p = DNSParams(rule="quantile", sparsity=0.8, layer_sparsity=layer_sparsity, stop_fraction=0.6, epochs=1)
    x, y = toy_data()
    steps = 40
    surgery = Surgery(model, p, total_steps=steps, rng=np.random.default_rng(1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(steps):
        surgery.maybe_update(step)
        i = (step * 64) % len(x)
        train_step(surgery, x[i : i + 64], y[i : i + 64], opt)
    masks = surgery.finish()
    targets = dict(zip(["1.weight", "3.weight"], layer_sparsity or (0.8, 0.8)))
    for name, mask in masks.items():
        assert 1 - float(mask.float().mean()) == pytest.approx(targets[name], abs=1.0 / mask.numel())
        assert torch.all(model.get_parameter(name).detach()[~mask] == 0)


def test_params_are_validated_by_name():
    with pytest.raises(ConfigError, match="margin"):
        DNS(margin=1.0)
    with pytest.raises(ConfigError, match="stop_fraction"):
        DNS(stop_fraction=0.0)
    with pytest.raises(ConfigError, match="'c'"):
        DNS(c=[])
    model = toy_model()
    with pytest.raises(ValueError, match="'c' needs 1 or 2"):
        Surgery(model, DNSParams(rule="std", c=(1.0, 2.0, 3.0)), 10, np.random.default_rng(0))


def test_dns_through_the_runner_decodes_exactly_and_verifies(workspace, capsys):
    argv = ["run", "--compressors", "dns", "--bounds", "occam,catoni", "--set", "compressor.dns.epochs=2",
            "--set", "compressor.dns.levels=4", "--set", "bound.catoni.robust=true",
            "--set", "bound.catoni.sigma_select_examples=500", "--set", "bound.catoni.sigma_grid=[0.1]",
            "--set", "bound.catoni.sigma_refine_rounds=0", "--no-leaderboard"]
    assert main(argv) == 0  # the runner checks that the decoded model equals the compressor's, bit for bit
    df = pd.read_parquet(workspace / "results")
    assert (df["status"] == "ok").all() and len(df) == 2
    assert (df["error_bound"] >= df["test_err"]).all()
    import json
    extras = json.loads(df.loc[df["bound"] == "catoni", "extras"].iloc[0])
    stats = extras["stats"]
    bound = extras["bound"]
    # this (seeded) search keeps every layer deterministic: exact error, no Monte-Carlo estimate, the
    # decoded model is the target, and δ' is spent all the same (choosing δ by the data is not allowed)
    catoni = df[df["bound"] == "catoni"].iloc[0]
    assert all(layer["sigma"] == 0 for layer in bound["layers"].values())
    assert bound["m"] == 0 and bound["err_mc"] == catoni["train_err"]
    assert bound["delta_prime"] == pytest.approx(0.005) and catoni["delta_prime"] == pytest.approx(0.005)
    assert catoni["target"] == "decoded" and catoni["target_test_err"] == catoni["test_err"]
    assert 0 < stats["sparsity"] < 1 and stats["n_weights_kept"] < df["n_params"].iloc[0]
    capsys.readouterr()
    assert main(["verify", *df["cell_id"]]) == 0
    assert capsys.readouterr().out.count("AGREES") == 2
