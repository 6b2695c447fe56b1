"""The configuration code: a prefix-free code ``L(c)`` over configurations, fixed in advance (BOUNDS.md §1).

A certificate's prior is ``π(c, h) = 2^-L(c) · 2^-(ℓ + len(ℓ))``: a configuration ``c`` (what the decoder
and the bound's prior depend on) and a message ``h`` under it. Because the code is prefix-free, Kraft's
inequality gives ``Σ π ≤ 1``, so every bound that pays ``L(c)`` holds at once for every configuration
and every message, however the search that produced them ran: adaptive, in any results folder, on any
machine. That is what replaces the grid bits and the ledger's ``log2 K`` of earlier versions.

The code is defined once here, versioned (``CODE_VERSION``), and written out bit by bit (``encode``)
and read back (``decode``), so that its prefix-freeness is a tested fact, not a claim. A configuration,
given the dataset of the sample (the code is conditioned on it: a bound is about one sample), is

1. the dataset's sample-shaping parameters (``train_fraction``, ``merge_classes``, ``prior_fraction``,
   ...), a parameter block (below);
2. the model family's name and its parameter block; with a data-dependent prior (``prior_fraction`` > 0)
   also the training recipe of the prior's model, a parameter block over ``Recipe``;
3. the seed (a signed integer) and δ (one bit at the default 0.05, else the bit and the number);
4. the compressor's name and the block of its **decoder-side** parameters;
5. the bound's name and the block of its **prior-side** parameters.

Names: one index among the names this version knows for the kind, or an escape index followed by the
name's bytes. A parameter block, over the plugin's declared paid parameters (sorted by name): the number
``k`` of parameters that differ from their declared defaults (Elias delta of ``k + 1``: one bit when all
are at their defaults), then for each, its index among the paid names (``⌈log2 P⌉`` bits) and its value
coded relative to its declared type:

* ``bool``: nothing (a non-default bool has one possible value);
* a choice (``Literal``): its index among the other choices (``⌈log2 (C - 1)⌉`` bits);
* ``int``: Elias delta of its zigzag map plus one (``0, -1, 1, -2, ... -> 1, 2, 3, 4, ...``);
* ``float``: its shortest decimal form ``M·10^E`` (Python's ``repr``) as two such integers, ``M`` then
  ``E`` (no ``E`` when ``M = 0``);
* ``str``: its UTF-8 length (Elias delta of length + 1) and bytes;
* lists and tuples: the length, then the items; optional values: one bit (none or a value) first;
  anything untyped: a 3-bit tag of its JSON type, then the value.

Every piece is itself prefix-free with a Kraft sum of at most one, so the whole is.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal, Mapping, Sequence, Union

CODE_VERSION = "1"
DEFAULT_DELTA = 0.05

#: The names version 1 knows by index, per kind (the index is the position; the last index escapes to
#: the name's bytes). A name added to a kind's tuple makes a new version of the code.
KNOWN_NAMES: dict[str, tuple[str, ...]] = {
    "model": ("mlp", "lenet-300-100", "lenet5", "convnet", "linear", "timm"),
    "compressor": ("dense", "quantize", "prune", "dns", "hw-kmeans", "drhw-kmeans", "id", "vibnet", "prior"),
    "bound": ("occam", "catoni", "mi", "hessian"),
}


class ConfigCodeError(ValueError):
    """A configuration the code cannot write, or bits it cannot read back; the message says which."""


# ------------------------------------------------------------------------------------ bit pieces
def elias_delta(n: int) -> str:
    """The Elias delta code of ``n >= 1`` as a string of '0' and '1'."""
    if n < 1:
        raise ConfigCodeError(f"Elias delta codes integers >= 1, got {n}")
    length = n.bit_length()
    return "0" * (length.bit_length() - 1) + format(length, "b") + format(n, "b")[1:]


def zigzag(i: int) -> int:
    """0, -1, 1, -2, 2, ... -> 0, 1, 2, 3, 4, ...: a signed integer as a natural number."""
    return 2 * i if i >= 0 else -2 * i - 1


def unzigzag(z: int) -> int:
    return z // 2 if z % 2 == 0 else -(z + 1) // 2


def index_width(m: int) -> int:
    """Bits of an index among ``m`` options (0 when there is one option)."""
    return (m - 1).bit_length() if m > 1 else 0


def fixed(i: int, m: int) -> str:
    if not 0 <= i < m:
        raise ConfigCodeError(f"index {i} outside 0..{m - 1}")
    width = index_width(m)
    return format(i, f"0{width}b") if width else ""


def natural(n: int) -> str:
    return elias_delta(n + 1)


def signed(i: int) -> str:
    return natural(zigzag(i))


def decimal_parts(value: float) -> tuple[int, int]:
    """``(M, E)`` with ``value == M·10^E`` read from the shortest decimal form, ``M`` without trailing
    zeros (``0.904 -> (904, -3)``, ``1e-4 -> (1, -4)``, ``1000.0 -> (1, 3)``, ``0.0 -> (0, 0)``)."""
    if not math.isfinite(value):
        raise ConfigCodeError(f"the configuration code has no word for the float {value!r}")
    sign, digits, exponent = Decimal(repr(float(value))).as_tuple()
    mantissa = int("".join(map(str, digits)) or "0")
    if mantissa == 0:
        return 0, 0
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    return (-mantissa if sign else mantissa), int(exponent)


def from_decimal_parts(mantissa: int, exponent: int) -> float:
    return float(f"{mantissa}e{exponent}")


# ------------------------------------------------------------------------------------- types
def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _union_arms(tp: Any) -> tuple[Any, ...] | None:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return typing.get_args(tp)
    return None


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=list) == json.dumps(b, sort_keys=True, default=list)


GENERIC_TAGS = ("none", "bool", "int", "float", "str", "list", "dict")
GENERIC_TYPES = {"none": type(None), "bool": bool, "int": int, "float": float, "str": str, "list": list, "dict": dict}


def _optional(arms: tuple[Any, ...]) -> Any:
    """The type an optional value has when it is not None."""
    rest = tuple(a for a in arms if a is not type(None))
    return rest[0] if len(rest) == 1 else Union[rest]  # type: ignore[valid-type]


def _generic_tag(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "dict"
    raise ConfigCodeError(f"the configuration code has no word for {value!r}")


# ----------------------------------------------------------------------------------- the writer
def value_bits(value: Any, tp: Any, default: Any = dataclasses.MISSING, where: str = "value") -> str:
    """The code of ``value`` of the declared type ``tp``. ``default`` (at the top of a parameter) is left
    out of the alphabet where that saves bits: a bool or a choice that differs from its default."""
    tp = _strip(tp)
    top = default is not dataclasses.MISSING
    arms = _union_arms(tp)
    if arms is not None:
        if type(None) in arms:
            return "0" if value is None else "1" + value_bits(value, _optional(arms), where=where)
        for i, arm in enumerate(arms):
            try:
                return fixed(i, len(arms)) + value_bits(value, arm, where=where)
            except ConfigCodeError:
                continue
        raise ConfigCodeError(f"{where}: {value!r} matches none of {tp}")
    if typing.get_origin(tp) is Literal:
        choices = list(typing.get_args(tp))
        if value not in choices:
            raise ConfigCodeError(f"{where}: {value!r} is not one of {choices}")
        if top and default in choices:
            choices.remove(default)
        return fixed(choices.index(value), len(choices))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigCodeError(f"{where}: {value!r} is not a bool")
        return "" if top and isinstance(default, bool) else ("1" if value else "0")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigCodeError(f"{where}: {value!r} is not an integer")
        return signed(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigCodeError(f"{where}: {value!r} is not a number")
        mantissa, exponent = decimal_parts(float(value))
        return signed(mantissa) + (signed(exponent) if mantissa else "")
    if tp is str:
        if not isinstance(value, str):
            raise ConfigCodeError(f"{where}: {value!r} is not a string")
        data = value.encode()
        return natural(len(data)) + "".join(format(b, "08b") for b in data)
    origin = typing.get_origin(tp)
    if origin in (tuple, list) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigCodeError(f"{where}: {value!r} is not a list")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:  # a fixed-length tuple
            if len(args) != len(value):
                raise ConfigCodeError(f"{where}: {value!r} does not have {len(args)} items")
            return "".join(value_bits(v, a, where=where) for v, a in zip(value, args))
        item = args[0] if args else Any
        return natural(len(value)) + "".join(value_bits(v, item, where=where) for v in value)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigCodeError(f"{where}: {value!r} is not a table")
        return natural(len(value)) + "".join(value_bits(str(k), str, where=where) + value_bits(value[k], Any, where=where)
                                             for k in sorted(value))
    if tp is Any:
        tag = _generic_tag(value)
        return fixed(GENERIC_TAGS.index(tag), len(GENERIC_TAGS)) + (
            "" if tag == "none" else value_bits(value, GENERIC_TYPES[tag], where=where))
    raise ConfigCodeError(f"{where}: the configuration code has no word for the declared type {tp!r}")


# ----------------------------------------------------------------------------------- the reader
class Reader:
    """Reads back what the writer wrote; ``CorruptCode`` (a ``ConfigCodeError``) when it cannot."""

    def __init__(self, bits: str) -> None:
        self.bits, self.pos = bits, 0

    def take(self, n: int) -> str:
        if self.pos + n > len(self.bits):
            raise ConfigCodeError("the configuration code ends early")
        out = self.bits[self.pos : self.pos + n]
        self.pos += n
        return out

    def elias_delta(self) -> int:
        zeros = 0
        while self.take(1) == "0":
            zeros += 1
            if zeros > 64:
                raise ConfigCodeError("an Elias delta code longer than any integer the code writes")
        length = int("1" + self.take(zeros), 2)
        return int("1" + self.take(length - 1), 2)

    def natural(self) -> int:
        return self.elias_delta() - 1

    def signed(self) -> int:
        return unzigzag(self.natural())

    def fixed(self, m: int) -> int:
        width = index_width(m)
        i = int(self.take(width), 2) if width else 0
        if i >= m:
            raise ConfigCodeError(f"index {i} outside 0..{m - 1}")
        return i

    def value(self, tp: Any, default: Any = dataclasses.MISSING) -> Any:
        tp = _strip(tp)
        top = default is not dataclasses.MISSING
        arms = _union_arms(tp)
        if arms is not None:
            if type(None) in arms:
                return None if self.take(1) == "0" else self.value(_optional(arms))
            return self.value(arms[self.fixed(len(arms))])
        if typing.get_origin(tp) is Literal:
            choices = list(typing.get_args(tp))
            if top and default in choices:
                choices.remove(default)
            return choices[self.fixed(len(choices))]
        if tp is bool:
            return (not default) if top and isinstance(default, bool) else self.take(1) == "1"
        if tp is int:
            return self.signed()
        if tp is float:
            mantissa = self.signed()
            return from_decimal_parts(mantissa, self.signed()) if mantissa else 0.0
        if tp is str:
            n = self.natural()
            return bytes(int(self.take(8), 2) for _ in range(n)).decode()
        origin = typing.get_origin(tp)
        if origin in (tuple, list) or tp in (tuple, list):
            args = typing.get_args(tp)
            if origin is tuple and args and args[-1] is not Ellipsis:
                return [self.value(a) for a in args]
            item = args[0] if args else Any
            return [self.value(item) for _ in range(self.natural())]
        if origin is dict or tp is dict:
            return {self.value(str): self.value(Any) for _ in range(self.natural())}
        if tp is Any:
            tag = GENERIC_TAGS[self.fixed(len(GENERIC_TAGS))]
            return None if tag == "none" else self.value(GENERIC_TYPES[tag])
        raise ConfigCodeError(f"the configuration code has no word for the declared type {tp!r}")


# --------------------------------------------------------------------------- names and blocks
def name_bits(kind: str, name: str) -> str:
    known = KNOWN_NAMES.get(kind, ())
    if name in known:
        return fixed(known.index(name), len(known) + 1)
    return fixed(len(known), len(known) + 1) + value_bits(name, str)


def read_name(reader: Reader, kind: str) -> str:
    known = KNOWN_NAMES.get(kind, ())
    i = reader.fixed(len(known) + 1)
    return known[i] if i < len(known) else reader.value(str)


@dataclass(frozen=True)
class Declaration:
    """What the code needs of a plugin's parameters: the paid names (sorted), their declared types and
    defaults. Part of the plugin's version: a changed default or type is a new code for it."""

    names: tuple[str, ...]
    types: Mapping[str, Any]
    defaults: Mapping[str, Any]

    @classmethod
    def of(cls, params_cls: type, paid: Sequence[str] | None = None) -> "Declaration":
        """The declaration of a parameter dataclass; ``paid``: the names that are coded (None: all)."""
        if not dataclasses.is_dataclass(params_cls):
            return cls((), {}, {})
        hints = typing.get_type_hints(params_cls, include_extras=True)
        fields = {f.name: f for f in dataclasses.fields(params_cls)}
        names = tuple(sorted(fields if paid is None else paid))
        unknown = [n for n in names if n not in fields]
        if unknown:
            raise ConfigCodeError(f"declared paid parameter '{unknown[0]}' is not a parameter")
        defaults = json.loads(json.dumps(dataclasses.asdict(params_cls()), default=list))
        return cls(names, {n: hints[n] for n in names}, {n: defaults[n] for n in names})


