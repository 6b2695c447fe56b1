"""The contracts between the harness and its plugins (see DESIGN.md).

A plugin subclasses one of ``Dataset``, ``ModelFamily``, ``Compressor`` or ``Bound`` (or builds a
``TaskSpec``) and hands it to the ``register`` callback of the matching hook. The harness knows plugins
only through what is declared here.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import (TYPE_CHECKING, Annotated, Any, Callable, ClassVar, ContextManager, Iterator, Literal, Mapping,
                    Protocol)

import torch
from torch import nn

from bench.api.errors import PRIOR_ONLY, DatasetUnavailable  # noqa: F401  (part of the plugin contract)
from bench.api.jobs import Job, JobResult, Tick, Work
from bench.api.specs import Recipe, TaskSpec
from bench.kit.ranges import Ge, Gt
from bench.kit.types import LayerCode, Posterior, Split  # noqa: F401  (part of the plugin contract)
from bench.api.params import build_params, params_dict

if TYPE_CHECKING:
    from pathlib import Path

BoundKind = Literal["certificate", "expectation", "lower_bound"]
BOUND_KINDS: tuple[str, ...] = ("certificate", "expectation", "lower_bound")


@dataclass(frozen=True)
class NoParams:
    """For registered objects without parameters."""


class DecoderParams:
    """A compressor's parameters as ``decode`` sees them: the decoder-side ones only. Reading an
    encoder-side parameter is an ``AttributeError`` that names it, so a decoder that needs an
    undeclared parameter fails its own round-trip tests instead of silently reading a default."""

    def __init__(self, params: Any, visible: tuple[str, ...], owner: str) -> None:
        object.__setattr__(self, "_params", params)
        object.__setattr__(self, "_visible", frozenset(visible))
        object.__setattr__(self, "_owner", owner)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in self._visible:
            return getattr(self._params, name)
        raise AttributeError(f"compressor '{self._owner}': parameter '{name}' is encoder-side, so decode does "
                             f"not receive it (declare it in decoder_params if the decoder needs it)")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("parameters are frozen")


class Registered:
    """Base of every registered class: a name, a version, a one-line description and ``Params``.

    Parameters are validated once, at construction (scikit-learn style); ``self.params`` is the
    validated dataclass instance.
    """

    kind: ClassVar[str] = "object"
    name: ClassVar[str] = ""
    version: ClassVar[str] = "0.1.0"
    description: ClassVar[str] = ""
    Params: ClassVar[type] = NoParams
    #: Named random streams (``ctx.generator(name)``) pinned at offsets of their own. Only for keeping
    #: the messages of an existing plugin byte-identical: a new plugin leaves it empty (names hash).
    streams: ClassVar[dict[str, int]] = {}

    def __init__(self, **params: Any) -> None:
        self.params = build_params(self.Params, params, owner=f"{self.kind} '{self.name}'")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return params_dict(cls.Params())

    def params_dict(self) -> dict[str, Any]:
        return params_dict(self.params)

    @classmethod
    def paid_params(cls) -> tuple[str, ...] | None:
        """The parameters the configuration code charges for (``bench.configcode``): ``None``, every
        parameter. Compressors narrow it to what their decoder needs, bounds to what their prior
        depends on, datasets to what shapes the sample."""
        return None


# --------------------------------------------------------------------------------------------- data
class WithheldSplit:
    """Stands in for the test split in what plugins see: the harness alone evaluates on test data, so a
    compressor or bound cannot select, fit or certify on it."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise PermissionError("the test set is withheld from plugins: the harness measures test errors itself")

    def __len__(self) -> int:
        raise PermissionError("the test set is withheld from plugins: the harness measures test errors itself")


