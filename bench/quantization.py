"""Codebook quantization of a model's weight tensors, shared by ``quantize``, ``prune``, ``dns`` and the
K-means compressors: per-tensor k-means, centroid fine-tuning, and the message layout.

Which tensors are coded with a codebook is fixed by the architecture (every floating parameter with
two or more dimensions: linear and convolution weights); everything else the evaluated model needs
(biases, BatchNorm affine parameters and running statistics) goes into one ``rest`` section at a stated
precision. The message is a container of sections, in an order the decoder knows::

    for each coded tensor:  <name>.S  kept positions (only when sparse), gap-coded
                            <name>.C  codebook at ``codebook_precision``
                            <name>.Q  assignments, entropy-coded with their counts
    rest                    the other floating tensors at ``rest_precision``
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from bench import coding
from bench.contracts import LayerCode, Split
from bench.evaluation import loss_fn, minibatches

Precision = Literal["float16", "float32"]


def coded_tensor_names(model: nn.Module) -> list[str]:
    """The tensors coded with a codebook: floating parameters with >= 2 dimensions, in model order."""
    return [n for n, p in model.named_parameters() if p.is_floating_point() and p.dim() >= 2]


def rest_tensor_names(model: nn.Module) -> list[str]:
    coded = set(coded_tensor_names(model))
    return [k for k, v in model.state_dict().items() if v.is_floating_point() and k not in coded]


@dataclass
class TensorCode:
    """One coded tensor before entropy coding: kept positions (``None``: all), codebook, assignments."""

    name: str
    shape: tuple[int, ...]
    positions: np.ndarray | None
    codebook: np.ndarray  # float32
    assignments: np.ndarray  # int64, one per kept position (per block of ``block`` kept positions)
    block: int = 1  # vector quantization: the codebook holds codewords of ``block`` values, flattened

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def n_codewords(self) -> int:
        return len(self.codebook) // self.block

    def kept(self) -> np.ndarray:
        return np.arange(self.size) if self.positions is None else self.positions

    def values(self) -> np.ndarray:
        """The dense float32 tensor this code stands for (pruned positions are exactly zero)."""
        out = np.zeros(self.size, dtype=np.float32)
        if len(self.assignments):
            kept = self.kept()
            if self.block == 1:
                out[kept] = self.codebook[self.assignments]
            else:  # the last block is padded: drop its tail
                out[kept] = self.codebook.reshape(-1, self.block)[self.assignments].ravel()[: len(kept)]
        return out.reshape(self.shape)

    def scalar_view(self) -> tuple[np.ndarray, np.ndarray]:
        """(codebook, one assignment per kept position): for ``block > 1`` the flattened codewords and
        index ``q·block + j`` for coordinate ``j`` of a block coded ``q`` (the (S, C, Q) of seed 002)."""
        if self.block == 1:
            return self.codebook, self.assignments
        n_kept = len(self.kept())
        flat = self.assignments[:, None] * self.block + np.arange(self.block)
        return self.codebook, flat.ravel()[:n_kept].astype(np.int64)


def kmeans_1d(values: np.ndarray, levels: int, seed: int, init: str = "linear",
              max_fit: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """Codebook of ``levels`` centroids for 1-D ``values`` and each value's nearest centroid.

    ``init='linear'`` spaces the initial centroids evenly between min and max (Han et al.'s choice,
    good for the rare large weights); ``'kmeans++'`` uses scikit-learn's seeding. Fitting uses at most
    ``max_fit`` values (a seeded subsample); assignment uses all.
    """
    from sklearn.cluster import KMeans

    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    distinct = np.unique(values)
    if len(distinct) <= levels:
        codebook = distinct.astype(np.float32)
        return codebook, nearest(values, codebook)
    rng = np.random.default_rng(seed)
    fit = values if values.size <= max_fit else values[rng.choice(values.size, max_fit, replace=False)]
    if init == "linear":
        start = np.linspace(fit.min(), fit.max(), levels)[:, None]
        km = KMeans(levels, init=start, n_init=1, max_iter=100, random_state=seed)
    else:
        km = KMeans(levels, init="k-means++", n_init=3, max_iter=100, random_state=seed)
    km.fit(fit[:, None])
    codebook = np.sort(km.cluster_centers_.ravel()).astype(np.float32)
    return codebook, nearest(values, codebook)


def nearest(values: np.ndarray, codebook: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid of a sorted codebook, for every value (vectorized)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    cb = np.asarray(codebook, dtype=np.float64)
    if cb.size == 1:
        return np.zeros(values.size, np.int64)
    mids = (cb[1:] + cb[:-1]) / 2
    return np.searchsorted(mids, values).astype(np.int64)


class CodebookModel(nn.Module):
    """A model whose coded tensors are ``codebook[assignments]`` with trainable codebooks.

    Fine-tuning the centroids with the assignments fixed is Deep Compression's step: a centroid's
    gradient is the sum of the gradients of the weights that share it. The other floating parameters
    (biases, BatchNorm) train as usual.
    """

    def __init__(self, model: nn.Module, codes: list[TensorCode]) -> None:
        super().__init__()
        self.model = model
        self.codes = codes
        device = next(model.parameters()).device
        self.codebooks = nn.ParameterList(
            [nn.Parameter(torch.as_tensor(c.codebook, dtype=torch.float32, device=device)) for c in codes]
        )
        self._kept = [torch.as_tensor(c.kept(), device=device) for c in codes]
        self._assign = [torch.as_tensor(c.assignments, device=device) for c in codes]
        for c in codes:
            model.get_parameter(c.name).requires_grad_(False)

    def coded_weights(self) -> dict[str, torch.Tensor]:
        out = {}
        for c, cb, kept, assign in zip(self.codes, self.codebooks, self._kept, self._assign):
            flat = torch.zeros(c.size, device=cb.device, dtype=cb.dtype)
            out[c.name] = flat.index_put((kept,), cb[assign]).view(c.shape)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, self.coded_weights(), (x,), strict=False)

    def finetune(self, train: Split, epochs: int, lr: float, batch_size: int, generator: torch.Generator,
                 task_type: str, progress: Callable | None = None) -> None:
        if epochs <= 0:
            return
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=lr)
        criterion = loss_fn(task_type)
        device = self.codebooks[0].device if len(self.codebooks) else torch.device("cpu")
        bar = progress(total=epochs, desc="fine-tune centroids") if progress else None
        self.train()
        for _ in range(epochs):
            for xb, yb in minibatches(train, batch_size, generator, device):
                opt.zero_grad(set_to_none=True)
                criterion(self(xb), yb).backward()
                opt.step()
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        self.eval()
        for c, cb in zip(self.codes, self.codebooks):
            c.codebook = cb.detach().cpu().numpy().astype(np.float32)


def _rest_values(model: nn.Module) -> np.ndarray:
    state = model.state_dict()
    parts = [state[k].detach().cpu().float().numpy().ravel() for k in rest_tensor_names(model)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def materialize(model: nn.Module, codes: list[TensorCode], rest: np.ndarray) -> nn.Module:
    """Write coded tensors and the ``rest`` values (already at their decoded precision) into ``model``."""
    state = model.state_dict()
    new = {}
    for c in codes:
        new[c.name] = torch.from_numpy(c.values()).to(state[c.name].dtype)
    offset = 0
    for key in rest_tensor_names(model):
        n = state[key].numel()
        if offset + n > rest.size:
            raise coding.CorruptMessage("rest section is shorter than the architecture needs")
        new[key] = torch.from_numpy(rest[offset : offset + n].copy()).view_as(state[key]).to(state[key].dtype)
        offset += n
    if offset != rest.size:
        raise coding.CorruptMessage("rest section is longer than the architecture needs")
    model.load_state_dict(new, strict=False)
    return model.eval()


def section_names(model: nn.Module, sparse: bool, *, shared_codebook: bool = False) -> list[str]:
    """With ``shared_codebook`` one ``codebook`` section comes first and the tensors have no ``.C``."""
    names = ["codebook"] if shared_codebook else []
    for n in coded_tensor_names(model):
        names += ([f"{n}.S"] if sparse else []) + ([] if shared_codebook else [f"{n}.C"]) + [f"{n}.Q"]
    return names + ["rest"]


@dataclass
class EncodedModel:
    message: bytes
    model: nn.Module  # the evaluated model: exactly what ``decode_model`` returns
    layers: list[LayerCode]
    section_bits: dict[str, int]

    @property
    def sections(self) -> list[tuple[str, int]]:
        """(name, bits) of every section, in message order (``Compressed.sections``)."""
        return list(self.section_bits.items())


def encode_model(model: nn.Module, codes: list[TensorCode], sparse: bool,
                 codebook_precision: Precision, rest_precision: Precision, *,
                 shared_codebook: bool = False, block: int = 1) -> EncodedModel:
    """Round codebooks and the rest to their precisions, build the evaluated model, write the message.

    ``model`` supplies the rest tensors (biases, BatchNorm) and is overwritten with the coded values.
    ``shared_codebook``: every code has the same codebook, written once (network-wide quantization).
    ``block``: vector quantization, every code's codewords have ``block`` values (``TensorCode.block``).
    """
    by_name = {c.name: c for c in codes}
    if list(by_name) != coded_tensor_names(model):
        raise ValueError("codes must cover exactly the coded tensors of the model, in order")
    if any(c.block != block or len(c.codebook) % block for c in codes):
        raise ValueError(f"every code must have block {block} and a whole number of codewords")
    if shared_codebook and codes and any(not np.array_equal(c.codebook, codes[0].codebook) for c in codes):
        raise ValueError("shared_codebook needs the same codebook in every code")
    sections: dict[str, bytes] = {}
    if shared_codebook:
        shared = coding.round_to_precision(codes[0].codebook if codes else np.zeros(0), codebook_precision)
        sections["codebook"] = coding.encode_floats(shared, codebook_precision)
    layers = []
    for c in codes:
        if not sparse and c.positions is not None:
            raise ValueError(f"{c.name}: positions given for a dense code")
        c.codebook = coding.round_to_precision(c.codebook, codebook_precision)
        if sparse:
            sections[f"{c.name}.S"] = coding.encode_positions(c.kept(), c.size)
        if not shared_codebook:
            sections[f"{c.name}.C"] = coding.encode_floats(c.codebook, codebook_precision)
        sections[f"{c.name}.Q"] = coding.encode_symbols(c.assignments, max(c.n_codewords, 1))
    rest = coding.round_to_precision(_rest_values(model), rest_precision)
    sections["rest"] = coding.encode_floats(rest, rest_precision)
    message = coding.pack_sections(sections)
    bits = {k: 8 * len(v) for k, v in sections.items()}
    for i, c in enumerate(codes):
        codebook, assignments = c.scalar_view()
        codebook_bits = bits.get("codebook", 0) if i == 0 else 0  # a shared codebook counts once
        layers.append(LayerCode(
            name=c.name, size=c.size, positions=c.kept(), codebook=codebook.copy(),
            assignments=assignments.copy(), positions_bits=float(bits.get(f"{c.name}.S", 0)),
            codebook_bits=float(bits.get(f"{c.name}.C", codebook_bits)),
        ))
    evaluated = materialize(model, codes, rest)
    return EncodedModel(message, evaluated, layers, bits)


def decode_model(message: bytes, model: nn.Module, sparse: bool, codebook_precision: Precision,
                 rest_precision: Precision, *, shared_codebook: bool = False, block: int = 1) -> nn.Module:
    """The inverse of ``encode_model``: ``model`` is the architecture (from the prior), overwritten."""
    sections = coding.unpack_sections(message, section_names(model, sparse, shared_codebook=shared_codebook))
    shared = coding.decode_floats(sections["codebook"], codebook_precision) if shared_codebook else None
    params = dict(model.named_parameters())
    codes = []
    for name in coded_tensor_names(model):
        shape = tuple(params[name].shape)
        size = int(np.prod(shape))
        positions = coding.decode_positions(sections[f"{name}.S"], size) if sparse else None
        codebook = shared if shared_codebook else coding.decode_floats(sections[f"{name}.C"], codebook_precision)
        assignments = coding.decode_symbols(sections[f"{name}.Q"])
        n_kept = size if positions is None else len(positions)
        if len(codebook) % block or len(assignments) != -(-n_kept // block) or (
                len(assignments) and assignments.max() >= len(codebook) // block):
            raise coding.CorruptMessage(f"{name}: assignments do not match the positions or the codebook")
        codes.append(TensorCode(name, shape, positions, codebook, assignments, block))
    rest = coding.decode_floats(sections["rest"], rest_precision)
    return materialize(model, codes, rest)


def quantize_tensors(model: nn.Module, levels: int, seed: int, init: str,
                     masks: dict[str, np.ndarray] | None = None) -> list[TensorCode]:
    """k-means codes for every coded tensor; with ``masks``, only the kept weights are clustered."""
    codes = []
    for i, name in enumerate(coded_tensor_names(model)):
        w = model.get_parameter(name).detach().cpu().numpy().astype(np.float64)
        flat = w.ravel()
        positions = None
        if masks is not None:
            positions = np.flatnonzero(masks[name].ravel())
            flat = flat[positions]
        codebook, assignments = kmeans_1d(flat, levels, seed + i, init)
        codes.append(TensorCode(name, tuple(w.shape), positions, codebook, assignments))
    return codes


# ------------------------------------------------ Hessian-weighted K-means (seed 001, Choi et al.)
def _kmeanspp(points: np.ndarray, mass: np.ndarray, levels: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding with each point's probability also proportional to its weight ``mass``."""
    p = mass / mass.sum() if mass.sum() > 0 else np.full(len(points), 1 / len(points))
    centres = [points[rng.choice(len(points), p=p)]]
    d2 = ((points - centres[0]) ** 2).sum(1)
    for _ in range(levels - 1):
        score = mass * d2
        if score.sum() <= 0:
            break
        centres.append(points[rng.choice(len(points), p=score / score.sum())])
        d2 = np.minimum(d2, ((points - centres[-1]) ** 2).sum(1))
    return np.array(centres)


