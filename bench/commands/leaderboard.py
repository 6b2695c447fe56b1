"""Print ranked tables of the results: certificates by error bound, then the other kinds."""

from __future__ import annotations

import argparse
from pathlib import Path



def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, action="append", default=None,
                        help="results folder (repeat to merge several: every row pays its own configuration "
                             "bits, so rows from anywhere rank together)")
    parser.add_argument("--task", help="only this task")
    parser.add_argument("--format", choices=["markdown", "csv", "html"], default="markdown")


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from bench import leaderboard
    from bench.ledger import merged_counts
    from bench.results import ResultsStore

    folders = args.results or [Path("results")]
    where = ", ".join(map(str, folders))
    frames = [f for f in (ResultsStore(folder).read() for folder in folders) if not f.empty]
    if not frames:
        print(f"no results in {where}")
        return 0
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    from bench.registry import load_registry

    boards = leaderboard.build(df, args.task, merged_counts(folders), leaderboard.plugin_defaults(load_registry()))
    if not boards:
        print(f"no results for task '{args.task}' in {where}")
        return 0
    print(leaderboard.render(boards, args.format))
    return 0
