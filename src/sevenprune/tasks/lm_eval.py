"""Language-model windows, perplexity, calibration batches and greedy continuations (``causal-lm``).

Perplexity as the LLM pruning papers compute it (SparseGPT, Wanda): a split's text is tokenized
**once** (its documents joined by :data:`~sevenprune.tasks.lm_data.DOCUMENT_SEPARATOR`), cut into
non-overlapping windows of ``max_length`` tokens (the tail shorter than a window is dropped), each
window scored on its own (token ``t`` predicted from tokens ``< t`` of the same window), and

    perplexity = exp(mean over windows of the window's mean token loss)

which equals ``exp`` of the mean token loss, since every window predicts ``max_length - 1`` tokens.
The per-window losses are kept (``predictions.npz``: ``<split>.window_loss``), so that two runs on the
same windows compare with paired intervals.

>>> import torch
>>> windows(torch.arange(10), 4).tolist()
[[0, 1, 2, 3], [4, 5, 6, 7]]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .lm_data import DOCUMENT_SEPARATOR
from .specs import Columns

__all__ = ["tokenize_text", "windows", "encode_lm", "window_losses", "evaluate_perplexity", "calibration_batches",
           "greedy_continuation", "generate_from_run", "lm_result"]


def tokenize_text(tokenizer: Any, texts: list[str], *, where: str = "text") -> Tensor:
    """The documents joined into one text, tokenized once: a 1-D LongTensor of token ids."""
    if not any(t.strip() for t in texts):
        raise ValueError(f"{where} is empty (no text to model)")
    text = DOCUMENT_SEPARATOR.join(texts)
    from transformers.utils import logging as tf_logging

    # the whole split is longer than the model's context on purpose: it is cut into windows next
    verbosity = tf_logging.get_verbosity()
    tf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    try:
        ids = tokenizer(text, return_attention_mask=False)["input_ids"]
    finally:
        tf_logging.set_verbosity(verbosity)
    return torch.tensor(ids, dtype=torch.long)


def windows(ids: Tensor, length: int) -> Tensor:
    """Non-overlapping windows ``[n, length]`` of a 1-D token sequence (the shorter tail dropped)."""
    n = ids.numel() // length
    return ids[: n * length].reshape(n, length)


def encode_lm(cols: Columns, tokenizer: Any, max_length: int, *, where: str, limit: int | None = None,
              seed: int = 0) -> dict[str, Any]:
    """A split as windows of ``max_length`` tokens: ``features`` (``input_ids`` = ``labels``, for the training
    loop and the loaders), ``windows`` (the tensor), ``tokens`` and ``dropped_tokens``.

    ``limit``: at most this many windows, a seeded subset kept in text order. Too little text for one
    window is an error naming the split.
    """
    ids = tokenize_text(tokenizer, list(cols["text"]), where=where)
    if ids.numel() < max_length:
        raise ValueError(f"{where} has {ids.numel()} tokens, fewer than one window of --max-length {max_length}; "
                         f"give more text or a smaller --max-length")
    w = windows(ids, max_length)
    if limit is not None and limit < len(w):
        keep = np.sort(np.random.default_rng(seed).permutation(len(w))[:limit])
        w = w[torch.as_tensor(keep)]
    rows = w.tolist()
    return {"features": [{"input_ids": r, "labels": r} for r in rows], "windows": w, "tokens": int(ids.numel()),
            "dropped_tokens": int(ids.numel() - (ids.numel() // max_length) * max_length),
            "labels": np.zeros(len(rows))}


def window_losses(logits: Tensor, input_ids: Tensor) -> Tensor:
    """The mean next-token loss of each window (``[batch]``, float64): position ``t`` predicts token ``t+1``."""
    shift_logits = logits[:, :-1, :].float()
    shift_labels = input_ids[:, 1:]
    loss = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]),
                                             shift_labels.reshape(-1), reduction="none")
    return loss.view(shift_labels.shape).double().mean(dim=1)


@torch.inference_mode()
def evaluate_perplexity(model: torch.nn.Module, loader: Any, device: torch.device, *, desc: str = "eval",
                        progress: bool = True, keep: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """``{"perplexity", "loss"}`` of ``model`` over the windows of ``loader`` (see the module docstring);
    ``keep`` receives ``window_loss`` (one mean token loss per window, in order)."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    losses: list[Tensor] = []
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress, dynamic_ncols=True):
        ids = batch["input_ids"].to(device)
        logits = model(input_ids=ids, use_cache=False).logits
        losses.append(window_losses(logits, ids).cpu())
    model.train(was_training)
    per_window = torch.cat(losses).numpy()
    if keep is not None:
        keep["window_loss"] = per_window
    mean = float(per_window.mean())
    return {"perplexity": math.exp(mean), "loss": mean}


