"""What a task is: :class:`TaskSpec` and the registry of tasks, and :class:`TaskData`, the splits a
loader returns (see :mod:`sevenprune.tasks.loading`).

>>> get_task("cola").metric
'mcc'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Columns", "TaskSpec", "TaskData", "TASKS", "USER_DATA_TASKS", "NO_DATA_DIR_TASKS", "get_task",
           "task_names", "num_rows", "subsample"]

Columns = dict[str, Any]


@dataclass(frozen=True)
class TaskSpec:
    """What a task is: its kind, inputs, label column, evaluation splits and main metric."""

    name: str
    kind: str  # "classification" | "regression" | "squad" | "image" | "causal-lm"
    num_labels: int
    text_keys: tuple[str, ...] = ()
    label_key: str = "label"
    eval_splits: tuple[str, ...] = ("validation",)
    metric: str = "accuracy"
    hf_path: tuple[str, ...] = ()
    image_key: str = "image"
    image_size: int = 224
    description: str = ""


TASKS: dict[str, TaskSpec] = {t.name: t for t in [
    TaskSpec("mr", "classification", 2, ("sentence",), eval_splits=("test",),
             description="movie-review sentences from the vaderSentiment 3.3.2 sdist (offline default)"),
    TaskSpec("cola", "classification", 2, ("sentence",), metric="mcc", hf_path=("glue", "cola"),
             description="GLUE CoLA, Matthews correlation"),
    TaskSpec("sst2", "classification", 2, ("sentence",), hf_path=("glue", "sst2"), description="GLUE SST-2"),
    TaskSpec("mrpc", "classification", 2, ("sentence1", "sentence2"), metric="f1", hf_path=("glue", "mrpc"),
             description="GLUE MRPC, F1 (and accuracy)"),
    TaskSpec("stsb", "regression", 1, ("sentence1", "sentence2"), metric="pearson", hf_path=("glue", "stsb"),
             description="GLUE STS-B, Pearson (and Spearman)"),
    TaskSpec("qqp", "classification", 2, ("question1", "question2"), hf_path=("glue", "qqp"),
             description="GLUE QQP, accuracy (and F1)"),
    TaskSpec("mnli", "classification", 3, ("premise", "hypothesis"),
             eval_splits=("validation_matched", "validation_mismatched"), hf_path=("glue", "mnli"),
             description="GLUE MNLI, matched and mismatched accuracy"),
    TaskSpec("qnli", "classification", 2, ("question", "sentence"), hf_path=("glue", "qnli"), description="GLUE QNLI"),
    TaskSpec("rte", "classification", 2, ("sentence1", "sentence2"), hf_path=("glue", "rte"), description="GLUE RTE"),
    TaskSpec("squad", "squad", 2, ("question", "context"), label_key="answers", metric="f1",
             hf_path=("squad",), description="SQuAD v1.1 span extraction, exact match and F1"),
    TaskSpec("cifar10", "image", 10, label_key="label", eval_splits=("test",), hf_path=("cifar10",),
             image_key="img", image_size=32, description="CIFAR-10 (ViT)"),
    TaskSpec("cifar100", "image", 100, label_key="fine_label", eval_splits=("test",), hf_path=("cifar100",),
             image_key="img", image_size=32, description="CIFAR-100 (ViT)"),
    TaskSpec("imagenet", "image", 1000, eval_splits=("validation",), image_size=224,
             description="ImageNet from an ImageFolder directory (--data-dir)"),
    TaskSpec("fashion_mnist", "image", 10, eval_splits=("test",), image_size=28,
             description="Fashion-MNIST from the Debian package dataset-fashion-mnist (offline image default)"),
    # the number of labels of these two comes from the data (see userdata.py)
    TaskSpec("text-classification", "classification", 0, ("text",),
             description="your own labelled text: --data-dir with train.* and validation.* "
                         "(csv, tsv, jsonl, json, parquet)"),
    TaskSpec("image-classification", "image", 0, eval_splits=("validation",), image_size=224,
             description="your own images: --data-dir with train/<class>/ and val/<class>/ (an ImageFolder)"),
    # language modelling (see lm_data.py): perplexity, lower is better; "test" = the held-out plays
    TaskSpec("causal-lm", "causal-lm", 0, ("text",), eval_splits=("test", "ptb"), metric="perplexity",
             description="a decoder LM (default smollm2) on the Shakespeare plays, perplexity on the test plays "
                         "and PTB; or --data-dir with train.txt and validation.txt"),
]}
#: tasks that read --data-dir and nothing else
USER_DATA_TASKS = ("text-classification", "image-classification", "imagenet")
#: tasks that never read --data-dir
NO_DATA_DIR_TASKS = ("mr",)


def task_names() -> list[str]:
    """Every task name, in a fixed order."""
    return list(TASKS)


def get_task(name: str) -> TaskSpec:
    """The :class:`TaskSpec` of ``name``; ``ValueError`` naming the choices otherwise."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {task_names()}")
    return TASKS[name]


@dataclass
class TaskData:
    """A task's splits: ``train`` and ``evals`` (split name -> columns); columns are equal-length."""

    spec: TaskSpec
    train: Columns
    evals: dict[str, Columns]
    info: dict[str, Any] = field(default_factory=dict)


def num_rows(columns: Columns) -> int:
    """Length of a split (all columns have it)."""
    return len(next(iter(columns.values()))) if columns else 0


def subsample(columns: Columns, limit: int | None, seed: int) -> Columns:
    """At most ``limit`` rows, chosen by a seeded permutation (the same rows for the same seed)."""
    n = num_rows(columns)
    if limit is None or limit >= n:
        return columns
    idx = np.sort(np.random.default_rng(seed).permutation(n)[:limit])
    return {k: (v[idx] if isinstance(v, np.ndarray) else [v[i] for i in idx]) for k, v in columns.items()}
