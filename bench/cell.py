"""Running one artifact's cells: compress (in the worker's compressing process), decode and evaluate
(in a fresh decoding process), and bound. ``bench run``'s workers do it for every job; ``bench verify``
does the decoding, evaluating and bounding again for one cell, with the same code.

The harness trusts none of it: the compressor's claimed structure is checked against the message and the
decoded model, the decoded model must be the compressor's own (bit for bit, and in what it computes),
and a bound's result must pass ``bench.rows``'s checks before it becomes a row.
"""

from __future__ import annotations

import hashlib
import math
import pickle
import time
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from bench.api.contracts import (Bound, BoundResult, BoundSkipped, Compressed, Evaluated, PriorSpec, RunContext,
                                 TaskInstance, TaskSpec, seeded_generator)
from bench.api.jobs import JobReport
from bench.api.params import canonical_json
from bench.children import Child, ChildDied
from bench.context import build_context
from bench.configcode import Coded
from bench.kit.evaluation import predict
from bench.kit.models import first_difference, state_digest
from bench.kit.stochastic import posterior_error_count
from bench.progress import say
from bench.rows import (ContractError, bound_columns, check_bound_result, check_layers, check_same_outputs,
                        check_sections, target_columns)
from bench.sandbox import Decoder
from bench.results import ResultsStore
from bench.stats import inference_flops
from bench.tasks import BaseModels, seeded_model_factory
from bench.timeouts import time_limit
from bench.timing import Stopwatch

if TYPE_CHECKING:
    from bench.compressing import CompressReply
    from bench.planning import PluginConfig

#: The offset of the harness's own random stream: the draws that measure a stochastic target's test error.
TARGET_TEST_STREAM = 7_777_777
#: What a compressor reports of its own search (bench.api.best_compressed) that each row repeats in its extras.
SEARCH_EXTRAS = ("chosen", "note", "search")


class CompressFailed(RuntimeError):
    """``compress`` failed in its own process; the message is its error, the traceback its own."""

    def __init__(self, error: str, tb: str | None) -> None:
        super().__init__(error)
        self.tb = tb


@dataclass
class Measured:
    """The decoded model's test errors: the harness's alone, never shown to plugins."""

    test_errors: int | None
    n_test: int
    test_err: float
    train_ce: float | None = None  # mean cross-entropy (nats) of the decoded model, for the tables
    test_ce: float | None = None


# ----------------------------------------------------------------------------------- evaluating
def evaluation_inputs(task: TaskInstance) -> dict[str, torch.Tensor]:
    """The inputs the decoded model is evaluated on, without their labels: ``S_bound`` and the test split."""
    return {"train": task.data.bound_split().x, "test": task.data.test.x}


def evaluate(decoded: nn.Module, compressed: Compressed, task: TaskInstance,
             outputs: dict[str, torch.Tensor] | None = None) -> tuple[Evaluated, Measured, torch.Tensor]:
    """Exact error counts of the decoded model: training (what bounds see, on ``S_bound``) and test (the
    harness's), from its ``outputs`` on ``evaluation_inputs`` (computed in the decoding process; here
    when not given), and the training outputs themselves."""
    decoded.eval()
    data = task.data
    sample = data.bound_split()  # the training error a bound uses is on S_bound
    outputs = outputs or {name: predict(decoded, x).detach() for name, x in evaluation_inputs(task).items()}
    train_out, test_out = outputs["train"], outputs["test"]
    train_ce = test_ce = None
    if data.task_type == "classification":
        train_errors, train_ce = _errors_and_ce(train_out, sample.y)
        test_errors, test_ce = _errors_and_ce(test_out, data.test.y)
        train_err, test_err = train_errors / len(sample), test_errors / len(data.test)
    else:
        train_errors, test_errors = None, None
        train_err, test_err = (float(torch.nn.functional.mse_loss(out.double().cpu(), y.double().cpu()))
                               for out, y in ((train_out, sample.y), (test_out, data.test.y)))
    if not (math.isfinite(train_err) and math.isfinite(test_err)):
        raise FloatingPointError(f"decoded model has non-finite error (train {train_err}, test {test_err})")
    return (Evaluated(compressed, decoded, train_errors, len(sample), train_err),
            Measured(test_errors, len(data.test), test_err, train_ce, test_ce), train_out.float().cpu())


def _errors_and_ce(outputs: torch.Tensor, y: torch.Tensor) -> tuple[int, float]:
    """Misclassified examples (an exact integer) and the mean cross-entropy in nats (float64)."""
    outputs, y = outputs.cpu(), y.cpu()
    errors = int((outputs.argmax(dim=1) != y).sum())
    ce = float(torch.nn.functional.cross_entropy(outputs.double(), y, reduction="sum")) / max(len(y), 1)
    return errors, ce


