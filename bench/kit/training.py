"""One training loop, with hooks, for every trainer: base models, centroid fine-tuning, masked
retraining, Dynamic Network Surgery, subspace and quantization-aware training, VIBNet.

Each minibatch (in the layout ``layout`` gives: see ``input_layout``): ``before_batch(step)``, zero the gradients, ``loss(forward(x), y)``, backward,
``before_step()`` (e.g. mask the gradients), the optimizer step, ``after_step()`` (e.g. re-apply a mask),
the schedule's step. The shuffles come from ``generator`` (CPU, seeded), so the same call gives the
same weights. Returns the last epoch's mean loss (and error, for classification).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import nn

from bench.kit.evaluation import PROBE, input_layout, loss_fn, minibatches
from bench.kit.types import Split

TRAINING_CODE_VERSION = "2"  # bump when training changes the weights it produces (2: channels-last batches)

__all__ = ["Hooks", "TRAINING_CODE_VERSION", "fit", "make_optimizer", "make_scheduler", "train_loop"]


def make_optimizer(params: Iterable, optimizer: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    if optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    cls = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, weight_decay=weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, schedule: str, steps: int):
    if schedule == "cosine" and steps > 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    return None


@dataclass
class Hooks:
    before_batch: Callable[[int], None] | None = None  # the global step, before the gradient
    before_step: Callable[[], None] | None = None  # after backward, before the optimizer step
    after_step: Callable[[], None] | None = None  # after the optimizer step
    after_epoch: Callable[[dict, object], None] | None = None  # (the epoch's stats, the progress bar)


def train_loop(opt: torch.optim.Optimizer, forward: Callable[[torch.Tensor], torch.Tensor], train: Split, *,
               epochs: int, batch_size: int, generator: torch.Generator, device: torch.device,
               task_type: str = "classification", loss: Callable | None = None, scheduler=None,
               hooks: Hooks | None = None, progress: Callable | None = None, desc: str = "train",
               layout: nn.Module | None = None) -> dict:
    """Minibatch training: ``epochs`` passes over ``train`` (see the module's docstring). ``layout``: the
    module ``forward`` runs (``forward`` itself when it is one), whose convolutions choose the batches'
    memory layout."""
    hooks = hooks or Hooks()
    module = layout if layout is not None else forward if isinstance(forward, nn.Module) else None
    prepare = input_layout(module, train.x[:PROBE]) if module is not None and len(train) else None
    loss = loss or loss_fn(task_type)
    bar = progress(total=epochs, desc=desc) if progress else None
    stats = {"loss": float("nan"), "err": float("nan")}
    step = 0
    for _ in range(epochs):
        total = torch.zeros((), dtype=torch.float64, device=device)
        wrong = torch.zeros((), dtype=torch.float64, device=device)
        count = 0
        for xb, yb in minibatches(train, batch_size, generator, device):
            if prepare is not None:
                xb = prepare(xb)
            if hooks.before_batch is not None:
                hooks.before_batch(step)
            opt.zero_grad(set_to_none=True)
            out = forward(xb)
            value = loss(out, yb)
            value.backward()
            if hooks.before_step is not None:
                hooks.before_step()
            opt.step()
            if hooks.after_step is not None:
                hooks.after_step()
            if scheduler is not None:
                scheduler.step()
            total += value.detach().double() * len(xb)
            if task_type == "classification":
                wrong += (out.detach().argmax(1) != yb).sum()
            count += len(xb)
            step += 1
        stats = {"loss": float(total) / max(count, 1), "err": float(wrong) / max(count, 1)}
        if not math.isfinite(stats["loss"]):
            raise FloatingPointError(f"{desc}: training loss became {stats['loss']}")
        if bar is not None:
            if hooks.after_epoch is not None:
                hooks.after_epoch(stats, bar)
            else:
                bar.set_postfix(loss=f"{stats['loss']:.4f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    return stats


def fit(model: nn.Module, train: Split, *, optimizer: str, lr: float, epochs: int, batch_size: int,
        weight_decay: float, momentum: float, schedule: str, generator: torch.Generator, task_type: str,
        progress: Callable | None = None, desc: str = "train") -> nn.Module:
    """Train ``model`` in place (every parameter that requires a gradient)."""
    device = next(model.parameters()).device
    opt = make_optimizer([p for p in model.parameters() if p.requires_grad], optimizer, lr, weight_decay, momentum)
    steps_per_epoch = -(-len(train) // batch_size)
    model.train()
    train_loop(opt, model, train, epochs=epochs, batch_size=batch_size, generator=generator, device=device,
               task_type=task_type, scheduler=make_scheduler(opt, schedule, epochs * steps_per_epoch),
               progress=progress, desc=desc)
    model.eval()
    return model
