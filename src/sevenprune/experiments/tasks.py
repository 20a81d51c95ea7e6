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

>>> get_task("cola").metric
'mcc'
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "TaskSpec", "TaskData", "TASKS", "get_task", "task_names", "load_task", "default_cache_dir",
    "fetch_vader_sdist", "DownloadError", "parse_vader_sdist", "load_mr", "read_idx", "load_fashion_mnist",
    "load_image_folder", "load_local_splits", "flatten_squad_json",
]

Columns = dict[str, Any]


@dataclass(frozen=True)
class TaskSpec:
    """What a task is: its kind, inputs, label column, evaluation splits and main metric."""

    name: str
    kind: str  # "classification" | "regression" | "squad" | "image"
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


# -- mr: the vaderSentiment sdist ---------------------------------------------------------------------
VADER_VERSION = "3.3.2"
VADER_SDIST = f"vaderSentiment-{VADER_VERSION}.tar.gz"
#: sha256 and size of the sdist on PyPI (checked after download and on every use)
VADER_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
VADER_SIZE = 2466783
MR_MEMBER = "movieReviewSnippets_GroundTruth.txt"
MR_SPLIT_SEED = 2014
MR_TEST_SIZE = 2000


def default_cache_dir() -> Path:
    """``$SEVENPRUNE_CACHE`` if set, else ``~/.cache/sevenprune``."""
    env = os.environ.get("SEVENPRUNE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "sevenprune"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class DownloadError(OSError, RuntimeError):
    """The mr data could not be downloaded (an OSError for the command line; a RuntimeError as before)."""


def fetch_vader_sdist(cache_dir: str | os.PathLike[str] | None = None, *, sha256: str | None = None) -> Path:
    """Path of the checked ``vaderSentiment-3.3.2.tar.gz`` in ``cache_dir``, downloading it with pip once.

    The download is ``python -m pip download --no-deps --no-binary :all: --require-hashes -r REQ``
    where ``REQ`` pins ``vaderSentiment==3.3.2 --hash=sha256:...``: pip checks the archive's hash as
    soon as it is downloaded, before it unpacks it or runs any of its build code (``pip download``
    prepares an sdist's metadata, which runs its ``setup.py``). The file is checked again here, and
    on every use; a file whose sha256 differs is refused (delete it to fetch again).
    """
    expected = VADER_SHA256 if sha256 is None else sha256
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / VADER_SDIST
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            requirements = Path(tmp) / "requirements.txt"
            requirements.write_text(f"vaderSentiment=={VADER_VERSION} --hash=sha256:{expected}\n", encoding="utf-8")
            download = Path(tmp) / "download"
            download.mkdir()
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "--require-hashes",
                   "-r", str(requirements), "-d", str(download)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            got = download / VADER_SDIST
            if proc.returncode != 0 or not got.exists():
                tail = [x for x in (proc.stderr or proc.stdout).splitlines() if x.strip()][-3:]
                raise DownloadError(
                    f"could not download the mr data into {cache} (pip download of vaderSentiment=={VADER_VERSION} "
                    f"with its sha256: {' / '.join(tail) or 'no output'}); put {VADER_SDIST} there by hand, or "
                    f"choose another --cache-dir")
            if _sha256(got) != expected:  # pip checked it; a second look costs nothing
                raise ValueError(f"the downloaded {VADER_SDIST} has sha256 {_sha256(got)}, expected {expected}")
            os.replace(got, path)
    actual = _sha256(path)
    if actual != expected:
        raise ValueError(f"{path} has sha256 {actual}, expected {expected} (size {path.stat().st_size}, "
                         f"expected {VADER_SIZE}); delete it to download it again")
    return path


def parse_vader_sdist(sdist: str | os.PathLike[str]) -> tuple[list[str], list[float]]:
    """The sentences and mean scores of ``movieReviewSnippets_GroundTruth.txt`` inside the sdist."""
    with tarfile.open(sdist, "r:gz") as outer:
        inner_name = next((m.name for m in outer.getmembers()
                           if m.name.endswith("additional_resources/hutto_ICWSM_2014.tar.gz")), None)
        if inner_name is None:
            raise ValueError(f"{sdist} holds no additional_resources/hutto_ICWSM_2014.tar.gz")
        inner_bytes = outer.extractfile(inner_name).read()  # type: ignore[union-attr]
    with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:gz") as inner:
        member = next((m.name for m in inner.getmembers() if m.name.endswith(MR_MEMBER)), None)
        if member is None:
            raise ValueError(f"{sdist}: hutto_ICWSM_2014.tar.gz holds no {MR_MEMBER}")
        text = inner.extractfile(member).read().decode("utf-8")  # type: ignore[union-attr]
    sentences, scores = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != 3:
            raise ValueError(f"{MR_MEMBER} line {lineno}: expected 'id<TAB>score<TAB>sentence', got {line[:80]!r}")
        scores.append(float(parts[1]))
        sentences.append(parts[2].strip())
    return sentences, scores


def load_mr(cache_dir: str | os.PathLike[str] | None = None, *, test_size: int | None = None,
            sha256: str | None = None) -> TaskData:
    """The ``mr`` task: label = score > 0, zero scores dropped, a fixed seeded train/test split
    (``test_size`` sentences for the test set, default :data:`MR_TEST_SIZE` = 2,000)."""
    test_size = MR_TEST_SIZE if test_size is None else test_size
    sentences, scores = parse_vader_sdist(fetch_vader_sdist(cache_dir, sha256=sha256))
    kept = [(s, int(v > 0)) for s, v in zip(sentences, scores) if v != 0]
    if len(kept) <= test_size:
        raise ValueError(f"mr: only {len(kept)} labelled sentences, cannot hold out {test_size} for the test set")
    order = np.random.default_rng(MR_SPLIT_SEED).permutation(len(kept))

    def cols(idx: np.ndarray) -> Columns:
        return {"sentence": [kept[i][0] for i in idx], "label": [kept[i][1] for i in idx]}

    return TaskData(TASKS["mr"], cols(order[test_size:]), {"test": cols(order[:test_size])},
                    {"sentences": len(sentences), "dropped_zero": len(sentences) - len(kept)})


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
            for f in sorted((d / c).iterdir()):
                if f.suffix.lower() in IMAGE_SUFFIXES:
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
    try:
        return _parse_table(path)
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
