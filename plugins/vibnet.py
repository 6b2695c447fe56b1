"""Compressor ``vibnet``: Variational Information Bottleneck neuron pruning (seed 003), shrunk, coded.

A multiplicative gate ``z = μ + σ·ε`` (a fresh ε ~ N(0, 1) per example) multiplies every unit that
enters a weight layer: each hidden neuron of an MLP, each channel of a convolutional feature map (one
gate for all its positions), and for MLPs the input pixels too (seed 003, Section 6.1). Training from
the task's base model minimizes the cross-entropy plus its eq. (11-13) penalty

    Σ_i γ_i Σ_j log(1 + α_ij),   α_ij = μ_ij² / σ_ij²,

with ``γ_i = γ'`` for features and ``γ'/S_i`` for feature maps of side ``S_i``. A unit is pruned when
``log α < threshold``. Pruning is physical: the pruned units leave the layer that produces them (its
rows or output channels, and their BatchNorm channels) and the layer that consumes them (its columns
or input channels); the surviving gate means are folded into the consumer's weights. The decoded
model is a smaller network of the same family.

The message: the kept-unit mask of every gate (gap-coded positions, entropy-coded) and then the
shrunk network's weights through ``bench.kit.quantization`` (per-tensor k-means codebooks, optional
centroid fine-tuning, entropy-coded assignments, the rest at ``rest_precision``). The decoder rebuilds
the shrunk architecture from the masks and the seeded template alone.

By default (``gamma = None``, ``levels = None``) the encoder trains the gates at every γ' of ``GAMMA_LADDER``
(each training cached), codes each shrunk network at every codebook size of ``LEVELS_LADDER``, and keeps
the message with the lowest Occam certificate (``bench.api.best_compressed``); the message holds the
kept units and the codebooks, so the choice needs no header. Setting ``gamma`` or ``levels`` fixes it.

Models are walked as a chain of layers (``nn.Sequential`` nesting, LeNet-5's features + classifier,
the ConvNet); the chain must reproduce the model's own output, and every layer must be one of the
kinds below, or the error names the layer it cannot gate.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.kit import coding
from bench.api import Compressed, Compressor, Ge, Gt, Prior, RunContext, best_compressed, hookimpl, scored_trial
from bench.kit.quantization import (LEVELS_LADDER, CodebookModel, decode_model, encode_model, quantize_tensors,
                                    section_names)
from bench.kit.training import Hooks, train_loop

WEIGHT_LAYERS = (nn.Linear, nn.Conv2d)
PASSIVE = (nn.ReLU, nn.Tanh, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Dropout, nn.Identity)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
#: The γ' the encoder tries by default (one information-bottleneck training each, cached).
GAMMA_LADDER: tuple[float, ...] = (1e-5, 1e-4, 1e-3)
GATES_VERSION = "0.2.0"  # the cache key of trained gates: bump when their training changes
INIT_LOGVAR = -9.0  # the authors' initialization: μ ~ N(1, 0.01²), log σ² = -9


@dataclass(frozen=True)
class VIBNetParams:
    gamma: Annotated[float | None, Ge(0)] = None  # γ'; None: the encoder picks it from GAMMA_LADDER
    epochs: Annotated[int, Ge(0)] = 10  # information-bottleneck training of weights and gates (cached)
    lr: Annotated[float, Gt(0)] = 1e-3  # the network's weights
    gate_lr: Annotated[float, Gt(0)] = 1e-2  # the gates' μ and log σ² (the authors' code has this separate rate too)
    threshold: float = 0.0  # prune a unit when log α < threshold (the authors' code: 0)
    finetune_epochs: Annotated[int, Ge(0)] = 0  # plain training of the shrunk network (the paper: none)
    finetune_lr: Annotated[float | None, Gt(0)] = None  # None: lr
    input_bottleneck: bool = True  # MLPs: gates on the input pixels too
    batch_size: Annotated[int | None, Ge(1)] = None  # None: the task's recipe
    levels: Annotated[int | None, Ge(1)] = None  # codebook size per coded tensor of the shrunk network; None: each
    # of LEVELS_LADDER
    codebook_epochs: Annotated[int, Ge(0)] = 0  # centroid fine-tuning after quantization
    codebook_lr: Annotated[float, Gt(0)] = 1e-4  # Adam's rate for centroid tuning
    codebook_precision: Literal["float16", "float32"] = "float16"  # how the codebook travels in the message
    rest_precision: Literal["float16", "float32"] = "float16"
    # how biases and BatchNorm parameters and statistics travel in the message

    def validate(self) -> None:  # what a range cannot say
        if self.gamma is not None and not math.isfinite(self.gamma):
            raise ValueError(f"parameter 'gamma' must be a finite number >= 0, got {self.gamma}")


# ---------------------------------------------------------------------------------- the chain
def layer_chain(model: nn.Module, input_shape: tuple[int, ...]) -> list[nn.Module]:
    """The model's leaf layers in order, checked to compute exactly what the model computes."""
    leaves = [m for m in model.modules() if not list(m.children())]
    for m in leaves:
        if not isinstance(m, WEIGHT_LAYERS + PASSIVE + NORMS + (nn.Flatten,)):
            raise ValueError(f"vibnet cannot gate a model with a {type(m).__name__} layer "
                             f"(it gates Linear/Conv2d chains with BatchNorm, ReLU/Tanh, pooling, Flatten)")
    x = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
    was = model.training
    model.eval()
    with torch.no_grad():
        try:
            y = x.to(next(model.parameters()).device)
            want = model(y)
            for m in leaves:
                y = m(y)
        except RuntimeError as exc:
            raise ValueError(f"vibnet cannot gate this model: its layers do not run as a chain ({exc})") from None
    model.train(was)
    if y.shape != want.shape or not torch.allclose(y, want):
        raise ValueError("vibnet cannot gate this model: its layers do not run as a chain (branches or skips)")
    return leaves


