"""Tests for ``bench calc``: the real console script (a few calls, run concurrently since each one pays
for importing the harness) and the same module in-process for the remaining cases."""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.kit import bounds as bm
from bench import calc

BENCH = Path(sys.executable).parent / "bench"

COMMON = ["--train-err", "0.02", "--n", "60000", "--delta", "0.05"]
# Each call imports the whole harness (seconds), so the real entry point gets two calls, run at once.
CLI_CALLS = {
    "catoni_bits": ["calc", "catoni", *COMMON, "--bits", "3000", "--hparam-bits", "3", "--alpha", "1.0001"],
    "bad_delta": ["calc", "kl", "--train-err", "0.02", "--n", "60000", "--kl-nats", "2093", "--delta", "2"],
}


@pytest.fixture(scope="module")
def cli_results() -> dict[str, subprocess.CompletedProcess]:
    """Run every CLI call at once; each returns a CompletedProcess-like result."""
    procs = {
        name: subprocess.Popen([str(BENCH), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, argv in CLI_CALLS.items()
    }
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return results


@pytest.mark.slow  # the real console script, in subprocesses
def test_a_reader_that_goes_away_ends_it_quietly():
    """`bench calc ... | head -1` with the pipe closed before the answer: exit 141, no traceback."""
    proc = subprocess.Popen([str(BENCH), *CLI_CALLS["catoni_bits"]], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141
    assert err == ""


def _parse(stdout: str) -> tuple[float, dict[str, str]]:
    lines = stdout.strip().splitlines()
    detail = dict(line.split(": ", 1) for line in lines[1:])
    return float(lines[0]), detail


@pytest.mark.slow  # the real console script, in subprocesses
def test_cli_catoni_with_bits_matches_library(cli_results):
    res = cli_results["catoni_bits"]
    assert res.returncode == 0, res.stderr
    bound, detail = _parse(res.stdout)
    kl = (3000 + bm.elias_delta_bits(3001) + 3) * math.log(2)
    assert float(detail["kl_nats"]) == pytest.approx(kl, rel=1e-15)
    assert float(detail["message_bits"]) == 3000
    assert float(detail["length_code_bits"].split()[0]) == 18
    assert float(detail["config_bits"]) == 3
    expected = bm.catoni_bound(0.02, 60000, float(detail["kl_nats"]), 0.05, 1.0001)
    assert bound == expected.bound
    assert 0.0 < bound < 1.0
    assert float(detail["lambda"]) == expected.lam
    assert float(detail["alpha"]) == 1.0001
    assert detail["form"] == "catoni"


@pytest.mark.slow  # the real console script, in subprocesses
def test_cli_bad_value_exits_2_with_one_line(cli_results):
    res = cli_results["bad_delta"]
    assert res.returncode == 2
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "delta" in lines[0]
    assert "Traceback" not in res.stderr


# --------------------------------------------------------------------------- in-process


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="bench calc")
    calc.configure(parser)
    code = calc.run(parser.parse_args(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("form", bm.FORMS)
def test_each_form_matches_library(form, capsys):
    # the example from the brief: bench calc FORM --train-err 0.02 --kl-nats 2093 --n 60000 --delta 0.05
    code, out, err = _run([form, *COMMON, "--kl-nats", "2093", "--alpha", "1.0001"], capsys)
    assert code == 0 and err == ""
    bound, detail = _parse(out)
    assert bound == bm.error_bound(form, 0.02, 60000, 2093.0, 0.05, alpha=1.0001)
    assert float(detail["kl_nats"]) == 2093.0
    assert detail["form"] == form
    if form == "binomial":
        assert detail["errors_k"] == "1200"


def test_alpha_is_passed_to_catoni(capsys):
    _, out, _ = _run(["catoni", *COMMON, "--kl-nats", "50", "--alpha", "2"], capsys)
    assert _parse(out)[0] == bm.catoni_bound(0.02, 60000, 50.0, 0.05, 2.0).bound


def test_no_length_code(capsys):
    code, out, _ = _run(["binomial", *COMMON, "--bits", "1000", "--no-length-code"], capsys)
    assert code == 0
    bound, detail = _parse(out)
    assert float(detail["kl_nats"]) == pytest.approx(1000 * math.log(2), rel=1e-15)
    assert float(detail["length_code_bits"].split()[0]) == 0.0
    assert bound == bm.occam_binomial_bound(0.02, 60000, 1000 * math.log(2), 0.05)


@pytest.mark.parametrize(
    "argv, word",
    [
        (["kl", "--train-err", "1.5", "--n", "100", "--kl-nats", "3"], "train_err"),
        (["kl", "--train-err", "0.1", "--n", "0", "--kl-nats", "3"], "n"),
        (["maurer", "--train-err", "0.1", "--n", "100", "--kl-nats", "-3"], "kl_nats"),
        (["catoni", "--train-err", "0.1", "--n", "100", "--kl-nats", "3", "--alpha", "1"], "alpha"),
        (["binomial", "--train-err", "0.1", "--n", "100", "--kl-nats", "3", "--delta", "nan"], "delta"),
        (["kl", "--train-err", "0.1", "--n", "100", "--kl-nats", "3", "--hparam-bits", "2"], "--bits"),
        (["kl", "--train-err", "0.1", "--n", "100", "--bits", "-1"], "message_bits"),
    ],
)
def test_bad_input_is_one_line_exit_2(argv, word, capsys):
    code, out, err = _run(argv, capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and word in err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        _run(["kl", "--train-err", "0.1", "--n", "100"], capsys)  # neither --kl-nats nor --bits
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        _run(["kl", "--train-err", "0.1", "--n", "100", "--kl-nats", "1", "--bits", "8"], capsys)
    assert exc.value.code == 2
