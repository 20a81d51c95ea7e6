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
    (smaller ``intermediate_size``) and plain ``from_pretrained`` loads it (:mod:`sevenprune.plain_config`).
    Masks that remove no head or neuron give a warning: the export would be the whole model.

``onnx`` (:func:`sevenprune.onnx_export.export_onnx`)
    ``model.onnx`` for onnxruntime; ``structured=True`` removes heads and neurons first,
    ``quantize="int8"`` quantizes it dynamically (see :mod:`sevenprune.onnx_export`).

Every export refuses to write into an existing non-empty directory unless ``overwrite=True``; it
writes into a temporary sibling directory first and renames it, so a failed export leaves nothing
half-written. Each returns an :class:`ExportReport` with the sizes, and prints it (``verbose=True``).

From a run directory (:func:`export_run`, the ``sevenprune export`` command, or
``python -m sevenprune.export RUN_DIR --format compressed``), the expected layout is::

    RUN_DIR/
        model/           config.json + model.safetensors (save_pretrained of the pruned model);
                         may also be RUN_DIR itself
        pruner/          pruner.json + pruner.safetensors (sevenprune.save_state); may also be RUN_DIR
                         itself or the only directory under RUN_DIR holding a pruner.json

``--model DIR`` / ``--pruner DIR`` override the search. The output goes to ``--out DIR`` (default
``RUN_DIR/export-<format>``).

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

import argparse
import copy
import json
import os
import shutil
import struct
import sys
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from ._readers import one_line, read_json, read_safetensors, safetensors_metadata
from ._fsutil import (EXPORT_MARKER, check_output_parent, check_removable,
                      check_replaceable_position, make_sibling_dir, normal_permissions,
                      replace_dir, write_marker)
from .structured import build_empty, load_state_into, load_structured, shrink

if TYPE_CHECKING:  # transformers is an optional dependency: imported for the type hints only
    from transformers import PretrainedConfig

__all__ = [
    "COMPRESSED_FILE",
    "COMPRESSED_FORMAT",
    "FORMATS",
    "ExportReport",
    "add_export_parser",
    "export_compressed",
    "export_dense",
    "export_run",
    "export_structured",
    "find_run_layout",
    "load_compressed",
    "load_exported",
    "main",
    "pack_mask",
    "unpack_mask",
]

FORMATS = ("dense", "compressed", "structured", "onnx")
COMPRESSED_FILE = "compressed.safetensors"
COMPRESSED_MANIFEST = "compression.json"
COMPRESSED_FORMAT = "sevenprune.compressed/1"


# -- reports ------------------------------------------------------------------------------------------------
@dataclass
class ExportReport:
    """Sizes of an export, in bytes (``files``: every file written, with its size on disk).

    ``pruned_bytes``: what the pruned weights take in the export (for ``compressed``: bitmasks +
    values; otherwise the weights as stored); ``pruned_dense_fp32_bytes``: the same weights dense in
    fp32; ``pruned_ratio`` their quotient. ``params``: parameters of the exported model (smaller than
    ``dense_params`` for ``structured``).
    """

    format: str
    out_dir: str
    files: dict[str, int]
    total_bytes: int
    pruned_weights: int
    pruned_bytes: int
    pruned_dense_fp32_bytes: int
    other_bytes: int
    dense_params: int
    params: int
    sparsity: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pruned_ratio(self) -> float:
        return self.pruned_bytes / self.pruned_dense_fp32_bytes if self.pruned_dense_fp32_bytes else 1.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "pruned_ratio": self.pruned_ratio}

    def summary(self) -> str:
        mb = 1 / 2**20
        lines = [f"export ({self.format}) -> {self.out_dir}"]
        for name, size in sorted(self.files.items()):
            lines.append(f"  {name:<28} {size * mb:10.3f} MiB")
        lines.append(f"  total {self.total_bytes * mb:.3f} MiB; pruned weights ({self.pruned_weights} "
                     f"tensors, sparsity {self.sparsity:.4f}): {self.pruned_bytes * mb:.3f} MiB = "
                     f"{100 * self.pruned_ratio:.1f}% of their dense fp32 size "
                     f"({self.pruned_dense_fp32_bytes * mb:.3f} MiB); other tensors {self.other_bytes * mb:.3f} MiB")
        if self.params != self.dense_params:
            lines.append(f"  parameters: {self.params} of {self.dense_params} "
                         f"({100 * self.params / self.dense_params:.1f}%)")
        if self.extra.get("note"):
            lines.append(f"  note: {self.extra['note']}")
        return "\n".join(lines)


def _files(directory: Path) -> dict[str, int]:
    return {str(p.relative_to(directory)): p.stat().st_size for p in sorted(directory.rglob("*")) if p.is_file()}


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


