"""Declared ranges of parameters: ``Annotated[int, Ge(1)]``, checked when a configuration is built
(``bench.api.params``), with a one-line error that names the key."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["Between", "Ge", "Gt", "Le", "Lt", "Range"]


class Range:
    def problem(self, value: Any) -> str | None:
        """``None`` if ``value`` (a number, or each number of a list) is in range, else what it must be."""
        values = value if isinstance(value, (list, tuple)) else [value]
        for v in values:
            if v is None:
                continue
            if not (isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)) and self.holds(v)):
                return self.text()
        return None

    def holds(self, v: float) -> bool:
        raise NotImplementedError

    def text(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class Ge(Range):
    bound: float

    def holds(self, v: float) -> bool:
        return v >= self.bound

    def text(self) -> str:
        return f">= {self.bound:g}"


@dataclass(frozen=True)
class Gt(Range):
    bound: float

    def holds(self, v: float) -> bool:
        return v > self.bound

    def text(self) -> str:
        return f"> {self.bound:g}"


@dataclass(frozen=True)
class Le(Range):
    bound: float

    def holds(self, v: float) -> bool:
        return v <= self.bound

    def text(self) -> str:
        return f"<= {self.bound:g}"


@dataclass(frozen=True)
class Lt(Range):
    bound: float

    def holds(self, v: float) -> bool:
        return v < self.bound

    def text(self) -> str:
        return f"< {self.bound:g}"


@dataclass(frozen=True)
class Between(Range):
    """``low <= v < high`` by default (``closed = True``: ``low <= v <= high``)."""

    low: float
    high: float
    closed: bool = False

    def holds(self, v: float) -> bool:
        return self.low <= v <= self.high if self.closed else self.low <= v < self.high

    def text(self) -> str:
        return f"in [{self.low:g}, {self.high:g}{']' if self.closed else ')'}"
