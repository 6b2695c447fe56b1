"""The job worker process (``bench.children`` role ``worker``): builds the run's runner once, then runs
the jobs its supervisor sends it, reporting each phase, written row and finished job back."""

from __future__ import annotations

import os
from typing import Any

from bench.supervisor import ChannelReport


def gpu_present() -> bool:
    """Whether this machine has an NVIDIA device (checked without initializing CUDA)."""
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0"))


def serve(conn, payload: dict[str, Any] | None) -> None:
    """Until EOF: run each job sent, answer ``("done", result)``."""
    from bench.registry import load_registry
    from bench.runner import Runner
    from bench.sandbox import Decoder

    registry = load_registry()
    # The zygote that compressing and decoding processes are forked from starts now, before the run's
    # configuration arrives, so that its imports overlap the parent's set-up. Nothing has been computed
    # here yet, so it can be a fork of this process, unless a GPU is present: a process that has
    # touched CUDA must not fork, and the device is not known yet.
    decoder = Decoder()
    decoder.start(fork=not gpu_present())
    if payload is None:  # started early: the run's configuration comes now
        payload = conn.recv()
    runner = Runner(payload["config"], registry, payload["argv"], run_id=payload["run_id"])
    runner.cells.decoder = decoder
    report = ChannelReport(conn)
    try:
        while True:
            job, done = conn.recv()
            result = runner.run_job(job, done, report)
            conn.send(("done", result))
    finally:
        runner.close()
