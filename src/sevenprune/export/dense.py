"""The dense export: ``save_pretrained`` of the pruned model, its pruned entries stored as zeros.

``config.json`` + ``model.safetensors``, loadable by plain transformers (``AutoModel...from_pretrained``).
Same size as the dense model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from .common import ExportReport, check_export_model, checked_masks, file_sizes, param_count, write_staged

__all__ = ["export_dense"]


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
    report and a check that they are applied.
    """
    if isinstance(masks, (str, os.PathLike)):
        raise TypeError(f"export_dense takes (model, masks, out_dir); got the path {str(masks)!r} as masks")
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
