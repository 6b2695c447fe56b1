"""Certificate integrity against third-party plugins that break its promises (``bench_adversary``,
installed through an entry point), and the harness's own bookkeeping: exact error counts, the ledger,
refutation, quarantine of damaged results."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from bench.kit import bounds as bounds_math
from bench.cli import main
from bench.api.contracts import PRIOR_ONLY, Split
from bench.kit.evaluation import error_count, error_rate

TOY = ["--tasks", "toy-digits"]


def rows(workspace, folder: str = "results") -> pd.DataFrame:
    return pd.read_parquet(workspace / folder)


# --------------------------------------------------------------------------- decoders that cheat
def test_a_decoder_that_fetches_the_trained_model_fails_its_cell(third_party, workspace, run_bench):
    out = run_bench("run", *TOY, "--compressors", "peek-model,dense", "--bounds", "occam",
                    "--set", 'compressor.peek-model.how=["prior","cache","pth","proc"]', "--no-leaderboard",
                    cwd=workspace)
    assert out.returncode == 1, out.stderr
    df = rows(workspace)
    peek = df[df["compressor"] == "peek-model"]
    peek = peek.set_index(peek["compressor_params"].map(lambda p: json.loads(p)["how"]))
    assert (peek["status"] == "failed").all() and len(peek) == 4
    assert "Prior has no 'base_model'" in peek.loc["prior", "error"]
    assert "decode tried to read" in peek.loc["cache", "error"] and ".pt" in peek.loc["cache", "error"]
    assert "decode tried to read" in peek.loc["pth", "error"] and ".pth" in peek.loc["pth", "error"]
    # the path is resolved before the check: /proc/self/root/... is the file it leads to
    assert "decode tried to read '/proc/self/root/" in peek.loc["proc", "error"]
    for error in peek["error"]:
        assert PRIOR_ONLY in error and "peek-model" in error
    assert list(df.loc[df["compressor"] == "dense", "status"]) == ["ok"]


def test_a_forward_that_reads_state_left_by_compress_fails_its_cell(third_party, workspace, run_bench):
    """Its decoder returns the untrained initialization, its forward uses the trained weights compress
    left in a module variable: where compress never ran, the decoded model computes something else."""
    out = run_bench("run", *TOY, "--compressors", "global-state,dense", "--bounds", "occam", "--no-leaderboard",
                    cwd=workspace)
    assert out.returncode == 1, out.stderr
    df = rows(workspace)
    [cheat] = df[df["compressor"] == "global-state"].itertuples()
    assert cheat.status == "failed"
    assert "compressor 'global-state': the model decoded from the message computes other outputs" in cheat.error
    assert "state left behind by compress" in cheat.error
    assert list(df.loc[df["compressor"] == "dense", "status"]) == ["ok"]


def test_a_model_that_calls_a_noisy_layer_twice_is_refused_by_a_stochastic_bound(third_party, workspace, run_bench):
    out = run_bench("run", *TOY, "--compressors", "twice", "--bounds", "hessian,occam",
                    "--set", 'bound.hessian.form="baseline"', "--set", "bound.hessian.prior_std_grid=2",
                    "--no-leaderboard", cwd=workspace)
    assert out.returncode == 1, out.stderr
    df = rows(workspace).set_index("bound")
    assert df.loc["occam", "status"] == "ok"  # the decoded model itself is fine
    assert df.loc["hessian", "status"] == "failed"
    assert "was called twice in one forward pass" in df.loc["hessian", "error"]
    assert "noisy module '1.weight'" in df.loc["hessian", "error"]


def test_a_decoder_that_reads_the_training_data_fails_its_cell(third_party, workspace, run_bench):
    out = run_bench("run", *TOY, "--compressors", "peek-data", "--bounds", "occam",
                    "--set", 'compressor.peek-data.how=["sklearn","registry"]', "--no-leaderboard", cwd=workspace)
    assert out.returncode == 1
    df = rows(workspace)
    by_how = df.set_index(df["compressor_params"].map(lambda p: json.loads(p)["how"]))
    assert (by_how["status"] == "failed").all()
    assert "decode tried to read" in by_how.loc["sklearn", "error"] and "digits" in by_how.loc["sklearn", "error"]
    assert "decode tried to load dataset 'digits'" in by_how.loc["registry", "error"]


def test_a_decoded_model_with_non_finite_values_fails(workspace):
    """``dense`` decoding a message of NaNs: the decoding process refuses it, naming the tensor."""
    from bench.registry import load_registry
    from bench.sandbox import DecodeError, Decoder
    from bench.tasks import instantiate_task, prior_spec

    registry = load_registry()
    task = instantiate_task(registry.get("tasks", "digits-mlp"), registry)
    spec = prior_spec(task, 0, torch.device("cpu"))
    n = sum(p.numel() for p in task.build_model().state_dict().values() if p.is_floating_point())
    decoder = Decoder()
    try:
        with pytest.raises(DecodeError, match=r"compressor 'dense'.*non-finite values in '1.weight'"):
            decoder.decode("dense", "0.1.0", {}, np.full(n, np.nan, "<f4").tobytes(), spec, timeout=120)
        x = task.data.test.x[:5]
        decoded = decoder.decode("dense", "0.1.0", {}, np.zeros(n, "<f4").tobytes(), spec, timeout=120,
                                 inputs={"some": x})
        assert all(float(p.detach().abs().sum()) == 0 for p in decoded.model.parameters()) and len(decoded.digest) == 64
        assert torch.equal(decoded.outputs["some"], torch.zeros(5, 10))  # computed in the decoding process
    finally:
        decoder.close()


# ------------------------------------------------------------------------------ bounds that cheat
def test_a_bound_that_returns_another_kind_than_it_declares_fails(third_party, workspace, run_bench):
    out = run_bench("run", *TOY, "--compressors", "dense", "--bounds", "mislabeled", "--no-leaderboard",
                    cwd=workspace)
    assert out.returncode == 1
    [row] = rows(workspace).itertuples()
    assert row.status == "failed"
    assert "bound 'mislabeled' returned kind 'certificate' but declares bound_kind 'expectation'" in row.error


def test_a_bound_that_skips_the_message_fails_its_cell(third_party, workspace, run_bench):
    """Consistent with itself in every column, it certifies the decoded model with the KL of its
    configuration alone: the harness owns the message cost."""
    out = run_bench("run", *TOY, "--compressors", "dense,quantize", "--bounds", "skip-message,occam",
                    "--no-leaderboard", cwd=workspace)
    assert out.returncode == 1, out.stderr
    df = rows(workspace)
    skip = df[df["bound"] == "skip-message"]
    assert len(skip) == 3 and (skip["status"] == "failed").all()  # dense and quantize's two levels
    for error in skip["error"]:
        assert error.startswith("ContractError: bound 'skip-message' certifies the decoded model with KL")
        assert "a certificate pays for the model it certifies" in error
    assert (df.loc[df["bound"] == "occam", "status"] == "ok").all()
    assert (df["message_bits"].dropna() > 0).all()  # the rows' message is the artifact's, whatever a bound says


def test_a_zero_certificate_is_refuted_never_ranked_and_fails_the_run(third_party, workspace, run_bench):
    out = run_bench("run", *TOY, "--compressors", "dense", "--bounds", "zero,occam", cwd=workspace)
    assert out.returncode == 1
    df = rows(workspace)
    zero = df[df["bound"] == "zero"].iloc[0]
    assert zero["status"] == "ok" and bool(zero["refuted"]) and zero["target"] == "stochastic"
    assert zero["target_test_errors"] > 0 and zero["target_test_trials"] == zero["n_test"]
    assert f"cell {zero['cell_id']}" in out.stderr and "refuted" in out.stderr
    sections = {part.split("\n", 1)[0]: part for part in out.stdout.split("### ")[1:]}
    holding_zero = [title for title, text in sections.items() if "| zero " in text]
    assert len(holding_zero) == 1 and holding_zero[0].startswith("Refuted")


# -------------------------------------------------------------------------------- time limits
@pytest.mark.parametrize("how", ["python", "c"])
def test_a_compressor_that_never_returns_fails_under_the_local_executor(third_party, workspace, how, run_bench):
    out = run_bench("run", *TOY, "--compressors", "hang,dense", "--bounds", "occam", "--cell-timeout", "1",
                    "--set", f'compressor.hang.how="{how}"', "--no-leaderboard", cwd=workspace, timeout=120)
    assert out.returncode == 1
    df = rows(workspace)
    hang = df[df["compressor"] == "hang"].iloc[0]
    assert hang["status"] == "failed" and "time limit of 1 s" in hang["error"]
    if how == "c":  # deaf to SIGALRM: only killing its process stops it
        assert "its worker process was killed" in hang["error"]
    assert list(df.loc[df["compressor"] == "dense", "status"]) == ["ok"]


def test_a_compressor_that_never_returns_fails_under_dask(third_party, workspace, run_bench):
    out = run_bench("run", *TOY, "--compressors", "hang,dense", "--bounds", "occam", "--cell-timeout", "1",
                    "--set", 'compressor.hang.how=["python","c"]', "--executor", "dask",
                    "--set", "executor.workers=1", "--no-leaderboard", cwd=workspace, timeout=300)
    assert out.returncode == 1, out.stderr
    df = rows(workspace)
    hang = df[df["compressor"] == "hang"]
    assert len(hang) == 2 and (hang["status"] == "failed").all()
    assert hang["error"].str.contains("exceeded its time limit").all()
    assert list(df.loc[df["compressor"] == "dense", "status"]) == ["ok"]


# ------------------------------------------------------------------------------- exact counts
def test_error_counts_at_n_60000_are_exact():
    n, k = 60_000, 7_919
    x = torch.zeros(n, 2)
    x[:k, 1] = 1.0  # the model predicts class 1 exactly there
    y = torch.zeros(n, dtype=torch.long)
    model = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.5, 0.0], [0.0, 1.0]]))
    split = Split(x, y)
    assert error_count(model, split) == k
    assert error_rate(model, split) == k / n  # float64, not a float32 mean
    assert float(torch.tensor(k / n, dtype=torch.float32)) != k / n  # what a float32 mean would give


# -------------------------------------------------------------------------- configuration bits
def test_a_configuration_pays_the_same_bits_in_any_folder(third_party, workspace):
    """Explored in one folder, rerun alone in a fresh one: the same cell, the same bits, the same bound
    (the configuration code, not the folder's search, prices it)."""
    grid = ["run", *TOY, "--compressors", "toy-sign", "--bounds", "occam", "--no-leaderboard"]
    assert main([*grid, "--set", "compressor.toy-sign.variant=[0,1,2,3]", "--results", "explored"]) == 0
    assert main([*grid, "--set", "compressor.toy-sign.variant=2", "--results", "fresh"]) == 0
    explored, fresh = rows(workspace, "explored"), rows(workspace, "fresh")
    assert (explored["ledger_configs"] == 4).all() and (fresh["ledger_configs"] == 1).all()
    variant = explored["compressor_params"].map(lambda p: json.loads(p)["variant"])
    [same] = explored[variant == 2].itertuples()
    [again] = fresh.itertuples()
    assert (again.cell_id, again.config_bits, again.error_bound, again.kl_nats) == \
        (same.cell_id, same.config_bits, same.error_bound, same.kl_nats)
    assert len(set(explored["config_bits"])) > 1  # the variants' values cost different bits
    expected = bounds_math.occam_binomial_bound(
        again.train_err, again.n_train, (again.message_bits + again.length_code_bits + again.config_bits) * math.log(2),
        again.delta)
    assert again.error_bound == pytest.approx(expected, rel=1e-12)


def toy_folders(compressors: str, bounds: str, **variants: str) -> None:
    """One toy grid per results folder: ``a="[0,1]"`` runs toy-sign's variants 0 and 1 into ``a``."""
    grid = ["run", *TOY, "--compressors", compressors, "--bounds", bounds, "--no-leaderboard"]
    for folder, values in variants.items():
        assert main([*grid, "--set", f"compressor.toy-sign.variant={values}", "--results", folder]) == 0


def test_a_leaderboard_over_two_folders_ranks_every_row_as_it_stands(third_party, workspace, run_bench):
    toy_folders("toy-sign,dense", "occam,catoni", a="[0,1]", b="[1,5]")
    out = run_bench("leaderboard", "--results", "a", "--results", "b", "--format", "csv", cwd=workspace)
    assert out.returncode == 0, out.stderr
    board = pd.read_csv(io.StringIO(out.stdout))
    merged = pd.concat([rows(workspace, "a"), rows(workspace, "b")])
    certs = merged[(merged["bound_kind"] == "certificate") & (merged["error_bound"] < 0.99995)]
    assert merged["cell_id"].nunique() == 8  # variant 1 and dense are the same cells in both folders
    ranked = board[board["section"].str.startswith("Certificates")]
    assert len(ranked) == certs["cell_id"].nunique()  # identical cells once
    head = board[board["section"].str.startswith("Headline")].iloc[0]
    assert f"{float(head['error bound %']):.2f}" == f"{certs['error_bound'].min() * 100:.2f}"  # the best row as it stands
    assert head["configurations tried (ledger)"] == 8  # distinct configurations of both ledgers
    assert "(a: 6; b: 6; 8 in total)" in head["section"]  # 3 artifacts x 2 bounds in each folder


def test_with_reference_ranks_a_folder_among_the_shipped_board(third_party, workspace, run_bench, monkeypatch,
                                                              capsys):
    from bench import boards

    toy_folders("toy-sign", "occam", shipped="[0,1]", mine="5")
    monkeypatch.setattr(boards, "REFERENCE", workspace / "shipped")
    capsys.readouterr()
    assert main(["leaderboard", "--results", "mine", "--with-reference", "--format", "csv"]) == 2  # no README there
    assert "reference board is not at" in capsys.readouterr().err
    (workspace / "shipped" / "_README.md").write_text("# the reference board\n")
    assert main(["leaderboard", "--results", "mine", "--with-reference", "--format", "csv"]) == 0
    board = pd.read_csv(io.StringIO(capsys.readouterr().out))
    head = board[board["section"].str.startswith("Headline")].iloc[0]
    assert f"(mine: 1; {workspace / 'shipped'}: 2; 3 in total)" in head["section"]  # mine ranked among the shipped


def test_a_report_over_two_folders_drills_each_cell_down_in_its_own_folder(third_party, workspace, run_bench):
    toy_folders("toy-sign", "occam", a="[0,1]", b="[1,5]")
    out = run_bench("report", "--results", "a", "--results", "b", "--out", "page", cwd=workspace)
    assert out.returncode == 0, out.stderr
    page = (workspace / "page" / "index.html").read_text()
    a, b = rows(workspace, "a"), rows(workspace, "b")
    variant = lambda df: df["compressor_params"].map(lambda p: json.loads(p)["variant"])  # noqa: E731
    only_a = a[variant(a) == 0]["cell_id"].iloc[0]
    only_b = b[variant(b) == 5]["cell_id"].iloc[0]
    both = a[variant(a) == 1]["cell_id"].iloc[0]
    assert f"bench verify --results a {only_a}" in page and f"bench verify --results b {only_b}" in page
    assert page.count(f'id="cell-{both}"') == 1  # the same cell in both folders: one drill-down
    assert "(a: 2; b: 2; 3 in total)" in page
    assert page.count("Where the time went (") == 2  # each folder's latest run


# ------------------------------------------------------------------------------- damaged files
def test_a_truncated_row_file_is_quarantined_and_its_cell_redone(workspace, run_bench):
    argv = ["run", "--compressors", "dense", "--bounds", "occam", "--no-leaderboard"]
    assert main(argv) == 0
    [path] = list((workspace / "results").glob("*.parquet"))
    path.write_bytes(path.read_bytes()[:100])
    out = run_bench("leaderboard", cwd=workspace)
    assert out.returncode == 0 and "Traceback" not in out.stderr
    assert path.name in out.stderr and "_quarantine" in out.stderr
    assert (workspace / "results" / "_quarantine" / path.name).exists() and not path.exists()
    assert main(argv) == 0
    df = rows(workspace)
    assert len(df) == 1 and df["status"].iloc[0] == "ok"


def test_a_truncated_artifact_is_quarantined_and_its_cells_redone(workspace, capfd):
    argv = ["run", "--compressors", "quantize", "--bounds", "occam", "--no-leaderboard",
            "--set", "compressor.quantize.levels=4"]
    assert main(argv) == 0
    first = rows(workspace)
    [meta] = list((workspace / "results" / "_artifacts").glob("*/meta.json"))
    meta.write_text(meta.read_text()[:40])
    capfd.readouterr()
    assert main(argv) == 0
    assert "_quarantine" in capfd.readouterr().err
    df = rows(workspace)
    assert len(df) == 1 and (df["status"] == "ok").all()  # redone, and its row replaced: one row per cell
    assert df["started_at"].max() > first["started_at"].max()
    assert json.loads(meta.read_text())["bits"] == first["message_bits"].iloc[0]  # written again, whole
