"""The pruning family's encoder-side ladders: by default ``prune``, ``dns`` and ``vibnet`` try every rung of
sparsity (or γ') and every codebook size fixed in advance, and keep the message with the lowest Occam
certificate. Every candidate is a whole message that decodes on its own; the row says what was tried."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch

import oracle
from bench.cli import main
from bench.kit import ladders
from bench.cell import models_agree
from bench.context import build_context
from bench.registry import load_registry
from bench.tasks import BaseModels, instantiate_task
from bench.cache import ModelCache, default_cache_dir
from bench.progress import progress
from bench_plugins import dns, prune, vibnet

pytestmark = pytest.mark.usefixtures("one_thread")


def context():
    registry = load_registry()
    task = instantiate_task(registry.get("tasks", "digits-mlp"), registry)
    device = torch.device("cpu")
    return build_context(task, 0, device, BaseModels(ModelCache(default_cache_dir()), device, progress), 0.05)


CASES = [
    (prune.Prune, {"retrain_epochs": 1, "codebook_epochs": 0}, "sparsity", prune.SPARSITY_LADDER, prune.LEVELS_LADDER),
    (dns.DNS, {"epochs": 1, "codebook_epochs": 0}, "sparsity", dns.SPARSITY_LADDER, dns.LEVELS_LADDER),
    (vibnet.VIBNet, {"epochs": 1}, "gamma", vibnet.GAMMA_LADDER, vibnet.LEVELS_LADDER),
]


@pytest.mark.parametrize("cls, fast, knob, rungs, sizes", CASES, ids=["prune", "dns", "vibnet"])
def test_the_ladder_is_searched_by_the_certificate_and_the_winner_decodes(cls, fast, knob, rungs, sizes):
    ctx = context()
    comp = cls(**fast)
    out = comp.compress(ctx)
    trials = out.extras["search"]
    assert [(t[knob], t["levels"]) for t in trials] == [(r, s) for r in rungs for s in sizes]
    n = len(ctx.task.data.train)
    for t in trials:  # each score is the Occam certificate of that message, recomputed by the oracle
        kl = (t["message_bits"] + oracle.elias_delta_len(t["message_bits"] + 1)) * math.log(2)
        assert t["score"] == pytest.approx(float(oracle.binomial_bound(t["train_errors"], n, kl, 0.05)), rel=1e-5)
    won = min(trials, key=lambda t: (t["score"], t["message_bits"]))
    assert out.extras["chosen"] == {knob: won[knob], "levels": won["levels"]}
    assert 8 * len(out.message) == won["message_bits"]
    assert round(ctx.evaluate(out.model, ctx.task.data.train) * n) == won["train_errors"]
    assert ("note" in out.extras) == (won["score"] >= ladders.VACUOUS)
    decoded = cls().decode(out.message, context().prior)  # the rungs are encoder-side: defaults decode it
    assert models_agree(out.model, decoded, ctx.task.data.train.x[:256]) is None


@pytest.mark.parametrize("cls, fast, knob, rungs, sizes", CASES, ids=["prune", "dns", "vibnet"])
def test_setting_the_knob_and_the_levels_by_hand_fixes_them(cls, fast, knob, rungs, sizes):
    ctx = context()
    out = cls(**fast, **{knob: rungs[1], "levels": sizes[0]}).compress(ctx)
    assert "search" not in out.extras
    levels_only = cls(**fast, **{knob: rungs[1]}).compress(ctx)
    assert [(t[knob], t["levels"]) for t in levels_only.extras["search"]] == [(rungs[1], s) for s in sizes]


def test_the_row_says_what_was_tried_and_why_nothing_certifies(workspace, capsys):
    """Through the real entry point: the row repeats the search, and on digits (n = 1 347) the pruned
    messages are too long for any certificate below 100 %, which the row says."""
    argv = ["run", "--compressors", "vibnet", "--bounds", "occam", "--set", "compressor.vibnet.epochs=1",
            "--no-leaderboard"]
    assert main(argv) == 0
    df = pd.read_parquet(workspace / "results")
    assert len(df) == 1 and (df["status"] == "ok").all()
    row = df.iloc[0]
    searched = json.loads(row["extras"])["compressor"]
    assert len(searched["search"]) == len(vibnet.GAMMA_LADDER) * len(vibnet.LEVELS_LADDER)
    won = min(searched["search"], key=lambda t: (t["score"], t["message_bits"]))
    assert searched["chosen"] == {"gamma": won["gamma"], "levels": won["levels"]}
    assert row["message_bits"] == won["message_bits"] and row["train_errors"] == won["train_errors"]
    assert ("note" in searched) == (won["score"] >= ladders.VACUOUS)
    if "note" in searched:
        assert searched["note"].startswith("smallest message ") and "for n = 1 347" in searched["note"]
    capsys.readouterr()
    assert main(["verify", *df["cell_id"]]) == 0
