"""Re-check a certificate from its evidence: decode the kept message in a fresh prior-only process,
check the claimed per-layer structure and section layout against it, re-evaluate it, re-derive the
configuration bits from the row's own configuration under the configuration code (``bench.configcode``),
recompute the bound and the target's test error, and compare everything with the row. Versions must
match too: a row made by another version of a plugin, or of the configuration code, is not re-checked
by this one."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from bench.configbits import code_of
from bench.configcode import CODE_VERSION
from bench.api.contracts import Compressed, TaskSpec
from bench.environment import resolve_device
from bench.ledger import Ledger
from bench.api.params import ConfigError
from bench.priordiag import prior_columns
from bench.progress import progress
from bench.registry import Registry
from bench.results import ResultsStore
from bench.rows import ContractError, check_layers, check_sections
from bench.cell import CellRunner, evaluate, evaluation_inputs
from bench.sandbox import Decoder
from bench.tasks import BaseModels, instantiate_task, prior_spec
from bench.cache import ModelCache, default_cache_dir

BOUND_TOLERANCE = 1e-9  # relative


@dataclass
class Verification:
    cell_id: str
    ok: bool
    checks: list[tuple[str, object, object, bool]] = field(default_factory=list)  # name, stored, recomputed, agree
    notes: list[str] = field(default_factory=list)
    problem: str | None = None

    def add(self, name: str, stored, recomputed, agree: bool) -> None:
        self.checks.append((name, stored, recomputed, agree))
        self.ok = self.ok and agree

    def fail(self, problem: str) -> "Verification":
        self.ok = False
        self.problem = problem
        return self

    def text(self) -> str:
        lines = [f"cell {self.cell_id}: {'AGREES' if self.ok else 'DIFFERS'}"]
        if self.problem:
            lines.append(f"  {self.problem}")
        for name, stored, recomputed, agree in self.checks:
            lines.append(f"  {'ok ' if agree else 'BAD'} {name}: stored {stored}, recomputed {recomputed}")
        lines += [f"  note {n}" for n in self.notes]
        return "\n".join(lines)


def find_row(df: pd.DataFrame, cell_id: str) -> pd.Series:
    rows = df[df["cell_id"].astype(str).str.startswith(cell_id) & (df["status"] == "ok")]
    if rows.empty:
        raise ConfigError(f"no ok row for cell '{cell_id}' in the results")
    if rows["cell_id"].nunique() > 1:
        raise ConfigError(f"cell prefix '{cell_id}' is ambiguous: {', '.join(sorted(rows['cell_id'].unique()))}")
    return rows.sort_values("started_at").iloc[-1]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value)


def _close(a, b, rel: float) -> bool:
    """Equal within ``rel`` (relative, at least absolute); two missing values also agree."""
    if _missing(a) or _missing(b):
        return _missing(a) and _missing(b)
    return abs(float(a) - float(b)) <= rel * max(1.0, abs(float(a)), abs(float(b)))


def verify_cell(cell_id: str, results: Path, registry: Registry, data_dir: Path | None = None,
                device: str = "auto", decoder: Decoder | None = None) -> Verification:
    store = ResultsStore(results)
    row = find_row(store.read(), cell_id)
    report = Verification(str(row["cell_id"]), ok=True)
    try:
        message, meta, layers = store.load_artifact(str(row["artifact_id"]), check=False)  # checked below
    except (OSError, ValueError, KeyError) as exc:
        return report.fail(f"the artifact's evidence cannot be read: {type(exc).__name__}: {exc}")
    tc = meta["task"]
    spec = TaskSpec(name=tc["name"], dataset=tc["dataset"], model=tc["model"],
                    dataset_params=tc["dataset_params"], model_params=tc["model_params"], recipe=tc["recipe"])
    task = instantiate_task(spec, registry, data_dir)
    seed = int(meta["seed"])
    dev = resolve_device(device)
    compressor_cls = registry.get("compressors", meta["compressor"])
    bound_cls = registry.get("bounds", str(row["bound"]))
    report.add("compressor version", meta["compressor_version"], compressor_cls.version,
               compressor_cls.version == meta["compressor_version"])
    report.add("bound version", row["bound_version"], bound_cls.version, bound_cls.version == row["bound_version"])
    if not report.ok:
        return report.fail("the installed plugin versions did not make this row; install those versions to verify it")
    digest = hashlib.sha256(message).hexdigest()
    report.add("message sha256", meta["sha256"][:16], digest[:16], meta["sha256"] == digest)
    report.add("message bits", int(meta["bits"]), 8 * len(message), float(meta["bits"]) == 8 * len(message))

    # configuration bits: re-derived from the row's configuration under the code, never read from the row
    stored_code = None if _missing(row.get("config_code")) else str(row["config_code"])
    report.add("configuration code version", stored_code, CODE_VERSION, stored_code == CODE_VERSION)
    if stored_code != CODE_VERSION:
        return report.fail(f"the row was paid under configuration code version {stored_code}; this installation "
                           f"has version {CODE_VERSION}")
    try:
        code = code_of(registry, meta["task"], seed, float(row["delta"]), meta["compressor"], meta["compressor_params"],
                       str(row["bound"]), json.loads(row["bound_params"]))
    except (ValueError, KeyError) as exc:
        return report.fail(f"cannot re-derive the configuration bits from the row's configuration: {exc}")
    config_bits = float(code.length)
    stored_bits = None if _missing(row.get("config_bits")) else float(row["config_bits"])
    report.add("configuration bits", stored_bits, config_bits, _close(stored_bits, config_bits, 0.0))
    report.notes.append(f"configuration bits recomputed under configuration code v{CODE_VERSION}: "
                        + "; ".join(f"{what} {bits}" for what, bits in code.itemized()))
    tried = Ledger(results).count(str(row["sample_id"]))
    report.notes.append(f"ledger: {tried} configuration{'' if tried == 1 else 's'} tried on this training sample "
                        f"in this folder (a record of the search; the code pays for it)")

    base_models = BaseModels(ModelCache(default_cache_dir()), dev, progress)
    own_decoder = decoder is None
    decoder = decoder or Decoder()
    try:
        decoded = decoder.decode(meta["compressor"], compressor_cls.version,
                                 compressor_cls.decoder_side(meta["compressor_params"]),
                                 message, prior_spec(task, seed, dev, base_models), inputs=evaluation_inputs(task))
        model, model_digest = decoded.model, decoded.digest
    except Exception as exc:  # a corrupted message or a decoder that needs more than the prior
        return report.fail(f"decoding the stored message from the prior alone failed: {type(exc).__name__}: {exc}")
    finally:
        if own_decoder:
            decoder.close()
    report.add("decoded model digest", str(meta.get("model_digest"))[:16], model_digest[:16],
               meta.get("model_digest") == model_digest)
    compressed = Compressed(message=message, layers=layers, stats=meta.get("stats", {}),
                            extras=meta.get("extras", {}), sections=meta.get("sections"))
    for what, check in (("section layout", lambda: compressed.sections and check_sections(message, compressed.sections, meta["compressor"])),
                        ("layers (S, C, Q)", lambda: layers and check_layers(layers, model, meta["compressor"]))):
        try:
            check()
            report.add(f"{what} against the decoded message", "claimed", "matches", True)
        except ContractError as exc:
            report.add(f"{what} against the decoded message", "claimed", str(exc), False)
    evaluated, measured, _ = evaluate(model, compressed, task, decoded.outputs)
    for key, value in (("train_errors", evaluated.train_errors), ("test_errors", measured.test_errors),
                       ("train_err", evaluated.train_err), ("test_err", measured.test_err)):
        stored = None if _missing(row[key]) else row[key]
        report.add(key, stored, value, _close(stored, value, 0.0))

    for key, value in prior_columns(task, seed, base_models, float(row["delta"])).items():  # a data-dependent prior's
        stored = None if _missing(row.get(key)) else row[key]
        report.add(key, stored, value, _close(stored, value, BOUND_TOLERANCE))

    cells = CellRunner(dev, base_models, float(row["delta"]), None, decoder=decoder)
    bound = bound_cls(**json.loads(row["bound_params"]))
    cols = cells.bound(task, seed, bound_cls.name, bound, evaluated, measured, code)  # as the run did it
    if cols["status"] != "ok":
        return report.fail(f"recomputing the bound failed: {cols['error']}")
    for key in ("kl_nats", "error_bound", "target_test_err"):
        stored = None if _missing(row[key]) else float(row[key])
        report.add(key, stored, cols[key], _close(stored, cols[key], BOUND_TOLERANCE))
    report.add("target", row["target"], cols["target"], row["target"] == cols["target"])
    return report
