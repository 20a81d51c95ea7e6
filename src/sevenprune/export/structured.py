"""The structured export: the entirely pruned attention heads and FFN neurons removed.

``structured`` (:func:`export_structured`, loaded by :func:`sevenprune.structured.load_structured`)
    removes the attention heads and FFN neurons that are entirely pruned (``pattern="heads"``,
    ``"neurons"`` or ``"heads+neurons"``) and saves the smaller dense model (``save_pretrained`` plus
    its per-layer shapes in ``config.json``; see :mod:`sevenprune.structured`). When no head was
    removed and every layer keeps the same number of neurons, the config is a standard one instead
    (smaller ``intermediate_size``) and plain ``from_pretrained`` loads it (:mod:`sevenprune.export.plain_config`).
    Masks that remove no head or neuron give a warning: the export would be the whole model.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ..structured import save_structured, shrink
from .common import ExportReport, check_export_model, checked_masks, file_sizes, param_count, write_staged
from .compressed import unique_state
from .onnx import removed_groups
from .plain_config import make_plain, plain_config_problem

__all__ = ["export_structured"]


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
    total = sum(t.numel() * t.element_size() for t in unique_state(small)[0].values())
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
