"""Bound ``catoni``: Catoni's PAC-Bayes bound (seed 002, Theorem 2.1). α is fixed in advance and
recorded; Catoni's λ is optimized and paid for inside the bound.

Default (``robust = false``): a point mass on the decoded model, with the KL of the Occam prior of its
message (BOUNDS.md sections 1-2).

``robust = true``: the robustness-adjusted bound of seed 002, Theorem 4.3 (BOUNDS.md section 3) for
compressors that expose per-layer ``(S, C, Q)`` and their message sections. The stochastic classifier
adds ``N(0, σ_l²)`` noise to every kept weight of layer ``l`` before each prediction; the prior is, per
layer, a Gaussian mixture with scale ``λ_l`` over the codebook. The KL is

    (ℓ' + Σ_l log2(G + 1) + len_δ(ℓ') + L(c))·ln 2 + Σ_l Σ_{i ∈ S_l} KL(N(c_{q_i}, σ_l²) ‖ Σ_j N(c_j, λ_l²))

* ``ℓ'`` is the real message's length with each noisy layer's coded ``Q`` section replaced by ``Q`` at
  the fixed length ``k_l⌈log2 r_l⌉`` (a variable-length ``Q`` breaks the per-coordinate factorization);
  everything else in the message (positions, codebooks, the ``rest`` section of biases and BatchNorm,
  the container's section lengths) is counted as it is. That modified message is still a prefix code
  decodable from the prior, so ``len_δ`` (Elias delta) is its length code.
* Per layer, one of ``G + 1`` options is chosen and paid (``log2(G + 1)`` bits): a prior scale ``λ_l``
  from a geometric grid of ``G`` values fixed in advance, or "no noise" (the layer stays a point mass
  and keeps its coded ``Q``). The row's ``message_bits`` is ``ℓ'`` plus these choice bits (the code the
  prior is built on); the configuration bits ``L(c)`` are the harness's (``ctx.config_bits``).
* ``σ_l`` is a posterior parameter, free of charge: chosen to minimize the bound estimated on
  ``sigma_select_examples`` training examples (never test data), with ``σ_l = s_l · rms(kept weights of
  l)``; first one common multiple ``s`` from ``sigma_grid``, then per-layer refinements (×½, ×2, or no
  noise) while the estimate improves. The estimate uses common random numbers (one generator seed).
  ``noise = "always"`` keeps some noise on every layer (the search never picks σ = 0), for when the
  stochastic classifier itself is what is to be certified.
* The stochastic training error is estimated afresh (another generator seed) on the whole training
  set, ``mc_passes`` times, one weight draw per prediction (``bench.kit.stochastic``), and bounded by
  ``kl⁻¹(ê_MC, ln(2/δ'')/m)`` with ``m = n·mc_passes``, ``δ' = delta_prime_fraction·δ`` and ``δ'' =
  δ'·2^-L(c)`` (each configuration's Monte-Carlo term at its share of δ', BOUNDS.md §1); Catoni's
  bound is then taken at confidence ``δ - δ'``. Every parameter is paid (the σ search and the Monte
  Carlo decide which classifier is certified and with which draws). The row certifies that stochastic classifier (``target =
  stochastic``) and hands the harness its posterior, which measures its own test error. When the
  search leaves every layer without noise the classifier is the decoded model: its training error is
  used as is, but ``δ'`` is still spent (choosing between ``δ`` and ``δ - δ'`` by the data would cost
  up to 1.1 δ).

Everything derives from the run's seed, so ``bench verify`` recomputes the same bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch

from bench.kit import bounds as bounds_math
from bench.api import Bound, BoundResult, Evaluated, Ge, Gt, LayerCode, Lt, RunContext, Split, classification_only, hookimpl
from bench.kit.stochastic import NoiseSpec, NoisyPosterior, best_prior_scale, noisy_error_count

LN2 = math.log(2.0)


@dataclass(frozen=True)
class CatoniParams:
    alpha: Annotated[float, Gt(1)] = bounds_math.DEFAULT_CATONI_ALPHA  # Catoni's α > 1, fixed in advance
    robust: bool = False  # true: the robustness-adjusted bound of seed 002 Thm 4.3 (a stochastic classifier)
    lambda_min: Annotated[float, Gt(0)] = 1e-5  # smallest prior scale λ of the geometric grid
    lambda_max: Annotated[float, Gt(0)] = 10.0  # largest prior scale λ of the grid
    lambda_grid: Annotated[int, Ge(1)] = 511  # G values; each layer pays log2(G + 1) bits (G scales or "no noise")
    sigma_grid: Annotated[tuple[float, ...], Gt(0)] = (0.01, 0.02, 0.04, 0.07, 0.1, 0.15, 0.2, 0.3, 0.45)
    # the σ search's common multiples of each layer's RMS weight
    sigma_refine_rounds: Annotated[int, Ge(0)] = 2
    # per-layer refinements of σ (×½, ×2, none) after the common multiple
    noise: Literal["search", "always"] = "search"  # always: every layer keeps some noise (never σ = 0)
    sigma_select_examples: Annotated[int, Ge(1)] = 10_000  # training examples the σ search estimates the bound on
    mc_passes: Annotated[int, Ge(1)] = 1  # Monte-Carlo passes over the training set for the stochastic error
    mc_batch_size: Annotated[int, Ge(1)] = 1000  # examples per Monte-Carlo batch (the draws' order depends on it)
    delta_prime_fraction: Annotated[float, Gt(0), Lt(1)] = 0.1  # δ′ = this share of δ, spent on the Monte-Carlo term

    def validate(self) -> None:  # what a range cannot say
        if self.lambda_min >= self.lambda_max:
            raise ValueError("parameter 'lambda_min' must be below 'lambda_max'")
        if not self.sigma_grid:
            raise ValueError("parameter 'sigma_grid' must be a non-empty list of positive multiples")


@dataclass
class _LayerTerm:
    """One layer's part of the robust KL for a given σ."""

    sigma: float  # 0: no noise (point mass, coded Q kept)
    lam_index: int | None
    mixture_nats: float  # Σ_i KL(N(c_qi, σ²) ‖ Σ_j N(c_j, λ²)); 0 without noise
    q_bits: float  # the bits Q costs in the modified code


