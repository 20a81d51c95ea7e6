"""SNIP (Lee, Ajanthan & Torr, ICLR 2019): prune once, before fine-tuning, by connection sensitivity
``|W * dL/dW|`` summed over every batch given.

Memory: the accumulated gradient (in ``.grad``) and nothing else full-size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..batches import Batches, LossFn, backward, model_devices, own_grads
from .init_request import InitRequest
from .registry import register

__all__ = ["Snip", "snip_scores"]


def snip_scores(
    model: nn.Module, params: Mapping[str, nn.Parameter], batches: Any, loss_fn: LossFn
) -> list[Tensor]:
    """SNIP connection sensitivity (Lee, Ajanthan & Torr, "SNIP: Single-shot Network Pruning based on
    Connection Sensitivity", ICLR 2019, Eq. 6): ``s = |W * dL/dW|`` with the gradient summed over every
    batch given (the paper's normalisation by the sum of all ``s`` does not change the ranking).
    Higher = kept. The scores are computed in the gradient buffers (no other full-size copy); the
    weights' ``.grad`` are left as they were.

    >>> layer = nn.Linear(2, 1, bias=False)
    >>> layer.weight.data = torch.tensor([[2.0, -1.0]])
    >>> batch = (torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0]]))
    >>> loss = lambda m, b: 0.5 * ((m(b[0]) - b[1]) ** 2).sum()   # dL/dW = (W x - y) x^T = [[-1, -3]]
    >>> snip_scores(layer, {"weight": layer.weight}, [batch], loss)
    [tensor([[2., 3.]])]
    """
    plist = list(params.values())
    stream = Batches(batches, model_devices(params))
    out = []
    with own_grads(plist):
        for i, batch in enumerate(stream.once()):
            backward(model, loss_fn, batch, i, plist)
        for p in plist:
            grad = p.grad if p.grad is not None else torch.zeros_like(p)  # unused: no sensitivity
            score = grad.mul_(p.detach()).abs_()  # in the gradient buffer
            out.append(score if score.dtype == torch.float32 else score.float())
    return out


@register
class Snip:
    """``method="snip"`` of :func:`sevenprune.prune_at_init`: one shot, no options."""

    name = "snip"
    phases = ("before",)
    one_shot = True
    needs_grad = True
    defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def init_masks(cls, request: InitRequest) -> dict[str, Tensor]:
        assert request.loss_fn is not None
        scores = snip_scores(request.model, request.params, request.batches, request.loss_fn)
        return request.select(scores)  # the scores live in the former gradient buffers, freed on return
