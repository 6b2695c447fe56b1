"""The runner: failure isolation, time limits, skipping finished cells, surviving SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pandas as pd

import paying
from bench.cli import main
from bench.results import ResultsStore


def rows(workspace):
    return pd.read_parquet(workspace / "results")


def test_a_failing_compressor_writes_failed_rows_and_the_run_goes_on(third_party, workspace, capsys):
    code = main(["run", "--tasks", "toy-digits", "--compressors", "toy-sign,dense", "--bounds", "occam",
                 "--set", "compressor.toy-sign.fail=true", "--no-leaderboard"])
    assert code == 1  # some cells failed
    df = rows(workspace)
    failed = df[df["compressor"] == "toy-sign"]
    assert list(failed["status"]) == ["failed"]
    assert "told to fail" in failed["error"].iloc[0]
    assert list(df.loc[df["compressor"] == "dense", "status"]) == ["ok"]


def test_cell_time_limit(third_party, workspace):
    code = main(["run", "--tasks", "toy-digits", "--compressors", "toy-sign", "--bounds", "occam",
                 "--set", "compressor.toy-sign.delay=5", "--cell-timeout", "0.5", "--no-leaderboard"])
    assert code == 1
    df = rows(workspace)
    assert list(df["status"]) == ["failed"] and "time limit" in df["error"].iloc[0]


def test_a_bound_that_does_not_apply_is_skipped(workspace):
    code = main(["run", "--tasks", "linear-regression", "--compressors", "dense", "--bounds", "occam",
                 "--set", "task.linear-regression.recipe.epochs=5", "--no-leaderboard"])
    assert code == 0
    df = rows(workspace)
    assert list(df["status"]) == ["skipped"] and "classification" in df["error"].iloc[0]


def test_the_leaderboard_says_in_one_line_per_compressor_which_pairs_do_not_apply(third_party, workspace, capsys):
    assert main(["run", "--tasks", "toy-digits", "--compressors", "prior,dense,toy-sign", "--bounds", "occam,catoni",
                 "--set", "compressor.toy-sign.fail=true", "--no-leaderboard"]) == 1
    capsys.readouterr()
    assert main(["leaderboard"]) == 0
    out = capsys.readouterr().out
    skipped = out.split("### Skipped: these pairs do not apply to the task")[1]
    lines = [line for line in skipped.splitlines() if line.startswith("| prior")]
    assert len(lines) == 1 and "prior × catoni, occam: needs a data-dependent prior" in lines[0]  # two cells, one line
    failed = out.split("### Failed cells")[1].split("###")[0]
    assert failed.count("| toy-sign") == 2 and "told to fail" in failed and "prior" not in failed


def test_rerun_skips_finished_cells_and_each_pays_its_configuration(third_party, workspace):
    argv = ["run", "--tasks", "toy-digits", "--compressors", "toy-sign", "--bounds", "occam,catoni",
            "--set", "compressor.toy-sign.variant=[0,1,2,3]", "--no-leaderboard"]
    assert main(argv) == 0
    first = rows(workspace)
    assert len(first) == 8 and (first["status"] == "ok").all()
    assert paying.charged_as_coded(first, workspace / "results") and (first["config_code"] == "1").all()
    assert main(argv) == 0
    assert len(rows(workspace)) == 8  # nothing ran again
    assert main([*argv[:-3], "--set", "compressor.toy-sign.variant=2", "--no-leaderboard"]) == 0
    assert len(rows(workspace)) == 8  # a narrowed grid is the same configurations: nothing to do


def test_sigkill_mid_run_then_rerun_completes_every_cell_once(third_party, workspace, bench_script):
    argv = [str(bench_script), "run", "--tasks", "toy-digits", "--compressors", "toy-sign", "--bounds", "occam,catoni",
            "--set", "compressor.toy-sign.delay=1.5", "--set", "compressor.toy-sign.variant=[0,1,2,3,4,5]",
            "--no-leaderboard"]
    proc = subprocess.Popen(argv, cwd=workspace, env={**os.environ}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    results = workspace / "results"
    deadline = time.time() + 300
    store = ResultsStore(results)
    while time.time() < deadline and not store.row_files():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = pd.read_parquet(results)  # readable after the kill
    assert 1 <= len(partial) < 12
    done = subprocess.run(argv, cwd=workspace, env={**os.environ}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    df = pd.read_parquet(results)
    ok = df[df["status"] == "ok"]
    assert ok["cell_id"].nunique() == 12
    assert (ok.groupby("cell_id").size() == 1).all()  # every finished cell exactly once
    assert set(partial["cell_id"]) <= set(ok["cell_id"])
    assert not list(results.rglob(".tmp-*")) and not list((results / "_claims").glob("*.*"))  # swept
    assert all((d / "meta.json").exists() for d in (results / "_artifacts").iterdir())


def test_same_configuration_and_seed_give_the_same_message_bytes(workspace):
    import json

    for folder in ("a", "b"):
        assert main(["run", "--compressors", "quantize", "--bounds", "occam", "--results", folder,
                     "--no-leaderboard"]) == 0
    digests = {}
    for folder in ("a", "b"):
        metas = sorted((workspace / folder / "_artifacts").glob("*/meta.json"))
        digests[folder] = [json.loads(p.read_text())["sha256"] for p in metas]
    assert len(digests["a"]) == 2 and digests["a"] == digests["b"]


def test_a_certificate_below_its_targets_test_error_is_refuted(workspace):
    from bench import leaderboard
    from bench.rows import target_columns

    assert main(["run", "--compressors", "dense", "--bounds", "occam", "--no-leaderboard"]) == 0
    df = rows(workspace)
    assert leaderboard.refuted_rows(df) == [] and not df["refuted"].any()
    row = df.iloc[0]
    k, m = int(row["test_errors"]), int(row["n_test"])
    # just above the Clopper–Pearson lower limit: stands; below it: refuted
    from bench.kit.bounds import clopper_pearson_lower

    limit = clopper_pearson_lower(k, m, 0.05)
    assert not target_columns(k, m, k / m, limit * 1.001, "certificate", 0.05)["refuted"]
    assert target_columns(k, m, k / m, limit * 0.999, "certificate", 0.05)["refuted"]
    assert not target_columns(k, m, k / m, 0.0, "expectation", 0.05)["refuted"]  # only certificates
    df.loc[:, "refuted"] = True
    [line] = leaderboard.refuted_rows(df)
    assert "refuted" in line and df["cell_id"].iloc[0] in line


def test_the_repository_results_folder_reads_with_its_note(workspace):
    """The folder kept in git holds a note; pandas and the runner must read past it."""
    import shutil
    from pathlib import Path

    (workspace / "results").mkdir()
    shutil.copy(Path(__file__).parents[1] / "results" / "_README.md", workspace / "results")
    assert main(["run", "--compressors", "dense", "--bounds", "occam", "--no-leaderboard"]) == 0
    assert main(["run", "--compressors", "dense", "--bounds", "occam", "--no-leaderboard"]) == 0  # rereads
    df = pd.read_parquet(workspace / "results")
    assert len(df) == 1 and df["status"].iloc[0] == "ok"
