"""The importance of a pruner whose masks were chosen elsewhere (:meth:`sevenprune.Pruner.from_masks`).

It is not in the method registry: ``Pruner.from_masks`` uses it, whatever the method that chose the
masks (``"snip"``, ``"magnitude"`` from :func:`sevenprune.prune_at_init`, a lottery ticket, your
own). It observes nothing and holds no statistic; its options are those of the method that chose the
masks, kept so that the pruner's configuration records them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor

from .base import Importance

__all__ = ["FixedMasks"]


class FixedMasks(Importance):
    """Masks fixed from the start: nothing is observed and nothing new is ever selected."""

    name = "fixed"
    needs_grad = False

    @classmethod
    def checked_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """The options of the method that chose the masks, as given (that method checked them)."""
        return dict(options)

    def observe(self, t: int) -> None:
        """Nothing to observe: the masks are fixed."""

    def scores(self, masks: Mapping[str, Tensor]) -> list[Tensor]:
        raise RuntimeError("a pruner built by Pruner.from_masks holds fixed masks and selects no new ones; "
                           "its pruning window is over before its first step")