def measure_target(task: TaskInstance, seed: int, result: BoundResult, measured: Measured,
                   delta: float) -> dict[str, Any]:
    """The test error of what the row certifies, measured by the harness, and whether it refutes the
    row. A stochastic target is sampled with the harness's own generator, one draw per example."""
    if result.target == "stochastic" and task.data.task_type == "classification":
        errors, trials = posterior_error_count(result.posterior, task.data.test,
                                               seeded_generator(seed, TARGET_TEST_STREAM))
        rate = errors / trials
    else:
        errors, trials, rate = measured.test_errors, measured.n_test, measured.test_err
    if measured.test_errors is None:  # regression: no counts, nothing to refute with
        errors, trials = None, None
    return target_columns(errors, trials, rate, result.error_bound, result.kind, delta)


def models_agree(a: nn.Module, b: nn.Module, x: torch.Tensor | None = None) -> str | None:
    """``None`` when ``b`` is bit-identical to ``a`` in every tensor of its state and, given inputs
    ``x``, computes the same outputs on them; else what differs."""
    if state_digest(a) != state_digest(b):
        return first_difference(a, b)
    if x is not None:
        try:
            check_same_outputs(predict(a, x).float().cpu(), predict(b, x).float().cpu(), "the model")
        except ContractError as exc:
            return str(exc)
    return None


