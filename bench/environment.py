"""Where a run happened: versions, device, git commit (for the results table and the run sidecar)."""

from __future__ import annotations

import functools
import importlib.metadata as md
import platform
import subprocess
import sys
from pathlib import Path

import torch

import bench


def resolve_device(name: str, here: bool = True) -> torch.device:
    """The device ``--device name`` means. ``here = False``: the jobs run on other machines (a remote
    dask cluster), whose GPUs this one need not have."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and here and not torch.cuda.is_available():
        from bench.api.params import ConfigError

        raise ConfigError("--device cuda was asked for, but torch sees no CUDA device (use --device cpu or auto)")
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    here = Path(bench.__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def package_versions() -> dict[str, str]:
    versions = {}
    for name in ("torch", "torchvision", "numpy", "scipy", "scikit-learn", "constriction", "pyarrow",
                 "pandas", "pluggy", "timm"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return versions


def environment(device: torch.device) -> dict[str, object]:
    info: dict[str, object] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "bench_version": bench.__version__,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda" and torch.cuda.is_available():  # (not where the jobs run on other machines)
        info["cuda_device"] = torch.cuda.get_device_name(device)
        info["cuda_version"] = torch.version.cuda
    return info
