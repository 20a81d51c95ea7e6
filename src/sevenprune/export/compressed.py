"""The compressed export: kept values and bit masks, loaded back bit for bit.

``compressed`` (:func:`export_compressed`, loaded by :func:`load_compressed`)
    ``config.json``, ``compressed.safetensors`` and ``compression.json``. For each pruned weight the
    safetensors file holds ``bitmask/<name>`` (the keep-mask, 1 bit per entry, flattened in row-major
    order and packed little-endian into uint8 with ``numpy.packbits``) and ``values/<name>`` (the kept
    entries in that order, in the weight's dtype); every other tensor of the state dict is stored
    unchanged under its own name (tied duplicates once; ``compression.json`` lists their aliases). At
    sparsity ``s`` an fp32 weight takes ``1/32 + (1 - s)`` of its dense size: 13.1% at 90%.
    :func:`load_compressed` rebuilds the model with outputs equal, bit for bit, to the pruned model's.

>>> import tempfile, torch, transformers, sevenprune as sp
>>> cfg = transformers.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
...                               intermediate_size=32, vocab_size=50)
>>> model = transformers.BertModel(cfg).eval()
>>> pruner = sp.Pruner(model, "magnitude", sparsity=0.9, prune_steps=1)
>>> pruner.step()
>>> report = export_compressed(model, pruner.masks, tempfile.mkdtemp() + "/c", verbose=False)
>>> report.pruned_ratio <= 0.15
True
>>> x = torch.randint(0, 50, (1, 5))
>>> torch.equal(load_compressed(report.out_dir)(x).last_hidden_state, model(x).last_hidden_state)
True
"""

from __future__ import annotations

import copy
import json
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from .._readers import read_json, read_safetensors, safetensors_metadata
from .common import ExportReport, check_export_model, checked_masks, file_sizes, param_count, write_staged
from .._checkpoint import load_state_into
from ..structured import build_empty

if TYPE_CHECKING:  # transformers is an optional dependency: imported for the type hints only
    from transformers import PretrainedConfig

__all__ = ["COMPRESSED_FILE", "COMPRESSED_FORMAT", "COMPRESSED_MANIFEST", "export_compressed", "load_compressed",
           "pack_mask", "unpack_mask", "unique_state"]

COMPRESSED_FILE = "compressed.safetensors"
COMPRESSED_MANIFEST = "compression.json"
COMPRESSED_FORMAT = "sevenprune.compressed/1"


def pack_mask(mask: Tensor) -> Tensor:
    """A bool tensor as uint8 bits (row-major, little-endian bit order): ``ceil(numel / 8)`` bytes.

    >>> pack_mask(torch.tensor([True, False, False, True, True, False, False, False, True])).tolist()
    [25, 1]
    """
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor, got {mask.dtype}")
    bits = np.packbits(mask.detach().cpu().reshape(-1).numpy(), bitorder="little")
    return torch.from_numpy(bits)


def unpack_mask(bits: Tensor, shape: Sequence[int]) -> Tensor:
    """Inverse of :func:`pack_mask`."""
    numel = int(np.prod(shape)) if len(shape) else 1
    flat = np.unpackbits(bits.cpu().numpy(), count=numel, bitorder="little").astype(bool)
    return torch.from_numpy(flat).reshape(tuple(shape))