def artifact_columns(task: TaskInstance, seed: int, evaluated: Evaluated, measured: Measured,
                     device: torch.device) -> dict[str, Any]:
    """The columns every bound's row of one artifact shares: sizes, exact error counts, costs."""
    c = evaluated.compressed
    n_params = count_params(evaluated.model)
    return {
        "n_train": evaluated.n_train, "n_test": measured.n_test, "n_params": n_params,
        "n_prior": len(task.data.train) - evaluated.n_train,
        "prior_fraction": float(task.config["dataset_params"].get("prior_fraction", 0.0)),
        "n_params_kept": int(c.stats.get("n_params_kept", n_params)),
        "message_bits": float(c.bits), "train_errors": evaluated.train_errors, "test_errors": measured.test_errors,
        "train_err": evaluated.train_err, "test_err": measured.test_err,
        "compression_ratio": 32.0 * n_params / max(c.bits, 1),
        "flops": inference_flops(evaluated.model, task.data.input_shape),
        "base_flops": inference_flops(seeded_model_factory(task, seed, device)(), task.data.input_shape),
        "model_digest": state_digest(evaluated.model), "train_ce": measured.train_ce, "test_ce": measured.test_ce,
    }


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class _State:
    """A state dict standing in for a model in ``first_difference``."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        self.state = state

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.state


# -------------------------------------------------------------------------------- the cell runner
class CellRunner:
    """Compresses, decodes, evaluates and bounds, for one worker (or one ``bench verify``): it owns the
    zygote its compressing and decoding processes are forked from, and the compressing process."""

    def __init__(self, device: torch.device, base_models: BaseModels, delta: float, limit: float | None,
                 data_dir: str | None = None, download: bool = False, decoder: Decoder | None = None) -> None:
        self.device, self.base_models, self.delta, self.limit = device, base_models, delta, limit
        self.data_dir, self.download = data_dir, download
        self.decoder = decoder or Decoder()
        self.compressing: Child | None = None
        self.clock = Stopwatch()
        self.outputs = base_models.outputs  # forward passes the bounds of this worker share

    def close(self) -> None:
        if self.compressing is not None:
            self.compressing.close()
            self.compressing = None
        self.decoder.close()

    def context(self, task: TaskInstance, seed: int, config_bits: float = 0.0, role: str = "compressor") -> RunContext:
        return build_context(task, seed, self.device, self.base_models, self.delta, config_bits, role,
                             memo=self.outputs if role == "bound" else None)

    # ---------------------------------------------------------------------------- compressing
    def compress(self, spec: TaskSpec, seed: int, compressor: str | None, params: dict[str, Any],
                 prior: PriorSpec | None) -> "CompressReply":
        """Run ``compress`` in the compressing process (forked from the zygote; never this one).
        ``compressor = None``: train the task's base model there (this process then loads it from the
        cache)."""
        from bench.compressing import CompressRequest

        name = compressor or "the base model"
        request = CompressRequest(spec=spec, seed=seed, device=str(self.device), delta=self.delta,
                                  compressor=compressor, params=params, prior=prior, limit=self.limit,
                                  data_dir=self.data_dir, download=self.download)
        if self.compressing is None or not self.compressing.alive():
            self.decoder.start(fork=self.device.type == "cpu")
            self.compressing = self.decoder.spawn("compressor", None)
        try:
            self.compressing.conn.send(request)
            _, data = self.compressing.receive(None)
        except ChildDied as exc:
            self.compressing = None
            raise CompressFailed(f"WorkerDied: the compressing process of '{name}' died ({exc})", None) from None
        reply = pickle.loads(data)
        if not reply.ok:
            raise CompressFailed(reply.error, reply.traceback)
        return reply

    # ------------------------------------------------------------------- decoding and evaluating
    def decode_and_evaluate(self, task: TaskInstance, compressed: Compressed, compressor: type, params: dict[str, Any],
                            prior: PriorSpec, expected_digest: str, own: "CompressReply | None" = None,
                            ) -> tuple[Evaluated, Measured, str]:
        """Decode ``compressed``'s message in a fresh process from the prior and the decoder-side
        parameters alone, check it against the compressor's model (its digest, its claimed structure
        and, when ``own`` is the compressing process's reply, its outputs) and count its errors from
        the outputs it computed there. Returns the evaluation and the decoded model's digest."""
        name = compressor.name
        with self.clock.phase("decode"):
            decoded = self.decoder.decode(name, compressor.version, compressor.decoder_side(params),
                                          compressed.message, prior, self.limit, evaluation_inputs(task))
        if decoded.digest != expected_digest:
            why = first_difference(_State(own.state), decoded.model) if own is not None else \
                "its digest is not the stored one"
            raise ContractError(f"compressor '{name}': the model decoded from the message and the prior alone "
                                f"is not the compressor's model ({why})")
        if compressed.sections is not None:
            check_sections(compressed.message, compressed.sections, name)
        if compressed.layers:
            check_layers(compressed.layers, decoded.model, name)
        evaluated, measured, outputs = evaluate(decoded.model, compressed, task, decoded.outputs)
        if own is not None:
            check_same_outputs(own.outputs, outputs, f"compressor '{name}'")
        self.outputs.put(decoded.digest, task.data.bound_split(), outputs)  # S_bound: a bound's training set
        return evaluated, measured, decoded.digest

    def obtain(self, task: TaskInstance, spec: TaskSpec, seed: int, comp: PluginConfig, artifact_id: str,
               prior: PriorSpec, store: ResultsStore, report: JobReport) -> tuple[Evaluated, Measured, float]:
        """The evaluated artifact (from the message ``store`` kept, or compressed now in the compressing
        process and kept there) decoded from the prior alone in a fresh process, its test errors and its
        compression time."""
        limit = self.limit
        loaded = store.load_artifact_or_set_aside(artifact_id)
        own = None
        if loaded is not None:
            message, meta, layers = loaded
            compressed = Compressed(message=message, layers=layers, stats=meta.get("stats", {}),
                                    extras=meta.get("extras", {}), sections=meta.get("sections"))
            expected, seconds = meta["model_digest"], float(meta.get("compress_seconds", float("nan")))
        else:
            report.phase(f"compressor {comp.name}", limit)
            with self.clock.phase(f"compress {comp.name}"):
                own = self.compress(spec, seed, comp.name, comp.params, prior)
            compressed, expected, seconds = own.compressed(), own.digest, own.seconds
        report.phase(f"decoding and evaluating for compressor {comp.name}", limit)
        with self.clock.phase("evaluate"):
            evaluated, measured, digest = self.decode_and_evaluate(task, compressed, comp.cls, comp.params, prior,
                                                                   expected, own)
        if loaded is None:
            store.save_artifact(artifact_id, compressed.message, {
                "artifact_id": artifact_id, "task": task.config, "seed": seed, "compressor": comp.name,
                "compressor_version": comp.version, "compressor_params": comp.params,
                "device": self.device.type, "stats": compressed.stats, "extras": compressed.extras,
                "sections": compressed.sections, "compress_seconds": seconds, "bits": compressed.bits,
                "sha256": hashlib.sha256(compressed.message).hexdigest(), "model_digest": digest,
            }, compressed.layers)
        return evaluated, measured, seconds

    # -------------------------------------------------------------------------------- bounding
    def bound(self, task: TaskInstance, seed: int, name: str, instance: Bound, evaluated: Evaluated,
              measured: Measured, code: Coded) -> dict[str, Any]:
        """One bound cell's columns: computed under the time limit and checked, or ``skipped``/``failed``."""
        config_bits = float(code.length)
        ctx = self.context(task, seed, config_bits, role="bound")
        try:
            reason = instance.skip_reason(evaluated, ctx)
            if reason:
                return {"status": "skipped", "error": reason}
            start = time.perf_counter()
            with time_limit(self.limit, f"bound {name}"), self.clock.phase(f"bound {name}"):
                result = instance.compute(evaluated, ctx)
                seconds = time.perf_counter() - start
                check_bound_result(result, name, instance.bound_kind, evaluated, ctx.delta, config_bits)
                cols = bound_columns(result, evaluated, seconds, ctx.delta, config_bits)
                with self.clock.phase("targets' Monte Carlo"):
                    cols.update(measure_target(task, seed, result, measured, ctx.delta))
        except BoundSkipped as exc:
            return {"status": "skipped", "error": str(exc) or "the bound does not apply"}
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            say(f"{task.name} seed={seed} bound {name}: {error}")
            return {"status": "failed", "error": error,
                    "extras": canonical_json({"traceback": traceback.format_exc(limit=8)})}
        searched = {k: evaluated.compressed.extras[k] for k in SEARCH_EXTRAS if k in evaluated.compressed.extras}
        cols["extras"] = canonical_json({"bound": result.extras, "stats": evaluated.compressed.stats,
                                         "config": code.itemized(), **({"compressor": searched} if searched else {})})
        return cols
