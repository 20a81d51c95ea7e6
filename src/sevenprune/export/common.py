"""What every exporter shares: the size report, the checks of the model and the masks, and the staging
of the output folder (written beside it, then swapped in). The writers are in :mod:`sevenprune.export`
and :mod:`sevenprune.export.onnx`; :mod:`sevenprune.export.run` exports a run directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .._fsutil import (EXPORT_MARKER, check_output_parent, check_removable, check_replaceable_position,
                      make_sibling_dir, normal_permissions, replace_dir, write_marker)
from .._validate import check_may_write

__all__ = ["ExportReport", "Staging", "checked_masks", "check_export_model", "file_sizes", "param_count",
           "write_staged"]


# -- the report ------------------------------------------------------------------------------------------------
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


def file_sizes(directory: Path) -> dict[str, int]:
    return {str(p.relative_to(directory)): p.stat().st_size for p in sorted(directory.rglob("*")) if p.is_file()}


def check_export_model(model: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not hasattr(model, "save_pretrained") or not hasattr(model, "config"):
        raise TypeError(f"export needs a transformers PreTrainedModel (with save_pretrained and config), "
                        f"got {type(model).__name__}")


def checked_masks(model: nn.Module, masks: Any) -> dict[str, Tensor]:
    """Validate ``masks`` (a mapping or a Pruner) against ``model``; ``None``: the zeros of the prunable weights."""
    from ..pruner import Pruner
    from ..targets import find_prunable

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


class Staging:
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
        check_may_write(out, overwrite, " (--overwrite)")
        if out.is_dir() and any(out.iterdir()):  # overwrite: only an earlier export is replaced
            check_removable(out, EXPORT_MARKER, protect=protect, what="export output")

    def commit(self) -> Path:
        write_marker(self.tmp, EXPORT_MARKER)
        normal_permissions(self.tmp)
        replace_dir(self.tmp, self.out, EXPORT_MARKER, protect=self.protect, what="export output")
        return self.out

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def write_staged(out_dir: str | os.PathLike[str], overwrite: bool, write: Any,
            protect: Sequence[str | os.PathLike[str]] = ()) -> Path:
    stage = Staging(out_dir, overwrite, protect)
    try:
        write(stage.tmp)
        return stage.commit()
    except BaseException:
        stage.abort()
        raise


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
