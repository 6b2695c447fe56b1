"""Training base models from a task's recipe, and the content-addressed cache that keeps them."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

import bench
from bench.contracts import Recipe, Split
from bench.evaluation import loss_fn, minibatches
from bench.params import canonical_json, content_hash

TRAINING_CODE_VERSION = "1"  # bump when training changes the weights it produces


def default_cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE_DIR", Path.home() / ".cache" / "compression-bench"))


def make_optimizer(params, recipe: Recipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    cls = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, recipe: Recipe, steps: int):
    if recipe.schedule == "cosine" and steps > 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    return None


def fit(
    model: nn.Module,
    train: Split,
    recipe: Recipe,
    generator: torch.Generator,
    task_type: str,
    progress: Callable[..., object] | None = None,
    desc: str = "train",
) -> nn.Module:
    """Minibatch training of ``model`` in place by ``recipe``; the shuffles come from ``generator``."""
    device = next(model.parameters()).device
    opt = make_optimizer([p for p in model.parameters() if p.requires_grad], recipe)
    steps_per_epoch = -(-len(train) // recipe.batch_size)
    sched = make_scheduler(opt, recipe, recipe.epochs * steps_per_epoch)
    criterion = loss_fn(task_type)
    bar = progress(total=recipe.epochs, desc=desc) if progress else None
    model.train()
    for _ in range(recipe.epochs):
        total, count = 0.0, 0
        for xb, yb in minibatches(train, recipe.batch_size, generator, device):
            opt.zero_grad(set_to_none=True)
            loss = criterion(model(xb), yb)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += float(loss.detach()) * len(xb)
            count += len(xb)
        if not torch.isfinite(torch.tensor(total)):
            raise FloatingPointError(f"{desc}: training loss became {total}")
        if bar is not None:
            bar.set_postfix(loss=f"{total / max(count, 1):.4f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    model.eval()
    return model


class ModelCache:
    """Trained models on disk, keyed by the hash of everything that determines them.

    Each entry is ``<key>.pt`` (a state dict, loaded with ``weights_only=True``) and ``<key>.json``
    (the configuration that produced it, for people and for debugging).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "models"

    @staticmethod
    def key(config: dict) -> str:
        full = {"config": config, "torch": torch.__version__.split("+")[0], "training": TRAINING_CODE_VERSION}
        return content_hash(full, 24)

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Held while training ``key``, so concurrent workers train each base model once."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{key}.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def load(self, key: str, model: nn.Module) -> bool:
        path = self.root / f"{key}.pt"
        if not path.exists():
            return False
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return True

    def save(self, key: str, model: nn.Module, config: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        with tempfile.NamedTemporaryFile(dir=self.root, prefix=".tmp-", suffix=".pt", delete=False) as f:
            torch.save(state, f)
        os.replace(f.name, self.root / f"{key}.pt")
        meta = {"config": config, "bench_version": bench.__version__, "torch_version": torch.__version__}
        (self.root / f"{key}.json").write_text(json.dumps(json.loads(canonical_json(meta)), indent=2))
