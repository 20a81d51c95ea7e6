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

Two forms (option ``form``):

* ``form="sum"`` (default): the paper's Eq. (5) above, a plain running sum.
* ``form="adam"``: what the authors' code (``emmental``, ``masked_run_glue.py``) runs. The scores
  ``S`` are parameters (``mask_init="constant"``, ``mask_scale=0``: ``S_0 = 0``) trained by the
  model's AdamW in their own group (``mask_scores_learning_rate`` 1e-2, no weight decay) with the
  straight-through gradient ``dL/dS = G * W`` of ``TopKBinarizer``; so each step moves ``S`` by
  ``-lr * m_hat / (sqrt(v_hat) + eps)`` of that gradient (Adam's per-entry normalisation, not the
  raw product). Their binarizer keeps the top fraction of *every matrix*: use it with
  ``scope="local"``. Their scores learn from the first training step: ``observe_from="start"``
  (the default for this form) does the same here.

Remaining differences of ``form="adam"`` from their code, by choice of the engine: masks are
monotone (a pruned weight is zero for good; in their code a masked weight keeps its value and can
return); the scores' learning rate is constant (theirs follows the model's linear decay); gradient
clipping of the model does not reach the scores.

``method="movement_instant"`` is what the SEVEN reference code calls "movement"
(``strategies/pruner.py``): the instantaneous first-order score ``|W * G|`` of the current batch only,
with no accumulation. It is *not* movement pruning (it ignores the sign and the history) and is kept
only to reproduce that code's numbers.

State (movement): the running sum in fp32 (4 bytes per weight), in ``state_dict()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .base import Importance, register
from .soft_movement import adam_score_step_, check_adam_options

__all__ = ["MovementImportance", "InstantMovementImportance"]


@register
class MovementImportance(Importance):
    """``method="movement"``: ``S = -sum_t W_t * G_t`` over the pruning window (Sanh et al. 2020, Eq. 5),
    or (``form="adam"``) scores trained by Adam on ``G * W`` as the authors' code does.

    Options: ``form`` ("sum" or "adam"); for "adam": ``lr`` (1e-2), ``betas`` ((0.9, 0.999)),
    ``eps`` (1e-8), ``observe_from`` ("auto": from the first training step for "adam", the window
    for "sum"; or "window", "start").

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
    defaults = {"form": "sum", "lr": 1e-2, "betas": (0.9, 0.999), "eps": 1e-8, "observe_from": "auto"}

    @classmethod
    def check_options(cls, o: dict[str, Any]) -> None:
        if o["form"] not in ("sum", "adam"):
            raise ValueError(f"form must be 'sum' (the paper's Eq. 5) or 'adam' (the authors' code), got {o['form']!r}")
        check_adam_options(o)
        if o["observe_from"] not in ("auto", "window", "start"):
            raise ValueError(f"observe_from must be 'auto', 'window' or 'start', got {o['observe_from']!r}")

    @property
    def observes_before_window(self) -> bool:
        # "auto": the authors' code trains its scores from the first step; the paper's sum is over the window
        when = self.options["observe_from"]
        return bool(when == "start" or (when == "auto" and self.options["form"] == "adam"))

    def _allocate(self) -> None:
        # fp32 whatever state_dtype says: a low-precision running sum stops growing
        self.stats = {"score": {n: torch.zeros(p.shape, dtype=torch.float32, device=p.device)
                                for n, p in self.params.items()}}
        if self.options["form"] == "adam":
            for stat in ("exp_avg", "exp_avg_sq"):
                self.stats[stat] = {n: torch.zeros(p.shape, dtype=self.state_dtype, device=p.device)
                                    for n, p in self.params.items()}

    def release(self) -> None:
        self.stats = {}

    def observe(self, t: int) -> None:
        if not self.stats:
            self._allocate()
        adam = self.options["form"] == "adam"
        b1, b2 = self.options["betas"]
        for name, p in self.params.items():
            if not adam:
                if p.grad is not None:
                    # -inf (pruned) minus a finite number stays -inf, so pruned entries stay pinned
                    self.stats["score"][name].addcmul_(p.detach().float(), p.grad.detach().float(), value=-1.0)
                continue
            if p.grad is None:
                grad = torch.zeros(p.shape, dtype=torch.float32, device=p.device)
            else:  # the straight-through gradient of the scores: dL/dS = G * W
                grad = torch.mul(p.detach().float(), p.grad.detach().float())
            adam_score_step_(self.stats["score"][name], grad, self.stats["exp_avg"][name],
                             self.stats["exp_avg_sq"][name], t, float(self.options["lr"]), b1, b2,
                             float(self.options["eps"]))


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
