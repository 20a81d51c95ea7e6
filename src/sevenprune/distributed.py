"""Distributed helpers: the DDP mask check and an exact global threshold over sharded scores.

**DDP** (``torch.nn.parallel.DistributedDataParallel``, Accelerate, the HF Trainer): every rank holds
every weight and, after ``backward()``, the same all-reduced gradient, so every rank computes the same
scores and the same masks. :func:`check_masks_consistent` verifies that after each mask update (the
:class:`~sevenprune.Pruner` calls it whenever ``torch.distributed`` is initialised): each rank reduces
its masks to two int64 per weight (kept count, positional hash, computed on the masks' device), the
ranks compare them with one ``all_reduce(MIN)``, and a :class:`MaskMismatchError` names the first
weight that differs.

**The pruner's side**: :class:`PrunableWeights` is the collaborator through which the
:class:`~sevenprune.Pruner` sees its weights: the model's parameters, or under FSDP2 views of each
rank's local shard; it sums counts over ranks and runs the DDP mask check.

**Sharded parameters** (FSDP, FSDP2 ``fully_shard``, ZeRO-3): each rank holds scores only for its
shard. :func:`sharded_smallest_k_keep_masks` finds the same masks as the single-process
:func:`sevenprune.threshold.smallest_k_keep_masks` on the concatenated scores, without gathering
them: a sample gives a narrow value band, ``all_reduce`` of counts checks it and narrows it further,
and only the few values left in the band (at most ``gather_limit``) are all-gathered. Ties are broken
by global index exactly as in the single-process threshold.

Both work without an initialised process group (as a single process), which is how the examples
below run.

>>> import torch
>>> masks = {"a": torch.tensor([True, False, True]), "b": torch.ones(2, 2, dtype=torch.bool)}
>>> check_masks_consistent(masks)  # no process group: nothing to compare
>>> mask_checksums(masks)[:, 0].tolist()  # kept entries per weight
[2, 4]
"""

from __future__ import annotations

import math
import numbers
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch import distributed as dist

from .threshold import SAMPLE_SIZE, kth_smallest

__all__ = [
    "MaskMismatchError",
    "PrunableWeights",
    "check_masks_consistent",
    "dtensor_shard_offsets",
    "mask_checksums",
    "sharded_smallest_k_keep_masks",
]

_P = (1 << 31) - 1  # a prime; every hash term stays below 2**31, so int64 sums cannot overflow
_MULT = 1_103_515_245 % _P
_GATHER_LIMIT = 1 << 20


class MaskMismatchError(RuntimeError):
    """The ranks of a distributed run hold different masks for the same weight."""


# -- process-group plumbing ---------------------------------------------------------------------------
def _world(group: object | None) -> tuple[int, int]:
    """(world size, rank); (1, 0) when no process group is initialised."""
    if not (dist.is_available() and dist.is_initialized()):
        return 1, 0
    return dist.get_world_size(group), dist.get_rank(group)  # type: ignore[arg-type]


def _comm_device(group: object | None) -> torch.device:
    """The device a collective of this group needs its tensors on (NCCL: the current GPU)."""
    backend = str(dist.get_backend(group))  # type: ignore[arg-type]
    if backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    if backend == "xccl":
        return torch.device("xpu", torch.xpu.current_device())
    return torch.device("cpu")  # gloo, mpi, and mixed "cpu:gloo,cuda:nccl" groups take CPU tensors


def _all_reduce(t: Tensor, op: dist.ReduceOp.RedOpType, group: object | None) -> Tensor:
    """``all_reduce`` on the group's device; returns the result on ``t``'s device."""
    if _world(group)[0] == 1:
        return t
    buf = t.to(_comm_device(group)).contiguous()
    dist.all_reduce(buf, op=op, group=group)
    return buf.to(t.device)


