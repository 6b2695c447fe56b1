"""Progress bars (tqdm on stderr). Shown on a terminal, hidden otherwise or with ``BENCH_PROGRESS=0``."""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm.auto import tqdm


def progress_enabled() -> bool | None:
    value = os.environ.get("BENCH_PROGRESS")
    if value is None:
        return None  # tqdm's own rule: only on a terminal
    return value not in ("0", "false", "no", "")


def progress(total: int | None = None, desc: str = "", leave: bool = False, **kwargs: Any) -> tqdm:
    enabled = progress_enabled()
    return tqdm(total=total, desc=desc, leave=leave, file=sys.stderr, dynamic_ncols=True,
                disable=None if enabled is None else not enabled, **kwargs)


def say(message: str) -> None:
    """A line on stderr that does not break the progress bars."""
    tqdm.write(message, file=sys.stderr)
