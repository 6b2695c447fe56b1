"""Compressor ``dns``: Dynamic Network Surgery (Guo, Yao, Chen, NIPS 2016) on the trained base model,
then the codebook quantization and sparse coding of ``prune`` (seed 002, Appendix B.1).

Surgery, as in the paper and its reference implementation:

* every coded tensor ``W`` has a mask ``T``; the forward pass uses ``W ⊙ T`` and the gradient with
  respect to ``W ⊙ T`` updates *all* of ``W`` (straight-through), so pruned weights keep moving and
  can come back;
* with probability ``p(t) = (1 + γt)^(-power)`` at step ``t`` (drawn per tensor, from the run's seed),
  and only before ``stop_fraction`` of the training steps, the mask is updated by
  ``h(w) = 0 if |w| <= a;  T if a < |w| <= b;  1 if |w| > b``, with ``a = (1 - margin)·τ`` and
  ``b = (1 + margin)·τ`` (the reference code's 0.9 and 1.1);
* ``rule = "std"`` (the paper): ``τ = max(mean|w| + c·std|w|, 0)`` per tensor, the moments of ``|w|``
  taken once over the base model's weights at the start, ``c`` per tensor (``c`` one value for all,
  or one per coded tensor);
* after ``stop_fraction`` the masks are frozen and training goes on (the masked weights no longer
  matter); the evaluated weights are ``W ⊙ T``.

Where seed 002 differs, and the options that follow it:

* seed 002 (B.1) ramps the multiple ``c`` piecewise constant from 0 to its final value: ``c_stages >
  1`` splits the surgery phase into that many equal stages with ``c·i/(c_stages-1)``, i = 0..;
* it makes ``p`` piecewise constant from 1 down to 1e-3 rather than ``(1+γt)^-power``: not offered,
  the paper's decay is used;
* for MobileNet (B.2) it sets the threshold as a quantile of ``|w|`` raised on Zhu and Gupta's cubic
  schedule: ``rule = "quantile"`` with the target ``sparsity`` (same for every tensor, or
  ``layer_sparsity``), ``τ`` the scheduled quantile of the current ``|w|``; the last mask update is
  forced at the end of the surgery phase without margin, so the masks reach the target exactly;
* the reference implementation also prunes biases; here biases are never pruned (they travel in the
  message's ``rest`` section).

By default (``rule = "quantile"``, ``sparsity = None``, ``levels = None``) the encoder runs the surgery
from the base model once per rung of ``SPARSITY_LADDER``, codes each at every codebook size of
``LEVELS_LADDER``, and keeps the message with the lowest Occam certificate (``bench.api.best_compressed``);
the message holds the kept positions and the codebooks, so the choice needs no header. Setting
``sparsity``, ``layer_sparsity``, ``rule = "std"`` or ``levels`` by hand fixes that choice.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Annotated, ClassVar, Literal

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from bench.api import (Between, Compressed, Compressor, Ge, Gt, Le, Prior, RunContext, best_compressed, hookimpl,
                       scored_trial, sparse_compressed)
from bench.kit.quantization import LEVELS_LADDER, coded_tensor_names
from bench.kit.pruning import CodingParams, Masks, decode_sparse
from bench.kit.training import Hooks, train_loop


def surgery_update(weight: torch.Tensor, mask: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """One DNS mask update: prune where ``|w| <= a``, splice back where ``|w| > b``, keep otherwise."""
    if a > b:
        raise ValueError(f"the pruning threshold a={a} exceeds the splicing threshold b={b}")
    mag = weight.detach().abs()
    return torch.where(mag <= a, torch.zeros_like(mask), torch.where(mag > b, torch.ones_like(mask), mask))


def std_threshold(weight: torch.Tensor, c: float) -> float:
    """The paper's per-layer rule: ``max(mean|w| + c·std|w|, 0)``."""
    mag = weight.detach().abs().double().flatten()
    return max(float(mag.mean() + c * mag.std(unbiased=False)), 0.0)


def quantile_threshold(weight: torch.Tensor, sparsity: float) -> float:
    """The magnitude below which (inclusive) a fraction ``sparsity`` of the weights lie."""
    mag = torch.sort(weight.detach().abs().double().flatten()).values
    k = int(round(sparsity * mag.numel()))
    return float(mag[k - 1]) if k > 0 else -math.inf  # -inf: nothing is pruned


def cubic_schedule(final: float, progress: float) -> float:
    """Zhu and Gupta's gradual schedule ``s·(1 - (1 - t)^3)``, ``t`` the fraction of the ramp done."""
    t = min(max(progress, 0.0), 1.0)
    return final * (1.0 - (1.0 - t) ** 3)


