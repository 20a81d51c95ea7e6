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

``moments="optimizer"`` keeps no moments: the discount is read from the attached Adam/AdamW's own
``exp_avg`` / ``exp_avg_sq``, with its betas and its per-weight step count ``k`` (see
:func:`seven_optimizer_update_`). ``pruner.step()`` runs after ``optimizer.step()``, so those moments
already hold this step's gradient, as the pruner's own moments do when it updates them first::

    m_hat = exp_avg / (1 - b1 ** k);  r_hat = sqrt(exp_avg_sq / (1 - b2 ** k)) + eps
    S_t   = S_{t-1} + |W * G * m_hat / r_hat|          (b1, b2: the optimizer's, 0.9 / 0.999 by default)

The pruner then holds the score only, in ``state_dtype``: 4 bytes per weight in fp32, 2 in bf16 (plus
the mask). A bf16 running sum would stop growing once ``S`` is ~256 times a step's increment (the
increment rounds away), so the bf16 score is rounded *stochastically*: up with probability equal to the
fraction of a bf16 unit that round-to-nearest would drop, from dither bits taken out of the gradient's
lowest mantissa bits and the step count (no random generator: deterministic, identical on every rank,
exact on resume; see :func:`_round_bf16_`). The sum is then unbiased; its rounding noise has a relative
standard deviation of about ``sqrt(t / 18) * 2**-7.5`` after ``t`` steps (1.4 % at t = 100, 3.6 % at
t = 1,000 in a simulation with noisy gradients; less where the increments are steady).

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

__all__ = ["SevenImportance", "seven_update_", "seven_optimizer_update_", "gradient_bits", "dither_offset",
           "MOMENT_OPTIMIZERS"]

#: optimizers whose state holds Adam's ``exp_avg`` / ``exp_avg_sq`` / ``step`` with ``betas`` in the param
#: group and the bias correction ``1 - b ** step``: what ``moments="optimizer"`` reads (AdamW subclasses
#: Adam; the foreach and fused forms are the same classes; the HF Trainer's AdamW is torch's)
MOMENT_OPTIMIZERS: tuple[type[torch.optim.Optimizer], ...] = (torch.optim.Adam, torch.optim.AdamW)

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


def gradient_bits(g: Tensor) -> Tensor:
    """The gradient's bit pattern as integers (a view: no copy), the source of the bf16 score's dither."""
    return g.view({torch.float64: torch.int64, torch.float32: torch.int32}.get(g.dtype, torch.int16))


def dither_offset(t: int) -> int:
    """Step ``t``'s term of the dither's Weyl sequence, ``t * 40503 mod 2^16`` (the golden ratio in 16 bits)."""
    return (t * 40503) & 0xFFFF


def _round_bf16_(s: Tensor, total: Tensor, bits: Tensor, offset: Tensor | int) -> None:
    """``s`` (bf16) = ``total`` (fp32, non-negative or -inf) rounded stochastically: adding ``u`` in
    [0, 2^16) to the bit pattern and truncating the low 16 bits rounds up with probability
    (dropped bits) / 2^16. -inf stays -inf (its low bits are zero and are dropped again).

    ``u`` is the gradient's lowest byte (as its high byte) and next byte (``bits``:
    :func:`gradient_bits`), plus the step's term of a Weyl sequence (``offset``: :func:`dither_offset`).
    A gradient's lowest bits are as good as uniform and nearly independent of the increment's high bits,
    which decide the rounding once the increment is much smaller than the sum; the step's term keeps the
    rounding unbiased where those bits repeat (a steady gradient) or are zero (a bf16-born gradient). No
    random generator: deterministic, the same on every rank, exact on resume. Read from memory, the bits
    cost one load; taken from a computed value the fused kernel's bit casts are not vectorised."""
    b = bits.to(torch.int32)
    u = ((((b & 0xFF) << 8) | ((b >> 8) & 0xFF)) + offset) & 0xFFFF
    s.copy_(((total.view(torch.int32) + u) & -65536).view(torch.float32))


