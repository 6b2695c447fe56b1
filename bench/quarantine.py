"""Moving a damaged file aside instead of deleting it or failing on it: the results folder and the model
caches each keep a ``_quarantine/`` folder, so a person can look at what went wrong and nothing is lost,
while the run that found it goes on."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.progress import say


def move_aside(path: Path, quarantine: Path, why: str, consequence: str | None) -> Path | None:
    """Move ``path`` into ``quarantine`` under a name not taken yet and say so in one line (none when
    ``consequence`` is ``None``: a file that goes with one already reported); ``None`` when another
    process moved it first."""
    quarantine.mkdir(parents=True, exist_ok=True)
    dest = quarantine / path.name
    n = 1
    while dest.exists():
        dest = quarantine / f"{path.name}.{n}"
        n += 1
    try:
        shutil.move(str(path), str(dest))
    except FileNotFoundError:
        return None
    if consequence is not None:
        say(f"warning: damaged {path} moved to {dest} ({why}); {consequence}")
    return dest
