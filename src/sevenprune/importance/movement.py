"""Movement pruning (Sanh, Wolf & Rush, NeurIPS 2020), and the reference code's instantaneous variant.

Paper: V. Sanh, T. Wolf, A. M. Rush, "Movement Pruning: Adaptive Sparsity by Fine-Tuning",
NeurIPS 2020 (arXiv:2005.07683), Sec. 4, Eq. (4)-(5). With the straight-through estimator the score
of hard movement pruning after T updates is::

    S_T = -alpha_S * sum_{t<=T} G_t * W_t          (G_t = dL/dW at update t)

(the positive learning-rate factor ``alpha_S`` does not change the ranking and is dropped). A weight
moving away from zero during fine-tuning (``W * G < 0``: gradient descent increases ``|W|``) gains
score and is kept; one moving towards zero loses score and is pruned, however large it still is.
The sum runs over the pruning window (from ``start_step``), on the cubic schedule with one global
threshold; the paper keeps the top-v entries per matrix ("Top_v"), this library's common protocol uses
one global threshold for every method (method.md).

``method="movement_instant"`` is what the SEVEN reference code calls "movement"
(``strategies/pruner.py``): the instantaneous first-order score ``|W * G|`` of the current batch only,
with no accumulation. It is *not* movement pruning (it ignores the sign and the history) and is kept
only to reproduce that code's numbers.

State (movement): the running sum in fp32 (4 bytes per weight), in ``state_dict()``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from .base import Importance, register

__all__ = ["MovementImportance", "InstantMovementImportance"]


@register
class MovementImportance(Importance):
    """``method="movement"``: ``S = -sum_t W_t * G_t`` over the pruning window (Sanh et al. 2020, Eq. 5).

    >>> import torch, sevenprune as sp
    >>> layer = torch.nn.Linear(2, 1, bias=False)
    >>> pruner = sp.Pruner(layer, "movement", sparsity=0.5, prune_steps=1)
    >>> layer.weight.data = torch.tensor([[0.1, 2.0]])
    >>> layer.weight.grad = torch.tensor([[-1.0, 1.0]])   # w0 grows away from 0, w1 shrinks
    >>> pruner.step()
    >>> pruner.masks["weight"].tolist()                     # the large but shrinking weight goes
    [[True, False]]
    """

    name = "movement"

    def validate_options(self) -> None:
        self.stats: dict[str, dict[str, Tensor]] = {}

    def _allocate(self) -> None:
        # fp32 whatever state_dtype says: a low-precision running sum stops growing
        self.stats = {"score": {n: torch.zeros(p.shape, dtype=torch.float32, device=p.device)
                                for n, p in self.params.items()}}

    def release(self) -> None:
        self.stats = {}

    def observe(self, t: int) -> None:
        if not self.stats:
            self._allocate()
        for name, p in self.params.items():
            if p.grad is not None:
                # -inf (pruned) minus a finite number stays -inf, so pruned entries stay pinned
                self.stats["score"][name].addcmul_(p.detach().float(), p.grad.detach().float(), value=-1.0)


@register
class InstantMovementImportance(Importance):
    """``method="movement_instant"``: ``|W * G|`` of the current batch only (the SEVEN reference code's
    "movement"; not Sanh et al.'s criterion). Stateless apart from the last score.

    >>> import torch, sevenprune as sp
    >>> layer = torch.nn.Linear(2, 1, bias=False)
    >>> pruner = sp.Pruner(layer, "movement_instant", sparsity=0.5, prune_steps=1)
    >>> layer.weight.data = torch.tensor([[0.1, 2.0]])
    >>> layer.weight.grad = torch.tensor([[-1.0, 1.0]])
    >>> pruner.step()
    >>> pruner.masks["weight"].tolist()
    [[False, True]]
    """

    name = "movement_instant"

    def validate_options(self) -> None:
        self.stats: dict[str, dict[str, Tensor]] = {}

    def release(self) -> None:
        self.stats = {}

    def observe(self, t: int) -> None:
        self.stats = {"score": {}}
        for name, p in self.params.items():
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            self.stats["score"][name] = (p.detach().float() * g.detach().float()).abs_()

    def scores(self, masks: Mapping[str, Tensor]) -> list[Tensor]:
        if not self.stats:
            self.observe(0)
        return [self.pin_pruned(self.stats["score"][n], masks.get(n)) for n in self.params]
