"""Export a pruned model so that it is really smaller: dense, compressed (bitmask + values) or structured.

Four formats, each a directory:

``dense`` (:func:`export_dense`)
    ``save_pretrained``: ``config.json`` + ``model.safetensors``, loadable by plain transformers
    (``AutoModel...from_pretrained``), the pruned entries stored as zeros. Same size as the dense model.

``compressed`` (:func:`export_compressed`, loaded by :func:`load_compressed`)
    ``config.json``, ``compressed.safetensors`` and ``compression.json``. For each pruned weight the
    safetensors file holds ``bitmask/<name>`` (the keep-mask, 1 bit per entry, flattened in row-major
    order and packed little-endian into uint8 with ``numpy.packbits``) and ``values/<name>`` (the kept
    entries in that order, in the weight's dtype); every other tensor of the state dict is stored
    unchanged under its own name (tied duplicates once; ``compression.json`` lists their aliases). At
    sparsity ``s`` an fp32 weight takes ``1/32 + (1 - s)`` of its dense size: 13.1% at 90%.
    :func:`load_compressed` rebuilds the model with outputs equal, bit for bit, to the pruned model's.

``structured`` (:func:`export_structured`, loaded by :func:`sevenprune.structured.load_structured`)
    removes the attention heads and FFN neurons that are entirely pruned (``pattern="heads"``,
    ``"neurons"`` or ``"heads+neurons"``) and saves the smaller dense model (``save_pretrained`` plus
    its per-layer shapes in ``config.json``; see :mod:`sevenprune.structured`). When no head was
    removed and every layer keeps the same number of neurons, the config is a standard one instead
    (smaller ``intermediate_size``) and plain ``from_pretrained`` loads it (:mod:`sevenprune.export.plain_config`).
    Masks that remove no head or neuron give a warning: the export would be the whole model.

``onnx`` (:func:`sevenprune.export.onnx.export_onnx`)
    ``model.onnx`` for onnxruntime; ``structured=True`` removes heads and neurons first,
    ``quantize="int8"`` quantizes it dynamically (see :mod:`sevenprune.export.onnx`).

Every export refuses to write into an existing non-empty directory unless ``overwrite=True``; it
writes into a temporary sibling directory first and renames it, so a failed export leaves nothing
half-written. Each returns an :class:`ExportReport` with the sizes, and prints it (``verbose=True``).

Every writer takes its arguments in one order, ``(model, masks, out_dir, *, options)``. A run
directory of ``sevenprune run`` is exported by :func:`sevenprune.export.run.export_run` (the
``sevenprune export`` command).

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
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from .._readers import read_json, read_safetensors, safetensors_metadata
from .common import ExportReport, check_export_model, checked_masks, file_sizes, param_count, write_staged
from .._checkpoint import load_state_into
from ..structured import build_empty, load_structured, shrink

if TYPE_CHECKING:  # transformers is an optional dependency: imported for the type hints only
    from transformers import PretrainedConfig

__all__ = [
    "COMPRESSED_FILE",
    "COMPRESSED_FORMAT",
    "FORMATS",
    "ExportReport",
    "export_compressed",
    "export_dense",
    "export_structured",
    "load_compressed",
    "load_exported",
    "pack_mask",
    "unpack_mask",
]

FORMATS = ("dense", "compressed", "structured", "onnx")
COMPRESSED_FILE = "compressed.safetensors"
COMPRESSED_MANIFEST = "compression.json"
COMPRESSED_FORMAT = "sevenprune.compressed/1"


# -- helpers ----------------------------------------------------------------------------------------------------
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


def _dense_sizes(model: nn.Module, masks: Mapping[str, Tensor]) -> tuple[int, int, int, float]:
    params = dict(model.named_parameters())
    numel = sum(params[n].numel() for n in masks)
    stored = sum(params[n].numel() * params[n].element_size() for n in masks)
    pruned = sum(int((~m).sum()) for m in masks.values())
    seen: set[int] = set()
    total = 0
    for t in model.state_dict().values():
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return stored, 4 * numel, total - stored, pruned / numel if numel else 0.0


# -- dense ---------------------------------------------------------------------------------------------------------
def export_dense(
    model: nn.Module,
    masks: Mapping[str, Tensor] | Any | None,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    overwrite: bool = False,
    verbose: bool = True,
    protect: Sequence[str | os.PathLike[str]] = (),
) -> ExportReport:
    """``save_pretrained`` the pruned model (zeros in place); plain transformers loads it.

    ``masks`` (a mapping, a Pruner, or ``None``: the zeros of the prunable weights) only serve the
    report and a check that they are applied. The older order ``export_dense(model, out_dir,
    masks=None)`` still works, with a ``DeprecationWarning``.
    """
    if isinstance(masks, (str, os.PathLike)) and not isinstance(out_dir, (str, os.PathLike)):
        warnings.warn("export_dense(model, out_dir, masks) is deprecated: the exporters take "
                      "(model, masks, out_dir)", DeprecationWarning, stacklevel=2)
        masks, out_dir = out_dir, masks
    if out_dir is None:
        raise TypeError("export_dense needs out_dir: export_dense(model, masks, out_dir)")
    check_export_model(model)
    checked = checked_masks(model, masks)
    out = write_staged(out_dir, overwrite, lambda tmp: model.save_pretrained(str(tmp)), protect)  # type: ignore[operator]
    stored, dense32, other, sparsity = _dense_sizes(model, checked)
    files = file_sizes(out)
    report = ExportReport("dense", str(out), files, sum(files.values()), len(checked), stored, dense32, other,
                          param_count(model), param_count(model), sparsity)
    if verbose:
        print(report.summary())
    return report


# -- compressed ----------------------------------------------------------------------------------------------
def _unique_state(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, str]]:
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
    state, aliases = _unique_state(model)
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


# -- structured ------------------------------------------------------------------------------------------------
def export_structured(
    model: nn.Module,
    masks: Mapping[str, Tensor] | Any | None,
    out_dir: str | os.PathLike[str],
    *,
    plain: bool = False,
    overwrite: bool = False,
    verbose: bool = True,
    protect: Sequence[str | os.PathLike[str]] = (),
) -> ExportReport:
    """Remove the entirely pruned heads and FFN neurons and save the smaller dense model.

    Load with :func:`sevenprune.structured.load_structured` (or :func:`load_exported`); when the
    smaller model fits a standard config (no head removed, the same number of neurons in every
    layer), plain transformers loads it too. ``plain=True``: raise ``ValueError`` (saying why) unless
    it does. Warns when the masks remove no head and no neuron.
    """
    from .onnx import removed_groups
    from .plain_config import make_plain, plain_config_problem
    from ..structured import save_structured

    check_export_model(model)
    checked = checked_masks(model, masks)
    heads, neurons = removed_groups(model, checked)
    if heads == neurons == 0:
        # nothing to remove: unstructured or N:M masks rarely empty a whole head or neuron
        warnings.warn("structured export: the masks remove no attention head and no FFN neuron, so the export "
                      "keeps 100% of the model; prune with pattern 'heads', 'neurons' or 'heads+neurons'",
                      UserWarning, stacklevel=2)
    small = shrink(model, checked)
    problem = plain_config_problem(small)
    if problem is not None and plain:
        raise ValueError(f"no standard config for this structured export: {problem}")
    if problem is None:
        make_plain(small)
        note = "a standard config: plain transformers from_pretrained loads it"
    else:
        note = f"needs sevenprune.structured.load_structured: {problem}"

    def write(tmp: Path) -> None:
        if problem is None:
            small.save_pretrained(str(tmp))  # type: ignore[operator]
        else:
            save_structured(small, tmp, overwrite=True)

    out = write_staged(out_dir, overwrite, write, protect)
    stored = sum(p.numel() * p.element_size() for n, p in small.named_parameters() if n in checked)
    dense32 = sum(4 * m.numel() for m in checked.values())
    total = sum(t.numel() * t.element_size() for t in _unique_state(small)[0].values())
    pruned = sum(int((~m).sum()) for m in checked.values())
    numel = sum(m.numel() for m in checked.values())
    files = file_sizes(out)
    report = ExportReport("structured", str(out), files, sum(files.values()), len(checked), stored, dense32,
                          total - stored, param_count(model), param_count(small),
                          pruned / numel if numel else 0.0,
                          extra={"heads_removed": heads, "neurons_removed": neurons,
                                 "plain_transformers": problem is None, "note": note})
    if verbose:
        print(report.summary())
    return report


def load_exported(directory: str | os.PathLike[str], model_class: type[nn.Module] | None = None) -> nn.Module:
    """Load a dense, compressed or structured export (told apart by their files), in eval mode."""
    directory = Path(directory)
    if (directory / COMPRESSED_FILE).is_file():
        return load_compressed(directory, model_class)
    return load_structured(directory, model_class)
