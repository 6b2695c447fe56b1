"""bench.toml and CLI errors: one line, naming the key or listing the known names."""

from __future__ import annotations

import pytest

from bench.cli import main
from bench.config import load_config
from bench.api.params import ConfigError


def write(tmp_path, text):
    path = tmp_path / "bench.toml"
    path.write_text(text)
    return path


def test_profile_values_are_read(tmp_path):
    cfg = load_config(write(tmp_path, """
[profiles.p]
tasks = ["digits-mlp"]
seeds = [1, 2]
compressors = ["dense"]
bounds = "all"
delta = 0.01
[profiles.p.compressor.quantize]
levels = [2, 4]
[tasks.digits-mlp]
recipe = { epochs = 3 }
"""), "p")
    assert cfg.tasks == ["digits-mlp"] and cfg.seeds == [1, 2] and cfg.delta == 0.01
    assert cfg.compressors == ["dense"] and cfg.bounds is None
    assert cfg.compressor_params == {"quantize": {"levels": [2, 4]}}
    assert cfg.task_overrides == {"digits-mlp": {"recipe": {"epochs": 3}}}


@pytest.mark.parametrize("text, fragment", [
    ("[profiles.default]\ntaks = []\n", "unknown parameter 'taks' (known: bound, bounds, cell_timeout, "),
    ("[profiles.default]\nseeds = 3\n", "parameter 'seeds' must be a list"),
    ("[profiles.default]\nseeds = []\n", "parameter 'seeds' must be a non-empty list"),
    ("[profiles.default]\ndelta = 2.0\n", "profile 'default': parameter 'delta' must be < 1, got 2.0"),
    ("[profiles.default]\ndevice = \"tpu\"\n", "parameter 'device' must be one of 'auto', 'cpu', 'cuda'"),
    ("[profiles.default]\ncell_timeout = -3\n", "parameter 'cell_timeout' must be"),
    ("[profiles.default.compressor]\nquantize = 3\n", "parameter 'compressor.quantize' must be a table"),
    ("[profile.default]\n", "unknown top-level key 'profile'"),
    ("[profiles.default\n", "invalid TOML"),
    ("[profiles.default]\ntasks = [\"a\"\nseeds = [0]\n", "invalid TOML: Unclosed array (at line 3, column 1)"),
    ("[profiles.default]\ndelta = 0.05.1\n", "(at line 2, column 13)"),
])
def test_bad_config_names_the_key(tmp_path, text, fragment):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), "default")
    assert fragment in str(err.value)


def test_unknown_profile_lists_known(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown profile 'nope' \(known: a, b\)"):
        load_config(write(tmp_path, "[profiles.a]\n[profiles.b]\n"), "nope")


@pytest.mark.parametrize("argv, fragment", [
    (["--compressors", "nope"], "unknown compressor 'nope' (known: "),
    (["--bounds", "nope"], "unknown bound 'nope' (known: "),
    (["--tasks", "nope"], "unknown task 'nope' (known: "),
    (["--set", "compressor.quantize.levls=3"], "compressor 'quantize': unknown parameter 'levls' (known: "),
    (["--set", "compressor.quantize.levels=\"x\""], "parameter 'levels' must be an integer"),
    (["--set", "task.tiny.model=\"nope\""], "unknown model 'nope' (known: "),
    (["--set", "task.tiny.recipe.lr=-1"], "'lr' must be > 0"),
    (["--seeds", "a"], "--seeds must be comma-separated integers"),
    (["--delta", "1.5"], "--delta: parameter 'delta' must be < 1, got 1.5"),
    (["--results", "bench.toml"], "results folder bench.toml is a file, not a folder"),
    (["--results", "/proc/self/no-such/results"], "results folder /proc/self/no-such/results cannot be written"),
])
def test_cli_errors_are_one_line(workspace, capsys, argv, fragment):
    assert main(["run", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert fragment in err
    assert not (workspace / "results").exists() or not any((workspace / "results").glob("*.parquet"))


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_line(workspace, capsys):
    assert main(["run", "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("bench run: error: --device cuda was asked for, but torch sees no CUDA device "
                   "(use --device cpu or auto)")


@pytest.mark.slow
def test_without_bench_toml_the_builtin_default_runs(tmp_path, monkeypatch, capsys):
    """A user who installed the package and runs it in an empty folder gets the digits profile, told in
    one line, and results."""
    monkeypatch.chdir(tmp_path)
    assert load_config(None).tasks == ["digits-mlp"]
    assert main(["run", "--compressors", "dense", "--bounds", "occam", "--no-leaderboard"]) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0] == (f"no bench.toml in {tmp_path}: running the built-in 'default' profile "
                                   "(digits-mlp); `bench init` writes it as a bench.toml to edit")
    assert "1 ok" in err and any((tmp_path / "results").glob("*.parquet"))


def test_init_writes_the_builtin_profile(tmp_path, monkeypatch, capsys):
    from bench.config import read_toml

    monkeypatch.chdir(tmp_path)
    assert main(["init"]) == 0
    assert read_toml(tmp_path / "bench.toml") == read_toml(None)
    assert load_config(tmp_path / "bench.toml") == load_config(None)
    assert main(["init"]) == 2
    assert capsys.readouterr().err.strip().endswith("bench init: error: bench.toml exists; --force overwrites it")
    assert main(["init", "--force"]) == 0


def test_repository_default_profile_is_the_builtin_one():
    """The repository's bench.toml and the built-in default run the same default profile."""
    from pathlib import Path

    repo = load_config(Path(__file__).parents[1] / "bench.toml")
    repo.task_overrides = {}  # the repository defines more tasks, which the default profile does not use
    assert repo == load_config(None)


def test_every_profile_of_the_repository_builds(capsys):
    """Each profile of the shipped bench.toml validates against today's plugins: a default that changes
    under a profile (as id's did in 0.4.0) fails here, not in a user's hour-long run."""
    import tomllib
    from pathlib import Path

    path = Path(__file__).parents[1] / "bench.toml"
    profiles = tomllib.loads(path.read_text())["profiles"]
    assert len(profiles) >= 9
    for name in profiles:
        assert main(["calc", "config-bits", "--config", str(path), "--profile", name]) == 0, name
    capsys.readouterr()
