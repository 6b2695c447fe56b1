"""Itemized bits (``bench.bitsbar``): the items of a row always add up to what its bound charged
(``kl_nats``), the message is split into the sections the compressor declared, and a PAC-Bayes row's
posterior KL or robustness adjustment shows as its own item."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from bench.bitsbar import bit_items, bits_bar

LN2 = math.log(2.0)


def row(kl_bits: float, message: float, length: float, config: float, adjustment_bits: float = 0.0):
    return SimpleNamespace(kl_nats=kl_bits * LN2, message_bits=message, length_code_bits=length, config_bits=config,
                           adjustment_nats=adjustment_bits * LN2)


def total(items) -> float:
    return sum(bits for _, bits in items)


def test_a_point_mass_row_is_its_sections_length_code_and_configuration():
    items = bit_items(row(1000 + 23 + 40, 1000, 23, 40), [["codebook", 300], ["indices", 700]])
    assert items == [("message: codebook", 300.0), ("message: indices", 700.0),
                     ("length code", pytest.approx(23.0)), ("configuration", 40.0)]


def test_undeclared_or_mismatched_sections_show_as_one_message():
    """Sections that do not add up to the message (a part left undeclared) are not drawn as if they did."""
    items = bit_items(row(1063, 1000, 23, 40), [["codebook", 300]])
    assert [label for label, _ in items] == ["message", "length code", "configuration"]


def test_a_robust_row_gives_bits_back_and_a_posterior_row_adds_its_kl():
    robust = bit_items(row(1063 - 200, 1000, 23, 40, adjustment_bits=-200), None)
    assert ("robustness adjustment (bits given back)", -200.0) in robust
    assert total(robust) == pytest.approx(863)
    curvature = bit_items(row(5000 + 4 + 40, 13_000_000, 40, 40, adjustment_bits=5000), None)  # no message charged
    assert [label for label, _ in curvature] == ["the rest of the KL as the bound charged it", "configuration",
                                                 "KL beyond the code (posterior)"]
    assert total(curvature) == pytest.approx(5044)


@pytest.mark.parametrize("kl, adj", [(1063, 0), (700, -363), (9000, 8000), (50, 0)])
def test_the_items_add_up_to_what_the_bound_charged(kl, adj):
    assert total(bit_items(row(kl, 1000, 23, 40, adj), [["a", 1000]])) == pytest.approx(kl)


def test_the_bar_has_a_mark_per_positive_item_and_a_legend():
    svg = bits_bar([("x + occam (10.0 %)", bit_items(row(1063, 1000, 23, 40), [["a", 400], ["b", 600]]))], "t")
    assert svg.count('id="marks-bits-0-') == 4 and "message: b" in svg and "length code" in svg
