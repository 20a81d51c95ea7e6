"""Selection inside a pruning window, side by side: a full candidate scan at every step (what the pruner
did before, and still does for scores that can decrease) against the candidate set that SEVEN's
never-decreasing scores allow (``threshold.CandidateSet``), on BERT-base-size score tensors.

The scores grow each step by a random non-negative increment of mean ``score / t`` (a sum of ``t``
comparable terms grows so; SEVEN's sums do); each step prunes the count a K-step cubic window prunes at
its middle, or at ``--at`` of the way. Both forms are timed in
turn on copies of the same scores, and their choices are checked to be identical.

    python benchmarks/bench_selection.py                  # 85 M scores, K = 1,000, 2 threads
    python benchmarks/bench_selection.py --window 16600 --steps 30
    python benchmarks/bench_selection.py --quick          # a smoke test on tiny tensors: runs, measures nothing
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from sevenprune import schedules
from sevenprune.threshold import CandidateSet, smallest_k_finite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--sparsity", type=float, default=0.6)
    parser.add_argument("--at", type=float, default=0.5, help="where in the window (0-1) the steps are timed")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lookahead", type=int, default=8, help="selections a candidate scan covers (the pruner's)")
    parser.add_argument("--quick", action="store_true", help="smoke test: tiny tensors, K = 100, 3 steps, 1 thread")
    args = parser.parse_args()
    if args.quick:
        args.window, args.steps, args.threads = 100, 3, 1
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    shapes = [(768, 768)] * 4 * 12 + [(3072, 768), (768, 3072)] * 12  # BERT-base's encoder matrices
    if args.quick:
        shapes = [(64, 64)] * 4 + [(128, 64), (64, 128)]
    scores = [torch.rand(s, generator=gen) for s in shapes]
    numel = sum(s.numel() for s in scores)
    start = round(args.at * args.window)
    already = schedules.pruned_count(schedules.cubic_sparsity(start, args.sparsity, 0, args.window), numel)
    # prune the lowest `already` entries first (the state at that point of the window)
    masks = [torch.ones_like(s, dtype=torch.bool) for s in scores]
    for s, m, idx in zip(scores, masks, smallest_k_finite(scores, already, masks=masks)):
        m.view(-1)[idx] = False
        s.view(-1)[idx] = -math.inf
    full_scores, full_masks = [s.clone() for s in scores], [m.clone() for m in masks]
    candidates = CandidateSet()
    t_full, t_cand = [], []
    for step in range(start + 1, start + 1 + args.steps):
        k = schedules.pruned_count(schedules.cubic_sparsity(step, args.sparsity, 0, args.window), numel) - already
        ahead = schedules.pruned_count(
            schedules.cubic_sparsity(min(step + args.lookahead, args.window), args.sparsity, 0, args.window), numel)
        for s, fs in zip(scores, full_scores):  # both copies grow alike
            growth = torch.rand(s.shape, generator=gen).mul_(2.0 / step).mul_(fs.clamp(min=0))
            s.add_(growth)
            fs.add_(growth)
        t = time.perf_counter()
        full = smallest_k_finite(full_scores, k, masks=full_masks, seed=step)
        t_full.append(time.perf_counter() - t)
        t = time.perf_counter()
        cand = candidates.smallest_k(scores, k, masks=masks, seed=step, cover=min(ahead - already, max(k, numel // 32)))
        t_cand.append(time.perf_counter() - t)
        assert all(torch.equal(a, b) for a, b in zip(full, cand)), f"step {step}: the two selections differ"
        for pick, group_s, group_m in ((full, full_scores, full_masks), (cand, scores, masks)):
            for s, m, idx in zip(group_s, group_m, pick):
                m.view(-1)[idx] = False
                s.view(-1)[idx] = -math.inf
        already += k
    mf, mc = statistics.fmean(t_full), statistics.fmean(t_cand)
    print("candidate-set steps (ms):", " ".join(f"{x * 1000:.0f}" for x in t_cand))
    print(f"{numel:,} scores, K = {args.window}, steps {start + 1}-{start + args.steps}, {args.threads} thread(s): "
          f"about {k:,} entries a step")
    print(f"full scan every step: {mf * 1000:.1f} ms a step (mean)")
    print(f"candidate set:        {mc * 1000:.1f} ms a step (mean; {candidates.scans} scans in {args.steps} steps)")
    print(f"ratio full / candidate set: {mf / mc:.2f}x; identical choices at every step")


if __name__ == "__main__":
    main()
