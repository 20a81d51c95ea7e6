"""PLATON: pruning by the upper confidence bound of weight importance (Zhang et al., ICML 2022).

Paper: Q. Zhang, S. Zuo, C. Liang, A. Bukharin, P. He, W. Chen, T. Zhao, "PLATON: Pruning Large
Transformer Models with Upper Confidence Bound of Weight Importance", ICML 2022 (arXiv:2206.12562),
Sec. 3, Eq. (4)-(7). At every pruning step t = 1, 2, ... with the current batch's gradient G::

    I_t     = |W * G|                                      sensitivity, Eq. (4)
    Ibar_t  = b1 * Ibar_{t-1} + (1 - b1) * I_t             smoothed sensitivity, Eq. (5)
    U_t     = b2 * U_{t-1}   + (1 - b2) * |I_t - Ibar_t|   uncertainty, Eq. (6)
    score_t = Ibar_t * U_t                                 upper confidence bound, Eq. (7)

with ``Ibar_0 = U_0 = 0`` and defaults ``b1 = 0.85``, ``b2 = 0.95`` (the paper's BERT settings). Note
that U uses the *updated* ``Ibar_t``, as the authors' code does. Unlike SEVEN, a weight whose
sensitivity fluctuates gets a *higher* score (the uncertainty term rewards exploration), so at equal
mean sensitivity PLATON keeps the noisy weight and SEVEN the steady one.

Differences from the authors' code: they mask every ``deltaT`` steps with a per-call ``kthvalue``;
here the pruner's cubic schedule and exact global threshold decide when and how many (masks are
monotone, pruned entries scored ``-inf``). State: ``Ibar`` and ``U`` in ``state_dtype`` (8 bytes per
weight in fp32), saved by ``state_dict()`` for exact resume.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from .base import Importance, register

__all__ = ["PlatonImportance"]


@register
class PlatonImportance(Importance):
    """``method="platon"``: score ``Ibar * U`` (Zhang et al. 2022, Eq. 4-7).

    Options: ``beta1`` (0.85, smoothing of the sensitivity), ``beta2`` (0.95, smoothing of the
    uncertainty).

    >>> import torch, sevenprune as sp
    >>> layer = torch.nn.Linear(2, 1, bias=False)
    >>> pruner = sp.Pruner(layer, "platon", sparsity=0.5, prune_steps=10)
    >>> layer.weight.data = torch.tensor([[1.0, 1.0]])
    >>> layer.weight.grad = torch.tensor([[1.0, 2.0]])
    >>> pruner.step()
    >>> pruner.importance.stats["ibar"]["weight"]      # 0.15 * |W * G|
    tensor([[0.1500, 0.3000]])
    """

    name = "platon"
    defaults = {"beta1": 0.85, "beta2": 0.95}

    def validate_options(self) -> None:
        for key in ("beta1", "beta2"):
            value = self.options[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{key} must be a number in [0, 1), got {value!r}")
        self.stats: dict[str, dict[str, Tensor]] = {}

    def _allocate(self) -> None:
        self.stats = {"ibar": {}, "unc": {}}
        for name, p in self.params.items():
            self.stats["ibar"][name] = torch.zeros(p.shape, dtype=self.state_dtype, device=p.device)
            self.stats["unc"][name] = torch.zeros(p.shape, dtype=self.state_dtype, device=p.device)

    def release(self) -> None:
        self.stats = {}

    def observe(self, t: int) -> None:
        if not self.stats:
            self._allocate()
        b1, b2 = float(self.options["beta1"]), float(self.options["beta2"])
        for name, p in self.params.items():
            if p.grad is None:  # the weight took no part in this step: sensitivity 0
                sens = torch.zeros(p.shape, dtype=torch.float32, device=p.device)
            else:
                sens = (p.detach().float() * p.grad.detach().float()).abs_()
            ibar, unc = self.stats["ibar"][name], self.stats["unc"][name]
            # in fp32 state, .float() is the tensor itself and the updates happen in place;
            # lerp_(x, 1 - b) is b * self + (1 - b) * x in one pass
            ibar_new = ibar.float().lerp_(sens, 1.0 - b1)
            # |I_t - Ibar_t| with the updated Ibar (Eq. 6), computed in place in `sens`
            unc_new = unc.float().lerp_(sens.sub_(ibar_new).abs_(), 1.0 - b2)
            if ibar_new is not ibar:  # low-precision state: write back
                ibar.copy_(ibar_new)
                unc.copy_(unc_new)

    def scores(self, masks: Mapping[str, Tensor]) -> list[Tensor]:
        if not self.stats:
            self._allocate()
        return [
            self.pin_pruned(self.stats["ibar"][n].float() * self.stats["unc"][n].float(), masks.get(n))
            for n in self.params
        ]
