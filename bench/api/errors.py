"""The errors a plugin raises or meets: a dataset whose files are missing, and what a decoder is told
when it reaches past the prior."""

from __future__ import annotations

PRIOR_ONLY = ("a decoder sees only the message and the prior (seed, task configuration, input shape, "
              "classes, device, the seeded untrained model): no training data, no trained model, no cache")


class DatasetUnavailable(RuntimeError):
    """The files of a dataset are missing; the message says how to get them."""
