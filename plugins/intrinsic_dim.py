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

By default the encoder chooses d and the lattice step itself (``dim = None``, ``lattice_step = "ladder"``):
d from ``DIM_LADDER`` (32 to 4 096, doubling) and the step from ``STEP_LADDER`` (2^-5 to 2^2.75 in
quarter octaves), both fixed in advance, and writes the two indices into one header byte in front of
the message (3 bits for d, 5 for the step), so the decoder reads them from the message and the message's
length pays for them. Which candidates it tries is encoder-side and free (``dims``, ``step_ratios``; by
default two or three ladder values of d around a rule in n, one more above while the largest wins, each
coded at one step relative to RMS(z), then the best d at up to two more steps); every candidate is a
whole message and the one with the lowest Occam certificate wins (``bench.kit.ladders``). Setting ``dim``
or a fixed ``step`` by hand fixes that choice (a header field it no longer needs must be zero).

Subspace training stops after its last epoch (nothing is selected by any error). It depends only on what
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

from bench.kit import coding, ladders
from bench.api import (Between, Compressed, Compressor, Ge, Gt, Prior, RunContext, best_compressed, hookimpl,
                       scored_trial, stream_seed)
from bench.kit.gptq import fisher_z, gptq_quantize
from bench.kit.projectors import PROJECTORS
from bench.kit.subspace import (Subspace, float_buffers, init_codebook, assign_levels, lattice_levels,
                            progressive_quantize, quantize_aware_train, recalibrate_batchnorm, set_float_buffers,
                            train_subspace, trainable_parameters)

