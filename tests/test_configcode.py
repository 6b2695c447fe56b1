"""The configuration code (``bench.configcode``): known answers worked out by hand, round trips, and
prefix-freeness and Kraft's inequality over generated families of configurations; then what a run
charges (``bench.configbits``): encoder-side parameters are free, decoder-side ones are paid, and the
same configuration pays the same bits in any folder."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from dataclasses import dataclass
from typing import Annotated, Literal

import pytest

from bench import configcode as cc
from bench.configbits import code_of, configuration, declarations, decoder
from bench.kit.ranges import Ge
from bench.registry import load_registry


# ------------------------------------------------------------------------------------ the pieces
@pytest.mark.parametrize("n, word", [(1, "1"), (2, "0100"), (3, "0101"), (4, "01100"), (7, "01111"),
                                     (8, "00100000"), (17, "001010001")])
def test_elias_delta_words(n, word):
    assert cc.elias_delta(n) == word
    assert cc.Reader(word).elias_delta() == n


def test_zigzag_and_signed_integers():
    assert [cc.zigzag(i) for i in (0, -1, 1, -2, 2)] == [0, 1, 2, 3, 4]
    assert all(cc.unzigzag(cc.zigzag(i)) == i for i in range(-300, 300))
    assert cc.signed(0) == "1" and cc.signed(-1) == "0100" and cc.signed(1) == "0101"


@pytest.mark.parametrize("value, parts", [(0.904, (904, -3)), (1e-4, (1, -4)), (1000.0, (1, 3)), (0.0, (0, 0)),
                                          (-2.5, (-25, -1)), (2.5e-4, (25, -5)), (1.0001, (10001, -4))])
def test_floats_are_coded_by_their_shortest_decimal_form(value, parts):
    assert cc.decimal_parts(value) == parts
    assert cc.from_decimal_parts(*parts) == value


def test_a_float_word_by_hand():
    # 0.904 = 904·10^-3: zigzag(904) = 1808, Elias delta of 1809 (11 bits long: 10 + 2·3 + 1 = 17 bits),
    # then zigzag(-3) = 5, Elias delta of 6 (3 bits long: 2 + 2·1 + 1 = 5 bits)
    assert cc.value_bits(0.904, float) == cc.elias_delta(1809) + cc.elias_delta(6)
    assert len(cc.value_bits(0.904, float)) == 22
    assert len(cc.value_bits(0.0, float)) == 1  # M = 0, no exponent


def test_values_relative_to_their_defaults():
    assert cc.value_bits(True, bool, False) == ""  # a non-default bool has one possible value
    assert cc.value_bits(True, bool) == "1"  # inside a list it needs its bit
    choice = Literal["a", "b", "c", "d", "e"]
    assert cc.value_bits("c", choice, "a") == "01"  # index 1 among the four others: 2 bits
    assert cc.value_bits("c", choice) == "010"  # index 2 among five: 3 bits
    assert cc.value_bits(None, float | None) == "0" and cc.value_bits(0.0, float | None) == "11"
    assert cc.value_bits((1, 2), tuple[int, ...]) == cc.natural(2) + cc.signed(1) + cc.signed(2)
    assert cc.value_bits("ab", str) == cc.natural(2) + format(ord("a"), "08b") + format(ord("b"), "08b")
    with pytest.raises(cc.ConfigCodeError, match="no word for the float inf"):
        cc.value_bits(math.inf, float)


# -------------------------------------------------------------------------- a generated family
@dataclass(frozen=True)
class ToyParams:
    size: Annotated[int, Ge(1)] = 8
    rate: float = 0.1
    on: bool = False
    mode: Literal["x", "y", "z"] = "x"
    step: float | None = None
    widths: tuple[int, ...] = (4,)
    tag: str = ""


TOY_VALUES = {"size": [8, 1, 9, 100, -3], "rate": [0.1, 0.0, 0.25, 3e-5], "on": [False, True], "mode": ["x", "y", "z"],
              "step": [None, 0.5, 2.0], "widths": [(4,), (), (4, 4), (16, 8, 4)], "tag": ["", "a", "zz"]}


def family() -> list[dict]:
    names = list(TOY_VALUES)
    return [dict(zip(names, combo)) for combo in itertools.product(*TOY_VALUES.values())]


def test_a_parameter_block_is_prefix_free_with_a_kraft_sum_below_one():
    decl = cc.Declaration.of(ToyParams)
    words = {"".join(bits for _, bits in cc.block_bits(decl, values, "toy")) for values in family()}
    assert len(words) == len(family())  # one word per configuration
    ordered = sorted(words)
    assert not any(b.startswith(a) for a, b in zip(ordered, ordered[1:]))  # no word is a prefix of another
    assert sum(2.0 ** -len(w) for w in words) <= 1.0
    for values in family()[::37]:
        word = "".join(bits for _, bits in cc.block_bits(decl, values, "toy"))
        back = cc.read_block(cc.Reader(word), decl)
        expected = {k: v for k, v in values.items() if not cc._same(v, decl.defaults[k])}
        assert json.loads(json.dumps(back)) == json.loads(json.dumps(expected))


def test_a_block_at_its_defaults_is_one_bit():
    decl = cc.Declaration.of(ToyParams)
    assert "".join(b for _, b in cc.block_bits(decl, dataclasses.asdict(ToyParams()), "toy")) == "1"


def test_only_the_paid_parameters_are_coded():
    paid = cc.Declaration.of(ToyParams, ("mode", "size"))
    assert paid.names == ("mode", "size")
    free = {"rate": 0.7, "on": True, "tag": "anything"}
    assert cc.block_bits(paid, {**dataclasses.asdict(ToyParams()), **free}, "toy") == [("toy: 0 parameter(s) not at "
                                                                                        "their defaults", "1")]
    with pytest.raises(cc.ConfigCodeError, match="'nope' is not a parameter"):
        cc.Declaration.of(ToyParams, ("nope",))


# ------------------------------------------------------------------------ whole configurations
@pytest.fixture(scope="module")
def registry():
    return load_registry()


TASK = {"name": "t", "dataset": "digits", "dataset_version": "0.1.0", "dataset_params": {}, "model": "mlp",
        "model_version": "0.1.0", "model_params": {}, "recipe": {"epochs": 10}}


def test_a_configuration_at_its_defaults_costs_sixteen_bits(registry):
    code = code_of(registry, TASK, 0, 0.05, "dense", {}, "occam", {"form": "binomial", "alpha": 1.0001})
    # dataset block 1, model name 3 (6 known + escape), model block 1, seed 0: 1, δ default: 1,
    # compressor name 4 (9 known + escape), its block 1, bound name 3 (4 known + escape), its block 1
    assert [bits for _, bits in code.itemized()] == [1, 3, 1, 1, 1, 4, 1, 3, 1]
    assert code.length == 16


def test_the_fashion_mnist_id_block_item_by_item(registry):
    """The README's worked example: the fashion-mnist profile's id block under occam."""
    block = {"dim": 1000, "projector": "kron", "lr": 0.1, "epochs": 40, "weight_decay": 1e-4, "scale": "init",
             "scale_power": 2.0, "quantizer": "progressive", "progressive_stages": 7, "progressive_epochs": 2,
             "progressive_lr": 0.03, "qat_epochs": 0, "codebook": "lattice", "lattice_step": "fixed", "step": 0.904,
             "symbol_code": "gaussian", "layout": "implied", "levels": 11}
    params = registry.get("compressors", "id")(**block).params_dict()
    task = {**TASK, "dataset": "fashion-mnist", "model": "lenet5"}
    code = code_of(registry, task, 0, 0.05, "id", params, "occam", {"form": "binomial", "alpha": 1.0001})
    items = dict(code.itemized())
    # 14 decoder-side parameters: a 4-bit index each; then the value. Since id 0.4.0 the block's recipe is
    # the default one but for d, the alphabet and a fixed step.
    assert items["compressor id: 4 parameter(s) not at their defaults"] == len(cc.elias_delta(5)) == 5
    assert items["compressor id: dim = 1000"] == 4 + 1 + 17  # optional: one bit, then Elias delta of 2001
    assert items["compressor id: levels = 11"] == 4 + 9  # Elias delta of 23
    assert items["compressor id: step = 0.904"] == 4 + 1 + 22  # optional: one bit, then 904·10^-3
    assert items['compressor id: lattice_step = "fixed"'] == 4 + 1  # one of the two other choices
    assert not any("scale" in what or "codebook" in what or "symbol_code" in what for what in items)
    assert code.length == 87
    assert not any("epochs" in what or "weight_decay" in what or "quantizer" in what for what in items)


def test_encoder_side_parameters_are_free_and_decoder_side_ones_are_paid(registry):
    def bits(**changes) -> int:
        params = registry.get("compressors", "id")(**changes).params_dict()
        return code_of(registry, TASK, 0, 0.05, "id", params, "occam", {}).length

    base = bits()
    for encoder_side in ({"epochs": 3}, {"lr": 0.5}, {"weight_decay": 1e-3}, {"quantizer": "gptq"},
                         {"progressive_epochs": 5}, {"init": "kmeans++"}, {"dims": (64, 128)},
                         {"step_ratios": (0.5,)}):
        assert bits(**encoder_side) == base, encoder_side
    for decoder_side in ({"dim": 300}, {"levels": 9}, {"projector": "dense"}, {"z_precision": "float32"}):
        assert bits(**decoder_side) > base, decoder_side


def test_a_data_dependent_prior_pays_for_its_recipe(registry):
    plain = code_of(registry, TASK, 0, 0.05, "prior", {}, "occam", {})
    with_prior = {**TASK, "dataset_params": {"prior_fraction": 0.8}, "recipe": {"epochs": 8}}
    paid = code_of(registry, with_prior, 0, 0.05, "prior", {}, "occam", {})
    assert "prior model's recipe: 1 parameter(s) not at their defaults" in dict(paid.itemized())
    assert paid.length > plain.length
    seed_one = code_of(registry, TASK, 1, 0.05, "prior", {}, "occam", {})
    other_delta = code_of(registry, TASK, 0, 0.01, "prior", {}, "occam", {})
    assert seed_one.length == plain.length + 3 and other_delta.length > plain.length  # seeds and δ are paid


def test_configurations_decode_back_exactly(registry):
    cases = [
        (TASK, 0, 0.05, "dense", {}, "occam", {"form": "kl"}),
        ({**TASK, "dataset_params": {"prior_fraction": 0.5, "train_fraction": 0.25}, "recipe": {"epochs": 8, "lr": 0.01}},
         3, 0.01, "id", {"dim": 300, "levels": 9, "origin": "prior"}, "catoni", {"robust": True, "sigma_grid": [0.1, 0.2]}),
        ({**TASK, "model": "timm:resnet18"}, -2, 0.05, "quantize", {"rest_precision": "float32"}, "hessian",
         {"form": "lower", "prior_std_grid": 4}),
    ]
    for task, seed, delta, comp, cparams, bound, bparams in cases:
        cparams = registry.get("compressors", comp)(**cparams).params_dict()
        bparams = registry.get("bounds", bound)(**bparams).params_dict()
        c = configuration(task, seed, delta, comp, cparams, bound, bparams)
        word = cc.encode(c, declarations(registry, c, task["dataset"])).bits
        back = cc.decode(word, decoder(registry, task["dataset"]))
        assert (back.model, back.seed, back.delta, back.compressor, back.bound) == (c.model, seed, delta, comp, bound)
        assert back.compressor_params == {k: v for k, v in cc.nondefault_values(
            declarations(registry, c, task["dataset"]).compressor, cparams).items()}
        with pytest.raises(cc.ConfigCodeError):
            cc.decode(word[:-1], decoder(registry, task["dataset"]))
        with pytest.raises(cc.ConfigCodeError, match="bits left"):
            cc.decode(word + "0", decoder(registry, task["dataset"]))


def test_an_unknown_plugin_pays_for_its_name_in_bytes(registry):
    known = cc.name_bits("compressor", "dense")
    unknown = cc.name_bits("compressor", "my-compressor")
    assert len(known) == 4 and len(unknown) == 4 + len(cc.natural(13)) + 8 * 13
    assert cc.read_name(cc.Reader(unknown), "compressor") == "my-compressor"
