"""The sharded global threshold equals the single-process one on the same scores, ties included:
in one process over arbitrary pieces, and across 2 gloo processes (plain pieces and FSDP2 shards)."""

from __future__ import annotations

import random

import pytest
import torch
from _ddp_worker import scenario

from sevenprune.distributed import sharded_smallest_k_keep_masks
from sevenprune.threshold import smallest_k_keep_masks






def test_hand_computed_ties_by_global_index() -> None:
    # global order: [2, 1, 1 | 1, 0]; k = 3 prunes the 0 and the first two 1s (indices 1 and 2)
    a, b = torch.tensor([2.0, 1.0, 1.0]), torch.tensor([1.0, 0.0])
    mb, ma = sharded_smallest_k_keep_masks([b, a], 3, global_offsets=[3, 0])
    assert ma.tolist() == [True, False, False] and mb.tolist() == [True, False]
    # k = 2: only the 1 at index 1 goes with the 0
    ma, mb = sharded_smallest_k_keep_masks([a, b], 2, global_offsets=[0, 3])
    assert ma.tolist() == [True, False, True] and mb.tolist() == [True, False]


@pytest.mark.parametrize("kind", ["normal", "ties", "pinned"])
def test_single_process_pieces_match_the_threshold(kind: str) -> None:
    rng = random.Random(kind)
    for trial in range(40):
        n = rng.randint(1, 200)
        g = torch.Generator().manual_seed(trial)
        v = torch.randn(n, generator=g) if kind != "ties" else torch.randint(0, 4, (n,), generator=g).float()
        if kind == "pinned":
            v[torch.rand(n, generator=g) < 0.3] = float("-inf")
        k = rng.randint(0, n)
        reference = smallest_k_keep_masks([v], k)[0]
        cuts = sorted(rng.sample(range(1, n), min(n - 1, rng.randint(0, 5)))) if n > 1 else []
        bounds = [0, *cuts, n]
        pieces = [(a, v[a:b]) for a, b in zip(bounds, bounds[1:])]
        rng.shuffle(pieces)
        masks = sharded_smallest_k_keep_masks(
            [p for _, p in pieces], k, global_offsets=[o for o, _ in pieces],
            gather_limit=rng.choice([1, 8, 1 << 20]), sample_size=rng.choice([2, 16, 64]), seed=trial)
        got = torch.empty(n, dtype=torch.bool)
        for (offset, piece), mask in zip(pieces, masks):
            got[offset:offset + piece.numel()] = mask
        assert torch.equal(got, reference), (kind, trial, n, k)
        assert int((~got).sum()) == k


def test_bad_arguments() -> None:
    a = torch.arange(4.0)
    with pytest.raises(ValueError, match="one offset per tensor"):
        sharded_smallest_k_keep_masks([a], 1, global_offsets=[0, 4])
    with pytest.raises(ValueError, match="tile the global order exactly once"):
        sharded_smallest_k_keep_masks([a], 1, global_offsets=[1])
    with pytest.raises(ValueError, match=r"cannot prune 5 of 4 entries"):
        sharded_smallest_k_keep_masks([a], 5, global_offsets=[0])
    with pytest.raises(TypeError, match="one floating dtype"):
        sharded_smallest_k_keep_masks([a, torch.arange(2)], 1, global_offsets=[0, 4])
    with pytest.raises(ValueError, match="NaN"):
        sharded_smallest_k_keep_masks([torch.tensor([1.0, float("nan"), 0.0])], 2, global_offsets=[0])


def test_two_gloo_processes_match_the_single_process_threshold() -> None:
    r0, r1 = scenario("threshold")
    assert r0["checked"] == r1["checked"] and len(r0["checked"]) == 57
    assert any("ties/k=43" in c for c in r0["checked"]) and any("narrowing" in c for c in r0["checked"])
    assert r0["wrong"] == [] and r1["wrong"] == []


def test_two_gloo_processes_refuse_bad_layouts_together() -> None:
    for r in scenario("threshold_errors"):  # every rank raises (none is left waiting in a collective)
        assert r["total"]["error"] == "ValueError" and "total is 11" in r["total"]["message"]
        assert r["overlap"]["error"] == "ValueError" and "exactly once" in r["overlap"]["message"]
        assert r["k"]["error"] == "ValueError" and "cannot prune 11 of 10" in r["k"]["message"]


def test_fsdp2_shards_on_cpu_prune_like_a_single_process() -> None:
    r0, r1 = scenario("fsdp2")
    if not r0["supported"]:
        pytest.skip(f"FSDP2 fully_shard does not run on this CPU build: {r0['why']}")
    # weights of 9, 7 and 3 rows: torch.chunk gives rank 0 the larger half
    assert r0["local_rows"] == [5, 4, 2] and r1["local_rows"] == [4, 3, 1]
    assert r0["offsets"] == [0, 108, 171] and r1["offsets"] == [60, 144, 185]
    for r in (r0, r1):
        assert r["local_match"]
        assert r["zeros"] == r["k"] == round(0.6 * (108 + 63 + 21))


def test_pruner_on_fsdp2_shards_matches_an_unsharded_run() -> None:
    r0, r1 = scenario("fsdp2_pruner")
    if not r0["supported"]:
        pytest.skip(f"FSDP2 fully_shard does not run on this CPU build: {r0['why']}")
    total = 12 * 9 + 9 * 7 + 7 * 3
    assert r0["local_rows"] == [5, 4, 2] and r1["local_rows"] == [4, 3, 1]  # each rank holds a shard
    for r in (r0, r1):
        assert r["numel"] == total  # counts are global
        assert r["sparsity"] == r["reference_sparsity"] == round(0.7 * total) / total
        assert r["report_pruned"] == round(0.7 * total)
        assert r["masks_match"], "a rank's shard masks differ from the single-process masks"
        assert r["weights_match"], "weights differ from the unsharded run fed the same data"
        assert r["zeros"] == round(0.7 * total)


def test_pruner_on_fsdp2_shards_with_local_scope_matches_an_unsharded_run() -> None:
    r0, r1 = scenario("fsdp2_pruner_local")
    if not r0["supported"]:
        pytest.skip(f"FSDP2 fully_shard does not run on this CPU build: {r0['why']}")
    sizes = [12 * 9, 9 * 7, 7 * 3]
    for r in (r0, r1):
        assert r["pruned_per_matrix"] == [round(0.7 * n) for n in sizes]  # each matrix its own count
        assert r["masks_match"], "a rank's shard masks differ from the single-process masks"
        assert r["weights_match"], "weights differ from the unsharded run fed the same data"


def test_optimizer_moments_on_fsdp2_shards_match_an_unsharded_run() -> None:
    r0, r1 = scenario("fsdp2_optimizer_moments")  # each rank reads its shard of AdamW's DTensor moments
    if not r0["supported"]:
        pytest.skip(f"FSDP2 fully_shard does not run on this CPU build: {r0['why']}")
    total = 12 * 9 + 9 * 7 + 7 * 3
    for r in (r0, r1):
        assert r["sparsity"] == r["reference_sparsity"] == round(0.7 * total) / total
        assert r["masks_match"], "a rank's shard masks differ from the single-process masks"
        assert r["weights_match"], "weights differ from the unsharded run fed the same data"
