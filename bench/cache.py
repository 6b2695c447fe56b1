"""The content-addressed cache of trained models (base models, data-dependent priors, and what plugins
keep through ``RunContext.cache``)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

import bench
from bench.atomic import write_atomically
from bench.quarantine import move_aside
from bench.kit.training import TRAINING_CODE_VERSION
from bench.api.params import canonical_json, content_hash


def default_cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE_DIR", Path.home() / ".cache" / "compression-bench"))


class ModelCache:
    """Trained models on disk, keyed by the hash of everything that determines them.

    Each entry is ``<key>.pt`` (a state dict, loaded with ``weights_only=True``) and ``<key>.json``
    (the configuration that produced it, and the sha256 of the ``.pt`` file). Both are written
    atomically, the ``.pt`` first, so a ``.json`` names a digest only once its file is whole. An entry
    that does not load, or whose bytes do not match their digest, is moved to ``_quarantine/`` with a
    one-line warning and trained again: one bad file costs one retraining, not every later run.
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
        """Load entry ``key`` into ``model``; ``False`` when there is none, or it was damaged and has been
        set aside (the caller trains it again)."""
        path = self.root / f"{key}.pt"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return False
        meta = self._meta(key)
        digest = hashlib.sha256(data).hexdigest()
        expected = meta.get("sha256") if meta is not None else None
        if expected is not None and expected != digest:
            self._set_aside(key, f"sha256 {digest[:12]}… does not match {expected[:12]}… in its .json")
            return False
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:  # noqa: BLE001 - any failure to load means the entry is unusable
            first = str(exc).strip().splitlines()[0].split(". ")[0] if str(exc).strip() else ""
            self._set_aside(key, f"{type(exc).__name__}: {first}"[:160])
            return False
        if expected is None:  # an entry from before digests were kept, or whose .json was lost: adopt it
            self._write_meta(key, digest, (meta or {}).get("config"))
        return True

    def save(self, key: str, model: nn.Module, config: dict) -> None:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
        write_atomically(self.root / f"{key}.pt", data)
        self._write_meta(key, hashlib.sha256(data).hexdigest(), config)

    def _meta(self, key: str) -> dict | None:
        try:
            meta = json.loads((self.root / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None
        return meta if isinstance(meta, dict) else None

    def _write_meta(self, key: str, digest: str, config: dict | None) -> None:
        meta = {"config": config, "sha256": digest, "bench_version": bench.__version__,
                "torch_version": torch.__version__}
        write_atomically(self.root / f"{key}.json", json.dumps(json.loads(canonical_json(meta)), indent=2))

    def _set_aside(self, key: str, why: str) -> None:
        quarantine = self.root / "_quarantine"
        move_aside(self.root / f"{key}.pt", quarantine, why, "it is trained again")
        if (self.root / f"{key}.json").exists():
            move_aside(self.root / f"{key}.json", quarantine, why, None)
