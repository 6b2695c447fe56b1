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

The masked training and the quantize-and-encode tail live in ``bench.kit.pruning`` (``dns`` uses them too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from torch import nn

from bench.api import Between, Compressed, Compressor, Ge, Gt, Prior, RunContext, hookimpl, sparse_compressed
from bench.kit.pruning import CodingParams, Masks, decode_sparse, magnitude_masks, masked_fit
from bench.kit.quantization import coded_tensor_names

# ------------------------------------------------------------------------------------- the plugin
@dataclass(frozen=True)
class PruneParams(CodingParams):
    sparsity: Annotated[float, Between(0, 1)] = 0.8  # fraction of the coded weights pruned
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
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = ("iterative magnitude pruning with retraining, then per-layer codebook "
                                  "quantization and sparse entropy coding (Han et al.)")
    Params = PruneParams
    decoder_params: ClassVar[tuple[str, ...]] = ("codebook_precision", "rest_precision")

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
        generator = ctx.generator("prune.retrain")
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
        return sparse_compressed(model, masks, p, ctx, "prune.finetune", {"pruned_train_err": pruned_train_err})

    def decode(self, message: bytes, prior: Prior) -> nn.Module:
        return decode_sparse(message, prior.make_model(), self.params)



@hookimpl
def bench_register_compressors(register) -> None:
    register(Prune)
