"""Lottery tickets: iterative magnitude pruning with weight rewinding.

Frankle & Carbin, "The Lottery Ticket Hypothesis: Finding Sparse, Trainable Neural Networks", ICLR 2019
(Sec. 2, "iterative pruning" with reset to the initialisation), and Frankle, Dziugaite, Roy & Carbin,
"Linear Mode Connectivity and the Lottery Ticket Hypothesis", ICML 2020 (rewinding to an early
training step k instead of step 0). Chen et al. (NeurIPS 2020) apply the same procedure to BERT.

With target sparsity ``s`` and ``R`` rounds, round ``r = 1 .. R``:

1. train the masked network (``train_fn(model, pruner)``; round 1 trains the dense network); during
   round 1 the state of the whole model after ``rewind_step`` calls of ``pruner.step()`` is recorded as
   the rewind point ``theta_k`` (``rewind_step=0``: the weights before training, as in Frankle & Carbin);
2. prune by global magnitude of the trained weights, among those still kept, to sparsity
   ``s_r = 1 - (1 - s) ** (r / R)`` (each round removes the same fraction of the remaining weights;
   the last round prunes exactly ``round(s * N)``);
3. rewind: every parameter and buffer of the model is reset to ``theta_k``, pruned weights to 0.

The returned :class:`Pruner` holds the final mask, with the model at ``theta_k`` masked: the ticket,
ready to be trained (e.g. one more ``train_fn(model, pruner)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from . import schedules
from ._validate import check_int, check_sparsity
from .pruner import Pruner
from .targets import find_prunable, pattern_list
from .threshold import smallest_k_keep_masks

__all__ = ["lottery_ticket", "LotteryRoundPruner"]


class LotteryRoundPruner(Pruner):
    """The pruner given to ``train_fn`` for one round: fixed masks, and two read-only facts.

    ``lottery_round`` (1-based) and ``rewind_step``: from round 2 on the weights start from the state
    recorded after ``rewind_step`` steps of round 1, so a ``train_fn`` with a learning-rate schedule
    can resume it there (as Frankle et al. 2020 do). Call ``pruner.step()`` after every
    ``optimizer.step()``: round 1 counts those calls to find the rewind point.
    """

    lottery_round: int = 1
    rewind_step: int = 0
    calls: int = 0
    _on_step: Callable[[int], None] | None = None

    def step(self) -> None:
        super().step()
        self.calls += 1
        if self._on_step is not None:
            self._on_step(self.calls)


def _snapshot(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def lottery_ticket(
    model: nn.Module,
    train_fn: Callable[[nn.Module, Pruner], Any],
    sparsity: float,
    rounds: int,
    *,
    rewind_step: int = 0,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
) -> Pruner:
    """Iterative magnitude pruning with rewinding; returns the final (finished) :class:`Pruner`.

    Args:
        model: the model, at its starting weights.
        train_fn: ``train_fn(model, pruner)`` trains one round in place; it should attach its
            optimizer to ``pruner`` (``pruner.attach(opt)``) and call ``pruner.step()`` after every
            optimizer step so pruned weights stay zero.
        sparsity: final fraction of the prunable weights pruned, in ``[0, 1)``.
        rounds: number of train-prune-rewind rounds (``train_fn`` is called ``rounds`` times).
        rewind_step: the step of round 1 to rewind to (0: the starting weights).
        include, exclude: regular expressions over weight names (see :func:`sevenprune.find_prunable`).

    >>> import torch
    >>> torch.manual_seed(0) and None
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    >>> x, y = torch.randn(16, 4), torch.randn(16, 1)
    >>> def train(m, pruner):
    ...     opt = torch.optim.SGD(m.parameters(), lr=0.1)
    ...     pruner.attach(opt)
    ...     for _ in range(5):
    ...         torch.nn.functional.mse_loss(m(x), y).backward()
    ...         opt.step(); pruner.step(); opt.zero_grad()
    >>> ticket = lottery_ticket(model, train, sparsity=0.75, rounds=2, rewind_step=1)
    >>> ticket.sparsity()
    0.75
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(train_fn):
        raise TypeError(f"train_fn must be a callable train_fn(model, pruner), got {train_fn!r}")
    sparsity = check_sparsity(sparsity)
    rounds = check_int(rounds, "rounds", 1)
    rewind_step = check_int(rewind_step, "rewind_step", 0)
    include_l, exclude_l = pattern_list(include), pattern_list(exclude)

    rewind: dict[str, Tensor] | None = _snapshot(model) if rewind_step == 0 else None
    masks: dict[str, Tensor] | None = None
    for r in range(1, rounds + 1):
        current = _round_pruner(model, masks, include_l, exclude_l, r, rewind_step)
        if r == 1 and rewind_step > 0:
            def record(calls: int) -> None:
                nonlocal rewind
                if calls == rewind_step:
                    rewind = _snapshot(model)
            current._on_step = record
        train_fn(model, current)
        current._on_step = None
        current.detach()
        if rewind is None:
            raise ValueError(
                f"rewind_step={rewind_step} but train_fn called pruner.step() only {current.calls} times in "
                "round 1; call pruner.step() after every optimizer step, or lower rewind_step"
            )
        target = sparsity if r == rounds else 1.0 - (1.0 - sparsity) ** (r / rounds)
        masks = _magnitude_masks(current, target)
        with torch.no_grad():
            model.load_state_dict(rewind)
        if r == rounds:
            return Pruner.from_masks(model, masks, method="magnitude", sparsity=sparsity,
                                     include=include_l, exclude=exclude_l)
    raise AssertionError("unreachable")  # pragma: no cover


def _round_pruner(
    model: nn.Module,
    masks: dict[str, Tensor] | None,
    include: list[str] | None,
    exclude: list[str] | None,
    round_: int,
    rewind_step: int,
) -> LotteryRoundPruner:
    if masks is None:
        masks = {n: torch.ones(p.shape, dtype=torch.bool, device=p.device)
                 for n, p in find_prunable(model, include, exclude).items()}
    done = sum(int((~m).sum()) for m in masks.values()) / max(1, sum(m.numel() for m in masks.values()))
    pruner = LotteryRoundPruner.from_masks(model, masks, method="magnitude", sparsity=done,
                                           include=include, exclude=exclude)
    assert isinstance(pruner, LotteryRoundPruner)
    pruner.lottery_round = round_
    pruner.rewind_step = rewind_step
    pruner.calls = 0
    return pruner


@torch.no_grad()
def _magnitude_masks(pruner: Pruner, sparsity: float) -> dict[str, Tensor]:
    """Global magnitude masks at ``sparsity`` among the weights ``pruner`` still keeps (monotone)."""
    scores = [pruner.importance.pin_pruned(p.detach().abs().float(), pruner.masks[n])
              for n, p in pruner.params.items()]
    k = schedules.pruned_count(sparsity, pruner.numel)
    keep = smallest_k_keep_masks(scores, k)
    return {n: new & old for (n, old), new in zip(pruner.masks.items(), keep)}
