"""The training loop and the evaluation, kept flat and visible.

Order of work in each step: forward -> backward -> clip -> ``optimizer.step()`` -> learning-rate
step -> ``pruner.step()`` (observes the gradients, updates and applies the masks) -> ``zero_grad()``.
Evaluation collects every prediction of a split and computes its metrics once over the whole split.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..pruner import Pruner
from .checkpoint import LoopState
from .features import Encoded, collate, squad_answers
from .metrics import classification_metrics, regression_metrics, squad_metrics
from .loading import TaskSpec

__all__ = ["make_loader", "evaluate", "train", "cycle_batches"]


def make_loader(encoded: Encoded, spec: TaskSpec, batch_size: int, *, shuffle: bool, seed: int,
                pad_id: int) -> DataLoader[dict[str, Any]]:
    """A DataLoader over encoded features (seeded order when shuffled)."""
    generator = torch.Generator().manual_seed(seed)
    features = encoded["features"]

    def fn(batch: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return collate(batch, pad_id=pad_id, image_size=encoded.get("image_size"),
                       regression=spec.kind == "regression")

    return DataLoader(features, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      collate_fn=fn, drop_last=False)


def cycle_batches(loader: DataLoader[dict[str, Any]]) -> Iterator[dict[str, torch.Tensor]]:
    """Batches over as many epochs as needed (a new seeded order every epoch)."""
    while True:
        yield from loader


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


@torch.inference_mode()
def evaluate(model: torch.nn.Module, spec: TaskSpec, encoded: Encoded, loader: DataLoader[dict[str, Any]],
             device: torch.device, *, desc: str = "eval", progress: bool = True,
             keep: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """Metrics of ``model`` over the whole split (predictions gathered first, metrics computed once).

    ``keep``: if given, receives the per-example predictions (``"pred"``: class indices, or the
    regression outputs) and ``"label"``, in the split's order, so that paired tests between runs
    are possible (not for SQuAD).
    """
    from tqdm.auto import tqdm

    if spec.kind == "causal-lm":  # perplexity over the split's windows (lm_eval.py)
        from .lm_eval import evaluate_perplexity

        return evaluate_perplexity(model, loader, device, desc=desc, progress=progress, keep=keep)
    was_training = model.training
    model.eval()
    outs: list[np.ndarray] = []
    starts: list[np.ndarray] = []
    ends: list[np.ndarray] = []
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True):
        batch = _to(batch, device)
        for k in ("labels", "start_positions", "end_positions"):
            batch.pop(k, None)
        out = model(**batch)
        if spec.kind == "squad":
            starts.extend(out.start_logits.float().cpu().numpy())
            ends.extend(out.end_logits.float().cpu().numpy())
        else:
            outs.append(out.logits.float().cpu().numpy())
    model.train(was_training)
    if spec.kind == "squad":
        preds = squad_answers(encoded, starts, ends)
        return squad_metrics(preds, encoded["answers"])
    logits = np.concatenate(outs)
    if keep is not None:
        keep["pred"] = logits.reshape(-1) if spec.kind == "regression" else logits.argmax(-1).astype(np.int16)
        keep["label"] = np.asarray(encoded["labels"])
    if spec.kind == "regression":
        return regression_metrics(logits.reshape(-1), encoded["labels"])
    return classification_metrics(logits.argmax(-1), encoded["labels"], num_labels=spec.num_labels)


def train(
    model: torch.nn.Module,
    loader: DataLoader[dict[str, Any]],
    optimizer: torch.optim.Optimizer,
    *,
    max_steps: int,
    device: torch.device,
    pruner: Pruner | None = None,
    lr_lambda: Callable[[int], float] | None = None,
    max_grad_norm: float | None = 1.0,
    eval_every: int = 0,
    on_eval: Callable[[int, float], object] | None = None,
    progress: bool = True,
    after_pruner_step: Callable[[], object] | None = None,
    resume: LoopState | None = None,
    checkpoint_every: int = 0,
    on_checkpoint: Callable[[LoopState], object] | None = None,
) -> dict[str, Any]:
    """Fine-tune for ``max_steps`` optimizer updates, calling ``pruner.step()`` after each one.

    The loop is the README's: ``loss.backward()``, gradient clipping, ``optimizer.step()`` (the
    learning-rate scheduler's step), ``pruner.step()``, ``optimizer.zero_grad()``; the pruner is
    built with the optimizer attached (its step hook keeps the masks applied).

    ``on_eval(step, mean_train_loss)`` runs every ``eval_every`` steps (0: never; the caller
    evaluates at the end). ``after_pruner_step()`` runs right after each ``pruner.step()``, while the
    gradients are still there (diagnostics). Returns the step count, the last mean loss, the seconds
    spent training (over every attempt of a resumed run; neither the checkpoints' writing nor the replay of
    the batches counted), and the seconds of the pruning window's steps and of ``pruner.step()`` within them.

    ``on_checkpoint(state)`` runs every ``checkpoint_every`` steps (not after the last) with the loop's
    state (:class:`~.checkpoint.LoopState`); ``resume`` is such a state, with the optimizer's state_dict,
    to go on from: the batches already used are drawn again from the seeded loader (not trained on), the
    scheduler and the optimizer are restored, so that the run goes on as if it had never stopped.
    """
    from tqdm.auto import tqdm

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda) if lr_lambda else None
    model.train()
    batches = cycle_batches(loader)
    done = resume or LoopState(step=0)
    if resume is not None:
        if scheduler is not None and resume.scheduler is not None:
            scheduler.load_state_dict(resume.scheduler)
        if resume.optimizer is not None:  # after the scheduler, whose construction sets the learning rate
            optimizer.load_state_dict(resume.optimizer)
        for _ in range(resume.step):  # the same seeded order: the loader's generator advances as it did
            next(batches)
    losses: list[float] = list(done.losses)
    start = time.perf_counter() - done.train_seconds
    bar = tqdm(range(done.step + 1, max_steps + 1), desc="train", disable=not progress, dynamic_ncols=True,
               initial=done.step, total=max_steps)
    last_loss = math.nan
    window_seconds, pruner_seconds, window_steps = done.window_seconds, done.pruner_seconds, done.window_steps
    for step in bar:
        t_step = time.perf_counter()
        batch = _to(next(batches), device)
        loss = model(**batch).loss
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the training loss became {loss.item()} at step {step}; lower --lr")
        loss.backward()
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if pruner is not None:
            t_pruner = time.perf_counter()
            pruner.step()
            pruner_step_time = time.perf_counter() - t_pruner
            if after_pruner_step is not None:
                after_pruner_step()
            if pruner.start_step < step <= pruner.end_step:
                window_steps += 1
                pruner_seconds += pruner_step_time
                window_seconds += time.perf_counter() - t_step
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if step % 10 == 0 or step == max_steps:
            post = {"loss": f"{np.mean(losses[-10:]):.4f}"}
            if pruner is not None:
                post["sparsity"] = f"{pruner.sparsity():.3f}"
            bar.set_postfix(post)
        if eval_every and on_eval is not None and step % eval_every == 0 and step != max_steps:
            on_eval(step, float(np.mean(losses[-eval_every:])))
        if checkpoint_every and on_checkpoint is not None and step % checkpoint_every == 0 and step != max_steps:
            t_checkpoint = time.perf_counter()
            on_checkpoint(LoopState(
                step=step, losses=list(losses), train_seconds=t_checkpoint - start,
                window_steps=window_steps, window_seconds=window_seconds, pruner_seconds=pruner_seconds,
                scheduler=scheduler.state_dict() if scheduler is not None else None))
            start += time.perf_counter() - t_checkpoint  # train_seconds counts training, not writing
    if losses:
        last_loss = float(np.mean(losses[-max(1, eval_every or 50):]))
    return {"steps": max_steps, "train_loss": last_loss, "train_seconds": time.perf_counter() - start,
            "window_steps": window_steps, "window_seconds": window_seconds, "pruner_seconds": pruner_seconds}


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line (flushed, so an interrupted run keeps what it logged)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
