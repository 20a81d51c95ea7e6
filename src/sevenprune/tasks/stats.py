"""Paired comparisons of two methods from their per-example predictions, and the words for them.

Two methods run with the same seeds (data order, head initialisation) and evaluated on the same test
sentences give, per seed, two 0/1 vectors of correct answers. The questions are whether A is ahead of
B, and how sure we can be, given that both the seeds and the finite test set add noise.

* :func:`paired_bootstrap` — the mean accuracy difference ``A - B`` over seeds, and a percentile
  confidence interval from a two-level bootstrap: resample the seeds with replacement, then, within
  each drawn seed, the test sentences with replacement (the same sentences for A and B: paired). It
  covers both sources of noise; with few seeds the seed level is coarse, which widens the interval.
* :func:`pooled_paired_bootstrap` — the same difference pooled over several conditions (strata), each
  with its own seeds: the mean over every (condition, seed) pair, with the seeds resampled *within*
  their condition, so that the interval is about these conditions and not a draw of other ones.
* ``sentences="shared"`` (both functions) — the crossed design, for a test set that every seed (and
  every condition) was evaluated on: each bootstrap draw resamples the sentences *once* and uses that
  draw for every seed, so that a sentence on which A is better than B in every seed counts as one
  sentence, not as independent evidence per seed (the default, ``"independent"``, draws the sentences
  afresh within each seed, which is narrower when per-sentence differences repeat across seeds). It is
  the "pigeonhole" bootstrap of a seeds x sentences table (Owen 2007, "The pigeonhole bootstrap", Ann. Appl. Stat. 1(2)), which is
  mildly conservative.
* :func:`mcnemar` — the exact McNemar test for one seed: of the sentences where exactly one method is
  right, is the split far from 50/50 (two-sided binomial test)?
* :func:`verdict` — "ahead", "behind" or "not separated", from whether the interval excludes 0.

>>> import numpy as np
>>> a = [np.array([1, 1, 1, 0]), np.array([1, 1, 0, 0])]
>>> b = [np.array([1, 0, 1, 0]), np.array([1, 1, 0, 0])]
>>> paired_bootstrap(a, b, n_boot=2000).mean
0.125
>>> round(mcnemar(np.array([1] * 10 + [0] * 2 + [1] * 5), np.array([0] * 10 + [1] * 2 + [1] * 5)), 5)
0.03857
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PairedDifference", "paired_bootstrap", "pooled_paired_bootstrap", "mcnemar", "verdict",
           "format_points", "SENTENCE_DESIGNS"]

SENTENCE_DESIGNS = ("independent", "shared")


@dataclass(frozen=True)
class PairedDifference:
    """``A - B`` in accuracy (a fraction), its confidence interval and how it was obtained."""

    mean: float
    low: float
    high: float
    seeds: int
    examples: int
    level: float
    n_boot: int

    @property
    def verdict(self) -> str:
        return verdict(self.low, self.high)

    def points(self, digits: int = 1) -> str:
        """``+1.2 [-0.3, +2.7]`` in accuracy points (no ``-0.0``): :func:`format_points`."""
        return format_points(self.mean, self.low, self.high, digits)


def _check(correct_a: Sequence[np.ndarray], correct_b: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    if len(correct_a) != len(correct_b) or not correct_a:
        raise ValueError(f"need the same, non-zero number of seeds for both methods; got {len(correct_a)} "
                         f"and {len(correct_b)}")
    pairs = []
    for i, (a, b) in enumerate(zip(correct_a, correct_b)):
        a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
        if a.shape != b.shape or a.size == 0:
            raise ValueError(f"seed {i}: the two methods were evaluated on different test sets "
                             f"({a.size} and {b.size} examples)")
        pairs.append((a, b))
    return pairs


def _design(sentences: str) -> str:
    if sentences not in SENTENCE_DESIGNS:
        raise ValueError(f"sentences={sentences!r}: expected one of {', '.join(SENTENCE_DESIGNS)}")
    return sentences


def paired_bootstrap(correct_a: Sequence[np.ndarray], correct_b: Sequence[np.ndarray], *, n_boot: int = 10000,
                     level: float = 0.95, seed: int = 0, sentences: str = "independent") -> PairedDifference:
    """Mean over seeds of ``accuracy(A) - accuracy(B)`` with a two-level bootstrap interval.

    ``correct_a[i]`` and ``correct_b[i]``: 0/1 (or bool) arrays, one entry per test example, for seed i.
    ``sentences``: ``"independent"`` (sentences redrawn within each seed) or ``"shared"`` (one draw of
    the sentences for all seeds: entry j must be the same test sentence in every seed; see the module
    docstring).
    """
    if _design(sentences) == "shared":  # one condition of the pooled crossed bootstrap, draw for draw
        return pooled_paired_bootstrap([(correct_a, correct_b)], n_boot=n_boot, level=level, seed=seed,
                                       sentences="shared")
    pairs = _check(correct_a, correct_b)
    diffs = [a - b for a, b in pairs]  # per seed, per sentence: -1, 0 or +1
    mean = float(np.mean([d.mean() for d in diffs]))
    rng = np.random.default_rng(seed)
    n_seeds = len(diffs)
    stats = np.empty(n_boot)
    for i in range(n_boot):
        picked = rng.integers(0, n_seeds, n_seeds)
        total = 0.0
        for s in picked:
            d = diffs[s]
            total += d[rng.integers(0, d.size, d.size)].mean()
        stats[i] = total / n_seeds
    alpha = (1.0 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return PairedDifference(mean, float(low), float(high), n_seeds, int(diffs[0].size), level, n_boot)


def pooled_paired_bootstrap(strata: Sequence[tuple[Sequence[np.ndarray], Sequence[np.ndarray]]], *,
                            n_boot: int = 10000, level: float = 0.95, seed: int = 0,
                            sentences: str = "independent") -> PairedDifference:
    """``A - B`` averaged over every (condition, seed) pair of several conditions, with a stratified interval.

    ``strata[j] = (correct_a, correct_b)``: condition j's seeds, as for :func:`paired_bootstrap` (each
    condition may have its own number of seeds and its own test set). Each (condition, seed) pair
    weighs the same. A bootstrap draw resamples, in each condition, its seeds with replacement and,
    within each drawn seed, its sentences; the conditions themselves are fixed (a condition is a
    choice, such as a batch size, not a sample). With one condition this is :func:`paired_bootstrap`,
    draw for draw. With ``sentences="shared"`` every condition and seed must hold the same test
    sentences in the same order, and one draw of them serves the whole replicate.

    >>> import numpy as np
    >>> up = ([np.ones(4)], [np.zeros(4)])      # one condition: A right everywhere B is wrong
    >>> down = ([np.zeros(4)], [np.ones(4)])    # another: the reverse
    >>> d = pooled_paired_bootstrap([up, down], n_boot=200)
    >>> (d.mean, d.low, d.high, d.seeds)
    (0.0, 0.0, 0.0, 2)
    """
    if not strata:
        raise ValueError("need at least one condition to pool")
    groups = []
    for j, (a, b) in enumerate(strata):
        try:
            groups.append([x - y for x, y in _check(a, b)])
        except ValueError as err:
            raise ValueError(f"condition {j}: {err}") from None
    units = sum(len(g) for g in groups)
    mean = float(sum(d.mean() for g in groups for d in g) / units)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    if _design(sentences) == "shared":
        sizes = {int(d.size) for g in groups for d in g}
        if len(sizes) != 1:
            raise ValueError(f"sentences='shared' needs one test set for every condition and seed; got "
                             f"{len(sizes)} sizes ({', '.join(map(str, sorted(sizes)))} examples)")
        n = sizes.pop()
        table = np.stack([d for g in groups for d in g])  # (condition-seed pairs, sentences)
        starts = np.cumsum([0] + [len(g) for g in groups])
        for i in range(n_boot):
            picks = np.zeros(units)  # how often each (condition, seed) pair is drawn
            for j, g in enumerate(groups):
                np.add.at(picks, starts[j] + rng.integers(0, len(g), len(g)), 1.0)
            counts = np.bincount(rng.integers(0, n, n), minlength=n)  # one sentence draw for all
            stats[i] = picks @ table @ counts / (n * units)
    else:
        _independent(groups, rng, stats, units)
    alpha = (1.0 - level) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    # ``seeds`` counts the (condition, seed) pairs; ``examples`` is the smallest test set among them
    return PairedDifference(mean, float(low), float(high), units, min(int(g[0].size) for g in groups), level, n_boot)


def _independent(groups: list[list[np.ndarray]], rng: np.random.Generator, stats: np.ndarray, units: int) -> None:
    """Fill ``stats`` with draws of the stratified bootstrap, sentences redrawn within each seed."""
    for i in range(stats.size):
        total = 0.0
        for g in groups:  # the same order of draws as paired_bootstrap's, condition after condition
            for s in rng.integers(0, len(g), len(g)):
                d = g[s]
                total += d[rng.integers(0, d.size, d.size)].mean()
        stats[i] = total / units


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
    """Two-sided exact McNemar p-value for one seed (a binomial test on the discordant sentences)."""
    from scipy.stats import binomtest

    (a, b), = _check([correct_a], [correct_b])
    only_a = int(np.sum((a == 1) & (b == 0)))
    only_b = int(np.sum((a == 0) & (b == 1)))
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5, alternative="two-sided").pvalue)


def format_points(mean: float, low: float, high: float, digits: int = 1) -> str:
    """A difference of accuracies (fractions) and its interval in points: ``+1.2 [-0.3, +2.7]``.

    A value that rounds to zero prints as ``+0.0``, never ``-0.0``, so that the same difference reads the
    same in every table whatever the sign of its rounding error.

    >>> format_points(0.012, -0.0004, 0.027)
    '+1.2 [+0.0, +2.7]'
    """
    def one(x: float) -> str:
        text = f"{x * 100:+.{digits}f}"
        return f"{0.0:+.{digits}f}" if float(text) == 0 else text
    return f"{one(mean)} [{one(low)}, {one(high)}]"


def verdict(low: float, high: float) -> str:
    """"ahead" if the interval is above 0, "behind" if below, else "not separated"."""
    if low > 0:
        return "ahead"
    if high < 0:
        return "behind"
    return "not separated"
