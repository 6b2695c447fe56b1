"""Parameter validation (errors name the key) and grid expansion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from bench.api.params import ConfigError, build_params, content_hash, expand_grid


@dataclass(frozen=True)
class P:
    levels: int = 4
    lr: float = 0.1
    init: Literal["linear", "kmeans++"] = "linear"
    widths: tuple[int, ...] = (8, 8)
    flag: bool = False
    cap: float | None = None

    def validate(self) -> None:
        if self.levels < 1:
            raise ValueError("parameter 'levels' must be >= 1")


def test_defaults_and_conversion():
    p = build_params(P, {"lr": 1, "widths": [3, 4]}, owner="x")
    assert p.lr == 1.0 and isinstance(p.lr, float)
    assert p.widths == (3, 4)


@pytest.mark.parametrize("values, fragment", [
    ({"levls": 3}, "unknown parameter 'levls' (known: cap, flag, init, levels, lr, widths)"),
    ({"levels": "3"}, "parameter 'levels' must be an integer"),
    ({"levels": True}, "parameter 'levels' must be an integer"),
    ({"init": "random"}, "parameter 'init' must be one of 'linear', 'kmeans++'"),
    ({"widths": 3}, "parameter 'widths' must be a list"),
    ({"flag": 1}, "parameter 'flag' must be true or false"),
    ({"levels": 0}, "parameter 'levels' must be >= 1"),
])
def test_errors_name_the_key(values, fragment):
    with pytest.raises(ConfigError) as err:
        build_params(P, values, owner="compressor 'q'")
    assert str(err.value).startswith("compressor 'q': ")
    assert fragment in str(err.value)


def test_optional_accepts_none_and_value():
    assert build_params(P, {"cap": None}, owner="x").cap is None
    assert build_params(P, {"cap": 2}, owner="x").cap == 2.0


def test_grid_expansion_counts_the_product():
    grid = expand_grid(P, {"levels": [2, 4, 8], "lr": [0.1, 0.01], "init": "linear"}, owner="x")
    assert len(grid) == 6
    assert {(g["levels"], g["lr"]) for g in grid} == {(l, r) for l in (2, 4, 8) for r in (0.1, 0.01)}


def test_sequence_parameter_is_a_value_not_a_grid():
    assert expand_grid(P, {"widths": [16, 16]}, owner="x") == [{"widths": [16, 16]}]
    grid = expand_grid(P, {"widths": [[16], [32, 32]]}, owner="x")
    assert [g["widths"] for g in grid] == [[16], [32, 32]]


def test_grid_validates_every_point():
    with pytest.raises(ConfigError, match="'levels' must be >= 1"):
        expand_grid(P, {"levels": [2, 0]}, owner="x")
    with pytest.raises(ConfigError, match="empty grid"):
        expand_grid(P, {"levels": []}, owner="x")


def test_content_hash_is_order_independent():
    assert content_hash({"a": 1, "b": [1, 2]}) == content_hash({"b": [1, 2], "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})
