"""Pruning in a plain training loop under Hugging Face Accelerate (or any wrapper of model/optimizer).

``accelerator.prepare`` may wrap the model (``DistributedDataParallel``, ...) and always wraps the
optimizer (``AcceleratedOptimizer``). The pruner must see the *unwrapped* model, so that its weight
names are the model's own (no ``module.`` prefix) and its checkpoints load into a plain model, and the
*inner* torch optimizer, whose step hook it uses. :func:`build_pruner` does both::

    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    pruner = build_pruner(accelerator, model, optimizer, method="seven", sparsity=0.6,
                          start_step=100, prune_steps=400)
    for batch in loader:
        with accelerator.accumulate(model):
            accelerator.backward(model(**batch).loss)
            optimizer.step()
            if accelerator.sync_gradients:   # one pruner step per optimizer update
                pruner.step()                # gradients are already all-reduced here
            optimizer.zero_grad()

Nothing here imports ``accelerate``: the accelerator is only asked for ``unwrap_model``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._validate import unwrap_optimizer
from ..pruner import Pruner

__all__ = ["build_pruner", "unwrap_optimizer"]


def build_pruner(
    accelerator: Any,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    **pruner_kwargs: Any,
) -> Pruner:
    """A :class:`~sevenprune.Pruner` on ``accelerator.unwrap_model(model)``, attached to the inner
    optimizer. ``pruner_kwargs`` are the Pruner's (``method``, ``sparsity``, ``start_step``, ...).

    >>> class Plain:  # stands in for accelerate.Accelerator
    ...     def unwrap_model(self, model): return model
    >>> model = nn.Sequential(nn.Linear(4, 4))
    >>> pruner = build_pruner(Plain(), model, method="magnitude", sparsity=0.5, prune_steps=1)
    >>> list(pruner.masks)
    ['0.weight']
    """
    unwrap = getattr(accelerator, "unwrap_model", None)
    if not callable(unwrap):
        raise TypeError(f"accelerator must have an unwrap_model method (accelerate.Accelerator), "
                        f"got {type(accelerator).__name__}")
    inner = unwrap_optimizer(optimizer) if optimizer is not None else None
    return Pruner(unwrap(model), optimizer=inner, **pruner_kwargs)
