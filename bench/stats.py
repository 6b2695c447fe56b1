"""Size and cost statistics of a decoded model for the tables (FLOPs counting only kept weights)."""

from __future__ import annotations

import torch
from torch import nn

from bench.kit.evaluation import eval_mode, model_device


@torch.no_grad()
def inference_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """FLOPs of one forward pass of one example through the linear and convolution layers, counting
    2 per multiply-add of a *nonzero* weight (pruned weights cost nothing on sparse hardware)."""
    total = 0

    def hook(module: nn.Module, inputs, output) -> None:
        nonlocal total
        nonzero = int(torch.count_nonzero(module.weight))
        if isinstance(module, nn.Conv2d):
            positions = output.shape[-1] * output.shape[-2]
            total += 2 * nonzero * positions
        else:
            total += 2 * nonzero

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    try:
        with eval_mode(model):
            model(torch.zeros(1, *input_shape, device=model_device(model)))
    finally:
        for h in handles:
            h.remove()
    return total