def nondefault(decl: Declaration, values: Mapping[str, Any]) -> list[str]:
    """The paid parameters whose value differs from the declared default, in code order."""
    return [n for n in decl.names if n in values and not _same(values[n], decl.defaults[n])]


def nondefault_values(decl: Declaration, values: Mapping[str, Any]) -> dict[str, Any]:
    """The paid parameters not at their defaults, with their values (what a block codes)."""
    return {n: values[n] for n in nondefault(decl, values)}


def block_bits(decl: Declaration, values: Mapping[str, Any], owner: str) -> list[tuple[str, str]]:
    """A parameter block as ``(item, bits)`` pieces: the count, then each non-default parameter."""
    changed = nondefault(decl, values)
    pieces = [(f"{owner}: {len(changed)} parameter(s) not at their defaults", natural(len(changed)))]
    for name in changed:
        bits = fixed(decl.names.index(name), len(decl.names))
        bits += value_bits(values[name], decl.types[name], decl.defaults[name], where=f"{owner} '{name}'")
        pieces.append((f"{owner}: {name} = {json.dumps(values[name])}", bits))
    return pieces


def read_block(reader: Reader, decl: Declaration) -> dict[str, Any]:
    out = {}
    last = -1
    for _ in range(reader.natural()):
        i = reader.fixed(len(decl.names))
        if i <= last:
            raise ConfigCodeError("parameters out of order in a parameter block")
        last = i
        name = decl.names[i]
        out[name] = reader.value(decl.types[name], decl.defaults[name])
    return out


