"""Decode a cell's stored message, re-evaluate the model and recompute the bound; exit 1 on a difference."""

from __future__ import annotations

import argparse
from pathlib import Path



def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cell_ids", nargs="+", metavar="CELL_ID", help="cell id (or a unique prefix)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="results folder")
    parser.add_argument("--data-dir", type=Path, help="where dataset files are")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")


def run(args: argparse.Namespace) -> int:
    from bench.registry import load_registry
    from bench.sandbox import Decoder
    from bench.verify import verify_cell

    registry = load_registry()
    status = 0
    decoder = Decoder()  # one zygote; every message is decoded in a fresh process forked from it
    try:
        for cell_id in args.cell_ids:
            report = verify_cell(cell_id, args.results, registry, args.data_dir, args.device, decoder)
            print(report.text())
            status = status or (0 if report.ok else 1)
    finally:
        decoder.close()
    return status