#: The sparsities the encoder tries by default (one surgery from the base model each).
SPARSITY_LADDER: tuple[float, ...] = (0.9, 0.97, 0.99, 0.997)


@dataclass(frozen=True)
class DNSParams(CodingParams):
    epochs: Annotated[int, Ge(1)] = 4  # surgery training epochs (masks updated, all weights trained)
    lr: Annotated[float, Gt(0)] = 1e-3  # Adam's rate for the surgery training
    rule: Literal["std", "quantile"] = "quantile"
    # std: threshold mean|w| + c·std|w| (the paper); quantile: a scheduled share of |w|
    c: tuple[float, ...] = (1.0,)  # rule "std": one multiple for every tensor, or one per coded tensor
    c_stages: Annotated[int, Ge(1)] = 1  # > 1: c ramps piecewise constant from 0 (seed 002)
    sparsity: Annotated[float | None, Between(0, 1)] = None  # rule "quantile": target fraction pruned per tensor;
    # None: the encoder picks it from SPARSITY_LADDER by the certificate
    levels: Annotated[int | None, Ge(1)] = None  # codebook size per coded tensor; None: each of LEVELS_LADDER
    layer_sparsity: Annotated[tuple[float, ...], Between(0, 1)] = ()  # rule "quantile": one target per coded tensor
    gamma: Annotated[float, Ge(0)] = 1e-4  # mask updates happen with probability (1 + gamma·t)^-power at step t
    power: Annotated[float, Ge(0)] = 1.0  # see gamma
    margin: Annotated[float, Between(0, 1)] = 0.1  # prune at |w| <= (1 - margin)·τ, splice back at |w| > (1 + margin)·τ
    stop_fraction: Annotated[float, Gt(0), Le(1)] = 0.75  # share of the training steps after which the masks are frozen

    def validate(self) -> None:  # what a range cannot say
        if not self.c:
            raise ValueError("parameter 'c' must have at least one value")


class Surgery:
    """The DNS training loop on a model's coded tensors (usable on its own, e.g. in tests)."""

    def __init__(self, model: nn.Module, p: DNSParams, total_steps: int, rng: np.random.Generator) -> None:
        self.model, self.p, self.rng = model, p, rng
        self.names = coded_tensor_names(model)
        self.total_steps = total_steps
        self.stop_step = max(1, int(math.ceil(p.stop_fraction * total_steps)))
        self.masks: Masks = {n: torch.ones_like(model.get_parameter(n), dtype=torch.float32) for n in self.names}
        self.c = self._per_tensor(p.c, "c")
        self.sparsity = (self._per_tensor(p.layer_sparsity, "layer_sparsity") if p.layer_sparsity
                         else {n: p.sparsity or 0.0 for n in self.names})
        self.moments = {n: self._moments(model.get_parameter(n)) for n in self.names}

    def _per_tensor(self, values: tuple[float, ...], key: str) -> dict[str, float]:
        if len(values) == 1:
            return {n: float(values[0]) for n in self.names}
        if len(values) != len(self.names):
            raise ValueError(f"parameter '{key}' needs 1 or {len(self.names)} values (one per coded tensor: "
                             f"{', '.join(self.names)}), got {len(values)}")
        return dict(zip(self.names, map(float, values)))

    @staticmethod
    def _moments(weight: torch.Tensor) -> tuple[float, float]:
        mag = weight.detach().abs().double().flatten()
        return float(mag.mean()), float(mag.std(unbiased=False))

    def threshold(self, name: str, step: int) -> float:
        p = self.p
        done = step / self.stop_step
        if p.rule == "std":
            c = self.c[name]
            if p.c_stages > 1:
                stage = min(int(done * p.c_stages), p.c_stages - 1)
                c = c * stage / (p.c_stages - 1)
            mean, std = self.moments[name]
            return max(mean + c * std, 0.0)
        return quantile_threshold(self.model.get_parameter(name), cubic_schedule(self.sparsity[name], done))

    def update_probability(self, step: int) -> float:
        return (1.0 + self.p.gamma * step) ** (-self.p.power)

    def maybe_update(self, step: int) -> None:
        """The mask updates of step ``step`` (one random draw per tensor, always drawn)."""
        draws = self.rng.random(len(self.names))
        if step >= self.stop_step:
            return
        final = self.p.rule == "quantile" and step == self.stop_step - 1
        prob = self.update_probability(step)
        for name, r in zip(self.names, draws):
            if final or prob > r:
                tau = self.threshold(name, step + 1 if final else step)
                margin = 0.0 if final else self.p.margin
                self.masks[name] = surgery_update(self.model.get_parameter(name), self.masks[name],
                                                  (1 - margin) * tau, (1 + margin) * tau)

    def effective(self) -> dict[str, torch.Tensor]:
        """``W ⊙ T`` in the forward pass, with the gradient passed straight through to all of ``W``."""
        out = {}
        for name in self.names:
            w = self.model.get_parameter(name)
            out[name] = w - (w * (1 - self.masks[name])).detach()
        return out

    def forward(self, xb: torch.Tensor) -> torch.Tensor:
        """The network with ``W ⊙ T`` (gradients reach every weight)."""
        return functional_call(self.model, self.effective(), (xb,), strict=False)

    def finish(self) -> Masks:
        """Write ``W ⊙ T`` into the model and return the masks as bool tensors."""
        with torch.no_grad():
            for name in self.names:
                self.model.get_parameter(name).mul_(self.masks[name])
        return {n: m.bool() for n, m in self.masks.items()}

    def sparsity_now(self) -> float:
        kept = sum(float(m.sum()) for m in self.masks.values())
        return 1.0 - kept / sum(m.numel() for m in self.masks.values())


