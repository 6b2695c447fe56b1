"""Plugins through real entry points: a third-party plugin is listed, run and ranked; a broken one is
listed with its error and stops nothing; strict mode and BENCH_LOAD_PLUGINS."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.api import hookspecs
from bench.registry import PluginError, load_registry


def test_builtins_register_through_entry_points():
    registry = load_registry()
    builtin = {p.name for p in registry.plugins if p.builtin}
    assert {"datasets", "models", "tasks", "dense", "occam", "catoni"} <= builtin
    assert "digits" in registry.names("datasets")
    assert {"dense"} <= set(registry.names("compressors"))
    assert not registry.failed()


def test_third_party_and_broken_plugins_are_listed(third_party):
    registry = load_registry()
    by_name = {p.name: p for p in registry.plugins}
    assert by_name["toy"].version == "0.3.0" and not by_name["toy"].builtin
    assert by_name["toy"].registered == {"tasks": ["toy-digits"], "compressors": ["toy-sign"]}
    assert "broken on purpose" in by_name["broken"].error
    assert "toy-sign" in registry.names("compressors")


def test_strict_mode_makes_a_broken_plugin_fatal(third_party, monkeypatch):
    monkeypatch.setenv("BENCH_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="broken"):
        load_registry()


def test_load_plugins_limits_third_party(third_party, monkeypatch):
    monkeypatch.setenv("BENCH_LOAD_PLUGINS", "")
    names = {p.name for p in load_registry().plugins}
    assert "toy" not in names and "broken" not in names and "dense" in names
    monkeypatch.setenv("BENCH_LOAD_PLUGINS", "toy")
    names = {p.name for p in load_registry().plugins}
    assert "toy" in names and "broken" not in names


@pytest.mark.slow  # the real console script, in subprocesses
def test_cli_lists_plugins_and_errors(third_party, tmp_path, run_bench):
    out = run_bench("plugins", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    records = {r["name"]: r for r in json.loads(out.stdout)}
    assert "broken on purpose" in records["broken"]["error"]
    listed = run_bench("list", "compressors", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    line = next(l for l in listed.stdout.splitlines() if l.strip().startswith("toy-sign"))
    assert "0.3.0" in line and "[toy]" in line and "sign of each weight" in line
    assert "delay = 0.0" in listed.stdout  # parameters with defaults


def test_third_party_compressor_runs_and_is_ranked(third_party, workspace, run_bench):
    out = run_bench("run", "--tasks", "toy-digits", "--compressors", "toy-sign,dense", "--bounds", "occam",
                    cwd=workspace)
    assert out.returncode == 0, out.stderr
    assert "plugin 'broken' failed to load" in out.stderr  # the broken plugin did not stop the run
    df = pd.read_parquet(workspace / "results")
    assert set(df["compressor"]) == {"toy-sign", "dense"} and (df["status"] == "ok").all()
    board = run_bench("leaderboard", cwd=workspace)
    assert board.returncode == 0
    assert "toy-sign" in board.stdout and "## toy-digits" in board.stdout


def test_every_hook_is_documented():
    """Each hookspec has a docstring, and the README documents each hook (datasette's rule)."""
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    from bench.api.contracts import KINDS

    for name in (kind.hook for kind in KINDS):
        assert getattr(hookspecs, name).__doc__, name
        assert name in readme, f"README does not document {name}"


def test_every_parameter_of_a_built_in_plugin_describes_itself():
    """`bench list` shows each parameter's description, read from its declaration: none may be blank."""
    from bench.commands.listing import listing

    blank = [f"{kind} {item['name']}: {p['name']}" for kind, items in listing(["datasets", "models", "compressors",
                                                                               "bounds", "executors"]).items()
             for item in items if item["plugin"] != "adversary" for p in item["params"] if not p["description"]]
    assert not blank, blank


def test_listing_one_plugin_marks_what_certificates_pay_for(capsys):
    from bench.cli import main

    assert main(["list", "compressors", "id"]) == 0
    out = capsys.readouterr().out
    assert "dim = null  [decoder-side, paid]  d, the dimension of the subspace z trains in" in out
    assert "\n      epochs = null  None: enough for AUTO_STEPS minibatch steps" in out  # encoder-side: free, no mark
    assert "removed options:" in out and "noise: training z against uniform noise" in out
    assert "\n  quantize " not in out and "\n  prune " not in out  # one plugin