def _initial_centres(points: np.ndarray, weights: np.ndarray, levels: int, init: str,
                     rng: np.random.Generator) -> np.ndarray:
    if init == "auto":
        init = "linear" if points.shape[1] == 1 else "kmeans++"
    if init == "linear":  # evenly between the (coordinate-wise) extremes, Han et al.'s choice for m = 1
        return np.linspace(points.min(0), points.max(0), levels)
    if init == "kmeans++":
        return _kmeanspp(points, weights.sum(1), levels, rng)
    if init == "random":  # Algorithm 1: K distinct weight vectors at random
        distinct = np.unique(points, axis=0)
        return distinct[rng.choice(len(distinct), levels, replace=False)]
    raise ValueError(f"init must be 'auto', 'linear', 'kmeans++' or 'random', got {init!r}")


def _nearest_centres(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the nearest centre in the unweighted Euclidean distance (Algorithm 1's assignment)."""
    if points.shape[1] == 1:
        order = np.argsort(centres[:, 0], kind="stable")
        return order[nearest(points[:, 0], centres[order, 0])]
    d2 = (centres**2).sum(1)[None, :] - 2.0 * points @ centres.T  # + |w|², the same for every centre
    return d2.argmin(1)


def _farthest_pair(centres: np.ndarray) -> tuple[int, int]:
    d2 = ((centres[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    k1, k2 = np.unravel_index(np.argmax(d2), d2.shape)
    return int(k1), int(k2)


class _ClusterSums:
    """Assignment and per-cluster sums of the weights and weighted points.

    For m = 1 the points are sorted once and a cluster is a run of them: an assignment is the K run
    boundaries (the midpoints between sorted centres, searched in the sorted points) and the sums come
    from prefix sums, so an iteration costs O(K log N) instead of O(N). Ties go to the lower centre,
    as in :func:`nearest`.
    """

    def __init__(self, points: np.ndarray, weights: np.ndarray) -> None:
        self.points, self.weights = points, weights
        self.scalar = points.shape[1] == 1
        if self.scalar:
            self.order = np.argsort(points[:, 0], kind="stable")
            self.sorted = points[self.order, 0]
            w = weights[self.order, 0]
            self.cum_w = np.concatenate([[0.0], np.cumsum(w)])
            self.cum_wx = np.concatenate([[0.0], np.cumsum(w * self.sorted)])

    def assign(self, centres: np.ndarray):
        if not self.scalar:
            return _nearest_centres(self.points, centres)
        rank = np.argsort(centres[:, 0], kind="stable")
        c = centres[rank, 0]
        ends = np.searchsorted(self.sorted, (c[1:] + c[:-1]) / 2, side="right")
        return rank, np.concatenate([[0], ends, [len(self.sorted)]])

    def sums(self, assignment, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not self.scalar:
            m = self.points.shape[1]
            mass = np.stack([np.bincount(assignment, self.weights[:, d], minlength=k) for d in range(m)], 1)
            moment = np.stack([np.bincount(assignment, self.weights[:, d] * self.points[:, d], minlength=k)
                               for d in range(m)], 1)
            return mass, moment
        rank, bounds = assignment
        mass, moment = np.zeros((k, 1)), np.zeros((k, 1))
        mass[rank, 0] = np.diff(self.cum_w[bounds])
        moment[rank, 0] = np.diff(self.cum_wx[bounds])
        return mass, moment

    def same(self, a, b) -> bool:
        if not self.scalar:
            return np.array_equal(a, b)
        return np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])

    def labels(self, assignment) -> np.ndarray:
        if not self.scalar:
            return assignment
        rank, bounds = assignment
        out = np.empty(len(self.sorted), np.int64)
        out[self.order] = np.repeat(rank, np.diff(bounds))
        return out


def hw_objective(points: np.ndarray, weights: np.ndarray, codebook: np.ndarray, assignments: np.ndarray,
                 beta: float = 0.0) -> float:
    """Seed 001 eqs. (34)/(35): Σ_j (w_j - c_{q_j})ᵀ H_j (w_j - c_{q_j}) + β max_{k1,k2} ||c_k1 - c_k2||²."""
    points, weights = np.atleast_2d(points.T).T, np.atleast_2d(weights.T).T
    codebook = codebook.reshape(-1, points.shape[1])
    value = float((weights * (points - codebook[assignments]) ** 2).sum())
    if beta and len(codebook) > 1:
        k1, k2 = _farthest_pair(codebook)
        value += beta * float(((codebook[k1] - codebook[k2]) ** 2).sum())
    return value


def weighted_kmeans(points: np.ndarray, weights: np.ndarray, levels: int, seed: int, beta: float = 0.0,
                    init: str = "auto", iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Hessian-weighted K-means (Choi et al. 2017) and its diameter-regularized variant (seed 001 Sec. 6).

    ``points`` is (N,) or (N, m) (m = block length, vector quantization), ``weights`` the same shape:
    the diagonal Hessian ``H^(j)`` of each coordinate (>= 0). Minimizes, by alternation (seed 001
    Algorithm 1),

        Σ_k Σ_{j ∈ C_k} (w_j - c_k)ᵀ H^(j) (w_j - c_k)  +  β max_{k1,k2} ||c_k1 - c_k2||²    (eqs. 34/35)

    * Assignment: each point to the nearest centre in the *unweighted* distance ``||w_j - c_k||²``, as
      Algorithm 1 (eq. 36) says. For m = 1 this is also the best assignment for the weighted objective
      (``h_j`` scales all K distances alike); for m > 1 eq. (35)'s objective would weigh coordinates by
      ``H^(j)``: where the paper's Algorithm 1 and its eq. 35 differ, this follows Algorithm 1.
    * Update: every centre is the curvature-weighted mean of its cluster (eq. 38). With β > 0 the
      farthest pair ``(k1, k2)`` of the previous centres is pulled together with weight β (eq. 37).
      Eq. (37) has each new centre of the pair on the other's right-hand side; it is solved exactly, as
      the 2×2 linear system per coordinate it is (its solution is the joint minimizer over ``(c_k1,
      c_k2)`` with the assignments and other centres fixed).
    * A cluster with no weight keeps its centre; it stops when assignments and centres repeat, or after
      ``iterations``. Unused centres are dropped at the end; for m = 1 the codebook is sorted.

    ``init``: ``linear`` (evenly between the extremes), ``kmeans++`` (weighted D² seeding), ``random``
    (K distinct points, Algorithm 1), ``auto`` (linear for m = 1, kmeans++ otherwise); randomness from
    ``seed``. Returns ``(codebook (K', m) float64 — (K',) when points are 1-D, assignments int64)``.
    """
    scalar = np.ndim(points) == 1
    points = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    weights = np.asarray(weights, dtype=np.float64).reshape(points.shape)
    if levels < 1 or beta < 0 or iterations < 0:
        raise ValueError("levels must be >= 1, beta >= 0 and iterations >= 0")
    if np.any(weights < 0) or not np.all(np.isfinite(weights)) or not np.all(np.isfinite(points)):
        raise ValueError("points must be finite and weights finite and >= 0")
    m = points.shape[1]
    if len(points) == 0:
        return (np.zeros(0) if scalar else np.zeros((0, m))), np.zeros(0, np.int64)
    distinct, inverse = np.unique(points, axis=0, return_inverse=True)
    if len(distinct) <= levels:
        codebook, assignments = distinct, inverse.reshape(-1).astype(np.int64)
    else:
        rng = np.random.default_rng(seed)
        centres = _initial_centres(points, weights, levels, init, rng)
        sums = _ClusterSums(points, weights)
        assignments = None
        for _ in range(iterations):
            new = sums.assign(centres)
            mass, moment = sums.sums(new, len(centres))
            updated = np.where(mass > 0, moment / np.where(mass > 0, mass, 1.0), centres)
            if beta > 0 and len(centres) > 1:
                k1, k2 = _farthest_pair(centres)
                a1, a2 = mass[k1] + beta, mass[k2] + beta
                det = a1 * a2 - beta**2
                ok = det > 0
                safe = np.where(ok, det, 1.0)
                c1 = (a2 * moment[k1] + beta * moment[k2]) / safe
                c2 = (a1 * moment[k2] + beta * moment[k1]) / safe
                updated[k1] = np.where(ok, c1, updated[k1])
                updated[k2] = np.where(ok, c2, updated[k2])
            converged = assignments is not None and sums.same(new, assignments) and np.array_equal(updated, centres)
            assignments, centres = new, updated
            if converged:
                break
        assignments = sums.labels(assignments) if assignments is not None else _nearest_centres(points, centres)
        used = np.unique(assignments)
        codebook, assignments = centres[used], np.searchsorted(used, assignments).astype(np.int64)
    if m == 1:
        order = np.argsort(codebook[:, 0], kind="stable")
        codebook, assignments = codebook[order], np.argsort(order)[assignments]
    return (codebook[:, 0] if scalar else codebook), assignments


def to_blocks(values: np.ndarray, block: int) -> np.ndarray:
    """Consecutive values as rows of ``block``; the last row is padded with zeros."""
    values = np.asarray(values).ravel()
    padded = np.zeros(-(-len(values) // block) * block, dtype=values.dtype)
    padded[: len(values)] = values
    return padded.reshape(-1, block)


def weighted_quantize_tensors(model: nn.Module, curvature: dict[str, np.ndarray], levels: int, seed: int, *,
                              scope: Literal["layer", "network"] = "layer", block: int = 1, beta: float = 0.0,
                              init: str = "auto", iterations: int = 100,
                              masks: dict[str, np.ndarray] | None = None,
                              beta_scale: Literal["absolute", "mass"] = "absolute") -> list[TensorCode]:
    """(Diameter-regularized) Hessian-weighted K-means codes for every coded tensor (seed 001 Sec. 6).

    ``curvature`` holds the diagonal Hessian (e.g. ``bench.curvature.diagonal_curvature``) of every coded
    tensor. ``scope='layer'``: one codebook per tensor; ``'network'``: one codebook for all (encode with
    ``shared_codebook=True``). ``block = m > 1``: vector quantization of ``m`` consecutive kept weights
    (the last block of a tensor is padded with a zero of zero curvature). With ``masks`` only the kept
    weights are clustered (positions go in the message: encode with ``sparse=True``). A tiny damping
    (1e-8 × the mean curvature) keeps weights of zero curvature from leaving a cluster weightless.
    ``beta_scale='mass'`` multiplies β by the clustered group's total curvature ``Σ_j h_j`` (a tensor,
    or the network), which makes β scale-free: the penalty is then ``β·diameter²`` against the
    curvature-weighted *mean* squared error; ``'absolute'`` uses β as in seed 001 eq. (34).
    """
    if scope not in ("layer", "network"):
        raise ValueError(f"scope must be 'layer' or 'network', got {scope!r}")
    if beta_scale not in ("absolute", "mass"):
        raise ValueError(f"beta_scale must be 'absolute' or 'mass', got {beta_scale!r}")
    names = coded_tensor_names(model)
    parts = []  # (name, shape, positions, blocks of values, blocks of weights)
    for name in names:
        w = model.get_parameter(name).detach().cpu().numpy().astype(np.float64).ravel()
        h = np.asarray(curvature[name], dtype=np.float64).ravel()
        if h.shape != w.shape:
            raise ValueError(f"curvature of '{name}' has {h.size} values, the tensor {w.size}")
        positions = None if masks is None else np.flatnonzero(np.asarray(masks[name]).ravel())
        if positions is not None:
            w, h = w[positions], h[positions]
        parts.append([name, tuple(model.get_parameter(name).shape), positions, w, h])
    all_h = np.concatenate([p[4] for p in parts]) if parts else np.zeros(0)
    for part in parts:
        group_h = all_h if scope == "network" else part[4]
        damping = 1e-8 * (float(group_h.mean()) if group_h.size and group_h.mean() > 0 else 1.0)
        part[3], part[4] = to_blocks(part[3], block), to_blocks(part[4] + damping, block)
    def scaled(weights: np.ndarray) -> float:
        return beta * float(weights.sum()) if beta_scale == "mass" else beta

    if scope == "network":
        points, weights = np.concatenate([p[3] for p in parts]), np.concatenate([p[4] for p in parts])
        codebook, assignments = weighted_kmeans(points, weights, levels, seed, scaled(weights), init, iterations)
        bounds = np.cumsum([0] + [len(p[3]) for p in parts])
        results = [(codebook, assignments[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    else:
        results = [weighted_kmeans(p[3], p[4], levels, seed + i, scaled(p[4]), init, iterations)
                   for i, p in enumerate(parts)]
    return [TensorCode(name, shape, positions, np.asarray(cb, np.float32).ravel(), q.astype(np.int64), block)
            for (name, shape, positions, _, _), (cb, q) in zip(parts, results)]
