"""What makes the curvature and Monte-Carlo passes fast must not change what they mean:
``bench.kit.evaluation.fast_copy`` (the channels-last copy they run on) leaves the caller's model alone,
agrees with it, and steps aside for models that cannot take that layout; ``ParallelNormals`` gives
standard normals that depend on the seed only, not on the number of threads filling them."""

from __future__ import annotations

import torch
from torch import nn

from bench.kit.evaluation import fast_copy
from bench.kit.stochastic import ParallelNormals


def conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 6, 3), nn.Flatten(),
                         nn.Linear(6 * 3 * 3, 5)).eval()


class ViewAfterConv(nn.Module):
    """A model written for the default layout: ``view`` on a convolution's output."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3), nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        h = self.conv(x)
        return self.fc(h.view(h.shape[0], -1))


def test_a_conv_model_gets_a_channels_last_copy_that_agrees():
    model, x = conv_net(), torch.randn(7, 1, 12, 12)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast, prepare = fast_copy(model, x[:2])
    assert fast is not model
    assert fast[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert prepare(x).is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(fast(prepare(x)), model(x), rtol=1e-5, atol=1e-6)
    for k, v in model.state_dict().items():  # the caller's model: same values, same layout
        assert torch.equal(v, before[k]) and v.is_contiguous()


def test_models_that_cannot_take_the_layout_are_returned_as_they_are():
    x = torch.randn(3, 1, 10, 10)
    viewing = ViewAfterConv().eval()
    fast, prepare = fast_copy(viewing, x[:2])  # view() on a channels-last output raises: stepped aside
    assert fast is viewing and prepare(x) is x
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(100, 3))
    fast, prepare = fast_copy(mlp, x[:2])  # no convolution: nothing to gain
    assert fast is mlp and prepare(x) is x


def test_parallel_normals_depend_on_the_seed_not_on_the_threads():
    threads = torch.get_num_threads()
    draws = {}
    try:
        for n in (1, 2):
            torch.set_num_threads(n)
            normals = ParallelNormals(torch.Generator().manual_seed(7))
            draws[n] = [normals(300, 1000), normals(5, 3)]  # a split draw, then one small enough for one stream
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(draws[1], draws[2]):
        assert torch.equal(a, b)
    big = draws[1][0]
    assert big.shape == (300, 1000) and big.dtype == torch.float32
    assert abs(float(big.mean())) < 0.01 and abs(float(big.std()) - 1) < 0.01
    quarters = big.view(-1).chunk(ParallelNormals.STREAMS)
    assert not any(torch.equal(quarters[0], q) for q in quarters[1:])  # every stream its own numbers
    other = ParallelNormals(torch.Generator().manual_seed(8))(300, 1000)
    assert not torch.equal(other, big)