def seven_optimizer_update_(
    w: Tensor, g: Tensor, m: Tensor, v: Tensor, s: Tensor,
    c1: Tensor | float, c2: Tensor | float, eps: float, bits: Tensor | None = None, offset: Tensor | int = 0,
) -> None:
    """One step of the ``moments="optimizer"`` form for one weight, in place on ``s``:
    ``S += |W * G * m * c1 / (sqrt(v * c2) + eps)|`` with the optimizer's ``m = exp_avg``,
    ``v = exp_avg_sq`` and bias corrections ``c1 = 1 / (1 - b1**k)``, ``c2 = 1 / (1 - b2**k)``.

    ``s`` is fp32, or bf16 rounded stochastically (:func:`_round_bf16_`, with ``bits`` =
    :func:`gradient_bits` of ``g`` and ``offset`` = :func:`dither_offset` of the step).
    """
    inc = (w.float() * g.float() * m.float() * c1 / (torch.sqrt(v.float() * c2) + eps)).abs()
    if s.dtype == torch.float32:
        s.add_(inc)
    else:
        _round_bf16_(s, s.float() + inc, gradient_bits(g) if bits is None else bits, offset)


def _eager_optimizer_update_(
    w: Tensor, g: Tensor, m: Tensor, v: Tensor, s: Tensor,
    c1: Tensor | float, c2: Tensor | float, eps: float, bits: Tensor | None = None, offset: Tensor | int = 0,
) -> None:
    """Same maths as :func:`seven_optimizer_update_` with one temporary (``|W G m| / r`` in place)."""
    tmp = v.float().mul(c2) if v.dtype == torch.float32 else v.float().mul_(c2)
    tmp.sqrt_().add_(eps)
    torch.div(m.float(), tmp, out=tmp)
    tmp.mul_(g).mul_(w).abs_().mul_(c1)
    if s.dtype == torch.float32:
        s.add_(tmp)
    else:
        _round_bf16_(s, s.float().add_(tmp), gradient_bits(g) if bits is None else bits, offset)


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
    "signed", the symbolic-descent reading, or "optimizer": the attached Adam/AdamW's own moments,
    betas and step count, so that the pruner keeps no moments; ``beta1``/``beta2`` are then unused),
    ``compile`` ("auto", True, False), ``noise_discount`` (True; False drops ``m_hat / r_hat``: the
    ablation ``S += |W * G|``).

    >>> import torch, sevenprune as sp
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 8))
    >>> opt = torch.optim.AdamW(model.parameters())
    >>> pruner = sp.Pruner(model, "seven", 0.5, prune_steps=4, optimizer=opt, moments="optimizer",
    ...                    state_dtype=torch.bfloat16)
    >>> model(torch.randn(2, 8)).sum().backward(); opt.step(); pruner.step()
    >>> pruner.state_nbytes() / pruner.numel   # a bf16 score and the 1-byte mask
    3.0
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
        # moments="optimizer": the attached optimizer, its parameters by weight name (the keys of its
        # state) and param group, and the optimizer's step count of each weight at the last observed step
        self._optimizer: torch.optim.Optimizer | None = None
        self._owners: dict[str, Tensor] = {}
        self._groups: dict[int, Mapping[str, Any]] = {}
        self._last_step: dict[str, Tensor | float] = {}
        self._check_steps = False  # set by a load: the first observe checks the optimizer's step counts

    @classmethod
    def check_options(cls, o: dict[str, Any]) -> None:
        for key in ("beta1", "beta2"):
            if not isinstance(o[key], (int, float)) or not 0.0 <= o[key] < 1.0:
                raise ValueError(f"{key} must be a number in [0, 1), got {o[key]!r}")
        if not isinstance(o["eps"], (int, float)) or not o["eps"] > 0:
            raise ValueError(f"eps must be a positive number, got {o['eps']!r}")
        if o["moments"] not in ("abs", "signed", "optimizer"):
            raise ValueError(f"moments must be 'abs', 'signed' or 'optimizer', got {o['moments']!r}")
        if o["compile"] not in ("auto", True, False):
            raise ValueError(f"compile must be 'auto', True or False, got {o['compile']!r}")
        if not isinstance(o["noise_discount"], bool):
            raise ValueError(f"noise_discount must be True or False, got {o['noise_discount']!r}")

    @property
    def reads_optimizer(self) -> bool:
        """Whether the discount comes from the optimizer's moments (``moments="optimizer"``)."""
        return self.options["moments"] == "optimizer" and bool(self.options["noise_discount"])

    @property
    def has_discount(self) -> bool:
        """Whether a noise discount can be read now (:meth:`discount`): statistics exist and the score
        uses one (False for the ablation ``noise_discount=False``)."""
        return bool(self.stats) and self.options["noise_discount"] and (
            "m" in self.stats or (self.reads_optimizer and self._optimizer is not None))

    # -- the optimizer (moments="optimizer") ------------------------------------------------------
    def bind_optimizer(self, optimizer: torch.optim.Optimizer | None, owners: Mapping[str, Tensor]) -> None:
        """Called by :meth:`sevenprune.Pruner.attach` (``None``: ``detach``). With ``moments="optimizer"``
        an optimizer that keeps no Adam moments is refused here, before the pruner changes anything."""
        if not self.reads_optimizer:
            return
        if optimizer is not None and not isinstance(optimizer, MOMENT_OPTIMIZERS):
            kind = type(optimizer)
            raise ValueError(
                f"moments='optimizer' reads the noise discount from the optimizer's exp_avg and exp_avg_sq, "
                f"which {kind.__module__}.{kind.__qualname__} does not keep; attach a torch.optim.Adam or "
                f"AdamW (foreach or fused forms included, the HF Trainer's default), or use moments='abs' "
                f"(the reference) or moments='signed', which keep their own moments in the pruner")
        self._optimizer = optimizer
        self._owners = dict(owners)
        self._groups = {}

    def _step_count(self, name: str, state: Mapping[str, Any]) -> Tensor | float:
        step = state.get("step")
        if step is None:
            raise RuntimeError(f"moments='optimizer': the optimizer's state of weight {name!r} has no 'step'")
        if isinstance(step, Tensor):
            step = step.to_local() if hasattr(step, "to_local") else step
            return float(step) if step.device.type == "cpu" else step.detach().clone()
        return float(step)

    def _optimizer_moments(self, name: str) -> tuple[Tensor, Tensor, Tensor | float, float, float] | None:
        """``(exp_avg, exp_avg_sq, step, beta1, beta2)`` of weight ``name`` (local shards under FSDP2), or
        None if the optimizer holds no moments for it (it has not stepped it yet)."""
        if self._optimizer is None:
            raise RuntimeError(
                "moments='optimizer' reads the noise discount from the attached optimizer's moments, but no "
                "optimizer is attached at this pruning step: build the Pruner with optimizer=... or call "
                "pruner.attach(optimizer) (an Adam or AdamW), or use moments='abs' or moments='signed'")
        owner = self._owners[name]
        state = self._optimizer.state.get(owner)
        if not state or "exp_avg" not in state or "exp_avg_sq" not in state:
            return None
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m = m.to_local() if hasattr(m, "to_local") else m
        v = v.to_local() if hasattr(v, "to_local") else v
        if m.shape != self.params[name].shape or v.shape != m.shape:
            raise RuntimeError(f"moments='optimizer': the optimizer's exp_avg of weight {name!r} has shape "
                               f"{tuple(m.shape)}, the weight {tuple(self.params[name].shape)}")
        group = self._groups.get(id(owner))
        if group is None:  # first use, or a param group added since
            self._groups = {id(q): g for g in self._optimizer.param_groups for q in g["params"]}
            group = self._groups[id(owner)]
        b1, b2 = (float(b) for b in group["betas"])
        return m, v, self._step_count(name, state), b1, b2

    @staticmethod
    def _corrections(step: Tensor | float, b1: float, b2: float) -> tuple[Tensor | float, Tensor | float]:
        """``1 / (1 - b1**k)`` and ``1 / (1 - b2**k)``; a step held on an accelerator stays there (no sync)."""
        if isinstance(step, Tensor):
            k = step.double()
            return ((1.0 - torch.pow(b1, k)).reciprocal().float(), (1.0 - torch.pow(b2, k)).reciprocal().float())
        return 1.0 / (1.0 - b1**step), 1.0 / (1.0 - b2**step)

    def _check_step(self, name: str, step: Tensor | float) -> None:
        """The optimizer must have stepped this weight exactly once since the last observed step: else its
        moments are not those of the run the score comes from (a resumed pruner state with another
        optimizer state, or ``pruner.step()`` not called once after every ``optimizer.step()``)."""
        last = self._last_step.get(name)
        if last is None:
            return
        if isinstance(step, Tensor) or isinstance(last, Tensor):
            if not self._check_steps:
                return  # a step on an accelerator is checked once after a load, not at every step (a sync)
            step, last = float(step), float(last)
        if step != last + 1:
            raise RuntimeError(
                f"moments='optimizer': the optimizer has stepped weight {name!r} {step:g} times, but the "
                f"pruner last read its moments at optimizer step {last:g}, so {last + 1:g} were expected. The "
                "optimizer's state does not go with the pruner's (after loading a pruner state, load the "
                "optimizer state_dict saved with it, from the same checkpoint), or pruner.step() was not "
                "called exactly once after every optimizer.step(). If the optimizer was advanced without the "
                "pruner on purpose, call pruner.importance.forget_optimizer_steps() first")

    def forget_optimizer_steps(self) -> None:
        """Take the optimizer's step counts as they stand at the next ``observe`` (``moments="optimizer"``).

        The pruner checks that the optimizer stepped each weight exactly once between two observed steps,
        so that the moments it reads are those of the run it scores. Call this after advancing the optimizer
        on purpose without ``pruner.step()`` (steps taken with the pruner detached, a benchmark's plain
        steps): the next step reads the moments as the optimizer has them and checks from there on.
        """
        self._last_step = {}
        self._check_steps = False

    # -- statistics -------------------------------------------------------------------------------
    def _allocate(self) -> None:
        if not self.options["noise_discount"]:  # the ablation needs no moments
            self.stats = {"score": {n: torch.zeros(p.shape, dtype=torch.float32, device=p.device)
                                    for n, p in self.params.items()}}
            return
        if self.reads_optimizer:  # the score only, in state_dtype (bf16: rounded stochastically)
            self.stats = {"score": {n: torch.zeros(p.shape, dtype=self.state_dtype, device=p.device)
                                    for n, p in self.params.items()}}
            return
        self.stats = {"m": {}, "v": {}, "score": {}}
        for name, p in self.params.items():
            self.stats["m"][name] = torch.zeros(p.shape, dtype=self.state_dtype, device=p.device)
            self.stats["v"][name] = torch.zeros(p.shape, dtype=self.state_dtype, device=p.device)
            self.stats["score"][name] = torch.zeros(p.shape, dtype=torch.float32, device=p.device)

    def release(self) -> None:
        self.stats = {}
        self._last_step = {}

    # -- state: the optimizer's step count of each weight at the last observed step ----------------------
    def state_dict(self) -> dict[str, Tensor]:
        out = super().state_dict()
        for name, step in self._last_step.items():
            out[f"optimizer_step/{name}"] = torch.as_tensor(step, dtype=torch.float64).detach().cpu().reshape(())
        return out

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        steps = {k: v for k, v in state.items() if k.startswith("optimizer_step/")}
        super().load_state_dict({k: v for k, v in state.items() if k not in steps})
        self._last_step = {k.partition("/")[2]: float(v) for k, v in steps.items()}
        unknown = sorted(set(self._last_step) - set(self.params))
        if unknown:
            raise ValueError(f"state has statistic 'optimizer_step/{unknown[0]}' for a weight this pruner "
                             "does not prune")
        self._check_steps = True

    def discount(self, name: str, t: int) -> Tensor:
        """The noise discount ``m_hat / r_hat`` (``|m_hat| / r_hat`` for signed moments) of weight ``name``
        after ``t`` observed steps, as the score update computes it (a new fp32 tensor). With
        ``moments="optimizer"`` it is read from the optimizer, at its own step count (``t`` unused)."""
        eps = float(self.options["eps"])
        if self.reads_optimizer:
            found = self._optimizer_moments(name)
            if found is None:
                return torch.zeros(self.params[name].shape, dtype=torch.float32, device=self.params[name].device)
            m_opt, v_opt, step, b1, b2 = found
            c1, c2 = self._corrections(step, b1, b2)
            r = v_opt.float().mul(c2).sqrt_().add_(eps)
            return m_opt.float().mul(c1).abs_().div_(r)
        b1, b2 = float(self.options["beta1"]), float(self.options["beta2"])
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
        eager = _eager_optimizer_update_ if self.reads_optimizer else _eager_update_
        if self._kernel is None:
            if self._use_compile():
                try:
                    self._kernel = torch.compile(seven_optimizer_update_ if self.reads_optimizer else seven_update_,
                                                 dynamic=True, fullgraph=True)
                except Exception as exc:  # pragma: no cover - depends on the platform
                    warnings.warn(f"torch.compile unavailable ({exc}); using the eager SEVEN update")
                    self._kernel = eager
            else:
                self._kernel = eager
        return self._kernel

    def _observe_optimizer(self, t: int) -> None:
        """``moments="optimizer"``: every weight's moments are found and their step counts checked first,
        so that a refusal leaves the score untouched."""
        eps = float(self.options["eps"])
        work = []
        for name, p in self.params.items():
            grad = p.grad
            if grad is None:  # no gradient: Adam did not step it and the score gains |W * 0| = 0
                continue
            found = self._optimizer_moments(name)
            if found is None:
                raise RuntimeError(
                    f"moments='optimizer': the optimizer holds no exp_avg for weight {name!r}, which has a "
                    "gradient; call pruner.step() after optimizer.step() (the moments must hold this step's "
                    "gradient), with every prunable weight in the optimizer")
            self._check_step(name, found[2])
            work.append((name, p, grad, found))
        self._check_steps = False
        fn = self._update_fn()
        compiled = fn is not _eager_optimizer_update_
        offset: Any = dither_offset(t)  # t: observed steps, the same on every rank and after a resume
        for name, p, grad, (m, v, step, b1, b2) in work:
            c1, c2 = self._corrections(step, b1, b2)
            if compiled and not isinstance(c1, Tensor):  # tensors: a new k or t must not recompile
                c1, c2 = torch.tensor(c1, device=p.device), torch.tensor(c2, device=p.device)
            if compiled and not isinstance(offset, Tensor):
                offset = torch.tensor(offset, dtype=torch.int32, device=p.device)
            s, g = self.stats["score"][name], grad.detach()
            bits = gradient_bits(g) if s.dtype != torch.float32 else None
            try:
                fn(p.detach(), g, m, v, s, c1, c2, eps, bits, offset)
            except Exception as exc:
                if not compiled:
                    raise
                warnings.warn(f"compiled SEVEN update failed ({exc!s:.200}); falling back to eager")
                self._kernel = fn = _eager_optimizer_update_
                compiled = False
                fn(p.detach(), g, m, v, s, c1, c2, eps, bits, offset)
            self._last_step[name] = step

    def observe(self, t: int) -> None:
        if not self.stats:
            self._allocate()
        if not self.options["noise_discount"]:
            for name, p in self.params.items():
                if p.grad is not None:  # no gradient: no first-order score this step
                    self.stats["score"][name].add_((p.detach().float() * p.grad.detach().float()).abs_())
            return
        if self.reads_optimizer:
            self._observe_optimizer(t)
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
                                    state_dtype=request.state_dtype, scope=request.scope,
                                    pattern=request.pattern, **request.options)
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
