"""Print ranked tables of the results: certificates by error bound, then the other kinds."""

from __future__ import annotations

import argparse
from pathlib import Path



def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, default=Path("results"), help="results folder")
    parser.add_argument("--task", help="only this task")
    parser.add_argument("--format", choices=["markdown", "csv", "html"], default="markdown")


def run(args: argparse.Namespace) -> int:
    from bench import leaderboard
    from bench.ledger import Ledger
    from bench.results import ResultsStore

    df = ResultsStore(args.results).read()
    if df.empty:
        print(f"no results in {args.results}")
        return 0
    from bench.registry import load_registry

    boards = leaderboard.build(df, args.task, Ledger(args.results).counts(), leaderboard.plugin_defaults(load_registry()))
    if not boards:
        print(f"no results for task '{args.task}' in {args.results}")
        return 0
    print(leaderboard.render(boards, args.format))
    return 0
