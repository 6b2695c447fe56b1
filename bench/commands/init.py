"""Write a commented ``bench.toml`` (the built-in default profile) to start from."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.api.params import ConfigError
from bench.atomic import write_atomically
from bench.starter import BENCH_TOML


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", type=Path, default=Path("bench.toml"),
                        help="where to write it (default: ./bench.toml)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")


def run(args: argparse.Namespace) -> int:
    path: Path = args.path
    if path.exists() and not args.force:
        raise ConfigError(f"{path} exists; --force overwrites it")
    if path.exists() and path.is_dir():
        raise ConfigError(f"{path} is a folder")
    write_atomically(path, BENCH_TOML)
    print(f"wrote {path}: `bench run` runs its default profile", file=sys.stderr)
    return 0
