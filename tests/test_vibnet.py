"""Compressor ``vibnet`` (seed 003): gate penalty and α by hand, shrinking that computes exactly what
the gated network computes at its means, metrics counted by hand, exact decode through the runner and
``bench verify``, and the errors a user can meet."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from torch import nn

from bench.cli import main
from bench_plugins.vibnet import (Gate, Gated, VIBNet, gammas, gate_sites, layer_chain, metrics, multiplications,
                                  shrink)


def test_gate_alpha_and_penalty_by_hand():
    gate = Gate(2, torch.Generator().manual_seed(0), "cpu")
    with torch.no_grad():
        gate.mu.copy_(torch.tensor([1.0, 0.5]))
        gate.logvar.copy_(torch.tensor([0.0, math.log(0.25)]))  # σ² = 1 and 1/4: α = μ²/σ² = 1 and 1
    assert gate.log_alpha().tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert float(gate.penalty().detach()) == pytest.approx(2 * math.log(2), rel=1e-6)  # Σ log(1 + α)
    with torch.no_grad():
        gate.logvar.copy_(torch.tensor([math.log(4.0), math.log(0.01)]))  # α = 1/4 and 25
    assert float(gate.penalty().detach()) == pytest.approx(math.log(1.25) + math.log(26), rel=1e-6)
    fresh = Gate(1000, torch.Generator().manual_seed(1), "cpu")  # the authors' initialization
    assert float(fresh.mu.detach().mean()) == pytest.approx(1.0, abs=0.003) and float(fresh.mu.detach().std()) == pytest.approx(0.01, rel=0.1)
    assert (fresh.logvar == -9).all()


def test_gamma_per_site_follows_the_feature_map_side():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.ReLU(),
                          nn.Flatten(), nn.Linear(6 * 1 * 1, 3))
    sites = gate_sites(layer_chain(model, (1, 8, 8)), (1, 8, 8), True)
    assert [(s.units, s.side) for s in sites] == [(4, 3), (6, 1)]  # 8 → 6 → pooled 3; 3 → 1
    assert gammas(sites, 0.3) == pytest.approx([0.1, 0.3])


def assert_shrunk_matches_gated(model: nn.Module, input_shape: tuple, input_bottleneck: bool) -> None:
    torch.manual_seed(0)
    chain = layer_chain(model, input_shape)
    sites = gate_sites(chain, input_shape, input_bottleneck)
    gated = Gated(chain, sites, gammas(sites, 1.0), torch.Generator().manual_seed(2))
    keeps, means = [], []
    for i, (site, gate) in enumerate(zip(sites, gated.gates)):
        with torch.no_grad():
            gate.mu.copy_(torch.randn(site.units) * 0.5 + 1)  # negative means included
        keep = torch.arange(site.units)[torch.arange(site.units) % (i + 2) != 0]  # close some gates
        gate.open.zero_()
        gate.open[keep] = True
        keeps.append(keep)
        means.append(gate.mu.detach().clone())
    gated.eval()
    x = torch.randn(5, *input_shape)
    small = shrink(chain, sites, keeps, means)
    with torch.no_grad():
        want, got = gated(x), small(x)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), float((got - want).abs().max())
    n_small = sum(p.numel() for p in small.parameters())
    assert n_small < sum(p.numel() for p in model.parameters())  # the closed units are gone, not masked


def test_shrunk_mlp_computes_what_the_gated_mlp_computes_at_its_means():
    assert_shrunk_matches_gated(nn.Sequential(nn.Flatten(), nn.Linear(12, 7), nn.ReLU(), nn.Linear(7, 5), nn.Tanh(),
                                       nn.Linear(5, 3)), (1, 3, 4), True)


def test_shrunk_convnet_with_batchnorm_computes_what_the_gated_one_computes():
    model = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(6, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(), nn.Flatten(),
                          nn.Linear(5 * 4 * 4, 9), nn.ReLU(), nn.Linear(9, 3))
    with torch.no_grad():
        for bn in (model[1], model[5]):  # statistics that are not the defaults
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    assert_shrunk_matches_gated(model.eval(), (2, 8, 8), True)


def test_metrics_of_a_tiny_network_by_hand():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)
    chain = layer_chain(model, (4,))
    sites = gate_sites(chain, (4,), True)
    assert [s.units for s in sites] == [4, 3]
    small = shrink(chain, sites, [torch.tensor([0, 2]), torch.tensor([1])], [torch.ones(4), torch.ones(3)])
    stats = metrics(model, small, sites, [2, 1], (4,))
    assert stats["architecture"] == "2-1"
    assert stats["r_N"] == pytest.approx(3 / 7)  # (2 + 1) / (4 + 3) units kept
    assert stats["r_W"] == pytest.approx((2 * 1 + 1 * 2) / (4 * 3 + 3 * 2))
    assert stats["flops"] == 2 * 1 + 1 * 2 and stats["base_flops"] == 4 * 3 + 3 * 2  # multiplications
    conv = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 2 * 2, 5))
    assert multiplications(conv, (1, 4, 4)) == 2 * 9 * 4 + 8 * 5  # 2 channels × 3·3 × 2·2 positions, fc


def test_models_it_cannot_gate_name_the_layer():
    with pytest.raises(ValueError, match="Embedding"):
        layer_chain(nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(4, 2)), (1,))

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.b(x + self.a(x))

    with pytest.raises(ValueError, match="do not run as a chain"):
        layer_chain(Residual(), (4,))


def test_a_negative_gamma_is_a_one_line_error(workspace, run_bench):
    out = run_bench("run", "--compressors", "vibnet", "--bounds", "occam", "--set", "compressor.vibnet.gamma=-1",
                    cwd=workspace)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "gamma" in out.stderr and "vibnet" in out.stderr


def test_vibnet_through_the_runner_decodes_exactly_and_verifies(workspace, capsys):
    argv = ["run", "--compressors", "vibnet", "--bounds", "occam,catoni", "--no-leaderboard",
            "--set", "compressor.vibnet.epochs=8", "--set", "compressor.vibnet.gamma=0.01",
            "--set", "compressor.vibnet.gate_lr=0.05", "--set", "compressor.vibnet.levels=8"]
    assert main(argv) == 0  # the decoded shrunk model was bit-identical to the compressor's
    df = pd.read_parquet(workspace / "results")
    assert (df["status"] == "ok").all() and len(df) == 2
    stats = json.loads(df["extras"].iloc[0])["stats"]
    widths = [int(w) for w in stats["architecture"].split("-")]
    assert len(widths) == 2 and widths[0] < 64 and widths[1] < 16  # digits 8x8 input, the tiny MLP's 16
    assert stats["r_W"] < 1 and stats["r_N"] < 1 and stats["flops"] < stats["base_flops"]
    assert df["n_params"].iloc[0] < 64 * 16 + 16 * 10 + 26  # the decoded network is the smaller one
    capsys.readouterr()
    assert main(["verify", *df["cell_id"]]) == 0
    assert capsys.readouterr().out.count("AGREES") == 2


def tiny_context():
    """The registry, a digits task with an 8-unit MLP, and its run context (in this process)."""
    from bench.progress import progress
    from bench.registry import load_registry
    from bench.context import build_context
    from bench.tasks import BaseModels, instantiate_task, merge_task
    from bench.cache import ModelCache, default_cache_dir

    registry = load_registry()
    task = instantiate_task(merge_task(None, {"dataset": "digits", "model": "mlp", "model_params": {"widths": [8]},
                                              "recipe": {"epochs": 2}}, "v"), registry)
    ctx = build_context(task, 0, torch.device("cpu"), BaseModels(ModelCache(default_cache_dir()), torch.device("cpu"),
                                                                 progress), 0.05)
    return registry, task, ctx


def test_decode_of_a_corrupted_message_fails_cleanly(workspace):
    from bench.tasks import prior_from_spec, prior_spec
    from bench.kit import coding

    registry, task, ctx = tiny_context()
    vib = VIBNet(epochs=1, levels=4)
    compressed = vib.compress(ctx)
    prior = prior_from_spec(prior_spec(task, 0, torch.device("cpu")), registry)
    assert isinstance(vib.decode(compressed.message, prior), nn.Module)
    for bad in (compressed.message[:-5], compressed.message + b"\x00"):
        with pytest.raises(coding.CorruptMessage):
            vib.decode(bad, prior)


def test_a_grid_over_coding_parameters_trains_the_gates_once(workspace):
    _, _, ctx = tiny_context()
    first = VIBNet(epochs=2, gamma=0.01, levels=4).compress(ctx)
    second = VIBNet(epochs=2, gamma=0.01, levels=8, finetune_epochs=1).compress(ctx)
    other = VIBNet(epochs=2, gamma=0.02, levels=4).compress(ctx)
    assert (first.extras["gates_cached"], second.extras["gates_cached"], other.extras["gates_cached"]) == \
        (False, True, False)
    assert first.extras["kept"] == second.extras["kept"]  # the same trained gates
