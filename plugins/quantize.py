"""Compressor ``quantize``: post-training weight sharing per layer (k-means with ``levels`` centroids),
optionally fine-tuning the centroids on the training set, then entropy coding of the assignments.

Every linear and convolution weight gets its own codebook; biases and BatchNorm parameters and running
statistics go into the message at ``rest_precision``. See ``bench.quantization`` for the layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from bench.contracts import Compressed, Compressor, Prior, RunContext
from bench.hookspecs import hookimpl
from bench.quantization import CodebookModel, decode_model, encode_model, quantize_tensors


@dataclass(frozen=True)
class QuantizeParams:
    levels: int = 8
    init: Literal["linear", "kmeans++"] = "linear"
    finetune_epochs: int = 0
    finetune_lr: float = 1e-4
    codebook_precision: Literal["float16", "float32"] = "float16"
    rest_precision: Literal["float16", "float32"] = "float16"

    def validate(self) -> None:
        if self.levels < 1:
            raise ValueError("parameter 'levels' must be >= 1")
        if self.finetune_epochs < 0:
            raise ValueError("parameter 'finetune_epochs' must be >= 0")
        if self.finetune_lr <= 0:
            raise ValueError("parameter 'finetune_lr' must be > 0")


class Quantize(Compressor):
    name: ClassVar[str] = "quantize"
    description: ClassVar[str] = "per-layer k-means weight sharing (+ centroid fine-tuning) and entropy coding"
    Params = QuantizeParams

    def compress(self, ctx: RunContext) -> Compressed:
        p = self.params
        model = ctx.base_model()
        codes = quantize_tensors(model, p.levels, ctx.seed, p.init)
        if p.finetune_epochs:
            CodebookModel(model, codes).finetune(
                ctx.task.data.train, p.finetune_epochs, p.finetune_lr, ctx.task.recipe.batch_size,
                ctx.generator(1), ctx.task.data.task_type, ctx.progress)
        encoded = encode_model(model, codes, False, p.codebook_precision, p.rest_precision)
        n_params = sum(t.numel() for t in encoded.model.parameters())
        return Compressed(
            message=encoded.message, model=encoded.model, layers=encoded.layers,
            stats={"n_params_kept": n_params}, extras={"section_bits": encoded.section_bits},
            sections=encoded.sections,
        )

    def decode(self, message: bytes, prior: Prior):
        p = self.params
        return decode_model(message, prior.make_model(), False, p.codebook_precision, p.rest_precision)


@hookimpl
def bench_register_compressors(register) -> None:
    register(Quantize)
