"""Running one ``compress`` in a process of its own.

A compressor is third-party code, and whatever it leaves behind in its process (a module-level
variable holding the trained weights, a file it keeps open, a patched function) must not reach the
model that is certified. So the job worker never compresses: it asks its zygote for a fresh process
(``bench.children.Zygote``), which builds the compressor's context, runs ``compress`` under the cell's
time limit, and sends back the message, the claimed structure, the digest of the compressor's own
model and that model's outputs on ``S_bound``, then ends. The worker decodes the message in another
fresh process and evaluates the decoded model itself, where ``compress`` never ran; the two models'
outputs must agree (``bench.rows.check_same_outputs``).
"""

from __future__ import annotations

import pickle
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import torch

from bench.contracts import Compressed, LayerCode, PriorSpec, TaskSpec


@dataclass
class CompressRequest:
    """What the compressing process needs, as plain data."""

    spec: TaskSpec
    seed: int
    device: str
    delta: float
    compressor: str
    params: dict[str, Any]
    prior: PriorSpec
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

    from bench.cache import ModelCache, default_cache_dir
    from bench.kit.evaluation import predict
    from bench.kit.models import state_digest
    from bench.progress import progress
    from bench.rows import check_compressed
    from bench.runner import build_context
    from bench.tasks import BaseModels, instantiate_task, prior_from_spec
    from bench.timeouts import time_limit

    device = torch.device(request.device)
    task = instantiate_task(request.spec, registry, Path(request.data_dir) if request.data_dir else None,
                            request.download)
    base_models = BaseModels(ModelCache(default_cache_dir()), device, progress)
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


def serve(conn, payload: Any) -> None:  # noqa: ARG001
    """The compressing process: one request, one reply, then it ends. The reply is pickled here, by
    value: a ``Connection`` would share its tensors through this process's memory, which ends now."""
    from bench.sandbox import _PREPARED, prepare

    prepare()
    request: CompressRequest = conn.recv()
    try:
        reply = compress(request, _PREPARED["registry"])
    except Exception as exc:  # the compressor's failure is the cell's, not the process's
        reply = CompressReply(ok=False, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8))
    conn.send(pickle.dumps(reply))