def _all_gather_rows(rows: Tensor, group: object | None) -> list[Tensor]:
    """Every rank's ``rows`` (first dimensions may differ between ranks), in rank order, on CPU."""
    world, _ = _world(group)
    if world == 1:
        return [rows.cpu()]
    device = _comm_device(group)
    n = torch.tensor([rows.shape[0]], dtype=torch.int64, device=device)
    sizes = [torch.empty_like(n) for _ in range(world)]
    dist.all_gather(sizes, n, group=group)
    counts = [int(s) for s in sizes]
    longest = max(counts)
    padded = torch.zeros((longest, *rows.shape[1:]), dtype=rows.dtype, device=device)
    padded[: rows.shape[0]] = rows.to(device)
    out = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(out, padded, group=group)
    return [o[:c].cpu() for o, c in zip(out, counts)]


# -- DDP: identical masks on every rank ---------------------------------------------------------------
def _mask_hash(mask: Tensor) -> Tensor:
    """A positional hash of a bool mask: int64 arithmetic modulo a prime, on the mask's device.

    The mask's bytes are read 8 entries at a time as int64 words (no full-size int64 copy), each word
    is reduced mod P and weighted by a pseudo-random function of its position, and the terms are
    summed; every value stays below 2**62, so nothing overflows.
    """
    flat = mask.reshape(-1).view(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad or flat.storage_offset() % 8:
        flat = torch.cat([flat, flat.new_zeros(pad)])
    words = flat.view(torch.int64)
    pos = torch.arange(1, words.numel() + 1, dtype=torch.int64, device=words.device)
    weight = pos.remainder_(_P).mul_(_MULT).remainder_(_P).add_(1)
    return words.remainder(_P).mul_(weight).remainder_(_P).sum()


def mask_checksums(masks: Mapping[str, Tensor]) -> Tensor:
    """``(len(masks), 2)`` int64 on the CPU: per mask, the number of kept entries and a positional hash.

    >>> a = torch.tensor([True, False, True, False])
    >>> b = torch.tensor([False, True, True, False])  # same count, other positions
    >>> sa, sb = mask_checksums({"w": a}), mask_checksums({"w": b})
    >>> int(sa[0, 0]) == int(sb[0, 0]), int(sa[0, 1]) == int(sb[0, 1])
    (True, False)
    """
    rows = []
    for name, mask in masks.items():
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            raise TypeError(f"mask {name!r} must be a bool tensor, got "
                            f"{getattr(mask, 'dtype', type(mask).__name__)}")
        rows.append(torch.stack([torch.count_nonzero(mask).to(torch.int64), _mask_hash(mask)]))
    if not rows:
        return torch.zeros((0, 2), dtype=torch.int64)
    if len({r.device for r in rows}) == 1:
        return torch.stack(rows).cpu()  # one device-to-host copy (one sync on a GPU)
    return torch.stack([r.cpu() for r in rows])


def _layout_crc(masks: Mapping[str, Tensor]) -> int:
    text = "\n".join(f"{n}:{tuple(m.shape)}" for n, m in masks.items())
    return zlib.crc32(text.encode())  # not hash(): str hashes are salted per process


def check_masks_consistent(masks: Mapping[str, Tensor], *, group: object | None = None) -> None:
    """Raise :class:`MaskMismatchError` if the ranks of ``group`` hold different masks.

    A no-op without an initialised process group or with a single rank. Cost: one hashing pass over
    the masks (about one byte read per entry) and two small ``all_reduce`` calls; an ``all_gather``
    only when the masks differ, to name the ranks in the message. Every rank raises together.
    """
    world, _ = _world(group)
    if world == 1:
        return
    names = list(masks)
    total = sum(m.numel() for m in masks.values())
    header = torch.tensor([len(names), total, _layout_crc(masks)], dtype=torch.int64)
    both = _all_reduce(torch.cat([header, -header]), dist.ReduceOp.MIN, group)
    if not torch.equal(both[:3], -both[3:]):
        layouts = _all_gather_rows(header.unsqueeze(0), group)
        raise MaskMismatchError(
            "the ranks prune different sets of weights (count, total entries, layout checksum per rank: "
            f"{[r[0].tolist() for r in layouts]}); build the Pruner on the same unwrapped model on every rank"
        )
    sums = mask_checksums(masks).reshape(-1)
    both = _all_reduce(torch.cat([sums, -sums]), dist.ReduceOp.MIN, group)
    low, high = both[: sums.numel()], -both[sums.numel():]
    differ = torch.nonzero(low != high).reshape(-1)
    if differ.numel() == 0:
        return
    i = int(differ[0]) // 2
    per_rank = _all_gather_rows(sums.reshape(-1, 2)[i : i + 1], group)
    kept = ", ".join(f"rank {r}: {int(row[0, 0])} kept (hash {int(row[0, 1])})"
                     for r, row in enumerate(per_rank))
    n_differ = len({int(j) // 2 for j in differ})
    raise MaskMismatchError(
        f"masks differ between ranks for weight {names[i]!r} ({kept}); {n_differ} of {len(names)} "
        "weights differ. Every rank must see the same gradients when pruner.step() runs: call it after "
        "the gradients are all-reduced (DDP: after backward() of a synchronised step, not inside "
        "no_sync()), and build the pruner on the unwrapped model with the same include/exclude."
    )


# -- sharded parameters: the exact global threshold without gathering the scores -----------------------
def _check_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


class _GroupReduction:
    """Counts all-reduced and band values all-gathered over the ranks of ``group``
    (:class:`sevenprune.threshold.CountReduction`)."""

    def __init__(self, group: object | None) -> None:
        self.group = group
        self.rank = _world(group)[1]

    def sum(self, counts: list[int]) -> list[int]:
        return [int(c) for c in _all_reduce(torch.tensor(counts, dtype=torch.int64), dist.ReduceOp.SUM,
                                            self.group).tolist()]

    def gather(self, values: Tensor) -> Tensor:
        return torch.cat(_all_gather_rows(values, self.group))


def sharded_smallest_k_keep_masks(
    local_scores: Sequence[Tensor],
    k: int,
    *,
    global_offsets: Sequence[int],
    total: int | None = None,
    group: object | None = None,
    sample_size: int = SAMPLE_SIZE,
    gather_limit: int = _GATHER_LIMIT,
    seed: int = 0,
) -> list[Tensor]:
    """Keep-masks pruning exactly the ``k`` globally smallest scores, each rank holding some of them.

    The global order is a flat vector of ``total`` scores (for a model: the concatenation of the
    flattened prunable weights, as in :func:`sevenprune.threshold.smallest_k_keep_masks`). Each rank
    passes the pieces it holds: ``local_scores[i]`` (any shape, read in row-major order) is the
    contiguous slice starting at ``global_offsets[i]``. Over all ranks the pieces must tile
    ``[0, total)`` exactly once. Returns one bool mask per local piece (True = kept), equal to the
    corresponding slice of the single-process result: the k smallest in the order (score, global
    index), so among equal scores the lowest global index is pruned first.

    Every rank of ``group`` must call it with the same ``k``, ``sample_size``, ``gather_limit`` and
    ``seed``. Only counts, a sample of ``sample_size`` values, and at most ``gather_limit`` values
    near the threshold cross ranks. Scores must not be NaN (``ValueError`` where one is met).
    Without a process group it runs as a single process:

    >>> import torch
    >>> a, b = torch.tensor([3.0, 1.0, 2.0]), torch.tensor([1.0, 5.0])
    >>> masks = sharded_smallest_k_keep_masks([b, a], 3, global_offsets=[3, 0])
    >>> [m.tolist() for m in masks]   # ties at 1.0: a[1] (index 1) and b[0] (index 3) both pruned
    [[False, True], [True, False, False]]
    """
    world, _ = _world(group)
    k = _check_int(k, "k")
    for name, option in (("sample_size", sample_size), ("gather_limit", gather_limit)):
        if _check_int(option, name) < 1:
            raise ValueError(f"{name} must be >= 1, got {option}")
    if len(global_offsets) != len(local_scores):
        raise ValueError(f"global_offsets has {len(global_offsets)} entries for {len(local_scores)} "
                         "local score tensors; give one offset per tensor")
    offsets = [_check_int(o, "global offset") for o in global_offsets]
    dtypes = {s.dtype for s in local_scores}
    if any(not d.is_floating_point for d in dtypes) or len(dtypes) > 1:
        raise TypeError(f"local_scores must share one floating dtype, got {sorted(map(str, dtypes))}")
    flat = [s.reshape(-1) for s in local_scores]
    # every rank learns every piece's (offset, numel, dtype): checks the tiling and sizes the ties
    dtype_code = zlib.crc32(str(next(iter(dtypes), "none")).encode()) if dtypes else -1
    rows = torch.tensor([[o, f.numel(), dtype_code] for o, f in zip(offsets, flat)],
                        dtype=torch.int64).reshape(-1, 3)
    layout = torch.cat(_all_gather_rows(rows, group))
    codes = {int(c) for c in layout[:, 2] if int(c) != -1}
    if len(codes) > 1:
        raise TypeError("the ranks' local_scores have different dtypes; convert them to one dtype")
    order = torch.argsort(layout[:, 0], stable=True)
    starts, sizes = layout[order, 0].tolist(), layout[order, 1].tolist()
    position = 0
    for start, size in zip(starts, sizes):
        if start != position:
            raise ValueError(
                f"the pieces of all ranks must tile the global order exactly once: expected a piece "
                f"starting at {position}, found one at {start} (global_offsets {offsets} on this rank)")
        position += size
    if total is not None and _check_int(total, "total") != position:
        raise ValueError(f"total is {total} but the pieces of all {world} ranks hold {position} scores")
    total = position
    if not 0 <= k <= total:
        raise ValueError(f"cannot prune {k} of {total} entries; k must be in [0, {total}]")
    if k == 0:
        return [torch.ones_like(s, dtype=torch.bool) for s in local_scores]
    if k == total:
        return [torch.zeros_like(s, dtype=torch.bool) for s in local_scores]
    value, n_less = kth_smallest(flat, k, reduction=_GroupReduction(group), sample_size=sample_size,
                                 sample_above=gather_limit, gather_limit=gather_limit, seed=seed)
    quota = k - n_less  # how many entries equal to `value` are pruned, lowest global index first
    eq = [f == value for f in flat]
    eq_rows = torch.tensor([[o, int(torch.count_nonzero(e))] for o, e in zip(offsets, eq)],
                           dtype=torch.int64).reshape(-1, 2)
    all_eq = torch.cat(_all_gather_rows(eq_rows, group))
    masks = []
    for s, f, e, offset in zip(local_scores, flat, eq, offsets):
        before = int(all_eq[all_eq[:, 0] < offset, 1].sum())
        mine = min(max(quota - before, 0), int(torch.count_nonzero(e)))
        keep = f > value
        late = torch.nonzero(e).reshape(-1)[mine:]  # ties after this piece's share stay kept
        keep[late] = True
        masks.append(keep.reshape(s.shape))
    return masks


# -- FSDP2: where each rank's shard sits in the global order ------------------------------------------
def dtensor_shard_offsets(params: Sequence[Tensor]) -> tuple[list[Tensor], list[int]]:
    """Local shards and their global flat offsets for weights sharded on dim 0 (FSDP2 ``fully_shard``).

    ``params`` are in the global order (e.g. the pruner's weights); the global order of scores is
    their flattened concatenation. Each ``DTensor`` with a single ``Shard(0)`` placement contributes
    its local rows (``torch.chunk`` layout, as FSDP2 shards); plain tensors are taken as replicated
    and contributed by rank 0 only. Returns ``(local tensors, offsets)`` for
    :func:`sharded_smallest_k_keep_masks`.

    >>> w = [torch.zeros(2, 3), torch.zeros(4)]
    >>> [t.shape for t in dtensor_shard_offsets(w)[0]], dtensor_shard_offsets(w)[1]
    ([torch.Size([2, 3]), torch.Size([4])], [0, 6])
    """
    from torch.distributed.tensor import DTensor, Shard

    local: list[Tensor] = []
    offsets: list[int] = []
    base = 0
    for i, p in enumerate(params):
        if isinstance(p, DTensor):
            placements = p.placements
            if len(placements) != 1 or placements[0] != Shard(0):
                raise ValueError(f"weight {i} is a DTensor placed as {placements}; only a single "
                                 "Shard(0) placement (FSDP2 fully_shard on a 1-D mesh) is supported")
            mesh = p.device_mesh
            rank, world = mesh.get_local_rank(), mesh.size()
            rows = p.shape[0]
            chunk = math.ceil(rows / world) if rows else 0
            start = min(rank * chunk, rows)
            shard = p.to_local()
            n_local = min(chunk, rows - start)
            if shard.shape[0] != n_local:
                raise ValueError(f"weight {i}: local shard has {shard.shape[0]} rows, expected {n_local} "
                                 "for torch.chunk sharding")
            row_numel = math.prod(p.shape[1:])
            local.append(shard)
            offsets.append(base + start * row_numel)
        elif _world(None)[1] == 0:
            local.append(p)
            offsets.append(base)
        base += p.numel()
    return local, offsets


# -- the pruner's view of its weights ------------------------------------------------------------------
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


class PrunableWeights:
    """The prunable weights as the :class:`~sevenprune.Pruner` works on them.

    ``owners`` are the model's parameters (the optimizer's keys). Under FSDP2 (``fully_shard``: DTensor
    weights sharded on dim 0) the pruner works on each rank's local shard: ``params`` are views of the
    shards, the scores and masks are local, and only counts cross ranks (:meth:`total`); ``offsets``
    place each shard in the global order. Otherwise ``params`` are the owners and every count is local.
    """

    def __init__(self, owners: dict[str, nn.Parameter]) -> None:
        self.owners = owners
        self.sharded = _is_sharded(list(owners.values()))
        self.offsets: list[int] | None = None
        self.params: dict[str, Tensor]
        if self.sharded:
            local, self.offsets = dtensor_shard_offsets(list(owners.values()))
            self.params = {n: t.detach() for n, t in zip(owners, local)}
        else:
            self.params = dict(owners)
        self.numel = sum(p.numel() for p in owners.values())  # global count

    def refresh(self) -> bool:
        """FSDP2 may re-point a shard's storage (lazy init): take fresh views of the shards and their
        gradients into ``params`` (in place). Returns whether anything was refreshed."""
        if not self.sharded:
            return False
        for name, owner in self.owners.items():
            sharded: Any = owner  # a DTensor
            view = sharded.to_local().detach()
            grad: Any = owner.grad
            view.grad = None if grad is None else grad.to_local()
            self.params[name] = view
        return True

    def total(self, values: list[int]) -> list[int]:
        """Sum integer counts over ranks when the weights are sharded (identity otherwise)."""
        if not self.sharded:
            return values
        t = torch.tensor(values, dtype=torch.int64, device=next(iter(self.params.values())).device)
        dist.all_reduce(t)
        return [int(x) for x in t.tolist()]

    def all_finite(self, local_finite: bool) -> bool:
        """Whether every rank's gradients are finite (every rank must take the same decision)."""
        return self.total([int(not local_finite)])[0] == 0 if self.sharded else local_finite

    def local(self, value: Any) -> Any:
        """The rank's shard of a sharded optimizer-state tensor (the value itself otherwise)."""
        return value.to_local() if self.sharded and hasattr(value, "to_local") else value

    def masks_changed(self, masks: Mapping[str, Tensor]) -> None:
        """Under torch.distributed, check that every rank computed the same masks: sharded masks differ
        between ranks by design; replicated (DDP) ones must not."""
        if not self.sharded and dist.is_available() and dist.is_initialized():
            check_masks_consistent(masks)
