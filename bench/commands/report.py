"""Write the results as a self-contained web page with plots (``index.html``, no network needed)."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, default=Path("results"), help="results folder")
    parser.add_argument("--out", type=Path, default=Path("report"), help="folder to write index.html into")
    parser.add_argument("--task", help="only this task")


def run(args: argparse.Namespace) -> int:
    from bench import leaderboard, report
    from bench.registry import load_registry
    from bench.results import ResultsStore

    if ResultsStore(args.results).read().empty:
        print(f"no results in {args.results}")
        return 0
    index = report.build(args.results, args.out, args.task, leaderboard.plugin_defaults(load_registry()))
    print(f"report: {index.resolve()}")
    return 0