def calibration_batches(cols: Columns, tokenizer: Any, *, n_samples: int = 128, max_length: int = 2048,
                        seed: int = 0, where: str = "training text") -> list[Tensor]:
    """``n_samples`` windows of ``max_length`` tokens at seeded random offsets of the training text, each a
    ``[1, max_length]`` LongTensor: the calibration data of one-shot pruning (SparseGPT and Wanda draw
    128 random segments of the training corpus the same way).

    For ``--method wanda|sparsegpt``: ``sp.prune_oneshot(model, method, sparsity,
    calibration_batches(data.train, tokenizer, max_length=cfg.max_length, seed=cfg.seed))``.
    """
    ids = tokenize_text(tokenizer, list(cols["text"]), where=where)
    if ids.numel() < max_length:
        raise ValueError(f"{where} has {ids.numel()} tokens, fewer than one calibration window of {max_length}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    starts = np.random.default_rng(seed).integers(0, ids.numel() - max_length + 1, size=n_samples)
    return [ids[s: s + max_length].unsqueeze(0).clone() for s in starts.tolist()]


@torch.inference_mode()
def greedy_continuation(model: Any, tokenizer: Any, prompt: str, *, max_new_tokens: int = 40) -> str:
    """The model's greedy continuation of ``prompt`` (the new text only)."""
    if not prompt:
        raise ValueError("--prompt is empty")
    model.eval()
    enc = tokenizer(prompt, return_tensors="pt")
    device = next(model.parameters()).device
    ids = enc["input_ids"].to(device)
    out = model.generate(ids, attention_mask=enc.get("attention_mask", torch.ones_like(ids)).to(device),
                         max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
                         pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None
                         else tokenizer.eos_token_id)
    return str(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))


def lm_result(start_metrics: dict[str, float] | None, train_enc: dict[str, Any],
              eval_encs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What a causal-lm run adds to ``result.json``: the starting (dense) perplexities, the windows used
    (after ``--train-limit`` / ``--eval-limit``) and each split's whole length in tokens (before them)."""
    return {"start_metrics": start_metrics, "train_windows": len(train_enc["features"]),
            "train_tokens": train_enc["tokens"],
            "eval_windows": {s: len(e["features"]) for s, e in eval_encs.items()},
            "eval_tokens": {s: e["tokens"] for s, e in eval_encs.items()}}


def generate_from_run(run_dir: str, prompt: str, *, max_new_tokens: int = 40) -> str:
    """The greedy continuation of ``prompt`` by the model of a causal-lm run (``RUN/model``) or of a model
    folder (an export); ``ValueError`` naming the folder if it holds no causal LM."""
    import logging
    from pathlib import Path

    import transformers as tf

    from ..export.run import find_run_layout
    from .lm_models import check_causal_lm_dir

    model_dir, _ = find_run_layout(Path(run_dir), require_pruner=False)
    check_causal_lm_dir(model_dir, str(run_dir))
    verbosity = tf.logging.get_verbosity()
    tf.logging.set_verbosity(logging.ERROR)
    try:
        tokenizer = tf.AutoTokenizer.from_pretrained(str(model_dir))
        model = tf.AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    finally:
        tf.logging.set_verbosity(verbosity)
    return greedy_continuation(model, tokenizer, prompt, max_new_tokens=max_new_tokens)
