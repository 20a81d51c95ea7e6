"""Magnitude pruning: score = |W| (global), recomputed at every mask update.

Used on the cubic schedule during fine-tuning this is gradual magnitude pruning (Zhu & Gupta, 2017,
"To prune, or not to prune"); one shot at the starting weights it is the classic magnitude baseline.
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from .base import Importance, register
from .init_request import InitRequest

__all__ = ["MagnitudeImportance"]


@register
class MagnitudeImportance(Importance):
    """``method="magnitude"``: keep the weights of largest absolute value. No options, no state."""

    name = "magnitude"
    phases = ("fine-tuning", "before")  # gradual during fine-tuning; one shot at the starting weights
    needs_grad = False

    def observe(self, t: int) -> None:
        """Magnitude needs nothing from the gradients."""

    def scores(self, masks: Mapping[str, Tensor]) -> list[Tensor]:
        return [self.pin_pruned(p.detach().abs().float(), masks.get(n)) for n, p in self.params.items()]

    @classmethod
    def init_masks(cls, request: InitRequest) -> dict[str, Tensor]:
        return request.select([p.detach().abs().float() for p in request.params.values()])
