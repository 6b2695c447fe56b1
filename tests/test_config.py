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
])
def test_cli_errors_are_one_line(workspace, capsys, argv, fragment):
    assert main(["run", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert fragment in err
    assert not (workspace / "results").exists() or not any((workspace / "results").glob("*.parquet"))
