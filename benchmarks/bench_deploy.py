"""Deployment on CPU: PyTorch dense against ONNX Runtime exports of pruned MiniLM models on ``mr``.

    .venv/bin/python benchmarks/bench_deploy.py [--work runs/deploy] [--trials 7] \\
        [--out benchmarks/results/bench_deploy.md]
    .venv/bin/python benchmarks/bench_deploy.py --quick     # a smoke test on a tiny random BERT and generated
                                                            # sentences: checks that it runs, measures nothing

Variants (all fine-tuned from all-MiniLM-L6-v2 on ``mr`` with the same budget, see ``--max-steps`` etc.):

1. PyTorch dense: the dense fine-tuned model in transformers;
2. ONNX dense: the same model, ``export_onnx`` (onnxruntime, fp32);
3. ONNX structured: SEVEN with ``pattern="heads+neurons"`` at 50 %, heads and neurons removed
   (``sevenprune export --format onnx --structured``);
4. ONNX structured + int8: the same, ``--quantize int8`` (onnxruntime's ``quantize_dynamic``);
5. transformers uniform neurons: SEVEN with ``pattern="neurons"``, ``--scope local`` at 50 % (every
   layer keeps half its FFN neurons), ``--format structured --plain``, loaded with plain
   ``AutoModelForSequenceClassification.from_pretrained`` (skipped, saying so, when this
   sevenprune's ``Pruner`` has no ``scope`` keyword).

Measured: accuracy on the 2,000 ``mr`` test sentences (tokenized to at most 64 tokens); how often each
export predicts what its source PyTorch model predicts (the masked model for pruned runs); latency
at batch 1 and 32, length 64, with 1 and 2 threads (torch and onnxruntime alike). Timing is
interleaved: within each trial every variant runs in turn, so that load from other processes hits
all alike; the medians over the trials and the speed-up against PyTorch dense are reported. The
load average before and after is printed: numbers from a loaded machine are not a measurement.

The fine-tuning runs are written under ``--work`` (and reused when their ``result.json`` exists).
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import sevenprune as sp  # noqa: E402
from sevenprune.export.run import export_run  # noqa: E402
from sevenprune.export.onnx import export_onnx, onnx_predict, onnx_session  # noqa: E402
from sevenprune.structured import load_structured  # noqa: E402

Predict = Callable[[dict[str, torch.Tensor]], np.ndarray]


def has_local_scope() -> bool:
    return "scope" in inspect.signature(sp.Pruner.__init__).parameters


def quick_source(work: Path) -> dict[str, str]:
    """``--quick``: a tiny random BERT and generated sentences (text-classification) under ``work``, in
    place of MiniLM and ``mr``: no download, seconds to run; the numbers mean nothing."""
    from sevenprune.tasks.testing import fake_sentences, make_tiny_bert

    bert = work / "tiny-bert"
    if not (bert / "config.json").is_file():
        make_tiny_bert(bert)
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    rows = fake_sentences(192, seed=1)
    for split, part in (("train", rows[:128]), ("validation", rows[128:])):
        lines = [f"{text},{'pos' if score >= 0 else 'neg'}" for text, score in part]
        (data / f"{split}.csv").write_text("text,label\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return {"task": "text-classification", "model": str(bert), "data_dir": str(data)}


def fine_tune(work: Path, name: str, args: argparse.Namespace, **options: Any) -> Path:
    """One ``sevenprune run`` into ``work/name`` with the benchmark's budget (reused if finished)."""
    from sevenprune.tasks.run import RunConfig, run

    out = work / name
    if (out / "result.json").is_file():
        print(f"reusing {out}")
        return out
    cfg = RunConfig(**args.source, max_steps=args.max_steps, batch_size=args.batch_size,
                    max_length=64, lr=args.lr, seed=args.seed, threads=args.train_threads,
                    train_limit=args.train_limit, eval_limit=args.test_limit, progress=False, **options)
    if cfg.method != "dense":
        cfg.start_step, cfg.prune_steps = args.start_step, args.prune_steps
    print(f"fine-tuning {name}: {options} ...", flush=True)
    run(cfg, out, overwrite=True, log=lambda *a: None)
    return out


def torch_predict(model: torch.nn.Module) -> Predict:
    def predict(batch: dict[str, torch.Tensor]) -> np.ndarray:
        with torch.inference_mode():
            return model(**batch).logits.float().numpy()
    return predict


