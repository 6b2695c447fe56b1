"""The bound plugins and the harness's row assembly, in this process (fast enough for mutation
testing): each plugin's result goes through ``bench.rows`` exactly as the runner does, and the row is
recomputed by the independent oracle. Contract checks of ``bench.rows`` by hand."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

import oracle
from bench.api.contracts import BoundResult, Compressed, Evaluated
from bench.kit import bounds as bounds_math
from bench.kit.evaluation import error_count
from bench.progress import progress
from bench.registry import load_registry
from bench.rows import (VACUOUS, ContractError, bound_columns, check_bound_result, check_compressed,
                        check_layers, check_sections, target_columns)
from bench.context import build_context
from bench.tasks import BaseModels, instantiate_task, merge_task
from bench.cache import ModelCache, default_cache_dir
from bench_plugins.catoni import Catoni
from bench_plugins.hessian import Hessian
from bench_plugins.mi import MutualInformation
from bench_plugins.occam import Occam
from bench_plugins.prune import Prune

CONFIG_BITS = 17.0  # what the run charges this cell's configuration (any value does here)
TASK = {"dataset": "digits", "model": "mlp", "model_params": {"widths": [12]},
        "recipe": {"epochs": 8, "batch_size": 64, "lr": 0.01}}

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def artifact():
    """A pruned, coded model (with per-layer S, C, Q for the robust bound) and its context."""
    registry = load_registry()
    task = instantiate_task(merge_task(None, TASK, "bound-plugins"), registry)
    device = torch.device("cpu")
    ctx = build_context(task, 0, device, BaseModels(ModelCache(default_cache_dir()), device, progress), 0.05,
                        config_bits=CONFIG_BITS)
    compressed = Prune(sparsity=0.7, steps=1, retrain_epochs=2, levels=4).compress(ctx)
    model = compressed.model.eval()
    errors = error_count(model, task.data.train)
    evaluated = Evaluated(compressed, model, errors, task.n_train, errors / task.n_train)
    return evaluated, ctx


def row_of(bound, params: dict, evaluated: Evaluated, ctx, grid: int = 2) -> dict:
    """What the runner writes for this bound: its checked result as columns, plus the raw inputs."""
    instance = bound(**params)
    result = instance.compute(evaluated, ctx)
    check_bound_result(result, bound.name, instance.bound_kind, evaluated, ctx.delta, ctx.config_bits)
    row = bound_columns(result, evaluated, 0.0, ctx.delta, ctx.config_bits)
    row.update({"bound": bound.name, "bound_params": json.dumps({**bound.defaults(), **params}),
                "extras": json.dumps({"bound": result.extras}), "n_train": evaluated.n_train,
                "train_errors": evaluated.train_errors, "grid_size": grid, "bound_grid_size": 1})
    return row


@pytest.mark.parametrize("form", ["binomial", "kl", "catoni"])
def test_occam_rows_agree_with_the_oracle(artifact, form):
    evaluated, ctx = artifact
    row = row_of(Occam, {"form": form}, evaluated, ctx)
    oracle.check_row(row)
    assert row["target"] == "decoded" and row["form"] == form and row["config_bits"] == CONFIG_BITS


@pytest.mark.parametrize("form", ["binomial", "kl", "catoni"])
def test_occam_result_states_what_it_used(artifact, form):
    evaluated, ctx = artifact
    result = Occam(form=form, alpha=1.01).compute(evaluated, ctx)
    c = evaluated.compressed
    assert result.message_bits == c.bits and result.adjustment_nats == 0.0 and result.delta == ctx.delta
    assert result.target == "decoded" and result.form == form and result.posterior is None
    assert result.alpha == (1.01 if form == "catoni" else None)
    assert result.extras == {"form": form, "length_code": "elias-delta(l+1)", **({"alpha": 1.01} if form == "catoni" else {})}
    expected = oracle.bound_of(form, oracle.mp.mpf(evaluated.train_errors) / evaluated.n_train, evaluated.n_train,
                               oracle.mp.mpf(result.kl_nats), oracle.mp.mpf(ctx.delta), oracle.mp.mpf("1.01"))
    assert result.error_bound == pytest.approx(float(expected), rel=1e-9)  # α reaches the catoni form


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
    paid = bounds_math.occam_kl_nats(evaluated.compressed.bits, 1.0).nats

    def result(**changes):
        kl = changes.get("kl_nats", paid)
        bound = bounds_math.occam_kl_bound(evaluated.train_err, evaluated.n_train, kl, 0.05)
        base = dict(kind="certificate", error_bound=bound, empirical_term=evaluated.train_err, kl_nats=kl,
                    config_bits=1.0, form="kl")
        return BoundResult(**{**base, **changes})

    check_bound_result(result(), "b", "certificate", evaluated, 0.05, 1.0)  # a valid one passes
    posterior = object()
    stochastic = dict(target="stochastic", posterior=posterior, form="maurer", delta_prime=0.005, kl_nats=1.0,
                      error_bound=0.9)
    upper = bounds_math.mc_error_upper_bound(0.1, 1000, 0.005, 1.0)
    check_bound_result(result(**stochastic, empirical_term=upper, mc_samples=1000, mc_errors=100), "b",
                       "certificate", evaluated, 0.05, 1.0)  # its Monte-Carlo term holds
    for bad, message in [
        (result(kind="expectation"), "returned kind 'expectation' but declares bound_kind 'certificate'"),
        (result(error_bound=math.nan), "is not finite"),
        (result(delta=0.1), "the run's δ is 0.05"),
        (result(delta_prime=0.05), "must lie in"),
        (result(form="magic"), "unknown form"),
        (result(form=None), "must give its KL and name its form"),
        (result(error_bound=evaluated.train_err / 2, empirical_term=evaluated.train_err / 2), "below its training error"),
        (result(error_bound=0.0), "below its empirical term"),
        (result(config_bits=0.0), "pays 0.0 configuration bits, its configuration's code word is 1 bits"),
        (result(kl_nats=0.5), "below its configuration's 1 bits"),
        (result(kl_nats=paid - 1.0), "certifies the decoded model with KL"),
        (result(target="stochastic"), "returned no posterior"),
        (result(target="stochastic", posterior=posterior), "gives no Monte-Carlo counts"),
        (result(**{**stochastic, "delta_prime": 0.0}, empirical_term=upper, mc_samples=1000, mc_errors=100),
         "is taken at δ′ > 0"),
        (result(**stochastic, empirical_term=0.1, mc_samples=1000, mc_errors=100),
         "of its Monte-Carlo estimate (100 errors in 1000)"),
        (result(**stochastic, empirical_term=upper, mc_samples=1000, mc_errors=1001), "0 <= mc_errors <= mc_samples"),
        (result(form="binomial", error_bound=evaluated.train_err + 1e-3), "below what its own binomial formula"),
        ("not a result", "returned str, not BoundResult"),
    ]:
        with pytest.raises(ContractError, match="bound 'b'") as info:
            check_bound_result(bad, "b", "certificate", evaluated, 0.05, 1.0)
        assert message in str(info.value)


def test_the_monte_carlo_check_is_at_the_configurations_share_of_delta_prime(artifact):
    """δ′·2^-L(c): the term a bound takes at δ′ alone (as if its configuration were free) fails."""
    evaluated, _ = artifact
    unpaid = bounds_math.mc_error_upper_bound(0.1, 1000, 0.005)
    result = BoundResult(kind="certificate", error_bound=0.9, empirical_term=unpaid, kl_nats=30 * math.log(2),
                         config_bits=30.0, target="stochastic", posterior=object(), form="maurer",
                         delta_prime=0.005, mc_samples=1000, mc_errors=100)
    with pytest.raises(ContractError, match="L\\(c\\) = 30 bits"):
        check_bound_result(result, "b", "certificate", evaluated, 0.05, 30.0)
    check_bound_result(result, "b", "certificate", evaluated, 0.05, 0.0)  # with a free configuration it holds


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


# ------------------------------------------------------------------- what the rows' extras promise
@pytest.fixture
def fresh_curvature():
    """The hessian plugin keeps the last model's curvature: start each test without it."""
    import bench_plugins.hessian as hessian_module
    hessian_module._CURVATURE.clear()
    yield
    hessian_module._CURVATURE.clear()


