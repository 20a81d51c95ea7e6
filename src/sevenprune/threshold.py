"""Exact global selection of the k lowest scores, without sorting or concatenating every score.

``smallest_k_keep_masks(scores, k)`` returns one boolean keep-mask per score tensor such that exactly
``k`` entries over all tensors are False: the k smallest in the order (score, global index), where the
global index is the entry's position in the concatenation of the flattened tensors in the order given.
That order makes ties deterministic (the earliest entries are pruned first) and identical everywhere.

Why not ``torch.kthvalue``/``topk`` on a concatenation? On a BERT-base-size model (85.5 M scores) that
costs about 2.2 s on this machine's CPU, and a full copy of the scores (see docs/performance.md). Here:

1. draw a small random sample of the scores (fixed seed) and read from it two values that almost
   surely bracket the k-th smallest value;
2. one counting pass (per tensor) checks that they do, ``#(s <= lo) < k <= #(s < hi)``;
3. the few values inside the band are gathered and the exact k-th value ``v`` is taken among them
   (``kthvalue`` on a band of ~1% of the entries);
4. masks are ``s > v``, plus, for entries equal to ``v``, the first ones in index order are pruned
   until exactly k are.

If the sampled values miss (they cannot for a correct sample, but scores may be adversarial) the band
stays wider and the result is still exact. The same algorithm (:func:`kth_smallest`) serves scores
sharded over ranks, with the counts summed across them (:class:`CountReduction`, see
:mod:`sevenprune.distributed`). Memory: per-tensor temporaries only, never more than one full-size
copy of the scores alive at once. Scores must not contain NaN (``ValueError``).

Inside a pruning window, where each step prunes a few more entries, :func:`smallest_k_finite` and
:class:`CandidateSet` find just the new ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor

__all__ = ["SAMPLE_SIZE", "matrix_sample_size", "smallest_k_keep_masks", "smallest_k_finite", "CandidateSet",
           "kth_smallest", "kth_smallest_value", "keep_masks_for_value", "CountReduction", "LOCAL"]

#: values drawn to bracket the k-th smallest score (the band's width shrinks with its square root)
SAMPLE_SIZE = 1 << 16


def matrix_sample_size(numel: int) -> int:
    """The sample that brackets one matrix's own threshold (``scope="local"``): 1/64 of its entries, at
    least 1,024 and at most :data:`SAMPLE_SIZE`. Drawing and sorting 65,536 values for each of MiniLM's
    36 matrices took ~0.38 s a selection; the result is exact whatever the sample (a miss widens the band).
    """
    return max(1 << 10, min(SAMPLE_SIZE, numel >> 6))


def _sample(scores: Sequence[Tensor], total: int, sample_size: int, seed: int) -> Tensor:
    parts = []
    gen = torch.Generator(device="cpu").manual_seed(seed)
    for s in scores:
        n = s.numel()
        if n == 0:
            continue
        take = max(1, math.ceil(sample_size * n / total))
        idx = torch.randint(n, (take,), generator=gen).to(s.device)
        parts.append(s.reshape(-1)[idx].float().cpu())
    return torch.cat(parts)


def _spread(ns: int, q: float) -> float:
    """Ranks either side of ``q * ns`` in a sorted sample of ``ns`` that bracket the true ``q``-quantile
    with overwhelming probability (5 binomial standard deviations, plus a margin for tiny samples)."""
    return 5.0 * math.sqrt(max(ns * q * (1.0 - q), 1.0)) + 16.0


class CountReduction(Protocol):
    """How counts and a few values cross the holders of the scores: identity in one process
    (:data:`LOCAL`), all-reduce and all-gather across ranks for sharded scores
    (:mod:`sevenprune.distributed`)."""

    rank: int

    def sum(self, counts: list[int]) -> list[int]:
        """Every holder's counts, summed element-wise."""
        ...

    def gather(self, values: Tensor) -> Tensor:
        """Every holder's values (1-D fp64 on the CPU), concatenated in rank order."""
        ...


class _Local:
    rank = 0

    def sum(self, counts: list[int]) -> list[int]:
        return counts

    def gather(self, values: Tensor) -> Tensor:
        return values


#: the scores are all in this process
LOCAL: CountReduction = _Local()


