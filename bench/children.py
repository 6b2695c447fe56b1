"""Helper processes of the harness: started fresh with ``python -m bench.children ROLE FD`` (so they
inherit no data, models or threads) or forked from a *zygote*, and talking to their parent over a
socket pair.

The roles: the job worker (``bench.worker``, watched by ``bench.supervisor``), which runs a run's jobs where it can be killed when a
plugin overruns its time limit; the compressor (``bench.compressing``), which runs one ``compress`` in a
process of its own, so that nothing it leaves behind (module state, files it keeps open) exists where
the decoded model is evaluated; the decoder (``bench.sandbox``), which decodes one message from the
prior alone; and the zygote, a process that has loaded the plugins and done nothing else, from which
compressors and decoders are forked in milliseconds, each from the same clean state (a process that
has run torch's thread pool must not fork: the team does not survive). A child dies with its parent
(``PR_SET_PDEATHSIG`` where Linux offers it, and a watch on the parent's pid everywhere), so a killed
``bench run`` leaves nothing behind. A child ignores SIGINT and SIGTERM: a Ctrl-C reaches the whole
process group, and a child that died of it before its parent heard would look like a crashed job; the
parent, interrupted, ends its children itself.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

ROLES = {"decoder": "bench.sandbox:serve", "worker": "bench.worker:serve",
         "compressor": "bench.compressing:serve", "zygote": "bench.children:serve_zygote"}


class ChildDied(RuntimeError):
    """The helper process exited (or was killed) before it answered."""


class _Forked:
    """The ``Popen`` methods ``Child`` uses, for a process made by ``os.fork``."""

    def __init__(self, pid: int) -> None:
        self.pid, self.returncode = pid, None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.01)
        return self.returncode

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine is running (a zombie awaiting its reaper has ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except (OSError, IndexError):
        return True  # no /proc (macOS): os.kill said it exists


class _Adopted:
    """The ``Popen`` methods ``Child`` uses, for a process a zygote forked (the zygote reaps it, so once
    it has ended its exit status is unknown here)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.returncode = pid, None

    def poll(self) -> int | None:
        if self.returncode is None and not process_alive(self.pid):
            self.returncode = -1
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        return _Forked.wait(self, timeout)  # type: ignore[arg-type]

    def kill(self) -> None:
        _Forked.kill(self)  # type: ignore[arg-type]


class Child:
    """One helper process and the parent's end of its connection.

    Started fresh (``python -m bench.children``) by default. ``fork=True`` forks the calling process
    instead: near free, and safe only while the caller holds no data, no trained model and no
    threads that matter (the job worker forks its decoder right after loading the plugins, before any
    job, and only on the CPU: a CUDA context does not survive a fork)."""

    def __init__(self, role: str, payload: Any, env: dict[str, str] | None = None, fork: bool = False) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown helper role {role!r}")
        self.role = role
        ours, theirs = socket.socketpair()
        if fork:
            self.proc = _fork(role, payload, env or {}, ours, theirs)
            self.conn = Connection(ours.detach())
            return
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.children", role, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.conn.send({"sys_path": list(sys.path), "parent": os.getpid(), "payload": payload})

    @classmethod
    def adopted(cls, role: str, pid: int, conn: Connection) -> "Child":
        """The parent's handle on a process a zygote forked for it."""
        child = cls.__new__(cls)
        child.role, child.proc, child.conn = role, _Adopted(pid), conn
        return child

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_text(self) -> str:
        code = self.proc.poll()
        if code is None:
            return "still running"
        if isinstance(self.proc, _Adopted):
            return "ended"
        if code < 0:
            return f"killed by signal {signal.Signals(-code).name}"
        return f"exit code {code}"

    def receive(self, timeout: float | None) -> tuple[bool, Any]:
        """``(True, message)``, or ``(False, None)`` when nothing came within ``timeout`` seconds
        (``None``: wait forever). Raises ``ChildDied`` when the process is gone."""
        try:
            if not self.conn.poll(timeout):
                return False, None
            return True, self.conn.recv()
        except (EOFError, OSError):
            self.proc.wait()
            raise ChildDied(f"the {self.role} process died ({self.exit_text()})") from None

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait()
        self.conn.close()

    def close(self) -> None:
        """Ask nicely (closing the connection ends the child's loop), then make sure."""
        try:
            self.conn.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class Zygote:
    """The parent's side of a zygote: ``spawn(role, payload)`` forks a fresh process of ``role`` from it
    and returns the ``Child`` to talk to. ``fork``: the zygote itself is a fork of the caller (only
    while the caller has run no torch computation and holds no data), else a fresh process."""

    def __init__(self, prepare: list[str], fork: bool = False) -> None:
        self.child = Child("zygote", {"prepare": prepare}, fork=fork)
        self.lock = threading.Lock()

    def spawn(self, role: str, payload: Any, env: dict[str, str] | None = None) -> Child:
        if role not in ROLES or role in ("zygote", "worker"):
            raise ValueError(f"a zygote does not fork {role!r} processes")
        from multiprocessing.reduction import send_handle

        ours, theirs = socket.socketpair()
        try:
            with self.lock:
                self.child.conn.send((role, payload, env or {}))
                send_handle(self.child.conn, theirs.fileno(), self.child.proc.pid)
                got, pid = self.child.receive(STARTUP_TIMEOUT)
        finally:
            theirs.close()
        if not got:
            raise ChildDied("the zygote did not answer")
        return Child.adopted(role, pid, Connection(ours.detach()))

    def alive(self) -> bool:
        return self.child.alive()

    def close(self) -> None:
        self.child.close()


