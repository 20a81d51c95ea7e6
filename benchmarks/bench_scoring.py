"""The fused scoring pass of each SEVEN form alone, at BERT-base size: where ``moments="optimizer"``'s
time goes (issue 40).

Times the compiled update of one step over ``--weights`` prunable weights (split into 12 equal matrices,
as BERT-base's 85.5 M are split into many), the kernels interleaved round by round so that machine noise
hits them alike:

* ``default``: SEVEN's own moments ``m``, ``v`` and the score, all fp32, updated in place;
* ``optimizer, fp32 score``: the discount read from AdamW's ``exp_avg`` / ``exp_avg_sq``, the score fp32;
* ``optimizer, bf16 score``: the same with the score in bf16, rounded stochastically (3 bytes a weight);
* and, as references, the bf16 stochastic rounding alone (an fp32 sum in, the bf16 score out) and a
  plain fp32 -> bf16 copy (round to nearest) of the same size.

    python benchmarks/bench_scoring.py --threads 2            # 85 M weights, 7 rounds
    python benchmarks/bench_scoring.py --quick                # 1 M weights, 2 rounds: a smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

from sevenprune.importance.seven import (
    _round_bf16_,
    dither_offset,
    gradient_bits,
    seven_optimizer_update_,
    seven_update_,
)

CHUNKS = 12


def _round_only(s: torch.Tensor, total: torch.Tensor, bits: torch.Tensor, offset: torch.Tensor) -> None:
    _round_bf16_(s, total, bits, offset)


def kernels(weights: int) -> dict[str, Callable[[], None]]:
    """One closure per case, each running its kernel over all ``CHUNKS`` matrices once."""
    rows = max(1, weights // CHUNKS // 768)
    gen = torch.Generator().manual_seed(0)

    def chunk() -> dict[str, torch.Tensor]:
        w, g, m = (torch.randn(rows, 768, generator=gen) for _ in range(3))
        return {"w": w, "g": g, "m": m, "v": torch.rand(rows, 768, generator=gen), "bits": gradient_bits(g),
                "own_m": torch.zeros(rows, 768), "own_v": torch.zeros(rows, 768), "s32": torch.rand(rows, 768),
                "s16": torch.zeros(rows, 768, dtype=torch.bfloat16)}

    data = [chunk() for _ in range(CHUNKS)]
    c1, c2 = torch.tensor(1.1), torch.tensor(1.2)  # tensors, as the pruner passes them: no recompilation
    offset = torch.tensor(dither_offset(7), dtype=torch.int32)
    default = torch.compile(seven_update_, dynamic=True, fullgraph=True)
    optimizer = torch.compile(seven_optimizer_update_, dynamic=True, fullgraph=True)
    rounding = torch.compile(_round_only, dynamic=True, fullgraph=True)

    def over_chunks(fn: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[], None]:
        return lambda: [fn(d) for d in data] and None

    return {
        "default (m, v and the score fp32, updated)": over_chunks(
            lambda d: default(d["w"], d["g"], d["own_m"], d["own_v"], d["s32"], 0.8, 0.9, c1, c2, 1e-9, False)),
        "optimizer, fp32 score": over_chunks(
            lambda d: optimizer(d["w"], d["g"], d["m"], d["v"], d["s32"], c1, c2, 1e-9, None, offset)),
        "optimizer, bf16 score": over_chunks(
            lambda d: optimizer(d["w"], d["g"], d["m"], d["v"], d["s16"], c1, c2, 1e-9, d["bits"], offset)),
        "bf16 stochastic rounding alone": over_chunks(lambda d: rounding(d["s16"], d["s32"], d["bits"], offset)),
        "plain fp32 -> bf16 copy": over_chunks(lambda d: d["s16"].copy_(d["s32"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=int, default=85_524_480, help="prunable weights (default: BERT-base's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds, after 2 warm-up rounds")
    parser.add_argument("--json", help="also write the medians to this file")
    parser.add_argument("--quick", action="store_true", help="1 M weights, 2 rounds (seconds; measures nothing)")
    args = parser.parse_args()
    if args.quick:
        args.weights, args.rounds = 1_000_000, 2
    torch.set_num_threads(args.threads)
    cases = kernels(args.weights)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(2 + args.rounds):
        for name, run in cases.items():
            t0 = time.perf_counter()
            run()
            if round_ >= 2:
                times[name].append(time.perf_counter() - t0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{args.weights:,} weights in {CHUNKS} matrices, {args.threads} thread(s), median of {args.rounds} rounds "
          f"(load average {load:.1f} at the end):")
    base = statistics.median(times[next(iter(times))])
    medians = {}
    for name, ts in times.items():
        medians[name] = statistics.median(ts)
        print(f"  {name}: {medians[name]:.3f} s ({medians[name] / base:.2f}x the default form)")
    if args.json:
        Path(args.json).write_text(json.dumps({"weights": args.weights, "threads": args.threads,
                                               "rounds": args.rounds, "median_s": medians}, indent=1) + "\n")


if __name__ == "__main__":
    main()
