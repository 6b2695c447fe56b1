"""Compressor ``prune``: iterative magnitude pruning with retraining (Han et al. 2015, the pruning
baseline of seed 000 Appendix A), then per-layer codebook quantization of the kept weights (k-means,
centroids fine-tuned, pruned weights exactly zero) and the sparse message of ``bench.quantization``:
per coded tensor the kept positions (gap-coded), the codebook and the entropy-coded assignments, then
the biases and BatchNorm buffers.

Schedule: ``steps`` rounds; round ``i`` prunes to the sparsity ``1 - (1 - s)^(i/steps)`` (the kept
fraction shrinks geometrically to ``1 - s``) by weight magnitude, over all coded tensors together
(``scope = "global"``) or in each tensor separately (``"layer"``; ``layer_sparsity`` sets one target
per coded tensor), and retrains ``retrain_epochs`` epochs with the pruned weights held at zero
(their gradients masked). Everything derives from the run's seed.

The masked training and the quantize-and-encode tail are shared with the ``dns`` compressor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from bench.contracts import Compressed, Compressor, Prior, RunContext, Split
from bench.evaluation import loss_fn, minibatches
from bench.hookspecs import hookimpl
from bench.quantization import (CodebookModel, coded_tensor_names, decode_model, encode_model,
                                quantize_tensors)
from bench_plugins.quantize import QuantizeParams

Masks = dict[str, torch.Tensor]  # coded tensor name -> bool tensor of its shape (True: kept)


# ------------------------------------------------------------------------------- shared machinery
@dataclass(frozen=True)
class CodingParams(QuantizeParams):
    """The quantize-and-encode tail shared by ``prune`` and ``dns`` (``quantize``'s parameters; the
    centroids are fine-tuned for one epoch by default)."""

    finetune_epochs: int = 1


def check_fractions(name: str, values) -> None:
    for v in np.atleast_1d(np.asarray(values, dtype=float)):
        if not 0.0 <= v < 1.0:
            raise ValueError(f"parameter '{name}' must lie in [0, 1), got {v}")


def apply_masks(model: nn.Module, masks: Masks) -> None:
    with torch.no_grad():
        for name, mask in masks.items():
            model.get_parameter(name).mul_(mask)


def masked_fit(model: nn.Module, masks: Masks, train: Split, epochs: int, lr: float, batch_size: int,
               generator: torch.Generator, task_type: str, progress: Callable | None = None,
               desc: str = "retrain") -> None:
    """Adam on every parameter with the pruned weights held at exactly zero (gradients masked, and the
    mask re-applied after every step so that optimizer momentum cannot move them)."""
    if epochs <= 0:
        return
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    criterion = loss_fn(task_type)
    device = next(model.parameters()).device
    params = {name: model.get_parameter(name) for name in masks}
    bar = progress(total=epochs, desc=desc) if progress else None
    apply_masks(model, masks)
    model.train()
    for _ in range(epochs):
        for xb, yb in minibatches(train, batch_size, generator, device):
            opt.zero_grad(set_to_none=True)
            criterion(model(xb), yb).backward()
            for name, p in params.items():
                if p.grad is not None:
                    p.grad.mul_(masks[name])
            opt.step()
            apply_masks(model, masks)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    model.eval()


def magnitude_masks(model: nn.Module, sparsity: dict[str, float] | float) -> Masks:
    """Keep the largest-magnitude weights: per tensor (``sparsity`` a dict name -> fraction pruned) or
    over all coded tensors together (``sparsity`` one fraction). Exactly ``round(s·p)`` weights are
    pruned per tensor (or over all); ties are broken by position, deterministically."""
    names = coded_tensor_names(model)
    weights = {n: model.get_parameter(n).detach() for n in names}
    masks = {}
    if isinstance(sparsity, dict):
        for n in names:
            masks[n] = _keep_largest(weights[n].abs().flatten(), sparsity[n]).view_as(weights[n])
        return masks
    flat = torch.cat([weights[n].abs().flatten() for n in names])
    keep = _keep_largest(flat, float(sparsity))
    offset = 0
    for n in names:
        size = weights[n].numel()
        masks[n] = keep[offset : offset + size].view_as(weights[n])
        offset += size
    return masks


def _keep_largest(values: torch.Tensor, sparsity: float) -> torch.Tensor:
    n_prune = int(round(sparsity * values.numel()))
    keep = torch.ones(values.numel(), dtype=torch.bool, device=values.device)
    if n_prune > 0:
        order = torch.argsort(values.cpu().double(), stable=True)  # smallest first, ties by position
        keep[order[:n_prune].to(values.device)] = False
    return keep


def quantize_and_encode(model: nn.Module, masks: Masks, p: CodingParams, ctx: RunContext,
                        extra_stats: dict | None = None, extras: dict | None = None) -> Compressed:
    """k-means codebooks for the kept weights of every coded tensor, centroid fine-tuning with the
    pruned weights at exactly zero, then the sparse message; ``model`` supplies biases/BatchNorm."""
    apply_masks(model, masks)
    np_masks = {n: m.detach().cpu().numpy() for n, m in masks.items()}
    codes = quantize_tensors(model, p.levels, ctx.seed, p.init, masks=np_masks)
    if p.finetune_epochs:
        CodebookModel(model, codes).finetune(
            ctx.task.data.train, p.finetune_epochs, p.finetune_lr, ctx.task.recipe.batch_size,
            ctx.generator(7), ctx.task.data.task_type, ctx.progress)
    encoded = encode_model(model, codes, True, p.codebook_precision, p.rest_precision)
    kept = {c.name: int(len(c.kept())) for c in codes}
    sizes = {c.name: int(c.size) for c in codes}
    n_rest = sum(t.numel() for n, t in encoded.model.named_parameters() if n not in kept)
    n_kept = sum(kept.values())
    stats = {"n_params_kept": n_kept + n_rest, "n_weights_kept": n_kept,
             "sparsity": 1.0 - n_kept / max(sum(sizes.values()), 1), **(extra_stats or {})}
    return Compressed(
        message=encoded.message, model=encoded.model, layers=encoded.layers, stats=stats,
        extras={"section_bits": encoded.section_bits, "kept": kept, "sizes": sizes,
                "levels": {c.name: int(len(c.codebook)) for c in codes}, **(extras or {})},
        sections=encoded.sections,
    )


def decode_sparse(message: bytes, prior: Prior, p: CodingParams) -> nn.Module:
    return decode_model(message, prior.make_model(), True, p.codebook_precision, p.rest_precision)


# ------------------------------------------------------------------------------------- the plugin
@dataclass(frozen=True)
class PruneParams(CodingParams):
    sparsity: float = 0.8  # fraction of the coded weights pruned
    scope: Literal["global", "layer"] = "global"
    layer_sparsity: tuple[float, ...] = ()  # one target per coded tensor (model order); overrides both
    steps: int = 3
    retrain_epochs: int = 2
    retrain_lr: float = 1e-3

    def validate(self) -> None:
        super().validate()
        check_fractions("sparsity", self.sparsity)
        check_fractions("layer_sparsity", self.layer_sparsity)
        if self.steps < 1:
            raise ValueError("parameter 'steps' must be >= 1")
        if self.retrain_epochs < 0:
            raise ValueError("parameter 'retrain_epochs' must be >= 0")
        if self.retrain_lr <= 0:
            raise ValueError("parameter 'retrain_lr' must be > 0")


class Prune(Compressor):
    name: ClassVar[str] = "prune"
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = ("iterative magnitude pruning with retraining, then per-layer codebook "
                                  "quantization and sparse entropy coding (Han et al.)")
    Params = PruneParams

    def targets(self, model: nn.Module) -> dict[str, float] | float:
        p = self.params
        names = coded_tensor_names(model)
        if p.layer_sparsity:
            if len(p.layer_sparsity) != len(names):
                raise ValueError(f"parameter 'layer_sparsity' needs {len(names)} values (one per coded "
                                 f"tensor: {', '.join(names)}), got {len(p.layer_sparsity)}")
            return dict(zip(names, map(float, p.layer_sparsity)))
        if p.scope == "layer":
            return {n: p.sparsity for n in names}
        return p.sparsity

    def compress(self, ctx: RunContext) -> Compressed:
        p = self.params
        model = ctx.base_model()
        final = self.targets(model)
        generator = ctx.generator(1)
        masks: Masks = {}
        for step in range(1, p.steps + 1):
            frac = step / p.steps
            if isinstance(final, dict):
                target: dict[str, float] | float = {n: 1 - (1 - s) ** frac for n, s in final.items()}
            else:
                target = 1 - (1 - final) ** frac
            masks = magnitude_masks(model, target)
            masked_fit(model, masks, ctx.task.data.train, p.retrain_epochs, p.retrain_lr,
                       ctx.task.recipe.batch_size, generator, ctx.task.data.task_type, ctx.progress,
                       desc=f"prune step {step}/{p.steps}")
        pruned_train_err = ctx.evaluate(model, ctx.task.data.train)
        return quantize_and_encode(model, masks, p, ctx, {"pruned_train_err": pruned_train_err})

    def decode(self, message: bytes, prior: Prior) -> nn.Module:
        return decode_sparse(message, prior, self.params)


@hookimpl
def bench_register_compressors(register) -> None:
    register(Prune)
