"""CPU runtime of one-shot pruning: Wanda and SparseGPT (sevenprune.prune_oneshot) on a random Llama.

    .venv/bin/python benchmarks/bench_oneshot.py --quick            # tiny model, seconds
    .venv/bin/python benchmarks/bench_oneshot.py [--windows 128] [--length 256] [--threads 2] [--json out.json]

Without ``--quick`` the model is a randomly initialised ``LlamaForCausalLM`` shaped like SmolLM2-135M
(hidden 576, 30 blocks, intermediate 1536, 9 heads, 3 key/value heads, vocabulary 49152, tied
embeddings; 135 M parameters), pruned to 50 % unstructured and 2:4 from ``--windows`` calibration
windows of ``--length`` random token ids (seeded), one window per batch as the authors feed them. Random
weights cost the same arithmetic as trained ones, so the timings hold for the real model; the pruning
*quality* of course needs the real weights (docs/results.md).

Printed per run: the wall time of ``prune_oneshot``, and for scale the time of one dense forward pass of
the whole model over the same windows (the driver makes about two passes through every block: one for the
statistics, one for the next block's inputs), and the peak resident memory of the process so far. The
CPU of the development machine is shared with other developers: absolute times are noisy.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import sevenprune as sp  # noqa: E402


def llama(quick: bool, seed: int = 0) -> torch.nn.Module:
    import transformers

    torch.manual_seed(seed)
    if quick:
        config = transformers.LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
    else:  # SmolLM2-135M's shape
        config = transformers.LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                                          num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                                          max_position_embeddings=2048, tie_word_embeddings=True)
    return transformers.LlamaForCausalLM(config).eval()


def windows(vocab: int, count: int, length: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (1, length), generator=g) for _ in range(count)]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny Llama (2 blocks, hidden 64), 8 windows of 32")
    parser.add_argument("--windows", type=int, default=None, help="calibration windows (default 128; quick: 8)")
    parser.add_argument("--length", type=int, default=None, help="tokens per window (default 256; quick: 32)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch CPU threads")
    parser.add_argument("--methods", nargs="+", default=["wanda", "sparsegpt"])
    parser.add_argument("--patterns", nargs="+", default=["unstructured", "2:4"])
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    count = args.windows or (8 if args.quick else 128)
    length = args.length or (32 if args.quick else 256)

    model = llama(args.quick)
    n_params = sum(p.numel() for p in model.parameters())
    data = windows(model.config.vocab_size, count, length)
    with torch.no_grad():
        model(data[0])  # warm-up
    t0 = time.perf_counter()
    with torch.no_grad():
        for ids in data:
            model(ids)
    dense_s = time.perf_counter() - t0
    print(f"model: {n_params / 1e6:.1f} M parameters, {model.config.num_hidden_layers} blocks; calibration "
          f"{count} x {length} tokens; {args.threads} threads; one dense forward pass {dense_s:.1f} s")

    runs = []
    for method in args.methods:
        for pattern in args.patterns:
            model = llama(args.quick)
            t0 = time.perf_counter()
            pruner = sp.prune_oneshot(model, method, 0.5, data, pattern=None if pattern == "unstructured" else pattern,
                                      progress=not args.quick)
            seconds = time.perf_counter() - t0
            runs.append({"method": method, "pattern": pattern, "seconds": round(seconds, 2),
                         "sparsity": pruner.sparsity(), "peak_rss_mb": round(peak_rss_mb())})
            print(f"{method:>9} {pattern:>12}: {seconds:8.1f} s ({seconds / dense_s:.1f} dense passes), "
                  f"sparsity {pruner.sparsity():.4f}, peak RSS so far {peak_rss_mb():.0f} MB", flush=True)
    if args.json:
        args.json.write_text(json.dumps({
            "model": "tiny random Llama" if args.quick else "random Llama shaped like SmolLM2-135M",
            "parameters": n_params, "windows": count, "length": length, "threads": args.threads,
            "dense_forward_s": round(dense_s, 2), "torch": torch.__version__, "machine": platform.processor() or
            platform.machine(), "runs": runs}, indent=1) + "\n")


if __name__ == "__main__":
    main()
