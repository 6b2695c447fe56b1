"""A stochastic classifier draws its weights once per prediction (``bench.kit.stochastic``): a layer
called twice in one forward pass reuses its draw where its noise can be shared (convolution kernels,
biases), and is refused, naming it, where it cannot (a Linear layer's noise is drawn on its outputs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bench.kit.stochastic import NoiseSpec, NoisyPosterior, noisy_network


class Difference(nn.Module):
    """``f(x) - f(x)``: zero for any single draw of f's weights, not for two."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) - self.inner(x)


class Doubled(nn.Module):
    """Feeds its layer the batch and its mirror image together: two inputs per prediction."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        both = self.inner(torch.cat([x, x.flip(-1)]))
        return both[: len(x)] + both[len(x):]


def everywhere(module: nn.Module, attr: str, std: float = 0.5) -> NoiseSpec:
    return NoiseSpec(np.arange(getattr(module, attr).numel()), std)


def test_a_convolution_called_twice_reuses_its_draw():
    torch.manual_seed(0)
    model = Difference(nn.Conv2d(2, 3, 3, padding=1)).eval()
    noise = {"inner.weight": everywhere(model.inner, "weight"), "inner.bias": everywhere(model.inner, "bias")}
    x = torch.randn(5, 2, 6, 6)
    with noisy_network(model, noise, torch.Generator().manual_seed(1)):
        out = model(x)
    assert torch.equal(out, torch.zeros_like(out))  # one draw per prediction: the two calls cancel exactly
    again = NoisyPosterior(model, noise).logits(x, torch.Generator().manual_seed(2))
    assert torch.equal(again, torch.zeros_like(again))


def test_the_draw_is_fresh_for_each_prediction_and_each_forward_pass():
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 1, 3, padding=1, bias=False).eval()
    noise = {"weight": everywhere(conv, "weight")}
    x = torch.randn(1, 1, 5, 5).repeat(4, 1, 1, 1)  # four copies of one image
    with noisy_network(conv, noise, torch.Generator().manual_seed(3)):
        first, second = conv(x), conv(x)
    assert not torch.allclose(first[0], first[1])  # each prediction its own draw
    assert not torch.allclose(first, second)  # each forward pass new draws


@pytest.mark.parametrize("attr", ["weight", "bias"])
def test_a_linear_layer_called_twice_is_refused_by_name(attr):
    model = Difference(nn.Linear(4, 3)).eval()
    noise = {f"inner.{attr}": everywhere(model.inner, attr)}
    with noisy_network(model, noise, torch.Generator().manual_seed(0)):
        if attr == "bias":  # a bias draw is a per-prediction vector: shared, so the difference is zero
            assert torch.equal(model(torch.randn(2, 4)), torch.zeros(2, 3))
            return
        with pytest.raises(ValueError, match="noisy module 'inner.weight' was called twice in one forward pass"):
            model(torch.randn(2, 4))


def test_a_layer_that_sees_more_inputs_than_predictions_is_refused():
    model = Doubled(nn.Conv2d(1, 2, 3)).eval()
    with noisy_network(model, {"inner.weight": everywhere(model.inner, "weight")}, torch.Generator().manual_seed(0)):
        with pytest.raises(ValueError, match="'inner.weight' saw 6 inputs in a forward pass of 3 predictions"):
            model(torch.randn(3, 1, 5, 5))


def test_a_linear_layer_applied_along_a_sequence_is_refused():
    layer = nn.Linear(4, 2).eval()
    with noisy_network(layer, {"weight": everywhere(layer, "weight")}, torch.Generator().manual_seed(0)):
        with pytest.raises(ValueError, match="would draw once per position, not once per prediction"):
            layer(torch.randn(3, 7, 4))
