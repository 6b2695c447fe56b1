"""Print ranked tables of the results: certificates by error bound, then the other kinds."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, action="append", default=None,
                        help="results folder (repeat to merge several: every row pays its own configuration "
                             "bits, so rows from anywhere rank together)")
    parser.add_argument("--task", help="only this task")
    parser.add_argument("--with-reference", action="store_true",
                        help="rank these rows among the reference board that ships with the project (reference/)")
    parser.add_argument("--format", choices=["markdown", "csv", "html"], default="markdown")
    parser.add_argument("--anchors", action="store_true",
                        help="print the published certificates on each task's dataset beside its headline")


def run(args: argparse.Namespace) -> int:
    from bench import leaderboard
    from bench.boards import read_board, with_reference
    from bench.registry import load_registry

    folders = args.results or [Path("results")]
    board = read_board(with_reference(folders) if args.with_reference else folders)
    if board.empty:
        print(f"no results in {board.where()}")
        return 0
    boards = leaderboard.build(board.rows, args.task, board.counts, leaderboard.plugin_defaults(load_registry()),
                               board.ledger_note, board.anchors() if args.anchors else None)
    if not boards:
        print(f"no results for task '{args.task}' in {board.where()}")
        return 0
    print(leaderboard.render(boards, args.format))
    return 0
