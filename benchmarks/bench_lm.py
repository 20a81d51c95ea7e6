"""Fine-tuning a decoder LM with and without the pruner on this CPU: tokens per second, the pruner's own
time per step, and the pruner's state in bytes per prunable weight (causal-lm task, issue 38).

For each (batch, length) it runs, interleaved so that machine noise hits both alike, plain training steps
(forward, backward, AdamW, zero_grad) and the same steps followed by ``pruner.step()`` inside a pruning
window (the pruner fast-forwarded to the middle of a ``--window``-step cubic schedule, so every measured
step prunes what such a window prunes there), after ``--warmup`` pruned steps (the first ones compile the
fused SEVEN update). Random token ids: speed does not depend on the text.

    python benchmarks/bench_lm.py --quick                       # a tiny random Llama, seconds
    python benchmarks/bench_lm.py --threads 2                   # SmolLM2-135M (converted once into the cache)
    python benchmarks/bench_lm.py --shapes 8x256 4x128 --repeats 3 --json out.json

``--model`` takes ``smollm2`` (default) or a local AutoModelForCausalLM folder. Timings on a shared machine
are noisy: run it alone, and say how busy the machine was.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without install

import sevenprune as sp  # noqa: E402


def _model(args: argparse.Namespace) -> Any:
    if args.quick:
        import transformers as tf

        torch.manual_seed(0)
        config = tf.LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                tie_word_embeddings=True)
        return tf.LlamaForCausalLM(config)
    from sevenprune.tasks.lm_models import load_causal_lm

    model, _ = load_causal_lm(args.model, args.cache_dir, log=print)
    return model


def measure(model: Any, batch: int, length: int, args: argparse.Namespace) -> dict[str, Any]:
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(0))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()
    options = {"moments": args.moments} if args.moments else {}
    pruner = sp.Pruner(model, args.method, sparsity=args.sparsity, start_step=0, prune_steps=args.window,
                       optimizer=opt, state_dtype=getattr(torch, args.state_dtype), **options)
    imp = pruner.importance
    middle = args.window // 2
    model(input_ids=ids[:1, :8], labels=ids[:1, :8]).loss.backward()
    opt.step()  # the optimizer's moments exist before the first observation (moments="optimizer" reads them)
    imp.observe(1)
    pruner.step_count = pruner.observed_steps = middle
    pruner.update_masks(pruner.scheduled_sparsity(middle))
    opt.zero_grad(set_to_none=True)

    def train_step() -> None:
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()

    def pruned_step() -> tuple[float, float]:
        t0 = time.perf_counter()
        train_step()
        t1 = time.perf_counter()
        pruner.step()
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0, t2 - t1

    def plain_step() -> float:
        t0 = time.perf_counter()
        train_step()
        opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0

    for _ in range(args.warmup):
        pruned_step()
    plain: list[float] = []
    pruned: list[float] = []
    own: list[float] = []
    for i in range(args.repeats):
        pruner.detach()  # the plain step runs without the pruner's optimizer hook
        plain.append(plain_step())
        pruner.attach(opt)
        if hasattr(imp, "forget_optimizer_steps"):
            # the plain step advanced the optimizer without pruner.step(): moments="optimizer" would rightly
            # refuse the next step; the benchmark tells it to forget the count it checks (as bench_core does)
            imp.forget_optimizer_steps()
        total, o = pruned_step()
        pruned.append(total)
        own.append(o)
        if args.verbose:
            print(f"  [{i + 1}/{args.repeats}] {batch}x{length}: plain {plain[-1]:.2f} s, with pruner {total:.2f} s "
                  f"(pruner.step {o:.2f} s)", flush=True)
    tokens = batch * length
    result = {"batch": batch, "length": length, "threads": torch.get_num_threads(), "method": args.method,
              "moments": args.moments or "default",
              "median_plain_step_s": statistics.median(plain), "median_pruned_step_s": statistics.median(pruned),
              "mean_pruner_step_s": statistics.fmean(own),
              "plain_tokens_per_s": tokens / statistics.median(plain),
              "pruned_tokens_per_s": tokens / statistics.median(pruned),
              "prunable_params": pruner.numel, "state_bytes_per_prunable_weight": pruner.state_nbytes() / pruner.numel,
              "state_dtype": args.state_dtype, "repeats": args.repeats}
    pruner.detach()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny random Llama instead of SmolLM2 (seconds)")
    parser.add_argument("--model", default="smollm2", help="smollm2 or a local AutoModelForCausalLM folder")
    parser.add_argument("--cache-dir", default=None, help="where smollm2 is converted (default: sevenprune's cache)")
    parser.add_argument("--shapes", nargs="+", default=None, metavar="BxL",
                        help="batch x length of the measured steps (default 4x128 8x256; --quick: 4x64)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=3, help="measured steps of each kind (default 3)")
    parser.add_argument("--warmup", type=int, default=2, help="pruned steps before measuring (default 2)")
    parser.add_argument("--window", type=int, default=1000, help="the pruning window K (default 1000)")
    parser.add_argument("--method", default="seven", help="the Pruner method (default seven)")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--state-dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--moments", default=None, choices=("signed", "optimizer"),
                        help="SEVEN's moments: its own (signed, the default) or the attached AdamW's (optimizer)")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument("--verbose", action="store_true", help="print every measured step")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shapes = args.shapes or (["4x64"] if args.quick else ["4x128", "8x256"])
    model = _model(args)
    rows = []
    for shape in shapes:
        batch, length = (int(x) for x in shape.lower().split("x"))
        row = measure(model, batch, length, args)
        rows.append(row)
        print(f"{batch}x{length}, {row['threads']} threads, {args.method}: "
              f"plain {row['median_plain_step_s']:.2f} s/step "
              f"({row['plain_tokens_per_s']:.0f} tokens/s), with the pruner {row['median_pruned_step_s']:.2f} s/step "
              f"({row['pruned_tokens_per_s']:.0f} tokens/s; pruner.step {row['mean_pruner_step_s']:.2f} s); "
              f"state {row['state_bytes_per_prunable_weight']:.2f} bytes per prunable weight "
              f"({row['prunable_params']} weights, {args.state_dtype}, moments {row['moments']})", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