@dataclass
class GateSite:
    """Where a gate sits: before chain index ``at``, on ``units`` units of ``spatial`` positions each.
    ``producer`` is the chain index of the weight layer that makes those units (None: the input),
    ``consumer`` the one that reads them, ``norms`` the BatchNorms in between."""

    at: int
    units: int
    spatial: int
    side: int  # feature-map side (1 for features)
    producer: int | None
    consumer: int
    norms: list[int]


def gate_sites(chain: list[nn.Module], input_shape: tuple[int, ...], input_bottleneck: bool) -> list[GateSite]:
    """One gate at the input of every weight layer but the first (and of the first too, for an MLP
    with an input bottleneck); behind a Flatten that follows a feature map, the gate is per channel."""
    shapes = []  # the shape entering each chain element
    device = next(p for m in chain for p in m.parameters()).device
    x = torch.zeros(2, *input_shape, device=device)
    with torch.no_grad():
        for m in chain:
            shapes.append(tuple(x.shape[1:]))
            was = m.training
            x = m.eval()(x)
            m.train(was)
    weights = [i for i, m in enumerate(chain) if isinstance(m, WEIGHT_LAYERS)]
    sites = []
    for n, consumer in enumerate(weights):
        producer = weights[n - 1] if n else None
        at = consumer
        if producer is not None and isinstance(chain[consumer - 1], nn.Flatten) and len(shapes[consumer - 1]) == 3:
            at = consumer - 1  # per channel of the feature map, before it is flattened
        if producer is None and not (input_bottleneck and isinstance(chain[consumer], nn.Linear)):
            continue
        shape = shapes[at]
        units = shape[0]
        spatial = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        side = int(shape[-1]) if len(shape) == 3 else 1
        norms = [i for i in range(producer + 1, at) if isinstance(chain[i], NORMS)] if producer is not None else []
        sites.append(GateSite(at, units, spatial, side, producer, consumer, norms))
    return sites


class Gate(nn.Module):
    """``x · (μ + σ·ε)`` per unit, ε fresh per example (training); ``x · μ`` with closed units at 0
    (evaluation)."""

    def __init__(self, units: int, generator: torch.Generator, device) -> None:
        super().__init__()
        self.mu = nn.Parameter((1 + 0.01 * torch.randn(units, generator=generator)).to(device))
        self.noise = generator  # the training noise ε comes from the same seeded stream, never the global one
        self.logvar = nn.Parameter(torch.full((units,), INIT_LOGVAR, device=device))
        self.register_buffer("open", torch.ones(units, dtype=torch.bool, device=device))

    def log_alpha(self) -> torch.Tensor:
        return 2 * torch.log(self.mu.abs() + 1e-12) - self.logvar

    def penalty(self) -> torch.Tensor:
        """Σ_j log(1 + α_j) (seed 003 eq. 11-13), in a stable form."""
        return F.softplus(self.log_alpha()).sum()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (x.shape[0], -1) + (1,) * (x.dim() - 2)
        if self.training:
            eps = torch.randn(x.shape[0], self.mu.numel(), generator=self.noise).to(x.device, x.dtype)
            z = self.mu + torch.exp(0.5 * self.logvar) * eps
        else:
            z = (self.mu * self.open).expand(x.shape[0], -1)
        return x * z.view(shape)


