"""Your own labelled data: ``text-classification`` from files, ``image-classification`` from an ImageFolder.

``text-classification`` reads ``DIR/train.*`` and ``DIR/validation.*`` (``.csv .tsv .jsonl .json
.parquet``) through ``datasets``; one text column (``--text-column``, default ``text`` or else
``sentence``), an optional second one for sentence pairs (``--text-pair-column``) and a label column
(``--label-column``, default ``label``). Labels are strings or integers; the label set is the sorted set
of the training split's labels (so the number of labels is the number of distinct training labels), and
the model's ``id2label``/``label2id`` follow it. A validation label that training never shows is an
error naming the file, the row and the label.

``image-classification`` reads ``DIR/train/<class>/<image>`` and ``DIR/val/<class>/<image>`` (or
``validation/``); the classes are the training folder's subfolders, sorted by name.

Rows are numbered from 1 in error messages, not counting a CSV/TSV header.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["TEXT_SUFFIXES", "check_distinct_columns", "find_split_file", "read_table", "load_text_classification", "label_set"]

TEXT_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
#: ``datasets`` builder of each suffix
_BUILDERS = {".csv": "csv", ".tsv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
DEFAULT_TEXT_COLUMNS = ("text", "sentence")
DEFAULT_LABEL_COLUMN = "label"


def find_split_file(root: Path, split: str) -> Path:
    """``root/<split>.<suffix>`` for exactly one of :data:`TEXT_SUFFIXES`."""
    found = [root / f"{split}{s}" for s in TEXT_SUFFIXES if (root / f"{split}{s}").is_file()]
    if not found:
        raise FileNotFoundError(f"--data-dir {root}: no {split}{{{','.join(TEXT_SUFFIXES)}}} file")
    if len(found) > 1:
        raise ValueError(f"--data-dir {root}: more than one {split} file ({', '.join(p.name for p in found)}); "
                         f"keep one")
    return found[0]


def read_table(path: Path) -> dict[str, list[Any]]:
    """The columns of one file, read by ``datasets`` (its arrow cache in a temporary folder, removed after)."""
    import datasets

    _check_has_rows(path)
    kwargs: dict[str, Any] = {"delimiter": "\t"} if path.suffix == ".tsv" else {}
    bars_were_off = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()  # reading a small file: no "Generating split" bars
    try:
        with tempfile.TemporaryDirectory(prefix="sevenprune-data-") as cache:
            ds = datasets.load_dataset(_BUILDERS[path.suffix], data_files={"data": str(path)}, split="data",
                                       cache_dir=cache, **kwargs)
            columns: dict[str, list[Any]] = ds.to_dict()
    except Exception as exc:  # datasets/pandas/pyarrow raise many types; all mean "not this format"
        cause = exc.__cause__ or exc
        text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        if isinstance(cause, UnicodeDecodeError):
            text = "not UTF-8 text"
        raise ValueError(f"{path} cannot be read as {path.suffix[1:]} ({text})") from None
    finally:
        if not bars_were_off:
            datasets.enable_progress_bars()
    if not columns or not next(iter(columns.values())):
        raise ValueError(f"{path} holds no rows")
    _check_separator(columns, path)
    return columns


def _check_has_rows(path: Path) -> None:
    """A csv/tsv/jsonl file with a header only (or nothing) is named as such (``datasets`` would say
    'Instruction "data" corresponds to no data!'). Reads the first lines only."""
    if path.suffix not in (".csv", ".tsv", ".jsonl"):
        return
    lines = 0
    with open(path, "rb") as f:
        for line in f:
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return  # not text: the reader says so
            lines += bool(line.strip())
            if lines >= 2:
                return
    if path.suffix == ".jsonl" and lines == 1:
        return
    raise ValueError(f"{path} is empty" if not lines else f"{path} holds a header line but no rows")


def _check_separator(columns: dict[str, list[Any]], path: Path) -> None:
    """One column whose name holds the other separator: a TSV named .csv (or a CSV named .tsv)."""
    if len(columns) != 1:
        return
    (header,) = columns
    other = {".csv": ("\t", "tab-separated", ".tsv"), ".tsv": (",", "comma-separated", ".csv")}.get(path.suffix)
    if other is not None and other[0] in header:
        raise ValueError(f"{path} looks {other[1]} (its one column is named {header!r}), but {path.suffix} files are "
                         f"read as {'comma' if path.suffix == '.csv' else 'tab'}-separated: rename it to "
                         f"{path.stem}{other[2]}")


def _label(value: Any, path: Path, row: int, column: str) -> str | int:
    """A label as a string or an integer (an integral float, as pandas reads an int column with gaps, too)."""
    if isinstance(value, bool) or value is None or (isinstance(value, float) and value != value):
        raise ValueError(f"{path}: row {row}: no label in column {column!r} (got {value!r})")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"{path}: row {row}: label {value!r} in column {column!r} is neither a string nor an integer")


def label_set(labels: list[str | int], path: Path) -> list[str | int]:
    """The sorted distinct labels (integers numerically, strings alphabetically; a mix is refused)."""
    kinds = {type(x) for x in labels}
    if len(kinds) > 1:
        raise ValueError(f"{path}: the labels mix integers and strings (e.g. {labels[0]!r}); use one kind")
    distinct = sorted(set(labels))
    if len(distinct) < 2:
        raise ValueError(f"{path}: the training labels take {len(distinct)} value(s) {distinct}; classification "
                         f"needs at least 2")
    return distinct


def _text_column(cols: dict[str, list[Any]], path: Path, wanted: str | None, option: str) -> str:
    if wanted is not None:
        if wanted not in cols:
            raise ValueError(f"{path}: no column {wanted!r} ({option}); columns are {sorted(cols)}")
        return wanted
    for name in DEFAULT_TEXT_COLUMNS:
        if name in cols:
            return name
    raise ValueError(f"{path}: no column 'text' or 'sentence'; name the text column with --text-column "
                     f"(columns are {sorted(cols)})")


def _texts(cols: dict[str, list[Any]], column: str, path: Path) -> list[str]:
    out = []
    for row, value in enumerate(cols[column], 1):
        # a column of numbers is read as numbers: still text to a tokenizer; a gap is not
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            value = str(value)
        if not isinstance(value, str):
            raise ValueError(f"{path}: row {row}: column {column!r} holds {value!r}, not text")
        out.append(value)
    return out


def check_distinct_columns(text_column: str | None, text_pair_column: str | None, label_column: str | None,
                           where: Any = "") -> None:
    """Refuse one column in two roles (the label would be trained on as text)."""
    roles = [("--text-column", text_column), ("--text-pair-column", text_pair_column),
             ("--label-column", label_column or DEFAULT_LABEL_COLUMN)]
    for i, (flag, column) in enumerate(roles):
        for other_flag, other in roles[i + 1:]:
            if column is not None and column == other:
                prefix = f"{where}: " if where else ""
                raise ValueError(f"{prefix}column {column!r} is both {flag} and {other_flag}; give each role its "
                                 "own column")


def load_text_classification(data_dir: str | os.PathLike[str], *, text_column: str | None = None,
                             text_pair_column: str | None = None,
                             label_column: str | None = None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(train columns, validation columns, info)``; columns ``text`` (``text_pair``) and ``label`` (ids).

    ``info`` records the files, the columns used and ``labels`` (id -> label, the training label set).
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"--data-dir {str(root)!r} is not a folder")
    label_column = label_column or DEFAULT_LABEL_COLUMN
    files = {s: find_split_file(root, s) for s in ("train", "validation")}
    raw = {s: read_table(p) for s, p in files.items()}
    text_col = _text_column(raw["train"], files["train"], text_column, "--text-column")
    check_distinct_columns(text_col, text_pair_column, label_column, files["train"])
    splits: dict[str, dict[str, Any]] = {}
    labels: list[str | int] = []
    for split, path in files.items():
        cols = raw[split]
        for column, option in ((text_col, "--text-column"), (text_pair_column, "--text-pair-column"),
                               (label_column, "--label-column")):
            if column is not None and column not in cols:
                raise ValueError(f"{path}: no column {column!r} ({option}); columns are {sorted(cols)}")
        values = [_label(v, path, row, label_column) for row, v in enumerate(cols[label_column], 1)]
        if split == "train":
            labels = label_set(values, path)
            ids = {label: i for i, label in enumerate(labels)}
        else:
            if {type(v) for v in values} - {type(labels[0])}:
                bad = next(v for v in values if not isinstance(v, type(labels[0])))
                row = values.index(bad) + 1
                raise ValueError(f"{path}: row {row}: label {bad!r} is not among the training labels {labels} "
                                 f"({files['train'].name})")
            unseen = next(((row, v) for row, v in enumerate(values, 1) if v not in ids), None)
            if unseen is not None:
                raise ValueError(f"{path}: row {unseen[0]}: label {unseen[1]!r} does not occur in the training "
                                 f"split ({files['train'].name}); training labels are {labels}")
        out: dict[str, Any] = {"text": _texts(cols, text_col, path)}
        if text_pair_column is not None:
            out["text_pair"] = _texts(cols, text_pair_column, path)
        out["label"] = [ids[v] for v in values]
        splits[split] = out
    info = {"files": {s: str(p) for s, p in files.items()}, "text_column": text_col,
            "text_pair_column": text_pair_column, "label_column": label_column, "labels": labels}
    return splits["train"], splits["validation"], info
