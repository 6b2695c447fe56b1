"""Bound ``occam``: a point mass on the decoded model under the Occam prior 2^-(L(c) + ℓ + len(ℓ)).

KL = (message bits + Elias-delta length code + configuration bits)·ln 2 (BOUNDS.md section 1), turned
into an error bound by binomial-tail inversion (tightest), kl inversion, or Catoni's bound (section 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from bench.kit import bounds as bounds_math
from bench.api import Bound, BoundResult, Evaluated, Gt, RunContext, classification_only, hookimpl


@dataclass(frozen=True)
class OccamParams:
    form: Literal["binomial", "kl", "catoni"] = "binomial"
    # binomial tail inversion (tightest), kl inversion, or Catoni's bound
    alpha: Annotated[float, Gt(1)] = bounds_math.DEFAULT_CATONI_ALPHA  # only for form = "catoni"


class Occam(Bound):
    name: ClassVar[str] = "occam"
    version: ClassVar[str] = "0.2.0"
    description: ClassVar[str] = "Occam bound of the message length (binomial, kl or Catoni form)"
    bound_kind = "certificate"
    Params = OccamParams

    def skip_reason(self, artifact: Evaluated, ctx: RunContext) -> str | None:
        return classification_only(ctx)

    def compute(self, artifact: Evaluated, ctx: RunContext) -> BoundResult:
        kl = bounds_math.occam_kl_nats(artifact.compressed.bits, ctx.config_bits)
        bound = bounds_math.error_bound(self.params.form, artifact.train_err, ctx.task.n_train, kl.nats,
                                        ctx.delta, alpha=self.params.alpha)
        extras = {"form": self.params.form, "length_code": "elias-delta(l+1)"}
        if self.params.form == "catoni":
            extras["alpha"] = self.params.alpha
        return BoundResult(
            kind="certificate", error_bound=bound, empirical_term=artifact.train_err, kl_nats=kl.nats,
            message_bits=kl.message_bits, length_code_bits=kl.length_code_bits, config_bits=kl.config_bits,
            adjustment_nats=0.0, delta=ctx.delta, extras=extras, target="decoded", form=self.params.form,
            alpha=self.params.alpha if self.params.form == "catoni" else None,
        )


@hookimpl
def bench_register_bounds(register) -> None:
    register(Occam)
