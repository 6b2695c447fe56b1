"""Compressor ``prune``: magnitude masks, masked retraining, exact decoding of the sparse quantized
message, the per-layer (S, C, Q) it exposes, and a run through the real runner with ``bench verify``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import paying
import pytest
import torch
from torch import nn

from bench.cli import main
from bench.api.contracts import Split
from bench.api.params import ConfigError
from bench.cell import models_agree
from bench_plugins.prune import Prune, magnitude_masks, masked_fit


def toy_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 3))


def test_magnitude_masks_prune_exactly_the_smallest():
    model = toy_model()
    per_layer = magnitude_masks(model, {"1.weight": 0.75, "3.weight": 0.5})
    assert int((~per_layer["1.weight"]).sum()) == 60 and int((~per_layer["3.weight"]).sum()) == 12
    w = model[1].weight.detach().abs()
    assert w[per_layer["1.weight"]].min() >= w[~per_layer["1.weight"]].max()
    glob = magnitude_masks(model, 0.8)
    pruned = sum(int((~m).sum()) for m in glob.values())
    assert pruned == round(0.8 * 104)
    kept = torch.cat([model.get_parameter(n).detach().abs()[m] for n, m in glob.items()])
    dropped = torch.cat([model.get_parameter(n).detach().abs()[~m] for n, m in glob.items()])
    assert kept.min() >= dropped.max()


def test_masked_fit_keeps_pruned_weights_at_zero_and_trains_the_rest():
    model = toy_model()
    masks = magnitude_masks(model, 0.7)
    before = {n: model.get_parameter(n).detach().clone() for n in masks}
    split = Split(torch.randn(256, 10), torch.randint(0, 3, (256,)))
    masked_fit(model, masks, split, 2, 1e-2, 32, torch.Generator().manual_seed(0), "classification")
    for name, mask in masks.items():
        w = model.get_parameter(name).detach()
        assert torch.all(w[~mask] == 0)
        assert not torch.equal(w[mask], before[name][mask])


def test_params_are_validated_by_name():
    with pytest.raises(ConfigError, match="sparsity"):
        Prune(sparsity=1.0)
    with pytest.raises(ConfigError, match="steps"):
        Prune(steps=0)
    with pytest.raises(ConfigError, match="levels"):
        Prune(levels=0)


def test_compress_decodes_exactly_and_exposes_s_c_q(workspace):
    from bench.registry import load_registry
    from bench.context import build_context
    from bench.tasks import BaseModels, instantiate_task, merge_task
    from bench.cache import ModelCache, default_cache_dir
    from bench.progress import progress

    registry = load_registry()
    spec = merge_task(None, {"dataset": "digits", "model": "mlp", "model_params": {"widths": [16]},
                             "recipe": {"epochs": 5, "batch_size": 128, "lr": 0.01}}, "tiny")
    task = instantiate_task(spec, registry)
    base = BaseModels(ModelCache(default_cache_dir()), torch.device("cpu"), progress)
    ctx = build_context(task, 0, torch.device("cpu"), base, 0.05)
    comp = Prune(sparsity=0.8, steps=2, retrain_epochs=1, levels=4, codebook_epochs=1)
    c = comp.compress(ctx)
    again = Prune(sparsity=0.8, steps=2, retrain_epochs=1, levels=4, codebook_epochs=1).compress(ctx)
    assert c.message == again.message  # same configuration and seed, same bytes
    decoded = comp.decode(c.message, ctx.prior)
    assert models_agree(c.model, decoded, task.data.train.x) is None
    assert c.stats["sparsity"] == pytest.approx(0.8, abs=1e-3)
    state = decoded.state_dict()
    for layer in c.layers:
        w = state[layer.name].flatten().numpy()
        assert set(np.flatnonzero(w)) <= set(layer.positions.tolist())
        assert np.array_equal(w[layer.positions], layer.codebook[layer.assignments])
        assert np.all(np.delete(w, layer.positions) == 0)
        assert len(layer.codebook) <= 4
        assert layer.positions_bits == c.extras["section_bits"][f"{layer.name}.S"]
    assert sum(c.extras["section_bits"].values()) <= c.bits


def test_prune_through_the_runner_and_verify(workspace, capsys):
    argv = ["run", "--compressors", "prune", "--bounds", "occam",
            "--set", "compressor.prune.retrain_epochs=1", "--set", "compressor.prune.steps=2",
            "--set", "compressor.prune.sparsity=[0.5,0.8]", "--no-leaderboard"]
    assert main(argv) == 0
    df = pd.read_parquet(workspace / "results")
    assert (df["status"] == "ok").all() and len(df) == 2
    assert paying.charged_as_coded(df, workspace / "results") and df["config_bits"].nunique() == 1  # sparsity is free
    assert (df["error_bound"] >= df["test_err"]).all()
    assert (df["n_params_kept"] < df["n_params"]).all()
    capsys.readouterr()
    assert main(["verify", *df["cell_id"]]) == 0
    assert capsys.readouterr().out.count("AGREES") == 2
