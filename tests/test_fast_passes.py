"""What makes the curvature and Monte-Carlo passes and training fast must not change what they mean:
``bench.kit.evaluation.fast_copy`` (the channels-last copy they run on) leaves the caller's model alone,
agrees with it, and steps aside for models that cannot take that layout; ``ParallelNormals`` gives
standard normals that depend on the seed only, not on the number of threads filling them; training
(``train_loop``) feeds a convolutional model channels-last batches, and only a model that takes them."""

from __future__ import annotations

import torch
from torch import nn

from bench.kit.evaluation import error_count, fast_copy, input_layout, predict
from bench.kit.stochastic import ParallelNormals
from bench.kit.training import train_loop
from bench.kit.types import Split


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
    assert prepare(x).stride()[1] == 1  # explicitly channels-last, even with one channel
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


def channels_last_strides(x: torch.Tensor) -> bool:
    """Channels-last in its strides (a one-channel batch is "contiguous" in both layouts; only explicit
    strides make the convolutions take their channels-last kernels)."""
    return x.dim() == 4 and x.stride()[1] == 1 and x.stride()[3] == x.shape[1]


class Recording(nn.Module):
    """Runs ``inner`` and keeps whether each batch it was given had channels-last strides."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.layouts = inner, []

    def forward(self, x):
        self.layouts.append(channels_last_strides(x))
        return self.inner(x)


def train(model: nn.Module, seed: int = 0) -> Recording:
    g = torch.Generator().manual_seed(seed)
    data = Split(torch.randn(40, 1, 12, 12, generator=g), torch.randint(0, 5, (40,), generator=g))
    recording = Recording(model)
    opt = torch.optim.Adam(recording.parameters(), lr=1e-2)
    train_loop(opt, recording, data, epochs=2, batch_size=16, generator=torch.Generator().manual_seed(seed),
               device=torch.device("cpu"))
    return recording


def test_training_feeds_a_conv_model_channels_last_batches_and_is_deterministic():
    x = torch.randn(3, 1, 12, 12)
    assert channels_last_strides(input_layout(conv_net(), x)(x))
    first, second = train(conv_net().train()), train(conv_net().train())
    assert first.layouts[2:] == [True] * 6  # after the probe's two passes: 2 epochs of 3 batches
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)  # the same seed, the same weights


def test_training_leaves_the_layout_alone_for_models_that_cannot_take_it():
    x = torch.randn(3, 1, 10, 10)
    assert input_layout(ViewAfterConv(), x)(x) is x
    assert input_layout(nn.Sequential(nn.Flatten(), nn.Linear(100, 3)), x)(x) is x
    viewing = train(nn.Sequential(nn.ZeroPad2d(-1), ViewAfterConv(), nn.Linear(3, 5)).train())
    assert viewing.layouts[2:] == [False] * 6  # view() would have raised in training


def test_the_evaluation_passes_use_the_layout_and_count_exactly():
    g = torch.Generator().manual_seed(1)
    data = Split(torch.randn(1100, 1, 12, 12, generator=g), torch.randint(0, 5, (1100,), generator=g))
    model = Recording(conv_net())
    want = int((model.inner(data.x).argmax(1) != data.y).sum())  # the usual layout, one batch
    model.layouts.clear()
    assert error_count(model, data) == want
    assert model.layouts[2:] == [True] * 3  # after the probe: 1100 examples in batches of 512
    torch.testing.assert_close(predict(model, data.x), model.inner(data.x), rtol=1e-5, atol=1e-6)
    viewing = nn.Sequential(nn.ZeroPad2d(-1), ViewAfterConv()).eval()
    assert predict(viewing, data.x).shape == (1100, 3)  # steps aside: view() would raise
