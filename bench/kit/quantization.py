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

from bench.kit import coding
from bench.kit.types import LayerCode, Split
from bench.kit.training import Hooks, train_loop

Precision = Literal["float16", "float32"]
#: The codebook sizes (per coded tensor) a compressor that searches its own strength codes every candidate
#: at by default (``prune``, ``dns``, ``vibnet``); fixed in advance, the winner chosen by its certificate.
LEVELS_LADDER: tuple[int, ...] = (4, 16)


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
            # index_select: its backward (index_add_) sums in a fixed order; cb[assign]'s does not on CPU
            out[c.name] = flat.index_put((kept,), cb.index_select(0, assign)).view(c.shape)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self.model, self.coded_weights(), (x,), strict=False)

    def finetune(self, train: Split, epochs: int, lr: float, batch_size: int, generator: torch.Generator,
                 task_type: str, progress: Callable | None = None) -> None:
        if epochs <= 0:
            return
        opt = torch.optim.Adam([p for p in self.parameters() if p.requires_grad], lr=lr)
        device = self.codebooks[0].device if len(self.codebooks) else torch.device("cpu")
        self.train()
        train_loop(opt, self, train, epochs=epochs, batch_size=batch_size, generator=generator, device=device,
                   task_type=task_type, hooks=Hooks(after_epoch=lambda stats, bar: None), progress=progress,
                   desc="fine-tune centroids")
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
