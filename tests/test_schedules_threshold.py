"""The cubic schedule and the exact global threshold (checked against a brute-force sort)."""

from __future__ import annotations

import math
import random

import pytest
import torch

from sevenprune import schedules
from sevenprune.threshold import smallest_k_finite, smallest_k_keep_masks


def brute_force_keep(scores: list[torch.Tensor], k: int) -> list[torch.Tensor]:
    flat = torch.cat([s.reshape(-1) for s in scores])
    order = sorted(range(flat.numel()), key=lambda i: (flat[i].item(), i))[:k]
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[order] = False
    out, offset = [], 0
    for s in scores:
        out.append(keep[offset:offset + s.numel()].view(s.shape))
        offset += s.numel()
    return out


def test_cubic_schedule_values() -> None:
    # s * (1 - (1 - t/K)^3) with s = 0.8, K = 4: t=1 -> 0.8 * (1 - 27/64) = 0.4625
    assert schedules.cubic_sparsity(0, 0.8, 0, 4) == 0.0
    assert schedules.cubic_sparsity(1, 0.8, 0, 4) == pytest.approx(0.4625)
    assert schedules.cubic_sparsity(4, 0.8, 0, 4) == 0.8  # exactly the target at the end
    assert schedules.cubic_sparsity(100, 0.8, 0, 4) == 0.8
    assert schedules.cubic_sparsity(10, 0.5, 10, 5) == 0.0  # nothing before or at t_i
    assert [schedules.in_window(n, 2, 3) for n in range(1, 7)] == [False, False, True, True, True, False]
    assert schedules.pruned_count(0.5, 7) == 4 and schedules.pruned_count(0.25, 10) == 2  # round()


def test_exponential_keep_matches_force_schedule() -> None:
    assert schedules.exponential_keep(0, 3, 0.1) == 1.0
    assert schedules.exponential_keep(3, 3, 0.1) == pytest.approx(0.1)
    assert schedules.exponential_keep(1, 2, 0.01) == pytest.approx(0.1)


@pytest.mark.parametrize("trial", range(60))
def test_threshold_matches_brute_force_with_ties(trial: int) -> None:
    rng = random.Random(trial)
    torch.manual_seed(trial)
    shapes = [(rng.randint(1, 6), rng.randint(1, 9)) for _ in range(rng.randint(1, 4))]
    # odd trials: few distinct values, so most entries are tied
    scores = [torch.randint(0, 3, s).float() if trial % 2 else torch.randn(s) for s in shapes]
    total = sum(s.numel() for s in scores)
    k = rng.randint(0, total)
    expected = brute_force_keep(scores, k)
    got = smallest_k_keep_masks(scores, k, sample_size=4)  # a tiny sample exercises the band logic
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    assert sum(int((~g).sum()) for g in got) == k

    # incremental form: the first p entries are already pruned (-inf); find the next k - p
    p = rng.randint(0, k)
    pinned = [s.clone() for s in scores]
    for s, m in zip(pinned, brute_force_keep(scores, p)):
        s[~m] = -math.inf
    picked = smallest_k_finite(pinned, k - p, sample_size=4)
    keep = [torch.isfinite(s) for s in pinned]
    for m, idx in zip(keep, picked):
        m.view(-1)[idx] = False
    assert all(torch.equal(a, b) for a, b in zip(brute_force_keep(pinned, k), keep))


def test_ties_pruned_in_index_order() -> None:
    scores = [torch.ones(2, 2), torch.ones(3)]
    keep = smallest_k_keep_masks(scores, 3)
    assert keep[0].tolist() == [[False, False], [False, True]]
    assert keep[1].tolist() == [True, True, True]


def test_threshold_large_input_exact() -> None:
    torch.manual_seed(0)
    scores = [torch.rand(300, 200) for _ in range(8)]  # 480k entries: the sampled band path
    scores[3][:50] = 0.5  # a block of ties
    k = 210_000
    keep = smallest_k_keep_masks(scores, k)
    assert sum(int((~m).sum()) for m in keep) == k
    flat_s = torch.cat([s.reshape(-1) for s in scores])
    flat_k = torch.cat([m.reshape(-1) for m in keep])
    assert flat_s[~flat_k].max() <= flat_s[flat_k].min()


def test_threshold_rejects_bad_k() -> None:
    with pytest.raises(ValueError, match="cannot prune 5 of 4"):
        smallest_k_keep_masks([torch.zeros(4)], 5)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 1001])
def test_sparse_nonzero_equals_nonzero(n: int) -> None:
    from sevenprune.threshold import _sparse_nonzero

    torch.manual_seed(n)
    buf = torch.rand(n) < 0.05
    buf[-1] = True  # the tail after the last whole 8-byte word
    assert torch.equal(_sparse_nonzero(buf), torch.nonzero(buf).squeeze(1))
    assert torch.equal(_sparse_nonzero(buf[1:]), torch.nonzero(buf[1:]).squeeze(1))  # unaligned
