"""A real dask cluster on 127.0.0.1, started as a lab starts one: the ``dask scheduler`` and ``dask
worker`` command-line tools, each a process of its own, which ``bench run --executor dask --set
executor.address=...`` then connects to. Used by the cluster tests and the scaling benchmark."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

DASK = Path(sys.executable).parent / "dask"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CliCluster:
    """``with CliCluster(workers=2, cwd=folder) as cluster: cluster.address``; each worker runs one job
    at a time (one thread, no nanny, so a worker's pid is the process that holds its claims)."""

    def __init__(self, workers: int, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.n, self.cwd, self.env = workers, Path(cwd), {**os.environ, **(env or {})}
        self.port = free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.scheduler: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def _start(self, name: str, args: list[str]) -> subprocess.Popen:
        log = self.cwd / f"{name}.log"
        self.logs.append(log)
        return subprocess.Popen([str(DASK), *args], cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL,
                                stderr=open(log, "w"), start_new_session=True)

    def __enter__(self) -> "CliCluster":
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.scheduler = self._start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", str(self.port),
                                                   "--no-dashboard"])
        for i in range(self.n):
            self.workers.append(self._start(f"worker-{i}", [
                "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", f"w{i}"]))
        self.wait_for_workers(self.n)
        return self

    def wait_for_workers(self, n: int, timeout: float = 120) -> None:
        from distributed import Client

        with Client(self.address, timeout=timeout) as client:
            client.wait_for_workers(n, timeout=timeout)

    def kill_worker(self, pid: int) -> None:
        os.kill(pid, signal.SIGKILL)

    def __exit__(self, *exc) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in [*self.workers, self.scheduler]:
            if proc is None:
                continue
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def log_text(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in self.logs if log.exists())
