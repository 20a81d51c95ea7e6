"""The interface every pruning criterion implements, and the registry of method names.

An :class:`Importance` turns what it observes during training into one score per prunable weight entry;
ranking the scores and applying masks is done elsewhere (``threshold``, ``pruner``). The pruner calls,
in this order, on each pruning step:

1. ``observe(t)`` with ``t`` = 1, 2, ... counting observed pruning steps (gradients are in
   ``param.grad``; a step skipped for non-finite gradients is not observed and does not advance ``t``);
2. ``mask_due(t, observed, last)``: whether the masks change on this step (every step by default);
3. ``scores(masks)`` when a mask update is due: one tensor per weight, in the order of ``params``,
   higher = more important; entries already pruned (``masks[name]`` False) must be ``-inf`` so that a
   pruned weight never comes back;
4. ``masks_updated(masks, newly_pruned)`` after the masks changed; ``newly_pruned`` maps each weight
   whose mask changed to the flat indices (int64) of its newly pruned entries.

Every running statistic lives in ``state_dict()`` so that a resumed run is identical.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from .._validate import state_dtype as check_state_dtype
from .registry import checked_options, get_method, methods, register

__all__ = ["Importance", "register", "get_method", "methods"]


class Importance(ABC):
    """Base class: a scorer over a fixed, ordered set of weights.

    Subclasses set ``name``, ``defaults`` (the options they accept, with default values, all
    JSON-serialisable) and implement ``observe`` and ``scores``; decorated with :func:`register`, they
    are found by name (see :mod:`sevenprune.importance.registry`).
    """

    name: ClassVar[str] = ""
    #: when the method runs (:data:`~sevenprune.importance.registry.PHASES`); a method that also runs
    #: ``"before"`` fine-tuning adds the classmethod ``init_masks(request)``
    phases: ClassVar[tuple[str, ...]] = ("fine-tuning",)
    #: whether ``observe`` reads gradients (the pruner then checks that they exist)
    needs_grad: ClassVar[bool] = True
    #: options and their defaults; anything else passed to the constructor is an error
    defaults: ClassVar[dict[str, Any]] = {}
    #: True if no entry's score ever decreases between selections (an accumulated sum of non-negative
    #: terms, or fixed scores): the pruner may then select among the entries near the last threshold
    #: only (:class:`sevenprune.threshold.CandidateSet`), with the same result as a full scan
    monotone_scores: ClassVar[bool] = False

    @property
    def observes_before_window(self) -> bool:
        """Whether ``observe`` is also called on the steps before the pruning window (scores that
        learn from the first training step, as movement pruning's); ``t`` then counts those too."""
        return False

    def __init__(
        self,
        params: Mapping[str, Tensor],
        *,
        state_dtype: torch.dtype = torch.float32,
        **options: Any,
    ) -> None:
        self.options: dict[str, Any] = self.checked_options(options)
        self.state_dtype = check_state_dtype(state_dtype)
        self.params: dict[str, Tensor] = dict(params)
        self.stats: dict[str, dict[str, Tensor]] = {}

    @classmethod
    def checked_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` completed with :attr:`defaults` and checked, without building the method: an
        unknown name is a ``TypeError``, a bad value a ``ValueError`` (:meth:`check_options`).

        >>> from sevenprune.importance import get_method
        >>> get_method("random").checked_options({"seed": 3})
        {'seed': 3}
        """
        return checked_options(cls, options)

    # -- to implement ---------------------------------------------------------------------------
    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Raise ``ValueError`` for a bad option value (name it and the valid range); a value may be
        normalised in place (a tuple to a JSON list)."""

    @abstractmethod
    def observe(self, t: int) -> None:
        """Read this step's gradients (``param.grad``) and update the running statistics."""

    def scores(self, masks: Mapping[str, Tensor]) -> list[Tensor]:
        """One score tensor per weight (order of ``params``); pruned entries ``-inf``.

        The default serves methods that accumulate their score in ``self.stats["score"]`` and
        create their statistics in ``_allocate()``: the scores are returned as they are (no copy),
        since ``masks_updated`` keeps pruned entries at ``-inf``; statistics created now (no step
        observed yet) get the current masks pinned first.
        """
        if not self.stats:
            self._allocate()
            for name, mask in masks.items():
                self.pin_pruned(self.stats["score"][name], mask)
        return [self.stats["score"][name] for name in self.params]

    def _allocate(self) -> None:
        """Create the running statistics in ``self.stats`` (methods using the default ``scores``)."""
        raise NotImplementedError(f"method {self.name!r} must implement scores() or _allocate()")

    def masks_updated(self, masks: Mapping[str, Tensor], newly_pruned: Mapping[str, Tensor]) -> None:
        """Called after a mask update: pins pruned entries of an accumulated score to ``-inf``.

        ``newly_pruned[name]`` holds the flat indices pruned by this update (only changed weights); it
        is empty when the masks were replaced wholesale (``Pruner.set_masks``), and then every pruned
        entry is pinned. The default acts on ``self.stats["score"]``, where methods that accumulate a
        score keep it; methods that recompute scores from scratch pin in ``scores()`` instead.
        """
        score = getattr(self, "stats", {}).get("score")
        if not score:
            return
        if newly_pruned:
            for name, idx in newly_pruned.items():
                score[name].view(-1)[idx] = -math.inf
        else:
            for name, mask in masks.items():
                self.pin_pruned(score[name], mask)

    def mask_due(self, t: int, observed: bool, last: bool) -> bool:
        """Whether the masks should be updated on this pruning step (default: every step).

        ``t`` is the number of observed pruning steps so far, ``observed`` whether this step was
        observed, ``last`` whether it is the last step of the pruning window (a method must return
        True there, after folding in any statistics it holds back, so that the final count is exact).
        """
        return True

    def release(self) -> None:
        """Free the statistics once the pruning window is over (masks are fixed from then on)."""

    def bind_optimizer(self, optimizer: torch.optim.Optimizer | None, owners: Mapping[str, Tensor]) -> None:
        """Told the optimizer :meth:`sevenprune.Pruner.attach` attached (``None`` on ``detach``) and the
        parameters that key its state, by weight name. Default: ignored. A method that reads the optimizer's
        state (SEVEN's ``moments="optimizer"``) keeps them; one that cannot work with this optimizer raises."""

    # -- state ------------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, dict[str, Tensor]]:
        """``{statistic: {weight name: tensor}}``; override by storing statistics in ``self.stats``."""
        return getattr(self, "stats", {})

    def state_dict(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for stat, per_weight in self.state_tensors().items():
            for name, tensor in per_weight.items():
                out[f"{stat}/{name}"] = tensor
        return out

    def load_state_dict(self, state: Mapping[str, Tensor]) -> None:
        stats: dict[str, dict[str, Tensor]] = {}
        for key, tensor in state.items():
            stat, _, name = key.partition("/")
            if name not in self.params:
                raise ValueError(f"state has statistic {key!r} for a weight this pruner does not prune")
            param = self.params[name]
            if tuple(tensor.shape) != tuple(param.shape):
                raise ValueError(
                    f"statistic {key!r} has shape {tuple(tensor.shape)}, the weight has {tuple(param.shape)}"
                )
            stats.setdefault(stat, {})[name] = tensor.to(param.device).clone()
        self.stats = stats

    def nbytes(self) -> int:
        """Bytes held by the running statistics."""
        return sum(t.numel() * t.element_size() for d in self.state_tensors().values() for t in d.values())

    # -- helpers ----------------------------------------------------------------------------------
    @staticmethod
    def pin_pruned(score: Tensor, mask: Tensor | None) -> Tensor:
        """Set pruned entries of ``score`` to ``-inf`` in place (monotone masks)."""
        if mask is not None:
            score.masked_fill_(~mask, -math.inf)
        return score
