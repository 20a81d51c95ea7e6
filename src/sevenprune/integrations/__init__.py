"""Integrations with training frameworks, imported lazily so that ``import sevenprune`` needs neither.

* :mod:`sevenprune.integrations.hf`: :class:`~sevenprune.integrations.hf.PruningCallback` for the
  Hugging Face ``Trainer`` (needs ``transformers``);
* :mod:`sevenprune.integrations.accelerate`: helpers for a plain loop under ``accelerate``.

``from sevenprune.integrations import PruningCallback`` works too and imports ``transformers`` only then.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["PruningCallback", "build_pruner", "unwrap_optimizer"]

_LAZY = {"PruningCallback": "hf", "build_pruner": "accelerate", "unwrap_optimizer": "accelerate"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