class _Band:
    """The value band that holds the k-th smallest score, with global counts at its edges.

    ``lo`` is exclusive (None: unbounded), ``hi`` inclusive or exclusive (None: unbounded);
    ``below`` = #(s <= lo) < k <= ``upto`` = #(s in band or below).
    """

    def __init__(self, total: int) -> None:
        self.lo: float | None = None
        self.hi: float | None = None
        self.hi_inclusive = True
        self.below = 0
        self.upto = total

    def select(self, s: Tensor) -> Tensor:
        upper = None if self.hi is None else (s <= self.hi) if self.hi_inclusive else (s < self.hi)
        if self.lo is None:
            return torch.ones_like(s, dtype=torch.bool) if upper is None else upper
        return s > self.lo if upper is None else upper.logical_and_(s > self.lo)

    def candidates(self, sample: Tensor, k: int) -> list[float]:
        """Two values of the band from a sorted sample of it, bracketing the target rank."""
        ns = sample.numel()
        m = self.upto - self.below
        q = (k - self.below) / m
        rank = q * ns
        spread = _spread(ns, q)
        picks = {math.floor(rank - spread), math.ceil(rank + spread)}
        picks = {r for r in picks if 0 <= r < ns} or {min(max(round(rank), 0), ns - 1)}
        return sorted({float(sample[r]) for r in picks})

    def raise_lo(self, x: float, le: int) -> None:
        """#(s <= x) = le < k: the k-th value is above x."""
        if self.lo is None or x > self.lo:
            self.lo, self.below = x, le

    def lower_hi(self, x: float, lt: int) -> None:
        """#(s < x) = lt >= k: the k-th value is below x."""
        if self.hi is None or x < self.hi or (x == self.hi and self.hi_inclusive):
            self.hi, self.hi_inclusive, self.upto = x, False, lt


def _count(values: Sequence[Tensor], tests: Sequence[tuple[str, float]], reduction: CountReduction) -> list[int]:
    """Counts ``#(v < x)`` (``"lt"``) or ``#(v <= x)`` (``"le"``) for each test, summed over holders."""
    return reduction.sum([sum(int(torch.count_nonzero(v < x if op == "lt" else v <= x)) for v in values)
                          for op, x in tests])


def _narrow(band: _Band, values: Sequence[Tensor], sample: Tensor, k: int,
            reduction: CountReduction) -> tuple[float, int] | None:
    """Narrow ``band`` around the k-th value with two candidates read off ``sample`` (sorted); return
    ``(value, n_less)`` if a candidate is the k-th value itself.

    ``values`` hold every entry of the band (and possibly entries below it, when ``band.below`` is
    0). The usual outcome needs one count per candidate (lower: ``<=``, upper: ``<``); a candidate
    whose count lands on the other side of k is counted again with the other comparison.
    """
    below = band.below  # counts over the band's values: add what lies below it
    xs = band.candidates(sample, k)
    first = [("le", xs[0])] + ([("lt", xs[-1])] if len(xs) > 1 else [])
    counts = dict(zip(first, (below + c for c in _count(values, first, reduction))))
    missing = [("lt" if op == "le" else "le", x) for (op, x), c in counts.items()
               if (op == "le" and c >= k) or (op == "lt" and c < k)]
    if missing:
        counts.update(zip(missing, (below + c for c in _count(values, missing, reduction))))
    for x in xs:
        le, lt = counts.get(("le", x)), counts.get(("lt", x))
        if le is not None and le < k:
            band.raise_lo(x, le)
        elif lt is not None and lt >= k:
            band.lower_hi(x, lt)
        else:  # lt < k <= le: x is the k-th smallest value
            assert le is not None and lt is not None
            return x, lt
    return None


def _drawn(values: Sequence[Tensor], of: int, sample_size: int, gen: torch.Generator,
           reduction: CountReduction) -> Tensor:
    """A uniform sample (with replacement) of ``sample_size`` of ``of`` values held over all holders,
    sorted, fp64 on the CPU."""
    parts = []
    for v in values:
        if v.numel():
            take = max(1, math.ceil(sample_size * v.numel() / of))
            parts.append(v[torch.randint(v.numel(), (take,), generator=gen).to(v.device)].double().cpu())
    local = torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)
    return torch.sort(reduction.gather(local)).values


