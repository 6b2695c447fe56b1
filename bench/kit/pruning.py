"""Pruning: magnitude masks, masked retraining (pruned weights held at exactly zero), and the
quantize-and-encode tail of a pruned model (per-layer k-means codebooks of the kept weights, centroid
fine-tuning, the sparse message of ``bench.kit.quantization``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Callable, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from bench.kit.ranges import Ge, Gt
from bench.kit.quantization import (CodebookModel, EncodedModel, coded_tensor_names, decode_model, encode_model,
                                    quantize_tensors)
from bench.kit.training import Hooks, train_loop
from bench.kit.types import Split

Masks = dict[str, torch.Tensor]  # coded tensor name -> bool tensor of its shape (True: kept)

__all__ = ["CodingParams", "Masks", "QuantizationParams", "SparseCode", "apply_masks",
           "decode_sparse", "magnitude_masks", "masked_fit", "quantize_and_encode"]


@dataclass(frozen=True)
class QuantizationParams:
    """Per-layer k-means codebooks: ``levels``, their initialization, centroid fine-tuning, precisions."""

    levels: Annotated[int, Ge(1)] = 8  # codebook size per coded tensor (k-means centroids)
    init: Literal["linear", "kmeans++"] = "linear"
    # the centroids' start: evenly spaced between the extremes, or k-means++ seeding
    codebook_epochs: Annotated[int, Ge(0)] = 0  # epochs of centroid tuning (the weights stay on the codebook)
    codebook_lr: Annotated[float, Gt(0)] = 1e-4  # Adam's rate for centroid tuning
    codebook_precision: Literal["float16", "float32"] = "float16"  # how the codebook travels in the message
    rest_precision: Literal["float16", "float32"] = "float16"
    # how biases and BatchNorm parameters and statistics travel in the message

    #: Names one plugin used for another thing: in every plugin, ``codebook_*`` tunes the centroids and
    #: ``finetune_*`` trains the weights.
    RETIRED: ClassVar[dict[str, str]] = {
        "finetune_epochs": "renamed: use codebook_epochs (epochs of centroid tuning; finetune_epochs trains "
                           "the weights, as in vibnet)",
        "finetune_lr": "renamed: use codebook_lr (the rate of centroid tuning)",
    }


@dataclass(frozen=True)
class CodingParams(QuantizationParams):
    """The quantize-and-encode tail of a pruned model (the centroids are fine-tuned for one epoch by
    default)."""

    codebook_epochs: Annotated[int, Ge(0)] = 1


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
    device = next(model.parameters()).device
    params = {name: model.get_parameter(name) for name in masks}

    def mask_gradients() -> None:
        for name, p in params.items():
            if p.grad is not None:
                p.grad.mul_(masks[name])

    apply_masks(model, masks)
    model.train()
    train_loop(opt, model, train, epochs=epochs, batch_size=batch_size, generator=generator, device=device,
               task_type=task_type, progress=progress, desc=desc,
               hooks=Hooks(before_step=mask_gradients, after_step=lambda: apply_masks(model, masks),
                           after_epoch=lambda stats, bar: None))
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


@dataclass
class SparseCode:
    """A pruned model coded: the message layout's output and the counts for the tables."""

    encoded: EncodedModel
    stats: dict
    extras: dict


def quantize_and_encode(model: nn.Module, masks: Masks, p: CodingParams, seed: int, train: Split, batch_size: int,
                        generator: torch.Generator, task_type: str, progress: Callable | None = None,
                        extra_stats: dict | None = None, extras: dict | None = None) -> SparseCode:
    """k-means codebooks for the kept weights of every coded tensor, centroid fine-tuning with the
    pruned weights at exactly zero (``generator`` shuffles), then the sparse message; ``model`` supplies
    biases/BatchNorm."""
    apply_masks(model, masks)
    np_masks = {n: m.detach().cpu().numpy() for n, m in masks.items()}
    codes = quantize_tensors(model, p.levels, seed, p.init, masks=np_masks)
    if p.codebook_epochs:
        CodebookModel(model, codes).finetune(train, p.codebook_epochs, p.codebook_lr, batch_size, generator,
                                             task_type, progress)
    encoded = encode_model(model, codes, True, p.codebook_precision, p.rest_precision)
    kept = {c.name: int(len(c.kept())) for c in codes}
    sizes = {c.name: int(c.size) for c in codes}
    n_rest = sum(t.numel() for n, t in encoded.model.named_parameters() if n not in kept)
    n_kept = sum(kept.values())
    stats = {"n_params_kept": n_kept + n_rest, "n_weights_kept": n_kept,
             "sparsity": 1.0 - n_kept / max(sum(sizes.values()), 1), **(extra_stats or {})}
    return SparseCode(encoded, stats, {"section_bits": encoded.section_bits, "kept": kept, "sizes": sizes,
                                       "levels": {c.name: int(len(c.codebook)) for c in codes}, **(extras or {})})


def decode_sparse(message: bytes, template: nn.Module, p: CodingParams) -> nn.Module:
    """The inverse of :func:`quantize_and_encode`; ``template`` is the architecture (the prior's model)."""
    return decode_model(message, template, True, p.codebook_precision, p.rest_precision)
