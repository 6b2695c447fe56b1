"""List what the loaded plugins registered (``bench list``) and the plugins themselves (``bench plugins``).

Each parameter is shown with its default, the one-line description its declaration carries (the comment
on its line in the plugin's parameter dataclass) and, for compressors, bounds and datasets, whether every
certificate pays for it in its configuration bits (``paid``: decoder-side, prior-side, sample-shaping)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
from typing import Any

from bench.api.contracts import KINDS

PAID = {"compressors": "decoder-side, paid", "bounds": "prior-side, paid", "datasets": "shapes the sample, paid"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", nargs="?", choices=[k.plural for k in KINDS], help="only this kind")
    parser.add_argument("name", nargs="?", help="only this one, in full")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def param_docs(params_cls: type) -> dict[str, str]:
    """Each field's description: the comment on its declaration's line, with the comment lines that
    follow it (a subclass's declaration wins over its base's)."""
    docs: dict[str, str] = {}
    for klass in reversed(getattr(params_cls, "__mro__", ())):
        if not dataclasses.is_dataclass(klass) or klass is object:
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        current = None
        for line in lines:
            field = re.match(r"^    (\w+)\s*:(?!.*ClassVar).*?(?:#\s*(.*))?$", line)
            if field:
                current = field.group(1)
                own = (field.group(2) or "").strip()
                docs[current] = own or docs.get(current, "")  # an override without words keeps its base's
            elif current and re.match(r"^    #", line):
                docs[current] = f"{docs[current]} {line.strip()[1:].strip()}".strip()
            else:
                current = None
    return docs


def describe(kind: str, entry: Any) -> dict[str, Any]:
    from bench.api.contracts import describe_params

    obj = entry.obj
    item: dict[str, Any] = {"name": getattr(obj, "name", ""), "version": obj.version, "plugin": entry.plugin,
                            "description": obj.description}
    params = describe_params(obj)
    if isinstance(obj, type) and dataclasses.is_dataclass(getattr(obj, "Params", None)):
        docs, paid = param_docs(obj.Params), obj.paid_params()
        item["params"] = [{"name": k, "default": v, "description": docs.get(k, ""),
                           "paid": kind in PAID and (paid is None or k in paid)} for k, v in params.items()]
        item["retired"] = dict(getattr(obj.Params, "RETIRED", {}))
    else:
        item["params"] = [{"name": k, "default": v, "description": "", "paid": False} for k, v in params.items()]
    return item


def listing(kinds: list[str], name: str | None = None) -> dict[str, list[dict]]:
    from bench.registry import load_registry

    registry = load_registry()
    out: dict[str, list[dict]] = {}
    for kind in kinds:
        names = [registry.entry(kind, name).obj.name if kind != "tasks" else name] if name else registry.names(kind)
        out[kind] = [describe(kind, registry.entry(kind, n)) for n in names]
    return out


def _param_line(kind: str, p: dict[str, Any], full: bool) -> str:
    mark = f"  [{PAID[kind]}]" if p["paid"] else ""
    text = p["description"] if full else p["description"][:90] + ("…" if len(p["description"]) > 90 else "")
    return f"      {p['name']} = {json.dumps(p['default'])}{mark}" + (f"  {text}" if text else "")


def run(args: argparse.Namespace) -> int:
    if args.name and not args.kind:
        raise SystemExit("bench list: give the kind before the name, e.g. `bench list compressors id`")
    data = listing([args.kind] if args.kind else [k.plural for k in KINDS], args.name)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for kind, items in data.items():
        print(f"{kind}:")
        for item in items:
            print(f"  {item['name']} {item['version']} [{item['plugin']}]  {item['description']}")
            for p in item["params"]:
                print(_param_line(kind, p, full=bool(args.name)))
            if args.name and item.get("retired"):
                print("    removed options:")
                for option, why in item["retired"].items():
                    print(f"      {option}: {why}")
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