class Gated(nn.Module):
    """The chain with a gate at every site."""

    def __init__(self, chain: list[nn.Module], sites: list[GateSite], gammas: list[float],
                 generator: torch.Generator) -> None:
        super().__init__()
        device = next(p for m in chain for p in m.parameters()).device
        self.chain = nn.ModuleList(chain)
        self.sites = sites
        self.gates = nn.ModuleList([Gate(s.units, generator, device) for s in sites])
        self.gammas = gammas
        self._at = {s.at: i for i, s in enumerate(sites)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, m in enumerate(self.chain):
            if i in self._at:
                x = self.gates[self._at[i]](x)
            x = m(x)
        return x

    def penalty(self) -> torch.Tensor:
        return sum(g * gate.penalty() for g, gate in zip(self.gammas, self.gates))


def gammas(sites: list[GateSite], gamma: float) -> list[float]:
    """γ_i = γ' for features, γ'/S_i for feature maps of side S_i (seed 003, Section 6)."""
    return [gamma / s.side if s.spatial > 1 else gamma for s in sites]


class SelectFeatures(nn.Module):
    """The input features an input bottleneck kept (their indices travel in the message)."""

    def __init__(self, index: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("index", index.long())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.index_select(1, self.index)


# ------------------------------------------------------------------------------------- shrinking
def _slice_out(m: nn.Module, keep: torch.Tensor) -> None:
    """Keep output units ``keep`` of a weight layer or channels of a BatchNorm, in place."""
    with torch.no_grad():
        if isinstance(m, NORMS):
            m.num_features = int(keep.numel())
            for name in ("weight", "bias"):
                if getattr(m, name) is not None:
                    setattr(m, name, nn.Parameter(getattr(m, name)[keep].clone()))
            m.running_mean = m.running_mean[keep].clone()
            m.running_var = m.running_var[keep].clone()
            return
        m.weight = nn.Parameter(m.weight[keep].clone())
        if m.bias is not None:
            m.bias = nn.Parameter(m.bias[keep].clone())
        if isinstance(m, nn.Linear):
            m.out_features = int(keep.numel())
        else:
            m.out_channels = int(keep.numel())


def _slice_in(m: nn.Module, keep: torch.Tensor, scale: torch.Tensor, spatial: int) -> None:
    """Keep input units ``keep`` of a weight layer (``spatial`` columns each) scaled by ``scale``."""
    with torch.no_grad():
        w = m.weight
        if isinstance(m, nn.Conv2d):
            m.weight = nn.Parameter((w[:, keep] * scale.view(1, -1, 1, 1)).clone())
            m.in_channels = int(keep.numel())
            return
        grouped = w.view(w.shape[0], -1, spatial)[:, keep] * scale.view(1, -1, 1)
        m.weight = nn.Parameter(grouped.reshape(w.shape[0], -1).clone())
        m.in_features = int(m.weight.shape[1])


def shrink(chain: list[nn.Module], sites: list[GateSite], keeps: list[torch.Tensor],
           means: list[torch.Tensor]) -> nn.Sequential:
    """The smaller network: pruned units removed from their producer (and BatchNorms) and consumer,
    the kept gates' means folded into the consumer. ``keeps`` are index tensors (sorted)."""
    layers = [copy.deepcopy(m) for m in chain]
    inserts = {}
    for site, keep, mu in zip(sites, keeps, means):
        keep = keep.to(layers[site.consumer].weight.device)
        for i in ([site.producer] if site.producer is not None else []) + site.norms:
            _slice_out(layers[i], keep)
        _slice_in(layers[site.consumer], keep, mu.to(keep.device)[keep], site.spatial)
        if site.producer is None:
            inserts[site.at] = SelectFeatures(keep.cpu())
    out = []
    for i, m in enumerate(layers):
        if i in inserts:
            out.append(inserts[i])
        out.append(m)
    return nn.Sequential(*out).eval()


# ---------------------------------------------------------------------------------------- metrics
def multiplications(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiplications of one forward pass (seed 003's footnote 6: one FLOP per multiply)."""
    total = 0

    def hook(m: nn.Module, inputs, output) -> None:
        nonlocal total
        per_output = m.weight[0].numel()  # in_features, or in_channels/groups · k · k
        total += per_output * output[0].numel()

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, WEIGHT_LAYERS)]
    try:
        with torch.no_grad():
            was = model.training
            model.eval()
            model(torch.zeros(1, *input_shape, device=next(model.parameters()).device))
            model.train(was)
    finally:
        for h in handles:
            h.remove()
    return total


def weight_count(model: nn.Module) -> int:
    """Nonzero entries of the weight tensors (≥ 2 dimensions)."""
    return sum(int(torch.count_nonzero(p)) for p in model.parameters() if p.dim() >= 2)


def metrics(original: nn.Module, shrunk: nn.Module, sites: list[GateSite], kept: list[int],
            input_shape: tuple[int, ...]) -> dict:
    """r_W, r_N (the feature maps at the gates, as seed 003 counts run-time memory), FLOPs, the
    pruned architecture (units kept at each gate, e.g. ``97-71-33``)."""
    return {
        "r_W": weight_count(shrunk) / max(weight_count(original), 1),
        "r_N": sum(k * s.spatial for k, s in zip(kept, sites)) / max(sum(s.units * s.spatial for s in sites), 1),
        "flops": multiplications(shrunk, input_shape), "base_flops": multiplications(original, input_shape),
        "architecture": "-".join(str(k) for k in kept),
        "units": [s.units for s in sites],
    }


# ------------------------------------------------------------------------------------- the plugin
class VIBNet(Compressor):
    # named random streams at the offsets they had before plugins declared them (same messages)
    streams: ClassVar[dict[str, int]] = {"vibnet.shuffle": 31, "vibnet.finetune": 32, "vibnet.codebook": 33,
                                          "vibnet.init": 34}
    name: ClassVar[str] = "vibnet"
    version: ClassVar[str] = "0.3.0"  # 0.3: γ' and codebook size chosen by the encoder by default
    description: ClassVar[str] = ("Variational Information Bottleneck neuron pruning (seed 003): gated units "
                                  "pruned and physically removed, the shrunk network coded")
    Params = VIBNetParams
    decoder_params: ClassVar[tuple[str, ...]] = ("input_bottleneck", "codebook_precision", "rest_precision")

    def _structure(self, model: nn.Module, input_shape) -> tuple[list[nn.Module], list[GateSite]]:
        chain = layer_chain(model, input_shape)
        return chain, gate_sites(chain, input_shape, self.params.input_bottleneck)

    def _names(self, chain, sites) -> tuple[list[str], list[str]]:
        """Section names: one mask per gate, then the shrunk network's (its layout does not depend on
        which units survive, only on the architecture)."""
        full = shrink(chain, sites, [torch.arange(s.units) for s in sites], [torch.ones(s.units) for s in sites])
        return [f"mask.{i}" for i in range(len(sites))], section_names(full, False)

    def compress(self, ctx: RunContext) -> Compressed:
        p = self.params
        gammas_tried = (p.gamma,) if p.gamma is not None else GAMMA_LADDER
        levels = (p.levels,) if p.levels is not None else LEVELS_LADDER
        if len(gammas_tried) == 1 and len(levels) == 1:
            return self._coded(ctx, gammas_tried[0], levels)[0]
        trials = []
        for gamma in gammas_tried:
            for size, out in zip(levels, self._coded(ctx, gamma, levels)):
                trials.append(scored_trial(ctx, {"gamma": gamma, "levels": size}, out))
        return best_compressed(ctx, trials)

    def _coded(self, ctx: RunContext, gamma: float, levels: tuple[int, ...]) -> list[Compressed]:
        """The base model gated and trained at ``gamma``, shrunk, and coded at each codebook size."""
        p = self.params
        input_shape = ctx.task.data.input_shape
        model = ctx.base_model()
        original = copy.deepcopy(model)
        chain, sites = self._structure(model, input_shape)
        gated = Gated(chain, sites, gammas(sites, gamma), ctx.generator("vibnet.init"))
        batch_size = p.batch_size or ctx.task.recipe.batch_size
        cached = self._trained_gates(gated, ctx, batch_size, gamma)
        keeps, means, log_alpha = [], [], []
        for gate in gated.gates:
            la = gate.log_alpha().detach()
            keep = (la >= p.threshold).nonzero().flatten()
            if keep.numel() == 0:  # a layer never closes completely: keep its most informative unit
                keep = la.argmax().view(1)
            keeps.append(keep.cpu())
            means.append(gate.mu.detach().cpu())
            log_alpha.append(la.cpu())
        gated_err = self._gated_error(gated, keeps, ctx)
        shrunk = shrink(list(gated.chain), sites, keeps, means)
        if p.finetune_epochs:
            self._train(shrunk, ctx, p.finetune_epochs, p.finetune_lr or p.lr, batch_size, penalty=False,
                        desc="vibnet fine-tune")
        mask_names, weight_names = self._names(chain, sites)
        masks = {name: coding.encode_positions(keep.numpy(), s.units) for name, keep, s in zip(mask_names, keeps, sites)}
        kept = [int(k.numel()) for k in keeps]
        outs = []
        for size in levels:
            small = copy.deepcopy(shrunk) if len(levels) > 1 else shrunk
            codes = quantize_tensors(small, size, ctx.seed, "linear")
            if p.codebook_epochs:
                CodebookModel(small, codes).finetune(ctx.task.data.train, p.codebook_epochs, p.codebook_lr, batch_size,
                                                     ctx.generator("vibnet.codebook"), ctx.task.data.task_type,
                                                     ctx.progress)
            encoded = encode_model(small, codes, False, p.codebook_precision, p.rest_precision)
            sections = {**masks, **coding.unpack_sections(encoded.message, weight_names)}
            stats = metrics(original, encoded.model, sites, kept, input_shape)
            stats.update(n_params_kept=sum(t.numel() for t in encoded.model.parameters()), gated_train_err=gated_err)
            outs.append(Compressed(
                message=coding.pack_sections(sections), model=encoded.model, layers=encoded.layers, stats=stats,
                extras={"kept": kept, "gates_cached": cached,
                        "log_alpha_quantiles": [np.quantile(la.numpy(), [0.1, 0.5, 0.9]).tolist() for la in log_alpha],
                        "gammas": gammas(sites, gamma)},
                sections=[(name, 8 * len(body)) for name, body in sections.items()]))
        return outs

    def _trained_gates(self, gated: Gated, ctx: RunContext, batch_size: int, gamma: float) -> bool:
        """The information-bottleneck training, from the cache when a grid point already ran it: the
        threshold, fine-tuning and coding parameters do not change it, so a grid over them trains once."""
        p = self.params
        config = {"task": ctx.task.config, "seed": ctx.seed, "device": ctx.device.type, "gamma": gamma,
                  "epochs": p.epochs, "lr": p.lr, "gate_lr": p.gate_lr, "batch_size": batch_size,
                  "input_bottleneck": p.input_bottleneck, "plugin": GATES_VERSION,
                  "torch": torch.__version__.split("+")[0]}
        cache = ctx.cache("vibnet-gated")
        key = cache.key(config)
        with cache.lock(key):
            if cache.load(key, gated):
                gated.eval()
                return True
            self._train(gated, ctx, p.epochs, p.lr, batch_size, penalty=True, desc="vibnet")
            cache.save(key, gated, config)
            return False

    def _train(self, model: nn.Module, ctx: RunContext, epochs: int, lr: float, batch_size: int, penalty: bool,
               desc: str) -> None:
        if epochs <= 0:
            return
        gates = [q for name, q in model.named_parameters() if name.startswith("gates.")]
        others = [q for name, q in model.named_parameters() if not name.startswith("gates.") and q.requires_grad]
        opt = torch.optim.Adam([{"params": others, "lr": lr}, {"params": gates, "lr": self.params.gate_lr}])
        device = next(model.parameters()).device

        def loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            value = F.cross_entropy(out, y)
            return value + model.penalty() if penalty else value

        model.train()
        train_loop(opt, model, ctx.task.data.train, epochs=epochs, batch_size=batch_size,
                   generator=ctx.generator("vibnet.shuffle" if penalty else "vibnet.finetune"), device=device,
                   task_type=ctx.task.data.task_type, loss=loss, hooks=Hooks(after_epoch=lambda stats, bar: None),
                   progress=ctx.progress, desc=desc)
        model.eval()

    @torch.no_grad()
    def _gated_error(self, gated: Gated, keeps: list[torch.Tensor], ctx: RunContext) -> float:
        """Training error of the gated network with pruned gates closed and the rest at their means."""
        for gate, keep in zip(gated.gates, keeps):
            gate.open.zero_()
            gate.open[keep.to(gate.open.device)] = True
        gated.eval()
        return ctx.evaluate(gated, ctx.task.data.train)

    def decode(self, message: bytes, prior: Prior) -> nn.Module:
        p = self.params
        template = prior.make_model()
        chain, sites = self._structure(template, prior.input_shape)
        mask_names, weight_names = self._names(chain, sites)
        sections = coding.unpack_sections(message, mask_names + weight_names)
        keeps = [torch.from_numpy(coding.decode_positions(sections[name], s.units).astype(np.int64))
                 for name, s in zip(mask_names, sites)]
        if any(k.numel() == 0 for k in keeps):
            raise coding.CorruptMessage("a gate keeps no unit")
        small = shrink(chain, sites, keeps, [torch.ones(s.units) for s in sites])
        weights = coding.pack_sections({name: sections[name] for name in weight_names})
        return decode_model(weights, small, False, p.codebook_precision, p.rest_precision)


@hookimpl
def bench_register_compressors(register) -> None:
    register(VIBNet)