class RobustKL:
    """The Theorem 4.3 KL of an artifact as a function of the per-layer σ (cached per layer and σ)."""

    def __init__(self, artifact: Evaluated, ctx: RunContext, p: CatoniParams) -> None:
        c = artifact.compressed
        self.p, self.ctx = p, ctx
        self.layers: list[LayerCode] = [layer for layer in c.layers if len(layer.assignments)]
        sections = dict(c.sections)  # checked against the message by the harness
        self.message_bits = float(c.bits)
        self.q_coded = {layer.name: float(sections[f"{layer.name}.Q"]) for layer in self.layers}
        self.grid = np.geomspace(p.lambda_min, p.lambda_max, p.lambda_grid)
        self.counts = {layer.name: np.bincount(layer.assignments, minlength=len(layer.codebook))
                       for layer in self.layers}
        self._cache: dict[tuple[str, float], _LayerTerm] = {}

    def scale(self, layer: LayerCode) -> float:
        values = layer.codebook.astype(np.float64)[layer.assignments]
        return float(np.sqrt(np.mean(values**2))) or 1.0

    def term(self, layer: LayerCode, sigma: float) -> _LayerTerm:
        key = (layer.name, sigma)
        if key not in self._cache:
            if sigma == 0:
                self._cache[key] = _LayerTerm(0.0, None, 0.0, self.q_coded[layer.name])
            else:
                r = len(layer.codebook)
                i, kl = best_prior_scale(layer.codebook, self.counts[layer.name], sigma, self.grid)
                fixed = len(layer.assignments) * math.ceil(math.log2(r)) if r > 1 else 0
                self._cache[key] = _LayerTerm(sigma, i, kl, float(fixed))
        return self._cache[key]

    def parts(self, sigmas: dict[str, float]) -> dict[str, Any]:
        terms = {layer.name: self.term(layer, sigmas[layer.name]) for layer in self.layers}
        code_bits = self.message_bits + sum(t.q_bits - self.q_coded[n] for n, t in terms.items())
        length_bits = float(bounds_math.message_length_code_bits(code_bits))
        choice_bits = len(self.layers) * math.log2(self.p.lambda_grid + 1)
        mixture = sum(t.mixture_nats for t in terms.values())
        config = self.ctx.config_bits
        nats = max(0.0, (code_bits + choice_bits + length_bits + config) * LN2 + mixture)
        return {"terms": terms, "code_bits": code_bits, "length_bits": length_bits, "choice_bits": choice_bits,
                "config_bits": config, "mixture_nats": mixture, "nats": nats}