def test_hessian_curvature_is_the_decoded_models_on_the_training_set(artifact, fresh_curvature):
    from bench.kit.curvature import diagonal_curvature_loop
    evaluated, ctx = artifact
    h = Hessian(form="diag", curvature_samples=2).curvature(evaluated, ctx)["h"]
    model = copy.deepcopy(evaluated.model).requires_grad_(True)
    naive = diagonal_curvature_loop(model, ctx.task.data.train, "sampled", ctx.task.data.task_type, samples=2,
                                    generator=ctx.generator("hessian.curvature"))
    assert h.keys() == naive.keys()
    for name, value in naive.items():
        assert np.allclose(h[name], value.double().numpy().ravel(), rtol=1e-4, atol=1e-9), name
        assert (h[name] >= 0).all()


@pytest.mark.parametrize("form", ["lower", "baseline", "diag", "layerwise"])
def test_hessian_extras_describe_the_chosen_posterior(artifact, fresh_curvature, form):
    evaluated, ctx = artifact
    bound = Hessian(form=form, prior_std_grid=4, beta_grid=5)
    priors, betas = bound.grids()
    result = bound.compute(evaluated, ctx)
    x = result.extras
    e, n = evaluated.train_err, evaluated.n_train
    assert x["form"] == form and x["deterministic_train_err"] == e and result.delta == ctx.delta
    assert x["beta"] is None if form == "baseline" else any(math.isclose(x["beta"], b) for b in betas)
    points = x["pareto"]
    assert points and all(a[0] < b[0] and a[1] > b[1] for a, b in zip(points, points[1:]))  # non-dominated, by KL
    assert all(0 <= err <= 1 for _, err in points)
    assert result.length_code_bits == 0 and result.form == "maurer"  # no message is coded by this bound
    chosen = [result.kl_nats, min(1.0, e + x["estimated_loss_increase"])]
    # the bound is increasing in both KL and error, so the grid point that minimizes it is a Pareto point
    assert any(point == pytest.approx(chosen, rel=1e-12) for point in points)
    delta_used = ctx.delta - result.delta_prime
    chosen_value = result.error_bound if form == "lower" else x["estimate"]
    assert all(chosen_value <= bounds_math.maurer_bound(err, n, kl, delta_used) + 1e-12 for kl, err in points)
    if form == "lower":
        assert result.kind == "lower_bound" and result.length_code_bits == 0 and result.config_bits == 0
        assert x["floor_of"] == {"bound": "hessian", "forms": ["baseline", "diag"]}
        assert x["prior"].startswith("Lemma 4.2") and x["estimated_loss_increase"] >= 0
        assert result.empirical_term == pytest.approx(min(1.0, e + x["estimated_loss_increase"]))
        assert result.adjustment_nats == result.kl_nats
        return
    assert any(math.isclose(x["prior_std"], s) for s in priors)
    assert x["prior_grid_bits"] == pytest.approx(2.0) and result.config_bits == ctx.config_bits
    assert x["kl_posterior_nats"] == result.adjustment_nats
    assert result.kl_nats == pytest.approx(result.adjustment_nats + (2.0 + ctx.config_bits) * math.log(2))
    assert x["err_mc"] == result.mc_errors / result.mc_samples and result.form == "maurer"
    assert x["curvature"] == "sampled" and x["center"] == "initialization"
    estimate = float(oracle.bound_of("maurer", oracle.mp.mpf(min(1.0, e + x["estimated_loss_increase"])), n,
                                     oracle.mp.mpf(result.kl_nats), oracle.mp.mpf(ctx.delta - result.delta_prime)))
    assert x["estimate"] == pytest.approx(estimate, rel=1e-9)  # the grid point was chosen by this estimate
    assert result.posterior is not None and result.posterior.model is evaluated.model
    specs = result.posterior.noise
    assert specs.keys() == dict(evaluated.model.named_parameters()).keys()
    if form == "baseline":  # isotropic, at the prior's scale: KL = ½‖θ − θ₀‖² / s², Δ = ½ s² Σ h
        theta0 = dict(ctx.prior.make_model().named_parameters())
        sq = sum(float(((q.detach().double() - theta0[k].detach().double()) ** 2).sum())
                 for k, q in evaluated.model.named_parameters())
        s1 = x["prior_std"]
        assert x["kl_posterior_nats"] == pytest.approx(0.5 * sq / s1**2, rel=1e-9)
        h = Hessian(form="baseline").curvature(evaluated, ctx)["h"]
        assert x["estimated_loss_increase"] == pytest.approx(0.5 * s1**2 * sum(v.sum() for v in h.values()), rel=1e-9)
        assert all(spec.basis is None and spec.std == s1 for spec in specs.values())
    elif form == "diag":
        assert all(spec.basis is None and np.ndim(spec.std) == 1 for spec in specs.values())
    else:  # one block per Linear weight, the diagonal posterior for the rest
        assert {k for k, spec in specs.items() if spec.basis is not None} == \
            {k for k, q in evaluated.model.named_parameters() if q.dim() == 2}


