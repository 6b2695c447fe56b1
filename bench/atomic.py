"""Writing files so that a reader sees either nothing or the whole file: written under a hidden
temporary name in the same folder, flushed to disk, then renamed over the target (a rename within a
folder is atomic). Results, artifacts, caches and pages all go through here.

A temporary file is named ``.tmp-HOST-PID-…``, so that what a killed writer leaves behind can be told
apart from a write in flight and swept (``leftover``)."""

from __future__ import annotations

import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Callable, IO


def write_atomically(path: Path, data: bytes | str | Callable[[IO[bytes]], None]) -> Path:
    """Write ``data`` (bytes, text as UTF-8, or a function that writes to an open binary file) to
    ``path`` atomically; its folder is made if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=temp_prefix(), suffix=path.suffix, delete=False) as f:
        try:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        except BaseException:
            f.close()
            os.unlink(f.name)
            raise
    os.replace(f.name, path)
    return path


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64]


def temp_prefix() -> str:
    return f".tmp-{_host()}-{os.getpid()}-"


def leftover(path: Path) -> bool:
    """Whether ``path`` is the temporary file of a writer on this host that has ended (a writer on
    another host cannot be asked, and its file is left alone)."""
    from bench.children import process_alive

    match = re.fullmatch(r"\.tmp-(.+)-(\d+)-.*", Path(path).name)
    return bool(match) and match.group(1) == _host() and not process_alive(int(match.group(2)))
