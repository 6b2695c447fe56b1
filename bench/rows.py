"""Checking what plugins hand the harness, and turning a bound's result into a row's columns.

Plugins are third-party code, so nothing they return is taken on trust: a message must be bytes, a
claimed section layout must match the message's own header, a claimed per-layer (S, C, Q) must be
exactly the decoded model's weights, the decoded model must compute what the compressor's own model
computed, and a bound must return the kind it declares, name the formula it used, pay at least its
configuration's code word, not claim less than its own formula gives, pay for the message when it
certifies the decoded model, and, when it certifies a stochastic classifier, hand over that classifier
(so the harness can measure it) with Monte-Carlo counts that bear out its empirical term. The message's
length and its length code in a row are the artifact's, never the bound's. Each failure is one line
that names the plugin.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from bench.kit import bounds as bounds_math
from bench.kit.coding import CorruptMessage, section_lengths
from bench.kit.ladders import VACUOUS  # a certificate at or above it rounds to 100.00 % and is shown as vacuous
from bench.api.contracts import BoundResult, Compressed, Evaluated, LayerCode

LN2 = math.log(2.0)

#: Slack for comparing two floating values that should be equal (a bound and its own formula).
TOLERANCE = 1e-9


class ContractError(ValueError):
    """A plugin returned something the contracts do not allow; the message names the plugin."""


def check_compressed(compressed: Any, compressor: str) -> Compressed:
    if not isinstance(compressed, Compressed):
        raise ContractError(f"compressor '{compressor}' returned {type(compressed).__name__}, not Compressed")
    if not isinstance(compressed.message, bytes):
        raise ContractError(f"compressor '{compressor}' returned a message of type "
                            f"{type(compressed.message).__name__}, not bytes")
    if not isinstance(compressed.model, torch.nn.Module):
        raise ContractError(f"compressor '{compressor}' returned no model: the harness checks the decoded "
                            f"model against the compressor's own")
    if compressed.sections is not None:
        check_sections(compressed.message, compressed.sections, compressor)
    return compressed


def check_sections(message: bytes, sections: list, compressor: str) -> None:
    """The claimed ``(name, bits)`` of each section must be what the message's header says."""
    try:
        _, lengths = section_lengths(message, len(sections))
    except (CorruptMessage, ValueError) as exc:
        raise ContractError(f"compressor '{compressor}': its section layout does not parse: {exc}") from None
    for (name, bits), length in zip(sections, lengths):
        if int(bits) != 8 * length:
            raise ContractError(f"compressor '{compressor}': section '{name}' is {8 * length} bits in the "
                                f"message, not the {bits} claimed")


def check_layers(layers: list[LayerCode], model: torch.nn.Module, compressor: str) -> None:
    """Each claimed layer (S, C, Q) must be exactly the decoded model's weights: ``w[S] = C[Q]``
    bit for bit and every weight outside ``S`` zero."""
    params = dict(model.named_parameters())
    for layer in layers:
        where = f"compressor '{compressor}': layer '{layer.name}'"
        if layer.name not in params:
            raise ContractError(f"{where} is not a parameter of the decoded model")
        w = params[layer.name].detach().cpu().reshape(-1).to(torch.float32).numpy()
        s = np.asarray(layer.positions, dtype=np.int64)
        c = np.asarray(layer.codebook, dtype=np.float32)
        q = np.asarray(layer.assignments, dtype=np.int64)
        if layer.size != w.size or len(s) != len(q) or (len(s) and (s.min() < 0 or s.max() >= w.size)):
            raise ContractError(f"{where}: sizes of S, Q and the weight do not match")
        if len(s) > 1 and not (np.diff(s) > 0).all():
            raise ContractError(f"{where}: positions are not strictly increasing")
        if len(q) and (q.min() < 0 or q.max() >= len(c)):
            raise ContractError(f"{where}: assignments point outside the codebook")
        if not np.array_equal(w[s].view(np.uint32), c[q].view(np.uint32)):
            raise ContractError(f"{where}: C[Q] is not the decoded weight at S")
        outside = np.ones(w.size, bool)
        outside[s] = False
        if np.any(w[outside] != 0):
            raise ContractError(f"{where}: a weight outside S is not zero")