def test_hessian_monte_carlo_is_seeded_and_leaves_the_model_alone(artifact, fresh_curvature):
    evaluated, ctx = artifact
    frozen = copy.deepcopy(evaluated.model).requires_grad_(False)
    mine = Evaluated(evaluated.compressed, frozen, evaluated.train_errors, evaluated.n_train, evaluated.train_err)
    first = Hessian(form="diag", prior_std_grid=2, beta_grid=2).compute(mine, ctx)
    assert not any(q.requires_grad for q in frozen.parameters())  # the decoded model is not modified
    torch.manual_seed(1234)  # the global generator plays no part
    again = Hessian(form="diag", prior_std_grid=2, beta_grid=2).compute(mine, ctx)
    assert (first.mc_errors, first.mc_samples) == (again.mc_errors, again.mc_samples)


def test_hessian_grids_are_geometric_between_the_ends():
    priors, betas = Hessian(prior_std_min=0.01, prior_std_max=1.0, prior_std_grid=3, beta_min=1e-4, beta_max=1.0,
                            beta_grid=5).grids()
    assert np.allclose(priors, [0.01, 0.1, 1.0]) and np.allclose(betas, [1e-4, 1e-3, 1e-2, 1e-1, 1.0])


def test_hessian_parameter_ranges_allow_equal_ends():
    Hessian(prior_std_min=0.1, prior_std_max=0.1, beta_min=1.0, beta_max=1.0)
    with pytest.raises(ValueError, match="^bound 'hessian': parameter 'prior_std_min' must be <= 'prior_std_max'$"):
        Hessian(prior_std_min=0.2, prior_std_max=0.1)
    with pytest.raises(ValueError, match="^bound 'hessian': parameter 'beta_min' must be <= 'beta_max'$"):
        Hessian(beta_min=2.0, beta_max=1.0)


