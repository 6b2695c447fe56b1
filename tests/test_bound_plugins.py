"""The bound plugins and the harness's row assembly, in this process (fast enough for mutation
testing): each plugin's result goes through ``bench.rows`` exactly as the runner does, and the row is
recomputed by the independent oracle. Contract checks of ``bench.rows`` by hand."""

from __future__ import annotations

import json
import math

import pytest
import torch

import oracle
from bench.contracts import BoundResult, Compressed, Evaluated
from bench.kit import bounds as bounds_math
from bench.kit.evaluation import error_count
from bench.progress import progress
from bench.registry import load_registry
from bench.rows import (VACUOUS, ContractError, bound_columns, check_bound_result, check_compressed,
                        check_layers, check_sections, target_columns)
from bench.runner import build_context
from bench.tasks import BaseModels, instantiate_task, merge_task
from bench.cache import ModelCache, default_cache_dir
from bench_plugins.catoni import Catoni
from bench_plugins.hessian import Hessian
from bench_plugins.mi import MutualInformation
from bench_plugins.occam import Occam
from bench_plugins.prune import Prune

TASK = {"dataset": "digits", "model": "mlp", "model_params": {"widths": [12]},
        "recipe": {"epochs": 8, "batch_size": 64, "lr": 0.01}}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def artifact():
    """A pruned, coded model (with per-layer S, C, Q for the robust bound) and its context."""
    registry = load_registry()
    task = instantiate_task(merge_task(None, TASK, "bound-plugins"), registry)
    device = torch.device("cpu")
    ctx = build_context(task, 0, device, BaseModels(ModelCache(default_cache_dir()), device, progress), 0.05,
                        hparam_bits=1.0)
    compressed = Prune(sparsity=0.7, steps=1, retrain_epochs=2, levels=4).compress(ctx)
    model = compressed.model.eval()
    errors = error_count(model, task.data.train)
    evaluated = Evaluated(compressed, model, errors, task.n_train, errors / task.n_train)
    return evaluated, ctx


def row_of(bound, params: dict, evaluated: Evaluated, ctx, grid: int = 2) -> dict:
    """What the runner writes for this bound: its checked result as columns, plus the raw inputs."""
    instance = bound(**params)
    result = instance.compute(evaluated, ctx)
    check_bound_result(result, bound.name, instance.bound_kind, evaluated, ctx.delta, ctx.hparam_bits)
    row = bound_columns(result, evaluated, 0.0, ctx.delta, ctx.hparam_bits)
    row.update({"bound": bound.name, "bound_params": json.dumps({**bound.defaults(), **params}),
                "extras": json.dumps({"bound": result.extras}), "n_train": evaluated.n_train,
                "train_errors": evaluated.train_errors, "grid_size": grid, "bound_grid_size": 1})
    return row


@pytest.mark.parametrize("form", ["binomial", "kl", "catoni"])
def test_occam_rows_agree_with_the_oracle(artifact, form):
    evaluated, ctx = artifact
    row = row_of(Occam, {"form": form}, evaluated, ctx)
    oracle.check_row(row)
    assert row["target"] == "decoded" and row["form"] == form and row["hparam_bits"] == 1.0


@pytest.mark.parametrize("params", [{}, {"robust": True, "noise": "always", "sigma_select_examples": 500,
                                         "sigma_grid": (0.05, 0.2), "sigma_refine_rounds": 1, "mc_passes": 2},
                                    {"robust": True, "noise": "search", "sigma_select_examples": 500,
                                     "sigma_grid": (0.05,), "sigma_refine_rounds": 0}])
def test_catoni_rows_agree_with_the_oracle(artifact, params):
    evaluated, ctx = artifact
    row = row_of(Catoni, params, evaluated, ctx)
    oracle.check_row(row)
    if params.get("noise") == "always":
        assert row["target"] == "stochastic" and row["mc_samples"] == 2 * evaluated.n_train
        assert row["mc_errors"] is not None and row["empirical_term"] > row["mc_errors"] / row["mc_samples"]
    if params.get("robust"):
        assert row["delta_prime"] == pytest.approx(0.005)


def test_mi_row_agrees_with_the_oracle(artifact):
    evaluated, ctx = artifact
    row = row_of(MutualInformation, {}, evaluated, ctx)
    oracle.check_row(row)
    assert row["bound_kind"] == "expectation"


@pytest.mark.parametrize("form", ["lower", "baseline", "diag", "layerwise"])
def test_hessian_rows_agree_with_the_oracle(artifact, form):
    evaluated, ctx = artifact
    row = row_of(Hessian, {"form": form, "prior_std_grid": 4, "beta_grid": 5}, evaluated, ctx)
    oracle.check_row(row)
    if form == "lower":
        assert row["bound_kind"] == "lower_bound" and row["target"] == "decoded"
    else:
        assert row["bound_kind"] == "certificate" and row["target"] == "stochastic"
        assert row["mc_samples"] == evaluated.n_train and row["delta_prime"] == pytest.approx(0.005)
        assert row["empirical_term"] > row["mc_errors"] / row["mc_samples"]


