"""FORCE and Iterative SNIP (de Jorge et al., ICLR 2021): prune before fine-tuning in ``steps``
iterations on the exponential schedule, each scoring the pruned network on the next batch.

Memory: the starting weights (one extra full-size copy); the scores are computed in ``.grad``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .. import schedules
from ..batches import Batches, LossFn, backward, model_devices, own_grads, select_keep_masks
from .init_request import InitRequest
from .registry import register

__all__ = ["Force", "force_masks"]


def force_masks(
    model: nn.Module,
    params: Mapping[str, nn.Parameter],
    batches: Any,
    loss_fn: LossFn,
    sparsity: float,
    steps: int,
    variant: str = "force",
    scope: str = "global",
) -> list[Tensor]:
    """FORCE / Iterative SNIP (de Jorge, Sanyal, Behl, Torr, Rogez & Dokania, "Progressive
    Skeletonization: Trimming more fat from a network at initialization", ICLR 2021, Sec. 4, Alg. 1).

    For iteration ``t = 1 .. T`` (``T = steps``), on the next batch:

    1. the network is the starting weights masked by the current mask, ``W0 * c_t``;
    2. saliency ``|W0 * dL(W0 * c_t)/d(W0 * c_t)|`` (= ``|dL/dc|``, SNIP's sensitivity of the *pruned*
       network) for every weight;
    3. keep the ``round(kappa_t * N)`` highest, ``kappa_t = (1 - s) ** (t / T)`` (the exponential
       schedule, :func:`sevenprune.schedules.exponential_keep`); the last iteration prunes exactly
       ``round(s * N)``. With ``scope="local"`` the same counts hold in every matrix separately.

    ``variant="force"`` ranks every weight, so a weight pruned at an earlier iteration can come back
    (FORCE); ``"iter_snip"`` ranks only the weights still kept (Iterative SNIP, monotone). The
    weights are modified during the iterations and restored (``W0``, the one extra full-size copy;
    the scores are computed in the gradient buffers) before returning, also on error. The weights'
    ``.grad`` are left as they were.
    """
    plist = list(params.values())
    total = sum(p.numel() for p in plist)
    stream = Batches(batches, model_devices(params))
    w0 = [p.detach().clone() for p in plist]
    keep = [torch.ones(p.shape, dtype=torch.bool, device=p.device) for p in plist]
    with own_grads(plist):
        _force_iterations(model, plist, w0, keep, stream, loss_fn, sparsity, steps, variant, total, scope)
    return keep


def _force_iterations(
    model: nn.Module,
    plist: list[nn.Parameter],
    w0: list[Tensor],
    keep: list[Tensor],
    stream: Batches,
    loss_fn: LossFn,
    sparsity: float,
    steps: int,
    variant: str,
    total: int,
    scope: str = "global",
) -> None:
    """The loop of :func:`force_masks`; writes the final masks into ``keep``."""
    try:
        for t, batch in enumerate(stream.cycle(steps), start=1):
            backward(model, loss_fn, batch, t - 1, plist)
            scores = []
            for p, w, mask in zip(plist, w0, keep):
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                s = p.grad.mul_(w).abs_()  # in the gradient buffer
                s = s if s.dtype == torch.float32 else s.float()
                if variant == "iter_snip":
                    s.masked_fill_(~mask, -math.inf)
                scores.append(s)
            kept = schedules.exponential_keep(t, steps, 1.0 - sparsity)

            def count(n: int) -> int:
                if t == steps:
                    return schedules.pruned_count(sparsity, n)
                return n - min(n, max(0, round(kept * n)))

            keep[:] = select_keep_masks(scores, scope, count, seed=t)
            del scores
            with torch.no_grad():
                for p, w, mask in zip(plist, w0, keep):
                    p.grad = None
                    p.copy_(w).mul_(mask)
    finally:
        with torch.no_grad():
            for p, w in zip(plist, w0):
                p.grad = None
                p.copy_(w)


@register
class Force:
    """``method="force"`` of :func:`sevenprune.prune_at_init`: ``steps`` iterations;
    ``variant="force"|"iter_snip"``."""

    name = "force"
    phases = ("before",)
    one_shot = False
    init_patterns = ("unstructured",)  # its iterations select by their own threshold, not request.select
    needs_grad = True
    defaults: ClassVar[dict[str, Any]] = {"variant": "force"}

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        if options["variant"] not in ("force", "iter_snip"):
            raise ValueError(f"variant must be 'force' or 'iter_snip', got {options['variant']!r}")

    @classmethod
    def init_masks(cls, request: InitRequest) -> dict[str, Tensor]:
        assert request.loss_fn is not None
        return dict(zip(request.params, force_masks(request.model, request.params, request.batches, request.loss_fn,
                                                    request.sparsity, request.steps, request.options["variant"],
                                                    request.scope)))
