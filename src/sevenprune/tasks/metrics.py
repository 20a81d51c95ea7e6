"""Evaluation metrics, computed once over the whole evaluation set (never averaged over batches).

>>> round(classification_metrics([1, 0, 1, 1], [1, 0, 0, 1])["accuracy"], 2)
0.75
>>> squad_f1("The cat sat", "a cat sat down")
0.8
"""

from __future__ import annotations

import collections
import re
import string
import warnings
from collections.abc import Sequence

import numpy as np

__all__ = [
    "classification_metrics",
    "regression_metrics",
    "normalize_answer",
    "squad_exact_match",
    "squad_f1",
    "squad_metrics",
]


def classification_metrics(preds: Sequence[int] | np.ndarray, labels: Sequence[int] | np.ndarray,
                           *, num_labels: int = 2) -> dict[str, float]:
    """Accuracy, F1 (of class 1 for two classes, macro otherwise) and Matthews correlation.

    >>> m = classification_metrics([1, 1, 0, 0], [1, 0, 0, 0])
    >>> round(m["f1"], 4), round(m["mcc"], 4)
    (0.6667, 0.5774)
    """
    from sklearn.metrics import f1_score, matthews_corrcoef

    p, y = np.asarray(preds).astype(int), np.asarray(labels).astype(int)
    if p.shape != y.shape or p.size == 0:
        raise ValueError(f"preds and labels must be non-empty and of the same length, got {p.shape} and {y.shape}")
    average = "binary" if num_labels == 2 else "macro"
    with warnings.catch_warnings():
        # a single class in preds and labels makes MCC 0/0; sklearn warns and returns 0.0 (our choice too)
        warnings.simplefilter("ignore", UserWarning)
        mcc = float(matthews_corrcoef(y, p))
    return {
        "accuracy": float((p == y).mean()),
        "f1": float(f1_score(y, p, average=average, zero_division=0.0)),
        "mcc": mcc,
    }


def regression_metrics(preds: Sequence[float] | np.ndarray, labels: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlations (STS-B); NaN-free: a constant prediction gives 0.0.

    >>> regression_metrics([1.0, 2.0, 3.0], [1.0, 3.0, 2.0])["spearman"]
    0.5
    """
    from scipy.stats import pearsonr, spearmanr

    p, y = np.asarray(preds, dtype=float).ravel(), np.asarray(labels, dtype=float).ravel()
    if p.shape != y.shape or p.size < 2:
        raise ValueError(f"need at least two predictions and labels of the same length, got {p.shape} and {y.shape}")
    if np.ptp(p) == 0 or np.ptp(y) == 0:
        return {"pearson": 0.0, "spearman": 0.0, "mse": float(((p - y) ** 2).mean())}
    return {
        "pearson": float(pearsonr(p, y)[0]),
        "spearman": float(spearmanr(p, y)[0]),
        "mse": float(((p - y) ** 2).mean()),
    }


# -- SQuAD v1.1, as its official evaluation script (evaluate-v1.1.py) computes it ----------------------
def normalize_answer(s: str) -> str:
    """Lower case, remove punctuation, the articles a/an/the and extra whitespace (official SQuAD v1.1).

    >>> normalize_answer("The  Eiffel-Tower!")
    'eiffeltower'
    """
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def squad_exact_match(prediction: str, ground_truth: str) -> float:
    """1.0 if the normalised strings are equal."""
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def squad_f1(prediction: str, ground_truth: str) -> float:
    """Token-level F1 of the normalised strings (bag of tokens)."""
    pred, truth = normalize_answer(prediction).split(), normalize_answer(ground_truth).split()
    common = collections.Counter(pred) & collections.Counter(truth)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(truth)
    return 2 * precision * recall / (precision + recall)


def squad_metrics(predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> dict[str, float]:
    """Exact match and F1 in percent, each the max over an example's ground truths, averaged over examples.

    >>> squad_metrics(["Denver Broncos"], [["Denver Broncos", "The Broncos"]])
    {'exact_match': 100.0, 'f1': 100.0}
    """
    if len(predictions) != len(answers) or not predictions:
        raise ValueError(f"need one prediction per example, got {len(predictions)} for {len(answers)}")
    em = f1 = 0.0
    for pred, truths in zip(predictions, answers):
        truths = list(truths) or [""]
        em += max(squad_exact_match(pred, t) for t in truths)
        f1 += max(squad_f1(pred, t) for t in truths)
    n = len(predictions)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n}
