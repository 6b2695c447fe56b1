"""Diagonal curvature of the training loss: Gauss-Newton (GGN) / Fisher diagonals for any model.

Three estimates of ``diag(H)`` for the *mean* training loss ``L_S(w) = (1/n) Σ_i ℓ(f(x_i; w), y_i)``
(cross-entropy for classification, squared error ``(f - y)²`` for regression):

``exact``      the exact GGN diagonal ``(1/n) Σ_i diag(J_iᵀ Λ_i J_i)``, ``Λ_i`` the Hessian of the loss in
               the outputs (``diag(p) - ppᵀ`` for softmax cross-entropy, ``2·I`` for squared error),
               computed as ``Σ_c (J_iᵀ s_c)²`` over the columns of a square root ``S`` of ``Λ_i``
               (``diag(√p) - p√pᵀ``; ``√2·I``): BackPACK's ``DiagGGNExact``, k backward rows per example.
``sampled``    the Monte-Carlo GGN / Fisher (BackPACK's ``DiagGGNMC``): squared per-example gradients of
               the loss at labels drawn from the model's own predictive distribution (categorical of the
               softmax; ``N(f, 1/2)`` for squared error, whose Fisher is the GGN ``2JᵀJ``), averaged over
               ``samples`` draws per example. Unbiased for ``exact``; seed 004's recommended curvature.
``empirical``  the empirical Fisher: squared per-example gradients at the true labels.

Every estimate is a mean over *rows* of squared per-row gradients of a per-row objective (the loss at
a label, or ``f·s_c``): an example is repeated once per sampled label or per output. Two methods give
the per-row gradients, both without a Python loop over examples or outputs:

``vmap``   ``torch.func``: ``vmap(grad(objective))`` over the rows, through ``functional_call``. Works for
           any model (a fallback for layers the other method does not know).
``hooks``  the layer-wise structure BackPACK uses: one batched backward gives each ``nn.Linear`` /
           ``nn.Conv2d`` (groups 1) its per-row output gradients ``g`` and the forward hook its inputs
           ``a``; the per-row weight gradient is ``gᵀa`` (convolutions: over the unfolded patches,
           ``bmm``), squared and summed at once. Several times faster than ``vmap`` on convolutions.
``auto``   ``hooks`` when every requested parameter is the weight or bias of such a layer that runs once
           per forward, else ``vmap``. Tests check both against a naive per-example loop.

The model is evaluated in eval mode (BatchNorm uses its running statistics, dropout is off), so rows
do not interact. Sampled labels are drawn on the CPU from a seeded generator, up front for the whole
set, so the result depends neither on the chunk size nor on the device (:func:`sample_targets`
exposes them, e.g. for a reference loop).
"""

from __future__ import annotations

from typing import Callable, Iterable, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from bench.kit.types import Split
from bench.kit.evaluation import eval_mode, fast_copy, model_device, predict

CurvatureKind = Literal["exact", "sampled", "empirical"]
Method = Literal["auto", "vmap", "hooks"]
KINDS: tuple[str, ...] = ("exact", "sampled", "empirical")
METHODS: tuple[str, ...] = ("auto", "vmap", "hooks")

#: Bytes of per-row gradients held at once; the chunk size follows from it and the model size.
DEFAULT_MEMORY_BUDGET = 256 * 2**20


