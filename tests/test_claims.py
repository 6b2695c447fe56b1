"""Claims on jobs in a shared folder (bench.claims) and one row file per cell (bench.results): the
pieces that make each cell run once and appear once, whoever runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pandas as pd

from bench.claims import Claims
from bench.results import ResultsStore


def foreign_claim(root, name, gen=0, host="elsewhere", pid=1, age=0.0):
    """A claim file another owner wrote, renewed ``age`` seconds ago."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}.{gen}"
    path.write_text(json.dumps({"host": host, "pid": pid, "run_id": "other", "taken_at": time.time()}))
    os.utime(path, (time.time() - age, time.time() - age))
    return path


def test_a_claim_is_exclusive_until_released(tmp_path):
    a, b = Claims(tmp_path, "a", timeout=30), Claims(tmp_path, "b", timeout=30)
    claim = a.take("job")
    assert claim is not None and b.take("job") is None and not b.is_free("job")
    assert b.owner_of("job").run_id == "a"
    claim.release()
    assert b.is_free("job") and list(tmp_path.iterdir()) == []
    assert b.take("job") is not None


def test_a_live_claim_of_another_machine_is_respected_until_it_goes_stale(tmp_path):
    foreign_claim(tmp_path, "job", age=1.0)
    claims = Claims(tmp_path, "me", timeout=5)
    assert claims.take("job") is None
    foreign_claim(tmp_path, "job", age=6.0)  # not renewed for longer than the timeout
    claim = claims.take("job")
    assert claim is not None and claim.path.name == "job.1" and claims.taken_over == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.1"]  # the stale generation is removed


def test_a_claim_whose_owner_on_this_machine_is_gone_is_taken_over_at_once(tmp_path):
    import socket

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    foreign_claim(tmp_path, "job", host=socket.gethostname(), pid=dead.pid, age=0.0)
    claims = Claims(tmp_path, "me", timeout=3600)
    assert claims.take("job") is not None and claims.taken_over == 1


def test_a_zombie_owner_counts_as_gone(tmp_path):
    """A killed run its parent has not reaped yet (a test's Popen, a shell's job) is a zombie."""
    import signal
    import socket

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        foreign_claim(tmp_path, "job", host=socket.gethostname(), pid=proc.pid)
        claims = Claims(tmp_path, "me", timeout=3600)
        assert claims.take("job") is None  # alive
        proc.send_signal(signal.SIGKILL)
        time.sleep(0.2)  # not reaped: a zombie
        assert claims.is_free("job")
    finally:
        proc.kill()
        proc.wait()


def test_a_held_claim_is_renewed_so_it_never_goes_stale(tmp_path):
    owner = Claims(tmp_path, "owner", timeout=0.5)
    other = Claims(tmp_path, "other", timeout=0.5)
    with owner.take("job"):
        time.sleep(1.5)  # three timeouts
        assert other.take("job") is None
    assert other.take("job") is not None


def test_of_many_takers_of_a_stale_claim_exactly_one_wins(tmp_path):
    foreign_claim(tmp_path, "job", age=100.0)
    takers = [Claims(tmp_path, f"t{i}", timeout=10) for i in range(8)]
    got, start = [], threading.Barrier(len(takers))

    def take(claims):
        start.wait()
        got.append(claims.take("job"))

    threads = [threading.Thread(target=take, args=(c,)) for c in takers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(claim is not None for claim in got) == 1


def row(cell_id, status, bits=1.0):
    return {"cell_id": cell_id, "status": status, "message_bits": bits, "task": "t", "run_id": "r"}


def test_a_cell_has_one_row_however_often_it_is_written(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_rows([row("c1", "failed"), row("c2", "ok")])
    store.write_rows([row("c1", "ok", 2.0), row("c2", "ok", 3.0)])  # a rerun, and a second computation
    store.write_rows([row("c1", "failed")])  # a slow owner's late failure does not undo a result
    df = pd.read_parquet(tmp_path)
    assert sorted(df["cell_id"]) == ["c1", "c2"]
    assert dict(zip(df["cell_id"], df["message_bits"])) == {"c1": 2.0, "c2": 3.0}
    assert (df["status"] == "ok").all()


def test_settled_cells_are_ok_or_written_while_this_run_waited(tmp_path):
    store = ResultsStore(tmp_path)
    store.write_rows([row("old-failure", "failed"), row("old-ok", "ok")])
    time.sleep(0.05)
    since = time.time()
    time.sleep(0.05)  # a file's mtime comes from the kernel's coarse clock, which may lag time.time() by a tick
    store.write_rows([row("new-failure", "failed")])
    assert store.settled(["old-failure", "old-ok", "new-failure", "never"], since) == {"old-ok", "new-failure"}
