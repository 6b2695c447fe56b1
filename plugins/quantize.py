"""Compressor ``quantize``: post-training weight sharing per layer (k-means with ``levels`` centroids),
optionally fine-tuning the centroids on the training set, then entropy coding of the assignments.

Every linear and convolution weight gets its own codebook; biases and BatchNorm parameters and running
statistics go into the message at ``rest_precision``. See ``bench.kit.quantization`` for the layout.

``origin = prior`` (a data-dependent prior): the message codes the *difference* between the trained
model and the prior's model (trained on ``S_prior``, known to the decoder), every tensor of it; the
decoded model is the prior's model plus the decoded difference.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar, Literal

from torch import nn

from bench.api import Compressed, Compressor, Prior, RunContext, hookimpl
from bench.kit.pruning import QuantizationParams
from bench.kit.quantization import CodebookModel, decode_model, encode_model, quantize_tensors


@dataclass(frozen=True)
class QuantizeParams(QuantizationParams):
    origin: Literal["none", "prior"] = "none"
    # prior: code the difference to the data-dependent prior's model instead of the weights

    def validate(self) -> None:  # what a range cannot say
        if self.origin == "prior" and self.codebook_epochs:
            raise ValueError("parameter 'codebook_epochs' must be 0 with origin = 'prior' (the centroids of a "
                             "difference are not fine-tuned)")


class Quantize(Compressor):
    # named random streams at the offsets they had before plugins declared them (same messages)
    streams: ClassVar[dict[str, int]] = {"quantize.finetune": 1}
    name: ClassVar[str] = "quantize"
    description: ClassVar[str] = "per-layer k-means weight sharing (+ centroid fine-tuning) and entropy coding"
    Params = QuantizeParams
    decoder_params: ClassVar[tuple[str, ...]] = ("codebook_precision", "rest_precision", "origin")

    def compress(self, ctx: RunContext) -> Compressed:
        p = self.params
        model = ctx.base_model()
        if p.origin == "prior":
            return self._difference(model, ctx)
        codes = quantize_tensors(model, p.levels, ctx.seed, p.init)
        if p.codebook_epochs:
            CodebookModel(model, codes).finetune(
                ctx.task.data.train, p.codebook_epochs, p.codebook_lr, ctx.task.recipe.batch_size,
                ctx.generator("quantize.finetune"), ctx.task.data.task_type, ctx.progress)
        encoded = encode_model(model, codes, False, p.codebook_precision, p.rest_precision)
        n_params = sum(t.numel() for t in encoded.model.parameters())
        return Compressed(
            message=encoded.message, model=encoded.model, layers=encoded.layers,
            stats={"n_params_kept": n_params}, extras={"section_bits": encoded.section_bits},
            sections=encoded.sections,
        )

    def _difference(self, model: nn.Module, ctx: RunContext) -> Compressed:
        p = self.params
        reference = ctx.prior.prior_model()
        delta = combine(model, reference, -1.0)
        codes = quantize_tensors(delta, p.levels, ctx.seed, p.init)
        encoded = encode_model(delta, codes, False, p.codebook_precision, p.rest_precision)
        return Compressed(
            message=encoded.message, model=combine(reference, encoded.model, 1.0),
            stats={"n_params_kept": sum(t.numel() for t in model.parameters())},
            extras={"section_bits": encoded.section_bits, "origin": "prior"}, sections=encoded.sections,
        )

    def decode(self, message: bytes, prior: Prior):
        p = self.params
        decoded = decode_model(message, prior.make_model(), False, p.codebook_precision, p.rest_precision)
        return combine(prior.prior_model(), decoded, 1.0) if p.origin == "prior" else decoded


def combine(a: nn.Module, b: nn.Module, sign: float) -> nn.Module:
    """A copy of ``a`` whose every floating tensor is ``a + sign·b`` (float32, the same in compress
    and decode)."""
    out = copy.deepcopy(a)
    sb = b.state_dict()
    out.load_state_dict({k: (v + sign * sb[k].to(v.device)) if v.is_floating_point() else v
                         for k, v in a.state_dict().items()})
    return out.eval()


@hookimpl
def bench_register_compressors(register) -> None:
    register(Quantize)
