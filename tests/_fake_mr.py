"""The offline ``mr`` task of the CLI and sweep tests: a tiny BERT and a fake vaderSentiment sdist."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sevenprune.tasks import loading as tasks, mr_data
from sevenprune.tasks.testing import fake_sentences, make_fake_vader_sdist, make_tiny_bert


@contextlib.contextmanager
def fake_mr(root: Path, *, sentences: int, test_size: int, seed: int) -> Iterator[tuple[Path, Path]]:
    """Yield ``(tiny BERT directory, cache directory)``; while open, ``mr`` accepts the fake sdist
    (its sha256 is patched in) and holds out ``test_size`` sentences."""
    bert = make_tiny_bert(root / "bert")
    sdist = make_fake_vader_sdist(root / "cache" / tasks.VADER_SDIST, fake_sentences(sentences, seed=seed))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mr_data, "VADER_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest())
        mp.setattr(mr_data, "MR_TEST_SIZE", test_size)
        yield bert, root / "cache"
