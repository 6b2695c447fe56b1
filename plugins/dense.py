"""Compressor ``dense``: every floating-point parameter and buffer as raw float32, in state-dict order.

Honest and vacuous for any real network: the baseline every other compressor is measured against.
The architecture (hence every tensor's shape and the order) is prior knowledge, so the message is just
the concatenated values.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
from torch import nn

from bench.api import Compressed, Compressor, Prior, RunContext, hookimpl


def float_entries(model: nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(k, v) for k, v in model.state_dict().items() if v.is_floating_point()]


class Dense(Compressor):
    name: ClassVar[str] = "dense"
    description: ClassVar[str] = "the trained model's parameters and buffers as raw float32 (no compression)"
    decoder_params: ClassVar[tuple[str, ...]] = ()

    def compress(self, ctx: RunContext) -> Compressed:
        model = ctx.base_model()
        parts = [v.detach().cpu().to(torch.float32).numpy().ravel() for _, v in float_entries(model)]
        message = np.concatenate(parts).astype("<f4").tobytes() if parts else b""
        n = sum(p.numel() for p in model.parameters())
        return Compressed(message=message, model=model, stats={"n_params_kept": n})

    def decode(self, message: bytes, prior: Prior) -> nn.Module:
        model = prior.make_model()
        entries = float_entries(model)
        expected = 4 * sum(v.numel() for _, v in entries)
        if len(message) != expected:
            raise ValueError(f"dense message has {len(message)} bytes, the architecture needs {expected}")
        values = torch.from_numpy(np.frombuffer(message, dtype="<f4").copy())
        state, offset = {}, 0
        for key, v in entries:
            state[key] = values[offset : offset + v.numel()].view_as(v.cpu()).to(v.dtype)
            offset += v.numel()
        model.load_state_dict(state, strict=False)
        return model.eval()


@hookimpl
def bench_register_compressors(register) -> None:
    register(Dense)