# ---------------------------------------------------------------------------- configurations
@dataclass(frozen=True)
class Configuration:
    """What ``L(c)`` covers, as plain values (each parameter table as the run validated it)."""

    dataset_params: Mapping[str, Any]
    model: str  # the family's registered name
    model_params: Mapping[str, Any]
    recipe: Mapping[str, Any]  # the base/prior model's recipe (coded only with a data-dependent prior)
    seed: int
    delta: float
    compressor: str
    compressor_params: Mapping[str, Any]
    bound: str
    bound_params: Mapping[str, Any]

    @property
    def data_dependent(self) -> bool:
        return float(self.dataset_params.get("prior_fraction", 0.0) or 0.0) > 0


@dataclass(frozen=True)
class Declarations:
    """The declarations the code is read with: the sample's dataset and the named plugins'."""

    dataset: Declaration
    model: Declaration
    recipe: Declaration
    compressor: Declaration
    bound: Declaration


@dataclass(frozen=True)
class Coded:
    """A configuration's code word, itemized."""

    items: tuple[tuple[str, str], ...]  # (what, bits)
    version: str = CODE_VERSION

    @property
    def bits(self) -> str:
        return "".join(b for _, b in self.items)

    @property
    def length(self) -> int:
        return len(self.bits)

    def itemized(self) -> list[tuple[str, int]]:
        return [(what, len(bits)) for what, bits in self.items]


