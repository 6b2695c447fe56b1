"""Helper processes of the harness: started fresh with ``python -m bench.children ROLE FD`` (never
forked, so they inherit no data, models or threads) and talking to their parent over a socket pair.

Two roles use them: the job worker (``bench.supervisor``), which runs a run's jobs where it can be
killed when a plugin overruns its time limit, and the decoder (``bench.sandbox``), which decodes
messages from the prior alone. A child dies with its parent (``PR_SET_PDEATHSIG`` where Linux offers
it, and a watch on the parent's pid everywhere), so a killed ``bench run`` leaves nothing behind.
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

ROLES = {"decoder": "bench.sandbox:serve", "worker": "bench.supervisor:serve"}


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

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exit_text(self) -> str:
        code = self.proc.poll()
        if code is None:
            return "still running"
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


def _die_with_parent(parent: int) -> None:
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
    code = 0
    try:  # the child: keep stdio and its own end of the pair, nothing else of the parent's
        fd = theirs.detach()
        ours.close()
        os.closerange(3, fd)
        os.closerange(fd + 1, 1 << 16)
        os.environ.update(env)
        _die_with_parent(parent)
        module, func = ROLES[role].split(":")
        getattr(importlib.import_module(module), func)(Connection(fd), payload)
    except (EOFError, KeyboardInterrupt):
        pass
    except BaseException:  # noqa: BLE001  (report, never return into the parent's code)
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        os._exit(code)


def main(argv: list[str]) -> None:
    role, fd = argv[0], int(argv[1])
    conn = Connection(fd)
    init = conn.recv()
    _die_with_parent(init["parent"])
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
