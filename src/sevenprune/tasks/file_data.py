"""Task data read from files: Fashion-MNIST's idx files, ImageFolder directories, and local tables
(``train.*``/``validation.*`` as csv, tsv, jsonl, json, parquet, or a ``datasets`` ``save_to_disk``
folder; SQuAD's official JSON) (see :mod:`sevenprune.tasks.loading`)."""

from __future__ import annotations

import csv
import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .specs import TASKS, Columns, TaskData, TaskSpec

__all__ = ["FASHION_MNIST_DIR", "read_idx", "load_fashion_mnist", "load_image_folder", "check_image_file", "LOCAL_SUFFIXES",
           "flatten_squad_json", "load_local_splits", "local_split_file"]


# -- Fashion-MNIST (idx files) --------------------------------------------------------------------------
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an idx file (optionally gzipped): big-endian magic 0x0000<type><ndim>, dims, uint8 data."""
    opener: Callable[..., Any] = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an idx file of unsigned bytes")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} but holds {data.size} bytes")
    return data.reshape(dims).copy()  # writable, not a view of the file's bytes


def load_fashion_mnist(data_dir: str | os.PathLike[str] | None = None) -> TaskData:
    """Fashion-MNIST from ``train-*-idx*-ubyte[.gz]`` and ``t10k-*`` files."""
    root = Path(data_dir) if data_dir else FASHION_MNIST_DIR

    def find(stem: str) -> Path:
        for suffix in (".gz", ""):
            p = root / f"{stem}{suffix}"
            if p.exists():
                return p
        raise FileNotFoundError(
            f"no {stem}[.gz] in {root}: install the Debian package (apt-get install dataset-fashion-mnist) "
            f"or pass --data-dir")

    def split(prefix: str) -> Columns:
        images = read_idx(find(f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(find(f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
        if len(images) != len(labels):
            raise ValueError(f"{root}: {len(images)} {prefix} images but {len(labels)} labels")
        return {"image": images, "label": labels}

    return TaskData(TASKS["fashion_mnist"], split("train"), {"test": split("t10k")})


# -- ImageFolder ----------------------------------------------------------------------------------------
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff"}


def _check_inside(path: Path, root: Path) -> None:
    """Refuse a link from the data folder to anything outside it (a file of someone else's, or one that
    may change under the run)."""
    if path.is_symlink() and not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{path} is a symbolic link to {path.resolve()}, outside --data-dir {root}; copy the "
                         "file into the folder instead")


def check_image_file(path: Path, root: Path) -> None:
    """Refuse, naming ``path``, a file that is not an image: a link outside ``root``, not a plain file, or
    a header (and, for PNG, the chunk structure: a truncated file) that PIL cannot read. Cheap: nothing is
    decoded; an image damaged beyond what this sees is named when it is loaded (:func:`image_tensor`)."""
    from PIL import Image, UnidentifiedImageError

    _check_inside(path, root)
    if not path.is_file():
        raise ValueError(f"{path} is not a file (an image was expected)")
    try:
        with Image.open(path) as im:
            width, height = im.size
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{path} is not a readable image ({reason})") from None
    if width < 1 or height < 1:
        raise ValueError(f"{path} is an empty image ({width} x {height})")


def load_image_folder(data_dir: str | os.PathLike[str], task: str = "imagenet") -> TaskData:
    """``data_dir/train/<class>/<image>`` and ``data_dir/val/<class>/<image>`` (classes sorted by name)."""
    root = Path(data_dir)
    train_dir = root / "train"
    val_dir = next((root / d for d in ("val", "validation") if (root / d).is_dir()), None)
    if not train_dir.is_dir() or val_dir is None:
        raise FileNotFoundError(f"--data-dir {root} must hold train/<class>/... and val/<class>/... image folders")
    classes = sorted(d.name for d in train_dir.iterdir() if d.is_dir())
    if len(classes) < 2:
        raise ValueError(f"{train_dir} holds {len(classes)} class folder(s); classification needs at least 2")
    index = {c: i for i, c in enumerate(classes)}

    def split(d: Path) -> Columns:
        paths, labels = [], []
        for c in sorted(x.name for x in d.iterdir() if x.is_dir()):
            if c not in index:
                raise ValueError(f"{d}: class folder {c!r} is not among the training classes")
            _check_inside(d / c, root)
            found = [f for f in sorted((d / c).iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
            if not found:
                raise ValueError(f"{d / c}: the class folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                                 "add images or remove the folder")
            for f in found:
                check_image_file(f, root)
                paths.append(str(f))
                labels.append(index[c])
        return {"image": paths, "label": labels}

    spec = TASKS[task]
    if len(classes) != spec.num_labels:
        spec = TaskSpec(**{**spec.__dict__, "num_labels": len(classes)})
    train, validation = split(train_dir), split(val_dir)
    for d, cols in ((train_dir, train), (val_dir, validation)):
        if not cols["image"]:
            raise ValueError(f"{d} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return TaskData(spec, train, {"validation": validation}, {"classes": classes, "labels": classes})


# -- local files in the Hugging Face format ------------------------------------------------------------
LOCAL_SUFFIXES = (".jsonl", ".json", ".tsv", ".csv", ".parquet")


def flatten_squad_json(obj: dict[str, Any]) -> Columns:
    """The official SQuAD v1.1 JSON (``data -> paragraphs -> qas``) as flat Hugging Face columns."""
    cols: Columns = {"id": [], "title": [], "context": [], "question": [], "answers": []}
    for article in obj["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                cols["id"].append(str(qa["id"]))
                cols["title"].append(article.get("title", ""))
                cols["context"].append(para["context"])
                cols["question"].append(qa["question"])
                cols["answers"].append({"text": [a["text"] for a in qa["answers"]],
                                        "answer_start": [int(a["answer_start"]) for a in qa["answers"]]})
    return cols


def _read_table(path: Path) -> Columns:
    from .userdata import _check_separator

    try:
        columns = _parse_table(path)
        _check_separator(columns, path)
        return columns
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    except (json.JSONDecodeError, csv.Error) as exc:
        raise ValueError(f"{path} cannot be parsed ({str(exc).splitlines()[0]})") from None
    except (KeyError, TypeError, AttributeError) as exc:  # JSON of another shape than rows of objects
        raise ValueError(f"{path}: expected rows of {{column: value}} objects ({type(exc).__name__}: {exc})") from None


def _parse_table(path: Path) -> Columns:
    suffix = path.suffix.lower()
    rows: list[dict[str, Any]]
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return {k: list(v) for k, v in pq.read_table(path).to_pydict().items()}
        except (pa.ArrowException, OSError) as exc:
            raise ValueError(f"{path} is not a readable parquet file ({str(exc).splitlines()[0]})") from None
    if suffix in (".tsv", ".csv"):
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",", quoting=csv.QUOTE_NONE
                                       if suffix == ".tsv" else csv.QUOTE_MINIMAL))
    else:
        text = path.read_text(encoding="utf-8")
        stripped = text.lstrip()
        if suffix == ".json" and stripped.startswith("{"):
            obj = json.loads(text)
            if isinstance(obj, dict) and isinstance(obj.get("data"), list) and obj["data"] and "paragraphs" in obj["data"][0]:
                return flatten_squad_json(obj)
            rows = obj if isinstance(obj, list) else [obj]
        elif stripped.startswith("["):
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{path} holds no rows")
    return {k: [r.get(k) for r in rows] for k in rows[0]}


def load_local_splits(data_dir: str | os.PathLike[str], splits: tuple[str, ...]) -> dict[str, Columns]:
    """Splits from ``data_dir``: a ``datasets`` ``save_to_disk`` directory or ``<split>.<suffix>`` files."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"--data-dir {str(root)!r} is not a directory")
    if (root / "dataset_dict.json").exists():
        import datasets

        try:
            dd = datasets.load_from_disk(str(root))
        except Exception as exc:  # datasets raises several types for damaged save_to_disk folders
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ValueError(f"--data-dir {root} is not a readable datasets save_to_disk folder ({first})") from None
        missing = [s for s in splits if s not in dd]
        if missing:
            raise ValueError(f"{root} has splits {list(dd)}, missing {missing}")
        return {s: dd[s][:] for s in splits}
    return {s: _read_table(local_split_file(root, s)) for s in splits}


def local_split_file(root: Path, split: str) -> Path:
    """The file ``root/<split>.<suffix>`` that :func:`load_local_splits` reads."""
    files = [root / f"{split}{suf}" for suf in LOCAL_SUFFIXES if (root / f"{split}{suf}").exists()]
    if not files:
        raise FileNotFoundError(f"no {split}{{{','.join(LOCAL_SUFFIXES)}}} in {root}")
    return files[0]
