"""What a row should pay for its configuration: ``bench.configbits`` applied to the configuration the
row and its artifact record (the configuration code itself has by-hand known answers in
``test_configcode.py``; here the question is whether the runner charged it)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.configbits import code_of
from bench.registry import load_registry

def expected_config_bits(row, results: Path, registry=None) -> int:
    registry = registry or load_registry()  # loaded now: a test may have installed a third-party plugin
    meta = json.loads((Path(results) / "_artifacts" / row["artifact_id"] / "meta.json").read_text())
    return code_of(registry, meta["task"], int(row["seed"]), float(row["delta"]), row["compressor"],
                   json.loads(row["compressor_params"]), row["bound"], json.loads(row["bound_params"])).length


def charged_as_coded(df, results: Path) -> bool:
    """Every ok row pays exactly its configuration's code word."""
    ok = df[df["status"] == "ok"]
    registry = load_registry()
    return len(ok) > 0 and all(row["config_bits"] == expected_config_bits(row, results, registry)
                               for _, row in ok.iterrows())