@pytest.mark.parametrize("noise", ["always", "search"])
def test_robust_catoni_extras_account_for_every_nat(artifact, noise):
    evaluated, ctx = artifact
    params = {"robust": True, "noise": noise, "sigma_select_examples": 500, "sigma_grid": (0.05, 0.2),
              "sigma_refine_rounds": 1, "mc_passes": 2, "alpha": 1.001}
    result = Catoni(**params).compute(evaluated, ctx)
    x, c = result.extras, evaluated.compressed
    assert result.delta == ctx.delta and result.form == "catoni" and result.alpha == 1.001 == x["alpha"]
    assert x["robust"] is True and x["length_code"] == "elias-delta(l+1)" and x["lambda"] > 0
    assert x["delta_prime"] == result.delta_prime == pytest.approx(0.1 * ctx.delta)
    assert x["delta_pac_bayes"] == pytest.approx(ctx.delta - result.delta_prime)
    assert x["deterministic_train_err"] == evaluated.train_err and x["message_bits_real"] == float(c.bits)
    assert x["code_bits"] + x["lambda_choice_bits"] == result.message_bits
    assert x["q_overhead_bits"] == pytest.approx(x["code_bits"] - float(c.bits))
    assert x["gain_nats"] == -result.adjustment_nats
    point_mass = (oracle.mp.mpf(c.bits) + oracle.elias_delta_len(int(c.bits) + 1) + ctx.config_bits) * oracle.LN2
    assert x["point_mass_kl_nats"] == pytest.approx(float(point_mass), rel=1e-12)
    assert x["kl_saving_nats"] == pytest.approx(x["point_mass_kl_nats"] - result.kl_nats)
    assert x["sigma_search"]
    coded = {layer.name: layer for layer in c.layers if len(layer.assignments)}
    assert x["layers"].keys() == coded.keys()
    for name, layer in x["layers"].items():
        assert layer["k"] == len(coded[name].assignments) and layer["r"] == len(coded[name].codebook)
        assert layer["gain_nats"] == -layer["mixture_kl_nats"] and layer["q_bits_fixed"] >= 0
        assert layer["q_bits_coded"] > 0 and layer["sigma"] >= 0
        assert (layer["lambda"] is None) == (layer["sigma"] == 0)
    assert sum(layer["mixture_kl_nats"] for layer in x["layers"].values()) == pytest.approx(result.adjustment_nats)
    if result.target == "stochastic":
        assert x["m"] == result.mc_samples == 2 * evaluated.n_train and x["mc_errors"] == result.mc_errors
        assert x["err_mc"] == result.mc_errors / result.mc_samples
        assert result.posterior is not None and result.posterior.model is evaluated.model
    else:
        assert result.posterior is None and result.mc_samples is None and result.mc_errors is None
        assert x["m"] == 0 and x["err_mc"] == evaluated.train_err


