"""Choices an encoder makes among candidates fixed in advance, ranked by the certificate each would get.

Which candidate wins is an encoder-side choice, so it is free (BOUNDS.md §1): every candidate is a real
message under the same configuration, the decoder reads whatever it needs to know about the choice
from the message itself, and the Occam prior already weighs every message by its length. What the
ranking may use is therefore anything at all; here it is the Occam certificate (binomial form, without
the configuration's bits, which are the same for every candidate) that the message and its training
errors would get. The tried candidates go into the row's ``extras`` so a reader sees the search.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.kit.bounds import occam_binomial_bound, occam_kl_nats

__all__ = ["Trial", "VACUOUS", "occam_score", "best_trial", "unreachable_note", "trial_table"]

#: A certificate at or above this is 100 % (it prints as 100.00 %); the harness marks such rows vacuous.
VACUOUS = 0.99995


def occam_score(train_errors: int, n: int, message_bits: float, delta: float = 0.05) -> float:
    """The Occam certificate of a message of ``message_bits`` bits that makes ``train_errors`` of ``n``
    training errors (its length code included, no configuration bits)."""
    return occam_binomial_bound(train_errors / n, n, occam_kl_nats(message_bits).nats, delta)


@dataclass
class Trial:
    """One candidate the encoder coded and scored: its choice, its message's length and training errors."""

    choice: dict[str, Any]
    message_bits: int
    train_errors: int
    score: float
    payload: Any = field(default=None, repr=False, compare=False)  # what the compressor returns if it wins

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("payload")
        return {**d.pop("choice"), **d, "score": round(self.score, 6)}


def best_trial(trials: list[Trial]) -> Trial:
    """The candidate with the lowest score (ties: the shorter message, then the earlier)."""
    if not trials:
        raise ValueError("no candidate was tried")
    return min(trials, key=lambda t: (t.score, t.message_bits))


def trial_table(trials: list[Trial]) -> list[dict[str, Any]]:
    return [t.row() for t in trials]


def unreachable_note(trials: list[Trial], n: int) -> str | None:
    """Why nothing below 100 % was reachable, when that is so: the shortest message tried against n."""
    if not trials or min(t.score for t in trials) < VACUOUS:
        return None
    shortest = min(t.message_bits for t in trials)
    size = f"{shortest / 1000:.0f} kbit" if shortest >= 10_000 else f"{shortest} bits"
    return (f"smallest message {size} for n = {n:,}".replace(",", " ")
            + ": no candidate's certificate falls below 100 %")
