"""Compressor ``prune``: iterative magnitude pruning with retraining (Han et al. 2015, the pruning
baseline of seed 000 Appendix A), then per-layer codebook quantization of the kept weights (k-means,
centroids fine-tuned, pruned weights exactly zero) and the sparse message of ``bench.kit.quantization``:
per coded tensor the kept positions (gap-coded), the codebook and the entropy-coded assignments, then
the biases and BatchNorm buffers.

Schedule: ``steps`` rounds; round ``i`` prunes to the sparsity ``1 - (1 - s)^(i/steps)`` (the kept
fraction shrinks geometrically to ``1 - s``) by weight magnitude, over all coded tensors together
(``scope = "global"``) or in each tensor separately (``"layer"``; ``layer_sparsity`` sets one target
per coded tensor), and retrains ``retrain_epochs`` epochs with the pruned weights held at zero
(their gradients masked). Everything derives from the run's seed.

By default (``sparsity = None``, ``levels = None``) the encoder chooses both: it walks ``SPARSITY_LADDER``
upwards, one pruning round and its retraining per rung, codes every rung at each codebook size of
``LEVELS_LADDER``, and keeps the message with the lowest Occam certificate (``bench.api.best_compressed``).
The choice needs no header: the message already holds the kept positions and each tensor's codebook.
Setting ``sparsity`` (or ``layer_sparsity``) or ``levels`` by hand fixes it.

The masked training and the quantize-and-encode tail live in ``bench.kit.pruning`` (``dns`` uses them too).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Annotated, ClassVar, Literal

from torch import nn

from bench.api import (Between, Compressed, Compressor, Ge, Gt, Prior, RunContext, best_compressed, hookimpl,
                       scored_trial, sparse_compressed)
from bench.kit.pruning import CodingParams, Masks, decode_sparse, magnitude_masks, masked_fit
from bench.kit.quantization import LEVELS_LADDER, coded_tensor_names

#: The sparsities the encoder tries by default, walked upwards (one pruning round and its retraining each).
SPARSITY_LADDER: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999)


# ------------------------------------------------------------------------------------- the plugin
@dataclass(frozen=True)
class PruneParams(CodingParams):
    sparsity: Annotated[float | None, Between(0, 1)] = None  # fraction of the coded weights pruned; None: the
    # encoder picks it from SPARSITY_LADDER by the certificate
    levels: Annotated[int | None, Ge(1)] = None  # codebook size per coded tensor; None: each of LEVELS_LADDER
    scope: Literal["global", "layer"] = "global"
    # global: one magnitude threshold over all coded tensors; layer: one per tensor
    layer_sparsity: Annotated[tuple[float, ...], Between(0, 1)] = ()  # one target per coded tensor; overrides both
    steps: Annotated[int, Ge(1)] = 3  # pruning rounds; round i prunes to 1 - (1 - sparsity)^(i/steps)
    retrain_epochs: Annotated[int, Ge(0)] = 2  # masked retraining of the weights after each round
    retrain_lr: Annotated[float, Gt(0)] = 1e-3  # Adam's rate for the masked retraining


class Prune(Compressor):
    # named random streams at the offsets they had before plugins declared them (same messages)
    streams: ClassVar[dict[str, int]] = {"prune.retrain": 1, "prune.finetune": 7}
    name: ClassVar[str] = "prune"
    version: ClassVar[str] = "0.2.0"  # 0.2: sparsity and codebook size chosen by the encoder by default
    description: ClassVar[str] = ("iterative magnitude pruning with retraining, then per-layer codebook "
                                  "quantization and sparse entropy coding (Han et al.)")
    Params = PruneParams
    decoder_params: ClassVar[tuple[str, ...]] = ("codebook_precision", "rest_precision")

    def targets(self, model: nn.Module, sparsity: float) -> dict[str, float] | float:
        p = self.params
        names = coded_tensor_names(model)
        if p.layer_sparsity:
            if len(p.layer_sparsity) != len(names):
                raise ValueError(f"parameter 'layer_sparsity' needs {len(names)} values (one per coded "
                                 f"tensor: {', '.join(names)}), got {len(p.layer_sparsity)}")
            return dict(zip(names, map(float, p.layer_sparsity)))
        if p.scope == "layer":
            return {n: sparsity for n in names}
        return sparsity

    def compress(self, ctx: RunContext) -> Compressed:
        p = self.params
        model = ctx.base_model()
        generator = ctx.generator("prune.retrain")
        fixed = p.sparsity is not None or bool(p.layer_sparsity)
        levels = (p.levels,) if p.levels is not None else LEVELS_LADDER
        if fixed:  # one target, reached in `steps` rounds
            masks = self._prune(model, self.targets(model, p.sparsity or 0.0), p.steps, generator, ctx)
            if len(levels) == 1:
                return self._code(model, masks, levels[0], ctx)
            return best_compressed(ctx, self._trials(model, masks, p.sparsity, levels, ctx))
        trials = []
        for rung in SPARSITY_LADDER:  # one round per rung, each from the last
            masks = self._prune(model, self.targets(model, rung), 1, generator, ctx)
            trials += self._trials(model, masks, rung, levels, ctx)
        return best_compressed(ctx, trials)

    def _prune(self, model: nn.Module, final: dict[str, float] | float, steps: int, generator, ctx: RunContext) -> Masks:
        """Prune in ``steps`` rounds to ``final`` (the kept fraction shrinking geometrically from what the
        model keeps now), retraining after each."""
        p = self.params
        masks: Masks = {}
        for step in range(1, steps + 1):
            frac = step / steps
            if isinstance(final, dict):
                target: dict[str, float] | float = {n: 1 - (1 - s) ** frac for n, s in final.items()}
            else:
                target = 1 - (1 - final) ** frac
            masks = magnitude_masks(model, target)
            masked_fit(model, masks, ctx.task.data.train, p.retrain_epochs, p.retrain_lr,
                       ctx.task.recipe.batch_size, generator, ctx.task.data.task_type, ctx.progress,
                       desc=f"prune step {step}/{steps}")
        return masks

    def _code(self, model: nn.Module, masks: Masks, levels: int, ctx: RunContext) -> Compressed:
        pruned_train_err = ctx.evaluate(model, ctx.task.data.train)
        return sparse_compressed(model, masks, replace(self.params, levels=levels), ctx, "prune.finetune",
                                 {"pruned_train_err": pruned_train_err})

    def _trials(self, model: nn.Module, masks: Masks, sparsity: float | None, levels: tuple[int, ...],
                ctx: RunContext) -> list:
        """The pruned model coded at each codebook size (each on a copy: coding moves the weights)."""
        return [scored_trial(ctx, {"sparsity": sparsity, "levels": size},
                             self._code(copy.deepcopy(model), masks, size, ctx)) for size in levels]

    def decode(self, message: bytes, prior: Prior) -> nn.Module:
        return decode_sparse(message, prior.make_model(), self.params)



@hookimpl
def bench_register_compressors(register) -> None:
    register(Prune)
