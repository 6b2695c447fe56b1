"""Write the results as a self-contained web page with plots (``index.html``, no network needed)."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, action="append", default=None,
                        help="results folder (repeat to merge several into one page)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="folder to write index.html into")
    parser.add_argument("--task", help="only this task")
    parser.add_argument("--with-reference", action="store_true",
                        help="rank these rows among the reference board that ships with the project (reference/)")


def run(args: argparse.Namespace) -> int:
    from bench import leaderboard, report
    from bench.boards import read_board, with_reference
    from bench.registry import load_registry

    folders = args.results or [Path("results")]
    board = read_board(with_reference(folders) if args.with_reference else folders)
    if board.empty:
        print(f"no results in {board.where()}")
        return 0
    index = report.build(board, args.out, args.task, leaderboard.plugin_defaults(load_registry()))
    print(f"report: {index.resolve()}")
    return 0
