"""Bound ``catoni``: Catoni's PAC-Bayes bound (seed 002, Theorem 2.1) for a point mass on the decoded
model, with the KL of the Occam prior of its message (BOUNDS.md sections 1-2). α is fixed in advance
and recorded; λ is optimized and paid for inside the bound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from bench import bounds_math
from bench.contracts import Bound, BoundResult, Evaluated, RunContext
from bench.hookspecs import hookimpl
from bench_plugins.occam import classification_only, occam_parts


@dataclass(frozen=True)
class CatoniParams:
    alpha: float = bounds_math.DEFAULT_CATONI_ALPHA

    def validate(self) -> None:
        if self.alpha <= 1:
            raise ValueError("parameter 'alpha' must be > 1")


class Catoni(Bound):
    name: ClassVar[str] = "catoni"
    version: ClassVar[str] = "0.2.0"
    description: ClassVar[str] = "Catoni's PAC-Bayes bound with the message's Occam KL (seed 002 Thm 2.1)"
    bound_kind = "certificate"
    Params = CatoniParams

    def skip_reason(self, artifact: Evaluated, ctx: RunContext) -> str | None:
        return classification_only(artifact, ctx)

    def compute(self, artifact: Evaluated, ctx: RunContext) -> BoundResult:
        kl = occam_parts(artifact, ctx)
        result = bounds_math.catoni_bound(artifact.train_err, ctx.task.n_train, kl.nats, ctx.delta,
                                          self.params.alpha)
        return BoundResult(
            kind="certificate", error_bound=result.bound, empirical_term=artifact.train_err,
            kl_nats=kl.nats, message_bits=kl.message_bits, length_code_bits=kl.length_code_bits,
            hparam_bits=kl.hparam_bits, adjustment_nats=0.0, delta=ctx.delta,
            extras={"alpha": self.params.alpha, "lambda": result.lam, "length_code": "elias-delta"},
        )


@hookimpl
def bench_register_bounds(register) -> None:
    register(Catoni)
