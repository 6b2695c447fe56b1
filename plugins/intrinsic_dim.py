"""Compressor ``id``: intrinsic-dimension subspace training, quantization and arithmetic coding (seed 000).

θ = θ₀ + P·z with θ₀ the run's seeded initialization and P a seeded random projection (both prior
knowledge: rebuilt by the decoder, never sent). z ∈ R^d is trained from 0 on the training set, then
quantized to
``levels`` learned levels: each coordinate to its nearest level, or with ``quantizer = "gptq"`` in order of
curvature, correcting the rest for each rounding error (bench.kit.gptq), or with ``quantizer =
"progressive"`` a growing share at a time, retraining the rest in between, then a few epochs of
quantization-aware training (straight-through gradients, learned codebook). The message is::

    z         the level of every coordinate, entropy-coded under its own counts (bench.kit.coding), or
              with ``symbol_code = "gaussian"`` (lattice only) under a discrete Gaussian whose width is one
              byte;
              with levels = 0, z itself at ``z_precision``
    codebook  the levels actually used, at ``codebook_precision``; for a lattice one step, and with
              ``lattice_step = "fixed"`` nothing (the step is a parameter, so the decoder has it)
    rest      the floating buffers the model needs (BatchNorm running statistics, recomputed on the
              training set for the final weights) at ``rest_precision``

With ``layout = "sections"`` the three are packed behind a header of their lengths
(``bench.kit.coding.pack_sections``). With ``layout = "implied"`` (lattice or unquantized only) there is no
header: the decoder knows the codebook's length (one step, or nothing: unquantized or a fixed step) and
the rest's (the model's float buffers), and z's section is whatever those two leave (an unquantized z must
then be exactly d values).
That saves the header's three bytes, about a hundredth of the data-free frontier's message.

The last epoch is always kept (nothing is selected by any error). Subspace training depends only on what
``IntrinsicDim.training_config`` lists (task, seed, dim, projector and its scale, the optimizer's settings,
weight decay), so grid points that differ only in the quantization reuse it: it is cached on disk
under ``$BENCH_CACHE_DIR/id-subspace``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from bench.kit import coding
from bench.api import Between, Compressed, Compressor, Ge, Gt, Lt, Prior, RunContext, hookimpl, stream_seed
from bench.kit.gptq import fisher_z, gptq_quantize
from bench.kit.projectors import PROJECTORS
from bench.kit.subspace import (Subspace, float_buffers, init_codebook, assign_levels, lattice_levels,
                            progressive_quantize, quantize_aware_train, recalibrate_batchnorm, set_float_buffers,
                            train_subspace)

Precision = Literal["float16", "float32"]
SECTIONS = ("z", "codebook", "rest")
SUBSPACE_CODE_VERSION = "2"  # bump when subspace training changes the z it produces (2: sparse rows)


@dataclass(frozen=True)
class IntrinsicDimParams:
    dim: Annotated[int, Ge(1)] = 250  # d, the dimension of the subspace z trains in
    projector: Literal["dense", "sparse", "fastfood", "kron"] = "kron"
    # the seeded random projection P (all rebuilt from the seed, never sent)
    scale: Literal["none", "init"] = "none"  # init: P·z's rows scaled by each tensor's RMS at θ₀
    scale_power: Annotated[float, Ge(0)] = 1.0  # init: the RMS raised to this power (> 1: more on small fan-in tensors)
    levels: Annotated[int, Between(0, 65536, closed=True)] = 7  # 0: no quantization (z stored at z_precision)
    init: Literal["linear", "kmeans++"] = "linear"  # the learned codebook's start: evenly spaced bins, or k-means
    optimizer: Literal["adam", "adamw", "sgd"] | None = None  # None: the task's recipe
    lr: Annotated[float | None, Gt(0)] = 0.1  # for z (unit-norm columns need far larger steps than θ); None: the recipe's
    epochs: Annotated[int | None, Ge(0)] = None  # None: the task's recipe
    batch_size: Annotated[int | None, Ge(1)] = None  # None: the task's recipe
    schedule: Literal["constant", "cosine"] | None = None  # None: the task's recipe
    weight_decay: Annotated[float, Ge(0)] = 0.0  # on z: a Gaussian prior on z, the one the symbol code assumes
    qat_epochs: Annotated[int, Ge(0)] = 2
    # quantization-aware training of z and the codebook after the levels are chosen
    qat_lr: Annotated[float, Gt(0)] = 3e-3  # Adam's rate for quantization-aware training
    quantizer: Literal["nearest", "gptq", "progressive"] = "nearest"  # gptq: second-order, error-compensating
    # level choice (Frantar et al.); progressive: fix a growing share of z to levels, retraining the rest (INQ)
    progressive_stages: Annotated[int, Ge(1)] = 4  # progressive: stages before the rest is rounded (1/2, 3/4, ...)
    progressive_epochs: Annotated[int, Ge(0)] = 1  # progressive: retraining epochs per stage
    progressive_lr: Annotated[float, Gt(0)] = 0.01  # progressive: Adam's rate for the free coordinates (cosine)
    hessian_examples: Annotated[int, Ge(1)] = 8192  # gptq: training points of the Fisher estimate
    damp: Annotated[float, Ge(0)] = 0.01  # gptq: fraction of the mean curvature added to H's diagonal
    origin: Literal["init", "prior"] = "init"  # θ₀: the seeded initialization, or the data-dependent prior's model
    codebook: Literal["learned", "lattice"] = "learned"  # lattice: evenly spaced levels, at most the step is sent
    lattice_step: Literal["max", "fixed"] = "max"  # lattice: step 2·max|z|/levels (sent), or `step` itself: a
    # parameter, so the decoder has it and nothing is sent
    step: Annotated[float | None, Gt(0)] = None  # lattice_step = fixed: the step (in z's units); paid for in every
    # certificate's configuration bits, like every decoder-side parameter
    symbol_code: Literal["table", "gaussian"] = "table"  # gaussian: a discrete Gaussian of one byte's width (lattice only)
    codebook_precision: Precision = "float16"  # how the codebook (or the lattice step) travels in the message
    z_precision: Precision = "float16"  # how z travels when levels = 0
    rest_precision: Precision = "float16"  # how the BatchNorm statistics travel in the message
    layout: Literal["sections", "implied"] = "sections"  # implied: no header of section lengths (the decoder
    # knows them: lattice or unquantized only)

    #: Options that were tried and did not help (docs/id.md has the numbers): setting one is an error.
    RETIRED: ClassVar[dict[str, str]] = {
        "noise": "training z against uniform noise cost more training error than it saved bits (docs/id.md)",
        "rate": "entropy-constrained levels cost training error without saving bits; use symbol_code = "
                "'gaussian' with a fixed lattice step (docs/id.md)",
        "progressive_branches": "the best-of-B branch per stage did not carry to the end (docs/id.md)",
        "progressive_share": "fixing a third per stage did no better than half (docs/id.md)",
        "rms_steps": "lattice_step = 'rms' was removed; use lattice_step = 'fixed' with a step (docs/id.md)",
        "lattice_step=rms": "the RMS rule did not move the frontier; use lattice_step = 'fixed' with a step "
                            "(docs/id.md)",
        "symbol_code=adaptive": "Laplace's rule coded no shorter than the table; use 'table' or 'gaussian' "
                                "(docs/id.md)",
        "init=uniform": "renamed: use init = 'linear' (the same evenly spaced start)",
        "init=kmeans": "renamed: use init = 'kmeans++' (the same k-means, k-means++ seeding)",
    }

    def validate(self) -> None:  # what a range cannot say
        if self.projector not in PROJECTORS:
            raise ValueError(f"parameter 'projector' must be one of {', '.join(PROJECTORS)}")
        if self.levels == 1:
            raise ValueError("parameter 'levels' must be 0 (no quantization) or in [2, 65536]")
        if self.symbol_code == "gaussian" and self.codebook != "lattice":
            raise ValueError("parameter 'symbol_code' = 'gaussian' needs codebook = 'lattice' (evenly spaced levels)")
        if self.lattice_step == "fixed" and (self.codebook != "lattice" or self.step is None or self.levels == 0):
            raise ValueError("parameter 'lattice_step' = 'fixed' needs codebook = 'lattice', levels > 0 and a 'step'")
        if self.step is not None:  # both sides build the levels in float32: they must exist there
            with np.errstate(over="ignore"):
                step32 = np.float32(self.step)
                top = step32 * np.float32(max(self.levels, 2))
            if not (step32 > 0 and np.isfinite(top)):
                raise ValueError("parameter 'step' must be a positive float32 whose levels stay finite")
        if self.step is not None and self.lattice_step != "fixed":
            raise ValueError("parameter 'step' applies only with lattice_step = 'fixed'")
        if self.lattice_step == "fixed" and self.qat_epochs > 0:
            raise ValueError("parameter 'qat_epochs' must be 0 with lattice_step = 'fixed' (QAT would move the "
                             "step, which the decoder takes from its parameters)")
        if self.layout == "implied" and self.levels > 0 and self.codebook != "lattice":
            raise ValueError("parameter 'layout' = 'implied' needs codebook = 'lattice' or levels = 0 "
                             "(a learned codebook's length is not known to the decoder)")
        if self.scale_power != 1.0 and self.scale != "init":
            raise ValueError("parameter 'scale_power' applies only with scale = 'init'")


def lattice_step(z: torch.Tensor, p: IntrinsicDimParams) -> float:
    """The lattice's step before it is rounded to the sent precision (a fixed step is never sent, so never
    rounded: compress and decode both use the parameter itself)."""
    if p.lattice_step == "fixed":
        return float(p.step)
    return 2 * float(z.abs().max()) / p.levels


def projector_seed(prior: Prior | RunContext) -> int:
    return stream_seed(prior.seed, "id.projector")


class IntrinsicDim(Compressor):
    # named random streams at the offsets they had before plugins declared them (same messages)
    streams: ClassVar[dict[str, int]] = {"id.subspace": 1, "id.qat": 2, "id.projector": 17}
    name: ClassVar[str] = "id"
    version: ClassVar[str] = "0.3.0"  # 0.3: the options that lost retired (same messages for the rest)
    description: ClassVar[str] = ("intrinsic-dimension subspace training θ₀+P·z, quantization-aware "
                                  "training of z and arithmetic coding (seed 000)")
    Params = IntrinsicDimParams
    # What decode rebuilds θ₀ + P·z and reads the message with; training, quantizer and rates are
    # encoder-side (free): the message is decoded the same whichever found it.
    decoder_params: ClassVar[tuple[str, ...]] = (
        "dim", "projector", "scale", "scale_power", "origin", "levels", "codebook", "lattice_step", "step",
        "symbol_code", "layout", "codebook_precision", "z_precision", "rest_precision")

    # ------------------------------------------------------------------------------ training
    def training_config(self, ctx: RunContext) -> dict:
        """Everything that determines the trained z (the key of its cache)."""
        p, r = self.params, ctx.task.recipe
        return {
            "task": ctx.task.config, "seed": ctx.seed, "device": ctx.device.type, "dim": p.dim,
            "projector": p.projector, **({"scale": p.scale} if p.scale != "none" else {}),
            **({"scale_power": p.scale_power} if p.scale_power != 1.0 else {}),  # ≠ 1 only with init
            "optimizer": p.optimizer or r.optimizer,
            "lr": p.lr if p.lr is not None else r.lr,
            "epochs": p.epochs if p.epochs is not None else r.epochs,
            "batch_size": p.batch_size or r.batch_size, "schedule": p.schedule or r.schedule,
            "weight_decay": p.weight_decay, "momentum": r.momentum,
            "code": SUBSPACE_CODE_VERSION, "torch": torch.__version__.split("+")[0],
            **({"origin": hashlib.sha256(ctx.prior.spec.prior_state).hexdigest()} if p.origin == "prior" else {}),
        }

    def space(self, prior: Prior | RunContext) -> Subspace:
        """θ₀ + P·z: both from the prior (the seeded initialization, or with ``origin = prior`` the prior
        model trained on ``S_prior``, and the seeded projector)."""
        p = self.params
        source = prior if isinstance(prior, Prior) else prior.prior
        start = source.prior_model() if p.origin == "prior" else source.make_model()
        return Subspace(start, p.projector, p.dim, projector_seed(prior), prior.device, p.scale, p.scale_power)

    def trained_z(self, space: Subspace, ctx: RunContext) -> tuple[torch.Tensor, dict]:
        """z after subspace training: from the cache, or trained now (once, even across workers)."""
        cfg = self.training_config(ctx)
        cache = ctx.cache("id-subspace")
        key = cache.key(cfg)
        holder = _TrainedZ(space.d)
        with cache.lock(key):
            if cache.load(key, holder):
                return holder.z.to(ctx.device), {**holder.stats(), "cached": True}
            z, stats = train_subspace(
                space, ctx.task.data.train, optimizer=cfg["optimizer"], lr=cfg["lr"], epochs=cfg["epochs"],
                batch_size=cfg["batch_size"], weight_decay=cfg["weight_decay"], momentum=cfg["momentum"],
                schedule=cfg["schedule"], generator=ctx.generator("id.subspace"),
                task_type=ctx.task.data.task_type, progress=ctx.progress)
            holder.z.copy_(z.cpu())
            holder.last.copy_(torch.tensor([stats["loss"], stats["err"]], dtype=torch.float64))
            cache.save(key, holder, cfg)
        return z, {**stats, "cached": False}

    # ------------------------------------------------------------------------------ compress
    def compress(self, ctx: RunContext) -> Compressed:
        p = self.params
        space = self.space(ctx)
        z, train_stats = self.trained_z(space, ctx)
        train = ctx.task.data.train
        batch_size = self.training_config(ctx)["batch_size"]
        sections: dict[str, bytes] = {}
        extras: dict = {"D": space.D, "d": space.d, "projector_bytes": space.projector.nbytes,
                        "subspace_last_epoch": train_stats}
        if p.levels == 0:
            zq = torch.from_numpy(coding.round_to_precision(z.cpu().numpy(), p.z_precision))
            sections["z"] = coding.encode_floats(zq.numpy(), p.z_precision)
            sections["codebook"] = b""
        else:
            if p.codebook == "lattice":  # the linear init's bin centres: 2·max|z|/L apart, or the fixed step
                start = lattice_levels(lattice_step(z, p), p.levels)
            else:
                start = init_codebook(z.cpu().numpy(), p.levels, p.init, ctx.seed)
            if p.quantizer == "gptq":
                hessian = fisher_z(space, z, train, examples=p.hessian_examples, generator=ctx.generator("id.fisher"),
                                   task_type=ctx.task.data.task_type)
                z = torch.from_numpy(start[gptq_quantize(z.cpu().numpy(), hessian, start, p.damp)]).to(z.device)
            elif p.quantizer == "progressive":
                z, extras["progressive_stages"] = progressive_quantize(
                    space, z, torch.from_numpy(start), train, stages=p.progressive_stages,
                    epochs=p.progressive_epochs, lr=p.progressive_lr, batch_size=batch_size,
                    generator=ctx.generator("id.progressive"), task_type=ctx.task.data.task_type,
                    progress=ctx.progress)
            z, codebook, qat_stats = quantize_aware_train(
                space, z, torch.from_numpy(start), train, lr=p.qat_lr, epochs=p.qat_epochs,
                batch_size=batch_size, generator=ctx.generator("id.qat"),
                task_type=ctx.task.data.task_type, progress=ctx.progress, lattice=p.codebook == "lattice")
            extras["qat_last_epoch"] = qat_stats
            if p.lattice_step == "fixed":  # the decoder has the step from the prior: nothing is sent
                sent = np.zeros(0, np.float32)
                cb = torch.from_numpy(start)  # = lattice_levels(p.step, levels): what decode builds
            elif p.codebook == "lattice":  # one step is sent; every level stays in the alphabet
                sent = coding.round_to_precision(codebook[-1:].cpu().numpy() * 2 / (p.levels - 1), p.codebook_precision)
                cb = torch.from_numpy(lattice_levels(float(sent[0]), p.levels))
            else:
                cb = torch.from_numpy(coding.round_to_precision(codebook.cpu().numpy(), p.codebook_precision))
            symbols = assign_levels(z.cpu(), cb).numpy()
            if p.codebook == "learned":  # drop levels no coordinate uses; keep the order
                used = np.unique(symbols)
                symbols = np.searchsorted(used, symbols)
                cb = cb[torch.from_numpy(used)]
                sent = cb.numpy()
            zq = cb[torch.from_numpy(symbols)]
            if p.symbol_code == "gaussian":
                sections["z"] = coding.encode_symbols_gaussian(symbols, len(cb))
            else:
                sections["z"] = coding.encode_symbols(symbols, len(cb))
            sections["codebook"] = coding.encode_floats(sent, p.codebook_precision)
            counts = np.bincount(symbols, minlength=len(cb))
            extras.update(levels_used=len(cb), codebook=cb.tolist(), counts=counts.tolist(),
                          entropy_bits=float(-(counts * np.log2(np.maximum(counts, 1) / len(symbols))).sum()))
        model = space.load(zq)
        recalibrate_batchnorm(model, train, batch_size, ctx.device)
        rest = _buffer_values(model)
        rest = coding.round_to_precision(rest, p.rest_precision)
        set_float_buffers(model, rest)
        sections["rest"] = coding.encode_floats(rest, p.rest_precision)
        sections = {name: sections[name] for name in SECTIONS}
        extras["section_bits"] = {k: 8 * len(v) for k, v in sections.items()}
        implied = p.layout == "implied"  # no header: the harness cannot check a layout it cannot see
        return Compressed(message=b"".join(sections.values()) if implied else coding.pack_sections(sections),
                          model=model.eval(), layers=None, stats={"n_params_kept": space.d}, extras=extras,
                          sections=None if implied else list(extras["section_bits"].items()))

    # -------------------------------------------------------------------------------- decode
    def decode(self, message: bytes, prior: Prior) -> nn.Module:
        p = self.params
        space = self.space(prior)
        sections = self._sections(message, space)
        if p.levels == 0:
            if sections["codebook"]:
                raise coding.CorruptMessage("a codebook in an unquantized message")
            z = coding.decode_floats(sections["z"], p.z_precision)
            if z.size != space.d:
                raise coding.CorruptMessage(f"{z.size} values of z, the subspace has {space.d}")
            zq = torch.from_numpy(z)
        else:
            cb = coding.decode_floats(sections["codebook"], p.codebook_precision)
            if p.lattice_step == "fixed":
                if cb.size:
                    raise coding.CorruptMessage("a step in a message whose step the prior fixes")
                cb = lattice_levels(float(p.step), p.levels)
            elif p.codebook == "lattice":
                if cb.size != 1:
                    raise coding.CorruptMessage(f"a lattice codebook is one step, got {cb.size} values")
                cb = lattice_levels(float(cb[0]), p.levels)
            if not 1 <= cb.size <= p.levels:
                raise coding.CorruptMessage(f"{cb.size} codebook levels, at most {p.levels} allowed")
            if p.symbol_code == "gaussian":
                symbols = coding.decode_symbols_gaussian(sections["z"], space.d, cb.size)
            else:
                symbols = coding.decode_symbols(sections["z"])
            if symbols.size != space.d:
                raise coding.CorruptMessage(f"{symbols.size} symbols, the subspace has {space.d}")
            if symbols.max() >= cb.size:
                raise coding.CorruptMessage("symbols do not match the codebook")
            zq = torch.from_numpy(cb)[torch.from_numpy(symbols)]
        model = space.load(zq)
        rest = coding.decode_floats(sections["rest"], p.rest_precision)
        try:
            set_float_buffers(model, rest)
        except ValueError as exc:
            raise coding.CorruptMessage(str(exc)) from None
        return model.eval()

    def _codebook_bytes(self) -> int:
        """The codebook section's length under ``layout = implied``: one sent step, or none."""
        p = self.params
        if p.levels == 0 or p.lattice_step == "fixed":
            return 0
        return coding.PRECISIONS[p.codebook_precision].itemsize

    def _sections(self, message: bytes, space: Subspace) -> dict[str, bytes]:
        p = self.params
        if p.layout == "sections":
            return coding.unpack_sections(message, SECTIONS)
        buffers = sum(b.numel() for _, b in float_buffers(space.model))
        # z is the remainder (its decoder refuses bytes it cannot account for)
        return coding.split_known_lengths(message, {
            "z": None, "codebook": self._codebook_bytes(),
            "rest": buffers * coding.PRECISIONS[p.rest_precision].itemsize})


def _buffer_values(model: nn.Module) -> np.ndarray:
    parts = [b.detach().cpu().float().numpy().ravel() for _, b in float_buffers(model)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


class _TrainedZ(nn.Module):
    """A trained z (and its last epoch's loss and error) as a state dict, for ``ModelCache``."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.register_buffer("z", torch.zeros(d))
        self.register_buffer("last", torch.zeros(2, dtype=torch.float64))

    def stats(self) -> dict:
        return {"loss": float(self.last[0]), "err": float(self.last[1])}


@hookimpl
def bench_register_compressors(register) -> None:
    register(IntrinsicDim)