def encode(c: Configuration, d: Declarations) -> Coded:
    """The code word of ``c`` under version ``CODE_VERSION``, itemized."""
    items: list[tuple[str, str]] = []
    items += block_bits(d.dataset, c.dataset_params, "dataset")
    items.append((f"model {c.model}", name_bits("model", c.model)))
    items += block_bits(d.model, c.model_params, f"model {c.model}")
    if c.data_dependent:
        items += block_bits(d.recipe, c.recipe, "prior model's recipe")
    items.append((f"seed {c.seed}", signed(c.seed)))
    if c.delta == DEFAULT_DELTA:
        items.append((f"δ = {c.delta:g} (the default)", "0"))
    else:
        items.append((f"δ = {c.delta:g}", "1" + value_bits(float(c.delta), float)))
    items.append((f"compressor {c.compressor}", name_bits("compressor", c.compressor)))
    items += block_bits(d.compressor, c.compressor_params, f"compressor {c.compressor}")
    items.append((f"bound {c.bound}", name_bits("bound", c.bound)))
    items += block_bits(d.bound, c.bound_params, f"bound {c.bound}")
    return Coded(tuple(items))


def decode(bits: str, declare) -> Configuration:
    """Read a code word back. ``declare(kind, name)`` gives the ``Declaration`` of a named model family,
    compressor or bound (and ``declare("dataset", None)``, ``declare("recipe", None)``); the parameters
    come back as their non-default values. Raises ``ConfigCodeError`` unless the bits are exactly one
    code word."""
    r = Reader(bits)
    dataset_params = read_block(r, declare("dataset", None))
    model = read_name(r, "model")
    model_params = read_block(r, declare("model", model))
    recipe = read_block(r, declare("recipe", None)) if float(dataset_params.get("prior_fraction", 0) or 0) > 0 else {}
    seed = r.signed()
    delta = DEFAULT_DELTA if r.take(1) == "0" else r.value(float)
    compressor = read_name(r, "compressor")
    compressor_params = read_block(r, declare("compressor", compressor))
    bound = read_name(r, "bound")
    bound_params = read_block(r, declare("bound", bound))
    if r.pos != len(bits):
        raise ConfigCodeError(f"{len(bits) - r.pos} bits left after the configuration")
    return Configuration(dataset_params, model, model_params, recipe, seed, delta, compressor, compressor_params,
                         bound, bound_params)
