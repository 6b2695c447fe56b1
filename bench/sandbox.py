"""Decoding from the message and the prior alone, in a process that has nothing else.

A certificate's size is the length of a message that decodes, given only what was fixed before seeing
data, to the evaluated model. ``Compressor.decode`` is third-party code, so the harness does not take
that on trust: it decodes in a separate process (``Decoder``) that

* never loaded a dataset or a trained model (it is started fresh, not forked) and gets the message and
  a ``PriorSpec`` only;
* has an empty model cache (``BENCH_CACHE_DIR`` points nowhere) and registered datasets that refuse to
  load;
* refuses, once decoding starts, to open any file that is not code (``.py``, ``.so``, package
  metadata), to write or create files, to start processes and to open network connections (a Python
  audit hook).

It sends back the decoded model and a digest of its floating-point state; the harness compares that
digest with the compressor's own model and evaluates the model that came back.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from typing import Any

from typing import TYPE_CHECKING

from bench.children import Child, ChildDied
from bench.kit.models import state_digest
from bench.errors import PRIOR_ONLY

if TYPE_CHECKING:
    from bench.contracts import PriorSpec

NO_CACHE = "/nonexistent/compression-bench-decoder-has-no-cache"
CODE_SUFFIXES = (".py", ".pyc", ".so", ".pyd", ".pth", ".pyi")
READABLE_PREFIXES = ("/proc/", "/sys/", "/dev/")


class DecodeError(RuntimeError):
    """Decoding failed, or its result is not the compressor's model; the message says why."""


# ------------------------------------------------------------------------------ the parent's side
class Decoder:
    """The decoding process, started on first use and reused; restarted after a timeout or a crash."""

    STARTUP_TIMEOUT = 600.0  # seconds the process may take to start (imports, plugins): not the decoder's

    def __init__(self) -> None:
        self.child: Child | None = None
        self.ready = False
        self.seconds = 0.0  # time callers spent waiting on this process (start-up included)

    def start(self, fork: bool = False) -> None:
        """``fork``: fork this process (see ``bench.children.Child``), only while it holds no data."""
        if self.child is None or not self.child.alive():
            self.child = Child("decoder", None, env={"BENCH_CACHE_DIR": NO_CACHE, "BENCH_DATA_DIR": NO_CACHE},
                               fork=fork)
            self.ready = False

    def _wait_ready(self) -> None:
        """The start-up is not part of any plugin's time limit."""
        assert self.child is not None
        if not self.ready:
            try:
                got, _ = self.child.receive(self.STARTUP_TIMEOUT)
            except ChildDied as exc:
                self.child = None
                raise DecodeError(f"the decoding process did not start: {exc}") from None
            if not got:
                self.close()
                raise DecodeError(f"the decoding process did not start within {self.STARTUP_TIMEOUT:g} s")
            self.ready = True

    def decode(self, compressor: str, version: str, params: dict[str, Any], message: bytes, prior: "PriorSpec",
               timeout: float | None = None):
        """The model decoded by ``compressor`` from ``message`` and ``prior`` alone, and its digest."""
        start = time.perf_counter()
        try:
            return self._decode(compressor, version, params, message, prior, timeout)
        finally:
            self.seconds += time.perf_counter() - start

    def _decode(self, compressor: str, version: str, params: dict[str, Any], message: bytes, prior: "PriorSpec",
                timeout: float | None):
        self.start()
        self._wait_ready()
        assert self.child is not None
        self.child.conn.send({"compressor": compressor, "version": version, "params": params,
                              "message": message, "prior": prior})
        try:
            got, reply = self.child.receive(timeout)
        except ChildDied as exc:
            self.child = None
            raise DecodeError(f"compressor '{compressor}': {exc} while decoding") from None
        if not got:
            self.child.kill()
            self.child = None
            from bench.timeouts import CellTimeout

            raise CellTimeout(f"decode of compressor '{compressor}' exceeded its time limit of {timeout:g} s")
        if not reply["ok"]:
            raise DecodeError(f"compressor '{compressor}' failed to decode from the message and the prior "
                              f"alone: {reply['error']}")
        return pickle.loads(reply["model"]), reply["digest"]

    def close(self) -> None:
        if self.child is not None:
            self.child.close()
            self.child = None


# ------------------------------------------------------------------------------ the child's side
_GUARD = {"active": False}
_FORBIDDEN_EVENTS = ("socket.connect", "socket.bind", "os.mkdir", "os.remove", "os.rename", "os.rmdir",
                     "os.symlink", "os.link", "os.truncate", "shutil.rmtree", "shutil.copyfile",
                     "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                     "os.forkpty")


def _readable(path: str) -> bool:
    """Code, package metadata, time-zone tables and the kernel's pseudo-files: nothing a model is
    trained from."""
    if path.endswith(CODE_SUFFIXES) or path.startswith(READABLE_PREFIXES):
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
        if not _readable(os.path.abspath(name)):
            raise PermissionError(f"decode tried to read '{name}': {PRIOR_ONLY}")
    elif event in _FORBIDDEN_EVENTS:
        raise PermissionError(f"decode tried '{event}': {PRIOR_ONLY}")


def _withhold_datasets(registry) -> None:
    def refuse(self, *args, **kwargs):
        raise PermissionError(f"decode tried to load dataset '{self.name}': {PRIOR_ONLY}")

    for entry in registry.entries["datasets"].values():
        entry.obj.load = refuse


def serve(conn, payload: Any) -> None:  # noqa: ARG001
    """The decoding process: load the plugins, lock down, then decode requests until EOF."""
    sys.dont_write_bytecode = True
    import pandas  # noqa: F401  (what a decoder may need is imported before the lock)
    import sklearn.datasets  # noqa: F401
    import torch  # noqa: F401

    import bench.kit.coding  # noqa: F401
    import bench.kit.quantization  # noqa: F401
    from bench.registry import load_registry
    from bench.tasks import prior_from_spec

    registry = load_registry()
    _withhold_datasets(registry)
    sys.addaudithook(_audit)
    conn.send("ready")
    while True:
        request = conn.recv()
        start = time.perf_counter()
        try:
            cls = registry.get("compressors", request["compressor"])
            if cls.version != request["version"]:
                raise DecodeError(f"version {cls.version} is installed, the message was made by {request['version']}")
            prior = prior_from_spec(request["prior"], registry)
            _GUARD["active"] = True
            try:
                model = cls(**request["params"]).decode(request["message"], prior)
            finally:
                _GUARD["active"] = False
            reply = _reply(model)
        except Exception as exc:  # any failure of third-party code is the cell's, not the process's
            first = str(exc).splitlines()[0] if str(exc) else ""
            reply = {"ok": False, "error": f"{type(exc).__name__}: {first}"}
        reply["seconds"] = time.perf_counter() - start
        conn.send(reply)


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
