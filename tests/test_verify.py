"""``bench verify``: a digits run's cells agree; a corrupted message fails cleanly, without a traceback."""

from __future__ import annotations

import pandas as pd
import pytest

from bench.cli import main


@pytest.fixture
def finished_run(workspace):
    assert main(["run", "--no-leaderboard"]) == 0
    return workspace, pd.read_parquet(workspace / "results")


def test_verify_agrees_on_every_ok_cell(finished_run, capsys):
    workspace, df = finished_run
    ok = df[df["status"] == "ok"]
    assert len(ok) == 6
    assert (ok.loc[ok["bound_kind"] == "certificate", "error_bound"] >= ok["test_err"]).all()
    capsys.readouterr()
    assert main(["verify", *ok["cell_id"]]) == 0
    out = capsys.readouterr().out
    assert out.count("AGREES") == 6 and "DIFFERS" not in out


def test_verify_fails_cleanly_on_a_corrupted_message(finished_run, run_bench):
    workspace, df = finished_run
    row = df[(df["compressor"] == "quantize") & (df["bound"] == "occam")].iloc[0]
    path = workspace / "results" / "_artifacts" / row["artifact_id"] / "message.bin"
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[: len(data) // 2]))  # truncated
    out = run_bench("verify", row["cell_id"], cwd=workspace)
    assert out.returncode == 1
    assert "DIFFERS" in out.stdout and "decoding the stored message from the prior alone failed" in out.stdout
    assert "BAD message sha256" in out.stdout
    assert "Traceback" not in out.stdout + out.stderr
    data[len(data) // 3] ^= 0xFF  # a flipped byte in a full-length message
    path.write_bytes(bytes(data))
    out = run_bench("verify", row["cell_id"][:10], cwd=workspace)  # a unique prefix works too
    assert out.returncode == 1 and "Traceback" not in out.stdout + out.stderr


def test_verify_unknown_cell_is_a_one_line_error(finished_run, capsys):
    assert main(["verify", "nonexistent"]) == 2
    assert "no ok row for cell 'nonexistent'" in capsys.readouterr().err


def test_verify_exits_1_when_the_installed_plugin_version_differs(finished_run, capsys, monkeypatch):
    from bench_plugins.occam import Occam

    workspace, df = finished_run
    row = df[df["bound"] == "occam"].iloc[0]
    monkeypatch.setattr(Occam, "version", "9.9.9")
    capsys.readouterr()
    assert main(["verify", row["cell_id"]]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS" in out and "BAD bound version" in out and "9.9.9" in out


def test_verify_re_derives_configuration_bits_and_checks_the_layers(finished_run, capsys):
    import numpy as np
    import pyarrow.parquet as pq

    workspace, df = finished_run
    row = df[(df["compressor"] == "quantize") & (df["bound"] == "occam")].iloc[0]
    paid = row["config_bits"]
    assert paid > 16  # the workspace's MLP and quantize's own values are paid
    [path] = [p for p in (workspace / "results").glob("*.parquet")
              if pq.read_table(p).column("cell_id").to_pylist() == [row["cell_id"]]]
    table = pq.read_table(path).to_pandas()
    table["config_bits"] = 0.0  # a row that claims it paid nothing for its configuration
    table.to_parquet(path)
    capsys.readouterr()
    assert main(["verify", row["cell_id"]]) == 1
    out = capsys.readouterr().out
    assert f"BAD configuration bits: stored 0.0, recomputed {paid}" in out and "ledger: 6 configurations" in out
    assert "configuration bits recomputed under configuration code v1: " in out
    layers = workspace / "results" / "_artifacts" / row["artifact_id"] / "layers.npz"
    with np.load(layers) as arrays:
        data = dict(arrays)
    data["0.codebook"] = data["0.codebook"] + 1.0  # a claimed codebook that is not the decoded one
    np.savez(layers, **data)
    assert main(["verify", row["cell_id"]]) == 1
    assert "BAD layers (S, C, Q) against the decoded message" in capsys.readouterr().out
