"""Subspace training θ = θ₀ + P·z (seed 000, Li et al. 2018) and quantization-aware training of z.

``Subspace`` ties a model (its seeded initialization θ₀ is the origin), a projector P (see
``bench.kit.projectors``) and the flat layout of *every* trainable parameter (BatchNorm affine parameters
included). Training only ever moves z ∈ R^d. ``Subspace.load(z)`` writes the exact weights a decoder
rebuilds: θ₀ + P·z computed in float64 and rounded once to the parameters' dtype, so the compressor and
the decoder agree bit for bit and a re-run in another process agrees on every prediction.

Quantization-aware training (seed 000, Section 4 / Appendix E) replaces z in the forward pass by its
nearest level of a learned codebook c ∈ R^L; gradients pass straight through to z, and each level
receives the sum of the gradients of the coordinates assigned to it.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from bench.kit.types import Split

from bench.kit.projectors import Projector, make_projector
from bench.kit.training import Hooks, make_optimizer, make_scheduler, train_loop

__all__ = ["Subspace", "train_subspace", "quantize_aware_train", "nearest_level", "assign_levels", "init_codebook",
           "recalibrate_batchnorm", "float_buffers", "set_float_buffers", "lattice_levels",
           "progressive_quantize", "progressive_fractions"]


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """Every floating parameter that trains (the coordinates of θ), in model order."""
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.is_floating_point()]


class Subspace:
    """θ = θ₀ + P·z over every trainable parameter of ``model`` (whose current weights are θ₀)."""

    def __init__(self, model: nn.Module, projector: str, dim: int, seed: int, device: torch.device,
                 scale: str = "none", scale_power: float = 1.0) -> None:
        self.model = model
        params = trainable_parameters(model)
        if not params:
            raise ValueError("the model has no trainable parameters")
        self.names = [n for n, _ in params]
        self.shapes = [tuple(p.shape) for _, p in params]
        self.dtypes = [p.dtype for _, p in params]
        self.numels = [p.numel() for _, p in params]
        self.theta0 = torch.cat([p.detach().reshape(-1).float() for _, p in params]).to(device)
        self.D = int(self.theta0.numel())
        self.row_scale = row_scale([p for _, p in params], scale, scale_power).to(device)  # None-like: all ones
        self.projector: Projector = make_projector(projector, self.D, dim, seed, device)
        self.d = self.projector.d
        self.device = device
        for _, p in params:  # only z trains; the module's own parameters stay at θ₀ until ``load``
            p.requires_grad_(False)

    def _split(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        parts = torch.split(theta, self.numels)
        return {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes)}

    def params(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """θ₀ + P·z as a differentiable parameter dictionary (float32, for training)."""
        return self._split(self.theta0 + self.row_scale * self.projector.project(z))

    def __call__(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, self.params(z), (x,), strict=False)

    @torch.no_grad()
    def load(self, z: torch.Tensor) -> nn.Module:
        """Write θ₀ + P·z (float64, rounded once) into the model's parameters; returns the model."""
        step = self.projector.project(z.detach().to(self.device, torch.float64))
        theta = self.theta0.double() + self.row_scale.double() * step
        for (name, value), dtype in zip(self._split(theta).items(), self.dtypes):
            self.model.get_parameter(name).copy_(value.to(dtype))
        return self.model


def row_scale(params: list[torch.Tensor], scale: str, power: float = 1.0) -> torch.Tensor:
    """Per-coordinate scale of P·z: ``none`` (all ones) or ``init`` (each tensor's RMS at θ₀, at least
    the RMS of all of θ₀, raised to ``power``, normalized to a mean square of 1: a fixed preconditioner,
    part of the prior). A power above 1 moves more of every direction onto the tensors with large initial
    weights (small fan-in, such as a first convolution), whose few weights a random direction otherwise
    barely touches."""
    sizes = [p.numel() for p in params]
    if scale == "none":
        return torch.ones(sum(sizes))
    if scale != "init":
        raise ValueError(f"parameter 'scale' must be 'none' or 'init', got {scale!r}")
    flat = torch.cat([p.detach().reshape(-1).double() for p in params])
    floor = float(flat.pow(2).mean().sqrt()) or 1.0
    per = torch.tensor([max(float(p.detach().double().pow(2).mean().sqrt()), floor) ** power for p in params])
    out = torch.repeat_interleave(per, torch.tensor(sizes))
    return (out / out.pow(2).mean().sqrt()).float()


