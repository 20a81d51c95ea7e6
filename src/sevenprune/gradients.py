"""The gradients a pruning step reads: that they are there (``pruner.step()`` called at the right place)
and whether they are finite (an AMP loss-scaler overflow makes a step unobservable)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

__all__ = ["QUIET_SKIPS", "present_grads", "all_finite", "warn_skipped"]

#: skipped (non-finite) steps tolerated silently: AMP's loss scaler overflows on its first steps
QUIET_SKIPS = 3


def present_grads(params: Mapping[str, Tensor]) -> list[Tensor]:
    """The gradients of ``params``; none at all means ``step()`` was called at the wrong place."""
    grads = [p.grad for p in params.values() if p.grad is not None]
    if not grads:
        raise RuntimeError(
            "no prunable weight has a gradient: call pruner.step() after loss.backward() and "
            "before optimizer.zero_grad()"
        )
    return grads


def all_finite(grads: Sequence[Tensor]) -> bool:
    """Whether every entry is finite: one reduction per tensor and a single host sync (an inf or nan
    anywhere makes its sum non-finite)."""
    sums = torch.stack([g.sum(dtype=torch.float32).to(grads[0].device) for g in grads])
    return bool(torch.isfinite(sums).all())


def warn_skipped(n: int, skipped: int, observed: int) -> None:
    """Warn about a skipped step once more than :data:`QUIET_SKIPS` have been."""
    if skipped > QUIET_SKIPS:
        warnings.warn(
            f"pruner.step() {n}: a gradient of a prunable weight is not finite (inf or nan); the step is "
            f"not observed ({skipped} skipped, {observed} observed so far). Check the "
            "learning rate and the loss scaling", RuntimeWarning, stacklevel=3)
