"""The :class:`Pruner`: ties a scoring method, the cubic schedule, the global threshold and the masks.

Steps are optimizer updates: call ``pruner.step()`` after each ``optimizer.step()`` (README, "Use it
in your training loop"). Call ``n`` is a pruning step when ``start_step < n <= start_step + prune_steps``.
The order of work in a step, and the collaborators the Pruner calls (``distributed.PrunableWeights``,
``selection``, ``masks``, ``gradients``, ``state_format``), are in docs/design.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from . import gradients, schedules, selection
from ._validate import SCOPES, STATE_DTYPES, check_int, check_scope, dtype_name, unwrap_optimizer
from ._validate import check_sparsity as _check_sparsity
from ._validate import state_dtype as _state_dtype
from .distributed import PrunableWeights
from .importance import Importance, method_for, methods
from .importance.fixed import FixedMasks
from .masks import ExtraMasks, OptimizerLink, checked_keep_masks, factor, mask_on, pruned_counts, pruned_fraction
from .reporting import pruning_report, summary_table
from .state_format import STATE_FORMAT, check_fits, loaded_extra_masks, loaded_masks, saved_method
from .targets import find_prunable, pattern_list

__all__ = ["Pruner", "STATE_FORMAT", "STATE_DTYPES", "SCOPES", "method_class"]


def method_class(method: str | type[Importance]) -> type[Importance]:
    """The importance of ``method``: a registered name, or an :class:`Importance` subclass. An unknown
    name, or one of a method of another phase, is a ``ValueError`` saying which entry point runs it."""
    if isinstance(method, type) and issubclass(method, Importance):
        return method
    return method_for(method, "fine-tuning")  # type: ignore[no-any-return]


class Pruner:
    """Prune a model's weights on a cubic schedule with a global threshold.

    Args:
        model: the model to prune; its weights are masked in place (state_dict keys unchanged).
        method: a name from :func:`sevenprune.importance.methods` (``"seven"``, ``"magnitude"``, ...),
            or an :class:`~sevenprune.Importance` subclass. The methods that prune before fine-tuning
            (:func:`sevenprune.init_methods`) go through :func:`sevenprune.prune_at_init`.
        sparsity: the fraction of prunable weights set to zero at the end, in ``[0, 1)``.
        start_step: number of optimizer updates before pruning starts (``t_i``).
        prune_steps: length of the pruning window in optimizer updates (``K``).
        include, exclude: regular expressions over weight names overriding the default prunable set
            (see :func:`sevenprune.targets.find_prunable`).
        optimizer: if given, :meth:`attach` is called with it.
        state_dtype: dtype of the method's running moments (``torch.bfloat16`` halves them).
        pattern: ``"unstructured"`` (default), ``"n:m"``, ``"heads"``, ``"neurons"``, ``"heads+neurons"``
            (see :mod:`sevenprune.patterns`).
        scope: ``"global"`` (default, as SEVEN's reference: one threshold over every prunable weight,
            so layers end with different sparsities) or ``"local"`` (every prunable matrix reaches the
            scheduled fraction itself, ``round(s * n)`` of its ``n`` entries, as movement pruning's
            authors and Zhu & Gupta rank; for ``"heads"``/``"neurons"`` the same fraction of groups
            in every layer).
        mask_interval: select masks every ``mask_interval``-th pruning step and on the last one (scores
            are still observed every step); the schedule's count is exact at each selection. 1 (default)
            selects every step, as SEVEN's reference; PLATON's authors select every 10 steps.
        **method_options: options of the method (for SEVEN: ``beta1``, ``beta2``, ``eps``,
            ``moments="abs"|"signed"|"optimizer"``, ``compile``).

    :meth:`step` observes gradients in the window, selects on the schedule, zeroes the optimizer's state
    of newly pruned entries and applies the masks (docs/design.md, "Data flow of one training step"); an
    attached optimizer re-applies them after every ``optimizer.step()`` (a step post-hook).
    """

    def __init__(self, model: nn.Module, method: str | type[Importance] = "seven", sparsity: float = 0.5,
                 start_step: int = 0, prune_steps: int = 100, *, include: str | Sequence[str] | None = None,
                 exclude: str | Sequence[str] | None = None, optimizer: torch.optim.Optimizer | None = None,
                 state_dtype: torch.dtype | str = torch.float32, pattern: str = "unstructured", scope: str = "global",
                 mask_interval: int = 1, method_options: Mapping[str, Any] | None = None, **options: Any) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        # the method's options as keywords, or as the ``method_options`` mapping of ``config()``
        both = sorted(set(method_options or {}) & set(options))
        if both:
            raise TypeError(f"method option(s) {both} given twice (as keywords and in method_options)")
        method_options = {**(method_options or {}), **options}
        dtype = _state_dtype(state_dtype)
        importance = method_class(method)  # validates the name early, with the list of choices
        self.model = model
        self.include, self.exclude = pattern_list(include), pattern_list(exclude)
        self._weights = PrunableWeights(find_prunable(model, self.include, self.exclude))
        self._owners = self._weights.owners  # the model's parameters: the optimizer's keys
        #: the prunable weights the pruner works on (under FSDP2: views of the local shards, refreshed in place)
        self.params: dict[str, Tensor] = self._weights.params
        self.numel = self._weights.numel  # prunable entries in all (over every rank)
        self.masks: dict[str, Tensor] = {
            n: torch.ones(p.shape, dtype=torch.bool, device=p.device) for n, p in self.params.items()
        }
        self._pruned: dict[str, int] = {n: 0 for n in self.params}
        self.step_count = 0
        self.observed_steps = 0
        self.skipped_steps = 0
        self._link: OptimizerLink | None = None
        self.extra_masks: dict[str, Tensor] = {}  # e.g. biases of pruned heads (structured patterns)
        self._extra = ExtraMasks(model)
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be a string, got {pattern!r}")
        self.pattern, self.scope, self.state_dtype = pattern, check_scope(scope), dtype
        self.mask_interval = check_int(mask_interval, "mask_interval", 1)
        self.sparsity_target = _check_sparsity(sparsity)
        self.start_step = check_int(start_step, "start_step", 0)
        self.prune_steps = check_int(prune_steps, "prune_steps", 1)
        self.method = importance.name
        self.importance: Importance = importance(self.params, state_dtype=dtype, **method_options)
        self._sizes = [p.numel() for p in self._owners.values()]  # global sizes
        self._selector = selection.build_selector(
            pattern, self.scope, model=model, params=self.params, sizes=self._sizes,
            monotone=self.importance.monotone_scores, sparsity=self.sparsity_target, offsets=self._weights.offsets)
        if optimizer is not None:
            self.attach(optimizer)

    def _refresh_local_views(self) -> None:
        if self._weights.refresh():  # FSDP2 re-pointed the shards: the method reads the new views
            self.importance.params.update(self.params)

    @classmethod
    def from_masks(cls, model: nn.Module, masks: Mapping[str, Tensor], *, method: str = "fixed",
                   sparsity: float | None = None, include: str | Sequence[str] | None = None,
                   exclude: str | Sequence[str] | None = None, optimizer: torch.optim.Optimizer | None = None,
                   scope: str = "global", **method_options: Any) -> Pruner:
        """A finished pruner holding fixed ``masks`` (``{weight name: bool tensor}``, every prunable
        weight), e.g. from :func:`sevenprune.prune_at_init` or a selection of your own.

        ``method`` and ``method_options`` name what chose the masks (they are recorded in
        :meth:`config` and in saved states); ``sparsity`` is the intended final sparsity (default:
        that of ``masks``). Its ``step()`` only keeps the masks applied (its pruning window, one step,
        is over before its first step); it is saved and resumed like any pruner
        (:meth:`from_state`).

        >>> import torch, sevenprune as sp
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2))
        >>> masks = {"0.weight": torch.tensor([[True, False], [False, True]])}
        >>> pruner = sp.Pruner.from_masks(model, masks, method="diagonal")
        >>> pruner.sparsity(), pruner.finished, pruner.config()["method"]
        (0.5, True, 'diagonal')
        """
        pruner = cls(model, FixedMasks, pruned_fraction(masks) if sparsity is None else sparsity, 0, 1,
                     include=include, exclude=exclude, scope=scope, **method_options)
        pruner.method = method
        pruner.set_masks(masks)
        pruner.step_count = pruner.end_step
        if optimizer is not None:
            pruner.attach(optimizer)
        return pruner

    @torch.no_grad()
    def set_masks(self, masks: Mapping[str, Tensor]) -> None:
        """Replace the masks (``{weight name: bool tensor}``, every prunable weight) and apply them."""
        self.masks.update(checked_keep_masks(masks, self.params))
        self._pruned.update(pruned_counts(self.masks))
        self._selector.forget()
        self.importance.masks_updated(self.masks, {})
        self._clear_optimizer_state(list(self.params))
        self.apply_masks()

    # -- configuration ------------------------------------------------------------------------------
    @property
    def end_step(self) -> int:
        """The last pruning step; from here on the masks are fixed."""
        return self.start_step + self.prune_steps

    @property
    def finished(self) -> bool:
        return self.step_count >= self.end_step

    def config(self) -> dict[str, Any]:
        """The configuration, JSON-serialisable; ``Pruner(model, **pruner.config())`` builds an equal one
        (for a pruner of :meth:`from_masks`, :meth:`from_state` does).

        >>> import torch, sevenprune as sp
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4))
        >>> p = sp.Pruner(model, "seven", 0.5, beta1=0.7, state_dtype=torch.bfloat16)
        >>> sp.Pruner(model, **p.config()).config() == p.config()
        True
        """
        return {
            "method": self.method,
            "sparsity": self.sparsity_target,
            "start_step": self.start_step,
            "prune_steps": self.prune_steps,
            "include": self.include,
            "exclude": self.exclude,
            "state_dtype": dtype_name(self.state_dtype),
            "pattern": self.pattern,
            "scope": self.scope,
            "mask_interval": self.mask_interval,
            "method_options": dict(self.importance.options),
        }

    # -- optimizer ----------------------------------------------------------------------------------
    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        """The attached optimizer (unwrapped), or ``None``."""
        return None if self._link is None else self._link.optimizer

    def attach(self, optimizer: torch.optim.Optimizer) -> Pruner:
        """Zero the optimizer's state for pruned entries at every mask change, and re-apply the masks
        after every ``optimizer.step()``. Returns the pruner."""
        optimizer = unwrap_optimizer(optimizer)  # Accelerate's AcceleratedOptimizer and similar wrappers
        self.importance.bind_optimizer(optimizer, self._owners)  # may refuse it (SEVEN's moments="optimizer")
        if self._link is not None:
            self._link.remove()
        self._link = None
        self._link = OptimizerLink(optimizer, self._owners, self.apply_masks, self._weights.local)
        self._clear_optimizer_state(list(self.params))
        return self

    def detach(self) -> None:
        """Remove the optimizer hook."""
        if self._link is not None:
            self._link.remove()
        self._link = None
        self.importance.bind_optimizer(None, self._owners)

    def _clear_optimizer_state(self, names: Mapping[str, Tensor] | Sequence[str]) -> None:
        if self._link is not None:
            self._link.clear(names, self.params, self.masks, self._pruned)

    # -- masks --------------------------------------------------------------------------------------
    @torch.no_grad()
    def apply_masks(self, names: Sequence[str] | None = None) -> None:
        """Set every pruned weight to exactly 0.0 (all pruned weights, or those of ``names``)."""
        self._refresh_local_views()
        for name in self.params if names is None else names:
            if self._pruned[name]:
                p = self.params[name]
                p.mul_(factor(mask_on(self.masks, name, p.device)))
        self._extra.apply(self.extra_masks)

    def scheduled_sparsity(self, step: int | None = None) -> float:
        """The schedule's sparsity at ``step`` (default: the current step); the final one, reached at
        :attr:`end_step`, is :attr:`sparsity_target` (``report()["target_sparsity"]``)."""
        step = self.step_count if step is None else step
        return schedules.cubic_sparsity(step, self.sparsity_target, self.start_step, self.prune_steps)

    @torch.no_grad()
    def update_masks(self, sparsity: float) -> list[str]:
        """Prune the lowest-scored kept entries until ``round(sparsity * N)`` are pruned.

        Returns the names of the weights whose masks changed. Masks never regrow: a lower sparsity
        than the current one changes nothing.
        """
        return list(self._update_masks(_check_sparsity(sparsity)))

    def _update_masks(self, sparsity: float) -> dict[str, Tensor]:
        """:meth:`update_masks`, returning ``{weight name: flat indices newly pruned}``."""
        already = self._weights.total([sum(self._pruned.values())])[0]
        target = selection.target_for(sparsity, self._sizes, self.scope == "local", already, self._ahead(),
                                      self.step_count)
        if target is None:
            return {}
        newly = self._selector.select(self.importance.scores(self.masks), self.masks, self._pruned, target)
        if self._selector.extra_masks is not None:
            self.extra_masks = self._selector.extra_masks
        total = self._weights.total([sum(self._pruned.values())])[0]
        if self._selector.exact_count and total != target.k:
            raise RuntimeError(f"the threshold pruned {total} entries instead of {target.k}; the scores of method "
                               f"{self.method!r} probably contain NaN")
        self.importance.masks_updated(self.masks, newly)
        self._clear_optimizer_state(newly)
        self._weights.masks_changed(self.masks)
        return newly

    #: selections ahead whose entries a candidate scan gathers (monotone scores; see ``selection.py``)
    LOOKAHEAD = 8

    def _ahead(self) -> float | None:
        """The scheduled sparsity ``LOOKAHEAD`` selections from now (within the window), how far a new
        candidate scan gathers; ``None`` outside the window or for scores that are not monotone."""
        n = self.step_count
        if not self.importance.monotone_scores or not schedules.in_window(n, self.start_step, self.prune_steps):
            return None
        return self.scheduled_sparsity(min(n + self.LOOKAHEAD * self.mask_interval, self.end_step))

    # -- the training-loop call ---------------------------------------------------------------------
    #: skipped (non-finite) steps tolerated silently: AMP's loss scaler overflows on its first steps
    QUIET_SKIPS = gradients.QUIET_SKIPS

    def _has_observed(self, n: int) -> bool:
        """Whether the method has seen any gradient to select from. Until it has, a mask update is
        deferred (the next one catches up with the schedule); at the end of the window it is an error."""
        if self.observed_steps or not self.importance.needs_grad:
            return True
        if n == self.end_step:
            raise RuntimeError(
                f"pruner.step() {n}: every gradient of the pruning window ({self.skipped_steps} steps) was "
                f"not finite, so method {self.method!r} observed nothing and cannot choose what to prune; "
                "fix the non-finite gradients (learning rate, loss scaling) and run again")
        return False

    @torch.no_grad()
    def step(self) -> None:
        """Call once per optimizer update, after ``optimizer.step()``, before ``zero_grad()``."""
        n = self.step_count + 1
        newly: dict[str, Tensor] = {}
        self._refresh_local_views()
        # raises with a hint if step() is called at the wrong place (until the masks are fixed);
        # a refused call is not counted
        grads = gradients.present_grads(self.params) if self.importance.needs_grad and n <= self.end_step else []
        self.step_count = n
        in_window = schedules.in_window(n, self.start_step, self.prune_steps)
        # scores are observed in the window, and before it for methods whose scores learn from step 1
        if in_window or (n <= self.start_step and self.importance.observes_before_window):
            # sharded: every rank must take the same decision, so the flags are combined
            observed = not grads or self._weights.all_finite(gradients.all_finite(grads))
            if observed:
                self.observed_steps += 1
                # t counts observed steps: a skipped (overflow) step must not advance bias corrections
                self.importance.observe(self.observed_steps)
            else:
                self.skipped_steps += 1
                gradients.warn_skipped(n, self.skipped_steps, self.observed_steps)
            last = n == self.end_step
            if in_window and ((n - self.start_step) % self.mask_interval == 0 or last) \
                    and self.importance.mask_due(self.observed_steps, observed, last) and self._has_observed(n):
                newly = self._update_masks(self.scheduled_sparsity(n))
        if self._link is None:
            self.apply_masks()
        else:
            # the optimizer hook already applied the previous masks; zero only what is new
            for name, idx in newly.items():
                self.params[name].view(-1)[idx] = 0.0
        if n == self.end_step:
            self.importance.release()

    # -- reporting ----------------------------------------------------------------------------------
    def sparsity(self) -> float:
        """Fraction of the prunable weights that are pruned (exactly zero once masks are applied).

        With sharded weights this is a collective call: every rank must make it."""
        return self._weights.total([sum(self._pruned.values())])[0] / self.numel

    def report(self) -> dict[str, Any]:
        """Per-layer sparsity, sparsity over the prunable weights and over the whole model.

        ``target_sparsity`` is the final target (:attr:`sparsity_target`), ``scheduled_sparsity`` the
        schedule's value at the current step (:meth:`scheduled_sparsity`), ``sparsity`` what is pruned.

        With sharded weights this is a collective call: every rank must make it."""
        per_layer = dict(zip(self._pruned, self._weights.total(list(self._pruned.values()))))
        return pruning_report(self.model, self._owners, per_layer, step=self.step_count, method=self.method,
                              target_sparsity=self.sparsity_target, scheduled_sparsity=self.scheduled_sparsity(),
                              observed_steps=self.observed_steps, skipped_steps=self.skipped_steps)

    def summary(self) -> str:
        """The report as a small text table."""
        return summary_table(self.report())

    def state_nbytes(self) -> int:
        """Bytes the pruner holds: masks plus the method's running statistics."""
        masks = sum(m.numel() * m.element_size() for m in self.masks.values())
        return masks + self.importance.nbytes()

    def __repr__(self) -> str:
        return (
            f"Pruner(method={self.method!r}, sparsity={self.sparsity_target}, start_step={self.start_step}, "
            f"prune_steps={self.prune_steps}, weights={len(self.params)}, step={self.step_count}, "
            f"current_sparsity={self.sparsity():.4f})"
        )

    # -- state --------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Masks, every running statistic, the counters and the configuration.

        Tensors are under ``"masks"`` and ``"importance"``; everything else is JSON-serialisable.
        """
        return {
            "format": STATE_FORMAT,
            "config": self.config(),
            "step": self.step_count,
            "observed_steps": self.observed_steps,
            "skipped_steps": self.skipped_steps,
            "shapes": {n: list(p.shape) for n, p in self.params.items()},
            "masks": {n: m for n, m in self.masks.items()},
            "importance": self.importance.state_dict(),
            "extra_masks": dict(self.extra_masks),
        }

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` into this pruner and apply its masks.

        As a torch optimizer refuses a state of other parameter groups, the state must be of this
        pruner's configuration (:meth:`config`) and model: a ``ValueError`` names the configuration
        fields that differ, or the weights whose names or shapes differ. To build a pruner from a
        saved state, configuration included, use :meth:`from_state`.
        """
        check_fits(state, self.config(), self.params)
        masks = loaded_masks(state, self.params)
        self.importance.load_state_dict(state.get("importance", {}))
        self.masks, self._pruned = masks, pruned_counts(masks)
        self._selector.forget()
        self.extra_masks = loaded_extra_masks(state, self.model)
        self.step_count = int(state["step"])
        self.observed_steps = int(state.get("observed_steps", 0))
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.apply_masks()
        self._clear_optimizer_state(list(self.params))

    @classmethod
    def from_state(cls, model: nn.Module, state: Mapping[str, Any], *,
                   optimizer: torch.optim.Optimizer | None = None) -> Pruner:
        """A pruner of the saved configuration on ``model``, holding the saved state (masks applied).

        ``state`` is a :meth:`state_dict` (or :func:`sevenprune.read_state`'s reading of a saved one).
        The configuration is rebuilt with ``Pruner(model, **config)``, or, for masks chosen by a method
        the Pruner does not run itself (``prune_at_init``'s SNIP, GraSP, FORCE; :meth:`from_masks`), as
        a pruner holding fixed masks. ``optimizer`` is attached if given.

        >>> import torch, sevenprune as sp
        >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4))
        >>> pruner = sp.Pruner(model, "magnitude", 0.5, prune_steps=1)
        >>> pruner.step()
        >>> restored = sp.Pruner.from_state(torch.nn.Sequential(torch.nn.Linear(4, 4)), pruner.state_dict())
        >>> restored.config() == pruner.config(), restored.sparsity()
        (True, 0.5)
        """
        method, config = saved_method(state)
        if method in methods("fine-tuning"):
            pruner = cls(model, method, **config)
        else:  # masks chosen outside the pruner: the method is their label
            pruner = cls(model, FixedMasks, **config)
            pruner.method = method
        pruner.load_state_dict(state)
        if optimizer is not None:
            pruner.attach(optimizer)
        return pruner
