"""Mutation scores of the certificate path from ``mutmut results --all true`` (``make mutation``).

    python benchmarks/mutation_scores.py mutation-results.txt [--equivalents mutation-equivalents.md]

Groups: the bounds arithmetic (``bench.kit.bounds``), the bound plugins (occam, catoni, mi, hessian),
the message layout (``bench.kit.quantization``) and the row assembly (``bench.rows``). A mutant listed in
the equivalents file (a line starting with its name in backticks, then the reason) is left out of the
denominator: no test can kill a mutant that computes the same thing.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter, defaultdict
from pathlib import Path

GROUPS = {
    "bounds arithmetic": ("bench.kit.bounds.",),
    "bound plugins": ("plugins.occam.", "plugins.catoni.", "plugins.mi.", "plugins.hessian."),
    "message layout": ("bench.kit.quantization.",),
    "row assembly": ("bench.rows.",),
}
TARGETS = {"bounds arithmetic": 0.9, "bound plugins": 0.9, "message layout": 0.8, "row assembly": 0.8}
LINE = re.compile(r"^\s*([\w.]+__mutmut_\d+):\s*(.+?)\s*$")


def read(results: Path) -> dict[str, str]:
    out = {}
    for line in results.read_text().splitlines():
        m = LINE.match(line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def equivalents(path: Path) -> set[str]:
    if not path.exists():
        return set()
    return set(re.findall(r"^\s*[-*]?\s*`([\w.]+__mutmut_\d+)`", path.read_text(), re.M))


def scores(status: dict[str, str], equivalent: set[str]) -> dict[str, dict]:
    table: dict[str, Counter] = defaultdict(Counter)
    for name, state in status.items():
        group = next((g for g, prefixes in GROUPS.items() if name.startswith(prefixes)), None)
        if group is None:
            continue
        table[group]["equivalent" if name in equivalent and state != "killed" else state] += 1
    out = {}
    for group, counts in table.items():
        counted = sum(v for k, v in counts.items() if k not in ("equivalent", "skipped"))
        # a mutant that makes the tests hang is detected too: pytest-timeout fails CI on it
        detected = counts["killed"] + counts["timeout"]
        out[group] = {"killed": detected, "counted": counted, "equivalent": counts["equivalent"],
                      "score": detected / counted if counted else float("nan"), "states": dict(counts)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--equivalents", type=Path, default=Path(__file__).resolve().parents[1] / "mutation-equivalents.md")
    args = parser.parse_args()
    table = scores(read(args.results), equivalents(args.equivalents))
    for group in GROUPS:
        if group not in table:
            continue
        row = table[group]
        mark = "ok" if row["score"] >= TARGETS[group] else "BELOW TARGET"
        print(f"{group:>18}: {row['killed']}/{row['counted']} killed or timed out = {100 * row['score']:.1f} % "
              f"(target {100 * TARGETS[group]:.0f} %: {mark}); equivalent left out: {row['equivalent']}; {row['states']}")


if __name__ == "__main__":
    main()
