"""What a killed writer leaves in a results folder is swept before the next run: temporary files of
ended processes of this host, and artifacts a stopped job had begun; nothing of a live writer, or of a
writer on another host, is touched."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.atomic import leftover, temp_prefix, write_atomically
from bench.claims import Claims
from bench.results import ResultsStore


def ended_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def dead_prefix() -> str:
    """The temporary-file prefix of a process of this host that has ended."""
    return temp_prefix().replace(f"-{os.getpid()}-", f"-{ended_pid()}-")


def test_temporary_files_name_their_writer(tmp_path):
    assert temp_prefix().startswith(".tmp-") and f"-{os.getpid()}-" in temp_prefix()
    write_atomically(tmp_path / "x.txt", "x")
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]
    assert not leftover(tmp_path / f"{temp_prefix()}abc.parquet")  # this process is alive
    assert leftover(tmp_path / f"{dead_prefix()}abc.parquet")
    assert not leftover(tmp_path / f".tmp-another-machine-{ended_pid()}-abc.parquet")
    assert not leftover(tmp_path / "cell.parquet")


def test_sweep_removes_what_ended_writers_left_and_nothing_else(tmp_path):
    store = ResultsStore(tmp_path)
    store.prepare()
    dead = dead_prefix()
    for folder in (tmp_path, tmp_path / "_runs", tmp_path / "_artifacts" / "a1"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{dead}x.parquet").write_bytes(b"partial")
        (folder / f"{temp_prefix()}x.parquet").write_bytes(b"in flight")  # a live writer's
        (folder / ".tmp-another-machine-1-x.parquet").write_bytes(b"elsewhere")
    (tmp_path / "_artifacts" / "a1" / "message.bin").write_bytes(b"half")  # begun, no meta.json
    (tmp_path / "_artifacts" / "a2").mkdir()
    (tmp_path / "_artifacts" / "a2" / "meta.json").write_text("{}")  # complete
    (tmp_path / "_artifacts" / "a3").mkdir()
    (tmp_path / "_artifacts" / "a3" / "message.bin").write_bytes(b"half")  # begun by a live owner
    other = Claims(tmp_path / "_claims", "other-run", 60)
    held = other.take("a3")
    removed = store.sweep(Claims(tmp_path / "_claims", "this-run", 60))
    held.release()
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert removed == 4  # three temporary files and artifact a1
    assert not any(dead in name for name in left)
    assert sum(temp_prefix() in name for name in left) == 2  # a1's went with its folder
    assert sum("another-machine" in name for name in left) == 2
    assert "_artifacts/a2/meta.json" in left and "_artifacts/a3/message.bin" in left
    assert not (tmp_path / "_artifacts" / "a1").exists()