def test_catoni_point_mass_result_states_what_it_used(artifact):
    evaluated, ctx = artifact
    result = Catoni(alpha=1.01).compute(evaluated, ctx)
    assert result.message_bits == evaluated.compressed.bits and result.adjustment_nats == 0.0
    assert result.delta == ctx.delta and result.target == "decoded" and result.form == "catoni"
    assert result.alpha == 1.01 and result.posterior is None
    assert result.extras == {"alpha": 1.01, "lambda": pytest.approx(result.extras["lambda"]),
                             "length_code": "elias-delta(l+1)"} and result.extras["lambda"] > 0
    expected = oracle.catoni_bound(oracle.mp.mpf(evaluated.train_errors) / evaluated.n_train, evaluated.n_train,
                                   oracle.mp.mpf(result.kl_nats), oracle.mp.mpf(ctx.delta), oracle.mp.mpf("1.01"))
    assert result.error_bound == pytest.approx(float(expected), rel=1e-9)


@pytest.mark.parametrize("noise", ["always", "search"])
def test_catoni_sigma_search_keeps_the_first_best_estimate(artifact, noise):
    evaluated, ctx = artifact
    bound = Catoni(robust=True, noise=noise, sigma_select_examples=500, sigma_grid=(0.05, 0.2), sigma_refine_rounds=1)
    from bench_plugins.catoni import RobustKL
    rkl = RobustKL(evaluated, ctx, bound.params)
    best, trace = bound.choose_sigmas(evaluated, ctx, rkl)
    scales = {layer.name: rkl.scale(layer) for layer in rkl.layers}
    start = 0.0 if noise == "search" else 0.05
    assert trace[0]["sigmas"] == pytest.approx({k: start * v for k, v in scales.items()})
    assert [t["sigmas"] for t in trace[1:3]] == [pytest.approx({k: s * v for k, v in scales.items()}) for s in (0.05, 0.2)]
    values = [t["estimate"] for t in trace]
    assert best == trace[values.index(min(values))]["sigmas"]  # the first of the smallest estimates
    if noise == "always":
        assert all(v > 0 for t in trace for v in t["sigmas"].values())
    again, _ = bound.choose_sigmas(evaluated, ctx, RobustKL(evaluated, ctx, bound.params))
    assert again == best  # the selection subset and its noise come from the run's seeded streams


