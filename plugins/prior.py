"""Compressor ``prior``: the data-dependent prior's own model, sent as the empty message.

With ``prior_fraction = p`` the harness trains a prior model on ``S_prior`` only; this compressor
certifies that model itself on ``S_bound`` (seed 000's intrinsic dimension 0 with a data-dependent
prior). Its message is empty, so the Occam bound is a plain binomial tail bound on ``S_bound`` with the
length code of an empty message (1 bit) and the configuration bits.
"""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from bench.kit.coding import CorruptMessage
from bench.api import Compressed, Compressor, Prior, RunContext, hookimpl


class PriorModel(Compressor):
    name: ClassVar[str] = "prior"
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = "the data-dependent prior's own model (trained on S_prior), an empty message"
    decoder_params: ClassVar[tuple[str, ...]] = ()

    def skip_reason(self, ctx: RunContext) -> str | None:
        if not ctx.prior.has_prior_model:
            return ("needs a data-dependent prior: set the task's dataset parameter prior_fraction "
                    "(e.g. --set task.T.dataset_params.prior_fraction=0.8)")
        return None

    def compress(self, ctx: RunContext) -> Compressed:
        model = ctx.prior.prior_model()
        return Compressed(message=b"", model=model, stats={"n_params_kept": 0})

    def decode(self, message: bytes, prior: Prior) -> nn.Module:
        if message:
            raise CorruptMessage(f"the prior's message is empty, got {len(message)} bytes")
        return prior.prior_model()


@hookimpl
def bench_register_compressors(register) -> None:
    register(PriorModel)