def _run_epochs(step_params: list[torch.Tensor], forward: Callable[[torch.Tensor], torch.Tensor], train: Split,
                *, optimizer: str, lr: float, epochs: int, batch_size: int, weight_decay: float, momentum: float,
                schedule: str, generator: torch.Generator, task_type: str, device: torch.device,
                progress: Callable | None, desc: str, after_step: Callable[[], None] | None = None,
                layout: nn.Module | None = None) -> dict:
    """Minibatch training of ``step_params``; returns the last epoch's running loss and error."""
    opt = make_optimizer(step_params, optimizer, lr, weight_decay, momentum)
    steps_per_epoch = -(-len(train) // batch_size)

    def postfix(stats: dict, bar) -> None:
        bar.set_postfix(loss=f"{stats['loss']:.4f}", err=f"{stats['err']:.4f}")

    return train_loop(opt, forward, train, epochs=epochs, batch_size=batch_size, generator=generator, device=device,
                      task_type=task_type, scheduler=make_scheduler(opt, schedule, epochs * steps_per_epoch),
                      hooks=Hooks(after_step=after_step, after_epoch=postfix), progress=progress, desc=desc,
                      layout=layout)


def train_subspace(space: Subspace, train: Split, *, optimizer: str, lr: float, epochs: int, batch_size: int,
                   weight_decay: float, momentum: float, schedule: str, generator: torch.Generator,
                   task_type: str, progress: Callable | None = None) -> tuple[torch.Tensor, dict]:
    """Train z from 0 (θ = θ₀) for ``epochs``; the last epoch's z is the result (no selection)."""
    z = torch.zeros(space.d, device=space.device, requires_grad=True)
    space.model.train()
    stats = _run_epochs([z], lambda x: space(z, x), train, optimizer=optimizer, lr=lr, epochs=epochs,
                        batch_size=batch_size, weight_decay=weight_decay, momentum=momentum, schedule=schedule,
                        generator=generator, task_type=task_type, device=space.device, progress=progress,
                        desc=f"subspace d={space.d}", layout=space.model)
    space.model.eval()
    return z.detach(), stats


# ------------------------------------------------------------------------------- quantization
def nearest_level(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook level for every coordinate (ties: the lower index)."""
    return (z[:, None] - codebook[None, :]).abs().argmin(dim=1)


def assign_levels(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Each coordinate's level: the nearest."""
    return nearest_level(z, codebook)


class _Quantize(torch.autograd.Function):
    """z -> codebook[assigned level]; straight-through to z, summed per level to the codebook."""

    @staticmethod
    def forward(ctx, z, codebook):  # type: ignore[override]
        index = assign_levels(z, codebook)
        ctx.save_for_backward(index)
        ctx.levels = codebook.shape[0]
        return codebook[index]

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (index,) = ctx.saved_tensors
        grad_codebook = torch.zeros(ctx.levels, dtype=grad.dtype, device=grad.device).index_add_(0, index, grad)
        return grad, grad_codebook


def quantize_ste(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    return _Quantize.apply(z, codebook)


def init_codebook(z: np.ndarray, levels: int, init: str, seed: int) -> np.ndarray:
    """Initial levels: ``linear`` (the mean of z in each of ``levels`` equal bins over [-max|z|, max|z|],
    the bin's centre when empty; seed 000's code) or ``kmeans++`` (1-D k-means, k-means++ seeding)."""
    z = np.asarray(z, dtype=np.float64).ravel()
    if init == "kmeans++":
        from bench.kit.quantization import kmeans_1d

        codebook, _ = kmeans_1d(z, levels, seed, init="kmeans++")
        if len(codebook) < levels:  # fewer distinct values than levels
            codebook = np.unique(np.concatenate([codebook, np.linspace(z.min() - 1, z.max() + 1, levels)]))[:levels]
        return np.sort(codebook).astype(np.float32)
    if init != "linear":
        raise ValueError(f"parameter 'init' must be 'linear' or 'kmeans++', got {init!r}")
    largest = max(float(np.abs(z).max()), 1e-8) * (1 + 1e-6)
    edges = np.linspace(-largest, largest, levels + 1)
    bins = np.clip(np.digitize(z, edges) - 1, 0, levels - 1)
    sums = np.bincount(bins, weights=z, minlength=levels)
    counts = np.bincount(bins, minlength=levels)
    centres = (edges[:-1] + edges[1:]) / 2
    return np.where(counts > 0, sums / np.maximum(counts, 1), centres).astype(np.float32)


def lattice_levels(step: float, levels: int) -> np.ndarray:
    """``levels`` points ``step`` apart, symmetric about 0 (float32, computed the same way everywhere)."""
    return (np.arange(levels, dtype=np.float32) - np.float32((levels - 1) / 2)) * np.float32(step)


def quantize_aware_train(space: Subspace, z: torch.Tensor, codebook: torch.Tensor, train: Split, *, lr: float,
                         epochs: int, batch_size: int, generator: torch.Generator, task_type: str,
                         progress: Callable | None = None, lattice: bool = False) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Adam on (z, codebook) with the quantized z in the forward pass; returns the last epoch's pair.
    ``lattice``: the codebook stays a symmetric lattice (``codebook`` must be one) and only its step
    trains, so the message needs one number instead of one per level."""
    z = z.detach().clone().requires_grad_(True)
    codebook = codebook.detach().clone().to(space.device)
    if lattice:
        offsets = torch.from_numpy(lattice_levels(1.0, len(codebook))).to(space.device)
        step = (codebook[-1] - codebook[0]).div(max(len(codebook) - 1, 1)).reshape(1).requires_grad_(True)
        trained, levels = [z, step], lambda: step * offsets
    else:
        codebook.requires_grad_(True)
        trained, levels = [z, codebook], lambda: codebook
    stats = {}
    if epochs > 0:
        space.model.train()
        stats = _run_epochs(trained, lambda x: space(quantize_ste(z, levels()), x), train,
                            optimizer="adam", lr=lr, epochs=epochs, batch_size=batch_size, weight_decay=0.0,
                            momentum=0.9, schedule="constant", generator=generator, task_type=task_type,
                            device=space.device, progress=progress, desc=f"quantization-aware L={len(codebook)}",
                            layout=space.model)
        space.model.eval()
    return z.detach(), levels().detach(), stats


def progressive_fractions(stages: int) -> list[float]:
    """The share of z fixed after each stage: each stage fixes half of the still free coordinates (1/2,
    3/4, 7/8, ...; ``stages`` of them), then all of it."""
    return [1 - 0.5 ** k for k in range(1, stages + 1)] + [1.0]


def progressive_quantize(space: Subspace, z: torch.Tensor, codebook: torch.Tensor, train: Split, *, stages: int,
                         epochs: int, lr: float, batch_size: int, generator: torch.Generator, task_type: str,
                         progress: Callable | None = None) -> tuple[torch.Tensor, list[dict]]:
    """Incremental quantization (Zhou et al. 2017, INQ, in z-space): fix a growing share of the coordinates
    to their nearest level (those nearest a level first, so each fixing costs least) and retrain the rest
    on the real training loss to absorb the error, ``epochs`` each (Adam, cosine from ``lr``); each stage
    fixes half of the coordinates still free (``progressive_fractions``); the last share is rounded with
    nothing left to compensate. One-shot rounding of all of z at once (even GPTQ's, which compensates
    only through a quadratic model) loses far more at a coarse codebook.

    Returns z with every coordinate on a level of ``codebook`` and each stage's last-epoch statistics."""
    codebook = codebook.detach().to(space.device)
    free = z.detach().clone().requires_grad_(True)
    fixed = torch.zeros(space.d, dtype=torch.bool, device=space.device)
    values = torch.zeros(space.d, device=space.device)
    history = []
    for fraction in progressive_fractions(stages):
        target = space.d if fraction >= 1 else int(round(fraction * space.d))
        with torch.no_grad():
            level = codebook[nearest_level(free.detach(), codebook)]
            gap = (free.detach() - level).abs().masked_fill(fixed, float("inf"))
            order = torch.argsort(gap, stable=True)[: target - int(fixed.sum())]
            values[order] = level[order]
            fixed[order] = True
        if fraction >= 1 or epochs == 0:
            continue
        space.model.train()
        history.append(_run_epochs([free], lambda x: space(torch.where(fixed, values, free), x), train,
                                   optimizer="adam", lr=lr, epochs=epochs, batch_size=batch_size, weight_decay=0.0,
                                   momentum=0.9, schedule="cosine", generator=generator, task_type=task_type,
                                   device=space.device, progress=progress, desc=f"progressive {fraction:.3f} fixed",
                                   layout=space.model))
        space.model.eval()
    return values.detach(), history


# ------------------------------------------------------------------------------------ buffers
def float_buffers(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The floating buffers the evaluated model needs (BatchNorm running statistics), in order."""
    return [(n, b) for n, b in model.named_buffers() if b.is_floating_point()]


@torch.no_grad()
def set_float_buffers(model: nn.Module, values: np.ndarray) -> None:
    offset = 0
    for _, buf in float_buffers(model):
        n = buf.numel()
        if offset + n > values.size:
            raise ValueError("buffer section is shorter than the architecture needs")
        buf.copy_(torch.from_numpy(values[offset : offset + n].copy()).view_as(buf))
        offset += n
    if offset != values.size:
        raise ValueError("buffer section is longer than the architecture needs")


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, train: Split, batch_size: int, device: torch.device) -> bool:
    """Recompute every BatchNorm's running statistics for the model's current weights: the average of
    the batch statistics over one ordered pass of the training set (no shuffling, deterministic).
    Returns whether the model has any."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats]
    if not norms:
        return False
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average
    model.train()
    for i in range(0, len(train), batch_size):
        model(train.x[i : i + batch_size].to(device))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()
    return True
