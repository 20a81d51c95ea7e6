"""Distributed helpers (DDP mask checks, sharded global threshold). Filled in by the scale-out work."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor


def check_masks_consistent(masks: Mapping[str, Tensor]) -> None:
    """Raise if the masks differ between ranks (no-op until implemented)."""
