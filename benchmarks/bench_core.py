"""Cost of SEVEN inside a training loop, on a BERT-base-size model (random init) on this CPU.

Measures, side by side and interleaved in one run (so machine noise hits both alike):
  * the median time of a plain training step (forward, backward, AdamW step, zero_grad), and
  * the median time of the same step followed by ``pruner.step()`` inside the pruning window,
and prints their ratio (target: <= 1.05), the pruner's own median time, and the memory the pruner
holds per prunable parameter with fp32 and bf16 statistics (targets: <= 13 and <= 9 bytes).

    make bench                       # or: python benchmarks/bench_core.py --repeats 7
    python benchmarks/bench_core.py --small   # a 4-layer model, a quick look
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from transformers import BertConfig, BertForSequenceClassification

import sevenprune as sp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="measured steps of each kind (default 5)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--small", action="store_true", help="4 layers, hidden 256: a quick look")
    parser.add_argument("--method", default="seven")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args()

    torch.manual_seed(0)
    config = BertConfig() if not args.small else BertConfig(hidden_size=256, num_hidden_layers=4,
                                                             num_attention_heads=4, intermediate_size=1024)
    model = BertForSequenceClassification(config)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
    ids = torch.randint(0, config.vocab_size, (args.batch, args.length))
    labels = torch.randint(0, 2, (args.batch,))

    def train_step() -> None:
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()

    # a window far longer than the run: every measured pruner.step() is a pruning step
    pruner = sp.Pruner(model, args.method, sparsity=0.6, start_step=0, prune_steps=100_000)
    print(f"threads {torch.get_num_threads()}, prunable weights {pruner.numel:,}, batch {args.batch}, "
          f"length {args.length}, method {args.method}")

    def pruned_step() -> tuple[float, float]:
        t0 = time.perf_counter()
        train_step()
        t1 = time.perf_counter()
        pruner.step()
        opt.zero_grad()
        t2 = time.perf_counter()
        return t2 - t0, t2 - t1

    def plain_step() -> float:
        t0 = time.perf_counter()
        train_step()
        opt.zero_grad()
        return time.perf_counter() - t0

    pruner.attach(opt)
    print("warm-up (the first pruner steps compile the fused SEVEN update) ...", flush=True)
    t0 = time.perf_counter()
    for _ in range(2):
        pruned_step()
    print(f"  warm-up took {time.perf_counter() - t0:.1f} s")
    plain, pruned, prune_only = [], [], []
    for i in range(args.repeats):
        pruner.detach()  # the plain step runs without the pruner's optimizer hook
        plain.append(plain_step())
        pruner.attach(opt)
        total, own = pruned_step()
        pruned.append(total)
        prune_only.append(own)
        print(f"  [{i + 1}/{args.repeats}] plain {plain[-1]:.3f} s, with pruner {pruned[-1]:.3f} s "
              f"(pruner.step {own:.3f} s), sparsity {pruner.sparsity():.4f}", flush=True)
    ratio = statistics.median(pruned) / statistics.median(plain)
    bytes_fp32 = pruner.state_nbytes() / pruner.numel

    small = sp.Pruner(model, args.method, sparsity=0.6, start_step=0, prune_steps=100_000,
                      state_dtype=torch.bfloat16)
    model(input_ids=ids[:1, :8], labels=labels[:1]).loss.backward()
    small.step()
    opt.zero_grad()
    bytes_bf16 = small.state_nbytes() / small.numel

    result = {
        "median_plain_step_s": statistics.median(plain),
        "median_step_with_pruner_s": statistics.median(pruned),
        "median_pruner_step_s": statistics.median(prune_only),
        "ratio": ratio,
        "bytes_per_param_fp32": bytes_fp32,
        "bytes_per_param_bf16": bytes_bf16,
        "prunable_params": pruner.numel,
    }
    print(json.dumps(result, indent=2))
    print(f"ratio (step + pruner.step) / step = {ratio:.3f}  (target <= 1.05)")
    print(f"pruner memory: {bytes_fp32:.2f} B/param fp32 (target <= 13), {bytes_bf16:.2f} B/param bf16 (target <= 9)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
