"""The ``bench`` command line: one subcommand per module, each exposing ``configure`` and ``run``."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand name -> module that implements it (``configure(parser)`` and ``run(args) -> int``)
SUBCOMMANDS: dict[str, str] = {
    "calc": "bench.calc",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub_parser = sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        module.configure(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
