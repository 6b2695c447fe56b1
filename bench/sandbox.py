"""Decoding from the message and the prior alone, in a process that has nothing else.

A certificate's size is the length of a message that decodes, given only what was fixed before seeing
data, to the evaluated model. ``Compressor.decode`` is third-party code, so the harness does not take
that on trust: it decodes every message in a fresh process (``Decoder``) that

* has decoded nothing before and never ran ``compress``, loaded a dataset or a trained model: it is
  forked from a zygote that only loaded the plugins (``bench.children.Zygote``), and gets the message,
  a ``PriorSpec`` and the compressor's decoder-side parameters only (``Compressor.for_decoding``);
* has an empty model cache (``BENCH_CACHE_DIR`` points nowhere) and registered datasets that refuse to
  load;
* refuses, once decoding starts, to open any file that is not code under an import root (``.py``,
  ``.so``, package metadata; never a weights or array file such as ``.pt``, ``.pth``, ``.npz``, whatever
  its folder), with every path resolved first (``/proc/self/root/...`` is the file it points to), to
  write or create files, to start processes and to open network connections (a Python audit hook).

It sends back the decoded model and a digest of its floating-point state; the harness compares that
digest with the compressor's own model, compares the two models' predictions, and evaluates the model
that came back in a process where ``compress`` never ran.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from dataclasses import dataclass
from typing import Any

from typing import TYPE_CHECKING

from bench.children import Child, ChildDied, Zygote
from bench.kit.models import state_digest
from bench.api.errors import PRIOR_ONLY

if TYPE_CHECKING:
    from bench.api.contracts import PriorSpec

NO_CACHE = "/nonexistent/compression-bench-decoder-has-no-cache"
DECODER_ENV = {"BENCH_CACHE_DIR": NO_CACHE, "BENCH_DATA_DIR": NO_CACHE}
CODE_SUFFIXES = (".py", ".pyc", ".so", ".pyd", ".pyi")
#: Weights and arrays: never code, wherever they lie.
DATA_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors", ".npz", ".npy", ".parquet", ".pkl", ".pickle", ".bin",
                 ".h5", ".hdf5", ".joblib", ".idx", ".gz", ".ubyte")
#: Kernel and device files a numerical library may read (CPU and memory information, entropy).
SYSTEM_FILES = ("/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/self/", "/dev/null", "/dev/zero",
                "/dev/urandom", "/dev/random")
SYSTEM_PREFIXES = ("/sys/devices/system/", "/sys/fs/cgroup/")
PREPARE = "bench.preload:prepare"


class DecodeError(RuntimeError):
    """Decoding failed, or its result is not the compressor's model; the message says why."""


@dataclass
class Decoded:
    """What came back from a decoding process: the model, the digest of its state (taken here), and
    its outputs on the inputs it was sent, computed there."""

    model: Any
    digest: str
    outputs: dict[str, Any] | None = None


# ------------------------------------------------------------------------------ the parent's side
class Decoder:
    """Decodes each message in a fresh process forked from a zygote of its own (started on first use,
    restarted if it died). ``fork``: the zygote is a fork of this process (only while it has run no
    torch computation and holds no data), else a fresh process."""

    def __init__(self) -> None:
        self.zygote: Zygote | None = None
        self.seconds = 0.0  # time callers spent waiting on decoding (the zygote's start-up included)

    def start(self, fork: bool = False) -> None:
        if self.zygote is None or not self.zygote.alive():
            self.zygote = Zygote([PREPARE], fork=fork)

    def spawn(self, role: str, payload: Any, env: dict[str, str] | None = None) -> Child:
        """A fresh process of ``role`` forked from this decoder's zygote (a compressing process, say)."""
        self.start()
        assert self.zygote is not None
        return self.zygote.spawn(role, payload, env)

    def decode(self, compressor: str, version: str, params: dict[str, Any], message: bytes, prior: "PriorSpec",
               timeout: float | None = None, inputs: dict[str, Any] | None = None) -> Decoded:
        """The model decoded by ``compressor`` from ``message``, ``prior`` and the decoder-side ``params``
        alone, its digest, and (given ``inputs``, a few named input tensors) its outputs on them,
        computed in the decoding process after it sent the model back."""
        start = time.perf_counter()
        try:
            return self._decode(compressor, version, params, message, prior, timeout, inputs)
        finally:
            self.seconds += time.perf_counter() - start

    def _decode(self, compressor: str, version: str, params: dict[str, Any], message: bytes, prior: "PriorSpec",
                timeout: float | None, inputs: dict[str, Any] | None) -> Decoded:
        self.start()
        assert self.zygote is not None
        try:
            child = self.zygote.spawn("decoder", None, env=DECODER_ENV)
        except (ChildDied, OSError) as exc:
            self.close()
            raise DecodeError(f"the decoding process did not start: {exc}") from None
        try:
            child.conn.send({"compressor": compressor, "version": version, "params": params,
                             "message": message, "prior": prior, "evaluates": inputs is not None})
            reply = self._answer(child, compressor, timeout, "decoding")
            if not reply["ok"]:
                raise DecodeError(f"compressor '{compressor}' failed to decode from the message and the prior "
                                  f"alone: {reply['error']}")
            model = pickle.loads(reply["model"])
            outputs = None
            if inputs is not None:
                child.conn.send_bytes(pickle.dumps(inputs))
                answer = self._answer(child, compressor, timeout, "evaluating the decoded model")
                if not answer["ok"]:
                    raise DecodeError(f"compressor '{compressor}': the decoded model failed on the evaluation "
                                      f"inputs: {answer['error']}")
                outputs = pickle.loads(answer["outputs"])
        finally:
            child.kill()
        return Decoded(model, state_digest(model), outputs)  # digested here: nothing in the decoder can change it

    @staticmethod
    def _answer(child: Child, compressor: str, timeout: float | None, what: str) -> dict[str, Any]:
        try:
            got, reply = child.receive(timeout)
        except ChildDied as exc:
            raise DecodeError(f"compressor '{compressor}': {exc} while {what}") from None
        if not got:
            from bench.timeouts import CellTimeout

            raise CellTimeout(f"{what} for compressor '{compressor}' exceeded its time limit of {timeout:g} s")
        return reply

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None