def test_catoni_lambda_grid_and_layer_scale(artifact):
    evaluated, ctx = artifact
    from bench_plugins.catoni import RobustKL
    rkl = RobustKL(evaluated, ctx, Catoni(robust=True, lambda_min=1e-3, lambda_max=1.0, lambda_grid=4).params)
    assert np.allclose(rkl.grid, [1e-3, 1e-2, 1e-1, 1.0])
    for layer in rkl.layers:
        values = np.asarray(layer.codebook, dtype=np.float64)[np.asarray(layer.assignments)]
        assert rkl.scale(layer) == pytest.approx(math.sqrt(float(np.mean(values ** 2))), rel=1e-12)
        assert rkl.counts[layer.name].sum() == len(layer.assignments)
        assert len(rkl.counts[layer.name]) == len(layer.codebook)


def test_catoni_parameter_checks_are_one_line_each():
    Catoni(lambda_min=0.5, lambda_max=0.6)
    with pytest.raises(ValueError, match="^bound 'catoni': parameter 'lambda_min' must be below 'lambda_max'$"):
        Catoni(lambda_min=1.0, lambda_max=1.0)
    with pytest.raises(ValueError, match="^bound 'catoni': parameter 'sigma_grid' must be a non-empty list of "
                                         "positive multiples$"):
        Catoni(sigma_grid=())


def test_mi_result_decomposes_against_the_base_model(artifact):
    import torch.nn.functional as F
    evaluated, ctx = artifact
    result = MutualInformation().compute(evaluated, ctx)
    x, bits, n = result.extras, evaluated.compressed.bits, evaluated.n_train
    train = ctx.task.data.train
    base = ctx.base_model().eval()
    with torch.no_grad():
        base_errors = int((base(train.x).argmax(1) != train.y).sum())
        ce = float(F.cross_entropy(evaluated.model(train.x).double(), train.y))
        base_ce = float(F.cross_entropy(base(train.x).double(), train.y))
    gen = math.sqrt(2 * 0.25 * bits * math.log(2) / n)
    assert result.kind == "expectation" and result.message_bits == float(bits) and result.kl_nats == x["rate_nats"]
    assert result.length_code_bits == 0.0 and result.adjustment_nats == 0.0 and result.config_bits == ctx.config_bits
    assert x["rate_nats"] == pytest.approx(bits * math.log(2)) and x["sigma"] == 0.5
    assert x["generalization_term"] == pytest.approx(gen, rel=1e-12)
    assert x["uncapped_bound"] == pytest.approx(evaluated.train_err + gen, rel=1e-12)
    assert result.error_bound == min(1.0, x["uncapped_bound"]) and result.empirical_term == evaluated.train_err
    assert x["base_train_err"] == pytest.approx(base_errors / n, abs=1e-12)
    assert x["distortion_01"] == pytest.approx(evaluated.train_err - base_errors / n, abs=1e-12)
    assert x["train_ce"] == pytest.approx(ce, rel=1e-6) and x["base_train_ce"] == pytest.approx(base_ce, rel=1e-6)
    assert x["distortion_ce"] == pytest.approx(ce - base_ce, rel=1e-6, abs=1e-9)
    assert x["config_bits_charged"] is False and x["reference"] == "base model"


def test_skip_reasons_name_what_is_missing(artifact):
    import dataclasses
    from types import SimpleNamespace
    evaluated, ctx = artifact
    regression = SimpleNamespace(task=SimpleNamespace(name="lin", data=SimpleNamespace(task_type="regression")))
    for bound in (Occam(), Catoni(), Catoni(robust=True)):
        assert bound.skip_reason(evaluated, regression) == \
            "needs a classification task (0-1 loss); 'lin' is regression"
        assert bound.skip_reason(evaluated, ctx) is None
    assert Hessian().skip_reason(evaluated, regression) == "needs a classification task; 'lin' is regression"
    assert MutualInformation().skip_reason(evaluated, regression) == (
        "needs a bounded loss (0-1 loss, σ = 1/2); 'lin' is regression with the squared error, which is unbounded")
    assert Hessian().skip_reason(evaluated, ctx) is None and MutualInformation().skip_reason(evaluated, ctx) is None
    other = torch.nn.Sequential(torch.nn.Linear(64, 3))
    assert Hessian().skip_reason(Evaluated(evaluated.compressed, other, 0, 1, 0.0), ctx).startswith(
        "the decoded model's parameters do not match the initialization's")
    c, robust = evaluated.compressed, Catoni(robust=True)

    def without(**changes):
        return Evaluated(dataclasses.replace(c, **changes), evaluated.model, evaluated.train_errors,
                         evaluated.n_train, evaluated.train_err)
    needs = "robust=true needs the per-layer (S, C, Q) and the message's section sizes"
    assert robust.skip_reason(without(layers=[]), ctx) == needs and robust.skip_reason(without(sections=[]), ctx) == needs
    assert Catoni().skip_reason(without(layers=[]), ctx) is None  # only the robust mode needs them
    name = c.layers[0].name
    assert robust.skip_reason(without(sections=[s for s in c.sections if s[0] != f"{name}.Q"]), ctx) == \
        f"robust=true needs the size of each layer's Q section; missing for {name}"
    renamed = dataclasses.replace(c.layers[0], name="nowhere.weight")
    assert robust.skip_reason(without(layers=[renamed], sections=c.sections + [("nowhere.weight.Q", 8)]), ctx) == \
        "robust=true: a layer of the code is not a parameter of the decoded model"


