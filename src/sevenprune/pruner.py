"""The :class:`Pruner`: ties a scoring method, the cubic schedule, the global threshold and the masks.

Use it in any training loop::

    import sevenprune as sp
    pruner = sp.Pruner(model, method="seven", sparsity=0.6, start_step=1000, prune_steps=4000,
                       optimizer=optimizer)
    for batch in loader:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        pruner.step()          # after optimizer.step(), before optimizer.zero_grad()
        optimizer.zero_grad()

Steps are optimizer updates. Call ``n`` of ``pruner.step()`` is a pruning step when
``start_step < n <= start_step + prune_steps``: SEVEN_pre is ``start_step=0`` with a short window
(the reference hint: ``prune_steps=100``), SEVEN_dyn a later start and a longer window.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from . import schedules, selection
from ._validate import SCOPES, STATE_DTYPES, check_int, check_scope, dtype_name, unwrap_optimizer
from ._validate import check_sparsity as _check_sparsity
from ._validate import state_dtype as _state_dtype
from .importance import Importance, get_method, methods
from .importance.fixed import FixedMasks
from .targets import find_prunable, pattern_list

__all__ = ["Pruner", "STATE_FORMAT", "STATE_DTYPES", "SCOPES", "method_class"]

#: identifies the layout of ``Pruner.state_dict()``; bumped on incompatible changes
STATE_FORMAT = "sevenprune.pruner/1"

#: the configuration of a state saved before a field existed is read with the field's default
_CONFIG_DEFAULTS: dict[str, Any] = {"include": None, "exclude": None, "state_dtype": "float32",
                                    "pattern": "unstructured", "scope": "global", "mask_interval": 1,
                                    "method_options": {}}


def _is_sharded(params: Sequence[Tensor]) -> bool:
    """True for FSDP2-style DTensor weights; mixing sharded and plain weights is refused."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch built without distributed
        return False
    flags = [isinstance(p, DTensor) for p in params]
    if any(flags) and not all(flags):
        raise ValueError("some prunable weights are sharded (DTensor) and some are not; shard every "
                         "prunable layer with fully_shard, or exclude the others")
    return any(flags)


def method_class(method: str | type[Importance]) -> type[Importance]:
    """The importance of ``method``: a registered name, or an :class:`Importance` subclass. An unknown
    name, or one of a method that prunes before fine-tuning, is a ``ValueError`` saying where to go."""
    if isinstance(method, type) and issubclass(method, Importance):
        return method
    if isinstance(method, str) and method not in methods():
        raise ValueError(
            f"unknown method {method!r}; choose one of {methods()} (the methods that prune before "
            f"fine-tuning from a few batches, sevenprune.init_methods(), go through "
            f"sevenprune.prune_at_init(model, method, sparsity, batches, loss_fn))"
        )
    return get_method(method)  # a non-string fails here, with the choices


def _option_defaults(method: Any) -> Mapping[str, Any]:
    """The registered defaults of ``method``'s options: those of a pruning-at-initialisation method of its
    own (GraSP, FORCE), else those of the importance it names ({} for anything else). A new option's
    default is the behaviour from before the option existed, so it is also what an older state ran with."""
    from .init_pruning import init_method, init_methods  # here: init_pruning imports this module

    if method in init_methods() and init_method(method).scorer is None:
        return init_method(method).defaults
    return get_method(method).defaults if method in methods() else {}