# ------------------------------------------------------------------------------ the child's side
_GUARD = {"active": False}
_FORBIDDEN_EVENTS = ("socket.connect", "socket.bind", "os.mkdir", "os.remove", "os.rename", "os.rmdir",
                     "os.symlink", "os.link", "os.truncate", "shutil.rmtree", "shutil.copyfile",
                     "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                     "os.forkpty")


_ROOTS: list[str] = []  # the import roots code may be read from (set when the guard is installed)


def import_roots() -> list[str]:
    """The folders code may come from: the interpreter's and the import path's, resolved, minus the
    working directory (where a run writes)."""
    cwd = os.path.realpath(os.getcwd())
    roots = {os.path.realpath(p) for p in [sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path] if p}
    return sorted(r for r in roots if os.path.isdir(r) and r not in (cwd, "/"))


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _readable(path: str) -> bool:
    """Code and package metadata under an import root, time-zone tables, and a few kernel files:
    nothing a model is trained from. ``path`` is resolved first, so no link leads elsewhere."""
    path = os.path.realpath(path)
    if path.startswith("/proc/self/") or path.startswith(f"/proc/{os.getpid()}/"):
        return True
    if path in SYSTEM_FILES or path.startswith(SYSTEM_PREFIXES):
        return True
    if path.lower().endswith(DATA_SUFFIXES):
        return False
    if not _under(path, _ROOTS):
        return False
    if path.endswith(CODE_SUFFIXES):
        return True
    return any(part.endswith((".dist-info", ".egg-info")) or part == "zoneinfo" for part in path.split(os.sep))


def _writes(mode: Any, flags: Any) -> bool:
    if isinstance(mode, str):
        return any(c in mode for c in "wax+")
    return isinstance(flags, int) and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC))


def _audit(event: str, args: tuple) -> None:
    if not _GUARD["active"]:
        return
    if event == "open":
        path, mode, flags = (tuple(args) + (None, None, None))[:3]
        if isinstance(path, int) or path is None:
            return
        name = os.fsdecode(path)
        if _writes(mode, flags):
            raise PermissionError(f"decode tried to write '{name}': {PRIOR_ONLY}")
        if not _readable(name):
            raise PermissionError(f"decode tried to read '{name}': {PRIOR_ONLY}")
    elif event in _FORBIDDEN_EVENTS:
        raise PermissionError(f"decode tried '{event}': {PRIOR_ONLY}")


def _withhold_datasets(registry) -> None:
    def refuse(self, *args, **kwargs):
        raise PermissionError(f"decode tried to load dataset '{self.name}': {PRIOR_ONLY}")

    for entry in registry.entries["datasets"].values():
        entry.obj.load = refuse


def serve(conn, payload: Any) -> None:  # noqa: ARG001
    """The decoding process: lock down, decode one request, send the model back; then, when asked,
    compute its outputs on the inputs the harness sends (no labels: those stay with the harness), and
    end. The guard stays on from the start of ``decode`` to the end of the process, so nothing ``decode``
    leaves running (a thread) can read a file after it returned, and the outputs are those of a model
    that had only the message, the prior and the inputs: nothing another plugin left anywhere."""
    from bench.preload import preloaded_registry
    from bench.tasks import prior_from_spec

    registry = preloaded_registry()
    _withhold_datasets(registry)
    _ROOTS[:] = import_roots()
    sys.addaudithook(_audit)
    request = conn.recv()
    start = time.perf_counter()
    model = None
    try:
        cls = registry.get("compressors", request["compressor"])
        if cls.version != request["version"]:
            raise DecodeError(f"version {cls.version} is installed, the message was made by {request['version']}")
        prior = prior_from_spec(request["prior"], registry)
        decoder = cls.for_decoding(cls.decoder_side(request["params"]))
        _GUARD["active"] = True
        model = decoder.decode(request["message"], prior)
        reply = _reply(model)
    except Exception as exc:  # any failure of third-party code is the cell's, not the process's
        reply = {"ok": False, "error": _first_line(exc)}
    reply["seconds"] = time.perf_counter() - start
    conn.send(reply)
    if not (reply["ok"] and request.get("evaluates")):
        return
    inputs = pickle.loads(conn.recv_bytes())
    try:
        from bench.kit.evaluation import predict

        outputs = {name: predict(model, x).detach().float().cpu() for name, x in inputs.items()}
        conn.send({"ok": True, "outputs": pickle.dumps(outputs)})  # by value: this process ends now
    except Exception as exc:
        conn.send({"ok": False, "error": _first_line(exc)})


def _first_line(exc: Exception) -> str:
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}"


def _reply(model) -> dict[str, Any]:
    import torch
    from torch import nn

    if not isinstance(model, nn.Module):
        raise TypeError(f"decode returned {type(model).__name__}, not a torch.nn.Module")
    for key, value in model.state_dict().items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise FloatingPointError(f"the decoded model has non-finite values in '{key}'")
    model.eval()
    return {"ok": True, "model": pickle.dumps(model), "digest": state_digest(model)}