def onnx_predictor(directory: str | Path, threads: int) -> Predict:
    session = onnx_session(directory, threads=threads)
    return lambda batch: onnx_predict(session, batch)["logits"]


def test_batches(tokenizer: Any, limit: int | None, source: dict[str, str]) -> tuple[list[dict[str, torch.Tensor]],
                                                                                 np.ndarray]:
    from sevenprune.tasks.loading import load_task

    if source["task"] == "mr":
        test = load_task("mr").evals["test"]
        sentences, labels = list(test["sentence"]), np.asarray(test["label"])
    else:  # --quick: the generated validation sentences
        test = load_task(source["task"], data_dir=source["data_dir"]).evals["validation"]
        sentences, labels = list(test["text"]), np.asarray(test["label"])
    if limit:
        sentences, labels = sentences[:limit], labels[:limit]
    batches = [dict(tokenizer(sentences[i:i + 64], truncation=True, max_length=64, padding=True,
                              return_tensors="pt")) for i in range(0, len(sentences), 64)]
    return batches, labels


def logits_of(predict: Predict, batches: list[dict[str, torch.Tensor]]) -> np.ndarray:
    return np.concatenate([predict(b) for b in batches])


def time_calls(predict: Predict, batch: dict[str, torch.Tensor], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        predict(batch)
    return (time.perf_counter() - start) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="runs/deploy", help="where the fine-tuning runs and exports go")
    parser.add_argument("--out", default=None, help="also write the report (markdown) to this file")
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--sparsity", type=float, default=0.5, help="fraction of heads and of neurons removed")
    g = parser.add_argument_group("fine-tuning budget (the one of docs/export.md)")
    g.add_argument("--max-steps", type=int, default=100)
    g.add_argument("--batch-size", type=int, default=32)
    g.add_argument("--lr", type=float, default=1e-4)
    g.add_argument("--start-step", type=int, default=10)
    g.add_argument("--prune-steps", type=int, default=60)
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--train-threads", type=int, default=2)
    g.add_argument("--train-limit", type=int, default=None, help="training sentences (default: all)")
    g.add_argument("--test-limit", type=int, default=None, help="test sentences (default: all 2,000)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 8 steps, 256 training and 128 test sentences, 2 trials, in --work/quick")
    args = parser.parse_args(argv)
    work = Path(args.work)
    args.source = {"task": "mr", "model": "minilm"}
    if args.quick:
        work = work / "quick"
        args.max_steps, args.start_step, args.prune_steps, args.batch_size = 8, 1, 4, 16
        args.train_limit, args.test_limit, args.trials = 128, 64, 1
        args.threads, args.batches, args.train_threads = [1], [1, 8], 1
        args.source = quick_source(work)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    load_before = os.getloadavg()

    # -- fine-tuning and exports ----------------------------------------------------------------------------
    dense_run = fine_tune(work, "dense", args, method="dense")
    hn_run = fine_tune(work, "heads-neurons", args, method="seven", sparsity=args.sparsity, pattern="heads+neurons")
    uniform_run = None
    if has_local_scope():
        uniform_run = fine_tune(work, "uniform-neurons", args, method="seven", sparsity=args.sparsity,
                                pattern="neurons", scope="local")
    import transformers

    transformers.logging.set_verbosity_error()
    dense = load_structured(dense_run / "model").eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(dense_run / "model"))
    exports = work / "exports"
    export_onnx(dense, None, exports / "onnx-dense", overwrite=True, verbose=False)
    hn_report = export_run(hn_run, "onnx", exports / "onnx-structured", structured=True, overwrite=True,
                           verbose=False)
    export_run(hn_run, "onnx", exports / "onnx-structured-int8", structured=True, quantize="int8",
               overwrite=True, verbose=False)
    hn_masked = load_structured(hn_run / "model").eval()
    plain = exports / "plain-uniform-neurons"
    if uniform_run is not None:
        export_run(uniform_run, "structured", plain, plain=True, overwrite=True, verbose=False)

    def size(path: Path) -> str:
        return f"{sum(f.stat().st_size for f in path.rglob('*') if f.suffix in ('.onnx', '.safetensors')) / 2**20:.1f}"

    def variants(threads: int) -> dict[str, tuple[Predict, Predict | None, str]]:
        """``{name: (predict, the PyTorch model it was exported from or None, MiB on disk)}``."""
        out = {
            "PyTorch dense": (torch_predict(dense), None, size(dense_run / "model")),
            "ONNX dense": (onnx_predictor(exports / "onnx-dense", threads), torch_predict(dense),
                           size(exports / "onnx-dense")),
            f"ONNX structured ({args.sparsity:.0%} heads+neurons)": (
                onnx_predictor(exports / "onnx-structured", threads), torch_predict(hn_masked),
                size(exports / "onnx-structured")),
            "ONNX structured + int8": (onnx_predictor(exports / "onnx-structured-int8", threads),
                                       torch_predict(hn_masked), size(exports / "onnx-structured-int8")),
        }
        if uniform_run is not None:
            loaded = transformers.AutoModelForSequenceClassification.from_pretrained(str(plain)).eval()
            out[f"transformers uniform neurons ({args.sparsity:.0%})"] = (
                torch_predict(loaded), torch_predict(load_structured(uniform_run / "model").eval()), size(plain))
        return out

    # -- accuracy and agreement ---------------------------------------------------------------------------------
    torch.set_num_threads(max(args.threads))
    sources = variants(max(args.threads))
    batches, labels = test_batches(tokenizer, args.test_limit, args.source)
    rows = []
    for name, (predict, source, mib) in sources.items():
        logits = logits_of(predict, batches)
        accuracy = float((logits.argmax(1) == labels).mean())
        agree = diff = ""
        if source is not None:
            ref = logits_of(source, batches)
            agree = f"{(logits.argmax(1) == ref.argmax(1)).mean():.4f}"
            diff = f"{np.abs(logits - ref).max():.1e}"
        rows.append((name, accuracy, agree, diff, mib))

    # -- latency ----------------------------------------------------------------------------------------------
    times: dict[tuple[int, int], dict[str, float]] = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        predictors = {name: v[0] for name, v in variants(threads).items()}
        for batch_size in args.batches:
            gen = torch.Generator().manual_seed(batch_size)
            high = min(30000, dense.config.vocab_size)  # MiniLM: ids 1000-30000; a tiny model: its own range
            ids = torch.randint(high // 30, high, (batch_size, 64), generator=gen)
            batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
            calls = 10 if batch_size == 1 else 1
            samples: dict[str, list[float]] = {name: [] for name in predictors}
            for predict in predictors.values():
                time_calls(predict, batch, 2)  # warm-up
            for _ in range(args.trials):
                for name, predict in predictors.items():
                    samples[name].append(time_calls(predict, batch, calls))
            times[(threads, batch_size)] = {n: statistics.median(s) for n, s in samples.items()}
            print(f"timed {threads} thread(s), batch {batch_size}", flush=True)
    load_after = os.getloadavg()

    # -- report ---------------------------------------------------------------------------------------------------
    import onnxruntime

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    lines = [
        f"# bench_deploy{' --quick (SMOKE TEST: tiny budget, not a measurement)' if args.quick else ''}",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {cpu}, {os.cpu_count()} CPUs; torch "
        f"{torch.__version__}, onnxruntime {onnxruntime.__version__}, transformers {transformers.__version__}; "
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}",
        "",
        f"Fine-tuning: {args.source['model']} on {args.source['task']}, {args.max_steps} steps, batch {args.batch_size}, length 64, "
        f"lr {args.lr:g}, seed {args.seed}; pruning (SEVEN) from step {args.start_step} over "
        f"{args.prune_steps} steps; training sentences: {args.train_limit or 'all'}; "
        f"test sentences: {len(labels)}. Structured run: {hn_report.extra.get('heads_removed')} heads and "
        f"{hn_report.extra.get('neurons_removed')} FFN neurons removed; parameters {hn_report.params:,} of "
        f"{hn_report.dense_params:,}.",
        "",
        "| variant | accuracy | agrees with its PyTorch source | max abs logit diff | MiB |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {n} | {a:.4f} | {g or '-'} | {d or '-'} | {m} |" for n, a, g, d, m in rows]
    if uniform_run is None:
        lines.append("| transformers uniform neurons | not run: this Pruner has no scope='local' | | | |")
    lines += ["", f"Latency, ms per call (medians of {args.trials} interleaved trials), length 64; "
                  "speed-up against PyTorch dense with the same threads and batch:", ""]
    keys = sorted(times)
    lines.append("| variant | " + " | ".join(f"{t} thr, batch {b}" for t, b in keys) + " |")
    lines.append("|---|" + "---|" * len(keys))
    for name in sources:
        cells = []
        for key in keys:
            t = times[key]
            cells.append(f"{1000 * t[name]:.1f} ({t['PyTorch dense'] / t[name]:.2f}x)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
