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

**The authors' local window** (``delta_t``, default 10 as in their GLUE scripts): their
``Pruner.update_ipt_with_local_window`` does not feed every step's ``I_t`` into the moving averages. It
averages ``I`` over a window of ``deltaT`` steps and updates ``Ibar`` and ``U`` once per window with the
finished window's mean, then restarts the window; masks change on window boundaries. Here, with
``t`` counting observed pruning steps::

    Iwin    = mean of I over the current window (observed steps (j-1)*delta_t + 1 ... j*delta_t)
    at t = j * delta_t:  Ibar <- b1 * Ibar + (1 - b1) * Iwin;  U <- b2 * U + (1 - b2) * |Iwin - Ibar|

and the masks are updated on those steps and on the last step of the pruning window (where a
partial window, if any, is folded in first, so that the final count is exact). ``delta_t=1`` is the
per-step form (every step folded in, masks every step).

Remaining differences from the authors' code, by choice: their windows are counted from the start of
training (their statistics also run through the warm-up before pruning) while ours start with the
pruning window; their window that ends at step ``s`` is steps ``s - deltaT ... s - 1`` (the boundary step
opens the next window), ours includes the boundary step; they threshold with a ``kthvalue`` per mask
update and masks can regrow, ours are the pruner's exact, monotone masks on the cubic schedule (pruned
entries scored ``-inf``). State: ``Ibar``, ``U`` and (``delta_t > 1``) the window's running mean, in
``state_dtype`` (12 bytes per weight in fp32), saved by ``state_dict()`` for exact resume.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from .base import Importance, register

__all__ = ["PlatonImportance"]


@register
class PlatonImportance(Importance):
    """``method="platon"``: score ``Ibar * U`` (Zhang et al. 2022, Eq. 4-7).

    Options: ``beta1`` (0.85, smoothing of the sensitivity), ``beta2`` (0.95, smoothing of the
    uncertainty), ``delta_t`` (10: the authors' local window; 1: every step).

    >>> import torch, sevenprune as sp
    >>> layer = torch.nn.Linear(2, 1, bias=False)
    >>> pruner = sp.Pruner(layer, "platon", sparsity=0.5, prune_steps=10, delta_t=1)
    >>> layer.weight.data = torch.tensor([[1.0, 1.0]])
    >>> layer.weight.grad = torch.tensor([[1.0, 2.0]])
    >>> pruner.step()
    >>> pruner.importance.stats["ibar"]["weight"]      # 0.15 * |W * G|
    tensor([[0.1500, 0.3000]])
    """

    name = "platon"
    defaults = {"beta1": 0.85, "beta2": 0.95, "delta_t": 10}

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        for key in ("beta1", "beta2"):
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{key} must be a number in [0, 1), got {value!r}")
        dt = options["delta_t"]
        if isinstance(dt, bool) or not isinstance(dt, int) or dt < 1:
            raise ValueError(f"delta_t must be an integer >= 1 (steps per window), got {dt!r}")

    def _allocate(self) -> None:
        stats = ("ibar", "unc", "ipt") if self.options["delta_t"] > 1 else ("ibar", "unc")
        self.stats = {stat: {n: torch.zeros(p.shape, dtype=self.state_dtype, device=p.device)
                             for n, p in self.params.items()} for stat in stats}

    def release(self) -> None:
        self.stats = {}

    def _fold(self, name: str, sens: Tensor) -> None:
        """One update of ``Ibar`` and ``U`` with the sensitivity ``sens`` (fp32; overwritten)."""
        b1, b2 = float(self.options["beta1"]), float(self.options["beta2"])
        ibar, unc = self.stats["ibar"][name], self.stats["unc"][name]
        # in fp32 state, .float() is the tensor itself and the updates happen in place;
        # lerp_(x, 1 - b) is b * self + (1 - b) * x in one pass
        ibar_new = ibar.float().lerp_(sens, 1.0 - b1)
        # |I_t - Ibar_t| with the updated Ibar (Eq. 6), computed in place in `sens`
        unc_new = unc.float().lerp_(sens.sub_(ibar_new).abs_(), 1.0 - b2)
        if ibar_new is not ibar:  # low-precision state: write back
            ibar.copy_(ibar_new)
            unc.copy_(unc_new)

    def observe(self, t: int) -> None:
        if not self.stats:
            self._allocate()
        dt = int(self.options["delta_t"])
        for name, p in self.params.items():
            if p.grad is None:  # the weight took no part in this step: sensitivity 0
                sens = torch.zeros(p.shape, dtype=torch.float32, device=p.device)
            else:
                sens = (p.detach().float() * p.grad.detach().float()).abs_()
            if dt == 1:
                self._fold(name, sens)
                continue
            ipt = self.stats["ipt"][name]
            local = (t - 1) % dt  # 0 opens a window
            if local == 0:
                ipt.copy_(sens)
            else:  # running mean over the window: ipt += (sens - ipt) / (local + 1)
                ipt.copy_(ipt.float().lerp_(sens, 1.0 / (local + 1)))
            if t % dt == 0:
                self._fold(name, ipt.float().clone())

    def mask_due(self, t: int, observed: bool, last: bool) -> bool:
        dt = int(self.options["delta_t"])
        if dt == 1:
            return True
        if last:
            if t % dt and self.stats:  # a partial window: fold it in before the final selection
                for name in self.params:
                    self._fold(name, self.stats["ipt"][name].float().clone())
            return True
        return observed and t % dt == 0

    def scores(self, masks: Mapping[str, Tensor]) -> list[Tensor]:
        if not self.stats:
            self._allocate()
        return [
            self.pin_pruned(self.stats["ibar"][n].float() * self.stats["unc"][n].float(), masks.get(n))
            for n in self.params
        ]
