"""Second-order quantization of a subspace vector z (OBQ / GPTQ, Frantar et al. 2022, applied in z-space).

Rounding every coordinate of z to its nearest level ignores that the training loss couples them: near a
trained z the loss grows like ½·δᵀHδ, and H in z-space (d × d, d ≤ a few thousand) is small enough to
form and invert. Quantizing the coordinates one at a time and moving the not-yet-quantized ones to cancel
each rounding error (the optimal correction under that quadratic) loses far less training accuracy per
bit than independent rounding, which is what the certificate pays for.

H is the Fisher of the model's own predictive distribution (labels sampled from the model, so its
expectation is the Gauss-Newton matrix of the cross-entropy), estimated on a seeded subset of the training
set. None of this is sent: the message holds the quantized levels, however they were chosen.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from bench.kit.evaluation import loss_fn
from bench.kit.types import Split

__all__ = ["fisher_z", "gptq_quantize"]


def _per_example_loss(model, task_type: str):
    """The task's training loss of one example, as a function of the parameters (for ``vmap(grad)``)."""
    loss = loss_fn(task_type)

    def one(params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss(functional_call(model, params, (x[None],), strict=False), y[None])
    return one


def fisher_z(space, z: torch.Tensor, train: Split, *, examples: int, generator: torch.Generator,
             task_type: str = "classification", batch_size: int = 128) -> np.ndarray:
    """Sampled-label Fisher PᵀF_θP of the loss at θ₀ + P·z (float64, d × d, averaged over examples).

    ``examples`` training points are drawn without replacement from ``generator``; each contributes the
    outer product of its per-example z-gradient with a label drawn from the model's prediction
    (a Gaussian around it for regression), so the estimate is unbiased for the Gauss-Newton matrix."""
    model = space.model
    was_training = model.training
    model.eval()  # a fixed function of θ: per-example gradients need no batch statistics
    params = {k: v.detach() for k, v in space.params(z.detach().to(space.device)).items()}
    names = list(params)
    per_example = vmap(grad(_per_example_loss(model, task_type)), in_dims=(None, 0, 0))
    count = min(int(examples), len(train))
    order = torch.randperm(len(train), generator=generator)[:count]
    fisher = torch.zeros(space.d, space.d, dtype=torch.float64)
    try:
        for start in range(0, count, batch_size):
            idx = order[start : start + batch_size]
            x = train.x[idx].to(space.device)
            with torch.no_grad():
                out = functional_call(model, params, (x,), strict=False)
                if task_type == "classification":
                    y = torch.multinomial(out.softmax(dim=1).cpu().double(), 1, generator=generator).squeeze(1)
                else:
                    y = out.cpu() + torch.randn(out.shape, generator=generator, dtype=out.dtype)
            grads = per_example(params, x, y.to(space.device))
            flat = torch.cat([grads[n].reshape(len(idx), -1) for n in names], dim=1) * space.row_scale
            gz = torch.stack([space.projector.adjoint(row) for row in flat]).double().cpu()
            fisher += gz.T @ gz
    finally:
        model.train(was_training)
    return (fisher / max(count, 1)).numpy()


def gptq_quantize(z: np.ndarray, hessian: np.ndarray, codebook: np.ndarray, damp: float = 0.01) -> np.ndarray:
    """The level index of every coordinate, chosen in order of decreasing curvature with the remaining
    coordinates corrected for each rounding error (GPTQ's Cholesky form of optimal brain quantization).

    ``damp`` adds that fraction of H's mean diagonal to its diagonal (an estimated H is noisy and may be
    singular). Coordinates corrected beyond the codebook's range take its nearest end level."""
    z = np.asarray(z, dtype=np.float64).ravel().copy()
    d = z.size
    h = np.asarray(hessian, dtype=np.float64)
    if h.shape != (d, d):
        raise ValueError(f"hessian must be {d} x {d}, got {h.shape}")
    levels = np.asarray(codebook, dtype=np.float64).ravel()
    diag = np.diag(h).copy()
    dead = diag <= 0
    h = h + np.diag(np.where(dead, 1.0, 0.0))  # a coordinate the loss ignores: round it alone
    h = h + damp * max(float(np.mean(np.diag(h))), 1e-12) * np.eye(d)
    order = np.argsort(-np.diag(h), kind="stable")
    h = h[np.ix_(order, order)]
    zo = z[order]
    inverse = np.linalg.inv(h)
    upper = np.linalg.cholesky((inverse + inverse.T) / 2).T  # H⁻¹ = UᵀU, U upper triangular
    index = np.empty(d, dtype=np.int64)
    for i in range(d):
        k = int(np.abs(levels - zo[i]).argmin())
        index[i] = k
        err = (zo[i] - levels[k]) / upper[i, i]
        zo[i + 1 :] -= err * upper[i, i + 1 :]
    out = np.empty(d, dtype=np.int64)
    out[order] = index
    return out
