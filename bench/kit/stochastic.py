"""Stochastic classifiers for PAC-Bayes bounds: Gaussian noise on chosen weights, the Monte-Carlo
estimate of their error, and the per-weight KL to an unnormalized Gaussian mixture (BOUNDS.md 3).

Two independent pieces, both generic (no plugin state):

* **KL to a Gaussian mixture.** :func:`mixture_kl` gives, for each posterior mean ``μ``,
  ``KL( N(μ, σ²) ‖ Σ_j N(c_j, λ²) ) = ∫ N(x; μ, σ²) [ln N(x; μ, σ²) - ln Σ_j N(x; c_j, λ²)] dx``
  against the *unnormalized* mixture (total mass ``r``), so it may be negative (seed 002 Thm 4.3). The
  entropy part is closed form, ``-½ ln(2πeσ²)``; the cross term is a Gauss-Hermite sum with a
  log-sum-exp inside, refined until two orders agree, and capped by the rigorous Jensen upper bound
  ``ln(λ/σ) - ½ - lse_j(-((μ-c_j)² + σ²)/(2λ²))`` (exact for one component: ``ln(λ/σ) + σ²/(2λ²) - ½``).
  :func:`codebook_kl` weights the ``r`` per-centroid values by how many weights use each centroid.

* **Monte-Carlo error of a noisy network.** :func:`noisy_error_count` evaluates a model whose chosen
  weight tensors carry independent ``N(0, std²)`` noise, drawing a *fresh weight sample for every
  example* (a new draw for each prediction, as the stochastic classifier is defined). Linear layers use
  the local reparameterization, which is exact in distribution for one example (each output unit is a
  Gaussian with mean ``W a`` and variance ``Σ_k std²_jk a_k²``, independent across units because rows
  share no weights); convolutions draw a per-example kernel noise and apply it as a grouped
  convolution. A draw is made once per prediction: a convolution or bias called again within the same
  forward pass reuses its draw, and a module that would need a second, different draw (a Linear layer
  called twice, or applied to a sequence, or any layer that sees more inputs than the forward has
  predictions) is refused with an error naming it, never silently drawn twice. So the ``n·passes`` 0-1
  losses are independent Bernoulli variables whose mean is the
  stochastic classifier's training error, and the sample-convergence bound
  ``kl⁻¹(ê_MC, ln(2/δ')/(n·passes))`` (:func:`bench.kit.bounds.mc_error_upper_bound`) applies with
  ``m = n·passes`` (Chernoff's kl bound holds for independent, not necessarily identical, [0, 1]
  variables). All noise comes from :class:`ParallelNormals`, four CPU generators seeded from the
  caller's ``torch.Generator`` and filled in threads, in a fixed order (fixed batch size), so the same
  generator seed gives the same count whatever the number of threads. The passes run on the model's
  channels-last copy where it has 2-d convolutions (:func:`bench.kit.evaluation.fast_copy`).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.kit.types import Posterior, Split
from bench.kit.evaluation import eval_mode, fast_copy, model_device

__all__ = [
    "NoiseSpec",
    "NoisyPosterior",
    "best_prior_scale",
    "codebook_kl",
    "gaussian_kl_single",
    "mixture_kl",
    "mixture_kl_jensen",
    "noise_from_positions",
    "noisy_error_count",
    "noisy_network",
    "posterior_error_count",
]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_GH_ORDERS = (48, 96, 192)
_GH_RTOL = 1e-7
_CHUNK = 1 << 22  # elements of one quadrature block


# ------------------------------------------------------------------------- KL to a Gaussian mixture


def _check_scales(sigma: float, lam: float) -> tuple[float, float]:
    sigma, lam = float(sigma), float(lam)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a finite number > 0, got {sigma!r}")
    if not (math.isfinite(lam) and lam > 0):
        raise ValueError(f"lam must be a finite number > 0, got {lam!r}")
    return sigma, lam


def gaussian_kl_single(sigma: float, lam: float) -> float:
    """``KL(N(μ, σ²) ‖ N(μ, λ²)) = ln(λ/σ) + σ²/(2λ²) - ½`` (one component at the posterior mean)."""
    sigma, lam = _check_scales(sigma, lam)
    return math.log(lam / sigma) + sigma**2 / (2 * lam**2) - 0.5


@dataclass(frozen=True)
class _Hermite:
    nodes: np.ndarray
    weights: np.ndarray  # normalized: sum to 1 (weights of E over a standard normal)


_HERMITE: dict[int, _Hermite] = {}


def _hermite(order: int) -> _Hermite:
    if order not in _HERMITE:
        t, w = np.polynomial.hermite.hermgauss(order)
        _HERMITE[order] = _Hermite(np.sqrt(2.0) * t, w / math.sqrt(math.pi))
    return _HERMITE[order]


def _lse(z: np.ndarray, axis: int) -> np.ndarray:
    """``ln Σ exp(z)`` along ``axis`` (finite inputs; plain numpy, no per-call overhead)."""
    top = z.max(axis=axis, keepdims=True)
    return np.log(np.exp(z - top).sum(axis=axis)) + np.squeeze(top, axis=axis)


def _gh_cross(means: np.ndarray, sigma: float, centers: np.ndarray, lam: float, order: int) -> np.ndarray:
    """``E_{x~N(μ,σ²)}[ln Σ_j N(x; c_j, λ²)]`` for every ``μ`` by ``order``-point Gauss-Hermite."""
    gh = _hermite(order)
    out = np.empty(means.size)
    chunk = max(1, _CHUNK // (order * centers.size))
    for s in range(0, means.size, chunk):
        x = means[s : s + chunk, None] + sigma * gh.nodes[None, :]  # (m, order)
        z = -((x[:, :, None] - centers[None, None, :]) ** 2) / (2.0 * lam * lam)  # (m, order, r)
        log_mix = _lse(z, 2) - math.log(lam) - _LOG_SQRT_2PI
        out[s : s + chunk] = log_mix @ gh.weights
    return out


def mixture_kl_jensen(means, sigma: float, centers, lam: float) -> np.ndarray:
    """A rigorous upper bound on :func:`mixture_kl` (Jensen: ``E[lse(g)] >= lse(E[g])``), exact for
    one component and for coincident centres; closed form."""
    sigma, lam = _check_scales(sigma, lam)
    mu = np.asarray(means, dtype=np.float64).ravel()
    c = np.asarray(centers, dtype=np.float64).ravel()
    z = -(((mu[:, None] - c[None, :]) ** 2) + sigma**2) / (2.0 * lam * lam)
    return math.log(lam / sigma) - 0.5 - _lse(z, 1)


def mixture_kl(means, sigma: float, centers, lam: float) -> np.ndarray:
    """``KL(N(μ_i, σ²) ‖ Σ_j N(c_j, λ²))`` for every ``μ_i`` in ``means`` (nats; may be negative).

    Gauss-Hermite quadrature of the cross term at increasing orders until two successive orders
    agree to a relative 1e-7 (of the cross term's scale), then the minimum with the Jensen upper bound
    of :func:`mixture_kl_jensen` (which the exact value never exceeds), so an unconverged quadrature
    can only err towards a larger (more conservative) KL than the Jensen bound allows.
    """
    sigma, lam = _check_scales(sigma, lam)
    mu = np.asarray(means, dtype=np.float64).ravel()
    c = np.asarray(centers, dtype=np.float64).ravel()
    if c.size == 0:
        raise ValueError("centers must not be empty")
    neg_entropy = -0.5 * math.log(2.0 * math.pi * math.e * sigma**2)
    previous = None
    for order in _GH_ORDERS:
        cross = _gh_cross(mu, sigma, c, lam, order)
        if previous is not None:
            scale = np.maximum(1.0, np.abs(cross))
            if np.all(np.abs(cross - previous) <= _GH_RTOL * scale):
                break
            # keep the larger KL (smaller cross term) of the two orders while not converged
            cross = np.minimum(cross, previous)
        previous = cross
    return np.minimum(neg_entropy - cross, mixture_kl_jensen(mu, sigma, c, lam))


def codebook_kl(codebook, counts, sigma: float, lam: float) -> float:
    """``Σ_i KL(N(c_{q_i}, σ²) ‖ Σ_j N(c_j, λ²))`` over a layer's kept weights, where ``counts[q]`` is
    the number of weights assigned to centroid ``q`` (the term depends on ``q_i`` only)."""
    c = np.asarray(codebook, dtype=np.float64).ravel()
    n = np.asarray(counts, dtype=np.float64).ravel()
    if c.shape != n.shape:
        raise ValueError(f"codebook ({c.size}) and counts ({n.size}) differ in length")
    used = n > 0
    if not used.any():
        return 0.0
    return float(np.dot(n[used], mixture_kl(c[used], sigma, c, lam)))


def _coarse_codebook_kl(c_used: np.ndarray, n_used: np.ndarray, sigma: float, c: np.ndarray,
                        grid: np.ndarray) -> np.ndarray:
    """:func:`codebook_kl` at every ``λ`` of ``grid`` with the lowest quadrature order (vectorized),
    capped by the Jensen bound: only used to rank the grid."""
    gh = _hermite(_GH_ORDERS[0])
    x = c_used[:, None] + sigma * gh.nodes[None, :]  # (m, order)
    d2 = (x[:, :, None] - c[None, None, :]) ** 2  # (m, order, r)
    j2 = (c_used[:, None] - c[None, :]) ** 2 + sigma**2  # (m, r)
    neg_entropy = -0.5 * math.log(2.0 * math.pi * math.e * sigma**2)
    out = np.empty(grid.size)
    chunk = max(1, _CHUNK // max(d2.size, 1))
    for s in range(0, grid.size, chunk):
        lam = grid[s : s + chunk]
        inv = 1.0 / (2.0 * lam * lam)
        log_mix = _lse(-d2[None] * inv[:, None, None, None], 3) - np.log(lam)[:, None, None] - _LOG_SQRT_2PI
        gh_kl = neg_entropy - log_mix @ gh.weights  # (g, m)
        jensen = np.log(lam / sigma)[:, None] - 0.5 - _lse(-j2[None] * inv[:, None, None], 2)
        out[s : s + chunk] = np.minimum(gh_kl, jensen) @ n_used
    return out


def best_prior_scale(codebook, counts, sigma: float, grid, refine: int = 6) -> tuple[int, float]:
    """The prior scale ``λ`` of ``grid`` (fixed in advance) that minimizes :func:`codebook_kl`:
    ``(index, KL in nats)``. A fast 48-point quadrature ranks every 8th point of the grid, then the
    points around the best of those; the ``2·refine + 1`` values around that minimum are computed to
    convergence and the smallest is returned (the KL
    returned is always the converged value at the returned index)."""
    grid = np.asarray(grid, dtype=np.float64).ravel()
    if grid.size == 0:
        raise ValueError("grid must not be empty")
    c = np.asarray(codebook, dtype=np.float64).ravel()
    n = np.asarray(counts, dtype=np.float64).ravel()
    used = n > 0
    if not used.any():
        return 0, 0.0
    c_used, n_used = c[used], n[used]
    stride = 8
    sparse = np.arange(0, grid.size, stride)
    i = int(sparse[np.argmin(_coarse_codebook_kl(c_used, n_used, float(sigma), c, grid[sparse]))])
    near = np.arange(max(0, i - stride), min(grid.size, i + stride + 1))
    i = int(near[np.argmin(_coarse_codebook_kl(c_used, n_used, float(sigma), c, grid[near]))])
    best = (i, codebook_kl(c, n, sigma, grid[i]))
    for j in range(max(0, i - refine), min(grid.size, i + refine + 1)):
        if j != i:
            value = codebook_kl(c, n, sigma, grid[j])
            if value < best[1]:
                best = (j, value)
    return best


# ---------------------------------------------------------------- Monte-Carlo error of a noisy net


@dataclass(frozen=True)
class NoiseSpec:
    """Independent Gaussian noise on the entries ``positions`` (flat indices) of one weight or bias
    tensor: one ``std`` for all, or an array of one std per position.

    ``basis`` (Linear weights only) makes the noise of each row correlated: row ``j`` gets
    ``U·diag(√variances[j])·ε`` with ``U = basis`` (in × in, orthonormal) and ``variances`` (out × in),
    i.e. covariance ``U diag(variances[j]) Uᵀ`` per neuron (a layer-wise block posterior); then
    ``positions`` must be every entry and ``std`` is ignored."""

    positions: np.ndarray
    std: float | np.ndarray
    basis: np.ndarray | None = None
    variances: np.ndarray | None = None

    def __post_init__(self) -> None:
        std = np.asarray(self.std, dtype=np.float64)
        if not (np.all(np.isfinite(std)) and np.all(std >= 0)):
            raise ValueError(f"std must be finite and >= 0, got {self.std!r}")
        if std.ndim and std.shape != np.shape(self.positions):
            raise ValueError("an array std needs one value per position")
        if (self.basis is None) != (self.variances is None):
            raise ValueError("basis and variances go together")


def noise_from_positions(layers: Sequence, sigmas: Mapping[str, float]) -> dict[str, NoiseSpec]:
    """``NoiseSpec``s from objects with ``name`` and ``positions`` (e.g. ``LayerCode``) and a σ per name."""
    return {layer.name: NoiseSpec(np.asarray(layer.positions, dtype=np.int64), float(sigmas[layer.name]))
            for layer in layers if layer.name in sigmas}


_CONV = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}


class ParallelNormals:
    """Standard normals (float32, CPU) from ``STREAMS`` generators seeded from one, each filling its own
    slice of a draw, in threads.

    One CPU generator fills about 100 M normals a second and cannot be split across threads; a noisy
    LeNet-5 draws 1.5 G per pass over Fashion-MNIST. The slices and their generators are fixed by the
    draw's size alone, so the numbers depend on ``generator``'s state, never on how many threads fill
    them."""

    STREAMS = 4
    SMALL = 1 << 16  # a draw this small comes from the first stream alone
    _pool: tuple[int, ThreadPoolExecutor] | None = None  # (pid, pool): a forked process makes its own

    def __init__(self, generator: torch.Generator) -> None:
        seeds = torch.randint(0, 2**62, (self.STREAMS,), generator=generator, dtype=torch.int64)
        self.streams = [torch.Generator().manual_seed(int(seed)) for seed in seeds]

    @classmethod
    def _threads(cls) -> ThreadPoolExecutor:
        if cls._pool is None or cls._pool[0] != os.getpid():
            cls._pool = (os.getpid(), ThreadPoolExecutor(cls.STREAMS, thread_name_prefix="normals"))
        return cls._pool[1]

    def __call__(self, *shape: int) -> torch.Tensor:
        out = torch.empty(*shape, dtype=torch.float32)
        flat = out.view(-1)
        n = flat.numel()
        if n < self.SMALL:
            flat.normal_(generator=self.streams[0])
            return out
        edges = [n * i // self.STREAMS for i in range(self.STREAMS + 1)]

        def fill(i: int) -> None:
            flat[edges[i] : edges[i + 1]].normal_(generator=self.streams[i])

        if torch.get_num_threads() > 1:
            list(self._threads().map(fill, range(self.STREAMS)))
        else:
            for i in range(self.STREAMS):
                fill(i)
        return out


class OneDrawPerPrediction:
    """The state of one forward pass of a noisy network: how many predictions it makes, and the draws
    its modules made so far (so that a module called again reuses its draw)."""

    def __init__(self) -> None:
        self.batch: int | None = None
        self.draws: dict[str, torch.Tensor] = {}

    def start(self, module: nn.Module, inputs: tuple) -> None:
        x = inputs[0] if inputs else None
        self.batch = int(x.shape[0]) if isinstance(x, torch.Tensor) and x.dim() else None
        self.draws = {}

    def check(self, name: str, batch: int) -> None:
        if self.batch is not None and batch != self.batch:
            raise ValueError(f"noisy module '{name}' saw {batch} inputs in a forward pass of {self.batch} "
                             f"predictions: a stochastic classifier draws its weights once per prediction, "
                             f"which this layer's noise cannot share across inputs")


class _Noise:
    """The forward hook of one module: adds the noise term of a per-example weight perturbation."""

    def __init__(self, module: nn.Module, spec: NoiseSpec, normals: ParallelNormals, attr: str = "weight",
                 name: str = "", state: OneDrawPerPrediction | None = None) -> None:
        weight = getattr(module, attr)
        self.module, self.normals, self.attr = module, normals, attr
        self.name, self.state = name or attr, state or OneDrawPerPrediction()
        self.shape = tuple(weight.shape)
        numel = weight.numel()
        pos = torch.as_tensor(np.asarray(spec.positions, dtype=np.int64))
        if pos.numel() and (int(pos.min()) < 0 or int(pos.max()) >= numel):
            raise ValueError(f"noise positions out of range for a {attr} of shape {self.shape}")
        self.positions = pos.to(weight.device)
        # every entry in order (what the curvature bounds draw): the draw is the kernel, no scatter needed
        self.every_entry = pos.numel() == numel and bool(torch.equal(pos, torch.arange(numel)))
        std = torch.as_tensor(np.broadcast_to(np.asarray(spec.std, dtype=np.float64), pos.shape).copy(),
                              dtype=weight.dtype, device=weight.device)
        self.std_at = std
        self.silent = pos.numel() == 0 or not bool((std > 0).any())
        self.basis = None
        if attr == "bias":
            var = torch.zeros(numel, dtype=weight.dtype, device=weight.device)
            var[self.positions] = std**2
            self.bias_std = var.sqrt()
            return
        if spec.basis is not None:
            if not isinstance(module, nn.Linear) or pos.numel() != numel:
                raise ValueError("block noise is for every entry of a Linear weight")
            self.basis = torch.as_tensor(spec.basis, dtype=weight.dtype, device=weight.device)  # (in, in)
            self.block_var_t = torch.as_tensor(spec.variances, dtype=weight.dtype, device=weight.device).t().contiguous()
            self.silent = False
            return
        if isinstance(module, nn.Linear):
            var = torch.zeros(numel, dtype=weight.dtype, device=weight.device)
            var[self.positions] = std**2
            self.var_t = var.view(self.shape).t().contiguous()  # (in, out)
        elif type(module) in _CONV:
            if module.padding_mode != "zeros":
                raise ValueError(f"noisy convolutions need padding_mode='zeros', got {module.padding_mode!r}")
        else:
            raise ValueError(f"noise on {type(module).__name__} weights is not supported (Linear, Conv1d/2d/3d)")

    def _draw(self, shape: tuple[int, ...], like: torch.Tensor, shareable: bool,
              scale: torch.Tensor | None = None) -> torch.Tensor:
        """This prediction's draw, times ``scale``: fresh on the module's first call in the forward pass,
        the same one on a later call when the noise can be shared (a kernel or a bias), refused when it
        cannot."""
        state = self.state
        if self.name in state.draws:
            if not shareable:
                raise ValueError(f"noisy module '{self.name}' was called twice in one forward pass: a stochastic "
                                 f"classifier draws its weights once per prediction, and this layer's noise "
                                 f"(drawn on its outputs) cannot be shared between calls")
            return state.draws[self.name]
        eps = self.normals(*shape).to(like.device, like.dtype)
        if scale is not None:
            eps.mul_(scale)  # in place: the draw is this module's alone
        state.draws[self.name] = eps
        return eps

    def __call__(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        x = inputs[0]
        if self.silent:
            return output
        self.state.check(self.name, int(x.shape[0]))
        if self.attr == "bias":  # a fresh bias per example, the same at every position of a feature map
            eps = self._draw((output.shape[0], self.shape[0]), output, True, self.bias_std)
            return output + eps.view(output.shape[0], -1, *([1] * (output.dim() - 2)))
        if isinstance(module, nn.Linear) and x.dim() != 2:
            raise ValueError(f"noisy Linear module '{self.name}' is applied to inputs of shape {tuple(x.shape)}: "
                             f"its noise is drawn per output, so it would draw once per position, not once "
                             f"per prediction")
        if self.basis is not None:  # row j: w_j + U·diag(√v_j)·ε, so var(out_j) = Σ_k (xU)_k² v_jk
            var = ((x @ self.basis) ** 2) @ self.block_var_t
            return output + var.sqrt() * self._draw(tuple(output.shape), output, False)
        if isinstance(module, nn.Linear):
            var = (x * x) @ self.var_t
            return output + var.sqrt() * self._draw(tuple(output.shape), output, False)
        batch = x.shape[0]
        eps = self._draw((batch, self.positions.numel()), x, True, self.std_at)
        if self.every_entry:
            kernels = eps
        else:
            kernels = torch.zeros(batch, math.prod(self.shape), dtype=x.dtype, device=x.device)
            kernels[:, self.positions] = eps
        kernels = kernels.view(batch * self.shape[0], *self.shape[1:])
        groups = module.groups
        grouped = x.reshape(1, batch * x.shape[1], *x.shape[2:])
        noise = _CONV[type(module)](grouped, kernels, None, module.stride, module.padding, module.dilation,
                                    groups * batch)
        return output + noise.view(batch, self.shape[0], *noise.shape[2:])


@contextmanager
def noisy_network(model: nn.Module, noise: Mapping[str, NoiseSpec], generator: torch.Generator) -> Iterator[nn.Module]:
    """``model`` with per-example Gaussian weight noise (``noise`` maps ``<module>.weight`` names to
    specs) while the context is open, one draw per prediction; the hooks are removed on exit."""
    handles = []
    state = OneDrawPerPrediction()
    normals = ParallelNormals(generator)
    try:
        handles.append(model.register_forward_pre_hook(state.start))
        for name, spec in noise.items():
            module_name, _, attr = name.rpartition(".")
            if attr not in ("weight", "bias"):
                raise ValueError(f"noise is supported on module weights and biases only, got '{name}'")
            module = model.get_submodule(module_name)
            handles.append(module.register_forward_hook(_Noise(module, spec, normals, attr, name, state)))
        yield model
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def noisy_error_count(model: nn.Module, noise: Mapping[str, NoiseSpec], split: Split, generator: torch.Generator,
                      passes: int = 1, batch_size: int = 1000) -> tuple[int, int]:
    """Misclassifications of the stochastic classifier over ``passes`` passes of ``split``, each
    prediction with its own weight draw: ``(errors, n·passes)``. Deterministic given ``generator``'s
    state and ``batch_size``."""
    if passes < 1:
        raise ValueError(f"passes must be >= 1, got {passes!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
    device = model_device(model)
    errors = 0
    model, prepare = fast_copy(model, split.x[:2])  # an estimate: the faster memory layout is fine
    with eval_mode(model), noisy_network(model, noise, generator):
        for _ in range(passes):
            for i in range(0, len(split), batch_size):
                xb = prepare(split.x[i : i + batch_size].to(device))
                yb = split.y[i : i + batch_size].to(device)
                errors += int((model(xb).argmax(dim=1) != yb).sum())
    return errors, passes * len(split)


class NoisyPosterior(Posterior):
    """The stochastic classifier of ``noisy_network``: the decoded model with a fresh Gaussian weight
    draw for every example (what robust PAC-Bayes rows certify)."""

    def __init__(self, model: nn.Module, noise: Mapping[str, NoiseSpec]) -> None:
        self.model, self.noise = model, dict(noise)
        self._fast: tuple | None = None  # the model in the faster memory layout, made at the first call

    @torch.no_grad()
    def logits(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self._fast is None:
            self._fast = fast_copy(self.model, x[:2])
        model, prepare = self._fast
        with eval_mode(model), noisy_network(model, self.noise, generator):
            return model(prepare(x.to(model_device(model))))


@torch.no_grad()
def posterior_error_count(posterior: Posterior, split: Split, generator: torch.Generator,
                          batch_size: int = 1000) -> tuple[int, int]:
    """Misclassifications of a stochastic classifier on one pass of ``split`` (a fresh draw per
    example, so the count is a sum of independent Bernoulli variables): ``(errors, n)``."""
    errors = 0
    for i in range(0, len(split), batch_size):
        out = posterior.logits(split.x[i : i + batch_size], generator)
        errors += int((out.argmax(dim=1).cpu() != split.y[i : i + batch_size].cpu()).sum())
    return errors, len(split)