@dataclass
class DataBundle:
    """A dataset's splits. With a data-dependent prior, ``prior_indices`` (sorted) picks ``S_prior`` out
    of the training set; the rest is ``S_bound``, the sample every bound is computed on."""

    train: Split
    test: Split
    input_shape: tuple[int, ...]
    num_classes: int  # 0 for regression
    task_type: Literal["classification", "regression"] = "classification"
    prior_indices: torch.Tensor | None = None

    def without_test(self) -> "DataBundle":
        return dataclasses.replace(self, test=WithheldSplit(len(self.test)))  # type: ignore[arg-type]

    def _pick(self, keep_prior: bool) -> Split:
        mask = torch.zeros(len(self.train), dtype=torch.bool)
        if self.prior_indices is not None:
            mask[self.prior_indices] = True
        idx = torch.nonzero(mask if keep_prior else ~mask).flatten()
        return Split(self.train.x[idx], self.train.y[idx])

    def prior_split(self) -> Split:
        """``S_prior``: what a data-dependent prior is trained on (empty without one)."""
        return self._pick(True)

    def bound_split(self) -> Split:
        """``S_bound``: the whole training set, or what the prior did not see."""
        return self.train if self.prior_indices is None else self._pick(False)

    def for_bounds(self) -> "DataBundle":
        """The bundle a bound sees: ``S_bound`` as its training set, no test set."""
        return dataclasses.replace(self, train=self.bound_split(), prior_indices=None).without_test()


class Dataset(Registered):
    """A dataset with one fixed, deterministic train/test split.

    ``sample_params``: the parameters that shape the sample or the prior (``None``: all of them), which
    every certificate's configuration code pays for."""

    kind: ClassVar[str] = "dataset"
    sample_params: ClassVar[tuple[str, ...] | None] = None

    @classmethod
    def paid_params(cls) -> tuple[str, ...] | None:
        return cls.sample_params

    def load(self, data_dir: "Path | None", download: bool) -> DataBundle:
        raise NotImplementedError


class ModelFamily(Registered):
    """A model architecture, built for a dataset's input shape and number of classes."""

    kind: ClassVar[str] = "model"

    def build(self, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
        raise NotImplementedError


# ------------------------------------------------------------------------------------ run context
ProgressFactory = Callable[..., Any]  # progress(total=..., desc=...) -> tqdm-like object


@dataclass
class TaskInstance:
    """A task made concrete for one run: data loaded, model family resolved."""

    name: str
    spec: TaskSpec
    data: DataBundle
    recipe: Recipe
    config: dict[str, Any]  # the canonical configuration that determines this task
    build_model: Callable[[], nn.Module]  # unseeded constructor (the harness seeds it)

    @property
    def n_train(self) -> int:
        return len(self.data.train)

    @property
    def num_classes(self) -> int:
        return self.data.num_classes


@dataclass(frozen=True)
class PriorSpec:
    """The prior as plain data: what was fixed before seeing the sample the bound uses. It crosses
    process boundaries (the harness decodes in a separate process built from this alone). With a
    data-dependent prior it carries the prior model's weights (trained on ``S_prior`` only)."""

    task: dict[str, Any]  # the task's canonical configuration (dataset, model, recipe and their parameters)
    seed: int
    device: str
    input_shape: tuple[int, ...]
    num_classes: int
    task_type: str = "classification"
    prior_state: bytes | None = None  # torch.save of the prior model's state dict


@dataclass(frozen=True)
class Prior:
    """Everything ``Compressor.decode`` may use. Asking it for anything else (a trained model, data) is
    an ``AttributeError`` that says why."""

    spec: PriorSpec
    make_model: Callable[[], nn.Module]  # untrained, initialized from the run's seed

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def device(self) -> torch.device:
        return torch.device(self.spec.device)

    @property
    def task_config(self) -> dict[str, Any]:
        return self.spec.task

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.spec.input_shape)

    @property
    def num_classes(self) -> int:
        return self.spec.num_classes

    @property
    def task_type(self) -> str:
        return self.spec.task_type

    @property
    def has_prior_model(self) -> bool:
        return self.spec.prior_state is not None

    def prior_model(self) -> nn.Module:
        """The data-dependent prior's model (trained on ``S_prior`` only): a fresh copy each call."""
        if self.spec.prior_state is None:
            raise ValueError("this task has no data-dependent prior (its dataset's prior_fraction is 0)")
        import io

        model = self.make_model()
        state = torch.load(io.BytesIO(self.spec.prior_state), map_location=self.device, weights_only=True)
        model.load_state_dict(state)
        return model.eval()

    def generator(self, name: str) -> torch.Generator:
        """The same seeded CPU generator as ``RunContext.generator``: prior knowledge."""
        return seeded_generator(self.spec.seed, stream_offset(name))

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"Prior has no '{name}': {PRIOR_ONLY}")


