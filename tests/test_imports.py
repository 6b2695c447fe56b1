"""The import rules of the layers (import-linter contracts in pyproject.toml): the toolkit imports
nothing from the harness or the API; plugins import only bench.api and bench.kit; no plugin imports
another; nothing under bench imports a plugin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_rules_hold():
    out = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "7 kept, 0 broken" in out.stdout


def test_plugin_authors_need_only_the_api():
    import bench.api as api

    for name in api.__all__:
        assert hasattr(api, name), name
    for name in ("hookimpl", "Compressor", "Bound", "Dataset", "ModelFamily", "TaskSpec", "Compressed", "BoundResult",
                 "Prior", "RunContext", "Ge", "kit"):
        assert name in api.__all__
