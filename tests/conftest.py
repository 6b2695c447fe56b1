"""Shared fixtures: an isolated model cache, a small workspace with its own bench.toml, the real
``bench`` entry point, and the third-party plugin fixtures installed through ``.dist-info`` folders."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _alias_plugins_under_mutmut() -> None:
    """Under mutation testing (``make mutation``) the suite runs from mutmut's ``mutants/`` copy,
    where the built-in plugins are the ``plugins`` package: make ``bench_plugins.X`` that copy, so the
    mutated plugins are the ones tested (the installed package maps ``bench_plugins`` to the original)."""
    root = Path(__file__).resolve().parents[1]
    if root.name != "mutants":
        return
    # mutmut forks a child per mutant from a parent that has already run tests; an OpenMP thread team
    # started in the parent does not survive fork (the child spins until its CPU limit), so one thread.
    import torch
    torch.set_num_threads(1)
    for path in sorted((root / "plugins").glob("*.py")):
        name = "plugins" if path.stem == "__init__" else f"plugins.{path.stem}"
        sys.modules["bench_plugins" + name[len("plugins"):]] = importlib.import_module(name)


_alias_plugins_under_mutmut()

FIXTURE_SITE = Path(__file__).parent / "fixtures" / "site"
BENCH = Path(sys.executable).parent / "bench"

TINY_TASK_TOML = """
[tasks.tiny]
dataset = "digits"
model = "mlp"
model_params = { widths = [16] }
recipe = { epochs = 5, batch_size = 128, lr = 0.01 }
"""

WORKSPACE_TOML = TINY_TASK_TOML + """
[profiles.default]
tasks = ["tiny"]
seeds = [0]
compressors = ["dense", "quantize"]
bounds = ["occam", "catoni"]

[profiles.default.compressor.quantize]
levels = [2, 4]
"""


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(tmp_path_factory: pytest.TempPathFactory):
    """Every test shares one model cache (so each base model trains once) outside the user's home."""
    os.environ["BENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["BENCH_PROGRESS"] = "0"
    os.environ.pop("BENCH_LOAD_PLUGINS", None)
    os.environ.pop("BENCH_STRICT_PLUGINS", None)
    yield


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a small bench.toml, as the current directory."""
    (tmp_path / "bench.toml").write_text(WORKSPACE_TOML)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def third_party(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make the fixture plugins (one working, one broken) discoverable through entry points."""
    monkeypatch.syspath_prepend(str(FIXTURE_SITE))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FIXTURE_SITE), os.environ.get("PYTHONPATH", "")]))
    importlib.invalidate_caches()
    return FIXTURE_SITE


def _run_bench(*args: str, cwd: Path, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(BENCH), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ}, **kwargs)


@pytest.fixture
def run_bench():
    """The real console script, in a subprocess: ``run_bench("run", ..., cwd=folder)``."""
    return _run_bench


@pytest.fixture
def bench_script() -> Path:
    """The path of the real ``bench`` console script (for tests that start and kill it themselves)."""
    return BENCH


@pytest.fixture(scope="session")
def tiny_task_toml() -> str:
    """A ``bench.toml`` fragment defining the small digits task ``tiny``."""
    return TINY_TASK_TOML


@pytest.fixture
def one_thread():
    """One thread for torch and for scikit-learn's k-means during the test (tiny convolutions are many
    times slower with two on a busy 2-core machine; reductions stay deterministic), restored after."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items) -> None:
    """End-to-end tests (those that run the harness in a workspace) are ``slow``; ``make test-fast``
    leaves them out."""
    for item in items:
        if "workspace" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
