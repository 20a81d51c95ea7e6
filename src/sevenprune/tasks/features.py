"""Turn task columns into model inputs (batches of tensors), and SQuAD logits back into answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .loading import Columns, TaskSpec, num_rows

__all__ = ["encode_text", "encode_squad", "squad_answers", "image_tensor", "collate", "Encoded"]

#: one encoded split: ``features`` (list of dicts of lists/tensors) plus what evaluation needs
Encoded = dict[str, Any]


def encode_text(spec: TaskSpec, cols: Columns, tokenizer: Any, max_length: int) -> Encoded:
    """Tokenised sentence (pairs) and labels; padding happens per batch in :func:`collate`."""
    texts = [list(map(str, cols[k])) for k in spec.text_keys]
    enc = tokenizer(*texts, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    labels = cols[spec.label_key]
    features = [{**{k: enc[k][i] for k in keys}, "labels": labels[i]} for i in range(len(labels))]
    return {"features": features, "labels": np.asarray(labels)}


def encode_squad(cols: Columns, tokenizer: Any, max_length: int, doc_stride: int, *, train: bool) -> Encoded:
    """Overlapping windows over each context (the usual Hugging Face recipe).

    Training features carry ``start_positions``/``end_positions`` (0 = the [CLS] token when the
    answer is not inside the window); evaluation features carry their example index and character
    offsets so that :func:`squad_answers` can map logits back to text.
    """
    questions = [q.lstrip() for q in cols["question"]]
    enc = tokenizer(questions, list(cols["context"]), truncation="only_second", max_length=max_length,
                    stride=doc_stride, return_overflowing_tokens=True, return_offsets_mapping=True)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    features, offsets_all, example_of = [], [], []
    for i in range(len(enc["input_ids"])):
        ex = int(enc["overflow_to_sample_mapping"][i])
        seq = enc.sequence_ids(i)
        offsets = enc["offset_mapping"][i]
        feat = {k: enc[k][i] for k in keys}
        if train:
            answer = cols["answers"][ex]
            start_char = answer["answer_start"][0]
            end_char = start_char + len(answer["text"][0])
            ctx = [j for j, s in enumerate(seq) if s == 1]
            s_pos = e_pos = 0
            if ctx and offsets[ctx[0]][0] <= start_char and offsets[ctx[-1]][1] >= end_char:
                s_pos = next(j for j in ctx if offsets[j][1] > start_char)
                e_pos = next(j for j in reversed(ctx) if offsets[j][0] < end_char)
            feat["start_positions"], feat["end_positions"] = s_pos, e_pos
        features.append(feat)
        offsets_all.append([o if s == 1 else None for o, s in zip(offsets, seq)])
        example_of.append(ex)
    return {"features": features, "offsets": offsets_all, "example_of": example_of,
            "contexts": list(cols["context"]),
            "answers": [list(a["text"]) for a in cols["answers"]]}


def squad_answers(encoded: Encoded, start_logits: Sequence[np.ndarray], end_logits: Sequence[np.ndarray],
                  *, n_best: int = 20, max_answer_length: int = 30) -> list[str]:
    """The best-scoring valid span (start <= end, inside the context, at most ``max_answer_length``
    tokens) of each example, over all of its windows."""
    n_examples = len(encoded["contexts"])
    best: list[tuple[float, str]] = [(-np.inf, "")] * n_examples
    for f, ex in enumerate(encoded["example_of"]):
        offsets, s_log, e_log = encoded["offsets"][f], start_logits[f], end_logits[f]
        starts = np.argsort(s_log)[::-1][:n_best]
        ends = np.argsort(e_log)[::-1][:n_best]
        for s in starts:
            for e in ends:
                if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                    continue
                if e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(s_log[s] + e_log[e])
                if score > best[ex][0]:
                    best[ex] = (score, encoded["contexts"][ex][offsets[s][0]:offsets[e][1]])
    return [text for _, text in best]


_IMAGE_MEAN = 0.5
_IMAGE_STD = 0.5


def image_tensor(item: Any, size: int) -> Tensor:
    """An image (uint8 array HxW[xC], PIL image or file path) as a normalised 3 x size x size tensor."""
    if isinstance(item, str):
        from PIL import Image

        try:
            with Image.open(item) as im:
                item = np.asarray(im.convert("RGB"))
        except (OSError, SyntaxError, ValueError, EOFError) as exc:  # PIL's errors for a damaged file
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"{item} is not a readable image ({reason})") from None
    elif not isinstance(item, np.ndarray):
        item = np.asarray(item.convert("RGB"))
    x = torch.tensor(np.asarray(item), dtype=torch.float32).div_(255.0)  # a copy: arrays may be read-only
    if x.ndim == 2:
        x = x.unsqueeze(-1)
    x = x.permute(2, 0, 1)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    elif x.shape[0] == 4:
        x = x[:3]
    if x.shape[1:] != (size, size):
        x = torch.nn.functional.interpolate(x.unsqueeze(0), size=(size, size), mode="bilinear",
                                            align_corners=False).squeeze(0)
    return (x - _IMAGE_MEAN) / _IMAGE_STD


def encode_images(spec: TaskSpec, cols: Columns, image_size: int) -> Encoded:
    """Images are turned into tensors lazily, batch by batch (see :func:`collate`)."""
    n = num_rows(cols)
    labels = np.asarray(cols["label"], dtype=np.int64)
    features = [{"image": cols["image"][i], "labels": int(labels[i])} for i in range(n)]
    return {"features": features, "labels": labels, "image_size": image_size}


def collate(features: Sequence[dict[str, Any]], *, pad_id: int = 0, image_size: int | None = None,
            regression: bool = False) -> dict[str, Tensor]:
    """Pad token sequences to the longest in the batch; stack images and labels."""
    batch: dict[str, Tensor] = {}
    first = features[0]
    if "image" in first:
        assert image_size is not None
        batch["pixel_values"] = torch.stack([image_tensor(f["image"], image_size) for f in features])
    else:
        width = max(len(f["input_ids"]) for f in features)
        for key in ("input_ids", "attention_mask", "token_type_ids"):
            if key in first:
                fill = pad_id if key == "input_ids" else 0
                batch[key] = torch.tensor([list(f[key]) + [fill] * (width - len(f[key])) for f in features])
    for key in ("labels", "start_positions", "end_positions"):
        if key in first:
            dtype = torch.float32 if (key == "labels" and regression) else torch.long
            batch[key] = torch.tensor([f[key] for f in features], dtype=dtype)
    return batch
