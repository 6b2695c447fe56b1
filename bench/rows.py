"""Checking what plugins hand the harness, and turning a bound's result into a row's columns.

Plugins are third-party code, so nothing they return is taken on trust: a message must be bytes, a
claimed section layout must match the message's own header, a claimed per-layer (S, C, Q) must be
exactly the decoded model's weights, a bound must return the kind it declares, pay at least the
configuration bits the run charges, not claim less than its own formula gives, and, when it
certifies a stochastic classifier, hand over that classifier so the harness can measure it. Each
failure is one line that names the plugin.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from bench.kit import bounds as bounds_math
from bench.kit.coding import CorruptMessage, section_lengths
from bench.contracts import BoundResult, Compressed, Evaluated, LayerCode

#: A certificate at or above this rounds to 100.00 % and is shown as vacuous.
VACUOUS = 0.99995
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


def _finite(*values: float | None) -> bool:
    return all(v is None or math.isfinite(v) for v in values)


def recompute_bound(form: str, empirical_term: float, n: int, kl_nats: float, delta: float,
                    delta_prime: float, alpha: float | None) -> float:
    """The error bound a row's own columns give (its ``form`` at ``δ − δ'``)."""
    kwargs = {"alpha": alpha} if form == "catoni" and alpha is not None else {}
    return bounds_math.error_bound(form, empirical_term, n, max(kl_nats, 0.0), delta - delta_prime, **kwargs)


def check_bound_result(result: Any, bound: str, declared_kind: str, evaluated: Evaluated, delta: float,
                       hparam_bits: float) -> BoundResult:
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
    if result.target == "decoded" and result.empirical_term < evaluated.train_err - TOLERANCE:
        raise ContractError(f"bound '{bound}' certifies the decoded model with an empirical term "
                            f"{result.empirical_term} below its training error {evaluated.train_err}")
    if result.target == "stochastic" and result.posterior is None:
        raise ContractError(f"bound '{bound}' certifies a stochastic classifier but returned no posterior "
                            f"to measure its test error")
    if result.hparam_bits is None or result.hparam_bits < hparam_bits - TOLERANCE:
        raise ContractError(f"bound '{bound}' pays {result.hparam_bits} configuration bits, the run's grids "
                            f"cost {hparam_bits:g}")
    if result.form is not None and result.kl_nats is not None:
        own = recompute_bound(result.form, result.empirical_term, evaluated.n_train, result.kl_nats, delta,
                              result.delta_prime, result.alpha)
        if result.error_bound < own - TOLERANCE:
            raise ContractError(f"bound '{bound}': certificate {result.error_bound} is below what its own "
                                f"{result.form} formula gives ({own})")
    return result


def bound_columns(result: BoundResult, evaluated: Evaluated, seconds: float, delta: float,
                  hparam_bits: float) -> dict[str, Any]:
    """A checked bound result as table columns (target test error and refutation come later)."""
    return {
        "status": "ok", "error": None, "bound_kind": result.kind, "error_bound": float(result.error_bound),
        "empirical_term": float(result.empirical_term), "kl_nats": result.kl_nats,
        "message_bits": result.message_bits if result.message_bits is not None else float(evaluated.compressed.bits),
        "length_code_bits": result.length_code_bits,
        "hparam_bits": result.hparam_bits if result.hparam_bits is not None else hparam_bits,
        "adjustment_nats": result.adjustment_nats, "delta": delta, "mc_samples": result.mc_samples,
        "mc_errors": result.mc_errors,
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