def unique_state(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The state dict with tied tensors once, and ``{alias: stored name}`` for the others."""
    state: dict[str, Tensor] = {}
    aliases: dict[str, str] = {}
    first: dict[tuple[int, int, tuple[int, ...], torch.dtype], str] = {}
    for name, t in model.state_dict().items():
        key = (t.data_ptr(), t.storage_offset(), tuple(t.shape), t.dtype)
        if t.numel() and key in first:
            aliases[name] = first[key]
            continue
        first[key] = name
        state[name] = t.detach()
    return state, aliases


def export_compressed(
    model: nn.Module,
    masks: Mapping[str, Tensor] | Any | None,
    out_dir: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    verbose: bool = True,
    protect: Sequence[str | os.PathLike[str]] = (),
) -> ExportReport:
    """Write the pruned weights as bitmask + kept values, everything else unchanged, plus the config.

    ``masks``: ``{weight name: bool keep-mask}`` (``pruner.masks``), a Pruner, or ``None`` (the zeros of
    the prunable weights). The masks must already be applied (pruned entries exactly zero); a
    ``ValueError`` says otherwise. Load with :func:`load_compressed`.
    """
    check_export_model(model)
    checked = checked_masks(model, masks)
    state, aliases = unique_state(model)
    tensors: dict[str, Tensor] = {}
    weights: dict[str, dict[str, Any]] = {}
    pruned_bytes = dense32 = other = pruned_entries = numel = 0
    for name, t in state.items():
        mask = checked.get(name)
        if mask is None:
            tensors[name] = t.cpu().contiguous()
            other += t.numel() * t.element_size()
            continue
        bits = pack_mask(mask)
        values = t.cpu().reshape(-1)[mask.reshape(-1)].contiguous()
        tensors[f"bitmask/{name}"] = bits
        tensors[f"values/{name}"] = values
        weights[name] = {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""),
                         "kept": values.numel(), "bytes": bits.numel() + values.numel() * values.element_size()}
        pruned_bytes += weights[name]["bytes"]
        dense32 += 4 * t.numel()
        numel += t.numel()
        pruned_entries += t.numel() - values.numel()
    missing = sorted(set(checked) - set(weights))
    if missing:  # a masked weight tied to an earlier tensor: mask the stored one instead
        raise ValueError(f"masked weights {missing[:3]} are tied to other tensors; mask those names instead")
    manifest = {"format": COMPRESSED_FORMAT, "weights": weights, "aliases": aliases,
                "bit_order": "little", "layout": "row-major"}

    def write(tmp: Path) -> None:
        from safetensors.torch import save_file

        # _check_model has checked that the model has a config (a transformers PretrainedConfig)
        config = copy.deepcopy(cast("PretrainedConfig", model.config))
        config.architectures = [type(model).__name__]  # as save_pretrained records it
        config.save_pretrained(str(tmp))
        save_file(tensors, str(tmp / COMPRESSED_FILE), metadata={"format": COMPRESSED_FORMAT})
        (tmp / COMPRESSED_MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")

    out = write_staged(out_dir, overwrite, write, protect)
    files = file_sizes(out)
    with open(out / COMPRESSED_FILE, "rb") as fh:
        header = 8 + struct.unpack("<Q", fh.read(8))[0]
    report = ExportReport("compressed", str(out), files, sum(files.values()), len(weights), pruned_bytes, dense32,
                          other, param_count(model), param_count(model),
                          pruned_entries / numel if numel else 0.0, extra={"safetensors_header_bytes": header})
    if verbose:
        print(report.summary())
    return report


def load_compressed(directory: str | os.PathLike[str], model_class: type[nn.Module] | None = None) -> nn.Module:
    """Rebuild the model written by :func:`export_compressed` (eval mode, on the CPU).

    ``model_class`` defaults to the class named in ``config.architectures``.
    """
    directory = Path(directory)
    path, manifest_path = directory / COMPRESSED_FILE, directory / COMPRESSED_MANIFEST
    if not path.is_file() or not manifest_path.is_file():
        raise FileNotFoundError(f"no compressed export in {directory}: expected {COMPRESSED_FILE} and "
                                f"{COMPRESSED_MANIFEST} (written by export_compressed)")
    fmt = safetensors_metadata(path).get("format")
    manifest = read_json(manifest_path)
    if fmt != COMPRESSED_FORMAT or manifest.get("format") != COMPRESSED_FORMAT:
        raise ValueError(f"{path} has format {fmt!r}, expected {COMPRESSED_FORMAT!r}")
    raw = read_safetensors(path)
    state: dict[str, Tensor] = {}
    for name, t in raw.items():
        if not name.startswith(("bitmask/", "values/")):
            state[name] = t
    weights = manifest.get("weights")
    if not isinstance(weights, dict):
        raise ValueError(f"{manifest_path}: 'weights' must be an object {{name: {{shape, ...}}}}")
    for name, info in weights.items():
        state[name] = _unpack_weight(path, manifest_path, raw, name, info)
    aliases = manifest.get("aliases", {})
    if not isinstance(aliases, dict) or any(t not in state for t in aliases.values()):
        raise ValueError(f"{manifest_path}: 'aliases' must map names to tensors stored in {path.name}")
    for alias, target in aliases.items():
        state[alias] = state[target]
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    model = build_empty(directory, model_class, dtype=dtypes.pop() if len(dtypes) == 1 else None)
    load_state_into(model, state)
    return model


def _unpack_weight(path: Path, manifest_path: Path, raw: Mapping[str, Tensor], name: str, info: Any) -> Tensor:
    """One pruned weight from its bitmask and values, each checked against the manifest's shape first
    (an unchecked shape would let a one-byte file ask for a huge allocation)."""
    shape = info.get("shape") if isinstance(info, dict) else None
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        raise ValueError(f"{manifest_path}: weight {name!r} has no valid shape (a list of sizes), got {shape!r}")
    bits, values = raw.get(f"bitmask/{name}"), raw.get(f"values/{name}")
    if bits is None or values is None:
        raise ValueError(f"{path} lacks bitmask/{name} or values/{name}, which {manifest_path.name} lists")
    numel = int(np.prod(shape)) if shape else 1
    if bits.dtype != torch.uint8 or bits.dim() != 1 or bits.numel() != (numel + 7) // 8:
        raise ValueError(f"{path}: bitmask/{name} holds {bits.numel()} {bits.dtype} entries; shape {shape} "
                         f"needs {(numel + 7) // 8} uint8 bytes")
    mask = unpack_mask(bits, shape)
    kept = int(mask.sum())
    if values.dim() != 1 or values.numel() != kept:
        raise ValueError(f"{path}: {name!r} has {values.numel()} values for {kept} kept entries")
    dense = torch.zeros(numel, dtype=values.dtype)
    dense[mask.reshape(-1)] = values
    return dense.reshape(shape)
