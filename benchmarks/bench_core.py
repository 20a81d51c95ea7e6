"""Cost of a pruner inside a training loop over the WHOLE pruning window, on a BERT-base-size model
(random init) on this CPU.

The pruner's cost per step depends on where the step falls in the cubic window: most new zeros per
step at its start, few at its end. So the script measures several positions of a K-step window (by
default 1, 5, 25, 50, 75 and 95 %) and reports each position's ratio and their mean, the figure. At each
position it fast-forwards the pruner (masks at the schedule's count there, as a K-step window has them)
and then interleaves, in one process (so machine noise hits both alike):

  * plain training steps (forward, backward, AdamW step, zero_grad; the pruner's hook detached), and
  * the same step followed by ``pruner.step()``, with the masks re-applied after ``optimizer.step()``
    (the hook every pruner that keeps pruned weights at zero under AdamW needs) timed apart,

and prints, beside every ratio, the plain step's own median time, the pruner's time split into scoring
(the method's ``observe``), selection (threshold and mask update) and the rest (gradient checks, masks
applied), and the ratio without and with the re-application. ``mask_interval`` 1 and 10 and two forms of
SEVEN by default: ``default`` (the reference's moments, fp32 statistics: 13 bytes per weight) and
``optimizer-bf16`` (``moments="optimizer"``, ``state_dtype=torch.bfloat16``: the score and the mask, 3
bytes). The memory each form holds is printed per prunable weight, measured with ``pruner.state_nbytes()``.

    make bench                                        # BERT-base, K = 1000, batch 8, 2 threads, ~25 min idle
    python benchmarks/bench_core.py --quick           # a tiny model, every code path, seconds (CI)
    python benchmarks/bench_core.py --forms optimizer-bf16 --mask-interval 10 --positions 0.01 0.5 0.95
    python benchmarks/bench_core.py --window 16600 --batch 32 --threads 1 2

Target (issue 40): with ``optimizer-bf16`` and ``mask_interval=10``, the window-average ratio with the
re-application <= 1.03 at BERT-base size, K = 1000, batch 8, 2 threads, and <= 3 bytes per weight. On a
shared machine the noise is larger than that margin: the load average is printed with every cell.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from transformers import BertConfig, BertForSequenceClassification

import sevenprune as sp

#: form name -> Pruner keywords
FORMS: dict[str, dict[str, Any]] = {
    "default": {},
    "default-bf16": {"state_dtype": torch.bfloat16},
    "optimizer": {"moments": "optimizer"},
    "optimizer-bf16": {"moments": "optimizer", "state_dtype": torch.bfloat16},
    "no-discount": {"noise_discount": False},
}
POSITIONS = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95)


def bert_config(size: str) -> BertConfig:
    if size == "quick":
        return BertConfig(vocab_size=512, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, max_position_embeddings=64)
    if size == "small":
        return BertConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)
    return BertConfig()


class Timers:
    """Wall time of the pruner's parts, accumulated per step."""

    def __init__(self) -> None:
        self.t = {"scoring": 0.0, "selection": 0.0, "hook": 0.0}

    def reset(self) -> None:
        for k in self.t:
            self.t[k] = 0.0

    def wrap(self, name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.t[name] += time.perf_counter() - t
        return wrapper


def measure(args: argparse.Namespace, form: str, window: int, batch: int, threads: int,
            interval: int) -> dict[str, Any]:
    """Every position of one (form, K, batch, threads, interval) cell, in one model and pruner."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = bert_config(args.size)
    model = BertForSequenceClassification(config)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
    ids = torch.randint(0, config.vocab_size, (batch, args.length))
    labels = torch.randint(0, 2, (batch,))

    def train_step() -> None:
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()

    pruner = sp.Pruner(model, args.method, sparsity=0.6, start_step=0, prune_steps=window, mask_interval=interval,
                       optimizer=opt, **FORMS[form])
    imp = pruner.importance
    train_step()  # the optimizer's moments exist (moments="optimizer"), the method's statistics too
    pruner.step()
    opt.zero_grad()
    state_bytes = pruner.state_nbytes() / pruner.numel

    timers = Timers()
    imp.observe = timers.wrap("scoring", imp.observe)  # type: ignore[method-assign]
    pruner._update_masks = timers.wrap("selection", pruner._update_masks)  # type: ignore[method-assign]
    # the optimizer hook re-applies the masks after every optimizer.step(): a cost of pruning too
    pruner.apply_masks = timers.wrap("hook", pruner.apply_masks)  # type: ignore[method-assign]

    def forget_optimizer_steps() -> None:
        # the plain steps (and the jumps) advance the optimizer without pruner.step(): moments="optimizer"
        # would rightly refuse the next step; the benchmark tells it to forget the count it checks
        if hasattr(imp, "forget_optimizer_steps"):
            imp.forget_optimizer_steps()

    def pruned_step() -> tuple[float, float, float, float, float]:
        timers.reset()
        t0 = time.perf_counter()
        train_step()
        t1 = time.perf_counter()
        pruner.step()
        t2 = time.perf_counter()
        opt.zero_grad()  # part of the plain step too: not the pruner's
        t3 = time.perf_counter()
        return t3 - t0, t2 - t1, timers.t["scoring"], timers.t["selection"], timers.t["hook"]

    def plain_step() -> float:
        pruner.detach()  # the plain step runs without the pruner's optimizer hook
        t0 = time.perf_counter()
        train_step()
        opt.zero_grad()
        elapsed = time.perf_counter() - t0
        pruner.attach(opt)
        forget_optimizer_steps()
        return elapsed

    for _ in range(2):  # warm-up (compiles the fused SEVEN update on a large model)
        pruned_step()
    rows = []
    pruned_steps = max(args.repeats, interval)  # a whole mask interval: selection on one step in `interval`
    for position in sorted(args.positions):
        # fast-forward to the step before the position: the masks hold the schedule's count there
        n = max(round(position * window), pruner.step_count + 1)
        pruner.step_count = pruner.observed_steps = n - 1
        pruner.update_masks(pruner.scheduled_sparsity(n - 1))
        forget_optimizer_steps()
        load = [os.getloadavg()[0]]
        plain, own, scoring, selection, hook = [], [], [], [], []
        scans = getattr(pruner._selector, "scans", 0)
        for j in range(pruned_steps):
            if j < args.repeats:
                plain.append(plain_step())
            _, o, sc, se, ho = pruned_step()
            own.append(o)
            scoring.append(sc)
            selection.append(se)
            hook.append(ho)
            if args.verbose:
                print(f"    [{form} i{interval} {position:.0%} {j + 1}/{pruned_steps}] plain "
                      f"{plain[-1] if plain else float('nan'):.3f} s; pruner.step {o:.3f} s (scoring {sc:.3f}, "
                      f"selection {se:.3f}); hook {ho:.3f} s", flush=True)
        load.append(os.getloadavg()[0])
        step = statistics.median(plain)
        mean_own, mean_hook = statistics.fmean(own), statistics.fmean(hook)
        rows.append({
            "position": position, "step": n, "median_plain_step_s": step, "mean_pruner_step_s": mean_own,
            "mean_scoring_s": statistics.fmean(scoring), "mean_selection_s": statistics.fmean(selection),
            "mean_rest_s": mean_own - statistics.fmean(scoring) - statistics.fmean(selection),
            "mean_hook_s": mean_hook, "ratio": (step + mean_own) / step,
            "ratio_with_hook": (step + mean_own + mean_hook) / step, "measured_steps": pruned_steps,
            "plain_steps": len(plain), "candidate_scans": getattr(pruner._selector, "scans", 0) - scans,
            "scheduled_sparsity": pruner.scheduled_sparsity(), "load_average": load,
        })
    return {"form": form, "window": window, "batch": batch, "threads": threads, "mask_interval": interval,
            "size": args.size, "prunable_params": pruner.numel, "state_bytes_per_weight": state_bytes,
            "positions": rows,
            "mean_ratio": statistics.fmean(r["ratio"] for r in rows),
            "mean_ratio_with_hook": statistics.fmean(r["ratio_with_hook"] for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=4,
                        help="plain steps per position, and at least as many pruned ones (default 4; the pruned "
                             "steps cover a whole mask interval)")
    parser.add_argument("--positions", type=float, nargs="+", default=list(POSITIONS),
                        help="fractions of the window measured (default: 0.01 0.05 0.25 0.5 0.75 0.95)")
    parser.add_argument("--forms", nargs="+", choices=list(FORMS), default=["default", "optimizer-bf16"])
    # several values of any of these measure every combination, one cell after another
    parser.add_argument("--batch", type=int, nargs="+", default=[8])
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--window", type=int, nargs="+", default=[1000], help="the pruning window K (default 1000)")
    parser.add_argument("--threads", type=int, nargs="+", default=[2], help="default 2")
    parser.add_argument("--mask-interval", type=int, nargs="+", default=[1, 10], help="default: 1 and 10")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--small", action="store_const", const="small", dest="size",
                      help="4 layers, hidden 256: a quick look")
    size.add_argument("--quick", action="store_const", const="quick", dest="size",
                      help="a tiny model, window 100, batch 2, length 8, 2 repeats, positions 5/50/95 %%: every code path in seconds (CI)")
    parser.add_argument("--method", default="seven")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.set_defaults(size="base")
    args = parser.parse_args()
    if args.json and Path(args.json).exists():  # a saved measurement is never overwritten
        parser.error(f"--json {args.json} already exists; choose another file")
    if any(not 0 < p < 1 for p in args.positions):
        parser.error(f"--positions must be fractions in (0, 1), got {args.positions}")
    if args.size == "quick":
        args.window, args.length, args.batch, args.repeats = [100], 8, [2], min(args.repeats, 2)
        args.positions = [p for p in args.positions if p in (0.05, 0.5, 0.95)] or args.positions[:1]

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the start")
    results = []
    grid = itertools.product(args.forms, args.window, args.batch, args.threads, args.mask_interval)
    for form, window, batch, threads, interval in grid:
        r = measure(args, form, window, batch, threads, interval)
        results.append(r)
        print(f"\n{form}, K = {window}, batch {batch}, {threads} threads, mask_interval {interval}: "
              f"{r['state_bytes_per_weight']:.2f} bytes per prunable weight")
        print("| position | step | training step (s) | pruner.step (s) | scoring | selection | rest | ratio "
              "| masks after optimizer.step (s) | ratio with it | scans | load |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for p in r["positions"]:
            print(f"| {p['position']:.0%} | {p['step']} | {p['median_plain_step_s']:.3f} | "
                  f"{p['mean_pruner_step_s']:.3f} | {p['mean_scoring_s']:.3f} | {p['mean_selection_s']:.3f} | "
                  f"{p['mean_rest_s']:.3f} | {p['ratio']:.3f} | {p['mean_hook_s']:.3f} | "
                  f"{p['ratio_with_hook']:.3f} | {p['candidate_scans']} | "
                  f"{p['load_average'][0]:.1f}-{p['load_average'][1]:.1f} |", flush=True)
        print(f"mean over the window: ratio {r['mean_ratio']:.3f}, with the re-application "
              f"{r['mean_ratio_with_hook']:.3f}", flush=True)
    print("\n| form | K | batch | threads | interval | bytes/weight | mean ratio | with re-application |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['form']} | {r['window']} | {r['batch']} | {r['threads']} | {r['mask_interval']} | "
              f"{r['state_bytes_per_weight']:.2f} | {r['mean_ratio']:.3f} | {r['mean_ratio_with_hook']:.3f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"torch": torch.__version__, "runs": results}, fh, indent=2)


if __name__ == "__main__":
    main()
