"""Bound ``occam``: a point mass on the decoded model under the Occam prior 2^-(ℓ + len(ℓ) + log2 H).

KL = (message bits + Elias-delta length code + hyperparameter bits)·ln 2 (BOUNDS.md section 1), turned
into an error bound by binomial-tail inversion (tightest), kl inversion, or Catoni's bound (section 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from bench import bounds_math
from bench.contracts import Bound, BoundResult, Evaluated, RunContext
from bench.hookspecs import hookimpl


@dataclass(frozen=True)
class OccamParams:
    form: Literal["binomial", "kl", "catoni"] = "binomial"
    alpha: float = bounds_math.DEFAULT_CATONI_ALPHA  # only for form = "catoni"

    def validate(self) -> None:
        if self.alpha <= 1:
            raise ValueError("parameter 'alpha' must be > 1")


def classification_only(artifact: Evaluated, ctx: RunContext) -> str | None:
    if ctx.task.data.task_type != "classification":
        return f"needs a classification task (0-1 loss); '{ctx.task.name}' is {ctx.task.data.task_type}"
    return None


def occam_parts(artifact: Evaluated, ctx: RunContext) -> bounds_math.KLParts:
    return bounds_math.occam_kl_nats(artifact.compressed.bits, ctx.hparam_bits)


class Occam(Bound):
    name: ClassVar[str] = "occam"
    version: ClassVar[str] = "0.2.0"
    description: ClassVar[str] = "Occam bound of the message length (binomial, kl or Catoni form)"
    bound_kind = "certificate"
    Params = OccamParams

    def skip_reason(self, artifact: Evaluated, ctx: RunContext) -> str | None:
        return classification_only(artifact, ctx)

    def compute(self, artifact: Evaluated, ctx: RunContext) -> BoundResult:
        kl = occam_parts(artifact, ctx)
        bound = bounds_math.error_bound(self.params.form, artifact.train_err, ctx.task.n_train, kl.nats,
                                        ctx.delta, alpha=self.params.alpha)
        extras = {"form": self.params.form, "length_code": "elias-delta(l+1)"}
        if self.params.form == "catoni":
            extras["alpha"] = self.params.alpha
        return BoundResult(
            kind="certificate", error_bound=bound, empirical_term=artifact.train_err, kl_nats=kl.nats,
            message_bits=kl.message_bits, length_code_bits=kl.length_code_bits, hparam_bits=kl.hparam_bits,
            adjustment_nats=0.0, delta=ctx.delta, extras=extras, target="decoded", form=self.params.form,
            alpha=self.params.alpha if self.params.form == "catoni" else None,
        )


@hookimpl
def bench_register_bounds(register) -> None:
    register(Occam)
