"""Claims on work in a shared results folder, so that each job runs once whoever runs it: two ``bench
run`` processes on one folder, or dask workers on several machines that share it.

A claim is a file ``_claims/NAME.GEN`` created with ``O_EXCL`` (atomic on local file systems and on
NFS), holding its owner (host, pid, run). Its owner renews it (touches its mtime) from a background
thread every ``timeout / 5`` seconds while it works and deletes it when done. A claim is *stale* when
its renewal is older than ``timeout``, or at once when its owner is a process of this host that is
gone; a stale claim is taken over by creating the next generation ``NAME.GEN+1``, again with
``O_EXCL``, so of several processes that find it stale exactly one wins. An owner that was only slow
and comes back after a takeover finishes harmlessly: each cell's row is one file named by the cell
(``bench.results``), so a cell computed twice is still one row.

Clocks of machines sharing a folder must agree to well within ``timeout`` (NTP does this).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.children import process_alive
from bench.progress import say


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    run_id: str

    def text(self) -> str:
        return f"run {self.run_id} (pid {self.pid} on {self.host})"


class Claim:
    """A claim this process holds: renewed in the background until ``release``."""

    def __init__(self, claims: "Claims", path: Path) -> None:
        self.claims, self.path = claims, path

    def release(self) -> None:
        self.claims._release(self)

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Claims:
    """The claims of one process (one owner) in one folder."""

    def __init__(self, root: Path, run_id: str, timeout: float = 60.0) -> None:
        self.root, self.timeout = Path(root), float(timeout)
        self.owner = Owner(socket.gethostname(), os.getpid(), run_id)
        self._held: dict[Path, Claim] = {}
        self._lock = threading.Lock()
        self._renewer: threading.Thread | None = None
        self.taken_over = 0  # stale claims this process took over (for the fault table's counts)

    @property
    def interval(self) -> float:
        """How often a held claim is renewed, and how often a waiting run looks again."""
        return max(0.05, self.timeout / 5)

    # ------------------------------------------------------------------------------- taking
    def take(self, name: str) -> Claim | None:
        """Claim ``name``, taking over a stale claim; ``None`` while another live owner holds it."""
        self.root.mkdir(parents=True, exist_ok=True)
        for _ in range(100):  # each retry follows another process's move; a few are plenty
            generations = self._generations(name)
            if not generations:
                gen = 0
            else:
                top = generations[-1]
                state = self._state(self._path(name, top))
                if state == "gone":
                    continue
                if state == "live":
                    return None
                gen = top + 1
            path = self._path(name, gen)
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                continue  # another process claimed it first: look again
            with os.fdopen(fd, "w") as f:
                json.dump({"host": self.owner.host, "pid": self.owner.pid, "run_id": self.owner.run_id,
                           "taken_at": time.time()}, f)
            if gen:
                self._took_over(name, generations)
            claim = Claim(self, path)
            with self._lock:
                self._held[path] = claim
            self._start_renewing()
            return claim
        raise RuntimeError(f"could not claim {name} in {self.root}: its claim files keep changing")

    def is_free(self, name: str) -> bool:
        """Whether ``take`` would succeed now (nobody holds it, or its holder is stale)."""
        generations = self._generations(name)
        return not generations or self._state(self._path(name, generations[-1])) != "live"

    def owner_of(self, name: str) -> Owner | None:
        generations = self._generations(name)
        return self._read(self._path(name, generations[-1])) if generations else None

    # ----------------------------------------------------------------------------- internals
    def _path(self, name: str, gen: int) -> Path:
        return self.root / f"{name}.{gen}"

    def _generations(self, name: str) -> list[int]:
        gens = []
        for path in self.root.glob(f"{name}.*"):
            suffix = path.name[len(name) + 1:]
            if suffix.isdigit():
                gens.append(int(suffix))
        return sorted(gens)

    @staticmethod
    def _read(path: Path) -> Owner | None:
        try:
            info = json.loads(path.read_text())
            return Owner(str(info["host"]), int(info["pid"]), str(info["run_id"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # gone, or created and not yet written

    def _state(self, path: Path) -> str:
        """``live``, ``stale`` or ``gone`` (released while we looked)."""
        try:
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return "gone"
        if age > self.timeout:
            return "stale"
        owner = self._read(path)
        if owner is not None and owner.host == self.owner.host and not process_alive(owner.pid):
            return "stale"  # its owner on this machine is gone: no need to wait out the timeout
        return "live"

    def _took_over(self, name: str, old: list[int]) -> None:
        previous = self._read(self._path(name, old[-1]))
        for gen in old:
            try:
                self._path(name, gen).unlink()
            except FileNotFoundError:
                pass
        self.taken_over += 1
        who = previous.text() if previous else "an unknown owner"
        say(f"took over {name} from {who}: its claim was not renewed for {self.timeout:g} s or its process is gone")

    def _release(self, claim: Claim) -> None:
        with self._lock:
            self._held.pop(claim.path, None)
        try:
            claim.path.unlink()
        except FileNotFoundError:
            pass  # taken over while we were slow: the taker cleans up

    def _start_renewing(self) -> None:
        with self._lock:
            if self._renewer is not None and self._renewer.is_alive():
                return
            self._renewer = threading.Thread(target=self._renew, daemon=True, name="claim-renewer")
            self._renewer.start()

    def _renew(self) -> None:
        while True:
            time.sleep(self.interval)
            with self._lock:
                held = list(self._held)
                if not held:
                    self._renewer = None
                    return
            for path in held:
                try:
                    os.utime(path)
                except FileNotFoundError:
                    with self._lock:
                        self._held.pop(path, None)  # taken over: the work goes on, its row is one file
