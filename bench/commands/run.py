"""Run the benchmark: tasks x seeds x compressors x bounds, one Parquet row per cell."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from pathlib import Path
from typing import Iterator

from bench.config import apply_assignment, checked, load_config, parse_assignment, parse_names
from bench.api.params import ConfigError
from bench.errors import Stopped


def default_config_path() -> Path | None:
    path = Path("bench.toml")
    return path if path.exists() else None


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="configuration file (default: ./bench.toml if present)")
    parser.add_argument("--profile", default="default", help="profile of the configuration file")
    parser.add_argument("--tasks", help="comma-separated task names (overrides the profile)")
    parser.add_argument("--compressors", help="comma-separated compressor names, or 'all'")
    parser.add_argument("--bounds", help="comma-separated bound names, or 'all'")
    parser.add_argument("--seeds", help="comma-separated integer seeds")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], help="where to train and evaluate")
    parser.add_argument("--delta", type=float, help="confidence parameter δ of the certificates")
    parser.add_argument("--results", type=Path, help="results folder")
    parser.add_argument("--data-dir", type=Path, help="where dataset files are (or are downloaded to)")
    parser.add_argument("--download", action="store_true", help="allow downloading datasets")
    parser.add_argument("--executor", help="where jobs run: local (default) or dask (see `bench list executors`)")
    parser.add_argument("--cell-timeout", type=float, help="seconds a compressor or bound may take")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a parameter, e.g. compressor.quantize.levels=[4,8] or executor.workers=4 (repeatable)")
    parser.add_argument("--no-leaderboard", action="store_true", help="do not print the leaderboard at the end")


def build_config(args: argparse.Namespace):
    path = args.config if args.config is not None else default_config_path()
    cfg = load_config(path, args.profile)
    if args.tasks:
        cfg.tasks = parse_names("--tasks", "tasks", args.tasks) or []
    if args.compressors:
        cfg.compressors = parse_names("--compressors", "compressors", args.compressors)
    if args.bounds:
        cfg.bounds = parse_names("--bounds", "bounds", args.bounds)
    if args.seeds:
        try:
            cfg.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
        except ValueError:
            raise ConfigError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
    if args.device:
        cfg.device = args.device
    if args.delta is not None:
        cfg.delta = checked("delta", args.delta, "--delta")
    if args.results:
        cfg.results = args.results
    if args.executor:
        if args.executor != cfg.executor:
            cfg.executor_params = {}
        cfg.executor = args.executor
    if args.cell_timeout is not None:
        cfg.cell_timeout = checked("cell_timeout", args.cell_timeout, "--cell-timeout")
    cfg.data_dir, cfg.download = args.data_dir, args.download
    for text in args.set:
        apply_assignment(cfg, *parse_assignment(text))
    return cfg


def run(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    if args.config is None and default_config_path() is None:
        print(f"no bench.toml in {Path.cwd()}: running the built-in '{cfg.profile}' profile "
              f"({', '.join(cfg.tasks)}); `bench init` writes it as a bench.toml to edit", file=sys.stderr)
    started = None
    if cfg.executor == "local":  # the worker process's imports overlap ours
        from bench.supervisor import JobSupervisor

        started = JobSupervisor.prestart()
    from bench import leaderboard, timing
    from bench.registry import load_registry
    from bench.runner import Runner

    registry = load_registry()
    for record in registry.failed():
        print(f"warning: plugin '{record.name}' failed to load: {record.error}", file=sys.stderr)
    try:
        runner = Runner(cfg, registry, argv=sys.argv, worker=started)
    except BaseException:
        if started is not None:
            started.kill()
        raise
    print(f"run {runner.run_id}: {runner.n_cells()} cells on {runner.device}, results in {cfg.results}",
          file=sys.stderr)
    start = time.perf_counter()
    with stopped_by_signals():
        summary = runner.run()
    seconds = time.perf_counter() - start
    counts = ", ".join(f"{v} {k}" for k, v in summary.counts.items())
    print(f"run {summary.run_id} finished in {seconds:.1f} s: {counts}; decoding from the prior alone "
          f"took {summary.decode_seconds:.1f} s ({100 * summary.decode_seconds / max(seconds, 1e-9):.1f} %)",
          file=sys.stderr)
    print(timing.render(summary.time_table(runner.executor.runs_here()), summary.wall_seconds), file=sys.stderr)
    for failure in summary.failures:
        print(f"  failed: {failure}", file=sys.stderr)
    df = runner.store.read()
    df = df[df["task"].isin(cfg.tasks)]
    if not args.no_leaderboard:
        print(leaderboard.render(leaderboard.build(df, ledger_counts=runner.ledger.counts(),
                                                   defaults=leaderboard.plugin_defaults(registry))))
    for line in leaderboard.floor_violations(df):
        print(f"warning: {line}", file=sys.stderr)
    refuted = leaderboard.refuted_rows(df)
    for line in refuted:
        print(f"error: {line}", file=sys.stderr)
    return 1 if summary.failures or refuted else 0


@contextlib.contextmanager
def stopped_by_signals() -> Iterator[None]:
    """SIGTERM (a batch system's notice, ``kill``) and SIGHUP (a closed terminal) stop a run the way
    Ctrl-C does: the runner ends its worker processes, releases its claims and removes what it had
    half written, so the next run resumes where this one stopped."""
    def interrupt(number: int, frame: object) -> None:
        raise Stopped(number)

    previous = {number: signal.signal(number, interrupt) for number in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