def kth_smallest(
    values: Sequence[Tensor], k: int, *, reduction: CountReduction = LOCAL, sample_size: int = SAMPLE_SIZE,
    sample_above: int | None = None, gather_limit: float = math.inf, seed: int = 0,
) -> tuple[float, int]:
    """``(v, n_less)``: the k-th smallest (1-based) of the flat ``values`` of every holder, and how many
    entries are below it; the one exact k-selection under every selector.

    Above ``sample_above`` entries (default ``4 * sample_size``), a sample gives two values that bracket
    the k-th and counting checks them (every holder counts its own values; only counts cross through
    ``reduction``); the band is narrowed on its own values while it holds more than ``gather_limit``,
    then gathered (through ``reduction``) and the k-th value taken from it exactly. Scores must not be
    NaN (``ValueError`` where one is met).

    >>> kth_smallest([torch.tensor([3.0, 1.0, 2.0]), torch.tensor([1.0, 5.0])], 3)
    (2.0, 2)
    """
    total = reduction.sum([sum(v.numel() for v in values)])[0]
    if not 1 <= k <= total:
        raise ValueError(f"k must be in [1, {total}], got {k}")
    sample_above = 4 * sample_size if sample_above is None else sample_above
    gen = torch.Generator(device="cpu").manual_seed(seed * 1_000_003 + reduction.rank)
    band = _Band(total)
    if total > sample_above:
        # a first band from a uniform sample of everything, checked by counting
        found = _narrow(band, values, _drawn(values, total, sample_size, gen, reduction), k, reduction)
        if found is not None:
            return found
        values = [v[band.select(v)] for v in values]  # the values inside the band, each holder its own
    while band.upto - band.below > gather_limit:
        # narrow further on the (already small) band values; only counts cross holders
        sample = _drawn(values, band.upto - band.below, sample_size, gen, reduction)
        if sample.numel() == 0:
            break  # counts and values disagree: NaN scores; reported below
        found = _narrow(band, values, sample, k, reduction)
        if found is not None:
            return found
        values = [v[band.select(v)] for v in values]
    local = [v[band.select(v)].double().cpu() for v in values]
    gathered = reduction.gather(torch.cat(local) if local else torch.zeros(0, dtype=torch.float64))
    m = band.upto - band.below
    if gathered.numel() != m or bool(torch.isnan(gathered).any()):
        raise ValueError(f"the scores hold NaN near the threshold ({m} entries counted in the band, "
                         f"{int(torch.isnan(gathered).sum())} NaN among {gathered.numel()} gathered); "
                         "scores must not be NaN")
    value = float(torch.kthvalue(gathered, k - band.below).values)
    return value, band.below + int(torch.count_nonzero(gathered < value))


def kth_smallest_value(
    scores: Sequence[Tensor], k: int, *, sample_size: int = SAMPLE_SIZE, seed: int = 0
) -> tuple[float, int]:
    """Return ``(v, n_less)``: the k-th smallest value (1-based) and how many entries are ``< v``."""
    return kth_smallest([s.reshape(-1) for s in scores], k, sample_size=sample_size, seed=seed)


def keep_masks_for_value(scores: Sequence[Tensor], value: float, quota: int) -> list[Tensor]:
    """Masks pruning every entry ``< value`` and the first ``quota`` entries ``== value``."""
    masks = []
    for s in scores:
        if quota <= 0:
            masks.append(s >= value if value != -math.inf else torch.ones_like(s, dtype=torch.bool))
            continue
        keep = s > value
        eq = s == value
        n_eq = int(torch.count_nonzero(eq))
        if n_eq > quota:
            # keep the ties after the first `quota` in index order
            late = torch.nonzero(eq.reshape(-1)).squeeze(1)[quota:]
            keep.reshape(-1)[late] = True
            quota = 0
        else:
            quota -= n_eq
        masks.append(keep)
    return masks


def smallest_k_keep_masks(
    scores: Sequence[Tensor], k: int, *, sample_size: int = SAMPLE_SIZE, seed: int = 0
) -> list[Tensor]:
    """Boolean keep-masks (True = kept) pruning exactly the ``k`` smallest entries over all tensors.

    Ties are broken by global index: among equal scores the entry that comes first (earlier tensor,
    then earlier flat position) is pruned first.

    >>> a, b = torch.tensor([3.0, 1.0, 2.0]), torch.tensor([[1.0, 5.0]])
    >>> [m.tolist() for m in smallest_k_keep_masks([a, b], 2)]
    [[True, False, True], [[False, True]]]
    >>> [m.tolist() for m in smallest_k_keep_masks([a, b], 3)]
    [[True, False, False], [[False, True]]]
    """
    total = sum(s.numel() for s in scores)
    if not 0 <= k <= total:
        raise ValueError(f"cannot prune {k} of {total} entries")
    if k == 0:
        return [torch.ones_like(s, dtype=torch.bool) for s in scores]
    if k == total:
        return [torch.zeros_like(s, dtype=torch.bool) for s in scores]
    value, n_less = kth_smallest_value(scores, k, sample_size=sample_size, seed=seed)
    return keep_masks_for_value(scores, value, k - n_less)


