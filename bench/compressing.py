"""Running one ``compress`` in a process of its own.

A compressor is third-party code, and whatever it leaves behind in its process (a module-level
variable holding the trained weights, a file it keeps open, a patched function) must not reach the
model that is certified. So the job worker never compresses: it hands each compression to a
compressing process forked from its zygote (``bench.children.Zygote``), which builds the compressor's
context, runs ``compress`` under the cell's time limit, and sends back the message, the claimed
structure, the digest of the compressor's own model and that model's outputs on ``S_bound``. The worker
decodes the message in a fresh process and evaluates the decoded model itself, where ``compress`` never
ran; the two models' outputs must agree (``bench.rows.check_same_outputs``). The compressing process
serves the worker's jobs one after another (what one compressor leaves there can only reach another
compressor, which sees the training data anyway, never an evaluation), so it pays its start-up costs
(loading data, torch's and OpenMP's first use) once per worker, not once per job.
"""

from __future__ import annotations

import pickle
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch

from bench.api.contracts import Compressed, LayerCode, PriorSpec, TaskSpec


@dataclass
class CompressRequest:
    """What the compressing process needs, as plain data."""

    spec: TaskSpec
    seed: int
    device: str
    delta: float
    compressor: str | None  # None: only make sure the task's base model is trained (and cached)
    params: dict[str, Any]
    prior: PriorSpec | None
    limit: float | None
    data_dir: str | None = None
    download: bool = False


@dataclass
class CompressReply:
    """The artifact without the compressor's model: the model's digest, its state (for saying where a
    decoded model differs) and its outputs on ``S_bound`` stand in for it."""

    ok: bool
    error: str | None = None
    traceback: str | None = None
    message: bytes = b""
    layers: list[LayerCode] | None = None
    stats: dict[str, float] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    sections: list[tuple[str, int]] | None = None
    digest: str = ""
    state: dict[str, torch.Tensor] | None = None
    outputs: torch.Tensor | None = None
    seconds: float = float("nan")

    def compressed(self) -> Compressed:
        return Compressed(message=self.message, model=None, layers=self.layers, stats=self.stats, extras=self.extras,
                          sections=self.sections)


def compress(request: CompressRequest, registry) -> CompressReply:
    """Build the context, compress under the time limit, check the result, describe the model."""
    from pathlib import Path

    from bench.kit.evaluation import predict
    from bench.kit.models import state_digest
    from bench.rows import check_compressed
    from bench.context import build_context
    from bench.tasks import instantiate_task, prior_from_spec
    from bench.timeouts import time_limit

    device = torch.device(request.device)
    task = instantiate_task(request.spec, registry, Path(request.data_dir) if request.data_dir else None,
                            request.download)
    base_models = _base_models(device)
    if request.compressor is None:  # the base model: trained here, where training is already warm
        base_models.get(task, request.seed)
        return CompressReply(ok=True)
    ctx = build_context(task, request.seed, device, base_models, request.delta,
                        prior=prior_from_spec(request.prior, registry))
    compressor = registry.get("compressors", request.compressor)(**request.params)
    start = time.perf_counter()
    with time_limit(request.limit, f"compressor {request.compressor}"):
        compressed = check_compressed(compressor.compress(ctx), request.compressor)
    seconds = time.perf_counter() - start
    model = compressed.model
    model.eval()
    outputs = predict(model, task.data.bound_split().x).detach().float().cpu()
    return CompressReply(
        ok=True, message=compressed.message, layers=compressed.layers, stats=compressed.stats,
        extras=compressed.extras, sections=compressed.sections, digest=state_digest(model),
        state={k: v.detach().cpu() for k, v in model.state_dict().items()}, outputs=outputs, seconds=seconds)


_BASE_MODELS: dict[str, Any] = {}


def _base_models(device: torch.device):
    """One ``BaseModels`` per device for the life of the process (it keeps the models it loaded)."""
    from bench.cache import ModelCache, default_cache_dir
    from bench.progress import progress
    from bench.tasks import BaseModels

    if device.type not in _BASE_MODELS:
        _BASE_MODELS[device.type] = BaseModels(ModelCache(default_cache_dir()), device, progress)
    return _BASE_MODELS[device.type]


def serve(conn, payload: Any) -> None:  # noqa: ARG001
    """The compressing process: a reply to each request, until the worker closes the connection. Each
    reply is pickled here, by value (a ``Connection`` would share its tensors through this process's
    memory, which may end before the worker reads them)."""
    from bench.preload import preloaded_registry

    registry = preloaded_registry()
    while True:
        request: CompressRequest = conn.recv()
        try:
            reply = compress(request, registry)
        except Exception as exc:  # the compressor's failure is the cell's, not the process's
            reply = CompressReply(ok=False, error=f"{type(exc).__name__}: {exc}",
                                  traceback=traceback.format_exc(limit=8))
        conn.send(pickle.dumps(reply))
