"""Bound ``hessian``: PAC-Bayes bounds from the loss curvature (seed 004; the math is BOUNDS.md section 5).

Prior ``P = N(θ₀, s₁² I)`` centred at the run's seeded initialization (rebuilt from the prior, never
from data); posterior ``Q = N(μ₀, diag(s₀²))`` centred at the decoded weights, ``d = μ₀ - θ₀``. The
curvature ``h`` is the diagonal GGN / Fisher of the training loss at ``μ₀`` (``bench.kit.curvature``,
labels sampled from the model by default) on a seeded subset of ``curvature_examples`` training
examples (20 000 by default; 0: all), computed once per decoded model and reused by every
configuration of this bound in the process. The posterior may depend on the data in any way, so a
subset only makes ``h`` noisier: the Monte Carlo and the bound still use the whole training set.
One ``form`` per row:

``lower``      kind ``lower_bound``: over a β grid, the smallest Maurer bound at ``(ê + Δ_β, KL_β)`` with
               the optimal, *training-set dependent* prior precision of Lemma 4.2. A diagnostic floor:
               if it is ≥ 1, no diagonal-Gaussian PAC-Bayes bound centred at the initialization can be
               non-vacuous for this model. It proves nothing about the model's error.
``baseline``   kind ``certificate``: ``s₀ = s₁ = s`` for ``s`` on the prior grid (paid).
``diag``       kind ``certificate``: Lemma 4.1's posterior ``s₀² = β / (h + β/s₁²)`` for a prior std ``s₁``
               on the grid (paid) and β free.
``layerwise``  as ``diag``, but each neuron of a Linear layer gets a full covariance block: Lemma 5.1's
               ``(1/n) Σ z zᵀ`` of the layer's inputs (one block per layer, scaled per neuron so that
               its diagonal carries that neuron's GGN mass), ``Σ₀ = β (H_b + β/s₁² I)⁻¹`` in the
               block's eigenbasis; other parameters stay diagonal.

Certificates choose ``(s₁, β)`` by the quadratic estimate ``ê + ½ tr(H Σ₀)`` (no test data; ``s₁`` is
paid for, β is a posterior parameter, free), then estimate the stochastic classifier's training error
by Monte Carlo (a fresh weight draw per prediction, ``bench.kit.stochastic``), bound it by
``kl⁻¹(ê_MC, ln(2/δ')/m)``, and report ``kl⁻¹(ê_Q, (KL + ln(2√n/(δ - δ')))/n)`` (Maurer) for that
stochastic classifier, whose own test error the harness measures.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from bench.kit import bounds as bounds_math
from bench.api import Bound, BoundResult, Evaluated, Ge, Gt, Lt, RunContext, hookimpl
from bench.kit.curvature import diagonal_curvature
from bench.kit.models import state_digest
from bench.kit.stochastic import NoiseSpec, NoisyPosterior, noisy_error_count

LN2 = math.log(2.0)
Form = Literal["lower", "baseline", "diag", "layerwise"]


@dataclass(frozen=True)
class HessianParams:
    form: Form = "diag"  # lower: the diagnostic floor; baseline, diag, layerwise: certificates
    prior_std_min: Annotated[float, Gt(0)] = 1e-3  # smallest prior std s₁ of the grid (geometric, fixed in advance)
    prior_std_max: Annotated[float, Gt(0)] = 1.0  # largest prior std s₁ of the grid
    prior_std_grid: Annotated[int, Ge(1)] = 16  # values of s₁ in the geometric grid (log2 of it paid per certificate)
    beta_min: Annotated[float, Gt(0)] = 1e-6  # smallest β of the grid (a posterior parameter: free)
    beta_max: Annotated[float, Gt(0)] = 1e2  # largest β
    beta_grid: Annotated[int, Ge(1)] = 33  # β values (a posterior parameter: free)
    curvature: Literal["sampled", "exact", "empirical"] = "sampled"
    # the diagonal GGN with sampled or exact labels, or the empirical Fisher
    curvature_samples: Annotated[int, Ge(1)] = 1  # sampled labels per example (curvature = sampled)
    curvature_examples: Annotated[int, Ge(0)] = 20_000  # a seeded subset of this many examples; 0: the whole set
    # 20 000 of Fashion-MNIST's 60 000: 24.6 -> 15.3 s a row on LeNet-5, certificate 0.762 -> 0.768 (docs/speed.md)
    mc_passes: Annotated[int, Ge(1)] = 1  # Monte-Carlo passes over the training set for the stochastic error
    mc_batch_size: Annotated[int, Ge(1)] = 1000  # examples per Monte-Carlo batch (the draws' order depends on it)
    delta_prime_fraction: Annotated[float, Gt(0), Lt(1)] = 0.1  # δ′ = this share of δ, spent on the Monte-Carlo term

    def validate(self) -> None:  # what a range cannot say
        if self.prior_std_min > self.prior_std_max:
            raise ValueError("parameter 'prior_std_min' must be <= 'prior_std_max'")
        if self.beta_min > self.beta_max:
            raise ValueError("parameter 'beta_min' must be <= 'beta_max'")


# ------------------------------------------------------------------------------- the math (§5)
def lemma42(h: np.ndarray, d: np.ndarray, beta: float) -> tuple[float, float]:
    """``(Δ_β, KL_β)`` at Lemma 4.2's optimal prior precision ``a = (√(h² + 4βh/d²) - h) / (2β)``.

    Coordinates with ``d = 0`` or ``h = 0`` contribute nothing in the limit and are left out."""
    keep = (h > 0) & (d != 0)
    h, d = h[keep], d[keep]
    a = (np.sqrt(h * h + 4 * beta * h / (d * d)) - h) / (2 * beta)
    delta = 0.5 * float(np.sum(h * beta / (h + beta * a)))
    kl = 0.5 * float(np.sum(a * d * d + np.log1p(h / (beta * a)) - h / (h + beta * a)))
    return delta, kl


def diag_posterior(h: np.ndarray, d: np.ndarray, s1: float, beta: float) -> tuple[np.ndarray, float, float]:
    """Lemma 4.1: ``s₀² = β / (h + β/s₁²)``; returns ``(s₀², Δ = ½ Σ h s₀², KL(Q‖P))``."""
    prior_var = s1 * s1
    var = beta / (h + beta / prior_var)
    delta = 0.5 * float(np.sum(h * var))
    kl = 0.5 * float(np.sum(var / prior_var + d * d / prior_var - 1.0 + np.log(prior_var / var)))
    return var, delta, kl


def baseline_posterior(h: np.ndarray, d: np.ndarray, s: float) -> tuple[float, float]:
    """``s₀ = s₁ = s``: ``(Δ = ½ s² Σ h, KL = ½ Σ d² / s²)``."""
    return 0.5 * s * s * float(np.sum(h)), 0.5 * float(np.sum(d * d)) / (s * s)


@dataclass
class Block:
    """One Linear layer's input second moment ``(1/n) Σ z zᵀ = U diag(e) Uᵀ`` and each neuron's
    scale ``κ_j`` (its GGN mass over the block's trace)."""

    name: str  # the weight's parameter name
    basis: np.ndarray  # U (in × in)
    eig: np.ndarray  # e (in), >= 0
    kappa: np.ndarray  # (out)


def block_posterior(block: Block, d: np.ndarray, s1: float, beta: float) -> tuple[np.ndarray, float, float]:
    """Per neuron ``Σ₀ = β (κ_j U diag(e) Uᵀ + β/s₁² I)⁻¹``: eigen-variances (out × in), Δ, KL."""
    prior_var = s1 * s1
    var = beta / (block.kappa[:, None] * block.eig[None, :] + beta / prior_var)
    delta = 0.5 * float(np.sum(block.kappa[:, None] * block.eig[None, :] * var))
    kl = 0.5 * float(np.sum(var / prior_var - 1.0 + np.log(prior_var / var)) + np.sum(d * d) / prior_var)
    return var, delta, kl


def pareto(points: list[tuple[float, float]]) -> list[list[float]]:
    """The (KL nats, estimated training error) points no other point beats in both, by KL (seed 004
    Figure 3's curves)."""
    out, lowest = [], math.inf
    for kl, err in sorted(points):
        if err < lowest:
            out.append([float(kl), float(err)])
            lowest = err
    return out


# ------------------------------------------------------------------------------------ the plugin
_CURVATURE: dict[tuple, dict[str, Any]] = {}  # per decoded model, sample and settings: reused across the grid


class Hessian(Bound):
    # named random streams at the offsets they had before plugins declared them (same messages)
    streams: ClassVar[dict[str, int]] = {"hessian.curvature": 404, "hessian.mc": 405}
    name: ClassVar[str] = "hessian"
    version: ClassVar[str] = "0.2.0"  # 0.2.0: the curvature from 20 000 examples by default
    description: ClassVar[str] = ("loss-curvature PAC-Bayes bounds centred at the initialization (seed 004): "
                                  "lower floor, baseline, diag and layer-wise posteriors")
    Params = HessianParams

    @property
    def bound_kind(self) -> str:  # declared by the configuration, before any data
        return "lower_bound" if self.params.form == "lower" else "certificate"

    def skip_reason(self, artifact: Evaluated, ctx: RunContext) -> str | None:
        if ctx.task.data.task_type != "classification":
            return f"needs a classification task; '{ctx.task.name}' is {ctx.task.data.task_type}"
        init = dict(ctx.prior.make_model().named_parameters())
        mine = dict(artifact.model.named_parameters())
        if init.keys() != mine.keys() or any(init[k].shape != mine[k].shape for k in init):
            return ("the decoded model's parameters do not match the initialization's (a different "
                    "architecture): the prior is centred at the initialization")
        return None

    # ------------------------------------------------------------------------------ pieces
    def curvature(self, artifact: Evaluated, ctx: RunContext) -> dict[str, Any]:
        p = self.params
        train = ctx.task.data.train
        key = (state_digest(artifact.model), train.digest(), p.curvature, p.curvature_samples, p.curvature_examples,
               ctx.seed)
        if key not in _CURVATURE:
            model = copy.deepcopy(artifact.model).requires_grad_(True)  # a decoder may hand back frozen weights
            h = diagonal_curvature(model, train, p.curvature, ctx.task.data.task_type, samples=p.curvature_samples,
                                   generator=ctx.generator("hessian.curvature"),
                                   max_examples=p.curvature_examples or None,
                                   outputs=ctx.outputs(artifact.model, train))  # from the harness's evaluation
            _CURVATURE.clear()  # one model at a time
            _CURVATURE[key] = {"h": {k: v.double().numpy().ravel() for k, v in h.items()}, "model": model}
        curv = _CURVATURE[key]
        if p.form == "layerwise" and "blocks" not in curv:  # a pass over the training set only this form needs
            curv["blocks"] = self._blocks(curv["model"], train, curv["h"])
        return curv

    @torch.no_grad()
    def _blocks(self, model: nn.Module, train, h: dict[str, np.ndarray]) -> dict[str, Block]:
        """Lemma 5.1's blocks of every Linear layer: the second moment of its inputs on the training
        set, each neuron scaled so that ``κ_j tr(C)`` is its GGN mass ``Σ_k h_jk``."""
        inputs: dict[str, torch.Tensor] = {}
        linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
        sums = {name: torch.zeros(m.in_features, m.in_features, dtype=torch.float64) for name, m in linears.items()}
        hooks = [m.register_forward_hook(lambda mod, i, o, name=name: inputs.__setitem__(name, i[0]))
                 for name, m in linears.items()]
        device = next(model.parameters()).device
        try:
            model.eval()
            for i in range(0, len(train), 2048):
                model(train.x[i : i + 2048].to(device))
                for name, z in inputs.items():
                    z = z.double().cpu()
                    sums[name] += z.T @ z
        finally:
            for hook in hooks:
                hook.remove()
        blocks = {}
        for name, m in linears.items():
            second = (sums[name] / len(train)).numpy()
            eig, basis = np.linalg.eigh(second)
            eig = np.clip(eig, 0.0, None)
            mass = h[f"{name}.weight"].reshape(m.out_features, -1).sum(axis=1)  # h is flat, float64
            kappa = mass / max(float(eig.sum()), 1e-300)
            blocks[f"{name}.weight"] = Block(f"{name}.weight", basis, eig, kappa)
        return blocks

    def _offsets(self, artifact: Evaluated, ctx: RunContext) -> dict[str, np.ndarray]:
        init = dict(ctx.prior.make_model().named_parameters())
        return {k: (v.detach().double().cpu() - init[k].detach().double().cpu()).numpy().ravel()
                for k, v in artifact.model.named_parameters()}

    def grids(self) -> tuple[np.ndarray, np.ndarray]:
        p = self.params
        return (np.geomspace(p.prior_std_min, p.prior_std_max, p.prior_std_grid),
                np.geomspace(p.beta_min, p.beta_max, p.beta_grid))

    # ----------------------------------------------------------------------------- compute
    def compute(self, artifact: Evaluated, ctx: RunContext) -> BoundResult:
        p = self.params
        curv = self.curvature(artifact, ctx)
        h, d = curv["h"], self._offsets(artifact, ctx)
        n, e = artifact.n_train, artifact.train_err
        if p.form == "lower":
            return self._lower(np.concatenate(list(h.values())), np.concatenate([d[k] for k in h]), n, e, ctx)
        priors, betas = self.grids()
        grid_bits = math.log2(len(priors))
        pay = (grid_bits + ctx.config_bits) * LN2
        delta_prime = p.delta_prime_fraction * ctx.delta
        blocks = curv.get("blocks", {})
        best, points = None, []
        for s1 in priors:
            for beta in ([None] if p.form == "baseline" else betas):
                _, delta_loss, kl = self._posterior(h, d, blocks, s1, beta, noise=False)
                estimate = bounds_math.maurer_bound(min(1.0, e + delta_loss), n, kl + pay, ctx.delta - delta_prime)
                points.append((kl + pay, min(1.0, e + delta_loss)))
                if best is None or estimate < best[0]:
                    best = (estimate, s1, beta, delta_loss, kl)
        estimate, s1, beta, delta_loss, kl = best
        noise, _, _ = self._posterior(h, d, blocks, s1, beta)  # the grid's point, with its noise this time
        errors, m = noisy_error_count(artifact.model, noise, ctx.task.data.train, ctx.generator("hessian.mc"),
                                      p.mc_passes, p.mc_batch_size)
        err_upper = bounds_math.mc_error_upper_bound(errors / m, m, delta_prime, ctx.config_bits)
        total = kl + pay
        bound = bounds_math.maurer_bound(err_upper, n, total, ctx.delta - delta_prime)
        return BoundResult(
            kind="certificate", error_bound=bound, empirical_term=err_upper, kl_nats=total,
            length_code_bits=0.0, config_bits=ctx.config_bits, adjustment_nats=kl, delta=ctx.delta,
            mc_samples=m, mc_errors=errors, target="stochastic", posterior=NoisyPosterior(artifact.model, noise),
            form="maurer", delta_prime=delta_prime,
            extras={"form": p.form, "prior_std": float(s1), "beta": None if beta is None else float(beta),
                    "kl_posterior_nats": kl, "prior_grid_bits": grid_bits, "estimated_loss_increase": delta_loss,
                    "estimate": estimate, "err_mc": errors / m, "deterministic_train_err": e,
                    "pareto": pareto(points),
                    "curvature": p.curvature, "center": "initialization"},
        )

    def _posterior(self, h: dict[str, np.ndarray], d: dict[str, np.ndarray], blocks: dict[str, Block], s1: float,
                   beta: float | None, noise: bool = True) -> tuple[dict[str, NoiseSpec], float, float]:
        """Noise specs of the posterior for prior std ``s1`` (and β), its Δ and its KL. The grid search
        asks for Δ and KL only (``noise=False``): the noise of 528 grid points, a square root per
        weight each, was a quarter of its time, and only the chosen point's is ever drawn."""
        specs, total_delta, total_kl = {}, 0.0, 0.0
        for name, hv in h.items():
            if self.params.form == "baseline":
                delta_loss, kl = baseline_posterior(hv, d[name], s1)
                if noise:
                    specs[name] = NoiseSpec(np.arange(hv.size), float(s1))
            elif self.params.form == "layerwise" and name in blocks:
                var, delta_loss, kl = block_posterior(blocks[name], d[name], s1, beta)
                if noise:
                    specs[name] = NoiseSpec(np.arange(hv.size), 0.0, basis=blocks[name].basis, variances=var)
            else:
                var, delta_loss, kl = diag_posterior(hv, d[name], s1, beta)
                if noise:
                    specs[name] = NoiseSpec(np.arange(hv.size), np.sqrt(var))
            total_delta += delta_loss
            total_kl += kl
        return specs, total_delta, total_kl

    def _lower(self, h: np.ndarray, d: np.ndarray, n: int, e: float, ctx: RunContext) -> BoundResult:
        _, betas = self.grids()
        best, points = None, []
        for beta in betas:
            delta_loss, kl = lemma42(h, d, float(beta))
            value = bounds_math.maurer_bound(min(1.0, e + delta_loss), n, kl, ctx.delta)
            points.append((kl, min(1.0, e + delta_loss)))
            if best is None or value < best[0]:
                best = (value, float(beta), delta_loss, kl)
        value, beta, delta_loss, kl = best
        return BoundResult(
            kind="lower_bound", error_bound=value, empirical_term=min(1.0, e + delta_loss), kl_nats=kl,
            length_code_bits=0.0, config_bits=0.0, adjustment_nats=kl, delta=ctx.delta,
            form="maurer", extras={"form": "lower", "beta": beta, "estimated_loss_increase": delta_loss,
                                   "deterministic_train_err": e, "prior": "Lemma 4.2 (uses the training set)",
                                   "floor_of": {"bound": self.name, "forms": ["baseline", "diag"]},
                                   "pareto": pareto(points)},
        )


@hookimpl
def bench_register_bounds(register) -> None:
    register(Hessian)