# ----------------------------------------------------------------------------------- the contracts
def test_contract_checks_name_the_plugin(artifact):
    evaluated, ctx = artifact

    def result(**changes):
        base = dict(kind="certificate", error_bound=0.9, empirical_term=evaluated.train_err, kl_nats=100.0,
                    hparam_bits=1.0)
        return BoundResult(**{**base, **changes})

    check_bound_result(result(), "b", "certificate", evaluated, 0.05, 1.0)  # a valid one passes
    for bad, message in [
        (result(kind="expectation"), "returned kind 'expectation' but declares bound_kind 'certificate'"),
        (result(error_bound=math.nan), "is not finite"),
        (result(delta=0.1), "the run's δ is 0.05"),
        (result(delta_prime=0.05), "must lie in"),
        (result(form="magic"), "unknown form"),
        (result(error_bound=evaluated.train_err / 2, empirical_term=evaluated.train_err / 2), "below its training error"),
        (result(error_bound=0.0), "below its empirical term"),
        (result(target="stochastic"), "returned no posterior"),
        (result(hparam_bits=0.0), "pays 0.0 configuration bits"),
        (result(form="binomial", error_bound=evaluated.train_err + 1e-3), "below what its own binomial formula"),
        ("not a result", "returned str, not BoundResult"),
    ]:
        with pytest.raises(ContractError, match="bound 'b'") as info:
            check_bound_result(bad, "b", "certificate", evaluated, 0.05, 1.0)
        assert message in str(info.value)


def test_compressed_sections_and_layers_are_checked_against_the_message(artifact):
    evaluated, _ = artifact
    c = evaluated.compressed
    check_compressed(c, "p")
    check_sections(c.message, c.sections, "p")
    check_layers(c.layers, evaluated.model, "p")
    name, bits = c.sections[0]
    with pytest.raises(ContractError, match=f"section '{name}' is {bits} bits in the message, not the {bits + 8}"):
        check_sections(c.message, [(name, bits + 8)] + c.sections[1:], "p")
    with pytest.raises(ContractError, match="compressor 'p' returned str, not Compressed"):
        check_compressed("text", "p")
    with pytest.raises(ContractError, match="compressor 'p' returned a message of type str, not bytes"):
        check_compressed(Compressed(message="text", model=evaluated.model), "p")
    with pytest.raises(ContractError, match="returned no model"):
        check_compressed(Compressed(message=b"x"), "p")
    layer = c.layers[0]
    moved = type(layer)(**{**layer.__dict__, "codebook": layer.codebook + 1})
    with pytest.raises(ContractError, match="C\\[Q\\] is not the decoded weight"):
        check_layers([moved], evaluated.model, "p")
    dropped = type(layer)(**{**layer.__dict__, "positions": layer.positions[1:], "assignments": layer.assignments[1:]})
    with pytest.raises(ContractError, match="outside S is not zero"):
        check_layers([dropped], evaluated.model, "p")


def test_target_columns_and_vacuity():
    cols = target_columns(45, 450, 0.1, 0.2, "certificate", 0.05)
    assert cols["target_test_err_se"] == pytest.approx(math.sqrt(0.1 * 0.9 / 450))
    assert cols["bound_minus_test"] == pytest.approx(0.1) and not cols["refuted"]
    assert target_columns(45, 450, 0.1, 0.05, "certificate", 0.05)["refuted"]
    assert target_columns(None, None, 0.3, 0.1, "certificate", 0.05)["target_test_err_se"] is None
    limit = bounds_math.clopper_pearson_lower(45, 450, 0.05)
    assert not target_columns(45, 450, 0.1, limit, "certificate", 0.05)["refuted"]  # at the limit: not below it
    assert target_columns(45, 450, 0.1, limit - 1e-9, "certificate", 0.05)["refuted"]
    assert target_columns(45, 450, 0.1, limit + 0.001, "certificate", 0.2)["refuted"]  # a larger δ, a higher limit
    assert not target_columns(45, 450, 0.1, limit + 0.001, "certificate", 0.05)["refuted"]
    for kind in ("lower_bound", "expectation"):  # only certificates can be refuted
        assert not target_columns(45, 450, 0.1, 0.0, kind, 0.05)["refuted"]
    assert target_columns(45, 450, 0.1, 0.0, "certificate", 0.05) == {
        "target_test_errors": 45, "target_test_trials": 450, "target_test_err": 0.1,
        "target_test_err_se": pytest.approx(math.sqrt(0.1 * 0.9 / 450)), "bound_minus_test": -0.1, "refuted": True}
    zero = target_columns(0, 0, 0.0, 0.0, "certificate", 0.05)
    assert zero["target_test_err_se"] is None and not zero["refuted"]
    assert VACUOUS == pytest.approx(0.99995)
