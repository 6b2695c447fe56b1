"""Evaluating and training on whole in-memory splits (losses, errors, minibatches)."""

from __future__ import annotations

import contextlib
import copy
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from bench.kit.types import Split

EVAL_BATCH = 512  # a LeNet-5 pass over 70 000 images: 2.5 s at 512 against 4.8 s at 4096 (channels-last, 2 cores)
PROBE = 64  # examples a model is tried on in the channels-last layout before it is given its batches in it


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluate in eval mode (BatchNorm uses its stored statistics) and restore the previous mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def loss_fn(task_type: str):
    return F.cross_entropy if task_type == "classification" else F.mse_loss


def model_device(model: nn.Module) -> torch.device:
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    # ``to`` and not ``contiguous``: a batch with one channel is already "contiguous" in both layouts,
    # and only explicit channels-last strides make the convolutions choose the fast kernels.
    return x.to(memory_format=torch.channels_last) if x.dim() == 4 else x


def _same_in_channels_last(model: nn.Module, fast: nn.Module, probe: torch.Tensor) -> bool:
    """Whether ``fast`` on channels-last inputs runs and agrees with ``model`` on the usual layout (a
    model that calls ``view`` on a convolution's output fails; one that reads memory order disagrees)."""
    device = model_device(model)
    try:
        with torch.no_grad(), eval_mode(model), eval_mode(fast):
            want = model(probe.to(device))
            got = fast(_channels_last(probe.to(device)))
    except RuntimeError:
        return False
    return got.shape == want.shape and bool(torch.allclose(got, want, rtol=1e-3, atol=1e-4))


def _has_conv2d(model: nn.Module, probe: torch.Tensor) -> bool:
    return probe.dim() == 4 and any(isinstance(m, nn.Conv2d) for m in model.modules())


def fast_copy(model: nn.Module, probe: torch.Tensor) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """A model for the passes whose results are estimates (curvature, Monte Carlo): ``(model, prepare)``,
    where ``prepare`` puts a batch of inputs in the layout the model wants.

    A model with 2-d convolutions gets a copy in channels-last memory format, whose convolutions and
    max-pooling run two to three times faster on the CPU (LeNet-5 on 28x28 images: a forward pass 2x).
    Its sums run in another order than the evaluation passes' (``input_layout``: channels-last inputs,
    the weights as they are), so its outputs can differ from theirs in the last bits: never use it for
    the exact error counts a certificate rests on. A model without such convolutions,
    or one that fails or disagrees on ``probe`` in that layout (a ``view`` of a convolution's output,
    say), is returned as it is."""
    if not _has_conv2d(model, probe):
        return model, _same_layout
    fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
    if not _same_in_channels_last(model, fast, probe):
        return model, _same_layout
    return fast, _channels_last


def input_layout(model: nn.Module, probe: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The layout a model's input batches are given in, for training and for the evaluation passes
    alike: channels-last for a model on the CPU with 2-d convolutions that runs and agrees in it on
    ``probe``, else as they are.

    On the CPU a LeNet-5 training step (forward, backward) takes 0.64x the time on a channels-last
    batch, and a forward pass over 70 000 images 0.25x: the convolutions and the max-pooling choose
    their channels-last kernels, whatever the weights' own layout. Outputs differ from the usual
    layout's in the last bits (sums in another order), which is why the training code's version counts
    it; every pass of the harness (the compressing process's, the decoder's, ``bench verify``'s) takes
    the same decision for the same model, so the exact error counts agree between them. Only measured
    on the CPU, so only used there."""
    if model_device(model).type != "cpu" or not _has_conv2d(model, probe) \
            or not _same_in_channels_last(model, model, probe):
        return _same_layout
    return _channels_last


def _same_layout(x: torch.Tensor) -> torch.Tensor:
    return x


def _outputs(model: nn.Module, x: torch.Tensor, batch: int = EVAL_BATCH) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, outputs)`` of ``model`` (in eval mode, in its input layout) on ``x``, batch by batch."""
    device = model_device(model)
    prepare = input_layout(model, x[:PROBE]) if len(x) else _same_layout
    with eval_mode(model):
        for i in range(0, len(x), batch):
            yield i, model(prepare(x[i : i + batch].to(device)))


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch: int = EVAL_BATCH) -> torch.Tensor:
    return torch.cat([out for _, out in _outputs(model, x, batch)])


@torch.no_grad()
def errors_and_cross_entropy(model: nn.Module, split: Split) -> tuple[int, float]:
    """Misclassified examples (an exact integer) and the mean cross-entropy in nats (float64), from
    one pass over ``split``."""
    errors, total = 0, 0.0
    for i, out in _outputs(model, split.x):
        y = split.y[i : i + len(out)].to(out.device)
        errors += int((out.argmax(dim=1) != y).sum())
        total += float(F.cross_entropy(out.double(), y, reduction="sum"))
    return errors, total / max(len(split), 1)


@torch.no_grad()
def error_count(model: nn.Module, split: Split) -> int:
    """Misclassified examples of ``split``: an exact integer (rates are this over n, in float64)."""
    return sum(int((out.argmax(dim=1) != split.y[i : i + len(out)].to(out.device)).sum())
               for i, out in _outputs(model, split.x))


@torch.no_grad()
def error_rate(model: nn.Module, split: Split, task_type: str = "classification") -> float:
    """0-1 error (integer count / n, float64) for classification, mean squared error for regression."""
    if len(split) == 0:
        return float("nan")
    if task_type == "classification":
        return error_count(model, split) / len(split)
    out = predict(model, split.x).double()
    return float(F.mse_loss(out, split.y.to(out.device).double()))


def minibatches(
    split: Split, batch_size: int, generator: torch.Generator, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled minibatches; the shuffle is drawn from ``generator`` (CPU, seeded)."""
    order = torch.randperm(len(split), generator=generator)
    for i in range(0, len(split), batch_size):
        idx = order[i : i + batch_size]
        yield split.x[idx].to(device, non_blocking=True), split.y[idx].to(device, non_blocking=True)
