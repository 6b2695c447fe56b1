"""Write a working third-party plugin package (a compressor, a bound or a task) to start from."""

from __future__ import annotations

import argparse
import re
import textwrap
from pathlib import Path

PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "bench-{slug}"
version = "0.1.0"
description = "A compression-bench {kind} plugin: {name}"
requires-python = ">=3.11"
dependencies = ["compression-bench"]

[project.entry-points.compression_bench]
{name} = "{package}.plugin"

[tool.setuptools]
packages = ["{package}"]
"""

COMPRESSOR = '''\
"""Compressor ``{name}``: each weight tensor as its sign times the mean magnitude of its sign, the
signs entropy-coded (a real message that decodes, from the prior alone, to the evaluated model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

import numpy as np

from bench.api import Compressed, Compressor, Ge, Prior, RunContext, hookimpl
from bench.kit.quantization import TensorCode, coded_tensor_names, decode_model, encode_model


@dataclass(frozen=True)
class Params:
    shrink: Annotated[float, Ge(0)] = 1.0  # a factor on both magnitudes (1: the means)


class {cls}(Compressor):
    name: ClassVar[str] = "{name}"
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = "sign of each weight times the mean magnitude of its sign"
    Params = Params
    # what decode reads: nothing, the magnitudes travel in the message (so `shrink` is free: every
    # certificate pays only for the parameters named here)
    decoder_params: ClassVar[tuple[str, ...]] = ()

    def compress(self, ctx: RunContext) -> Compressed:
        model = ctx.base_model()
        codes = []
        for tensor in coded_tensor_names(model):
            w = model.get_parameter(tensor).detach().cpu().numpy().ravel()
            positive = w > 0
            magnitude = [float(-np.abs(w[~positive]).mean()) if (~positive).any() else 0.0,
                         float(w[positive].mean()) if positive.any() else 0.0]
            codebook = np.array(magnitude, dtype=np.float32) * self.params.shrink
            codes.append(TensorCode(tensor, tuple(model.get_parameter(tensor).shape), None, codebook,
                                    positive.astype(np.int64)))
        encoded = encode_model(model, codes, False, "float16", "float16")
        return Compressed(message=encoded.message, model=encoded.model, layers=encoded.layers,
                          sections=encoded.sections)

    def decode(self, message: bytes, prior: Prior):
        return decode_model(message, prior.make_model(), False, "float16", "float16")


@hookimpl
def bench_register_compressors(register) -> None:
    register({cls})
'''

BOUND = '''\
"""Bound ``{name}``: a point mass on the decoded model under the Occam prior of its message, turned
into an error bound with Hoeffding's inequality: ``ê + sqrt((KL + ln(1/δ)) / (2n))``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from bench.api import Bound, BoundResult, Evaluated, RunContext, classification_only, hookimpl
from bench.kit.bounds import occam_kl_nats


@dataclass(frozen=True)
class Params:
    pass


class {cls}(Bound):
    name: ClassVar[str] = "{name}"
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = "Occam bound of the message length in Hoeffding's form"
    bound_kind = "certificate"
    Params = Params

    def skip_reason(self, artifact: Evaluated, ctx: RunContext) -> str | None:
        return classification_only(ctx)

    def compute(self, artifact: Evaluated, ctx: RunContext) -> BoundResult:
        # the message, its length code and the configuration's code word: what the harness checks is paid
        kl = occam_kl_nats(artifact.compressed.bits, ctx.config_bits)
        n = artifact.n_train
        bound = min(1.0, artifact.train_err + math.sqrt((kl.nats + math.log(1 / ctx.delta)) / (2 * n)))
        # form "kl": Hoeffding's form is never below the kl inversion of the same columns, so the
        # harness can recompute that and check this bound is at least it
        return BoundResult(kind="certificate", error_bound=bound, empirical_term=artifact.train_err,
                           kl_nats=kl.nats, config_bits=kl.config_bits, delta=ctx.delta, target="decoded",
                           form="kl")


@hookimpl
def bench_register_bounds(register) -> None:
    register({cls})
'''

TASK = '''\
"""Task ``{name}``: scikit-learn's digits with a small MLP (a dataset, a model and a training recipe,
each by registered name)."""

from __future__ import annotations

from bench.api import TaskSpec, hookimpl


@hookimpl
def bench_register_tasks(register) -> None:
    register(TaskSpec(name="{name}", dataset="digits", model="mlp", model_params={{"widths": [24]}},
                      recipe={{"epochs": 20, "lr": 0.003}}, description="digits, MLP 64-24-10"))
'''

TEST = '''\
"""The plugin through the real ``bench`` command: listed, run, ranked."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(sys.executable).parent / "bench"


def test_listed_run_and_ranked(tmp_path):
    listed = subprocess.run([str(BENCH), "list", "{plural}"], capture_output=True, text=True)
    assert "{name}" in listed.stdout
    out = subprocess.run([str(BENCH), "run", {run_args}, "--results", str(tmp_path / "results")],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "{name}" in out.stdout
'''

RUN_ARGS = {
    "compressor": '"--tasks", "digits-mlp", "--compressors", "{name}", "--bounds", "occam"',
    "bound": '"--tasks", "digits-mlp", "--compressors", "quantize", "--bounds", "{name}"',
    "task": '"--tasks", "{name}", "--compressors", "quantize", "--bounds", "occam"',
}
PLURAL = {"compressor": "compressors", "bound": "bounds", "task": "tasks"}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the plugin's registered name (letters, digits, '-')")
    parser.add_argument("--kind", choices=["compressor", "bound", "task"], default="compressor")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder to create the package in")


def write(name: str, kind: str, out: Path) -> Path:
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        from bench.api.params import ConfigError

        raise ConfigError(f"plugin name '{name}' must be lower-case letters, digits and '-', starting with a letter")
    slug = name
    package = "bench_" + name.replace("-", "_")
    cls = "".join(part.capitalize() for part in name.split("-"))
    root = out / f"bench-{slug}"
    if root.exists():
        from bench.api.params import ConfigError

        raise ConfigError(f"{root} exists already")
    (root / package).mkdir(parents=True)
    (root / "tests").mkdir()
    source = {"compressor": COMPRESSOR, "bound": BOUND, "task": TASK}[kind]
    (root / "pyproject.toml").write_text(PYPROJECT.format(slug=slug, kind=kind, name=name, package=package))
    (root / package / "__init__.py").write_text(f'"""The compression-bench {kind} plugin {name}."""\n')
    (root / package / "plugin.py").write_text(source.format(name=name, cls=cls))
    (root / "tests" / "test_plugin.py").write_text(TEST.format(
        name=name, plural=PLURAL[kind], run_args=RUN_ARGS[kind].format(name=name)))
    (root / "README.md").write_text(textwrap.dedent(f"""\
        # bench-{slug}

        A compression-bench {kind} plugin. Install it next to compression-bench and it is listed, run and
        ranked: `pip install -e .`, then `bench list {PLURAL[kind]}` and `python -m pytest tests`.
        """))
    return root


def run(args: argparse.Namespace) -> int:
    root = write(args.name, args.kind, args.out)
    print(f"wrote {root}: pip install -e {root}, then `bench list {PLURAL[args.kind]}`")
    return 0
