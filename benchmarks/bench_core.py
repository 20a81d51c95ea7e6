"""Cost of a pruner inside a training loop, on a BERT-base-size model (random init) on this CPU.

Measures, side by side and interleaved in one run (so machine noise hits both alike):
  * the median time of a plain training step (forward, backward, AdamW step, zero_grad), and
  * the median time of the same step followed by ``pruner.step()`` inside a *realistic* pruning window
    (``--window K``: the pruner is fast-forwarded to the middle of a K-step cubic window, so every measured
    step prunes the count a K-step window prunes there),
and prints their ratio, the pruner's own median time split into scoring (the method's ``observe``),
selection (the exact threshold and mask update) and the rest (gradient checks, applying masks), and the
memory the pruner holds per prunable parameter with fp32 and bf16 statistics (targets: <= 13 and <= 9).

    make bench                                                   # K = 1000, batch 8, length 128
    python benchmarks/bench_core.py --window 16600 --batch 32 --mask-interval 10
    python benchmarks/bench_core.py --matrix                     # K x batch x threads x interval table
    python benchmarks/bench_core.py --batch 32 --window 1000 16600 --threads 1 2   # a part of it
    python benchmarks/bench_core.py --small                      # a 4-layer model, a quick look
    python benchmarks/bench_core.py --quick                      # a smoke test: runs in seconds, measures nothing

Targets (issue "pruner overhead"): ratio <= 1.03 with --mask-interval 10 and <= 1.06 with 1, at K = 1000,
batch 8, 2 threads. Run on an idle machine: a shared machine's noise is larger than these margins.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, BertForSequenceClassification

import sevenprune as sp


def measure(args: argparse.Namespace, window: int, batch: int, threads: int, interval: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = BertConfig() if not args.small else BertConfig(hidden_size=256, num_hidden_layers=4,
                                                             num_attention_heads=4, intermediate_size=1024)
    model = BertForSequenceClassification(config)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
    ids = torch.randint(0, config.vocab_size, (batch, args.length))
    labels = torch.randint(0, 2, (batch,))

    def train_step() -> None:
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()

    pruner = sp.Pruner(model, args.method, sparsity=0.6, start_step=0, prune_steps=window, mask_interval=interval)
    # fast-forward to the middle of the window: the masks hold the schedule's count there
    middle = window // 2
    model(input_ids=ids[:1, :8], labels=labels[:1]).loss.backward()
    pruner.importance.observe(1)
    pruner.step_count = pruner.observed_steps = middle
    pruner.update_masks(pruner.scheduled_sparsity(middle))
    opt.zero_grad()
    timers = {"scoring": 0.0, "selection": 0.0, "hook": 0.0}

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timers[name] += time.perf_counter() - t
        return wrapper

    pruner.importance.observe = timed("scoring", pruner.importance.observe)  # type: ignore[method-assign]
    pruner._update_masks = timed("selection", pruner._update_masks)  # type: ignore[method-assign]
    # the optimizer hook re-applies the masks after every optimizer.step(): a cost of pruning too
    pruner.apply_masks = timed("hook", pruner.apply_masks)  # type: ignore[method-assign]

    def pruned_step() -> tuple[float, float, float, float, float]:
        for k in timers:
            timers[k] = 0.0
        t0 = time.perf_counter()
        train_step()
        t1 = time.perf_counter()
        pruner.step()
        t2 = time.perf_counter()
        opt.zero_grad()  # part of the plain step too: not the pruner's
        t3 = time.perf_counter()
        return t3 - t0, t2 - t1, timers["scoring"], timers["selection"], timers["hook"]

    def plain_step() -> float:
        t0 = time.perf_counter()
        train_step()
        opt.zero_grad()
        return time.perf_counter() - t0

    pruner.attach(opt)
    for _ in range(2):  # warm-up (compiles the fused SEVEN update on a large model)
        pruned_step()
    plain, pruned, own, scoring, selection, hook = [], [], [], [], [], []
    scans = getattr(getattr(pruner, "_selector", None), "scans", 0)  # candidate scans (0: code without them)
    # selection cost varies from step to step (a candidate scan every few steps): sample many steps
    repeats = max(args.repeats, 2 * interval, 16)
    for i in range(repeats):
        if i < args.repeats:
            pruner.detach()  # the plain step runs without the pruner's optimizer hook
            plain.append(plain_step())
            pruner.attach(opt)
        total, o, sc, se, ho = pruned_step()
        pruned.append(total)
        own.append(o)
        scoring.append(sc)
        selection.append(se)
        hook.append(ho)
        if args.verbose:
            print(f"  [{i + 1}/{repeats}] plain {plain[-1]:.3f} s, with pruner {total:.3f} s (pruner.step {o:.3f} s: "
                  f"scoring {sc:.3f}, selection {se:.3f}; masks after optimizer.step {ho:.3f})", flush=True)
    scans = getattr(getattr(pruner, "_selector", None), "scans", 0) - scans
    # the mean over the sampled steps is the cost per step (selection happens on some steps only)
    step = statistics.median(plain)
    mean_own = statistics.fmean(own)
    return {"window": window, "batch": batch, "threads": threads, "mask_interval": interval,
            "median_plain_step_s": step, "mean_pruner_step_s": mean_own,
            "mean_scoring_s": statistics.fmean(scoring), "mean_selection_s": statistics.fmean(selection),
            "mean_rest_s": mean_own - statistics.fmean(scoring) - statistics.fmean(selection),
            "ratio": (step + mean_own) / step, "mean_hook_s": statistics.fmean(hook),
            "ratio_with_hook": (step + mean_own + statistics.fmean(hook)) / step,
            "measured_steps": repeats, "candidate_scans": scans, "prunable_params": pruner.numel,
            "bytes_per_param_fp32": pruner.state_nbytes() / pruner.numel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="measured steps of each kind (default 5)")
    # several values of any of these four measure every combination, one cell after another
    # (default None, so that --matrix can tell values given from defaults)
    parser.add_argument("--batch", type=int, nargs="+", help="default 8")
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--window", type=int, nargs="+", help="the pruning window K (default 1000)")
    parser.add_argument("--threads", type=int, nargs="+", help="default: torch's current thread count")
    parser.add_argument("--mask-interval", type=int, nargs="+", help="default 1")
    parser.add_argument("--matrix", action="store_true",
                        help="every K in (1000, 16600) x batch (8, 32) x threads (1, 2) x interval (1, 10); "
                             "a subset: give several values to --window/--batch/--threads/--mask-interval")
    parser.add_argument("--small", action="store_true", help="4 layers, hidden 256: a quick look")
    parser.add_argument("--method", default="seven")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--quick", action="store_true", help="smoke test: --small, batch 2, length 16, K = 10, 1 repeat")
    args = parser.parse_args()
    if args.quick:  # checks that the benchmark runs (tests/test_benchmarks.py); the numbers mean nothing
        import functools

        global BertConfig
        BertConfig = functools.partial(BertConfig, vocab_size=512, max_position_embeddings=32)  # small embeddings
        args.small, args.repeats, args.length = True, 1, 16
        args.batch, args.window, args.threads = args.batch or [2], args.window or [10], args.threads or [1]
    if args.json and Path(args.json).exists():  # a saved measurement is never overwritten
        parser.error(f"--json {args.json} already exists; choose another file")

    axes = {"--window": args.window, "--batch": args.batch, "--threads": args.threads,
            "--mask-interval": args.mask_interval}
    given = [flag for flag, values in axes.items() if values is not None]
    if args.matrix and given:  # the matrix is fixed; silently measuring it instead of what was asked is worse
        parser.error(f"--matrix measures the fixed 16-cell table; drop {', '.join(given)} or drop --matrix")
    if args.matrix:
        grid = list(itertools.product((1000, 16600), (8, 32), (1, 2), (1, 10)))
    else:
        grid = list(itertools.product(args.window or [1000], args.batch or [8],
                                      args.threads or [torch.get_num_threads()], args.mask_interval or [1]))
    results = []
    print("| K | batch | threads | interval | step (s) | pruner.step (s) | scoring | selection | rest | ratio "
          "| masks after optimizer.step (s) | ratio with it | candidate scans / steps |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for window, batch, threads, interval in grid:
        r = measure(args, window, batch, threads, interval)
        results.append(r)
        print(f"| {window} | {batch} | {threads} | {interval} | {r['median_plain_step_s']:.3f} | "
              f"{r['mean_pruner_step_s']:.3f} | {r['mean_scoring_s']:.3f} | {r['mean_selection_s']:.3f} | "
              f"{r['mean_rest_s']:.3f} | {r['ratio']:.3f} | {r['mean_hook_s']:.3f} | {r['ratio_with_hook']:.3f} | "
              f"{r['candidate_scans']} / {r['measured_steps']} |", flush=True)
    model = BertForSequenceClassification(BertConfig() if not args.small else BertConfig(
        hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024))
    small = sp.Pruner(model, args.method, sparsity=0.6, start_step=0, prune_steps=100, state_dtype=torch.bfloat16)
    model(input_ids=torch.randint(0, 100, (1, 8)), labels=torch.zeros(1, dtype=torch.long)).loss.backward()
    small.step()
    bytes_bf16 = small.state_nbytes() / small.numel
    print(f"pruner memory: {results[0]['bytes_per_param_fp32']:.2f} B/param fp32 (target <= 13), "
          f"{bytes_bf16:.2f} B/param bf16 (target <= 9)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"runs": results, "bytes_per_param_bf16": bytes_bf16}, fh, indent=2)


if __name__ == "__main__":
    main()