def _check_model(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not hasattr(model, "save_pretrained") or not hasattr(model, "config"):
        raise TypeError(f"export needs a transformers PreTrainedModel (with save_pretrained and config), "
                        f"got {type(model).__name__}")


def _masks_of(model: nn.Module, masks: Any) -> dict[str, Tensor]:
    """Validate ``masks`` (a mapping or a Pruner) against ``model``; ``None``: the zeros of the prunable weights."""
    from .pruner import Pruner
    from .targets import find_prunable

    if isinstance(masks, Pruner):
        masks = masks.masks
    params = dict(model.named_parameters())
    if masks is None:
        return {n: p.detach() != 0 for n, p in find_prunable(model).items()}
    if not isinstance(masks, Mapping):
        raise TypeError(f"masks must be a mapping {{weight name: bool tensor}} or a Pruner, got {type(masks).__name__}")
    out: dict[str, Tensor] = {}
    for name, mask in masks.items():
        if name not in params:
            raise ValueError(f"mask {name!r} names no parameter of {type(model).__name__}; "
                             f"parameters are e.g. {list(params)[:4]}")
        p = params[name]
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool or tuple(mask.shape) != tuple(p.shape):
            raise ValueError(f"mask {name!r} must be a bool tensor of shape {tuple(p.shape)}")
        alive = int(torch.count_nonzero(p.detach()[~mask.to(p.device)]))
        if alive:
            raise ValueError(f"weight {name!r} has {alive} nonzero entries where its mask prunes: the masks "
                             "were not applied to this model (call pruner.apply_masks()) or belong to another one")
        out[name] = mask.detach().to("cpu")
    return out


class _Staging:
    """Write into a new folder beside ``out``, then swap it in (:mod:`sevenprune._fsutil`).

    An existing non-empty ``out`` is refused unless ``overwrite``, and even then only replaced if this
    tool wrote it (its :data:`EXPORT_MARKER`) and it is none of the protected folders (``protect``:
    the run's own folders; always: ``/``, home, the current folder and those above them). Every check
    runs before anything is written.
    """

    def __init__(self, out: str | os.PathLike[str], overwrite: bool,
                 protect: Sequence[str | os.PathLike[str]] = ()) -> None:
        self.out = Path(out)
        self.protect = tuple(protect)
        self.check(self.out, overwrite, self.protect)
        self.tmp = make_sibling_dir(self.out, "tmp")

    @staticmethod
    def check(out: Path, overwrite: bool, protect: Sequence[str | os.PathLike[str]]) -> None:
        """Raise if ``out`` may not be written (or, with ``overwrite``, replaced)."""
        check_output_parent(out, "export output")
        if out.exists():
            check_replaceable_position(out, protect=protect, what="export output")
        if out.is_dir() and any(out.iterdir()):
            if not overwrite:
                raise FileExistsError(f"{out} exists and is not empty; pass overwrite=True (--overwrite) "
                                      "or choose another output directory")
            check_removable(out, EXPORT_MARKER, protect=protect, what="export output")

    def commit(self) -> Path:
        write_marker(self.tmp, EXPORT_MARKER)
        normal_permissions(self.tmp)
        replace_dir(self.tmp, self.out, EXPORT_MARKER, protect=self.protect, what="export output")
        return self.out

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _staged(out_dir: str | os.PathLike[str], overwrite: bool, write: Any,
            protect: Sequence[str | os.PathLike[str]] = ()) -> Path:
    stage = _Staging(out_dir, overwrite, protect)
    try:
        write(stage.tmp)
        return stage.commit()
    except BaseException:
        stage.abort()
        raise


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


def _param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- dense ---------------------------------------------------------------------------------------------------------
def export_dense(
    model: nn.Module,
    out_dir: str | os.PathLike[str],
    masks: Mapping[str, Tensor] | Any | None = None,
    *,
    overwrite: bool = False,
    verbose: bool = True,
    protect: Sequence[str | os.PathLike[str]] = (),
) -> ExportReport:
    """``save_pretrained`` the pruned model (zeros in place); plain transformers loads it.

    ``masks`` (a mapping or a Pruner; default: the zeros of the prunable weights) only serve the
    report and a check that they are applied.
    """
    _check_model(model)
    checked = _masks_of(model, masks)
    out = _staged(out_dir, overwrite, lambda tmp: model.save_pretrained(str(tmp)), protect)  # type: ignore[operator]
    stored, dense32, other, sparsity = _dense_sizes(model, checked)
    files = _files(out)
    report = ExportReport("dense", str(out), files, sum(files.values()), len(checked), stored, dense32, other,
                          _param_count(model), _param_count(model), sparsity)
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
    _check_model(model)
    checked = _masks_of(model, masks)
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

    out = _staged(out_dir, overwrite, write, protect)
    files = _files(out)
    with open(out / COMPRESSED_FILE, "rb") as fh:
        header = 8 + struct.unpack("<Q", fh.read(8))[0]
    report = ExportReport("compressed", str(out), files, sum(files.values()), len(weights), pruned_bytes, dense32,
                          other, _param_count(model), _param_count(model),
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
    from .onnx_export import removed_groups
    from .plain_config import make_plain, plain_config_problem
    from .structured import save_structured

    _check_model(model)
    checked = _masks_of(model, masks)
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

    out = _staged(out_dir, overwrite, write, protect)
    stored = sum(p.numel() * p.element_size() for n, p in small.named_parameters() if n in checked)
    dense32 = sum(4 * m.numel() for m in checked.values())
    total = sum(t.numel() * t.element_size() for t in _unique_state(small)[0].values())
    pruned = sum(int((~m).sum()) for m in checked.values())
    numel = sum(m.numel() for m in checked.values())
    files = _files(out)
    report = ExportReport("structured", str(out), files, sum(files.values()), len(checked), stored, dense32,
                          total - stored, _param_count(model), _param_count(small),
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


# -- run directories -----------------------------------------------------------------------------------------
def _is_model_dir(d: Path) -> bool:
    return (d / "config.json").is_file() and (
        (d / "model.safetensors").is_file() or (d / "model.safetensors.index.json").is_file())


def find_run_layout(
    run_dir: str | os.PathLike[str],
    model_dir: str | os.PathLike[str] | None = None,
    pruner_dir: str | os.PathLike[str] | None = None,
    *,
    require_pruner: bool = True,
) -> tuple[Path, Path | None]:
    """``(model dir, pruner state dir)`` of a run directory (layout in the module docstring).

    With ``require_pruner=False`` a run without any pruner state (a ``dense`` run) gives ``None``."""
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"run directory {run} does not exist")
    if model_dir is not None:
        model = Path(model_dir)
        if not _is_model_dir(model):
            raise FileNotFoundError(f"{model} holds no config.json + model.safetensors")
    else:
        found = [d for d in (run, run / "model") if _is_model_dir(d)]
        if not found:
            found = sorted({p.parent for p in run.rglob("config.json") if _is_model_dir(p.parent)
                            and not p.parent.name.startswith(("export-", "."))})
            if len(found) != 1:
                raise FileNotFoundError(
                    f"no single pruned model in {run}: expected config.json + model.safetensors in {run} or "
                    f"{run / 'model'}" + (f"; candidates {[str(f) for f in found]} (pass --model)" if found else "")
                )
        model = found[0]
    if pruner_dir is not None:
        pruner = Path(pruner_dir)
        if not (pruner / "pruner.json").is_file():
            raise FileNotFoundError(f"{pruner} holds no pruner.json (written by sevenprune.save_state)")
    else:
        found = [d for d in (run / "pruner", run) if (d / "pruner.json").is_file()]
        if not found:
            found = sorted({p.parent for p in run.rglob("pruner.json")})
            if not found and not require_pruner:
                return model, None
            if len(found) != 1:
                raise FileNotFoundError(
                    f"no single pruner state in {run}: expected {run / 'pruner'}/pruner.json"
                    + (f"; candidates {[str(f) for f in found]} (pass --pruner)" if found else "")
                )
        pruner = found[0]
    return model, pruner


def export_run(
    run_dir: str | os.PathLike[str],
    format: str = "compressed",
    out_dir: str | os.PathLike[str] | None = None,
    *,
    model_dir: str | os.PathLike[str] | None = None,
    pruner_dir: str | os.PathLike[str] | None = None,
    model_class: type[nn.Module] | None = None,
    structured: bool = False,
    quantize: str | None = None,
    plain: bool = False,
    overwrite: bool = False,
    verbose: bool = True,
    protect: Sequence[str | os.PathLike[str]] = (),
) -> ExportReport:
    """Export the pruned model of a run directory (see the module docstring for its layout).

    The model is loaded with the class in its ``config.architectures`` (or ``model_class``) and the
    masks from the pruner state; the output defaults to ``RUN_DIR/export-<format>``. The model
    directory's other small files (the tokenizer's, the image processor's) are copied beside the
    export. ``structured`` and ``quantize`` apply to ``onnx``, ``plain`` to ``structured``.
    """
    from .state import read_state

    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose one of {list(FORMATS)}")
    if (structured or quantize is not None) and format != "onnx":
        raise ValueError(f"--structured and --quantize apply to --format onnx, not {format!r}"
                         + (" (--format structured already removes heads and neurons)"
                            if format == "structured" else ""))
    if plain and format != "structured":
        raise ValueError(f"--plain applies to --format structured, not {format!r}")
    # a dense run (no pruner state) exports as it is to the formats that need no masks
    dense_ok = format == "dense" or (format == "onnx" and not structured)
    model_path, pruner_path = find_run_layout(run_dir, model_dir, pruner_dir, require_pruner=not dense_ok)
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / f"export-{format}"
    # the run, its model and its pruner state are never replaced by an export, --overwrite or not
    protect = (*protect, run_dir, model_path, *([pruner_path] if pruner_path is not None else []))
    _Staging.check(out, overwrite, protect)  # before the (slow) loading
    model = load_structured(model_path, model_class)
    state = read_state(pruner_path) if pruner_path is not None else {}
    masks = state["masks"] if pruner_path is not None else None  # None: the zeros of the weights (none)
    if format == "dense":
        report = export_dense(model, out, masks, overwrite=overwrite, verbose=False, protect=protect)
    elif format == "compressed":
        report = export_compressed(model, masks, out, overwrite=overwrite, verbose=False, protect=protect)
    elif format == "onnx":
        from .onnx_export import export_onnx

        pattern = state.get("config", {}).get("pattern", "unstructured")
        report = export_onnx(model, masks, out, structured=structured, quantize=quantize, pattern=pattern,
                             overwrite=overwrite, verbose=False, protect=protect)
    else:
        report = export_structured(model, masks, out, plain=plain, overwrite=overwrite, verbose=False,
                                   protect=protect)
    _copy_side_files(model_path, Path(report.out_dir), report)
    if verbose:
        print(report.summary())
    return report


def _copy_side_files(model_dir: Path, out: Path, report: ExportReport) -> None:
    """Copy the tokenizer and other small files of the run's model directory (not its weights or config)."""
    for src in sorted(model_dir.iterdir()):
        if not src.is_file() or src.name == "config.json" or src.name.endswith((".safetensors", ".bin")) \
                or src.name.startswith("model.safetensors") or (out / src.name).exists():
            continue
        shutil.copy2(src, out / src.name)
    report.files = _files(out)
    report.total_bytes = sum(report.files.values())


# -- command line ---------------------------------------------------------------------------------------------
def _configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (model/ and pruner/ inside)")
    parser.add_argument("--format", required=True, choices=FORMATS,
                        help="dense: save_pretrained with zeros; compressed: bitmask + kept values; "
                             "structured: pruned heads/neurons removed (smaller dense model); "
                             "onnx: model.onnx for onnxruntime")
    parser.add_argument("--structured", action="store_true",
                        help="onnx: remove the pruned heads and neurons first (runs with a structured pattern)")
    parser.add_argument("--quantize", choices=("int8",), default=None,
                        help="onnx: dynamic int8 quantization (onnxruntime.quantization.quantize_dynamic)")
    parser.add_argument("--plain", action="store_true",
                        help="structured: fail unless plain transformers can load the export (no head removed, "
                             "the same number of FFN neurons in every layer)")
    parser.add_argument("--out", default=None, help="output directory (default RUN_DIR/export-FORMAT); "
                                                     "never overwritten without --overwrite")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output directory, if it is an earlier export (never the run, "
                             "its model or pruner folders, the current or home folder, or anything above them)")
    parser.add_argument("--model", default=None, help="the pruned model's directory, if not RUN_DIR/model")
    parser.add_argument("--pruner", default=None, help="the pruner state's directory, if not RUN_DIR/pruner")
    parser.add_argument("--json", action="store_true", help="also print the report as JSON")
    parser.set_defaults(func=run_export_command)
    return parser


def add_export_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``export`` subcommand to an ``argparse`` subparsers object; returns its parser.

    The parser sets ``func=run_export_command``: dispatch with ``args.func(args)`` (returns an exit code).
    """
    parser = subparsers.add_parser("export", help="export a pruned run as a dense, compressed, "
                                                  "structured or ONNX model", description=__doc__.split("\n\n")[0])
    return _configure_parser(parser)


def run_export_command(args: argparse.Namespace) -> int:
    """Run the ``export`` subcommand from parsed arguments; 0 on success, 2 on a user error."""
    try:
        report = export_run(args.run_dir, args.format, args.out, model_dir=args.model,
                            pruner_dir=args.pruner, structured=getattr(args, "structured", False),
                            quantize=getattr(args, "quantize", None), plain=getattr(args, "plain", False),
                            overwrite=args.overwrite, verbose=True)
    except (OSError, ValueError, ImportError) as exc:
        print(f"sevenprune export: error: {one_line(exc)}", file=sys.stderr)
        return 2
    if getattr(args, "json", False):
        print(json.dumps(report.as_dict(), indent=1, sort_keys=True))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sevenprune.export RUN_DIR --format dense|compressed|structured|onnx [--out DIR]``."""
    from .cli import _Parser  # one-line argparse errors, as `sevenprune export`

    parser = _configure_parser(_Parser(prog="python -m sevenprune.export", description=__doc__.split("\n\n")[0]))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