STARTUP_TIMEOUT = 600.0  # seconds a helper may take to start (imports, plugins): not any plugin's time


def serve_zygote(conn: Connection, payload: dict[str, Any]) -> None:
    """The zygote: run the ``prepare`` steps (imports, the plugin registry), then fork one fresh process
    per request, hand it the connection its requester sent, and answer with its pid. It computes
    nothing itself, so every process it forks starts from the same clean state."""
    from multiprocessing.reduction import recv_handle

    for step in payload.get("prepare", []):
        module, func = step.split(":")
        getattr(importlib.import_module(module), func)()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # ended children are reaped by the kernel
    me = os.getpid()
    while True:
        role, child_payload, env = conn.recv()
        fd = recv_handle(conn)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            conn.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _become(role, fd, child_payload, env, me)
        os.close(fd)
        conn.send(pid)


def _tie_to_parent(parent: int) -> None:
    """Die with ``parent``, and leave being interrupted to it."""
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()
    if os.getppid() != parent:  # the parent died before the watch started
        os._exit(1)


def _fork(role: str, payload: Any, env: dict[str, str], ours: socket.socket, theirs: socket.socket) -> _Forked:
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        theirs.close()
        return _Forked(pid)
    # the child: keep stdio and its own end of the pair, nothing else of the parent's
    fd = theirs.detach()
    ours.close()
    os.closerange(3, fd)
    os.closerange(fd + 1, 1 << 16)
    _become(role, fd, payload, env, parent)


def _become(role: str, fd: int, payload: Any, env: dict[str, str], parent: int) -> None:
    """The body of a forked child: serve ``role`` on ``fd`` and exit, never returning into the code of
    the process that forked it."""
    code = 0
    try:
        os.environ.update(env)
        _tie_to_parent(parent)
        module, func = ROLES[role].split(":")
        getattr(importlib.import_module(module), func)(Connection(fd), payload)
    except (EOFError, KeyboardInterrupt):
        pass
    except BaseException:  # noqa: BLE001  (report, never return)
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        os._exit(code)


def main(argv: list[str]) -> None:
    role, fd = argv[0], int(argv[1])
    conn = Connection(fd)
    init = conn.recv()
    _tie_to_parent(init["parent"])
    for entry in reversed(init["sys_path"]):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    module, func = ROLES[role].split(":")
    try:
        getattr(importlib.import_module(module), func)(conn, init["payload"])
    except (EOFError, KeyboardInterrupt):
        pass  # the parent closed the connection or was interrupted: nothing left to do


if __name__ == "__main__":
    main(sys.argv[1:])