class DNS(Compressor):
    # named random streams at the offsets they had before plugins declared them (same messages)
    streams: ClassVar[dict[str, int]] = {"dns.surgery": 2, "dns.finetune": 7}
    name: ClassVar[str] = "dns"
    version: ClassVar[str] = "0.2.0"  # 0.2: quantile rule, sparsity and codebook size chosen by the encoder
    description: ClassVar[str] = ("Dynamic Network Surgery (prune and splice), then per-layer codebook "
                                  "quantization and sparse entropy coding (seed 002 App. B)")
    Params = DNSParams
    decoder_params: ClassVar[tuple[str, ...]] = ("codebook_precision", "rest_precision")

    def compress(self, ctx: RunContext) -> Compressed:
        p = self.params
        levels = (p.levels,) if p.levels is not None else LEVELS_LADDER
        fixed = p.rule == "std" or p.sparsity is not None or bool(p.layer_sparsity)
        if fixed and len(levels) == 1:
            return self._code(*self._surgery(ctx, p), levels[0], ctx)
        trials = []
        for rung in ((p.sparsity,) if fixed else SPARSITY_LADDER):
            model, masks, stats, extras = self._surgery(ctx, p if fixed else replace(p, sparsity=rung))
            for size in levels:  # each on a copy: coding moves the weights
                out = self._code(copy.deepcopy(model), masks, stats, extras, size, ctx)
                trials.append(scored_trial(ctx, {"sparsity": rung, "levels": size}, out))
        return best_compressed(ctx, trials)

    def _surgery(self, ctx: RunContext, p: DNSParams) -> tuple[nn.Module, Masks, dict, dict]:
        """The base model after surgery under ``p``, its masks, and what the row reports of it."""
        model = ctx.base_model()
        train = ctx.task.data.train
        batch_size = ctx.task.recipe.batch_size
        steps_per_epoch = -(-len(train) // batch_size)
        surgery = Surgery(model, p, p.epochs * steps_per_epoch, np.random.default_rng(ctx.seed + 11))
        opt = torch.optim.Adam([q for q in model.parameters() if q.requires_grad], lr=p.lr)
        device = next(model.parameters()).device

        def postfix(stats: dict, bar) -> None:
            bar.set_postfix(sparsity=f"{surgery.sparsity_now():.4f}")

        model.train()
        train_loop(opt, surgery.forward, train, epochs=p.epochs, batch_size=batch_size,
                   generator=ctx.generator("dns.surgery"), device=device, task_type=ctx.task.data.task_type,
                   hooks=Hooks(before_batch=surgery.maybe_update, after_epoch=postfix), progress=ctx.progress,
                   desc="surgery", layout=model)
        model.eval()
        masks = surgery.finish()
        stats = {"surgery_train_err": ctx.evaluate(model, train), "surgery_sparsity": surgery.sparsity_now()}
        thresholds = {n: surgery.threshold(n, surgery.stop_step) for n in surgery.names}
        return model, masks, stats, {"final_thresholds": thresholds}

    def _code(self, model: nn.Module, masks: Masks, stats: dict, extras: dict, levels: int,
              ctx: RunContext) -> Compressed:
        return sparse_compressed(model, masks, replace(self.params, levels=levels), ctx, "dns.finetune", stats, extras)

    def decode(self, message: bytes, prior: Prior) -> nn.Module:
        return decode_sparse(message, prior.make_model(), self.params)


@hookimpl
def bench_register_compressors(register) -> None:
    register(DNS)
