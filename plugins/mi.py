"""Bound ``mi``: the mutual-information bound of seed 001 (Bu et al. 2021, Theorem 1; BOUNDS.md section 4).

For a loss that is σ-sub-Gaussian (the 0-1 loss lies in [0, 1], so σ = 1/2) and the Markov chain
``S → W → Ŵ`` (training set, trained model, compressed model),

    |E[L_μ(Ŵ) - L_S(Ŵ)]| ≤ sqrt( 2σ²·min(I(W;Ŵ), I(S;W)) / n ),

and for a deterministic compressor ``I(W;Ŵ) ≤ H(Ŵ) ≤`` the length of a prefix-free code of ``Ŵ``: the
artifact's message, ``R = ℓ·ln 2`` nats. The row reports ``train_err(Ŵ) + sqrt(2σ²R/n)`` (capped at 1)
as an ``expectation`` bound on the population risk: it bounds the risk *averaged over training sets*
(with ``R`` the realized message length standing in for its expectation), not the risk of this one
run with probability 1 - δ, so it is never a certificate. It is computed per configuration: the
hyperparameter bits of a grid are recorded but not charged.

The row also records seed 001's decomposition (its eq. 12) against the base model ``W``:
``L_S(W)`` (0-1 and cross-entropy), the distortion ``d_S = L_S(Ŵ) - L_S(W)`` in both losses, and the
generalization term. It applies to every compressor; regression tasks (squared error: unbounded, not
sub-Gaussian with σ = 1/2) are skipped.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
import torch.nn.functional as F

from bench.api import Bound, BoundResult, Evaluated, RunContext, Split, hookimpl

SIGMA_01 = 0.5  # a loss with values in [0, 1] is 1/2-sub-Gaussian (Hoeffding's lemma)
LN2 = math.log(2.0)


def mi_generalization_term(rate_nats: float, n: int, sigma: float = SIGMA_01) -> float:
    """``sqrt(2σ²R/n)``: seed 001 Theorem 1 with ``I(W;Ŵ) ≤ R`` nats."""
    if rate_nats < 0 or n < 1 or sigma <= 0:
        raise ValueError("rate_nats must be >= 0, n >= 1 and sigma > 0")
    return math.sqrt(2.0 * sigma**2 * rate_nats / n)


def cross_entropy(outputs: torch.Tensor, split: Split) -> float:
    """Mean cross-entropy (nats) of a classifier's ``outputs`` (logits) on a split."""
    return float(F.cross_entropy(outputs.double(), split.y.to(outputs.device)))


class MutualInformation(Bound):
    name: ClassVar[str] = "mi"
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = "mutual-information bound train_err + sqrt(2σ²R/n), R = message nats (seed 001)"
    bound_kind = "expectation"

    def skip_reason(self, artifact: Evaluated, ctx: RunContext) -> str | None:
        if ctx.task.data.task_type != "classification":
            return (f"needs a bounded loss (0-1 loss, σ = 1/2); '{ctx.task.name}' is "
                    f"{ctx.task.data.task_type} with the squared error, which is unbounded")
        return None

    def compute(self, artifact: Evaluated, ctx: RunContext) -> BoundResult:
        n = ctx.task.n_train
        bits = artifact.compressed.bits
        rate = bits * LN2
        gen = mi_generalization_term(rate, n)
        raw = artifact.train_err + gen
        train = ctx.task.data.train
        base = ctx.base_model().eval()  # its outputs, and the decoded model's, are the harness's (ctx.outputs)
        base_err = ctx.evaluate(base, train)
        base_ce, ce = cross_entropy(ctx.outputs(base, train), train), cross_entropy(ctx.outputs(artifact.model, train), train)
        return BoundResult(
            kind="expectation", error_bound=min(1.0, raw), empirical_term=artifact.train_err, kl_nats=rate,
            message_bits=float(bits), length_code_bits=0.0, config_bits=ctx.config_bits, adjustment_nats=0.0,
            extras={
                "sigma": SIGMA_01, "rate_nats": rate, "generalization_term": gen, "uncapped_bound": raw,
                "base_train_err": base_err, "distortion_01": artifact.train_err - base_err,
                "train_ce": ce, "base_train_ce": base_ce, "distortion_ce": ce - base_ce,
                "config_bits_charged": False, "reference": "base model",
            },
        )


@hookimpl
def bench_register_bounds(register) -> None:
    register(MutualInformation)
