"""Compute a generalization bound from a training error, a KL (or a message size in bits) and n, or
the configuration bits of a configuration.

``bench calc FORM --train-err E --n N (--kl-nats KL | --bits B) [--delta D]`` with FORM one of
``catoni``, ``kl``, ``maurer``, ``binomial`` (BOUNDS.md section 2). The first line of stdout is the bound
as a fraction (a Python float literal, machine-readable); labelled ``key: value`` detail lines follow.
With ``--bits B`` the KL is the Occam point-mass KL ``(B + len_δ(B) + configuration bits)·ln 2``, where
``len_δ`` is the Elias delta length code (``--no-length-code`` drops it).

``bench calc config-bits [--config bench.toml] [--profile P] [--tasks ...] [--set ...]`` prints, for
every cell of a configuration, ``L(c)`` under the configuration code (``bench.configcode``), item by
item. Bad input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from bench.kit import bounds as bounds_math

_CONFIG_HELP = ("the configuration bits L(c) of every cell of a configuration (bench.toml, a profile, "
                "--set overrides), item by item, under the configuration code")
_FORM_HELP = {
    "catoni": "Catoni's bound (seed 002, Theorem 2.1), minimized over lambda for a fixed alpha",
    "kl": "kl inversion kl^-1(e, (KL + ln(1/delta))/n) (point mass, countable prior)",
    "maurer": "Maurer's kl inversion kl^-1(e, (KL + ln(2 sqrt(n)/delta))/n) (general posterior)",
    "binomial": "binomial tail inversion (tightest Occam form), k = n*e errors",
}


def _common_arguments() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--train-err", type=float, required=True, metavar="E",
                        help="training error rate in [0, 1]")
    common.add_argument("--n", type=int, required=True, metavar="N", help="number of training examples")
    common.add_argument("--delta", type=float, default=0.05, metavar="D",
                        help="confidence parameter in (0, 1) (default: 0.05)")
    size = common.add_mutually_exclusive_group(required=True)
    size.add_argument("--kl-nats", type=float, metavar="KL", help="the KL divergence, in nats")
    size.add_argument("--bits", type=float, metavar="B",
                      help="message length in bits; KL = (B + Elias delta(B) + hparam bits) ln 2")
    common.add_argument("--config-bits", "--hparam-bits", dest="config_bits", type=float, default=None,
                        metavar="L", help="with --bits: the configuration bits L(c) (see `bench calc "
                                          "config-bits`; default: 0)")
    common.add_argument("--no-length-code", action="store_true",
                        help="with --bits: do not add the Elias delta code of the message length")
    common.add_argument("--alpha", type=float, default=bounds_math.DEFAULT_CATONI_ALPHA, metavar="A",
                        help="catoni only (accepted and ignored by the other forms): alpha > 1, fixed "
                             f"in advance (default: {bounds_math.DEFAULT_CATONI_ALPHA})")
    return common


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``catoni``/``kl``/``maurer``/``binomial`` sub-subcommands to ``bench calc``."""
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    common = _common_arguments()
    forms = parser.add_subparsers(dest="form", required=True, metavar="FORM")
    for form in bounds_math.FORMS:
        forms.add_parser(form, parents=[common], help=_FORM_HELP[form], description=_FORM_HELP[form])
    code = forms.add_parser("config-bits", help=_CONFIG_HELP, description=_CONFIG_HELP)
    from bench.commands.run import configure as configure_run

    configure_run(code)


def _compute(args) -> list[str]:
    """The output lines; raises ValueError on bad input."""
    lines_after: list[str] = []
    if args.bits is not None:
        parts = bounds_math.occam_kl_nats(
            args.bits,
            config_bits=0.0 if args.config_bits is None else args.config_bits,
            length_code_bits=0.0 if args.no_length_code else None,
        )
        kl_nats = parts.nats
        lines_after += [
            f"message_bits: {parts.message_bits!r}",
            f"length_code_bits: {parts.length_code_bits!r}"
            + (" (none)" if args.no_length_code else " (Elias delta of the length + 1)"),
            f"config_bits: {parts.config_bits!r}",
        ]
    else:
        if args.config_bits is not None or args.no_length_code:
            raise ValueError("--config-bits and --no-length-code apply only with --bits")
        kl_nats = args.kl_nats

    detail = {"form": args.form}
    if args.form == "catoni":
        result = bounds_math.catoni_bound(args.train_err, args.n, kl_nats, args.delta, args.alpha)
        bound = result.bound
        detail["lambda"] = repr(result.lam)
        detail["alpha"] = repr(result.alpha)
    else:
        bound = bounds_math.error_bound(args.form, args.train_err, args.n, kl_nats, args.delta)
        if args.form == "binomial":
            detail["errors_k"] = str(bounds_math.errors_from_rate(args.train_err, args.n))
    detail.update(
        {
            "train_err": repr(args.train_err),
            "n": str(args.n),
            "delta": repr(args.delta),
            "kl_nats": repr(kl_nats),
        }
    )
    return [repr(bound)] + [f"{key}: {value}" for key, value in detail.items()] + lines_after


def config_bits_lines(args) -> list[str]:
    """Every cell of the configuration: its code word's length, then its items."""
    from bench.commands.run import build_config
    from bench.configbits import code_of
    from bench.configcode import CODE_VERSION
    from bench.registry import load_registry
    from bench.planning import expand_plugins, resolve_tasks
    from bench.taskconfig import task_config

    cfg = build_config(args)
    registry = load_registry()
    specs = resolve_tasks(cfg, registry)
    compressors = expand_plugins("compressors", cfg.compressors, cfg.compressor_params, registry)
    bounds = expand_plugins("bounds", cfg.bounds, cfg.bound_params, registry)
    lines = [f"# configuration code v{CODE_VERSION}: L(c) in bits, item by item"]
    for spec in specs:
        tc = task_config(spec, registry)
        for seed in cfg.seeds:
            for comp in (c for grid in compressors for c in grid):
                for bound in (b for grid in bounds for b in grid):
                    code = code_of(registry, tc, seed, cfg.delta, comp.name, comp.params, bound.name, bound.params)
                    lines.append(f"{code.length} bits: task {spec.name}, seed {seed}, compressor {comp.name} "
                                 f"{comp.params_text}, bound {bound.name} {bound.params_text}")
                    lines += [f"  {bits:>4}  {what}" for what, bits in code.itemized()]
    return lines


def run(args) -> int:
    if args.form == "config-bits":
        print("\n".join(config_bits_lines(args)))
        return 0
    try:
        lines = _compute(args)
    except ValueError as exc:
        print(f"bench calc: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0
