"""Sparsity schedules: pure functions of the step.

Steps are counted in optimizer updates. ``pruner.step()`` number ``n`` (1-based, i.e. after the n-th
optimizer update) is a *pruning step* when ``start_step < n <= start_step + prune_steps``; there are
exactly ``prune_steps`` of them, and the last one reaches the target exactly (method.md's decision;
the reference code stops slightly short).
"""

from __future__ import annotations

import math

__all__ = ["cubic_sparsity", "in_window", "pruned_count", "exponential_keep"]


def cubic_sparsity(step: int, target: float, start_step: int, prune_steps: int) -> float:
    """Cubic schedule of Zhu & Gupta (2017), as the SEVEN write-up's Algorithm 2 uses it.

    ``s_t = s * (1 - (1 - (t - t_i) / K) ** 3)`` for ``t_i <= t <= t_i + K``; 0 before, ``s`` after.

    >>> [round(cubic_sparsity(t, 0.8, 0, 4), 6) for t in (0, 2, 4)]
    [0.0, 0.7, 0.8]
    >>> cubic_sparsity(9, 0.8, 0, 4)
    0.8
    """
    if step <= start_step:
        return 0.0
    if step >= start_step + prune_steps:
        return float(target)
    frac = (step - start_step) / prune_steps
    return float(target) * (1.0 - (1.0 - frac) ** 3)


def in_window(step: int, start_step: int, prune_steps: int) -> bool:
    """True if ``step`` (1-based count of optimizer updates) is one of the pruning steps."""
    return start_step < step <= start_step + prune_steps


def pruned_count(sparsity: float, total: int) -> int:
    """Number of entries to prune for a sparsity: ``round(sparsity * total)`` (Python rounding)."""
    return min(total, max(0, round(sparsity * total)))


def exponential_keep(iteration: int, iterations: int, target_keep: float) -> float:
    """FORCE's exponential schedule (de Jorge et al. 2021, Sec. 4): the fraction of weights kept after
    iteration ``iteration`` of ``iterations`` is ``target_keep ** (iteration / iterations)``.

    >>> round(exponential_keep(1, 2, 0.04), 6)
    0.2
    """
    if iterations <= 0:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    return math.exp(math.log(target_keep) * iteration / iterations) if target_keep > 0 else 0.0
