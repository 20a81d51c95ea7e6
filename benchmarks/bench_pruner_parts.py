"""The pruner's own cost per step over the whole window, without the training step, at BERT-base size:
for a machine too loaded to time whole training steps fairly (bench_core.py is the full measure).

One BERT-base-size model per form, gradients from one real backward pass (batch 8, length 128), AdamW
state from one step; at each window position (1, 5, 25, 50, 75, 95 % of a K-step window) and mask
interval, ``pruner.step()`` is timed (scoring, selection, rest) and, apart, the re-application of the masks
after ``optimizer.step()`` (``pruner.apply_masks()``), the forms' steps interleaved so that load hits
them alike. Add the result to a training step's time measured on an idle machine to get the ratio.

    python benchmarks/bench_pruner_parts.py [--window 1000] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Any

import torch
from transformers import BertConfig, BertForSequenceClassification

import sevenprune as sp

FORMS: dict[str, dict[str, Any]] = {"default": {}, "optimizer-bf16": {"moments": "optimizer",
                                                                     "state_dtype": torch.bfloat16}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--positions", type=float, nargs="+", default=[0.01, 0.05, 0.25, 0.5, 0.75, 0.95])
    parser.add_argument("--mask-interval", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--plain-steps", type=int, default=2, help="training steps timed for the record")
    parser.add_argument("--json")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: a 2-layer, hidden-64 BERT, window 20, two positions (seconds; measures nothing)")
    args = parser.parse_args()
    if args.quick:
        args.window, args.positions, args.mask_interval, args.plain_steps = 20, [0.25, 0.75], [1], 1
    torch.set_num_threads(args.threads)
    out: dict[str, Any] = {"load_start": os.getloadavg()[0], "cells": []}
    for interval in args.mask_interval:
        setups = {}
        for form, kw in FORMS.items():
            torch.manual_seed(0)
            config = (BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
                      if args.quick else BertConfig())
            model = BertForSequenceClassification(config)
            opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
            ids = torch.randint(0, config.vocab_size, (8, 128))
            labels = torch.randint(0, 2, (8,))
            model(input_ids=ids, labels=labels).loss.backward()
            opt.step()
            pruner = sp.Pruner(model, "seven", 0.6, 0, args.window, optimizer=opt, mask_interval=interval, **kw)
            pruner.step()  # step 1: statistics allocated, the compiled update built
            timers = {"scoring": 0.0, "selection": 0.0}

            def wrap(name: str, fn: Any, timers: dict[str, float] = timers) -> Any:
                def w(*a: Any, **k: Any) -> Any:
                    t = time.perf_counter()
                    try:
                        return fn(*a, **k)
                    finally:
                        timers[name] += time.perf_counter() - t
                return w
            pruner.importance.observe = wrap("scoring", pruner.importance.observe)  # type: ignore[method-assign]
            pruner._update_masks = wrap("selection", pruner._update_masks)  # type: ignore[method-assign]
            setups[form] = (model, opt, pruner, timers, ids, labels)
            print(f"interval {interval}, {form}: {pruner.state_nbytes() / pruner.numel:.2f} bytes per weight",
                  flush=True)
        steps = max(4, interval)
        for position in args.positions:
            rows: dict[str, list[tuple[float, float, float, float]]] = {f: [] for f in FORMS}
            n = None
            for form, (model, opt, pruner, timers, _, _) in setups.items():
                n = max(round(position * args.window), pruner.step_count + 1)
                pruner.step_count = pruner.observed_steps = n - 1
                pruner.update_masks(pruner.scheduled_sparsity(n - 1))
            load = os.getloadavg()[0]
            for _ in range(steps):
                for form, (model, opt, pruner, timers, _, _) in setups.items():
                    if hasattr(pruner.importance, "forget_optimizer_steps"):
                        pruner.importance.forget_optimizer_steps()  # no optimizer step between these calls
                    timers["scoring"] = timers["selection"] = 0.0
                    t0 = time.perf_counter()
                    pruner.step()
                    t1 = time.perf_counter()
                    pruner.apply_masks()  # what the optimizer hook does after every optimizer.step()
                    t2 = time.perf_counter()
                    rows[form].append((t1 - t0, timers["scoring"], timers["selection"], t2 - t1))
            for form, r in rows.items():
                cell = {"interval": interval, "position": position, "step": n, "form": form,
                        "pruner_step_s": statistics.fmean(x[0] for x in r),
                        "scoring_s": statistics.fmean(x[1] for x in r),
                        "selection_s": statistics.fmean(x[2] for x in r),
                        "hook_s": statistics.fmean(x[3] for x in r), "steps": len(r), "load": load}
                out["cells"].append(cell)
                print(f"| {interval} | {position:.0%} | {form} | {cell['pruner_step_s']:.3f} | {cell['scoring_s']:.3f} | "
                      f"{cell['selection_s']:.3f} | {cell['pruner_step_s'] - cell['scoring_s'] - cell['selection_s']:.3f} "
                      f"| {cell['hook_s']:.3f} | {load:.1f} |", flush=True)
        model, opt, pruner, timers, ids, labels = setups["default"]
        pruner.detach()
        plain = []
        for _ in range(args.plain_steps):
            t = time.perf_counter()
            model(input_ids=ids, labels=labels).loss.backward()
            opt.step()
            opt.zero_grad()
            plain.append(time.perf_counter() - t)
        out.setdefault("plain_step_s", []).extend(plain)
        print(f"plain training steps here (loaded): {[round(x, 2) for x in plain]} s", flush=True)
        del setups
    out["load_end"] = os.getloadavg()[0]
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
