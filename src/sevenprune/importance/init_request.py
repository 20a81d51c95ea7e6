"""What a method is given before fine-tuning: :class:`InitRequest`, the argument of its ``init_masks``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .. import patterns, schedules
from ..batches import LossFn, select_keep_masks

__all__ = ["InitRequest"]


@dataclass(frozen=True)
class InitRequest:
    """The model, its prunable weights, the data and the configuration of one ``prune_at_init`` call
    (``options`` checked and completed with their defaults).

    ``make_pruner`` is :class:`sevenprune.Pruner`, handed in by ``prune_at_init`` for a method that runs
    its fine-tuning form at the starting weights (SEVEN_pre frozen): a method file then need not import
    the Pruner, which looks the methods up.

    ``pattern`` is ``"unstructured"`` or ``"n:m"``; ``kinds`` the layout of each prunable weight
    (:func:`sevenprune.patterns.weight_kinds`), which an ``n:m`` selection needs to find the rows.
    """

    model: nn.Module
    params: dict[str, nn.Parameter]
    sparsity: float
    batches: Any
    loss_fn: LossFn | None
    steps: int
    scope: str
    state_dtype: torch.dtype
    include: list[str] | None
    exclude: list[str] | None
    options: dict[str, Any]
    make_pruner: Callable[..., Any] | None = None
    pattern: str = "unstructured"
    kinds: Sequence[str] | None = None

    def count(self, n: int) -> int:
        """Entries pruned among ``n``: ``round(sparsity * n)``."""
        return schedules.pruned_count(self.sparsity, n)

    def select(self, scores: Sequence[Tensor]) -> dict[str, Tensor]:
        """Keep-masks by weight name, pruning the lowest ``scores`` (global or per matrix, by ``scope``;
        with an ``n:m`` pattern the ``m - n`` lowest of every group of ``m`` inputs of a row, whatever the
        scope: every group loses the same number, so a global and a per-matrix ranking agree)."""
        parsed = patterns.parse_pattern(self.pattern)
        if parsed[0] != "nm":
            return dict(zip(self.params, select_keep_masks(scores, self.scope, self.count)))
        _, n, m = parsed
        numel = sum(p.numel() for p in self.params.values())
        whole = {name: torch.ones_like(p, dtype=torch.bool) for name, p in self.params.items()}
        kinds = list(self.kinds) if self.kinds is not None else ["matrix"] * len(self.params)
        # pruning every candidate (each group's m - n lowest, ties to the lower index) leaves exactly n of m
        keep = patterns.nm_keep_masks(scores, whole, kinds, numel * (m - n) // m, n, m, numel=numel)
        return dict(zip(self.params, keep))