Precision = Literal["float16", "float32"]
SECTIONS = ("z", "codebook", "rest")
#: The d the encoder may choose (index: the header byte's top 3 bits).
DIM_LADDER: tuple[int, ...] = tuple(32 << k for k in range(8))
#: 2^(k/4) for k = 0..3 as decimal literals (every machine parses them to the same double; pow() may differ).
_QUARTER_OCTAVES = (1.0, 1.189207115002721, 1.4142135623730951, 1.681792830507429)
#: The lattice steps the encoder may choose (index: the header byte's low 5 bits): 2^-5 to 2^2.75 in quarter
#: octaves, each a product of a literal and a power of two, so exact everywhere.
STEP_LADDER: tuple[float, ...] = tuple(_QUARTER_OCTAVES[k % 4] * 2.0 ** (k // 4 - 5) for k in range(32))
AUTO_STEPS = 4000  # epochs = None: at least this many minibatch steps of subspace training (and 40 epochs)
SMALL_N = 20_000  # step_ratios = (): up to this n three steps are tried, above it one
SUBSPACE_CODE_VERSION = "2"  # bump when subspace training changes the z it produces (2: sparse rows)


@dataclass(frozen=True)
class IntrinsicDimParams:
    dim: Annotated[int | None, Ge(1)] = None  # d, the dimension of the subspace z trains in; None: the encoder
    # picks it from DIM_LADDER and writes it into the message's header byte
    projector: Literal["dense", "sparse", "fastfood", "kron"] = "kron"
    # the seeded random projection P (all rebuilt from the seed, never sent)
    scale: Literal["none", "init"] = "init"  # init: P·z's rows scaled by each tensor's RMS at θ₀
    scale_power: Annotated[float, Ge(0)] = 2.0  # init: the RMS raised to this power (> 1: more on small fan-in tensors)
    levels: Annotated[int, Between(0, 65536, closed=True)] = 15  # 0: no quantization (z stored at z_precision);
    # with a lattice, the alphabet's size (the step sets the spacing)
    init: Literal["linear", "kmeans++"] = "linear"  # the learned codebook's start: evenly spaced bins, or k-means
    optimizer: Literal["adam", "adamw", "sgd"] | None = None  # None: the task's recipe
    lr: Annotated[float | None, Gt(0)] = 0.1  # for z (unit-norm columns need far larger steps than θ); None: the recipe's
    epochs: Annotated[int | None, Ge(0)] = None  # None: enough for AUTO_STEPS minibatch steps, at least 40
    batch_size: Annotated[int | None, Ge(1)] = None  # None: the task's recipe
    schedule: Literal["constant", "cosine"] | None = None  # None: the task's recipe
    weight_decay: Annotated[float, Ge(0)] = 1e-4  # on z: a Gaussian prior on z, the one the symbol code assumes
    qat_epochs: Annotated[int, Ge(0)] = 0
    # quantization-aware training of z and the codebook after the levels are chosen (moves the step: not
    # with a step from the ladder or a fixed one)
    qat_lr: Annotated[float, Gt(0)] = 3e-3  # Adam's rate for quantization-aware training
    quantizer: Literal["nearest", "gptq", "progressive"] = "progressive"  # gptq: second-order, error-compensating
    # level choice (Frantar et al.); progressive: fix a growing share of z to levels, retraining the rest (INQ)
    progressive_stages: Annotated[int, Ge(1)] = 7  # progressive: stages before the rest is rounded (1/2, 3/4, ...)
    progressive_epochs: Annotated[int, Ge(0)] = 2  # progressive: retraining epochs per stage
    progressive_lr: Annotated[float, Gt(0)] = 0.03  # progressive: Adam's rate for the free coordinates (cosine)
    hessian_examples: Annotated[int, Ge(1)] = 8192  # gptq: training points of the Fisher estimate
    damp: Annotated[float, Ge(0)] = 0.01  # gptq: fraction of the mean curvature added to H's diagonal
    origin: Literal["init", "prior"] = "init"  # θ₀: the seeded initialization, or the data-dependent prior's model
    codebook: Literal["learned", "lattice"] = "lattice"  # lattice: evenly spaced levels (the step: lattice_step)
    lattice_step: Literal["ladder", "max", "fixed"] = "ladder"  # ladder: one of STEP_LADDER, chosen by the
    # encoder, its index in the header byte; max: 2·max|z|/levels (sent at codebook_precision); fixed: `step`
    # itself, a parameter, so the decoder has it and nothing is sent
    step: Annotated[float | None, Gt(0)] = None  # lattice_step = fixed: the step (in z's units); paid for in every
    # certificate's configuration bits, like every decoder-side parameter
    symbol_code: Literal["table", "gaussian"] = "gaussian"  # gaussian: a discrete Gaussian of one byte's width
    # (lattice only); table: the counts of every level, then the symbols under them
    codebook_precision: Precision = "float16"  # how the codebook (or the lattice step) travels in the message
    z_precision: Precision = "float16"  # how z travels when levels = 0
    rest_precision: Precision = "float16"  # how the BatchNorm statistics travel in the message
    layout: Literal["sections", "implied"] = "implied"  # implied: no header of section lengths (the decoder
    # knows them: lattice or unquantized only)
    dims: Annotated[tuple[int, ...], Ge(1)] = ()  # dim = None: the d the encoder tries (each on DIM_LADDER);
    # (): three around the rule in n (auto_dims)
    step_ratios: Annotated[tuple[float, ...], Gt(0)] = ()  # lattice_step = ladder: the steps tried, as multiples
    # of RMS(z), each taken to the nearest ladder step; (): 0.7, 1.0 and 1.4 when n <= 20 000, else 0.85

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
        if self.codebook == "learned" and self.levels > 0 and (self.symbol_code, self.layout, self.lattice_step) != (
                "table", "sections", "max"):
            raise ValueError("parameter 'codebook' = 'learned' needs symbol_code = 'table', layout = 'sections' and "
                             "lattice_step = 'max' (a learned codebook's levels are sent, with their counts)")
        if self.lattice_step in ("fixed", "ladder") and self.levels == 0:
            raise ValueError(f"parameter 'lattice_step' = '{self.lattice_step}' needs levels > 0 (or set "
                             "lattice_step = 'max' for an unquantized z)")
        if self.lattice_step == "fixed" and self.step is None:
            raise ValueError("parameter 'lattice_step' = 'fixed' needs a 'step'")
        if self.step is not None:  # both sides build the levels in float32: they must exist there
            with np.errstate(over="ignore"):
                step32 = np.float32(self.step)
                top = step32 * np.float32(max(self.levels, 2))
            if not (step32 > 0 and np.isfinite(top)):
                raise ValueError("parameter 'step' must be a positive float32 whose levels stay finite")
        if self.step is not None and self.lattice_step != "fixed":
            raise ValueError("parameter 'step' applies only with lattice_step = 'fixed'")
        if self.lattice_step in ("fixed", "ladder") and self.qat_epochs > 0:
            raise ValueError(f"parameter 'qat_epochs' must be 0 with lattice_step = '{self.lattice_step}' (QAT would "
                             "move the step, which the decoder takes from the header or its parameters)")
        if self.layout == "implied" and self.levels > 0 and self.codebook != "lattice":
            raise ValueError("parameter 'layout' = 'implied' needs codebook = 'lattice' or levels = 0 "
                             "(a learned codebook's length is not known to the decoder)")
        if self.scale_power != 1.0 and self.scale != "init":
            raise ValueError("parameter 'scale_power' applies only with scale = 'init' (set scale_power = 1.0 "
                             "with scale = 'none')")
        if self.dims and self.dim is not None:
            raise ValueError("parameter 'dims' applies only with dim = None (the encoder's candidates)")
        if any(d not in DIM_LADDER for d in self.dims):
            raise ValueError(f"parameter 'dims' must hold values of the ladder {', '.join(map(str, DIM_LADDER))}")
        if self.step_ratios and self.lattice_step != "ladder":
            raise ValueError("parameter 'step_ratios' applies only with lattice_step = 'ladder'")


def rms(z: torch.Tensor) -> float:
    return float(z.detach().double().pow(2).mean().sqrt())


def nearest_ladder_step(value: float) -> int:
    """The index of the ladder step nearest ``value`` in ratio (the ends for values beyond them)."""
    return min(range(len(STEP_LADDER)), key=lambda k: (abs(np.log(STEP_LADDER[k] / max(value, 1e-30))), k))


def auto_dims(n: int, D: int) -> tuple[int, ...]:
    """The d tried by default: the ladder value nearest 4·√n (d = 1 024 at n = 60 000, where the frontier
    was tuned) with its two neighbours up to SMALL_N, where each try is cheap (and the search goes on
    upwards while the largest d tried wins: ``IntrinsicDim.extends``), and with the one below it above
    (a try costs minutes there); never above D."""
    centre = min(range(len(DIM_LADDER)), key=lambda k: (abs(np.log(DIM_LADDER[k] / (4 * np.sqrt(n)))), k))
    top = centre + 2 if n <= SMALL_N else centre + 1
    chosen = [DIM_LADDER[k] for k in range(max(centre - 1, 0), min(top, len(DIM_LADDER)))]
    within = [d for d in chosen if d <= D]
    return tuple(within or [DIM_LADDER[0]])


def auto_epochs(n: int, batch_size: int) -> int:
    """Epochs of subspace training when none are set: 40, or more where an epoch has few minibatches
    (at least AUTO_STEPS steps in all), so a small training set still trains z to convergence."""
    per_epoch = max(-(-n // batch_size), 1)
    return max(40, -(-AUTO_STEPS // per_epoch))


def projector_seed(prior: Prior | RunContext) -> int:
    return stream_seed(prior.seed, "id.projector")


@dataclass
class _Choice:
    """What the header byte says: d and the lattice step (None: not chosen by the encoder)."""

    d: int
    step: float | None


class IntrinsicDim(Compressor):
    # named random streams at the offsets they had before plugins declared them (same messages)
    streams: ClassVar[dict[str, int]] = {"id.subspace": 1, "id.qat": 2, "id.projector": 17}
    name: ClassVar[str] = "id"
    version: ClassVar[str] = "0.4.0"  # 0.4: the frontier recipe by default, d and step chosen by the encoder
    description: ClassVar[str] = ("intrinsic-dimension subspace training θ₀+P·z, quantization-aware "
                                  "training of z and arithmetic coding (seed 000)")
    Params = IntrinsicDimParams
    # What decode rebuilds θ₀ + P·z and reads the message with; training, quantizer, rates and the
    # candidates tried are encoder-side (free): the message is decoded the same whichever found it.
    decoder_params: ClassVar[tuple[str, ...]] = (
        "dim", "projector", "scale", "scale_power", "origin", "levels", "codebook", "lattice_step", "step",
        "symbol_code", "layout", "codebook_precision", "z_precision", "rest_precision")

    @property
    def has_header(self) -> bool:
        """Whether the message starts with the byte of the encoder's choices."""
        return self.params.dim is None or self.params.lattice_step == "ladder"

    # ------------------------------------------------------------------------------ training
    def training_config(self, ctx: RunContext, d: int) -> dict:
        """Everything that determines the trained z (the key of its cache)."""
        p, r = self.params, ctx.task.recipe
        batch_size = p.batch_size or r.batch_size
        return {
            "task": ctx.task.config, "seed": ctx.seed, "device": ctx.device.type, "dim": d,
            "projector": p.projector, **({"scale": p.scale} if p.scale != "none" else {}),
            **({"scale_power": p.scale_power} if p.scale_power != 1.0 else {}),  # ≠ 1 only with init
            "optimizer": p.optimizer or r.optimizer,
            "lr": p.lr if p.lr is not None else r.lr,
            "epochs": p.epochs if p.epochs is not None else auto_epochs(len(ctx.task.data.train), batch_size),
            "batch_size": batch_size, "schedule": p.schedule or r.schedule,
            "weight_decay": p.weight_decay, "momentum": r.momentum,
            "code": SUBSPACE_CODE_VERSION, "torch": torch.__version__.split("+")[0],
            **({"origin": hashlib.sha256(ctx.prior.spec.prior_state).hexdigest()} if p.origin == "prior" else {}),
        }

    def space(self, prior: Prior | RunContext, d: int) -> Subspace:
        """θ₀ + P·z: both from the prior (the seeded initialization, or with ``origin = prior`` the prior
        model trained on ``S_prior``, and the seeded projector)."""
        p = self.params
        source = prior if isinstance(prior, Prior) else prior.prior
        start = source.prior_model() if p.origin == "prior" else source.make_model()
        return Subspace(start, p.projector, d, projector_seed(prior), prior.device, p.scale, p.scale_power)

    def trained_z(self, space: Subspace, ctx: RunContext) -> tuple[torch.Tensor, dict]:
        """z after subspace training: from the cache, or trained now (once, even across workers)."""
        cfg = self.training_config(ctx, space.d)
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
    def candidate_dims(self, ctx: RunContext, D: int) -> tuple[int, ...]:
        p = self.params
        if p.dim is not None:
            return (p.dim,)
        return p.dims or auto_dims(len(ctx.task.data.train), D)

    def extends(self, best: int, tried: dict, n: int, D: int) -> bool:
        """Whether the default search goes one rung above its window: where the largest d tried won, the
        next rung exists and fits in D, and n is small enough (SMALL_N) for another try to be cheap."""
        if self.params.dim is not None or self.params.dims or n > SMALL_N or best != max(tried):
            return False
        k = DIM_LADDER.index(best) + 1
        return k < len(DIM_LADDER) and DIM_LADDER[k] <= D and DIM_LADDER[k] not in tried

    def candidate_ratios(self, n: int) -> tuple[float, ...]:
        p = self.params
        if p.lattice_step != "ladder":
            return (0.0,)  # the step follows from the parameters (fixed) or from z (max)
        return p.step_ratios or ((0.7, 1.0, 1.4) if n <= SMALL_N else (0.85,))

    def choice(self, d: int, z: torch.Tensor, ratio: float) -> _Choice:
        p = self.params
        if p.lattice_step == "ladder":
            return _Choice(d, STEP_LADDER[nearest_ladder_step(ratio * rms(z))])
        return _Choice(d, float(p.step) if p.lattice_step == "fixed" else None)

    def header(self, choice: _Choice) -> bytes:
        """The header byte of ``choice``: d's ladder index in the top 3 bits, the step's in the low 5 (a field
        the parameters fix is 0); nothing when the parameters fix both."""
        p = self.params
        if not self.has_header:
            return b""
        d_index = DIM_LADDER.index(choice.d) if p.dim is None else 0
        step_index = STEP_LADDER.index(choice.step) if p.lattice_step == "ladder" else 0
        return bytes([(d_index << 5) | step_index])

    def compress(self, ctx: RunContext) -> Compressed:
        """One candidate when d and the step are fixed; else every candidate d coded at the middle
        candidate step, then the best d at the other steps; the best certificate wins (``bench.kit.ladders``)."""
        p = self.params
        n = len(ctx.task.data.train)
        D = sum(t.numel() for _, t in trainable_parameters(ctx.make_model())) if p.dim is None else 0
        dims, ratios = self.candidate_dims(ctx, D), self.candidate_ratios(n)
        if len(dims) == 1 and len(ratios) == 1:
            space = self.space(ctx, dims[0])
            z, stats = self.trained_z(space, ctx)
            return self._encode(space, z, stats, self.choice(dims[0], z, ratios[0]), ctx)
        trials: list[ladders.Trial] = []
        middle = ratios[len(ratios) // 2]
        spaces: dict[int, tuple[Subspace, torch.Tensor, dict]] = {}
        queue = list(dims)
        while queue:  # every d, coded at the middle step
            d = queue.pop(0)
            space = self.space(ctx, d)
            spaces[d] = (space, *self.trained_z(space, ctx))
            trials.append(self._trial(*spaces[d], self.choice(d, spaces[d][1], middle), ctx))
            best_d = ladders.best_trial(trials).choice["d"]
            if not queue and self.extends(best_d, spaces, n, D):
                queue.append(DIM_LADDER[DIM_LADDER.index(best_d) + 1])  # the top one won: one rung higher
        for ratio in ratios:  # the best d at the other steps
            if ratio != middle:
                trials.append(self._trial(*spaces[best_d], self.choice(best_d, spaces[best_d][1], ratio), ctx))
        return best_compressed(ctx, trials)

    def _trial(self, space: Subspace, z: torch.Tensor, stats: dict, choice: _Choice, ctx: RunContext) -> ladders.Trial:
        return scored_trial(ctx, {"d": choice.d, "step": choice.step}, self._encode(space, z, stats, choice, ctx))

    def _encode(self, space: Subspace, z: torch.Tensor, train_stats: dict, choice: _Choice,
                ctx: RunContext) -> Compressed:
        p = self.params
        train = ctx.task.data.train
        batch_size = self.training_config(ctx, space.d)["batch_size"]
        sections: dict[str, bytes] = {}
        extras: dict = {"D": space.D, "d": space.d, "projector_bytes": space.projector.nbytes,
                        "subspace_last_epoch": train_stats, "z_rms": rms(z)}
        if p.levels == 0:
            zq = torch.from_numpy(coding.round_to_precision(z.cpu().numpy(), p.z_precision))
            sections["z"] = coding.encode_floats(zq.numpy(), p.z_precision)
            sections["codebook"] = b""
        else:
            if choice.step is not None:  # the header's or the parameters' step: the decoder builds the same
                start = lattice_levels(choice.step, p.levels)
            elif p.codebook == "lattice":  # the linear init's bin centres, 2·max|z|/L apart
                start = lattice_levels(2 * float(z.abs().max()) / p.levels, p.levels)
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
            if choice.step is not None:  # the decoder has the step (header or parameters): nothing is sent
                sent = np.zeros(0, np.float32)
                cb = torch.from_numpy(start)  # = lattice_levels(step, levels): what decode builds
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
        header = self.header(choice)
        if header:
            extras["section_bits"] = {"header": 8, **extras["section_bits"]}
            extras["header"] = {"d": choice.d, "step": choice.step}
        implied = p.layout == "implied"  # no section header: the harness cannot check a layout it cannot see
        body = b"".join(sections.values()) if implied else coding.pack_sections(sections)
        listed = None if implied or header else list(extras["section_bits"].items())
        return Compressed(message=header + body, model=model.eval(), layers=None, stats={"n_params_kept": space.d},
                          extras=extras, sections=listed)

    # -------------------------------------------------------------------------------- decode
    def read_header(self, message: bytes) -> tuple[_Choice, bytes]:
        """The encoder's choices from the header byte (or the parameters'), and the rest of the message."""
        p = self.params
        if not self.has_header:
            return _Choice(int(p.dim), float(p.step) if p.lattice_step == "fixed" else None), message
        if not message:
            raise coding.CorruptMessage("an empty message: the header byte is missing")
        d_index, step_index = message[0] >> 5, message[0] & 31
        if p.dim is not None and d_index:
            raise coding.CorruptMessage("a d in a message whose d the parameters fix")
        if p.lattice_step != "ladder" and step_index:
            raise coding.CorruptMessage("a ladder step in a message whose step is not on the ladder")
        d = int(p.dim) if p.dim is not None else DIM_LADDER[d_index]
        step = STEP_LADDER[step_index] if p.lattice_step == "ladder" else (
            float(p.step) if p.lattice_step == "fixed" else None)
        return _Choice(d, step), message[1:]

    def decode(self, message: bytes, prior: Prior) -> nn.Module:
        p = self.params
        choice, body = self.read_header(message)
        space = self.space(prior, choice.d)
        sections = self._sections(body, space)
        if p.levels == 0:
            if sections["codebook"]:
                raise coding.CorruptMessage("a codebook in an unquantized message")
            z = coding.decode_floats(sections["z"], p.z_precision)
            if z.size != space.d:
                raise coding.CorruptMessage(f"{z.size} values of z, the subspace has {space.d}")
            zq = torch.from_numpy(z)
        else:
            cb = coding.decode_floats(sections["codebook"], p.codebook_precision)
            if choice.step is not None:
                if cb.size:
                    raise coding.CorruptMessage("a step in a message whose step the header or the prior fixes")
                cb = lattice_levels(choice.step, p.levels)
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
        if p.levels == 0 or p.lattice_step in ("fixed", "ladder"):
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