def check_same_outputs(own: torch.Tensor, decoded: torch.Tensor, who: str) -> None:
    """The compressor's own model (in the process that compressed) and the decoded model (in a process
    where ``compress`` never ran) must compute the same outputs on ``S_bound``, up to floating-point
    noise: a model whose forward reads anything outside its decoded state (a module variable set
    during ``compress``, a file) fails here."""
    if tuple(own.shape) != tuple(decoded.shape):
        raise ContractError(f"{who}: the decoded model's outputs have shape {tuple(decoded.shape)}, the "
                            f"compressor's own model's {tuple(own.shape)}")
    own, decoded = own.double(), decoded.double()
    gap = (own - decoded).abs()
    scale = 1.0 + own.abs()
    if bool((gap <= 1e-4 * scale).all()):
        return
    differ = int((own.argmax(dim=1) != decoded.argmax(dim=1)).sum()) if own.dim() == 2 else int((gap > 1e-4 * scale).any(dim=-1).sum())
    raise ContractError(f"{who}: the model decoded from the message computes other outputs than the compressor's "
                        f"own model on the training sample (largest difference {float(gap.max()):.3g}; "
                        f"{differ} of {len(own)} predictions differ): its forward depends on something "
                        f"the message does not carry, such as state left behind by compress")


def check_monte_carlo(result: BoundResult, bound: str, delta: float, config_bits: float) -> None:
    """A Monte-Carlo empirical term must be at least the binomial (Clopper–Pearson) upper limit of
    ``mc_errors / mc_samples`` at ``δ′·2^-L(c)``, the confidence it is taken at (BOUNDS.md §1)."""
    m, k = result.mc_samples, result.mc_errors
    if m is None or k is None or int(m) < 1 or not 0 <= int(k) <= int(m):
        raise ContractError(f"bound '{bound}': a Monte-Carlo term needs mc_samples >= 1 and 0 <= mc_errors <= "
                            f"mc_samples, got {k} of {m}")
    if not result.delta_prime > 0:
        raise ContractError(f"bound '{bound}': a Monte-Carlo term is taken at δ′ > 0, got δ′ = {result.delta_prime}")
    upper = bounds_math.binomial_tail_inversion(int(k), int(m), math.log(result.delta_prime) - config_bits * LN2)
    if result.empirical_term < upper - TOLERANCE:
        raise ContractError(f"bound '{bound}': its empirical term {result.empirical_term:.6g} is below the "
                            f"binomial upper limit {upper:.6g} of its Monte-Carlo estimate ({k} errors in {m}) "
                            f"at δ′·2^-L(c) (δ′ = {result.delta_prime:g}, L(c) = {config_bits:g} bits)")


def _finite(*values: float | None) -> bool:
    return all(v is None or math.isfinite(v) for v in values)


def recompute_bound(form: str, empirical_term: float, n: int, kl_nats: float, delta: float,
                    delta_prime: float, alpha: float | None) -> float:
    """The error bound a row's own columns give (its ``form`` at ``δ − δ'``)."""
    kwargs = {"alpha": alpha} if form == "catoni" and alpha is not None else {}
    return bounds_math.error_bound(form, empirical_term, n, max(kl_nats, 0.0), delta - delta_prime, **kwargs)