def seeded_generator(seed: int, offset: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + offset)


def stream_seed(seed: int, name: str) -> int:
    """The integer seed of the random stream ``name`` of a run (for what takes a seed, not a generator)."""
    return seed * 1_000_003 + stream_offset(name)


class ModelCache(Protocol):
    """A content-addressed cache of models a plugin may keep what it trains in (``RunContext.cache``):
    the key of a configuration, a lock held while one process computes it, load and save."""

    def key(self, config: dict) -> str: ...

    def lock(self, key: str) -> ContextManager[None]: ...

    def load(self, key: str, model: nn.Module) -> bool: ...

    def save(self, key: str, model: nn.Module, config: dict) -> None: ...


#: Named random streams at fixed offsets, as their owners declared them (``Registered.streams``, and the
#: harness for its own): a name declared nowhere gets an offset of its own, hashed from the name.
_DECLARED_STREAMS: dict[str, tuple[int, str]] = {}


def declare_streams(streams: Mapping[str, int], owner: str) -> None:
    """Record ``owner``'s streams at their offsets; one name cannot have two offsets."""
    for name, offset in streams.items():
        known = _DECLARED_STREAMS.get(name)
        if known is not None and known[0] != offset:
            raise ValueError(f"random stream '{name}' of {owner} is already declared at offset {known[0]} "
                             f"by {known[1]}")
        _DECLARED_STREAMS[name] = (int(offset), owner)


def stream_offset(name: str) -> int:
    if not isinstance(name, str):
        raise TypeError(f"random streams are named (e.g. 'myplugin.shuffle'), got {name!r}")
    if name in _DECLARED_STREAMS:
        return _DECLARED_STREAMS[name][0]
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") + (1 << 32)


def _cpu_outputs(model: nn.Module, split: Split) -> torch.Tensor:
    from bench.kit.evaluation import predict

    return predict(model, split.x).detach().cpu()


@dataclass
class RunContext:
    """What a compressor or a bound may use. Shared by both; bounds also get ``delta`` and the
    configuration bits ``config_bits`` they must pay (``bench.configcode``).

    ``task.data.test`` is withheld: only the harness evaluates on test data. A bound's training set is
    ``S_bound`` (with a data-dependent prior, the part of the training set the prior did not see)."""

    task: TaskInstance
    seed: int
    device: torch.device
    make_model: Callable[[], nn.Module]  # untrained, initialized from the run's seed (part of the prior)
    base_model: Callable[[], nn.Module]  # a fresh copy of the cached trained model
    evaluate: Callable[[nn.Module, Split], float]  # error rate (or MSE for regression) of a model
    progress: ProgressFactory
    cache: Callable[[str], ModelCache]  # cache(namespace): where a plugin keeps what it trained
    delta: float = 0.05
    config_bits: float = 0.0  # bounds: L(c), the length of the cell's configuration under the configuration code
    prior: Prior | None = None  # what decode will get
    # a model's outputs (logits) on a split, on the CPU and read-only; for bounds, kept per (model, split)
    # by the harness, so the decoded model's come from its evaluation and the base model's are computed once
    outputs: Callable[[nn.Module, Split], torch.Tensor] = _cpu_outputs

    @property
    def hparam_bits(self) -> float:
        """The old name of ``config_bits`` (kept for plugins written against it)."""
        return self.config_bits

    def generator(self, name: str) -> torch.Generator:
        """A CPU torch generator of the run's seed and the stream ``name``: the same name gives the
        same stream on every machine, different names independent ones."""
        return seeded_generator(self.seed, stream_offset(name))


