"""What a data-dependent prior gives before any compression, beside every row that uses one.

With ``prior_fraction = p`` the prior model is trained on ``S_prior`` and every bound is computed on
``S_bound``. The prior model alone, sent as nothing, already has a plain held-out certificate: the
binomial tail bound of its error count on ``S_bound`` with 0 bits. On Fashion-MNIST the best
data-dependent certificate can *be* that bound, so a reader needs it beside each row to see what the
compressor added (the row's bound less this one; the ``prior`` compressor's own rows pay a length code
and configuration bits on top of it).
"""

from __future__ import annotations

from typing import Any

from bench.api.contracts import TaskInstance
from bench.kit.bounds import occam_binomial_bound


def prior_columns(task: TaskInstance, seed: int, models, delta: float) -> dict[str, Any]:
    """``prior_train_errors`` and ``prior_bound`` for a task with a data-dependent prior (classification:
    error counts), else nothing."""
    if task.data.prior_indices is None or task.data.task_type != "classification":
        return {}
    errors, n = models.prior_errors(task, seed), len(task.data.bound_split())
    return {"prior_train_errors": errors, "prior_bound": occam_binomial_bound(errors / n, n, 0.0, delta)}
