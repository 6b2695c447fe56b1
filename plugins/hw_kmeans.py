"""Compressors ``hw-kmeans`` and ``drhw-kmeans``: post-training quantization of the trained base model by
Hessian-weighted K-means (Choi et al. 2017, "Towards the limit of network quantization") and by its
diameter-regularized variant (seed 001, Bu et al. 2021, Section 6 and Algorithm 1).

1. The diagonal curvature ``h`` of the training loss at the base model (``bench.kit.curvature``: the
   Gauss-Newton / Fisher diagonal, labels sampled from the model by default) weighs each weight.
2. ``hw-kmeans`` minimizes ``Σ_j h_j (w_j - c_{q_j})²`` (seed 001 eq. 30): assignments to the nearest
   centre, centres the curvature-weighted means. ``drhw-kmeans`` adds ``β max_{k1,k2} |c_k1 - c_k2|²``
   (eq. 34) and, with ``block = m > 1``, quantizes vectors of ``m`` consecutive weights with a diagonal
   ``H^(j)`` per vector (eq. 35) by Algorithm 1: each iteration assigns in the *unweighted* distance
   (eq. 36; where Algorithm 1 and eq. 35 differ, this follows Algorithm 1), then moves every centre to
   its cluster's weighted mean and the farthest pair towards each other with weight β (eq. 37, solved
   exactly as the 2x2 system it is). See ``bench.kit.quantization.weighted_kmeans``. The curvature here is
   that of the *mean* training loss, so eq. 34's β has no fixed scale across tasks; by default
   (``beta_scale='mass'``) β is multiplied by the clustered group's total curvature ``Σ h_j``, i.e.
   the penalty ``β·diameter²`` is weighed against the curvature-weighted mean squared error.
   ``beta_scale='absolute'`` takes β as in eq. 34.
3. Per layer (``scope='layer'``, one codebook per weight tensor) or network-wide (``'network'``, one
   shared codebook written once), ``levels`` = K centres (a list in bench.toml is a grid). With
   ``prune > 0`` the smallest weights of each layer (by magnitude, or by the saliency ``h w²`` of Optimal
   Brain Damage) are removed first and only the kept weights are clustered; their positions go in the
   message.
4. The message is ``bench.kit.quantization``'s layout: positions (if pruned), codebooks, entropy-coded
   assignments (constriction), and the biases at ``rest_precision``. Decoding needs only the
   architecture and this configuration, and reproduces the evaluated model exactly.

The curvature is computed on the training set only; it never enters the message (the decoder does
not need it). It is cached in memory per (task, seed, curvature settings) so a grid of K and β pays
for it once per process.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

import numpy as np
import torch

from bench.api import Between, Compressed, Compressor, Ge, Prior, RunContext, content_hash, hookimpl
from bench.kit.curvature import diagonal_curvature
from bench.kit.kmeans import weighted_quantize_tensors
from bench.kit.quantization import coded_tensor_names, decode_model, encode_model

#: What decode needs: whether positions are sent (prune > 0), the codebooks' layout and the precisions.
DECODER_PARAMS = ("prune", "scope", "codebook_precision", "rest_precision")
_CACHE: OrderedDict[str, dict[str, np.ndarray]] = OrderedDict()
_CACHE_SIZE = 4


@dataclass(frozen=True)
class HWKMeansParams:
    levels: Annotated[int, Ge(1)] = 8  # K, the codebook size (a list is a grid)
    scope: Literal["layer", "network"] = "layer"
    # layer: one codebook per weight tensor; network: one shared codebook, written once
    curvature: Literal["sampled", "exact", "empirical", "none"] = "sampled"
    # the diagonal curvature weighting the k-means: sampled/exact GGN, empirical Fisher, or none
    curvature_samples: Annotated[int, Ge(1)] = 1  # sampled labels per example (curvature = "sampled")
    curvature_examples: Annotated[int, Ge(0)] = 0  # training examples for the curvature (0: all)
    init: Literal["auto", "linear", "kmeans++", "random"] = "auto"
    # the centres' start: auto (linear for scalars, kmeans++ for blocks), linear, kmeans++ or random
    iterations: Annotated[int, Ge(1)] = 300  # k-means iterations at most
    prune: Annotated[float, Between(0, 1)] = 0.0  # fraction of each layer's weights removed before clustering
    prune_criterion: Literal["magnitude", "saliency"] = "magnitude"
    # which weights prune removes: smallest |w|, or smallest OBD saliency h·w²
    codebook_precision: Literal["float16", "float32"] = "float16"  # how the codebook travels in the message
    rest_precision: Literal["float16", "float32"] = "float16"
    # how biases and BatchNorm parameters and statistics travel in the message



@dataclass(frozen=True)
class DRHWKMeansParams(HWKMeansParams):
    beta: Annotated[float, Ge(0)] = 0.01  # diameter penalty β (0: plain HW K-means)
    beta_scale: Literal["mass", "absolute"] = "mass"  # β × the group's total curvature Σh, or β as is
    block: Annotated[int, Ge(1)] = 1  # block length m (vector quantization for m > 1)

    def validate(self) -> None:  # what a range cannot say
        if not np.isfinite(self.beta):
            raise ValueError("parameter 'beta' must be a finite number >= 0")


def base_curvature(ctx: RunContext, model: torch.nn.Module, kind: str, samples: int, examples: int) -> dict[str, np.ndarray]:
    """Diagonal curvature of the coded tensors of the base model (cached per task, seed and settings)."""
    names = coded_tensor_names(model)
    if kind == "none":
        return {n: np.ones(tuple(model.get_parameter(n).shape)) for n in names}
    key = content_hash({"task": ctx.task.config, "seed": ctx.seed, "kind": kind, "samples": samples,
                        "examples": examples, "device": str(ctx.device)})
    if key not in _CACHE:
        curv = diagonal_curvature(model, ctx.task.data.train, kind, ctx.task.data.task_type, samples=samples,
                                  generator=ctx.generator("hw-kmeans.curvature"), names=names,
                                  max_examples=examples or None)
        _CACHE[key] = {n: v.double().numpy() for n, v in curv.items()}
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return _CACHE[key]


def prune_masks(model: torch.nn.Module, curvature: dict[str, np.ndarray], fraction: float,
                criterion: str) -> dict[str, np.ndarray]:
    """Per layer, keep the ``1 - fraction`` weights of largest ``|w|`` (or saliency ``h w²``)."""
    masks = {}
    for name in coded_tensor_names(model):
        w = model.get_parameter(name).detach().cpu().double().numpy().ravel()
        score = np.abs(w) if criterion == "magnitude" else curvature[name].ravel() * w**2
        n_keep = int(round((1.0 - fraction) * w.size))
        mask = np.zeros(w.size, bool)
        mask[np.argsort(-score, kind="stable")[:n_keep]] = True
        masks[name] = mask
    return masks


class _HessianWeightedKMeans(Compressor):
    """Shared by both compressors; ``drhw-kmeans`` reads β and the block length from its parameters."""
    # named random streams at the offsets they had before plugins declared them (same messages)
    streams: ClassVar[dict[str, int]] = {"hw-kmeans.curvature": 101}

    def _beta_block(self) -> tuple[float, int]:
        return float(getattr(self.params, "beta", 0.0)), int(getattr(self.params, "block", 1))

    def _beta_scale(self) -> str:
        return str(getattr(self.params, "beta_scale", "absolute"))

    def compress(self, ctx: RunContext) -> Compressed:
        p = self.params
        beta, block = self._beta_block()
        model = ctx.base_model()
        start = time.perf_counter()
        curv = base_curvature(ctx, model, p.curvature, p.curvature_samples, p.curvature_examples)
        curvature_seconds = time.perf_counter() - start
        masks = prune_masks(model, curv, p.prune, p.prune_criterion) if p.prune > 0 else None
        original = {n: model.get_parameter(n).detach().cpu().double().numpy() for n in coded_tensor_names(model)}
        codes = weighted_quantize_tensors(model, curv, p.levels, ctx.seed, scope=p.scope, block=block, beta=beta,
                                          init=p.init, iterations=p.iterations, masks=masks,
                                          beta_scale=self._beta_scale())
        encoded = encode_model(model, codes, masks is not None, p.codebook_precision, p.rest_precision,
                               shared_codebook=p.scope == "network", block=block)
        coded = {n: encoded.model.get_parameter(n).detach().cpu().double().numpy() for n in original}
        taylor = 0.5 * sum(float((curv[n] * (coded[n] - original[n]) ** 2).sum()) for n in original)
        n_params = sum(t.numel() for t in encoded.model.parameters())
        pruned = sum(int((~m).sum()) for m in masks.values()) if masks else 0
        return Compressed(
            message=encoded.message, model=encoded.model, layers=encoded.layers,
            stats={"n_params_kept": n_params - pruned},
            extras={
                "section_bits": encoded.section_bits,
                "codewords": {c.name: c.n_codewords for c in codes},
                "diameter": {c.name: _diameter(c.codebook.reshape(-1, block)) for c in codes},
                "taylor_distortion": taylor,  # ½ Σ h (ŵ - w)², the second-order estimate of d_S
                "curvature_seconds": curvature_seconds,
            },
            sections=encoded.sections,
        )

    def decode(self, message: bytes, prior: Prior):
        p = self.params
        _, block = self._beta_block()
        return decode_model(message, prior.make_model(), p.prune > 0, p.codebook_precision, p.rest_precision,
                            shared_codebook=p.scope == "network", block=block)


def _diameter(codewords: np.ndarray) -> float:
    if len(codewords) < 2:
        return 0.0
    d2 = ((codewords[:, None, :].astype(np.float64) - codewords[None, :, :]) ** 2).sum(-1)
    return float(np.sqrt(d2.max()))


class HWKMeans(_HessianWeightedKMeans):
    name: ClassVar[str] = "hw-kmeans"
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = "Hessian-weighted K-means quantization of the trained model (Choi et al. 2017)"
    Params = HWKMeansParams
    decoder_params: ClassVar[tuple[str, ...]] = DECODER_PARAMS


class DRHWKMeans(_HessianWeightedKMeans):
    name: ClassVar[str] = "drhw-kmeans"
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = "diameter-regularized Hessian-weighted K-means, scalar or vector (seed 001 Alg. 1)"
    Params = DRHWKMeansParams
    decoder_params: ClassVar[tuple[str, ...]] = DECODER_PARAMS + ("block",)


@hookimpl
def bench_register_compressors(register) -> None:
    register(HWKMeans)
    register(DRHWKMeans)