def _sparse_nonzero(sel: Tensor) -> Tensor:
    """``torch.nonzero(sel)`` for a 1-D bool tensor with few True entries, about twice as fast on a
    CPU: the bools are scanned eight at a time as int64 words, and only the non-zero words expanded.
    ``sel`` must start at an 8-byte aligned address (a slice from the start of a buffer does)."""
    n = sel.numel()
    whole = n // 8 * 8
    if whole == 0 or sel.storage_offset() % 8:
        return torch.nonzero(sel).squeeze(1)
    words = torch.nonzero(sel[:whole].view(torch.int64)).squeeze(1)
    cand = (words.unsqueeze(1) * 8 + torch.arange(8, device=sel.device)).reshape(-1)
    idx = cand[sel[cand]]
    if whole < n:
        idx = torch.cat([idx, torch.nonzero(sel[whole:]).squeeze(1) + whole])
    return idx


def _scan(
    scores: Sequence[Tensor], k: int, masks: Sequence[Tensor] | None, sample_size: int, seed: int
) -> tuple[list[Tensor], list[Tensor], float]:
    """Every eligible entry with ``s <= hi`` (values as fp32, flat indices in order; per tensor) and
    ``hi``, chosen from a sample so that at least ``k`` entries qualify; ``hi = inf`` gathers every
    eligible entry (small inputs, or an unlucky sample). Eligible: ``masks`` True, else ``s > -inf``."""
    sizes = [s.numel() for s in scores]
    total = sum(sizes)
    hi = math.inf
    if total > 4 * sample_size:
        sample = _sample(scores, total, sample_size, seed)
        finite = sample[sample > -math.inf]
        if finite.numel():
            alive = total * finite.numel() / sample.numel()
            quantile = min(1.0, k / alive)
            values, _ = torch.sort(finite)
            ns = values.numel()
            spread = _spread(ns, quantile)
            rank = math.ceil(quantile * ns + spread)
            hi = float(values[rank]) if rank < ns else math.inf
    buf = torch.empty(max(sizes), dtype=torch.bool, device=scores[0].device)
    while True:
        vals, idxs = [], []
        for t, s in enumerate(scores):
            flat = s.reshape(-1)
            sel = buf[: flat.numel()]
            if hi == math.inf:
                torch.gt(flat, -math.inf, out=sel)
            else:
                torch.le(flat, hi, out=sel)
                if masks is not None:
                    sel.logical_and_(masks[t].reshape(-1))
                else:
                    sel.logical_and_(flat > -math.inf)
            idx = _sparse_nonzero(sel)
            vals.append(flat[idx].float())
            idxs.append(idx)
        found = sum(i.numel() for i in idxs)
        if found >= k or hi == math.inf:
            return vals, idxs, hi
        hi = math.inf  # the sample was unlucky; take every finite entry


def _pick(vals: Sequence[Tensor], idxs: Sequence[Tensor], k: int) -> tuple[list[Tensor], Tensor, float]:
    """The ``k`` smallest of the candidates in the order (value, global index), as flat indices per
    tensor; also the bool mask of the chosen among the concatenated candidates, and the k-th value.

    Candidates are in global index order (tensor, then flat index), so "every value below the k-th,
    then the first ties in that order" is the stable sort's choice, in linear time."""
    v = torch.cat(list(vals))
    if v.numel() < k:
        raise ValueError(f"cannot prune {k} more entries: only {v.numel()} have a finite score")
    value = v.kthvalue(k).values
    chosen = v < value
    ties = torch.nonzero(v == value).squeeze(1)[: k - int(torch.count_nonzero(chosen))]
    chosen[ties] = True
    parts = torch.split(chosen, [int(i.numel()) for i in idxs])
    return [i[c] for i, c in zip(idxs, parts)], chosen, float(value)


