"""Soft movement pruning (Sanh, Wolf & Rush, NeurIPS 2020), as close to the paper as the engine allows.

Paper: V. Sanh, T. Wolf, A. M. Rush, "Movement Pruning: Adaptive Sparsity by Fine-Tuning",
NeurIPS 2020 (arXiv:2005.07683), Sec. 4 ("soft movement pruning"). Each weight has a learned score
``S``; the forward pass uses ``W * M`` with ``M = 1[sigmoid(S) > tau]``; with the straight-through
estimator the gradient of the task loss with respect to ``S`` is ``dL/dS = G * W`` (Eq. 5, ``G`` =
the gradient with respect to the masked weight), and the scores are trained together with the model
on ``L_task + lambda * R(S)`` with the L1 penalty on the sigmoid of the scores.

What is computed here at each pruning step t (1, 2, ...)::

    R(S)    = (1 / L) * sum_l mean(sigmoid(S_l))        the authors' code's L1 penalty ("regularization",
                                                        mode "l1": mean per matrix, averaged over the L
                                                        pruned matrices)
    dS      = G * W + lambda * dR/dS                    dR/dS_l = sigmoid(S_l) (1 - sigmoid(S_l)) / (L n_l)
    S       <- Adam(S, dS; lr, betas, eps)              (or plain SGD: S <- S - lr * dS)

with ``S_0 = init`` (0.0: the authors' ``mask_init="constant"``, ``mask_scale=0``), ``lr = 1e-2`` (their
``mask_scores_learning_rate``), Adam's (0.9, 0.999, 1e-8) as the AdamW that trains the scores in their
code, and ``lambda = 400`` (their soft-movement recipe's ``final_lambda``; note that R is normalised by the
size of each matrix, so a good lambda depends on the model). A weight that moves away from zero
(``G * W < 0``) gains score and is kept.

Simplifications forced by the engine (masks are chosen by the pruner, not by the scorer):

* **Threshold.** The paper keeps ``sigmoid(S) > tau`` with a fixed (or scheduled) ``tau`` and lets
  lambda decide the final sparsity. Here the pruner's cubic schedule and exact global threshold keep
  the ``round((1 - s_t) * N)`` entries of highest ``S`` (the same as a threshold on ``sigmoid(S)``, chosen
  so that the count is exact). Lambda is constant (the authors' code ramps it up with ``tau``).
* **No regrowth.** In the paper a masked weight keeps its value and its score keeps learning, so it can
  come back. Here a pruned weight is zero for good (masks are monotone, its score is ``-inf``).
* **Lambda and the threshold are not scheduled.** The authors' code ramps the sigmoid threshold ``tau``
  on a cubic schedule and the regulariser with it (``lambda_t = final_lambda * tau_t / final_tau``);
  here lambda is constant and the count comes from the pruner's cubic schedule.
* **When the scores learn.** The authors' scores are trained from the first step of fine-tuning;
  here from the first pruning step, unless ``observe_from="start"``.
* **The scores are not a model parameter.** They are updated inside ``observe`` from ``param.grad``
  after the user's optimizer step, so the model's own optimizer and forward pass are untouched; the
  weights' forward uses the current hard mask, as in the paper.

State: ``S`` in fp32 and Adam's two moments in ``state_dtype`` (12 bytes per weight in fp32), all in
``state_dict()`` for exact resume.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .base import Importance, register

__all__ = ["SoftMovementImportance"]


def check_adam_options(o: dict[str, Any]) -> None:
    """Validate ``lr``, ``eps`` and ``betas`` of Adam-trained scores in place (betas become a JSON list)."""
    for key in ("lr", "eps"):
        if isinstance(o[key], bool) or not isinstance(o[key], (int, float)) or not o[key] > 0:
            raise ValueError(f"{key} must be a positive number, got {o[key]!r}")
    betas = o["betas"]
    if (not isinstance(betas, (tuple, list)) or len(betas) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0.0 <= b < 1.0 for b in betas)):
        raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
    o["betas"] = [float(b) for b in betas]  # JSON-friendly in the saved configuration


def adam_score_step_(s: Tensor, grad: Tensor, m: Tensor, v: Tensor, t: int, lr: float, b1: float, b2: float,
                     eps: float) -> None:
    """One Adam step on learned scores ``s`` (fp32, in place) with gradient ``grad`` (fp32; overwritten).

    ``m`` and ``v`` (any float dtype) are Adam's moments, updated in place; ``t`` counts Adam steps
    from 1 (bias corrections ``1 - b^t``). ``-inf`` entries of ``s`` (pruned) stay ``-inf``.
    """
    # in fp32 state, .float() is the tensor itself and the updates happen in place
    m_new = m.float().lerp_(grad, 1.0 - b1)
    v_new = v.float().mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
    denom = grad.copy_(v_new).sqrt_().div_(math.sqrt(1.0 - b2**t)).add_(eps)  # reuses `grad`
    s.addcdiv_(m_new, denom, value=-lr / (1.0 - b1**t))
    if m_new is not m:  # low-precision state: write back
        m.copy_(m_new)
        v.copy_(v_new)


@register
class SoftMovementImportance(Importance):
    """``method="soft_movement"``: learned scores with an L1 penalty on ``sigmoid(S)`` (Sanh et al. 2020).

    Options: ``lr`` (1e-2), ``reg_lambda`` (400.0), ``init`` (0.0), ``score_optimizer`` ("adam" or
    "sgd"), ``betas`` ((0.9, 0.999)), ``eps`` (1e-8), ``observe_from`` ("window": the scores learn during
    the pruning window; "start": from the first training step, as the authors' scores, which are model
    parameters trained from the start).

    >>> import torch, sevenprune as sp
    >>> layer = torch.nn.Linear(2, 1, bias=False)
    >>> pruner = sp.Pruner(layer, "soft_movement", sparsity=0.5, prune_steps=1,
    ...                    score_optimizer="sgd", lr=1.0, reg_lambda=0.0)
    >>> layer.weight.data = torch.tensor([[0.5, 2.0]])
    >>> layer.weight.grad = torch.tensor([[-1.0, 1.0]])   # S -= lr * G * W
    >>> pruner.step()
    >>> pruner.masks["weight"].tolist()
    [[True, False]]
    """

    name = "soft_movement"
    defaults = {"lr": 1e-2, "reg_lambda": 400.0, "init": 0.0, "score_optimizer": "adam",
                "betas": (0.9, 0.999), "eps": 1e-8, "observe_from": "window"}

    @property
    def observes_before_window(self) -> bool:
        return bool(self.options["observe_from"] == "start")

    @classmethod
    def check_options(cls, o: dict[str, Any]) -> None:
        check_adam_options(o)
        lam = o["reg_lambda"]
        if isinstance(lam, bool) or not isinstance(lam, (int, float)) or not lam >= 0 or math.isinf(lam):
            raise ValueError(f"reg_lambda must be a finite number >= 0, got {lam!r}")
        init = o["init"]
        if isinstance(init, bool) or not isinstance(init, (int, float)) or not math.isfinite(init):
            raise ValueError(f"init must be a finite number, got {init!r}")
        if o["score_optimizer"] not in ("adam", "sgd"):
            raise ValueError(f"score_optimizer must be 'adam' or 'sgd', got {o['score_optimizer']!r}")
        if o["observe_from"] not in ("window", "start"):
            raise ValueError(f"observe_from must be 'window' or 'start', got {o['observe_from']!r}")

    def _allocate(self) -> None:
        init = float(self.options["init"])
        self.stats = {"score": {n: torch.full(p.shape, init, dtype=torch.float32, device=p.device)
                                for n, p in self.params.items()}}
        if self.options["score_optimizer"] == "adam":
            for stat in ("exp_avg", "exp_avg_sq"):
                self.stats[stat] = {n: torch.zeros(p.shape, dtype=self.state_dtype, device=p.device)
                                    for n, p in self.params.items()}

    def release(self) -> None:
        self.stats = {}

    def score_gradient(self, name: str) -> Tensor:
        """``dS = G * W + lambda * sigmoid'(S) / (L * n_l)`` for one weight (a new fp32 tensor)."""
        p = self.params[name]
        s = self.stats["score"][name]
        if p.grad is not None:
            grad = torch.mul(p.detach().float(), p.grad.detach().float())
        else:
            grad = torch.zeros(p.shape, dtype=torch.float32, device=p.device)
        lam = float(self.options["reg_lambda"])
        if lam:
            sig = torch.sigmoid(s)  # sigmoid(-inf) = 0: pruned entries get no penalty gradient
            coef = lam / (len(self.params) * p.numel())
            grad.add_(sig.sub_(sig * sig), alpha=coef)  # sigmoid' = sig - sig^2
        return grad

    def observe(self, t: int) -> None:
        if not self.stats:
            self._allocate()
        lr, eps = float(self.options["lr"]), float(self.options["eps"])
        b1, b2 = self.options["betas"]
        adam = self.options["score_optimizer"] == "adam"
        for name in self.params:
            s = self.stats["score"][name]
            grad = self.score_gradient(name)
            if not adam:
                s.sub_(grad, alpha=lr)  # -inf minus a finite number stays -inf
                continue
            adam_score_step_(s, grad, self.stats["exp_avg"][name], self.stats["exp_avg_sq"][name], t, lr, b1, b2,
                             eps)