def _check(kind: str, task_type: str, samples: int, method: str = "auto") -> None:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if task_type not in ("classification", "regression"):
        raise ValueError(f"task_type must be 'classification' or 'regression', got {task_type!r}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _as_outputs(out: torch.Tensor) -> torch.Tensor:
    """Outputs as (batch, k): a regression model may return one scalar per example."""
    return out.unsqueeze(-1) if out.dim() == 1 else out.flatten(1)


def example_loss(out: torch.Tensor, target: torch.Tensor, task_type: str) -> torch.Tensor:
    """The per-example loss summed over a batch: cross-entropy, or squared error ``(f - y)²``."""
    if task_type == "classification":
        return F.cross_entropy(out, target, reduction="sum")
    return ((_as_outputs(out) - target.reshape(len(out), -1)) ** 2).sum()


def sample_targets(model: nn.Module, x: torch.Tensor, task_type: str, samples: int,
                   generator: torch.Generator, outputs: torch.Tensor | None = None) -> torch.Tensor:
    """``samples`` labels per example from the model's predictive distribution, shape (n, samples).

    Classification: categorical of the softmax (inverse CDF of uniforms from ``generator``);
    regression: ``f(x) + ε`` with ``ε ~ N(0, 1/2)``, the Gaussian whose Fisher is the squared error's
    GGN. The uniforms/normals are drawn on the CPU for the whole set at once. ``outputs``: the model's
    outputs on ``x`` where the caller has them (no forward pass then).
    """
    out = (predict(model, x) if outputs is None else outputs).detach().cpu().double()
    n = len(x)
    if task_type == "classification":
        u = torch.rand(n, samples, generator=generator, dtype=torch.float64)
        cdf = torch.softmax(out, dim=1).cumsum(dim=1)
        cdf[:, -1] = 1.0
        return torch.searchsorted(cdf, u).clamp_(max=out.shape[1] - 1)
    noise = torch.randn(n, samples, generator=generator, dtype=torch.float64) * (0.5**0.5)
    return (_as_outputs(out)[:, :1] + noise).float()


def sqrt_output_hessian(out: torch.Tensor, task_type: str) -> torch.Tensor:
    """Columns ``s_c`` with ``Σ_c s_c s_cᵀ`` = the loss's Hessian in the outputs: (batch, k, k)."""
    out = _as_outputs(out)
    if task_type == "classification":
        p = torch.softmax(out, dim=1)
        root = p.sqrt()
        return torch.diag_embed(root) - p.unsqueeze(2) * root.unsqueeze(1)
    k = out.shape[1]
    return (2.0**0.5) * torch.eye(k, dtype=out.dtype, device=out.device).expand(len(out), k, k)


# ------------------------------------------------------------------------------------ the rows
def _objective(kind: str, task_type: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Sum over rows of the per-row objective: the loss at a label, or the projection ``f·s_c``."""
    if kind == "exact":
        return lambda out, aux: (_as_outputs(out) * aux).sum()
    return lambda out, aux: example_loss(out, aux, task_type)


def _rows(model_fn: Callable[[torch.Tensor], torch.Tensor], xb: torch.Tensor, targets: torch.Tensor | None,
          kind: str, task_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The chunk's rows: inputs (each example repeated) and what the objective pairs them with."""
    if kind == "exact":
        with torch.no_grad():
            roots = sqrt_output_hessian(model_fn(xb), task_type)  # (b, k, k), columns s_c
        k = roots.shape[1]
        return xb.repeat_interleave(k, dim=0), roots.transpose(1, 2).reshape(-1, k)
    width = targets.shape[1]
    return xb.repeat_interleave(width, dim=0), targets.reshape(-1)


# ----------------------------------------------------------------------------------- the hooks
_FAST_LAYERS = (nn.Linear, nn.Conv2d)


def _hook_layers(model: nn.Module, wanted: list[str]) -> dict[str, nn.Module] | None:
    """The layers that own ``wanted`` if all are Linear / Conv2d (groups 1) weights or biases."""
    owners: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        if not isinstance(module, _FAST_LAYERS):
            continue
        if isinstance(module, nn.Conv2d) and (module.groups != 1 or isinstance(module.padding, str)
                                              or module.padding_mode != "zeros"):
            continue
        for pname, _ in module.named_parameters(recurse=False):
            owners[f"{name}.{pname}" if name else pname] = module
    if any(w not in owners for w in wanted):
        return None
    layers = {}
    for w in wanted:
        prefix = w.rsplit(".", 1)[0] if "." in w else ""
        layers[prefix] = owners[w]
    return layers


def _patch_view(a: torch.Tensor, conv: nn.Conv2d, channels_last: bool) -> torch.Tensor:
    """The input patches of ``conv`` as a strided view of ``a`` (padded), following ``a``'s own strides,
    so any layout works: (b, Cin, kh, kw, Ho, Wo), or (b, Ho, Wo, kh, kw, Cin) with ``channels_last``
    (then the copy that :func:`torch.reshape` makes of it reads a channels-last input in order)."""
    ph, pw = conv.padding
    if ph or pw:
        a = F.pad(a, (pw, pw, ph, ph))
    b, c, h, w = a.shape
    (kh, kw), (sh, sw), (dh, dw) = conv.kernel_size, conv.stride, conv.dilation
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    s0, s1, s2, s3 = a.stride()
    if channels_last:
        return a.as_strided((b, ho, wo, kh, kw, c), (s0, sh * s2, sw * s3, dh * s2, dw * s3, s1))
    return a.as_strided((b, c, kh, kw, ho, wo), (s0, s1, dh * s2, dw * s3, sh * s2, sw * s3))


def _patches(a: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """The unfolded input patches (b, Cin·kh·kw, Ho·Wo), as ``F.unfold`` gives them, from a strided view
    (``F.unfold`` is many times slower on CPU)."""
    view = _patch_view(a, conv, channels_last=False)
    return view.reshape(view.shape[0], -1, view.shape[4] * view.shape[5])


def _patches_channels_last(a: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """The patches as (b, Ho·Wo, kh·kw·Cin), channel fastest: from a channels-last input, a copy that
    reads memory in order (the layout :func:`_patches` would gather from all over)."""
    view = _patch_view(a, conv, channels_last=True)
    return view.reshape(view.shape[0], view.shape[1] * view.shape[2], -1)


def _per_row_weight_grads(module: nn.Module, a: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ over rows of squared per-row gradients of (weight, bias), from inputs ``a`` and output grads ``g``."""
    if isinstance(module, nn.Conv2d) and a.is_contiguous(memory_format=torch.channels_last):
        patches = _patches_channels_last(a, module)  # (b, P, kh·kw·Cin)
        go = g.permute(0, 2, 3, 1).reshape(len(g), -1, g.shape[1])  # (b, P, Cout): a view when g is channels-last
        cout, cin, kh, kw = module.weight.shape
        per = torch.bmm(go.transpose(1, 2), patches).square_().sum(0)  # (Cout, kh·kw·Cin)
        return per.view(cout, kh, kw, cin).permute(0, 3, 1, 2).contiguous(), go.sum(1).square_().sum(0)
    if isinstance(module, nn.Conv2d):
        patches = _patches(a, module)  # (b, Cin·kh·kw, P)
        go = g.flatten(2)  # (b, Cout, P)
        weight = torch.bmm(go, patches.transpose(1, 2)).square_().sum(0).view(module.weight.shape)
        return weight, go.sum(2).square_().sum(0)
    if a.dim() == 2:
        return (g * g).T @ (a * a), (g * g).sum(0)
    a3, g3 = a.reshape(len(a), -1, a.shape[-1]), g.reshape(len(g), -1, g.shape[-1])
    return torch.bmm(g3.transpose(1, 2), a3).pow(2).sum(0), g3.sum(1).pow(2).sum(0)


class LayerReused(RuntimeError):
    """A hooked layer ran more than once in a forward pass (shared weights): use ``vmap``."""


class _Capture:
    """Forward hooks that keep each layer's input and output for one forward pass."""

    def __init__(self, layers: dict[str, nn.Module]) -> None:
        self.inputs: dict[str, torch.Tensor] = {}
        self.outputs: dict[str, torch.Tensor] = {}
        self.reused: set[str] = set()
        self.handles = [m.register_forward_hook(self._hook(n)) for n, m in layers.items()]

    def _hook(self, name: str):
        def hook(module, inputs, output):
            if name in self.outputs:
                self.reused.add(name)
            self.inputs[name] = inputs[0].detach()
            self.outputs[name] = output
        return hook

    def clear(self) -> None:
        self.inputs.clear()
        self.outputs.clear()
        self.reused.clear()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _accumulate_hooks(model: nn.Module, layers: dict[str, nn.Module], capture: _Capture, xr: torch.Tensor,
                      aux: torch.Tensor, objective, total: dict[str, torch.Tensor]) -> None:
    capture.clear()
    with torch.enable_grad():
        # every hooked output must require grad: through its own parameters when they all do (then no
        # input gradient is computed), else through the input
        frozen = any(not p.requires_grad for m in layers.values() for p in m.parameters(recurse=False))
        needs_input = xr.is_floating_point() and frozen
        inputs = xr.detach().requires_grad_(True) if needs_input else xr
        value = objective(model(inputs), aux)
        if capture.reused:
            raise LayerReused(f"layer(s) {sorted(capture.reused)} run more than once per forward")
        names = list(layers)
        grads = torch.autograd.grad(value, [capture.outputs[n] for n in names], allow_unused=True)
    for name, g in zip(names, grads):
        if g is None:  # the layer does not reach the objective
            continue
        module = layers[name]
        w, b = _per_row_weight_grads(module, capture.inputs[name].float(), g.float())
        prefix = f"{name}." if name else ""
        if f"{prefix}weight" in total:
            total[f"{prefix}weight"] += w
        if f"{prefix}bias" in total:
            total[f"{prefix}bias"] += b


# ----------------------------------------------------------------------------------- the entry
HOOK_ROWS = 512  # rows per batch for ``hooks`` (per-row memory: activations and conv weight gradients)


def _default_chunk(named: dict[str, torch.Tensor], wanted: list[str], layers: dict | None, width: int,
                   memory_budget: int) -> int:
    """Examples per batch: ``vmap`` holds every per-row gradient, ``hooks`` only the convolutions'."""
    if layers is None:
        per_row = sum(named[k].numel() for k in wanted)
        return max(1, memory_budget // (4 * max(per_row, 1) * width))
    per_row = sum(m.weight.numel() for m in layers.values() if isinstance(m, nn.Conv2d))
    rows = min(HOOK_ROWS, memory_budget // (8 * max(per_row, 1)))
    return max(1, rows // width)


def diagonal_curvature(
    model: nn.Module,
    split: Split,
    kind: CurvatureKind = "sampled",
    task_type: str = "classification",
    *,
    samples: int = 1,
    generator: torch.Generator | None = None,
    names: Iterable[str] | None = None,
    max_examples: int | None = None,
    method: Method = "auto",
    chunk_size: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    outputs: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Diagonal GGN / Fisher of the mean training loss, per parameter (float32, on the CPU).

    ``names`` restricts the result to those parameters (the others are held fixed, which saves time
    and memory); default all trainable parameters. ``max_examples`` uses a seeded random subset of the
    split (from ``generator``); default the whole split. ``chunk_size`` is the number of examples per
    batch (default: as many as keep the per-row gradients within ``memory_budget`` bytes). ``outputs``:
    the model's outputs on the whole split where the caller already has them (the labels of ``sampled``
    are drawn from them instead of from another forward pass). The passes run on a copy in the faster
    memory layout (:func:`bench.kit.evaluation.fast_copy`): an estimate, not an exact count.
    """
    _check(kind, task_type, samples, method)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    if outputs is not None and len(outputs) != len(split):
        raise ValueError(f"outputs has {len(outputs)} rows for a split of {len(split)}")
    model, prepare = fast_copy(model, split.x[:2])
    device = model_device(model)
    named = dict(model.named_parameters())
    wanted = list(names) if names is not None else [k for k, p in named.items() if p.requires_grad]
    missing = [k for k in wanted if k not in named]
    if missing:
        raise ValueError(f"model has no parameter '{missing[0]}'")
    x_all, y_all = split.x, split.y
    if max_examples is not None and max_examples < len(split):
        idx = torch.randperm(len(split), generator=generator)[:max_examples]
        x_all, y_all = x_all[idx], y_all[idx]
        outputs = None if outputs is None else outputs[idx]
    n = len(x_all)
    if n == 0:
        raise ValueError("cannot compute curvature on an empty split")
    layers = _hook_layers(model, wanted) if method != "vmap" else None
    if method == "hooks" and layers is None:
        raise ValueError("method 'hooks' needs every parameter to be a Linear or Conv2d (groups 1) weight or bias")

    total = {k: torch.zeros_like(named[k], dtype=torch.float32) for k in wanted}
    objective = _objective(kind, task_type)
    with eval_mode(model):
        if kind == "sampled":
            targets = sample_targets(model, x_all, task_type, samples, generator, outputs)
        elif kind == "empirical":
            targets = y_all.reshape(n, 1)
        else:
            targets = None
        width = _as_outputs(predict(model, x_all[:1])).shape[1] if kind == "exact" else targets.shape[1]
        chunk = chunk_size or _default_chunk(named, wanted, layers, width, memory_budget)
        params = {k: named[k].detach() for k in wanted}
        frozen = {k: v.detach() for k, v in named.items() if k not in params}
        buffers = {k: v.detach() for k, v in model.named_buffers()}

        def forward(p: dict, xb: torch.Tensor) -> torch.Tensor:
            return functional_call(model, ({**frozen, **p}, buffers), (xb,))

        def row_objective(p: dict, xi: torch.Tensor, ai: torch.Tensor) -> torch.Tensor:
            return objective(forward(p, xi.unsqueeze(0)), ai.unsqueeze(0))

        per_row = vmap(grad(row_objective), in_dims=(None, 0, 0))
        capture = _Capture(layers) if layers is not None else None
        try:
            start = 0
            while start < n:
                xb = prepare(x_all[start : start + chunk].to(device))
                tb = None if targets is None else targets[start : start + chunk].to(device)
                xr, aux = _rows(model, xb, tb, kind, task_type)
                xr = prepare(xr)
                if capture is not None:
                    try:
                        _accumulate_hooks(model, layers, capture, xr, aux, objective, total)
                    except LayerReused:
                        if method == "hooks" or start > 0:
                            raise
                        capture.remove()  # 'auto': shared weights, start again with vmap
                        capture, layers = None, None
                        chunk = chunk_size or _default_chunk(named, wanted, None, width, memory_budget)
                        continue
                else:
                    for k, g in per_row(params, xr, aux).items():
                        total[k] += g.float().pow(2).sum(0)
                start += chunk
        finally:
            if capture is not None:
                capture.remove()
    scale = 1.0 / (n * (width if kind == "sampled" else 1))
    return {k: (v * scale).cpu().contiguous() for k, v in total.items()}


def diagonal_curvature_loop(model: nn.Module, split: Split, kind: CurvatureKind = "sampled",
                            task_type: str = "classification", *, samples: int = 1,
                            generator: torch.Generator | None = None,
                            names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """The naive reference: one backward per example (and per sampled label, or per output for
    ``exact``). Slow; for tests and the speed benchmark. Same labels as :func:`diagonal_curvature`
    for the same ``generator`` (whole split, no ``max_examples``)."""
    _check(kind, task_type, samples)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    device = model_device(model)
    named = dict(model.named_parameters())
    wanted = list(names) if names is not None else [k for k, p in named.items() if p.requires_grad]
    total = {k: torch.zeros_like(named[k], dtype=torch.float32) for k in wanted}
    n = len(split)
    with eval_mode(model), torch.enable_grad():
        targets = sample_targets(model, split.x, task_type, samples, generator) if kind == "sampled" else None
        for i in range(n):
            xi = split.x[i : i + 1].to(device)
            out = model(xi)
            if kind == "exact":
                roots = sqrt_output_hessian(out.detach(), task_type)[0]
                objectives = [(_as_outputs(out)[0] * roots[:, c]).sum() for c in range(roots.shape[1])]
            else:
                labels = targets[i] if kind == "sampled" else split.y[i : i + 1]
                objectives = [example_loss(out, t.reshape(1).to(device), task_type) for t in labels]
            for value in objectives:
                g = torch.autograd.grad(value, [named[k] for k in wanted], retain_graph=True)
                for k, gk in zip(wanted, g):
                    total[k] += gk.float() ** 2
    scale = 1.0 / (n * (samples if kind == "sampled" else 1))
    return {k: (v * scale).cpu() for k, v in total.items()}
