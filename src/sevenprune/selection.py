"""Which entries to prune next: one selector per pattern and scope, built once by the :class:`Pruner`.

The pruner's data flow at a pruning step is targets -> scores -> **selection** -> masks. The schedule
gives a count (:class:`Target`); the method gives one score tensor per prunable weight, pruned entries
at ``-inf``; the selector prunes the lowest-scored kept entries until the count is reached and returns
``{weight name: flat indices newly pruned}``. Masks only ever lose entries. Selectors:

=======================  =================================================================================
:class:`Unstructured`    ``scope="global"``: the k lowest over every weight (exact, ties by global index).
                         Inside a window a few entries a step: incremental (:class:`CandidateSet`);
                         a large jump: full keep-masks (:func:`threshold.smallest_k_keep_masks`).
:class:`PerMatrix`       ``scope="local"``: each matrix its own count, by its own ranking.
:class:`Sharded`         FSDP2 shards (either scope): the same masks without gathering the scores
                         (:func:`distributed.sharded_smallest_k_keep_masks`; only counts cross ranks).
:class:`NM`              ``pattern="n:m"``: the count among each group's ``m - n`` lowest.
:class:`Groups`          ``pattern="heads"|"neurons"|"heads+neurons"``: whole heads and FFN neurons.
=======================  =================================================================================

Selectors hold only what is fixed at construction (names, sizes, the pattern's geometry); the scores,
masks and counts are passed to :meth:`Selector.select` explicitly, and the masks (``{name: bool
tensor}``, True = kept) and per-weight pruned counts are updated in place.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from . import patterns, schedules, threshold
from .threshold import CandidateSet

__all__ = ["Target", "target_for", "Selector", "Unstructured", "PerMatrix", "Sharded", "NM", "Groups", "build_selector",
           "replace_masks"]


@dataclass(frozen=True)
class Target:
    """What the schedule asks for at one selection.

    ``k``: entries pruned in total once selected (over all ranks when sharded); ``already``: pruned
    now; ``counts``: per weight (``scope="local"``), each weight's own total; ``fraction``: the
    scheduled fraction (groups of a structured pattern); ``ahead``: the total a few selections later
    (per weight when local; empty if unknown): how far a candidate scan should look; ``seed``: for the
    threshold's samples (the step number, so that every rank draws the same).
    """

    k: int
    already: int
    fraction: float
    counts: Sequence[int] = ()
    ahead: Sequence[int] = ()
    seed: int = 0


def _counts(sparsity: float, sizes: Sequence[int], local: bool) -> list[int]:
    """Entries the schedule prunes: per weight (``local``) or in all (one count)."""
    if local:
        return [schedules.pruned_count(sparsity, n) for n in sizes]
    return [schedules.pruned_count(sparsity, sum(sizes))]


def target_for(sparsity: float, sizes: Sequence[int], local: bool, already: int, ahead: float | None,
               seed: int) -> Target | None:
    """The :class:`Target` of a selection at ``sparsity`` over weights of ``sizes`` (global sizes), or
    ``None`` when ``already`` pruned entries reach it (masks never regrow). ``ahead`` is the scheduled
    sparsity a few selections later (``None``: unknown, the scores are not monotone)."""
    counts = _counts(sparsity, sizes, local)
    if sum(counts) <= already:
        return None
    return Target(k=sum(counts), already=already, fraction=sparsity, counts=counts if local else [],
                  ahead=[] if ahead is None else _counts(ahead, sizes, local), seed=seed)


Masks = MutableMapping[str, Tensor]
Counts = MutableMapping[str, int]


def replace_masks(masks: Masks, pruned: Counts, keep: Sequence[Tensor]) -> dict[str, Tensor]:
    """Install new keep-masks (intersected with the old ones, in the order of ``masks``); return the
    newly pruned flat indices of the weights whose masks changed."""
    newly: dict[str, Tensor] = {}
    for (name, old), new in zip(list(masks.items()), keep):
        new = new.to(old.device) & old  # monotone even if a method forgot to pin pruned scores
        count = new.numel() - int(torch.count_nonzero(new))
        if count != pruned[name]:
            newly[name] = torch.nonzero((old & ~new).view(-1)).squeeze(1)
        masks[name] = new
        pruned[name] = count
    return newly


def _prune_indices(masks: Masks, pruned: Counts, name: str, idx: Tensor, newly: dict[str, Tensor]) -> None:
    if idx.numel():
        masks[name].view(-1)[idx] = False
        pruned[name] += idx.numel()
        newly[name] = idx


class Selector:
    """Chooses the entries to prune at one mask update (see the module docstring)."""

    #: whether the pruner must check afterwards that exactly ``Target.k`` entries are pruned
    exact_count = True
    #: extra masks (e.g. biases of removed heads) set by the last selection, or None if the
    #: selector has none
    extra_masks: dict[str, Tensor] | None = None

    def select(self, scores: Sequence[Tensor], masks: Masks, pruned: Counts, target: Target) -> dict[str, Tensor]:
        raise NotImplementedError

    def forget(self) -> None:
        """The masks changed other than by this selector (replaced, loaded): drop any cached state."""

    @property
    def scans(self) -> int:
        """Full candidate scans made so far (0 for selectors without candidate sets)."""
        return 0


@dataclass
class _Candidates:
    """One candidate set per key (the whole model, or one matrix). For scores that may decrease the set
    is emptied before every use, so each selection is a full scan."""

    monotone: bool
    sets: dict[int, CandidateSet] = field(default_factory=dict)

    def get(self, key: int, sample_size: int = threshold.SAMPLE_SIZE) -> CandidateSet:
        candidates = self.sets.setdefault(key, CandidateSet(sample_size))
        if not self.monotone:
            candidates.clear()  # scores may have decreased: the old bound proves nothing
        return candidates

    def clear(self) -> None:
        for candidates in self.sets.values():
            candidates.clear()

    @property
    def scans(self) -> int:
        return sum(c.scans for c in self.sets.values())


def _capped(cover: int, need: int, numel: int) -> int:
    """A candidate scan gathers at most ``numel / 32`` entries beyond what this selection needs: early in
    a short window the schedule's next few steps prune millions (values and indices: 12 bytes each)."""
    return min(cover, max(need, numel // 32))


class Unstructured(Selector):
    """``scope="global"``: exactly the k lowest scores over every prunable weight."""

    def __init__(self, numel: int, monotone: bool) -> None:
        self.numel = numel
        self._candidates = _Candidates(monotone)

    def select(self, scores: Sequence[Tensor], masks: Masks, pruned: Counts, target: Target) -> dict[str, Tensor]:
        new = target.k - target.already
        if new > max(1 << 16, self.numel // 32):  # a large jump: one pass writing every mask
            self._candidates.clear()
            return replace_masks(masks, pruned, threshold.smallest_k_keep_masks(scores, target.k, seed=target.seed))
        # the usual case inside a long window: few new entries; find them and update sparsely
        cover = _capped(sum(target.ahead) - target.already if target.ahead else 0, new, self.numel)
        picked = self._candidates.get(0).smallest_k(scores, new, masks=list(masks.values()), seed=target.seed,
                                                    cover=cover)
        newly: dict[str, Tensor] = {}
        for name, idx in zip(list(masks), picked):
            _prune_indices(masks, pruned, name, idx, newly)
        return newly

    def forget(self) -> None:
        self._candidates.clear()

    @property
    def scans(self) -> int:
        return self._candidates.scans


class PerMatrix(Unstructured):
    """``scope="local"``: every weight reaches its own count (``Target.counts``) by its own ranking."""

    def select(self, scores: Sequence[Tensor], masks: Masks, pruned: Counts, target: Target) -> dict[str, Tensor]:
        newly: dict[str, Tensor] = {}
        for i, ((name, mask), score, count) in enumerate(zip(list(masks.items()), scores, target.counts)):
            need = count - pruned[name]
            if need <= 0:
                continue
            cover = _capped(target.ahead[i] - pruned[name] if target.ahead else 0, need, mask.numel())
            candidates = self._candidates.get(i, threshold.matrix_sample_size(mask.numel()))
            idx = candidates.smallest_k([score], need, masks=[mask], seed=target.seed, cover=cover)[0]
            _prune_indices(masks, pruned, name, idx, newly)
        return newly


class Sharded(Selector):
    """FSDP2 shards: each rank selects on its local shards; only counts and a sample cross ranks.

    ``sizes``: the global numel of each weight; ``offsets``: where each local shard starts in the
    global order (the flattened concatenation of the weights).
    """

    def __init__(self, sizes: Sequence[int], offsets: Sequence[int], local: bool) -> None:
        self.sizes, self.offsets, self.local = list(sizes), list(offsets), local

    def select(self, scores: Sequence[Tensor], masks: Masks, pruned: Counts, target: Target) -> dict[str, Tensor]:
        from .distributed import sharded_smallest_k_keep_masks

        if self.local:  # one exact selection per matrix, in that matrix's own global order
            bases = itertools.accumulate(self.sizes, initial=0)
            keep = [sharded_smallest_k_keep_masks([s], c, global_offsets=[off - base], total=size, seed=target.seed,
                                                  sample_size=threshold.matrix_sample_size(size))[0]
                    for s, c, off, base, size in zip(scores, target.counts, self.offsets, bases, self.sizes)]
        else:
            keep = sharded_smallest_k_keep_masks(scores, target.k, global_offsets=self.offsets,
                                                 total=sum(self.sizes), seed=target.seed)
        return replace_masks(masks, pruned, keep)


class NM(Selector):
    """``pattern="n:m"``: the schedule's count, pruned only among each group's ``m - n`` lowest."""

    def __init__(self, n: int, m: int, kinds: Sequence[str], numel: int, local: bool) -> None:
        self.n, self.m, self.kinds, self.numel, self.local = n, m, list(kinds), numel, local

    def select(self, scores: Sequence[Tensor], masks: Masks, pruned: Counts, target: Target) -> dict[str, Tensor]:
        keep = patterns.nm_keep_masks(scores, masks, self.kinds, target.k, self.n, self.m, numel=self.numel,
                                      per_matrix=target.counts if self.local else None, seed=target.seed)
        return replace_masks(masks, pruned, keep)


class Groups(Selector):
    """``pattern="heads"|"neurons"|"heads+neurons"``: whole groups, with their biases as extra masks.

    The count of prunable *weights* is not what the schedule controls here (weights outside every
    group are never pruned), so the pruner does not check it.
    """

    exact_count = False

    def __init__(self, model: nn.Module, kinds: Sequence[str], numel: int, local: bool, pattern: str) -> None:
        self.blocks = patterns.require_blocks(model, f"pattern {pattern!r}")
        self.kinds, self.numel, self.local = tuple(kinds), numel, local
        self._model = model
        self.extra_masks = {}

    def select(self, scores: Sequence[Tensor], masks: Masks, pruned: Counts, target: Target) -> dict[str, Tensor]:
        params = dict(self._model.named_parameters())
        keep, self.extra_masks = patterns.group_keep_masks(
            self.blocks, scores, masks, params, self.kinds, target.k / self.numel,
            target.fraction if self.local else None)
        return replace_masks(masks, pruned, keep)


def build_selector(
    pattern: str, scope: str, *, model: nn.Module, params: Mapping[str, Tensor], sizes: Sequence[int],
    monotone: bool, sparsity: float, offsets: Sequence[int] | None = None,
) -> Selector:
    """The selector for ``pattern`` and ``scope``; checks that the pattern fits the prunable weights.

    ``params``: the prunable weights (local shards when sharded), ``sizes``: their global numel,
    ``offsets``: the shards' global offsets (FSDP2; None otherwise), ``monotone``: the method's scores
    never decrease (see :attr:`sevenprune.importance.Importance.monotone_scores`).
    """
    local = scope == "local"
    numel = sum(sizes)
    parsed = patterns.validate_pattern(pattern, model, params, sparsity=sparsity)
    if offsets is not None:
        if parsed[0] != "unstructured":
            raise NotImplementedError(f"pattern {pattern!r} is not supported with sharded weights")
        return Sharded(sizes, offsets, local)
    if parsed[0] == "nm":
        return NM(parsed[1], parsed[2], patterns.weight_kinds(model, params), numel, local)
    if parsed[0] == "structured":
        return Groups(model, parsed[1], numel, local, pattern)
    return PerMatrix(numel, monotone) if local else Unstructured(numel, monotone)
