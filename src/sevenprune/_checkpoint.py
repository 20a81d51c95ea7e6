"""Reading a ``save_pretrained`` folder without ``from_pretrained``, for models whose layers no longer
match their config (:mod:`sevenprune.structured`) and for the compressed export
(:mod:`sevenprune.export`): the weights (one safetensors file or an index of shards, each shard name
checked to stay inside the folder), the model class named by the config, and a ``load_state_dict``
that accepts only the keys ``save_pretrained`` drops for tied weights as missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ._readers import read_json, read_safetensors

__all__ = ["checkpoint_names_to_model", "load_state_into", "model_class_for", "read_safetensors_dir"]


def model_class_for(config: Any, model_class: type[nn.Module] | None = None) -> type[nn.Module]:
    """The transformers class named first in ``config.architectures`` (or ``model_class``)."""
    if model_class is not None:
        return model_class
    import transformers

    names = getattr(config, "architectures", None) or []
    for name in names:
        cls = getattr(transformers, name, None)
        if isinstance(cls, type):
            return cls
    raise ValueError(
        f"cannot tell which transformers class to build: config.architectures is {names!r}; "
        "pass model_class=... (e.g. transformers.BertForSequenceClassification)"
    )


def checkpoint_names_to_model(model: nn.Module, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` with the checkpoint's tensor names renamed to the model's own, as ``from_pretrained`` does.

    transformers 5 keeps some models' old checkpoint names on disk while its modules carry new ones:
    ``save_pretrained`` of a ViT writes ``vit.encoder.layer.0.attention.attention.query.weight`` for
    the module ``vit.layers.0.attention.q_proj``, and ``from_pretrained`` renames it back with the
    model's conversion mapping. A checkpoint read without ``from_pretrained`` needs the same renaming.
    Only pure renamings are applied (names the model already has are kept); a conversion that changes
    tensors (merged experts, ...) is left alone, and the mismatch is reported by the caller.
    """
    own = model.state_dict(keep_vars=True)
    if all(k in own for k in state):
        return dict(state)
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightRenaming, rename_source_key

        renamings = [t for t in get_model_conversion_mapping(model)  # type: ignore[arg-type]
                     if type(t) is WeightRenaming]
    except (ImportError, AttributeError, TypeError):  # transformers 4 (no renaming) or not a transformers model
        return dict(state)
    renamed: dict[str, Tensor] = {}
    for key, tensor in state.items():
        new = key if key in own else rename_source_key(key, renamings, [])[0]
        renamed[new if new not in renamed else key] = tensor  # a clash keeps the original name (reported)
    return renamed


def load_state_into(model: nn.Module, state: Mapping[str, Tensor]) -> None:
    """``load_state_dict`` that accepts the keys ``save_pretrained`` drops for tied weights only; a
    checkpoint's old tensor names are first renamed to the model's (:func:`checkpoint_names_to_model`)."""
    state = checkpoint_names_to_model(model, state)
    try:
        result = model.load_state_dict(dict(state), strict=False)
    except RuntimeError as exc:  # size mismatches: the checkpoint's tensors do not fit the config
        lines = [x.strip() for x in str(exc).splitlines() if "size mismatch" in x]
        raise ValueError(f"the checkpoint does not fit its config: {lines[0] if lines else exc}") from None
    if result.unexpected_keys:
        raise ValueError(f"the checkpoint holds tensors the model does not have: {result.unexpected_keys[:5]}")
    if result.missing_keys:
        own = model.state_dict(keep_vars=True)
        loaded = {own[k].data_ptr() for k in state if k in own}
        untied = [k for k in result.missing_keys if own[k].data_ptr() not in loaded]
        if untied:
            raise ValueError(f"the checkpoint lacks tensors of the model: {untied[:5]}")


def _shard_path(directory: Path, index: Path, shard: Any) -> Path:
    """A shard named in ``index``, refused unless it is a plain file name inside ``directory`` (an
    index from elsewhere could otherwise make us read ``../../anything``)."""
    if not isinstance(shard, str) or not shard or Path(shard).name != shard or shard in (".", ".."):
        raise ValueError(f"{index}: shard name {shard!r} is not a file name inside {directory}")
    path = directory / shard
    if path.is_symlink() or not path.resolve().is_relative_to(directory.resolve()):
        raise ValueError(f"{index}: shard {shard!r} points outside {directory}")
    return path


def read_safetensors_dir(directory: Path) -> dict[str, Tensor]:
    """The tensors of ``directory/model.safetensors``, or of the shards its index names."""
    single = directory / "model.safetensors"
    if single.is_file():
        return read_safetensors(single)
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = read_json(index).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ValueError(f"{index}: 'weight_map' must be an object {{tensor name: shard file}}")
        state: dict[str, Tensor] = {}
        for shard in sorted(set(map(str, weight_map.values()))):
            state.update(read_safetensors(_shard_path(directory, index, shard)))
        return state
    raise FileNotFoundError(f"no model.safetensors (or its index) in {directory}")
