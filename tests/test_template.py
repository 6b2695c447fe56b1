"""``bench new-plugin``: the generated package installs, is listed, runs and is ranked, for each kind;
its own test passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


PIP = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]


@pytest.mark.parametrize("kind", ["compressor", "bound", "task"])
def test_a_generated_plugin_is_listed_run_and_ranked(kind, tmp_path, workspace, monkeypatch, run_bench):
    name = f"my-{kind}"
    out = run_bench("new-plugin", name, "--kind", kind, "--out", str(tmp_path), cwd=workspace)
    assert out.returncode == 0, out.stderr
    package = tmp_path / f"bench-{name}"
    assert (package / "pyproject.toml").exists() and (package / "tests" / "test_plugin.py").exists()
    site = tmp_path / "site"
    subprocess.run([*PIP, "--target", str(site), str(package)], check=True, capture_output=True)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    plural = {"compressor": "compressors", "bound": "bounds", "task": "tasks"}[kind]
    listed = run_bench("list", plural, cwd=workspace)
    assert name in listed.stdout and f"[{name}]" in listed.stdout
    args = {"compressor": ["--tasks", "digits-mlp", "--compressors", name, "--bounds", "occam"],
            "bound": ["--tasks", "digits-mlp", "--compressors", "quantize", "--bounds", name],
            "task": ["--tasks", name, "--compressors", "quantize", "--bounds", "occam"]}[kind]
    ran = run_bench("run", *args, cwd=workspace)
    assert ran.returncode == 0, ran.stderr
    assert name in ran.stdout and ("### Certificates" in ran.stdout or "### Vacuous" in ran.stdout)
    if kind == "compressor":  # the package's own test, against the installed tool
        own = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")],
                             capture_output=True, text=True, env={**os.environ}, cwd=tmp_path)
        assert own.returncode == 0, own.stdout + own.stderr


def test_a_bad_plugin_name_is_a_one_line_error(workspace, run_bench):
    out = run_bench("new-plugin", "Bad Name", cwd=workspace)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Bad Name" in out.stderr
