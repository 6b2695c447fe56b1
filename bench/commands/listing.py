"""List what the loaded plugins registered (``bench list``) and the plugins themselves (``bench plugins``)."""

from __future__ import annotations

import argparse
import json

from bench.api.contracts import KINDS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?", choices=[k.plural for k in KINDS], help="only this kind")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def listing(kinds: list[str]) -> dict[str, list[dict]]:
    from bench.api.contracts import describe_params
    from bench.registry import load_registry

    registry = load_registry()
    out: dict[str, list[dict]] = {}
    for kind in kinds:
        items = []
        for name in registry.names(kind):
            entry = registry.entry(kind, name)
            obj = entry.obj
            items.append({
                "name": name, "version": obj.version, "plugin": entry.plugin,
                "description": obj.description, "params": describe_params(obj),
            })
        out[kind] = items
    return out


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in params.items()) or "-"


def run(args: argparse.Namespace) -> int:
    data = listing([args.kind] if args.kind else [k.plural for k in KINDS])
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for kind, items in data.items():
        print(f"{kind}:")
        for item in items:
            print(f"  {item['name']} {item['version']} [{item['plugin']}]  {item['description']}")
            print(f"      params: {_params_text(item['params'])}")
    return 0


def configure_plugins(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run_plugins(args: argparse.Namespace) -> int:
    from bench.registry import load_registry

    registry = load_registry()
    records = [
        {"name": p.name, "module": p.module, "distribution": p.distribution, "version": p.version,
         "builtin": p.builtin, "error": p.error, "registered": p.registered}
        for p in registry.plugins
    ]
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    for r in records:
        origin = "built-in" if r["builtin"] else r["distribution"]
        print(f"{r['name']} {r['version']} ({origin}, {r['module']})")
        if r["error"]:
            print(f"    FAILED: {r['error']}")
        for kind, names in r["registered"].items():
            print(f"    {kind}: {', '.join(names)}")
    return 0
