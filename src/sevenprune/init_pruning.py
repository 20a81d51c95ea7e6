"""Pruning before fine-tuning: the entry point of the methods of the ``"before"`` phase (SNIP, GraSP,
FORCE, SEVEN_pre frozen, magnitude, random; each in its file under ``sevenprune/importance/``).

``prune_at_init(model, method, sparsity, batches, loss_fn, steps=...)`` scores the prunable weights at
the starting weights from a few batches, fixes the masks, and returns a finished :class:`Pruner` that
keeps them applied during the fine-tuning that follows (attach your optimizer to it, call
``pruner.step()`` after each ``optimizer.step()``)::

    import sevenprune as sp
    pruner = sp.prune_at_init(model, "snip", 0.8, batches=loader, loss_fn=lambda m, b: m(**b).loss)
    pruner.attach(optimizer)

Protocol, the same for every method:

* ``loss_fn(model, batch)`` returns the scalar loss of one batch; ``batches`` is any iterable of batches
  (a list, a DataLoader). Batches must already be on the model's device.
* One-shot methods (SNIP, GraSP) use every batch given, once; iterative ones (FORCE, SEVEN_pre) run
  ``steps`` iterations, each on the next batch, cycling through ``batches`` (so ``batches`` must be
  re-iterable, e.g. a list or a DataLoader, when ``steps`` exceeds its length). Magnitude and random
  use no data (``batches`` and ``loss_fn`` may be ``None``).
* No optimizer step is taken. The weights, the model's buffers and the ``.grad`` of every parameter
  are left exactly as they were, except that pruned weights are exactly zero; on an error, the
  weights are restored before the error propagates.
* Gradients are computed with the model in whatever mode it is in (``model.eval()`` makes them
  deterministic by disabling dropout) and under ``torch.enable_grad()``.
* Selection is global over all prunable weights, exactly ``round(s * N)`` entries pruned, ties broken
  by index (:func:`sevenprune.threshold.smallest_k_keep_masks`). With ``pattern="n:m"`` (``"2:4"``,
  ``"4:8"``; ``sparsity`` must be ``1 - n/m``) each group of ``m`` consecutive inputs of a row keeps its
  ``n`` best-scored weights, as the magnitude baseline of Wanda's code does at 2:4 and 4:8
  (``prune_magnitude`` in locuslab/wanda's ``lib/prune.py``), equal scores in a group the lower input
  index pruned first (their code takes ``torch.topk``'s unspecified order; on a quantized checkpoint
  many magnitudes tie, see docs/methods.md). Every method that selects through
  :meth:`InitRequest.select` takes it (magnitude, random, SNIP, GraSP), and SEVEN_pre ramps to it;
  FORCE refuses it (its iterations select on their own: it declares ``init_patterns =
  ("unstructured",)``), and a method of your own that ignores it is caught: its masks are checked
  before they are applied.

Memory: SNIP holds the accumulated gradient (in ``.grad``) and nothing else full-size; GraSP holds the
gradient ``g`` (one extra full-size copy) while the Hessian-gradient product accumulates in ``.grad``
(the buffer every backward pass writes), then computes the scores in ``g``'s storage; FORCE holds the
starting weights (one extra full-size copy) and scores in ``.grad``; SEVEN_pre holds the starting
weights plus SEVEN's three statistics. Autograd's own transient buffers are not counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from ._validate import check_int, check_scope, check_sparsity
from ._validate import state_dtype as check_state_dtype
from .batches import LossFn, check_batches, check_loss_fn
from .importance import checked_options, method_for, methods
from .importance.init_request import InitRequest
from .patterns import nm_holds, parse_pattern, validate_pattern, weight_kinds
from .pruner import Pruner
from .targets import find_prunable, pattern_list

__all__ = ["prune_at_init", "init_methods", "init_patterns"]


def init_methods() -> list[str]:
    """Names of the methods :func:`prune_at_init` runs (those of the ``"before"`` phase)."""
    return methods("before")


def init_patterns(entry: Any) -> tuple[str, ...]:
    """The patterns a ``"before"`` method takes: its ``init_patterns`` (default: ``"unstructured"`` and
    ``"n:m"``, which :meth:`InitRequest.select` applies; a method that selects on its own, as FORCE,
    declares ``("unstructured",)``)."""
    return tuple(getattr(entry, "init_patterns", ("unstructured", "n:m")))


def prune_at_init(
    model: nn.Module,
    method: str,
    sparsity: float,
    batches: Iterable[Any] | None = None,
    loss_fn: LossFn | None = None,
    *,
    steps: int = 100,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    state_dtype: torch.dtype | str = torch.float32,
    scope: str = "global",
    pattern: str = "unstructured",
    **options: Any,
) -> Pruner:
    """Prune ``model`` before fine-tuning and return a finished :class:`Pruner` holding the fixed masks
    (:meth:`Pruner.from_masks`).

    Args:
        model: the model; its weights are left unchanged except that pruned ones are set to 0.
        method: a method of the ``"before"`` phase (:func:`init_methods`): ``"snip"``, ``"grasp"``,
            ``"force"``, ``"seven"`` (SEVEN_pre with ``freeze_during_pruning=True``), ``"magnitude"``,
            ``"random"``, or one of your own (``docs/methods.md``, "Adding a method").
        sparsity: fraction of the prunable weights to prune, in ``[0, 1)``; exactly ``round(s * N)``.
        batches: iterable of batches on the model's device (unused by magnitude and random).
        loss_fn: ``loss_fn(model, batch) -> scalar loss tensor`` (unused by magnitude and random).
        steps: iterations of the iterative methods (FORCE, SEVEN_pre), each on the next batch, cycling
            through ``batches``; ignored by the one-shot methods. The reference hint for SEVEN_pre: 100.
        include, exclude: regular expressions over weight names (see :func:`sevenprune.find_prunable`).
        optimizer: attached to the returned pruner if given.
        state_dtype: dtype of SEVEN's moments while scoring (``"seven"`` only).
        scope: ``"global"`` (one ranking over every prunable weight) or ``"local"`` (the same fraction
            pruned in every matrix), as for :class:`~sevenprune.Pruner`.
        pattern: ``"unstructured"`` (default) or ``"n:m"`` (``"2:4"``, ``"4:8"``): keep the ``n``
            best-scored of every ``m`` consecutive inputs of a row; ``sparsity`` must be ``1 - n/m``.
        **options: the method's options: GraSP ``variant="paper"|"abs"`` (remove the highest ``S``, as
            the paper; or the lowest ``|S|``); FORCE ``variant="force"|"iter_snip"``; random ``seed``;
            SEVEN ``beta1``, ``beta2``, ``eps``, ``moments``, ``compile``, ``freeze_during_pruning``.

    >>> import torch, sevenprune as sp
    >>> torch.manual_seed(0) and None
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> data = [(torch.randn(5, 4), torch.randn(5, 2)) for _ in range(2)]
    >>> mse = lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1])
    >>> pruner = prune_at_init(model, "snip", 0.75, data, mse)
    >>> pruner.sparsity(), pruner.finished
    (0.75, True)
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 4))
    >>> pruner = prune_at_init(model, "magnitude", 0.5, pattern="2:4")
    >>> from sevenprune.patterns import nm_holds
    >>> nm_holds(pruner.masks["0.weight"], 2, 4), pruner.config()["pattern"]
    (True, '2:4')
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    entry = method_for(method, "before")  # an unknown name, or one of another phase: where to go
    sparsity = check_sparsity(sparsity)
    steps = check_int(steps, "steps", 1)
    scope = check_scope(scope)
    state_dtype = check_state_dtype(state_dtype)
    include_l, exclude_l = pattern_list(include), pattern_list(exclude)
    params = find_prunable(model, include_l, exclude_l)
    if parse_pattern(pattern)[0] not in ("unstructured", "nm"):
        raise ValueError(f"prune_at_init prunes 'unstructured' or 'n:m' (e.g. '2:4'), got pattern={pattern!r}; "
                         "heads and neurons are pruned during fine-tuning (sp.Pruner)")
    parsed = validate_pattern(pattern, model, params, sparsity)
    if parsed[0] == "nm" and "n:m" not in init_patterns(entry):
        raise ValueError(f"method {method!r} prunes {' or '.join(init_patterns(entry))} before fine-tuning, "
                         f"not pattern {pattern!r}")
    kinds = weight_kinds(model, params)
    method_opts = checked_options(entry, options, phase="before")
    needs_data = getattr(entry, "needs_grad", True)
    fn: LossFn | None = None
    if needs_data:
        if batches is None:
            raise TypeError(f"method {method!r} needs batches (an iterable of batches, e.g. a DataLoader)")
        check_batches(batches)
        fn = check_loss_fn(loss_fn)
    request = InitRequest(model, params, sparsity, batches, fn, steps, scope, state_dtype, include_l, exclude_l,
                          method_opts, make_pruner=Pruner, pattern=pattern, kinds=kinds)
    # forward passes in train mode update buffers (BatchNorm statistics): put them back afterwards
    buffers = [(b, b.detach().clone()) for b in model.buffers()] if needs_data else []
    try:
        masks = entry.init_masks(request)
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
    extra: dict[str, Any] = {}
    if parsed[0] == "nm":
        _, n, m = parsed
        kind_of = dict(zip(params, kinds))
        for name, mask in masks.items():
            if not nm_holds(mask, n, m, transposed=kind_of.get(name) == "conv1d"):
                raise ValueError(f"method {method!r} does not take pattern {pattern!r}: its mask of {name!r} "
                                 f"does not keep {n} of every {m} inputs")
        extra["pattern"] = pattern
    return Pruner.from_masks(model, masks, method=method, sparsity=sparsity, include=include_l,
                             exclude=exclude_l, optimizer=optimizer, scope=scope, **extra, **method_opts)
