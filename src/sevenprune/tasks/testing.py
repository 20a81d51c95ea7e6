"""Tiny offline stand-ins for the real sources, for tests and for trying the CLI without downloads:
a tiny random BERT with a hand-built WordPiece vocabulary, a fake vaderSentiment sdist, idx files.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import tarfile
from pathlib import Path

import numpy as np

__all__ = ["WORDS", "make_tiny_bert", "make_fake_vader_sdist", "write_idx", "fake_sentences"]

POSITIVE = ["good", "great", "fun", "moving", "smart", "lovely", "brilliant", "funny"]
NEGATIVE = ["bad", "dull", "boring", "awful", "stupid", "weak", "messy", "tedious"]
NEUTRAL = ["the", "a", "film", "movie", "is", "was", "story", "plot", "actors", "and", "very", "quite", "it"]
WORDS = POSITIVE + NEGATIVE + NEUTRAL


def make_tiny_bert(path: str | os.PathLike[str], *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Save a tiny random ``BertModel`` config + weights and a WordPiece tokenizer to ``path``.

    ``AutoModelForSequenceClassification.from_pretrained(path, num_labels=k)`` and
    ``AutoTokenizer.from_pretrained(path)`` load it (the head is initialised then).
    """
    import torch

    # BertTokenizerFast: in transformers 5 a runtime alias of BertTokenizer, outside its type hints
    from transformers import BertConfig, BertModel, BertTokenizerFast  # type: ignore[attr-defined]

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + list("abcdefghijklmnopqrstuvwxyz") \
        + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"] + list("0123456789.,'!?")
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # transformers 5 takes the vocabulary as `vocab` (4.x: `vocab_file`); a dict works in both
    tokenizer = BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True)
    tokenizer.save_pretrained(str(path))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=128)
    BertModel(config).save_pretrained(str(path))
    return path


def fake_sentences(n: int, seed: int = 0) -> list[tuple[str, float]]:
    """``n`` (sentence, score) pairs whose sign follows the sentiment words (some scores exactly 0)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        positive = rng.random() < 0.5
        words = rng.sample(NEUTRAL, 4) + [rng.choice(POSITIVE if positive else NEGATIVE)]
        rng.shuffle(words)
        score = 0.0 if i % 10 == 9 else round(rng.uniform(0.1, 3.0) * (1 if positive else -1), 6)
        out.append((" ".join(words).capitalize() + ".", score))
    return out


def make_fake_vader_sdist(path: str | os.PathLike[str], rows: list[tuple[str, float]]) -> Path:
    """A ``vaderSentiment-3.3.2.tar.gz`` laid out like the real one (an inner ``hutto_ICWSM_2014.tar.gz``
    holding ``movieReviewSnippets_GroundTruth.txt``: id TAB score TAB sentence, CRLF line ends)."""
    text = "".join(f"{i}\t{score}\t{sentence}\r\n" for i, (sentence, score) in enumerate(rows, 1))

    def tar_gz(members: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    inner = tar_gz({"hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt": text.encode("utf-8"),
                    "hutto_ICWSM_2014/tweets_GroundTruth.txt": b"1\t0.5\tnot this one\r\n"})
    outer = tar_gz({"vaderSentiment-3.3.2/setup.py": b"",
                    "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": inner})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(outer)
    return path


def write_idx(path: str | os.PathLike[str], array: np.ndarray, *, gz: bool = True) -> Path:
    """Write a uint8 array as an idx file (the MNIST format), gzipped if ``gz``."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    data = header + a.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path