def check_bound_result(result: Any, bound: str, declared_kind: str, evaluated: Evaluated, delta: float,
                       config_bits: float) -> BoundResult:
    """Every contract a bound's result must meet before it becomes a row."""
    if not isinstance(result, BoundResult):
        raise ContractError(f"bound '{bound}' returned {type(result).__name__}, not BoundResult")
    if result.kind != declared_kind:
        raise ContractError(f"bound '{bound}' returned kind '{result.kind}' but declares "
                            f"bound_kind '{declared_kind}'")
    if not _finite(result.error_bound, result.empirical_term, result.kl_nats):
        raise ContractError(f"bound '{bound}' is not finite: {result.error_bound} (KL {result.kl_nats})")
    if result.delta is not None and result.delta != delta:
        raise ContractError(f"bound '{bound}' used δ = {result.delta}, the run's δ is {delta}")
    if not 0.0 <= result.delta_prime < delta:
        raise ContractError(f"bound '{bound}': δ' = {result.delta_prime} must lie in [0, δ)")
    if result.form is not None and result.form not in bounds_math.FORMS:
        raise ContractError(f"bound '{bound}': unknown form '{result.form}' (known: {', '.join(bounds_math.FORMS)})")
    if result.kind != "certificate":
        return result
    if result.error_bound < result.empirical_term - TOLERANCE:
        raise ContractError(f"bound '{bound}': certificate {result.error_bound} is below its empirical term "
                            f"{result.empirical_term}")
    if result.form is None or result.kl_nats is None:
        raise ContractError(f"bound '{bound}': a certificate must give its KL and name its form (one of "
                            f"{', '.join(bounds_math.FORMS)}), so that the harness can recompute it")
    if result.config_bits is None or result.config_bits < config_bits - TOLERANCE:
        raise ContractError(f"bound '{bound}' pays {result.config_bits} configuration bits, its configuration's "
                            f"code word is {config_bits:g} bits")
    if result.kl_nats < config_bits * LN2 - TOLERANCE:
        raise ContractError(f"bound '{bound}': KL {result.kl_nats:.6g} nats is below its configuration's "
                            f"{config_bits:g} bits ({config_bits * LN2:.6g} nats)")
    if result.target == "decoded":
        if result.empirical_term < evaluated.train_err - TOLERANCE:
            raise ContractError(f"bound '{bound}' certifies the decoded model with an empirical term "
                                f"{result.empirical_term} below its training error {evaluated.train_err}")
        floor = bounds_math.occam_kl_nats(evaluated.compressed.bits, config_bits)
        if result.kl_nats < floor.nats - TOLERANCE * max(1.0, floor.nats):
            raise ContractError(f"bound '{bound}' certifies the decoded model with KL {result.kl_nats:.6g} nats, "
                                f"below the {floor.nats:.6g} nats of its message, length code and configuration "
                                f"({floor.message_bits:g} + {floor.length_code_bits:g} + {config_bits:g} bits): "
                                f"a certificate pays for the model it certifies")
    if result.target == "stochastic":
        if result.posterior is None:
            raise ContractError(f"bound '{bound}' certifies a stochastic classifier but returned no posterior "
                                f"to measure its test error")
        if result.mc_samples is None:
            raise ContractError(f"bound '{bound}' certifies a stochastic classifier but gives no Monte-Carlo "
                                f"counts (mc_samples, mc_errors) behind its empirical term")
    if result.mc_samples is not None or result.mc_errors is not None:
        check_monte_carlo(result, bound, delta, config_bits)
    own = recompute_bound(result.form, result.empirical_term, evaluated.n_train, result.kl_nats, delta,
                          result.delta_prime, result.alpha)
    if result.error_bound < own - TOLERANCE:
        raise ContractError(f"bound '{bound}': certificate {result.error_bound} is below what its own "
                            f"{result.form} formula gives ({own})")
    return result


def bound_columns(result: BoundResult, evaluated: Evaluated, seconds: float, delta: float,
                  config_bits: float) -> dict[str, Any]:
    """A checked bound result as table columns (target test error and refutation come later). The
    message's length and length code are the artifact's; the configuration bits the harness's."""
    bits = float(evaluated.compressed.bits)
    return {
        "status": "ok", "error": None, "bound_kind": result.kind, "error_bound": float(result.error_bound),
        "empirical_term": float(result.empirical_term), "kl_nats": result.kl_nats,
        "message_bits": bits, "length_code_bits": float(bounds_math.message_length_code_bits(bits)),
        "config_bits": float(config_bits), "adjustment_nats": result.adjustment_nats, "delta": delta,
        "mc_samples": result.mc_samples, "mc_errors": result.mc_errors,
        "is_vacuous": bool(result.error_bound >= VACUOUS), "bound_seconds": seconds,
        "target": result.target, "form": result.form, "catoni_alpha": result.alpha,
        "delta_prime": float(result.delta_prime),
    }


def target_columns(errors: int | None, trials: int | None, rate: float, error_bound: float, kind: str,
                   delta: float) -> dict[str, Any]:
    """The certified classifier's own test error (count, rate, standard error) and whether the
    certificate is refuted by it: below the one-sided Clopper–Pearson lower limit at δ."""
    se = math.sqrt(rate * (1.0 - rate) / trials) if trials else None
    refuted = False
    if kind == "certificate" and errors is not None and trials:
        refuted = bool(error_bound < bounds_math.clopper_pearson_lower(errors, trials, delta))
    return {"target_test_errors": errors, "target_test_trials": trials, "target_test_err": rate,
            "target_test_err_se": se, "bound_minus_test": error_bound - rate, "refuted": refuted}