def test_layer_checks_at_their_edges(artifact):
    from bench.kit.types import LayerCode
    evaluated, _ = artifact
    name, weight = next((k, q) for k, q in evaluated.model.named_parameters() if q.dim() == 2)
    w = weight.detach().reshape(-1).numpy().astype(np.float32)
    codebook, assignments = np.unique(w, return_inverse=True)
    dense = LayerCode(name, w.size, np.arange(w.size), codebook, assignments.astype(np.int64), 0.0, 0.0)
    check_layers([dense], evaluated.model, "p")  # every position, 0 and the last included, is fine
    where = f"^compressor 'p': layer '{name}'"

    def fails(message, **changes):
        with pytest.raises(ContractError, match=where + message + "$"):
            check_layers([LayerCode(**{**dense.__dict__, **changes})], evaluated.model, "p")
    with pytest.raises(ContractError, match="^compressor 'p': layer 'nowhere.weight' is not a parameter of the decoded model$"):
        check_layers([LayerCode(**{**dense.__dict__, "name": "nowhere.weight"})], evaluated.model, "p")
    sizes = ": sizes of S, Q and the weight do not match"
    fails(sizes, size=w.size + 1)
    fails(sizes, assignments=dense.assignments[1:])
    fails(sizes, positions=np.r_[-1, np.arange(1, w.size)])
    fails(sizes, positions=np.r_[np.arange(w.size - 1), w.size])
    two = dict(positions=np.array([5, 3]), assignments=dense.assignments[[5, 3]])
    fails(": positions are not strictly increasing", **two)
    fails(": positions are not strictly increasing", positions=np.array([3, 3]), assignments=dense.assignments[[3, 3]])
    fails(": assignments point outside the codebook", assignments=np.r_[dense.assignments[:-1], len(codebook)])
    fails(": assignments point outside the codebook", assignments=np.r_[-1, dense.assignments[1:]])


def test_bound_columns_take_the_message_from_the_artifact_not_the_bound(artifact):
    evaluated, ctx = artifact
    bits = float(evaluated.compressed.bits)
    result = BoundResult(kind="certificate", error_bound=VACUOUS, empirical_term=0.1, kl_nats=5.0, alpha=1.5,
                         target="decoded", form="catoni", delta_prime=0.001, mc_samples=7, mc_errors=3,
                         adjustment_nats=0.25, length_code_bits=9.0, message_bits=0.0, config_bits=99.0)
    cols = bound_columns(result, evaluated, 1.25, 0.05, 3.0)
    assert cols == {
        "status": "ok", "error": None, "bound_kind": "certificate", "error_bound": VACUOUS, "empirical_term": 0.1,
        "kl_nats": 5.0, "message_bits": bits, "length_code_bits": float(bounds_math.message_length_code_bits(bits)),
        "config_bits": 3.0, "adjustment_nats": 0.25, "delta": 0.05, "mc_samples": 7, "mc_errors": 3,
        "is_vacuous": True, "bound_seconds": 1.25, "target": "decoded", "form": "catoni", "catoni_alpha": 1.5,
        "delta_prime": 0.001}