def _normal_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration as JSON holds it, with the defaults of fields and method options an older state
    lacks (a state saved before ``noise_discount`` or GraSP's ``variant`` existed still loads)."""
    out = {**_CONFIG_DEFAULTS, **json.loads(json.dumps(dict(config)))}
    if isinstance(out["method_options"], dict):
        out["method_options"] = {**_option_defaults(out.get("method")), **out["method_options"]}
    return out


def _factor(mask: Tensor) -> Tensor:
    """A bool mask as a multiplication factor: the same bytes read as uint8 0/1. ``w * mask`` gives the
    same values either way (``w * 0`` or ``w * 1``), but PyTorch's CPU kernel for a float times a bool is
    not vectorised: on BERT-base's 85 M weights it takes 53 ms against 16 ms with uint8 (2 threads)."""
    return mask.view(torch.uint8)


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

    Order of work in :meth:`step` (call ``n``):

    1. check that the prunable weights have gradients (if the method reads them);
    2. on a pruning step: if every gradient is finite, the method observes them (an AMP overflow
       step is skipped but still counted); the schedule gives the target count
       ``round(s_n * N)``; if it grew, the global threshold prunes the lowest-scored kept entries
       (masks only ever lose entries), the optimizer's per-weight state of the newly pruned entries
       is zeroed, and the method is told;
    3. masks are applied to the weights (pruned entries set to exactly 0.0);
    4. after the last pruning step the method's statistics are freed.

    When an optimizer is attached, masks are also re-applied after every ``optimizer.step()`` (a
    step post-hook), so momentum or weight decay cannot revive a pruned weight even if a
    ``pruner.step()`` call is forgotten.
    """

    def __init__(
        self,
        model: nn.Module,
        method: str | type[Importance] = "seven",
        sparsity: float = 0.5,
        start_step: int = 0,
        prune_steps: int = 100,
        *,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        state_dtype: torch.dtype | str = torch.float32,
        pattern: str = "unstructured",
        scope: str = "global",
        mask_interval: int = 1,
        method_options: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
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
        self._setup_params(find_prunable(model, self.include, self.exclude))
        self.masks: dict[str, Tensor] = {
            n: torch.ones(p.shape, dtype=torch.bool, device=p.device) for n, p in self.params.items()
        }
        self._pruned: dict[str, int] = {n: 0 for n in self.params}
        self.step_count = 0
        self.observed_steps = 0
        self.skipped_steps = 0
        self.optimizer: torch.optim.Optimizer | None = None
        self._hook: Any = None
        self.extra_masks: dict[str, Tensor] = {}  # e.g. biases of pruned heads (structured patterns)
        self._extra_cache: tuple[dict[str, Tensor], list[tuple[Tensor, Tensor]]] | None = None
        self._configure(importance, sparsity, start_step, prune_steps, dtype, method_options, pattern, scope,
                        mask_interval)
        if optimizer is not None:
            self.attach(optimizer)

    def _setup_params(self, owners: dict[str, nn.Parameter]) -> None:
        """Record the prunable weights. Under FSDP2 (``fully_shard``: DTensor weights sharded on dim
        0) the pruner works on each rank's local shard: ``self.params`` are views of the shards, the
        scores and masks are local, and only counts cross ranks (see ``distributed.py``)."""
        self._owners = owners  # the model's parameters: the optimizer's keys
        self._sharded = _is_sharded(list(owners.values()))
        self.params: dict[str, Tensor]
        if self._sharded:
            from .distributed import dtensor_shard_offsets

            local, self._offsets = dtensor_shard_offsets(list(owners.values()))
            self.params = {n: t.detach() for n, t in zip(owners, local)}
        else:
            self.params = dict(owners)
        self.numel = sum(p.numel() for p in owners.values())  # global count

    def _refresh_local_views(self) -> None:
        """FSDP2 may re-point a shard's storage (lazy init); take fresh views and their gradients."""
        if not self._sharded:
            return
        for name, owner in self._owners.items():
            sharded: Any = owner  # a DTensor
            view = sharded.to_local().detach()
            grad: Any = owner.grad
            view.grad = None if grad is None else grad.to_local()
            self.params[name] = view
        self.importance.params.update(self.params)

    def _global(self, values: list[int]) -> list[int]:
        """Sum integer counts over ranks when the weights are sharded (identity otherwise)."""
        if not self._sharded:
            return values
        t = torch.tensor(values, dtype=torch.int64, device=next(iter(self.params.values())).device)
        torch.distributed.all_reduce(t)
        return [int(x) for x in t.tolist()]

    @classmethod
    def from_masks(
        cls,
        model: nn.Module,
        masks: Mapping[str, Tensor],
        *,
        method: str = "fixed",
        sparsity: float | None = None,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        scope: str = "global",
        **method_options: Any,
    ) -> Pruner:
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
        if sparsity is None:
            sizes = [(m.numel(), int(torch.count_nonzero(m))) for m in masks.values() if isinstance(m, Tensor)]
            total = sum(n for n, _ in sizes)
            sparsity = (total - sum(k for _, k in sizes)) / total if total else 0.0
        pruner = cls(model, FixedMasks, sparsity, 0, 1, include=include, exclude=exclude, scope=scope,
                     **method_options)
        pruner.method = method
        pruner.set_masks(masks)
        pruner.step_count = pruner.end_step
        if optimizer is not None:
            pruner.attach(optimizer)
        return pruner

    @classmethod
    def with_masks(cls, model: nn.Module, masks: Mapping[str, Tensor], *, method: str, sparsity: float,
                   **kwargs: Any) -> Pruner:
        """Deprecated alias of :meth:`from_masks`."""
        warnings.warn("Pruner.with_masks is deprecated; use Pruner.from_masks", DeprecationWarning, stacklevel=2)
        return cls.from_masks(model, masks, method=method, sparsity=sparsity, **kwargs)

    @torch.no_grad()
    def set_masks(self, masks: Mapping[str, Tensor]) -> None:
        """Replace the masks (``{weight name: bool tensor}``, every prunable weight) and apply them."""
        if set(masks) != set(self.params):
            missing, extra = sorted(set(self.params) - set(masks)), sorted(set(masks) - set(self.params))
            raise ValueError(f"masks must cover exactly the prunable weights; missing {missing[:5]}, "
                             f"unknown {extra[:5]}")
        for name, p in self.params.items():
            m = masks[name]
            if not isinstance(m, Tensor) or m.dtype != torch.bool or m.shape != p.shape:
                raise ValueError(f"mask for {name!r} must be a bool tensor of shape {tuple(p.shape)}")
            self.masks[name] = m.to(p.device).clone()
            self._pruned[name] = m.numel() - int(torch.count_nonzero(m))
        self._selector.forget()
        self.importance.masks_updated(self.masks, {})
        self._clear_optimizer_state(list(self.params))
        self.apply_masks()

    def _configure(
        self,
        importance: type[Importance],
        sparsity: float,
        start_step: int,
        prune_steps: int,
        state_dtype: torch.dtype,
        method_options: Mapping[str, Any],
        pattern: str = "unstructured",
        scope: str = "global",
        mask_interval: int = 1,
    ) -> None:
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be a string, got {pattern!r}")
        self.pattern = pattern
        self.scope = check_scope(scope)
        self.mask_interval = check_int(mask_interval, "mask_interval", 1)
        self.sparsity_target = _check_sparsity(sparsity)
        self.start_step = check_int(start_step, "start_step", 0)
        self.prune_steps = check_int(prune_steps, "prune_steps", 1)
        self.method = importance.name
        self.importance: Importance = importance(self.params, state_dtype=state_dtype, **method_options)
        self._selector = selection.build_selector(
            pattern, self.scope, model=self.model, params=self.params,
            sizes=[p.numel() for p in self._owners.values()], monotone=self.importance.monotone_scores,
            sparsity=self.sparsity_target, offsets=self._offsets if self._sharded else None)
        self.state_dtype = state_dtype

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
    def attach(self, optimizer: torch.optim.Optimizer) -> Pruner:
        """Zero the optimizer's state for pruned entries at every mask change, and re-apply the masks
        after every ``optimizer.step()``. Returns the pruner."""
        optimizer = unwrap_optimizer(optimizer)  # Accelerate's AcceleratedOptimizer and similar wrappers
        self.importance.bind_optimizer(optimizer, self._owners)  # may refuse it (SEVEN's moments="optimizer")
        if self._hook is not None:
            self._hook.remove()
        owned = {id(p) for group in optimizer.param_groups for p in group["params"]}
        missing = [n for n, p in self._owners.items() if id(p) not in owned]
        if len(missing) == len(self.params):
            raise ValueError(
                "the optimizer holds none of the prunable weights (was it built for another model, "
                f"or before the model was wrapped?); e.g. {missing[:3]}"
            )
        self.optimizer = optimizer
        self._hook = optimizer.register_step_post_hook(lambda *_: self.apply_masks())
        self._clear_optimizer_state(list(self.params))
        return self

    def detach(self) -> None:
        """Remove the optimizer hook."""
        if self._hook is not None:
            self._hook.remove()
        self._hook = None
        self.optimizer = None
        self.importance.bind_optimizer(None, self._owners)

    def _clear_optimizer_state(self, names: Mapping[str, Tensor] | Sequence[str]) -> None:
        """Zero the optimizer's per-weight state (Adam moments, momentum buffers, ...) of pruned
        entries: of the newly pruned indices when given ``{name: flat indices}``, else of every
        pruned entry of the named weights."""
        if self.optimizer is None:
            return
        for name in names:
            if self._pruned[name] == 0:
                continue
            p = self.params[name]
            for value in self.optimizer.state.get(self._owners[name], {}).values():
                if self._sharded and hasattr(value, "to_local"):
                    value = value.to_local()  # the rank's shard of a sharded state tensor
                if isinstance(value, Tensor) and value.shape == p.shape:
                    if isinstance(names, Mapping):
                        value.view(-1)[names[name].to(value.device)] = 0
                    else:
                        value.mul_(_factor(self._mask_on(name, p.device)))

    # -- masks --------------------------------------------------------------------------------------
    def _mask_on(self, name: str, device: torch.device) -> Tensor:
        mask = self.masks[name]
        if mask.device != device:  # the model was moved after the pruner was built
            mask = self.masks[name] = mask.to(device)
        return mask

    @torch.no_grad()
    def apply_masks(self, names: Sequence[str] | None = None) -> None:
        """Set every pruned weight to exactly 0.0 (all pruned weights, or those of ``names``)."""
        self._refresh_local_views()
        for name in self.params if names is None else names:
            if self._pruned[name]:
                p = self.params[name]
                p.mul_(_factor(self._mask_on(name, p.device)))
        for param, mask in self._extra_params():
            param.mul_(_factor(mask if mask.device == param.device else mask.to(param.device)))

    def _extra_params(self) -> list[tuple[Tensor, Tensor]]:
        """``(parameter, mask)`` of the extra masks, resolved once per change of ``extra_masks``
        (this runs after every optimizer step: no walk over the model's parameters there)."""
        if not self.extra_masks:
            return []
        cached = self._extra_cache
        if cached is None or cached[0] is not self.extra_masks:
            params = dict(self.model.named_parameters())
            cached = self._extra_cache = (self.extra_masks,
                                          [(params[n], m) for n, m in self.extra_masks.items()])
        return cached[1]

    def scheduled_sparsity(self, step: int | None = None) -> float:
        """The schedule's sparsity at ``step`` (default: the current step); the final one, reached at
        :attr:`end_step`, is :attr:`sparsity_target` (``report()["target_sparsity"]``)."""
        step = self.step_count if step is None else step
        return schedules.cubic_sparsity(step, self.sparsity_target, self.start_step, self.prune_steps)

    def target_sparsity(self, step: int | None = None) -> float:
        """The schedule's sparsity at ``step``: the older name of :meth:`scheduled_sparsity` (which
        says what it returns; the *final* target is :attr:`sparsity_target`)."""
        return self.scheduled_sparsity(step)

    @torch.no_grad()
    def update_masks(self, sparsity: float) -> list[str]:
        """Prune the lowest-scored kept entries until ``round(sparsity * N)`` are pruned.

        Returns the names of the weights whose masks changed. Masks never regrow: a lower sparsity
        than the current one changes nothing.
        """
        return list(self._update_masks(_check_sparsity(sparsity)))

    def _update_masks(self, sparsity: float) -> dict[str, Tensor]:
        """:meth:`update_masks`, returning ``{weight name: flat indices newly pruned}``."""
        local = self.scope == "local"
        counts = ([schedules.pruned_count(sparsity, p.numel()) for p in self._owners.values()] if local
                  else [])
        k = sum(counts) if local else schedules.pruned_count(sparsity, self.numel)
        already = self._global([sum(self._pruned.values())])[0]
        if k <= already:
            return {}
        scores = self.importance.scores(self.masks)
        target = selection.Target(k=k, already=already, fraction=sparsity, counts=counts,
                                  ahead=self._lookahead_counts(), seed=self.step_count)
        newly = self._selector.select(scores, self.masks, self._pruned, target)
        if self._selector.extra_masks is not None:
            self.extra_masks = self._selector.extra_masks
        total = self._global([sum(self._pruned.values())])[0]
        if self._selector.exact_count and total != k:
            raise RuntimeError(
                f"the threshold pruned {total} entries instead of {k}; the scores of method "
                f"{self.method!r} probably contain NaN"
            )
        self.importance.masks_updated(self.masks, newly)
        self._clear_optimizer_state(newly)
        self._after_mask_update(list(newly))
        return newly

    #: selections ahead whose entries a candidate scan gathers (monotone scores; see ``selection.py``)
    LOOKAHEAD = 8

    def _lookahead_counts(self) -> list[int]:
        """Per weight (local scope) or in all, the count the schedule prunes ``LOOKAHEAD`` selections from
        now (within the window): how many entries a new candidate scan gathers. Empty outside the window."""
        n = self.step_count
        if not self.importance.monotone_scores or not schedules.in_window(n, self.start_step, self.prune_steps):
            return []
        ahead = self.scheduled_sparsity(min(n + self.LOOKAHEAD * self.mask_interval, self.end_step))
        if self.scope == "local":
            return [schedules.pruned_count(ahead, p.numel()) for p in self._owners.values()]
        return [schedules.pruned_count(ahead, self.numel)]

    def _after_mask_update(self, changed: Sequence[str]) -> None:
        """Under torch.distributed, check that every rank computed the same masks."""
        # sharded masks differ between ranks by design; replicated (DDP) ones must not
        if not self._sharded and torch.distributed.is_available() and torch.distributed.is_initialized():
            from .distributed import check_masks_consistent

            check_masks_consistent(self.masks)

    # -- the training-loop call ---------------------------------------------------------------------
    def _grads(self) -> list[Tensor]:
        grads = [p.grad for p in self.params.values() if p.grad is not None]
        if not grads:
            raise RuntimeError(
                "no prunable weight has a gradient: call pruner.step() after loss.backward() and "
                "before optimizer.zero_grad()"
            )
        return grads

    def _all_finite(self, grads: Sequence[Tensor]) -> bool:
        # one reduction per tensor and a single host sync; an inf or nan anywhere makes its sum
        # non-finite. Sharded: every rank must take the same decision, so the flags are combined.
        sums = torch.stack([g.sum(dtype=torch.float32).to(grads[0].device) for g in grads])
        finite = bool(torch.isfinite(sums).all())
        return self._global([int(not finite)])[0] == 0 if self._sharded else finite

    #: skipped (non-finite) steps tolerated silently: AMP's loss scaler overflows on its first steps
    QUIET_SKIPS = 3

    def _skipped(self, n: int) -> None:
        self.skipped_steps += 1
        if self.skipped_steps > self.QUIET_SKIPS:
            warnings.warn(
                f"pruner.step() {n}: a gradient of a prunable weight is not finite (inf or nan); the step is "
                f"not observed ({self.skipped_steps} skipped, {self.observed_steps} observed so far). Check the "
                "learning rate and the loss scaling", RuntimeWarning, stacklevel=3)

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
        grads = self._grads() if self.importance.needs_grad and n <= self.end_step else []
        self.step_count = n
        in_window = schedules.in_window(n, self.start_step, self.prune_steps)
        # scores are observed in the window, and before it for methods whose scores learn from step 1
        if in_window or (n <= self.start_step and self.importance.observes_before_window):
            observed = not grads or self._all_finite(grads)
            if observed:
                self.observed_steps += 1
                # t counts observed steps: a skipped (overflow) step must not advance bias corrections
                self.importance.observe(self.observed_steps)
            else:
                self._skipped(n)
            last = n == self.end_step
            if in_window and ((n - self.start_step) % self.mask_interval == 0 or last) \
                    and self.importance.mask_due(self.observed_steps, observed, last) and self._has_observed(n):
                newly = self._update_masks(self.scheduled_sparsity(n))
        if self._hook is None:
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
        return self._global([sum(self._pruned.values())])[0] / self.numel

    def report(self) -> dict[str, Any]:
        """Per-layer sparsity, sparsity over the prunable weights and over the whole model.

        ``target_sparsity`` is the final target (:attr:`sparsity_target`), ``scheduled_sparsity`` the
        schedule's value at the current step (:meth:`scheduled_sparsity`), ``sparsity`` what is pruned.

        With sharded weights this is a collective call: every rank must make it."""
        model_params = sum(p.numel() for p in self.model.parameters())
        per_layer = dict(zip(self._pruned, self._global(list(self._pruned.values()))))
        pruned = sum(per_layer.values())
        return {
            "step": self.step_count,
            "method": self.method,
            "target_sparsity": self.sparsity_target,
            "scheduled_sparsity": self.scheduled_sparsity(),
            "sparsity": pruned / self.numel,
            "model_sparsity": pruned / model_params if model_params else 0.0,
            "pruned": pruned,
            "prunable_params": self.numel,
            "model_params": model_params,
            "observed_steps": self.observed_steps,
            "skipped_steps": self.skipped_steps,
            "layers": {
                n: {"numel": p.numel(), "pruned": per_layer[n], "sparsity": per_layer[n] / p.numel()}
                for n, p in self._owners.items()
            },
        }

    def summary(self) -> str:
        """The report as a small text table."""
        r = self.report()
        width = max(len(n) for n in r["layers"])
        lines = [f"{'weight':<{width}}  {'numel':>10}  sparsity"]
        for n, layer in r["layers"].items():
            lines.append(f"{n:<{width}}  {layer['numel']:>10}  {layer['sparsity']:.4f}")
        lines.append(
            f"step {r['step']}: sparsity {r['sparsity']:.4f} of {r['prunable_params']} prunable weights "
            f"(target {r['target_sparsity']}), {r['model_sparsity']:.4f} of the whole model"
        )
        return "\n".join(lines)

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

    def _config_differences(self, config: Mapping[str, Any]) -> list[str]:
        """``"field: state X, pruner Y"`` for each field where ``config`` differs from :meth:`config`."""
        saved, mine = _normal_config(config), _normal_config(self.config())
        return [f"{k}: state {saved.get(k)!r}, pruner {mine.get(k)!r}"
                for k in sorted(set(saved) | set(mine)) if saved.get(k) != mine.get(k)]

    @torch.no_grad()
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state from :meth:`state_dict` into this pruner and apply its masks.

        As a torch optimizer refuses a state of other parameter groups, the state must be of this
        pruner's configuration (:meth:`config`) and model: a ``ValueError`` names the configuration
        fields that differ, or the weights whose names or shapes differ. To build a pruner from a
        saved state, configuration included, use :meth:`from_state`.
        """
        if state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a sevenprune pruner state (format {state.get('format')!r}, "
                             f"expected {STATE_FORMAT!r})")
        differences = self._config_differences(state["config"])
        if differences:
            raise ValueError("this pruner state has another configuration than the pruner ("
                             + "; ".join(differences) + "); build the pruner from the state with "
                             "sevenprune.Pruner.from_state(model, state) or sevenprune.load_state(path, model)")
        params = self.params
        saved = {n: tuple(s) for n, s in state["shapes"].items()}
        mine = {n: tuple(p.shape) for n, p in params.items()}
        if saved != mine:
            only_saved = sorted(set(saved) - set(mine))[:5]
            only_mine = sorted(set(mine) - set(saved))[:5]
            shape_diff = [f"{n}: saved {saved[n]}, model {mine[n]}" for n in saved
                          if n in mine and saved[n] != mine[n]][:5]
            raise ValueError(
                "this pruner state belongs to another model: "
                + "; ".join(x for x in (
                    f"weights only in the state: {only_saved}" if only_saved else "",
                    f"weights only in the model: {only_mine}" if only_mine else "",
                    f"shapes differ: {shape_diff}" if shape_diff else "") if x)
            )
        masks = {}
        for n, p in params.items():
            m = state["masks"][n]
            if m.dtype != torch.bool:
                raise ValueError(f"mask {n!r} has dtype {m.dtype}, expected torch.bool")
            masks[n] = m.to(p.device).clone()
        self.importance.load_state_dict(state.get("importance", {}))
        self.masks = masks
        self._pruned = {n: m.numel() - int(torch.count_nonzero(m)) for n, m in self.masks.items()}
        self._selector.forget()
        devices = {n: p.device for n, p in self.model.named_parameters()}
        self.extra_masks = {n: m.to(devices.get(n, m.device)).clone()
                            for n, m in state.get("extra_masks", {}).items()}
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
        if not isinstance(state, Mapping) or not isinstance(state.get("config"), Mapping):
            raise ValueError("not a sevenprune pruner state (no 'config'); pass a Pruner.state_dict() or "
                             "sevenprune.read_state(path)")
        config = _normal_config(state["config"])
        method = config.pop("method", None)
        if not isinstance(method, str):
            raise ValueError(f"the pruner state's configuration names no method (method {method!r})")
        if method in methods():
            pruner = cls(model, method, **config)
        else:  # masks chosen outside the pruner: the method is their label
            pruner = cls(model, FixedMasks, **config)
            pruner.method = method
        pruner.load_state_dict(state)
        if optimizer is not None:
            pruner.attach(optimizer)
        return pruner
