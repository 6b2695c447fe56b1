"""The content-addressed cache of trained models (base models, data-dependent priors, and what plugins
keep through ``RunContext.cache``)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

import bench
from bench.atomic import write_atomically
from bench.kit.training import TRAINING_CODE_VERSION
from bench.api.params import canonical_json, content_hash


def default_cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE_DIR", Path.home() / ".cache" / "compression-bench"))


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
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        write_atomically(self.root / f"{key}.pt", lambda f: torch.save(state, f))
        meta = {"config": config, "bench_version": bench.__version__, "torch_version": torch.__version__}
        write_atomically(self.root / f"{key}.json", json.dumps(json.loads(canonical_json(meta)), indent=2))
