"""Compressor ``id``: codebook initialization and straight-through quantization by hand, subspace
training over every parameter (BatchNorm included), exact and deterministic decoding, corrupted
messages, and the real runner with ``bench verify``."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import paying
import pytest
import torch

import oracle
from bench.kit import coding
from bench.cli import main
from bench.api.params import ConfigError
from bench.progress import progress
from bench.registry import load_registry
from bench.cell import models_agree
from bench.context import build_context
from bench.kit.subspace import (Subspace, init_codebook, nearest_level, progressive_fractions,
                            progressive_quantize, quantize_ste, recalibrate_batchnorm, row_scale)
from bench.tasks import BaseModels, instantiate_task, merge_task
from bench.cache import ModelCache, default_cache_dir
from bench.kit import ladders
from bench_plugins.intrinsic_dim import DIM_LADDER, STEP_LADDER, IntrinsicDim, auto_dims, auto_epochs

#: id's defaults before 0.4.0 (a learned codebook, nearest rounding, its step and counts sent): the tests of
#: those options start from here; the frontier recipe, today's defaults, has its own tests below.
CLASSIC = {"scale": "none", "scale_power": 1.0, "levels": 7, "weight_decay": 0.0, "qat_epochs": 2,
           "quantizer": "nearest", "progressive_stages": 4, "progressive_epochs": 1, "progressive_lr": 0.01,
           "codebook": "learned", "lattice_step": "max", "symbol_code": "table", "layout": "sections"}
FAST = {**CLASSIC, "dim": 40, "epochs": 2, "lr": 0.05, "qat_epochs": 1, "levels": 5}

pytestmark = pytest.mark.usefixtures("one_thread")


def context(task_name: str = "digits-mlp", override: dict | None = None, seed: int = 0):
    registry = load_registry()
    spec = registry.get("tasks", task_name) if override is None else merge_task(None, override, task_name)
    task = instantiate_task(spec, registry)
    device = torch.device("cpu")
    return build_context(task, seed, device, BaseModels(ModelCache(default_cache_dir()), device, progress), 0.05)


BN_TASK = {"dataset": "digits", "model": "convnet", "model_params": {"k": 2},
           "recipe": {"epochs": 1, "batch_size": 128}}


def clear_subspace_cache() -> None:
    for path in (default_cache_dir() / "id-subspace").rglob("*.pt"):
        path.unlink()


# ----------------------------------------------------------------------------------- by hand
def test_linear_levels_are_bin_means():
    z = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    # bins [-1, 0) and [0, 1] (edges widened by 1e-6): means -0.75 and 0.5
    assert init_codebook(z, 2, "linear", 0) == pytest.approx([-0.75, 0.5])
    # an empty bin takes its centre: bins of width 2/3 over [-1, 1], nothing in the middle one
    assert init_codebook(np.array([-1.0, -0.9, 0.9, 1.0]), 3, "linear", 0) == pytest.approx(
        [-0.95, 0.0, 0.95], abs=1e-6)


def test_kmeans_levels_find_the_clusters():
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(-2, 0.01, 100), rng.normal(3, 0.01, 50)])
    assert init_codebook(z, 2, "kmeans++", 0) == pytest.approx([-2, 3], abs=0.01)


def test_straight_through_quantization():
    codebook = torch.tensor([-1.0, 0.0, 2.0], requires_grad=True)
    z = torch.tensor([-0.9, 0.2, 0.6, 1.5, 5.0], requires_grad=True)
    assert nearest_level(z.detach(), codebook.detach()).tolist() == [0, 1, 1, 2, 2]
    q = quantize_ste(z, codebook)
    assert q.tolist() == [-1.0, 0.0, 0.0, 2.0, 2.0]
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    (q * weights).sum().backward()
    assert z.grad.tolist() == weights.tolist()  # straight through
    assert codebook.grad.tolist() == [1.0, 5.0, 9.0]  # summed per level


def test_init_row_scale_is_a_normalized_per_tensor_rms():
    params = [torch.full((10,), 3.0), torch.zeros(30), torch.full((60,), 0.5)]
    scale = row_scale(params, "init")
    floor = math.sqrt((10 * 9 + 60 * 0.25) / 100)  # RMS of all of θ₀: a tensor at 0 still trains
    raw = torch.tensor([3.0] * 10 + [floor] * 30 + [0.5 * 0 + max(0.5, floor)] * 60)
    assert torch.allclose(scale, (raw / raw.pow(2).mean().sqrt()).float())
    assert float(scale.pow(2).mean()) == pytest.approx(1.0)
    assert torch.equal(row_scale(params, "none"), torch.ones(100))
    squared = raw.pow(2)  # power 2: the same RMS squared, before normalizing: 9 : floor² : floor²
    assert torch.allclose(row_scale(params, "init", 2.0), (squared / squared.pow(2).mean().sqrt()).float())
    assert torch.equal(row_scale(params, "init", 1.0), scale)


FIXED = {"codebook": "lattice", "lattice_step": "fixed", "step": 0.5, "qat_epochs": 0}


def test_params_are_validated_by_name():
    for bad, key in [({"levels": 1}, "levels"), ({"dim": 0}, "dim"), ({"lr": -1.0}, "lr"),
                     ({"qat_epochs": -1}, "qat_epochs"), ({"projector": "nope"}, "projector"),
                     ({"scale": "nope"}, "scale"), ({"symbol_code": "nope"}, "symbol_code"),
                     ({"progressive_stages": 0}, "progressive_stages"),
                     ({"progressive_lr": 0.0}, "progressive_lr"), ({"symbol_code": "gaussian"}, "symbol_code"),
                     ({"scale_power": 2.0}, "scale_power"), ({"scale": "init", "scale_power": -1.0}, "scale_power"),
                     ({"lattice_step": "nope"}, "lattice_step"),
                     ({"lattice_step": "fixed"}, "lattice_step"), ({"step": 0.5}, "parameter 'step'"),
                     ({**FIXED, "qat_epochs": 1}, "qat_epochs"), ({**FIXED, "step": 0.0}, "parameter 'step'"),
                     ({**FIXED, "step": float("inf")}, "parameter 'step'"),
                     ({**FIXED, "step": 1e-50}, "parameter 'step'"), ({**FIXED, "levels": 0}, "lattice_step"),
                     ({**FIXED, "codebook": "learned", "symbol_code": "table"}, "lattice_step"),
                     ({"dim": None, "dims": (100,)}, "dims"), ({"dim": 64, "dims": (64,)}, "dims"),
                     ({"step_ratios": (1.0,)}, "step_ratios"), ({"dim": None, "step_ratios": (0.0,)}, "step_ratios")]:
        with pytest.raises(ConfigError, match=key):
            IntrinsicDim(**{**CLASSIC, **bad})
    IntrinsicDim()  # the defaults are consistent
    with pytest.raises(ConfigError, match="qat_epochs"):
        IntrinsicDim(qat_epochs=1)  # QAT would move the ladder's step


@pytest.mark.parametrize("retired, says", [
    ({"noise": 0.3}, "parameter 'noise' was removed: training z against uniform noise"),
    ({"rate": 0.1}, "parameter 'rate' was removed"),
    ({"progressive_branches": 3}, "parameter 'progressive_branches' was removed"),
    ({"progressive_share": 0.33}, "parameter 'progressive_share' was removed"),
    ({"rms_steps": 1.43}, "parameter 'rms_steps' was removed"),
    ({"lattice_step": "rms"}, "lattice_step = 'rms' was removed: the RMS rule did not move the frontier"),
    ({"symbol_code": "adaptive"}, "symbol_code = 'adaptive' was removed"),
    ({"init": "uniform"}, "init = 'uniform' was removed: renamed: use init = 'linear'"),
])
def test_a_removed_option_is_a_one_line_error_that_says_what_to_use(retired, says):
    with pytest.raises(ConfigError, match="^compressor 'id': " + re.escape(says)) as info:
        IntrinsicDim(**retired)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------- compressing
def test_every_parameter_trains_and_decoding_is_exact_and_deterministic():
    ctx = context()
    clear_subspace_cache()
    comp = IntrinsicDim(**FAST)
    first = comp.compress(ctx)
    clear_subspace_cache()  # train again from scratch: the same bytes
    second = comp.compress(ctx)
    assert first.message == second.message
    decoded = comp.decode(first.message, ctx.prior)
    assert models_agree(first.model, decoded, ctx.task.data.train.x[:64]) is None
    for (name, p), (_, p0) in zip(decoded.named_parameters(), ctx.make_model().named_parameters()):
        assert bool((p != p0).all()), f"{name}: a coordinate of θ did not move from θ₀"
    extras = first.extras
    assert first.stats["n_params_kept"] == 40 and extras["D"] == sum(p.numel() for p in decoded.parameters())
    assert extras["levels_used"] <= 5 and sum(extras["counts"]) == 40
    assert extras["section_bits"]["rest"] == 0  # an MLP has no buffers
    assert first.bits == 8 * len(first.message) < 40 * 8  # far below 40 float16 values + codebook
    assert IntrinsicDim(**{**FAST, "projector": "fastfood"}).compress(ctx).message != first.message


def test_unquantized_levels_zero():
    ctx = context()
    comp = IntrinsicDim(**{**FAST, "levels": 0})
    out = comp.compress(ctx)
    assert out.extras["section_bits"]["z"] == 40 * 16
    assert models_agree(out.model, comp.decode(out.message, ctx.prior), ctx.task.data.train.x[:64]) is None


def test_scale_power_decodes_exactly_and_changes_the_model():
    ctx = context()
    comp = IntrinsicDim(**{**FAST, "scale": "init", "scale_power": 2.0})
    out = comp.compress(ctx)
    assert models_agree(out.model, comp.decode(out.message, ctx.prior), ctx.task.data.train.x[:64]) is None
    plain = IntrinsicDim(**{**FAST, "scale": "init"})  # the same message under power 1: another model
    assert models_agree(out.model, plain.decode(out.message, ctx.prior), ctx.task.data.train.x[:64]) is not None


def test_batchnorm_parameters_are_in_theta_and_statistics_in_the_message():
    ctx = context("tiny-bn", BN_TASK)
    comp = IntrinsicDim(**{**FAST, "projector": "sparse", "scale": "init"})
    space = Subspace(ctx.make_model(), "kron", 10, 0, ctx.device)
    assert any(name.endswith(".weight") and space.shapes[i] == (2,) for i, name in enumerate(space.names))
    assert space.D == sum(p.numel() for p in ctx.make_model().parameters())
    out = comp.compress(ctx)
    n_stats = sum(b.numel() for n, b in out.model.named_buffers() if b.is_floating_point())
    assert out.extras["section_bits"]["rest"] == 16 * n_stats > 0
    decoded = comp.decode(out.message, ctx.prior)
    assert models_agree(out.model, decoded, ctx.task.data.train.x[:64]) is None
    assert not torch.equal(decoded.get_buffer("1.running_var"), torch.ones(2))  # recomputed, not initial
    # recalibration gives the statistics of the training set under the final weights
    again = comp.decode(out.message, ctx.prior)
    recalibrate_batchnorm(again, ctx.task.data.train, 128, ctx.device)
    assert torch.allclose(again.get_buffer("1.running_mean"), decoded.get_buffer("1.running_mean"), atol=1e-3)


def test_gptq_and_the_gaussian_code_decode_exactly_into_a_fresh_prior():
    """The quantization-side options change what is sent, never what the decoder can rebuild."""
    ctx = context()
    plain = IntrinsicDim(**FAST).compress(ctx)
    for extra in ({"quantizer": "gptq", "hessian_examples": 300},
                  {"quantizer": "gptq", "hessian_examples": 300, "qat_epochs": 0},
                  {"codebook": "lattice", "quantizer": "gptq", "hessian_examples": 300},
                  {"codebook": "lattice", "quantizer": "gptq", "hessian_examples": 300, "symbol_code": "gaussian"},
                  {"codebook": "lattice", "quantizer": "progressive", "progressive_stages": 2, "qat_epochs": 0}):
        comp = IntrinsicDim(**{**FAST, **extra})
        out = comp.compress(ctx)
        decoded = IntrinsicDim(**{**FAST, **extra}).decode(out.message, context().prior)
        assert models_agree(out.model, decoded, ctx.task.data.train.x[:256]) is None, extra
        assert out.message != plain.message, extra
        if extra.get("symbol_code") == "gaussian":  # the same symbols as under the table, other bytes
            table = IntrinsicDim(**{**FAST, **extra, "symbol_code": "table"}).compress(ctx)
            assert out.extras["counts"] == table.extras["counts"]
            assert out.extras["section_bits"]["z"] != table.extras["section_bits"]["z"]
            wrong = IntrinsicDim(**{**FAST, **extra, "symbol_code": "table"})  # decode must read the width
            try:
                misread = wrong.decode(out.message, context().prior)
            except coding.CorruptMessage:
                pass
            else:
                assert models_agree(out.model, misread, ctx.task.data.train.x[:256]) is not None
        if extra.get("codebook") == "lattice":  # one float16 step; the levels are its multiples
            assert out.extras["section_bits"]["codebook"] == 16
            cb = np.array(out.extras["codebook"])
            assert len(cb) == 5 and np.allclose(np.diff(cb), cb[3] - cb[2]) and cb[2] == 0


@pytest.mark.parametrize("quantizer", ["gptq", "progressive"])
def test_quantizer_loses_less_training_loss_than_nearest_rounding(quantizer):
    ctx = context()
    losses = {}
    for name in ("nearest", quantizer):
        comp = IntrinsicDim(**{**FAST, "levels": 3, "qat_epochs": 0, "quantizer": name})
        out = comp.compress(ctx)
        losses[name] = float(torch.nn.functional.cross_entropy(
            out.model(ctx.task.data.train.x), ctx.task.data.train.y))
    assert losses[quantizer] < losses["nearest"], losses


def test_progressive_shares_by_hand():
    assert progressive_fractions(3) == [0.5, 0.75, 0.875, 1.0]
    assert progressive_fractions(1) == [0.5, 1.0]


def progressive_setup():
    ctx = context()
    comp = IntrinsicDim(**FAST)
    space = comp.space(ctx, 40)
    z, _ = comp.trained_z(space, ctx)
    codebook = torch.linspace(-1, 1, 3) * float(z.abs().max())
    return ctx, space, z, codebook


def test_progressive_without_retraining_is_nearest_rounding():
    """With nothing retrained every stage fixes coordinates of the same z: the result is plain rounding."""
    ctx, space, z, codebook = progressive_setup()
    out, history = progressive_quantize(space, z, codebook, ctx.task.data.train, stages=3, epochs=0, lr=0.01,
                                        batch_size=64, generator=torch.Generator().manual_seed(0),
                                        task_type="classification")
    assert history == []
    assert torch.equal(out, codebook[nearest_level(z, codebook)])


def test_progressive_fixes_every_coordinate_to_a_level_and_retrains_the_rest():
    ctx, space, z, codebook = progressive_setup()
    share = 0.5
    out, history = progressive_quantize(space, z, codebook, ctx.task.data.train, stages=2, epochs=2, lr=0.3,
                                        batch_size=64, generator=torch.Generator().manual_seed(0),
                                        task_type="classification")
    assert len(history) == 2 and all(math.isfinite(h["loss"]) for h in history)
    assert bool(torch.isin(out, codebook).all())
    # the first share is fixed before any retraining, nearest the levels first: those coordinates are rounded
    gap = (z - codebook[nearest_level(z, codebook)]).abs()
    first = torch.argsort(gap, stable=True)[: round(space.d * share)]
    assert torch.equal(out[first], codebook[nearest_level(z, codebook)][first])
    # the rest moved while the first share was held: some land on another level than plain rounding's
    assert not torch.equal(out, codebook[nearest_level(z, codebook)])


def test_weight_decay_is_a_gaussian_prior_on_z_that_shrinks_it_and_keys_its_cache():
    """weight_decay pulls z towards 0 during subspace training (the code's Gaussian prior, as a penalty: at
    a fixed lattice step a smaller z costs fewer bits); it trains its own cached z."""
    ctx = context()
    plain, decayed = IntrinsicDim(**FAST), IntrinsicDim(**{**FAST, "weight_decay": 0.05})
    assert plain.training_config(ctx, 40) != decayed.training_config(ctx, 40)
    z0, _ = plain.trained_z(plain.space(ctx, 40), ctx)
    z1, _ = decayed.trained_z(decayed.space(ctx, 40), ctx)
    assert float(z1.pow(2).mean()) < 0.8 * float(z0.pow(2).mean())


@pytest.mark.parametrize("layout", ["sections", "implied"])
def test_fixed_lattice_step_is_not_sent_and_decodes_exactly(layout):
    """lattice_step = fixed: the step is a hyperparameter, so the codebook section is empty and the decoder
    takes the step from its own parameters; a decoder with another step gets another model."""
    ctx = context()
    step = 0.3141592653589793  # set before the run (a hyperparameter), and not a float16
    assert float(np.float16(step)) != step
    extra = {"codebook": "lattice", "quantizer": "progressive", "progressive_stages": 2, "qat_epochs": 0,
             "symbol_code": "gaussian", "levels": 15, "lattice_step": "fixed", "step": step, "layout": layout}
    out = IntrinsicDim(**{**FAST, **extra}).compress(ctx)
    assert out.extras["section_bits"]["codebook"] == 0
    assert out.extras["codebook"] == pytest.approx(((np.arange(15) - 7) * np.float32(step)).tolist(), rel=1e-6)
    fresh = context()
    decoded = IntrinsicDim(**{**FAST, **extra}).decode(out.message, fresh.prior)
    assert models_agree(out.model, decoded, ctx.task.data.train.x[:256]) is None
    other = IntrinsicDim(**{**FAST, **extra, "step": step * 1.01}).decode(out.message, fresh.prior)
    assert models_agree(out.model, other, ctx.task.data.train.x[:256]) is not None
    if layout == "sections":  # a step smuggled into the message is refused, not silently used
        sections = coding.unpack_sections(out.message, ["z", "codebook", "rest"])
        smuggled = coding.pack_sections({**sections, "codebook": coding.encode_floats(np.ones(1, np.float32),
                                                                                    "float16")})
        with pytest.raises(coding.CorruptMessage, match="step"):
            IntrinsicDim(**{**FAST, **extra}).decode(smuggled, fresh.prior)


@pytest.mark.parametrize("task, symbol_code, levels", [("digits-mlp", "gaussian", 5), ("tiny-bn", "table", 5),
                                                        ("tiny-bn", "gaussian", 0)])
def test_implied_layout_is_the_sections_without_their_header_and_decodes_exactly(task, symbol_code, levels):
    """layout = implied: the same three sections back to back, nothing else (the header's bytes saved), and
    a fresh prior decodes them: the codebook's and the rest's lengths come from the prior, z is the rest."""
    ctx = context() if task == "digits-mlp" else context(task, BN_TASK)
    extra = {"codebook": "lattice", "quantizer": "progressive", "progressive_stages": 2, "qat_epochs": 0,
             "symbol_code": symbol_code, "levels": levels}
    if levels == 0:
        extra = {"levels": 0, "qat_epochs": 0}
    framed = IntrinsicDim(**{**FAST, **extra}).compress(ctx)
    bare = IntrinsicDim(**{**FAST, **extra, "layout": "implied"}).compress(ctx)
    sections = coding.unpack_sections(framed.message, ["z", "codebook", "rest"])
    assert bare.message == sections["z"] + sections["codebook"] + sections["rest"]
    header, _ = coding.section_lengths(framed.message, 3)
    assert header >= 1 and len(bare.message) == len(framed.message) - header
    if task == "tiny-bn":
        assert len(sections["rest"]) > 0  # BatchNorm statistics: the decoder must know their length
    assert bare.sections is None and bare.extras["section_bits"] == framed.extras["section_bits"]
    fresh = context() if task == "digits-mlp" else context(task, BN_TASK)
    decoded = IntrinsicDim(**{**FAST, **extra, "layout": "implied"}).decode(bare.message, fresh.prior)
    assert models_agree(bare.model, decoded, ctx.task.data.train.x[:256]) is None
    for broken in (bare.message[:-1], bare.message + b"\x01", bare.message[1:]):
        try:
            wrong = IntrinsicDim(**{**FAST, **extra, "layout": "implied"}).decode(broken, fresh.prior)
        except coding.CorruptMessage:
            continue
        assert models_agree(bare.model, wrong, ctx.task.data.train.x[:256]) is not None
    with pytest.raises(ConfigError, match="layout"):
        IntrinsicDim(**{**FAST, "layout": "implied"})  # a learned codebook's length is not known


def test_corrupted_messages_fail_cleanly():
    ctx = context()
    comp = IntrinsicDim(**FAST)
    message = comp.compress(ctx).message
    with pytest.raises(coding.CorruptMessage):
        comp.decode(message[:-3], ctx.prior)
    sections = coding.unpack_sections(message, ["z", "codebook", "rest"])
    short = coding.pack_sections({**sections, "z": coding.encode_symbols(np.zeros(39, np.int64))})
    with pytest.raises(coding.CorruptMessage, match="39 symbols"):
        comp.decode(short, ctx.prior)
    big = coding.pack_sections({**sections, "z": coding.encode_symbols(np.full(40, 9, np.int64))})
    with pytest.raises(coding.CorruptMessage, match="codebook"):
        comp.decode(big, ctx.prior)


# -------------------------------------------------------------------------------- the runner
def test_through_the_runner_and_verify(workspace, capsys):
    argv = ["run", "--compressors", "id", "--bounds", "occam,catoni", "--no-leaderboard",
            "--set", "compressor.id.dim=30", "--set", "compressor.id.epochs=2", "--set", "compressor.id.lr=0.05",
            "--set", "compressor.id.levels=[3,6]", "--set", "compressor.id.progressive_stages=2",
            "--set", "compressor.id.progressive_epochs=1"]
    assert main(argv) == 0
    df = pd.read_parquet(workspace / "results")
    assert len(df) == 4 and (df["status"] == "ok").all()
    assert paying.charged_as_coded(df, workspace / "results") and df["config_bits"].nunique() == 2  # levels is paid
    assert (df["error_bound"] >= df["test_err"]).all() and (df["error_bound"] >= df["train_err"]).all()
    assert (df["n_params_kept"] == 30).all()
    for _, row in df.iterrows():  # KL, length code, bits and bound recomputed independently
        oracle.check_row(row)
    stats = [json.loads(e)["stats"] for e in df["extras"]]
    assert all(s["n_params_kept"] == 30 for s in stats)
    capsys.readouterr()
    assert main(["verify", *df["cell_id"]]) == 0
    out = capsys.readouterr().out
    assert out.count("AGREES") == 4 and "DIFFERS" not in out


# ----------------------------------------------------------------------- the encoder's own choices
SEARCH = {"epochs": 3, "progressive_stages": 2, "progressive_epochs": 1, "levels": 9}


def test_the_ladders_are_fixed_exact_and_fit_the_header_byte():
    assert DIM_LADDER == (32, 64, 128, 256, 512, 1024, 2048, 4096)  # 3 bits
    assert len(STEP_LADDER) == 32 and STEP_LADDER[20] == 1.0  # 5 bits; 2^((k - 20)/4)
    for k in range(28):  # an octave is an exact doubling: every step is a literal times a power of two
        assert STEP_LADDER[k + 4] == 2 * STEP_LADDER[k]
    for k in range(31):
        assert STEP_LADDER[k + 1] / STEP_LADDER[k] == pytest.approx(2 ** 0.25, rel=1e-15)


def test_the_rules_in_n_by_hand():
    # 4·√n: 146.8 at n = 1 347 (nearest 128), 979.8 at n = 60 000 (1 024); above 20 000 one neighbour only
    assert auto_dims(1347, 2410) == (64, 128, 256)
    assert auto_dims(1347, 200) == (64, 128)  # never above D
    assert auto_dims(60000, 431_080) == (512, 1024)
    assert auto_dims(10, 10) == (32,)
    # 4 000 steps or 40 epochs, whichever is more: 22 batches of 64 at n = 1 347 -> ceil(4000/22) = 182
    assert auto_epochs(1347, 64) == 182 and auto_epochs(60000, 128) == 40
    # the default search goes one rung up while the largest d tried wins, where tries are cheap
    tried = dict.fromkeys((64, 128, 256))
    comp = IntrinsicDim()
    assert comp.extends(256, tried, 1347, 2410)
    assert not comp.extends(128, tried, 1347, 2410)  # the top did not win
    assert not comp.extends(256, tried, 30000, 10**6)  # n above SMALL_N: each try costs minutes
    assert not comp.extends(256, tried, 1347, 500)  # 512 > D
    assert not comp.extends(4096, {4096: None}, 1347, 10**6)  # the ladder's top
    assert not IntrinsicDim(dims=(64, 128, 256)).extends(256, tried, 1347, 2410)  # set by hand


def test_the_encoder_picks_d_and_step_by_the_certificate_and_the_header_carries_them():
    ctx = context()
    comp = IntrinsicDim(dims=(32, 64), step_ratios=(0.7, 1.4), **SEARCH)
    out = comp.compress(ctx)
    trials = out.extras["search"]
    assert [t["d"] for t in trials] == [32, 64, trials[2]["d"]] and len(trials) == 3
    n = len(ctx.task.data.train)
    for t in trials:  # each score is the Occam certificate of that message, recomputed by the oracle
        kl = (t["message_bits"] + oracle.elias_delta_len(t["message_bits"] + 1)) * math.log(2)
        assert t["score"] == pytest.approx(float(oracle.binomial_bound(t["train_errors"], n, kl, 0.05)), rel=1e-5)
    won = min(trials, key=lambda t: (t["score"], t["message_bits"]))
    assert out.extras["chosen"] == {"d": won["d"], "step": won["step"]} and 8 * len(out.message) == won["message_bits"]
    assert ctx.evaluate(out.model, ctx.task.data.train) * n == pytest.approx(won["train_errors"])
    header = out.message[0]  # d's index in the top 3 bits, the step's in the low 5
    assert DIM_LADDER[header >> 5] == won["d"] and STEP_LADDER[header & 31] == won["step"]
    fresh = context()
    decoded = IntrinsicDim(**SEARCH).decode(out.message, fresh.prior)  # the candidates are encoder-side
    assert models_agree(out.model, decoded, ctx.task.data.train.x[:256]) is None
    assert sum(p.numel() for p in out.model.parameters()) == out.extras["D"]
    for other in (header ^ 0b00100000, header ^ 0b00000001):  # another d, another step: another model
        try:
            wrong = IntrinsicDim(**SEARCH).decode(bytes([other]) + out.message[1:], fresh.prior)
        except coding.CorruptMessage:
            continue
        assert models_agree(out.model, wrong, ctx.task.data.train.x[:256]) is not None


def test_a_hand_set_dim_fixes_it_and_leaves_its_header_field_zero():
    ctx = context()
    comp = IntrinsicDim(dim=40, step_ratios=(1.0,), **SEARCH)
    out = comp.compress(ctx)
    assert out.message[0] >> 5 == 0 and out.extras["d"] == 40 and "search" not in out.extras
    assert STEP_LADDER[out.message[0] & 31] == out.extras["header"]["step"]
    with pytest.raises(coding.CorruptMessage, match="d in a message"):
        comp.decode(bytes([out.message[0] | 0b00100000]) + out.message[1:], ctx.prior)
    fixed = IntrinsicDim(dim=40, lattice_step="fixed", step=0.5, **SEARCH).compress(ctx)
    header_free = IntrinsicDim(dim=40, lattice_step="fixed", step=0.5, **SEARCH)
    assert not header_free.has_header and fixed.extras["section_bits"].get("header") is None
    assert models_agree(fixed.model, header_free.decode(fixed.message, ctx.prior), ctx.task.data.train.x[:64]) is None


def test_unreachable_note_by_hand():
    def trial(bits, score):
        return ladders.Trial({"d": 32}, bits, 0, score)
    assert ladders.unreachable_note([trial(41_000, 1.0), trial(52_000, 1.0)], 1347) == (
        "smallest message 41 kbit for n = 1 347: no candidate's certificate falls below 100 %")
    assert ladders.unreachable_note([trial(800, 0.99996)], 60000).startswith("smallest message 800 bits for n = 60 000")
    assert ladders.unreachable_note([trial(800, 0.9999)], 60000) is None  # 99.99 %: not vacuous
    assert ladders.unreachable_note([trial(41_000, 1.0), trial(900, 0.99)], 1347) is None
    assert ladders.best_trial([trial(10, 0.5), trial(5, 0.5), trial(1, 0.6)]).message_bits == 5
