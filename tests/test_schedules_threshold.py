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


@pytest.mark.parametrize("seed", range(6))
def test_candidate_set_over_growing_scores_matches_a_brute_force_sort_at_every_selection(seed: int) -> None:
    """Scores that only grow (as SEVEN's sums), with ties, over many selections: the candidate set
    must pick exactly the entries a brute-force sort picks, both when it reuses its candidates and
    when the threshold overtakes its bound and it rescans (both happen here)."""
    from sevenprune.threshold import CandidateSet

    rng = torch.Generator().manual_seed(seed)
    scores = [torch.randint(0, 50, (100, 100), generator=rng).float(),
              torch.randint(0, 50, (5000,), generator=rng).float()]
    alive = [torch.ones(s.shape, dtype=torch.bool) for s in scores]
    # a third of the entries grow 8 times faster: candidates overtake entries outside the set
    speed = [1 + 7 * (torch.rand(s.shape, generator=rng) < 1 / 3) for s in scores]
    cs = CandidateSet(sample_size=256)  # 15,000 entries > 4 x 256: sampled bands with a finite bound
    reused = 0
    for step in range(30):
        k = 50 + 20 * (step % 5)
        for s, a, fast in zip(scores, alive, speed):  # scores grow at uneven rates; ties stay common
            s[a] += (torch.randint(0, 3, s.shape, generator=rng) * fast).float()[a]
        # independently: a stable sort of every score, pruned ones first (-inf), first ``pruned + k``
        flat = torch.cat([torch.where(a, s, -math.inf).reshape(-1) for s, a in zip(scores, alive)])
        gone = torch.sort(flat, stable=True).indices[: sum(int((~a).sum()) for a in alive) + k]
        keep = torch.ones(flat.numel(), dtype=torch.bool)
        keep[gone] = False
        expected = [m.reshape(s.shape) for m, s in zip(torch.split(keep, [s.numel() for s in scores]), scores)]
        scans = cs.scans
        picked = cs.smallest_k(scores, k, masks=alive, cover=3 * k, seed=step)
        reused += cs.scans == scans
        for s, a, idx in zip(scores, alive, picked):
            a.view(-1)[idx] = False
            s.view(-1)[idx] = -math.inf  # pinned, as the pruner does
        assert all(torch.equal(e, a) for e, a in zip(expected, alive)), f"step {step}"
    assert 0 < reused < 30  # both paths were taken


def test_seven_pruner_reuses_candidates_and_selects_what_a_full_scan_selects(monkeypatch: pytest.MonkeyPatch) -> None:
    """A guard for the speed-up: with SEVEN's never-decreasing scores most selections of a long window
    reuse the candidate set (few scans), with the same masks as a pruner that scans every time."""
    import sevenprune as sp
    from sevenprune.importance.seven import SevenImportance

    def run(monotone: bool) -> tuple[dict[str, torch.Tensor], int]:
        monkeypatch.setattr(SevenImportance, "monotone_scores", monotone)
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 1024), torch.nn.ReLU(), torch.nn.Linear(1024, 256))
        pruner = sp.Pruner(model, "seven", 0.6, start_step=0, prune_steps=400)  # 328k weights: sampled bands
        g = torch.Generator().manual_seed(1)
        for _ in range(220):  # beyond the middle of the window, where few entries go per step
            model(torch.randn(8, 64, generator=g)).square().mean().backward()
            pruner.step()
            model.zero_grad()
        return {n: m.clone() for n, m in pruner.masks.items()}, pruner._selector.scans

    reused, scans = run(True)
    scanned, _ = run(False)
    assert all(torch.equal(reused[n], scanned[n]) for n in reused)
    assert scans < 220 // 3, f"{scans} candidate scans in 220 selections"
