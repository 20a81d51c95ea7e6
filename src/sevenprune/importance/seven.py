"""SEVEN: pruning by reserving sentinels (Xiao et al., 2024, arXiv:2403.12688).

Score, as the reference implementation computes it (``strategies/pruner.py``, ``layer_masks``), at
pruning step t = 1, 2, ... (counted from the start of the pruning window)::

    a_t   = |G|
    m_t   = b1 * m_{t-1} + (1 - b1) * a_t              (moments="signed": G instead of |G|)
    v_t   = b2 * v_{t-1} + (1 - b2) * a_t ** 2
    m_hat = m_t / (1 - b1 ** t)
    r_hat = sqrt(v_t / (1 - b2 ** t)) + eps
    S_t   = S_{t-1} + |W * a_t * m_hat / r_hat|        (moments="signed": |m_hat|)

``m_hat / r_hat`` is near 1 for a weight whose gradient is steady from batch to batch (a "sentinel")
and near 0 for one whose gradient is mostly noise, so the first-order score ``|W * G|`` is discounted
by the gradient's noise.

``t`` counts the *observed* pruning steps: a step skipped because a gradient was not finite (an AMP
overflow) advances the schedule but not the bias corrections, so ``1 - b^t`` always matches the number
of gradients averaged into ``m`` and ``v``.

``noise_discount=False`` is the ablation that tests the sentinel idea: the ratio is dropped and the
score is the accumulated first-order score ``S_t = S_{t-1} + |W * G|`` on the same schedule and
threshold (no moments are kept: 4 bytes per weight).

Memory: ``m`` and ``v`` are held in ``state_dtype`` (fp32 by default, bf16 to halve them) and the score
``S`` in fp32 (a bf16 running sum over thousands of steps would stop growing), i.e. 12 bytes per
weight in fp32 and 8 in bf16, plus the pruner's 1-byte mask. They exist only during the pruning window.

Speed: the update is one elementwise pass. Written as eager torch ops it makes ~12 passes over memory;
with ``compile=True`` (default ``"auto"``: large models only) it is fused by ``torch.compile`` into one
pass, falling back to eager if compilation is unavailable.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..batches import Batches, LossFn, backward, model_devices, own_grads
from .base import Importance, register
from .init_request import InitRequest

__all__ = ["SevenImportance", "seven_update_"]

#: below this many prunable weights, compilation costs more than it saves
_COMPILE_MIN_NUMEL = 1 << 22


def seven_update_(
    w: Tensor,
    g: Tensor,
    m: Tensor,
    v: Tensor,
    s: Tensor,
    b1: float,
    b2: float,
    c1: Tensor | float,
    c2: Tensor | float,
    eps: float,
    signed: bool,
) -> None:
    """One SEVEN step for one weight, in place on ``m``, ``v`` and ``s``.

    ``c1 = 1 / (1 - b1**t)`` and ``c2 = 1 / (1 - b2**t)`` are the bias corrections.
    """
    g32 = g.float()
    a = g32.abs()
    m_new = b1 * m.float() + (1.0 - b1) * (g32 if signed else a)
    v_new = b2 * v.float() + (1.0 - b2) * a * a
    ratio = (m_new.abs() if signed else m_new) * c1 / (torch.sqrt(v_new * c2) + eps)
    s.add_((w.float() * a * ratio).abs())
    m.copy_(m_new)
    v.copy_(v_new)


def _eager_update_(
    w: Tensor, g: Tensor, m: Tensor, v: Tensor, s: Tensor,
    b1: float, b2: float, c1: float, c2: float, eps: float, signed: bool,
) -> None:
    """Same maths as :func:`seven_update_`, with in-place ops to keep temporaries to two."""
    if m.dtype != torch.float32 or g.dtype != torch.float32 or w.dtype != torch.float32:
        seven_update_(w, g, m, v, s, b1, b2, c1, c2, eps, signed)
        return
    a = g.abs()
    m.lerp_(g if signed else a, 1.0 - b1)
    v.mul_(b2).addcmul_(a, a, value=1.0 - b2)
    denom = v.sqrt().mul_(math.sqrt(c2)).add_(eps)
    a.mul_(m.abs() if signed else m).div_(denom).mul_(w).abs_()
    s.add_(a, alpha=c1)


@register
class SevenImportance(Importance):
    """SEVEN score (``method="seven"``).

    Options: ``beta1`` (0.8), ``beta2`` (0.9), ``eps`` (1e-9), ``moments`` ("abs" as the reference,
    or "signed", the symbolic-descent reading), ``compile`` ("auto", True, False),
    ``noise_discount`` (True; False drops ``m_hat / r_hat``: the ablation ``S += |W * G|``).
    """

    name = "seven"
    phases = ("fine-tuning", "before")  # before: SEVEN_pre frozen (init_masks)
    monotone_scores = True  # S only accumulates |...| >= 0 (pruned entries stay at -inf)
    defaults = {"beta1": 0.8, "beta2": 0.9, "eps": 1e-9, "moments": "abs", "compile": "auto",
                "noise_discount": True}

    def __init__(self, params: Mapping[str, Tensor], *, state_dtype: torch.dtype = torch.float32,
                 **options: Any) -> None:
        super().__init__(params, state_dtype=state_dtype, **options)
        self._kernel: Callable[..., None] | None = None

    @classmethod
    def check_options(cls, o: dict[str, Any]) -> None:
        for key in ("beta1", "beta2"):
            if not isinstance(o[key], (int, float)) or not 0.0 <= o[key] < 1.0:
                raise ValueError(f"{key} must be a number in [0, 1), got {o[key]!r}")
        if not isinstance(o["eps"], (int, float)) or not o["eps"] > 0:
            raise ValueError(f"eps must be a positive number, got {o['eps']!r}")
        if o["moments"] not in ("abs", "signed"):
            raise ValueError(f"moments must be 'abs' or 'signed', got {o['moments']!r}")
        if o["compile"] not in ("auto", True, False):
            raise ValueError(f"compile must be 'auto', True or False, got {o['compile']!r}")
        if not isinstance(o["noise_discount"], bool):
            raise ValueError(f"noise_discount must be True or False, got {o['noise_discount']!r}")

    # -- statistics -------------------------------------------------------------------------------
    def _allocate(self) -> None:
        if not self.options["noise_discount"]:  # the ablation needs no moments
            self.stats = {"score": {n: torch.zeros(p.shape, dtype=torch.float32, device=p.device)
                                    for n, p in self.params.items()}}
            return
        self.stats = {"m": {}, "v": {}, "score": {}}
        for name, p in self.params.items():
            self.stats["m"][name] = torch.zeros(p.shape, dtype=self.state_dtype, device=p.device)
            self.stats["v"][name] = torch.zeros(p.shape, dtype=self.state_dtype, device=p.device)
            self.stats["score"][name] = torch.zeros(p.shape, dtype=torch.float32, device=p.device)

    def release(self) -> None:
        self.stats = {}

    def discount(self, name: str, t: int) -> Tensor:
        """The noise discount ``m_hat / r_hat`` (``|m_hat| / r_hat`` for signed moments) of weight ``name``
        after ``t`` observed steps, as the score update computes it (a new fp32 tensor)."""
        b1, b2, eps = float(self.options["beta1"]), float(self.options["beta2"]), float(self.options["eps"])
        m = self.stats["m"][name].float() / (1.0 - b1**t)
        r = (self.stats["v"][name].float() / (1.0 - b2**t)).sqrt_().add_(eps)
        return (m.abs_() if self.options["moments"] == "signed" else m).div_(r)

    def _use_compile(self) -> bool:
        flag = self.options["compile"]
        if flag == "auto":
            numel = sum(p.numel() for p in self.params.values())
            return numel >= _COMPILE_MIN_NUMEL and hasattr(torch, "compile")
        return bool(flag)

    def _update_fn(self) -> Callable[..., None]:
        if self._kernel is None:
            if self._use_compile():
                try:
                    self._kernel = torch.compile(seven_update_, dynamic=True, fullgraph=True)
                except Exception as exc:  # pragma: no cover - depends on the platform
                    warnings.warn(f"torch.compile unavailable ({exc}); using the eager SEVEN update")
                    self._kernel = _eager_update_
            else:
                self._kernel = _eager_update_
        return self._kernel

    def observe(self, t: int) -> None:
        if not self.stats:
            self._allocate()
        if not self.options["noise_discount"]:
            for name, p in self.params.items():
                if p.grad is not None:  # no gradient: no first-order score this step
                    self.stats["score"][name].add_((p.detach().float() * p.grad.detach().float()).abs_())
            return
        b1, b2, eps = float(self.options["beta1"]), float(self.options["beta2"]), float(self.options["eps"])
        signed = self.options["moments"] == "signed"
        c1 = 1.0 / (1.0 - b1**t)
        c2 = 1.0 / (1.0 - b2**t)
        fn = self._update_fn()
        compiled = fn is not _eager_update_
        # compiled: tensors, not Python floats, so that a new t does not trigger a recompilation;
        # one pair per device and step, not per weight
        corrections: dict[torch.device, tuple[Any, ...]] = {}
        for name, p in self.params.items():
            m, v, s = self.stats["m"][name], self.stats["v"][name], self.stats["score"][name]
            g = p.grad
            if g is None:  # the weight took no part in this step: a zero gradient
                g = torch.zeros_like(p)
            if p.device not in corrections:
                corrections[p.device] = (
                    (torch.tensor(c1, device=p.device), torch.tensor(c2, device=p.device)) if compiled
                    else (c1, c2))
            args = corrections[p.device]
            try:
                fn(p.detach(), g.detach(), m, v, s, b1, b2, *args, eps, signed)
            except Exception as exc:
                if not compiled:
                    raise
                warnings.warn(f"compiled SEVEN update failed ({exc!s:.200}); falling back to eager")
                self._kernel = fn = _eager_update_
                compiled = False
                fn(p.detach(), g.detach(), m, v, s, b1, b2, c1, c2, eps, signed)

    # -- before fine-tuning: SEVEN_pre frozen ------------------------------------------------------
    @classmethod
    def init_options(cls, options: dict[str, Any]) -> None:
        """``freeze_during_pruning`` is prune_at_init's own option of SEVEN_pre (only ``True``)."""
        if options.pop("freeze_during_pruning", True) is not True:
            raise ValueError(
                "prune_at_init runs SEVEN_pre with freeze_during_pruning=True (scores at the starting "
                "weights, no weight update); for SEVEN_pre as Algorithm 1 (weights updated while pruning) "
                "use sp.Pruner(model, 'seven', sparsity, start_step=0, prune_steps=K) in your training loop"
            )

    @classmethod
    def init_masks(cls, request: InitRequest) -> dict[str, Tensor]:
        """SEVEN_pre with ``freeze_during_pruning=True`` (method.md's decision).

        ``steps`` = K batches at the starting weights, no weight update: at step t the gradient of the
        *masked* network is observed by SEVEN's score, the cubic schedule ``s * (1 - (1 - t/K)**3)``
        gives the sparsity and the global threshold prunes the lowest-scored kept weights (monotone).
        The last step reaches exactly ``round(s * N)``.
        """
        assert request.loss_fn is not None and request.make_pruner is not None
        plist = list(request.params.values())
        stream = Batches(request.batches, model_devices(request.params))
        inner = request.make_pruner(request.model, cls, request.sparsity, start_step=0, prune_steps=request.steps,
                                    include=request.include, exclude=request.exclude,
                                    state_dtype=request.state_dtype, scope=request.scope, **request.options)
        w0 = [p.detach().clone() for p in plist]  # to restore the weights if a batch fails
        with own_grads(plist):
            _frozen_iterations(request.model, plist, w0, inner, stream, request.loss_fn, request.steps)
        return dict(inner.masks)


def _frozen_iterations(model: nn.Module, plist: list[nn.Parameter], w0: list[Tensor], inner: Any,
                       stream: Batches, loss_fn: LossFn, steps: int) -> None:
    """``steps`` steps of the inner pruner on the gradients of the masked, frozen weights."""
    try:
        for t, batch in enumerate(stream.cycle(steps)):
            backward(model, loss_fn, batch, t, plist)
            if all(p.grad is None for p in plist):
                for p in plist:
                    p.grad = torch.zeros_like(p)
            inner.step()  # observe, update the masks, zero the pruned weights in place
            for p in plist:
                p.grad = None
    except BaseException:
        with torch.no_grad():
            for p, w in zip(plist, w0):
                p.copy_(w)
        raise
    finally:
        for p in plist:
            p.grad = None
