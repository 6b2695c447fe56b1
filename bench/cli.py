"""bench: compress neural networks and compute the generalization bounds their messages buy."""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

# subcommand -> (module, configure function, run function)
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("bench.commands.run", "configure", "run"),
    "init": ("bench.commands.init", "configure", "run"),
    "list": ("bench.commands.listing", "configure", "run"),
    "plugins": ("bench.commands.listing", "configure_plugins", "run_plugins"),
    "leaderboard": ("bench.commands.leaderboard", "configure", "run"),
    "verify": ("bench.commands.verify", "configure", "run"),
    "report": ("bench.commands.report", "configure", "run"),
    "new-plugin": ("bench.commands.new_plugin", "configure", "run"),
    "calc": ("bench.calc", "configure", "run"),
}
HELP = {
    "run": "run tasks x seeds x compressors x bounds and write the results table",
    "init": "write a commented bench.toml (the built-in default profile) to start from",
    "list": "list registered tasks, datasets, models, compressors and bounds with their parameters",
    "plugins": "list the loaded plugins, their versions and any load errors",
    "leaderboard": "print ranked tables of the results",
    "verify": "decode a cell's stored message, re-evaluate it and recompute its bound",
    "report": "write the results as a self-contained web page with plots",
    "new-plugin": "write a working third-party plugin package (compressor, bound or task) to start from",
    "calc": "compute a bound from a training error, a KL (or a size in bits) and n",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, configure, run) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub_parser = sub.add_parser(name, help=HELP[name], description=HELP[name])
        getattr(module, configure)(sub_parser)
        sub_parser.set_defaults(_run=getattr(module, run))
    return parser


def main(argv: list[str] | None = None) -> int:
    from bench.errors import USER_ERRORS

    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except USER_ERRORS as exc:
        print(f"bench {args.command}: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        number = getattr(exc, "number", signal.SIGINT)  # bench.errors.Stopped carries its signal
        resume = "; run the same command again to resume" if args.command == "run" else ""
        print(f"bench {args.command}: stopped by {signal.Signals(number).name}{resume}", file=sys.stderr)
        return 128 + number
    except BrokenPipeError:  # the reader went away (`bench calc ... | head -1`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