def smallest_k_finite(
    scores: Sequence[Tensor],
    k: int,
    *,
    masks: Sequence[Tensor] | None = None,
    sample_size: int = SAMPLE_SIZE,
    seed: int = 0,
) -> list[Tensor]:
    """Flat indices (int64, one tensor per score tensor) of the ``k`` smallest entries whose score is
    above ``-inf``, in the order (score, global index). If ``masks`` (bool, True = eligible) are
    given, they replace the ``> -inf`` test (reading a 1-byte mask is cheaper than a second compare);
    the caller guarantees that eligible entries are exactly those above ``-inf``.

    This is the incremental form of :func:`smallest_k_keep_masks` used inside a pruning window: the
    entries already pruned hold ``-inf`` and only the few new ones are wanted, so only candidates
    ``-inf < s <= hi`` are gathered (``hi`` read off a sample) and nothing full-size is written.

    >>> a, b = torch.tensor([3.0, -math.inf, 2.0]), torch.tensor([[1.0, 2.0]])
    >>> [i.tolist() for i in smallest_k_finite([a, b], 2)]
    [[2], [0]]
    """
    if k <= 0:
        return [torch.empty(0, dtype=torch.long, device=s.device) for s in scores]
    vals, idxs, _ = _scan(scores, k, masks, sample_size, seed)
    return _pick(vals, idxs, k)[0]


class CandidateSet:
    """:func:`smallest_k_finite` for a sequence of selections over scores that **never decrease**
    (SEVEN's accumulated sums, fixed random scores), touching only the entries near the threshold.

    A full scan gathers every eligible entry with ``s <= bound`` (the candidates), for more entries
    than this selection needs (``cover``: what the next few selections will prune). Later selections
    read only the candidates' scores. They stay exact: an entry outside the set had ``s > bound`` at
    the scan and its score has not decreased since, so whenever the k-th smallest candidate is
    ``<= bound``, no outside entry can be among the k smallest (nor tie with the k-th). Otherwise, or
    when fewer than k candidates are left, the set is rebuilt by a new scan. The result is the one
    :func:`smallest_k_finite` returns, entry for entry.

    The caller must :meth:`clear` the set whenever the eligible entries change other than by its own
    selections (masks replaced or loaded) or the scores may have decreased.

    >>> s = [torch.tensor([5.0, 1.0, 4.0, 2.0])]
    >>> cs = CandidateSet()
    >>> cs.smallest_k(s, 1, cover=2)[0].tolist()     # scans; keeps the 2 lowest as candidates
    [1]
    >>> s[0][1] = -math.inf; s[0] += 0.5             # pruned entry pinned, scores grow
    >>> cs.smallest_k(s, 1)[0].tolist()               # from the candidates only
    [3]
    """

    def __init__(self, sample_size: int = SAMPLE_SIZE) -> None:
        self.sample_size = sample_size
        self.idx: list[Tensor] | None = None
        self.bound = math.inf
        self.scans = 0  # full scans made (for benchmarks and tests)

    def clear(self) -> None:
        self.idx = None

    def smallest_k(self, scores: Sequence[Tensor], k: int, *, masks: Sequence[Tensor] | None = None,
                   cover: int = 0, seed: int = 0) -> list[Tensor]:
        """As :func:`smallest_k_finite`; ``cover`` (>= k) sizes the candidate set of a new scan."""
        if k <= 0:
            return [torch.empty(0, dtype=torch.long, device=s.device) for s in scores]
        if self.idx is not None and len(self.idx) == len(scores):
            vals = [s.reshape(-1)[i].float() for s, i in zip(scores, self.idx)]
            if sum(v.numel() for v in vals) >= k:
                picked, chosen, value = _pick(vals, self.idx, k)
                if value <= self.bound:
                    self._drop(chosen)
                    return picked
        vals, idxs, hi = _scan(scores, max(k, cover), masks, self.sample_size, seed)
        self.scans += 1
        picked, chosen, _ = _pick(vals, idxs, k)
        self.idx, self.bound = idxs, hi
        self._drop(chosen)
        return picked

    def _drop(self, chosen: Tensor) -> None:
        """Remove the entries just selected (they are pruned) from the candidates."""
        assert self.idx is not None
        parts = torch.split(~chosen, [int(i.numel()) for i in self.idx])
        self.idx = [i[keep] for i, keep in zip(self.idx, parts)]