# ------------------------------------------------------------------------------------- artifacts
@dataclass
class Compressed:
    """A compressor's output: a real message that decodes, given the prior, to the evaluated model."""

    message: bytes
    model: nn.Module | None = None  # the compressor's own model; decoding must reproduce it
    layers: list[LayerCode] | None = None  # per-layer (S, C, Q), for bounds that need it
    stats: dict[str, float] = field(default_factory=dict)  # n_params_kept, neurons_kept, flops, ...
    extras: dict[str, Any] = field(default_factory=dict)
    # (name, bytes) of each section of a ``bench.kit.coding.pack_sections`` message, in order; the harness
    # checks them against the message's own header before any bound uses them
    sections: list[tuple[str, int]] | None = None

    @property
    def bits(self) -> int:
        return 8 * len(self.message)


class Compressor(Registered):
    """``compress`` produces a message; ``decode`` is a pure function of the message and the prior.

    The harness runs ``decode`` in a fresh process that has no training data, no trained model and an
    empty cache, and checks that the decoded model is bit-identical to ``Compressed.model``.

    ``decoder_params`` declares the parameters ``decode`` needs (``None``: all of them). They are the
    decoder-side part of the configuration, which every certificate pays for (``bench.configcode``);
    the others are encoder-side and free, and ``decode`` never sees them: it runs on an instance made
    by ``for_decoding``, where reading one is an ``AttributeError`` that names it."""

    kind: ClassVar[str] = "compressor"
    decoder_params: ClassVar[tuple[str, ...] | None] = None

    @classmethod
    def paid_params(cls) -> tuple[str, ...] | None:
        return cls.decoder_params

    @classmethod
    def decoder_side(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The part of a (validated, canonical) parameter table that ``decode`` receives."""
        names = cls.decoder_params
        return dict(params) if names is None else {k: v for k, v in params.items() if k in names}

    @classmethod
    def for_decoding(cls, params: dict[str, Any]) -> "Compressor":
        """An instance whose ``params`` hold the decoder-side values only (``decoder_side``): what the
        harness decodes with. Cross-field rules are not re-checked (they involve encoder-side
        parameters the decoder does not have); the values were validated when the run was built."""
        obj = cls.__new__(cls)
        full = build_params(cls.Params, params, owner=f"{cls.kind} '{cls.name}'", check=False)
        obj.params = full if cls.decoder_params is None else DecoderParams(full, cls.decoder_params, cls.name)
        return obj

    def skip_reason(self, ctx: RunContext) -> str | None:
        """Why this compressor does not apply to the task (``None``: it does); its cells are skipped."""
        return None

    def compress(self, ctx: RunContext) -> Compressed:
        raise NotImplementedError

    def decode(self, message: bytes, prior: Prior) -> nn.Module:
        raise NotImplementedError


@dataclass
class Evaluated:
    """An artifact after the harness decoded it and counted its training errors (the decoded model is
    what bounds see; its test error is the harness's, not theirs)."""

    compressed: Compressed
    model: nn.Module
    train_errors: int  # misclassified training examples (for regression: 0, see train_err)
    n_train: int
    train_err: float  # train_errors / n_train in float64 (the mean squared error for regression)


Target = Literal["decoded", "stochastic"]
TARGETS: tuple[str, ...] = ("decoded", "stochastic")


@dataclass
class BoundResult:
    """What a bound computed. ``target`` says what is certified: the decoded model itself, or a
    stochastic classifier around it (then ``posterior`` must be given, so the harness can measure its
    test error). ``form``, ``alpha`` and ``delta_prime`` say how the error bound follows from
    ``empirical_term`` and ``kl_nats``, so the harness can recompute it (ledger headline, verify)."""

    kind: BoundKind
    error_bound: float
    empirical_term: float
    kl_nats: float | None = None
    message_bits: float | None = None  # informational: a row's message bits are the artifact's
    length_code_bits: float | None = None  # informational: a row's length code is the artifact's
    config_bits: float | None = None  # the configuration bits the KL pays (at least ctx.config_bits)
    adjustment_nats: float | None = None  # negative: nats gained back (robustness adjustment)
    delta: float | None = None
    mc_samples: int | None = None  # m: Monte-Carlo predictions behind a stochastic empirical term
    mc_errors: int | None = None  # how many of the m were errors
    extras: dict[str, Any] = field(default_factory=dict)
    target: Target = "decoded"
    posterior: Posterior | None = None
    form: str | None = None  # binomial | kl | maurer | catoni (bench.kit.bounds.error_bound)
    alpha: float | None = None  # Catoni's α, for form = "catoni"
    delta_prime: float = 0.0  # the part of δ spent on a Monte-Carlo estimate; the bound uses δ − δ'
    hparam_bits: float | None = None  # the old name of config_bits

    def __post_init__(self) -> None:
        if self.config_bits is None and self.hparam_bits is not None:
            self.config_bits = self.hparam_bits
        if self.kind not in BOUND_KINDS:
            raise ValueError(f"bound kind must be one of {BOUND_KINDS}, got {self.kind!r}")
        if self.target not in TARGETS:
            raise ValueError(f"bound target must be one of {TARGETS}, got {self.target!r}")


class BoundSkipped(Exception):
    """Raised by ``compute`` (or its reason returned by ``skip_reason``) when a bound does not apply to
    an artifact: the cell is ``skipped`` with that reason."""


class Bound(Registered):
    """``bound_kind`` is declared before any data: a class attribute, or a property of the validated
    parameters when one plugin computes several kinds (the harness reads it from the instance).

    ``prior_params``: the parameters the bound's prior (and its Monte-Carlo term) depends on (``None``:
    all of them), which the configuration code charges for."""

    kind: ClassVar[str] = "bound"
    bound_kind: ClassVar[BoundKind] = "certificate"
    prior_params: ClassVar[tuple[str, ...] | None] = None

    @classmethod
    def paid_params(cls) -> tuple[str, ...] | None:
        return cls.prior_params

    def skip_reason(self, artifact: Evaluated, ctx: RunContext) -> str | None:
        """Why this bound cannot be computed for this artifact (``None``: it can)."""
        return None

    def compute(self, artifact: Evaluated, ctx: RunContext) -> BoundResult:
        raise NotImplementedError


class Executor(Registered):
    """Where a run's jobs execute (``bench.api.jobs``): ``execute`` calls ``work(job, tick)`` for every job
    (here, in other processes or on other machines that share the results folder: ``work`` is
    picklable) and yields each ``JobResult`` as it comes; ``tick(n)`` advances the progress bar by ``n``
    cells."""

    kind: ClassVar[str] = "executor"

    def execute(self, jobs: list[Job], work: Work, tick: Tick) -> Iterator[JobResult]:
        raise NotImplementedError

    def runs_here(self) -> bool:
        """Whether jobs run on this machine (so ``--device cuda`` needs a GPU here)."""
        return True


@dataclass(frozen=True)
class Kind:
    """One kind of registered object: its plural name (the CLI's and the registry's), its singular, the
    hook that registers it and what a registered object must be (a subclass of ``base``, or for tasks
    a ``TaskSpec`` instance)."""

    plural: str
    singular: str
    hook: str
    base: type


#: The one table of registry kinds.
KINDS: tuple[Kind, ...] = (
    Kind("datasets", "dataset", "bench_register_datasets", Dataset),
    Kind("models", "model", "bench_register_models", ModelFamily),
    Kind("tasks", "task", "bench_register_tasks", TaskSpec),
    Kind("compressors", "compressor", "bench_register_compressors", Compressor),
    Kind("bounds", "bound", "bench_register_bounds", Bound),
    Kind("executors", "executor", "bench_register_executors", Executor),
)
KIND_BY_NAME: dict[str, Kind] = {k.plural: k for k in KINDS}


def describe_params(obj: Any) -> dict[str, Any]:
    """Parameters with defaults of a registered class or task, for ``bench list``."""
    if isinstance(obj, TaskSpec):
        return obj.defaults()
    if dataclasses.is_dataclass(obj.Params):
        return obj.defaults()
    return {}
