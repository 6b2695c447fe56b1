"""Identity of a model's state: the digest the harness compares a decoded model with, and which
tensor differs when it does not match."""

from __future__ import annotations

import hashlib

import torch

__all__ = ["first_difference", "state_digest"]


def _evaluated(key: str) -> bool:
    """Every tensor of the state dict takes part in the evaluated function but BatchNorm's counter."""
    return not key.endswith("num_batches_tracked")


def state_digest(model) -> str:
    """sha256 of every tensor of the state dict (name, dtype, shape, bytes), in order: floating weights
    and statistics, and integer buffers such as index sets (not BatchNorm's ``num_batches_tracked``,
    which the evaluated function does not read)."""
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        if not _evaluated(key):
            continue
        t = value.detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(dtype=_byte_dtype()).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _byte_dtype():
    return torch.uint8


def first_difference(a, b) -> str:
    """Which floating tensor differs between two models (for the error message)."""
    sa = {k: v for k, v in a.state_dict().items() if _evaluated(k)}
    sb = {k: v for k, v in b.state_dict().items() if _evaluated(k)}
    if sa.keys() != sb.keys():
        only = sorted(set(sa) ^ set(sb))
        return f"the tensors differ in name ({', '.join(only[:3])})"
    for key in sa:
        x, y = sa[key].detach().cpu(), sb[key].detach().cpu()
        if x.shape != y.shape or x.dtype != y.dtype or not _same_bits(x, y):
            return f"tensor '{key}' differs"
    return "the tensors agree but their digests do not"


def _same_bits(x, y) -> bool:
    return x.contiguous().view(-1).view(dtype=_byte_dtype()).equal(y.contiguous().view(-1).view(dtype=_byte_dtype()))