def _subset(split: Split, k: int, generator: torch.Generator) -> Split:
    if k >= len(split):
        return split
    idx = torch.randperm(len(split), generator=generator)[:k]
    return Split(split.x[idx], split.y[idx])


class Catoni(Bound):
    # named random streams at the offsets they had before plugins declared them (same messages)
    streams: ClassVar[dict[str, int]] = {"catoni.select-subset": 7_918, "catoni.select": 7_919,
                                          "catoni.final": 104_729}
    name: ClassVar[str] = "catoni"
    version: ClassVar[str] = "0.3.0"
    description: ClassVar[str] = ("Catoni's PAC-Bayes bound with the message's Occam KL (seed 002 Thm 2.1); "
                                  "robust=true: Gaussian-mixture robustness adjustment (Thm 4.3)")
    bound_kind = "certificate"
    Params = CatoniParams

    def skip_reason(self, artifact: Evaluated, ctx: RunContext) -> str | None:
        reason = classification_only(ctx)
        if reason or not self.params.robust:
            return reason
        c = artifact.compressed
        if not c.layers or not c.sections:
            return "robust=true needs the per-layer (S, C, Q) and the message's section sizes"
        sections = dict(c.sections)
        missing = [layer.name for layer in c.layers if f"{layer.name}.Q" not in sections]
        if missing:
            return f"robust=true needs the size of each layer's Q section; missing for {', '.join(missing)}"
        params = dict(artifact.model.named_parameters())
        if any(layer.name not in params for layer in c.layers):
            return "robust=true: a layer of the code is not a parameter of the decoded model"
        return None

    def compute(self, artifact: Evaluated, ctx: RunContext) -> BoundResult:
        if self.params.robust:
            return self.compute_robust(artifact, ctx)
        kl = bounds_math.occam_kl_nats(artifact.compressed.bits, ctx.config_bits)
        result = bounds_math.catoni_bound(artifact.train_err, ctx.task.n_train, kl.nats, ctx.delta,
                                          self.params.alpha)
        return BoundResult(
            kind="certificate", error_bound=result.bound, empirical_term=artifact.train_err,
            kl_nats=kl.nats, message_bits=kl.message_bits, length_code_bits=kl.length_code_bits,
            config_bits=kl.config_bits, adjustment_nats=0.0, delta=ctx.delta,
            extras={"alpha": self.params.alpha, "lambda": result.lam, "length_code": "elias-delta(l+1)"},
            target="decoded", form="catoni", alpha=self.params.alpha,
        )

    # ------------------------------------------------------------------------------- robust
    def _noise(self, rkl: RobustKL, sigmas: dict[str, float]) -> dict[str, NoiseSpec]:
        return {layer.name: NoiseSpec(layer.positions, sigmas[layer.name])
                for layer in rkl.layers if sigmas[layer.name] > 0}

    def _estimate(self, artifact: Evaluated, ctx: RunContext, rkl: RobustKL, sigmas: dict[str, float],
                  select: Split) -> float:
        """The bound as estimated on the selection subset (σ selection only), with the Monte-Carlo
        correction and δ split the final bound will pay when there is noise."""
        p = self.params
        noise = self._noise(rkl, sigmas)
        errors, m = noisy_error_count(artifact.model, noise, select, ctx.generator("catoni.select"), 1,
                                      p.mc_batch_size)
        kl = rkl.parts(sigmas)["nats"]
        n = ctx.task.n_train
        delta_prime = p.delta_prime_fraction * ctx.delta
        err = bounds_math.mc_error_upper_bound(errors / m, m, delta_prime, ctx.config_bits) if noise else errors / m
        return bounds_math.catoni_bound(err, n, kl, ctx.delta - delta_prime, p.alpha).bound

    def choose_sigmas(self, artifact: Evaluated, ctx: RunContext, rkl: RobustKL) -> tuple[dict[str, float], list]:
        p = self.params
        select = _subset(ctx.task.data.train, p.sigma_select_examples, ctx.generator("catoni.select-subset"))
        scales = {layer.name: rkl.scale(layer) for layer in rkl.layers}
        trace = []

        def score(sig: dict[str, float]) -> float:
            value = self._estimate(artifact, ctx, rkl, sig, select)
            trace.append({"sigmas": dict(sig), "estimate": value})
            return value

        start = 0.0 if p.noise == "search" else p.sigma_grid[0]
        best = {n: start * scales[n] for n in scales}
        best_value = score(best)
        for s in p.sigma_grid:
            sig = {n: s * scales[n] for n in scales}
            value = score(sig)
            if value < best_value:
                best, best_value = sig, value
        for _ in range(p.sigma_refine_rounds):
            improved = False
            for name in scales:
                current = best[name]
                options = [0.0, current / 2, current * 2] if current > 0 else [p.sigma_grid[0] * scales[name]]
                if p.noise == "always":
                    options = [o for o in options if o > 0]
                for option in options:
                    sig = {**best, name: option}
                    value = score(sig)
                    if value < best_value:
                        best, best_value, improved = sig, value, True
            if not improved:
                break
        return best, trace

    def compute_robust(self, artifact: Evaluated, ctx: RunContext) -> BoundResult:
        p = self.params
        rkl = RobustKL(artifact, ctx, p)
        sigmas, trace = self.choose_sigmas(artifact, ctx, rkl)
        parts = rkl.parts(sigmas)
        train = ctx.task.data.train
        noise = self._noise(rkl, sigmas)
        delta_prime = p.delta_prime_fraction * ctx.delta  # spent whatever the σ search found
        if noise:
            errors, m = noisy_error_count(artifact.model, noise, train, ctx.generator("catoni.final"),
                                          p.mc_passes, p.mc_batch_size)
            err_mc = errors / m
            err_upper = bounds_math.mc_error_upper_bound(err_mc, m, delta_prime, ctx.config_bits)
        else:  # no layer carries noise: the classifier is the decoded model, its error is exact
            errors, m = artifact.train_errors, 0
            err_mc = err_upper = artifact.train_err
        result = bounds_math.catoni_bound(err_upper, ctx.task.n_train, parts["nats"], ctx.delta - delta_prime,
                                          p.alpha)
        point_mass = bounds_math.occam_kl_nats(artifact.compressed.bits, ctx.config_bits)
        layers = {}
        for layer in rkl.layers:
            t = parts["terms"][layer.name]
            layers[layer.name] = {
                "sigma": t.sigma, "lambda": None if t.lam_index is None else float(rkl.grid[t.lam_index]),
                "k": int(len(layer.assignments)), "r": int(len(layer.codebook)),
                "mixture_kl_nats": t.mixture_nats, "gain_nats": -t.mixture_nats,
                "q_bits_fixed": t.q_bits, "q_bits_coded": rkl.q_coded[layer.name],
            }
        return BoundResult(
            kind="certificate", error_bound=max(result.bound, err_upper), empirical_term=err_upper,
            kl_nats=parts["nats"], message_bits=parts["code_bits"] + parts["choice_bits"],
            length_code_bits=parts["length_bits"],
            config_bits=parts["config_bits"], adjustment_nats=parts["mixture_nats"], delta=ctx.delta,
            mc_samples=m or None, mc_errors=errors if m else None, target="stochastic" if noise else "decoded",
            posterior=NoisyPosterior(artifact.model, noise) if noise else None,
            form="catoni", alpha=p.alpha, delta_prime=delta_prime,
            extras={
                "alpha": p.alpha, "lambda": result.lam, "length_code": "elias-delta(l+1)", "robust": True,
                "layers": layers, "err_mc": err_mc, "mc_errors": errors, "m": m, "delta_prime": delta_prime,
                "delta_pac_bayes": ctx.delta - delta_prime, "deterministic_train_err": artifact.train_err,
                "message_bits_real": float(artifact.compressed.bits), "code_bits": parts["code_bits"],
                "lambda_choice_bits": parts["choice_bits"],
                "gain_nats": -parts["mixture_nats"],
                "q_overhead_bits": parts["code_bits"] - float(artifact.compressed.bits),
                "point_mass_kl_nats": point_mass.nats,
                "kl_saving_nats": point_mass.nats - parts["nats"],
                "sigma_search": trace,
            },
        )


@hookimpl
def bench_register_bounds(register) -> None:
    register(Catoni)
