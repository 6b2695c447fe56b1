"""The data types the toolkit works on (the plugin API re-exports them): a split of a dataset, one
coded layer's (S, C, Q), and a stochastic classifier."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["LayerCode", "Posterior", "Split"]


@dataclass
class Split:
    """One split of a dataset, held whole in memory (inputs already normalized)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device) -> "Split":
        return Split(self.x.to(device), self.y.to(device))

    def digest(self) -> str:
        """sha256 of the inputs and labels: what anything computed from this split depends on."""
        import hashlib

        h = hashlib.sha256()
        for t in (self.x, self.y):
            t = t.detach().cpu().contiguous()
            h.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.numpy().tobytes())
        return h.hexdigest()



@dataclass
class LayerCode:
    """One layer as a compressor coded it: kept positions S, codebook C, assignments Q (seed 002)."""

    name: str
    size: int  # number of weights p in the layer
    positions: np.ndarray  # S: sorted kept indices into the flattened layer
    codebook: np.ndarray  # C: r values (float32, exactly as decoded)
    assignments: np.ndarray  # Q: for each kept position, an index into the codebook
    positions_bits: float  # size of S's section in the message
    codebook_bits: float  # size of C's section in the message



class Posterior:
    """A stochastic classifier around the decoded model: ``logits`` draws fresh weights for every
    example of ``x``. The harness uses it to measure the classifier's own test error."""

    def logits(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError
