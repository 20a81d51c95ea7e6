"""Export a run directory of ``sevenprune run``: find its model and pruner state, load them, write the
chosen format (:mod:`sevenprune.export`, :mod:`sevenprune.export.onnx`); ``sevenprune export`` calls it.

The expected layout::

    RUN_DIR/
        model/           config.json + model.safetensors (save_pretrained of the pruned model);
                         may also be RUN_DIR itself
        pruner/          pruner.json + pruner.safetensors (sevenprune.save_state); may also be RUN_DIR
                         itself or the only directory under RUN_DIR holding a pruner.json

``--model DIR`` / ``--pruner DIR`` override the search. The output goes to ``--out DIR`` (default
``RUN_DIR/export-<format>``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from .common import ExportReport, Staging, file_sizes
from .compressed import export_compressed
from .dense import export_dense
from .structured import export_structured
from ..structured import load_structured

__all__ = ["FORMATS", "export_run", "find_run_layout"]

#: the formats :func:`export_run` writes (``sevenprune export --format``)
FORMATS = ("dense", "compressed", "structured", "onnx")


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
    from ..state import read_state

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
    Staging.check(out, overwrite, protect)  # before the (slow) loading
    model = load_structured(model_path, model_class)
    state = read_state(pruner_path) if pruner_path is not None else {}
    masks = state["masks"] if pruner_path is not None else None  # None: the zeros of the weights (none)
    if format == "structured":  # (onnx --structured refuses it itself)
        _check_something_to_remove(model, masks, state, pruner_path)
    if format == "dense":
        report = export_dense(model, masks, out, overwrite=overwrite, verbose=False, protect=protect)
    elif format == "compressed":
        report = export_compressed(model, masks, out, overwrite=overwrite, verbose=False, protect=protect)
    elif format == "onnx":
        from .onnx import export_onnx

        pattern = state.get("config", {}).get("pattern", "unstructured")
        report = export_onnx(model, masks, out, structured=structured, quantize=quantize, pattern=pattern,
                             overwrite=overwrite, verbose=False, protect=protect)
    else:
        report = export_structured(model, masks, out, plain=plain, overwrite=overwrite, verbose=False,
                                   protect=protect)
    _copy_sidefile_sizes(model_path, Path(report.out_dir), report)
    if verbose:
        print(report.summary())
    return report


def _check_something_to_remove(model: nn.Module, masks: Any, state: dict[str, Any], pruner_path: Path | None) -> None:
    """``--format structured`` of masks that empty no head and no neuron (an unstructured or N:M run)
    would write the unchanged model under a name that promises a smaller one: refused (the library's
    ``export_structured`` only warns)."""
    from .common import checked_masks
    from .onnx import removed_groups

    heads, neurons = removed_groups(model, checked_masks(model, masks))
    if heads == neurons == 0:
        pattern = state.get("config", {}).get("pattern", "unstructured")
        raise ValueError(f"--format structured removes pruned heads and neurons, but the masks of this run "
                         f"({pruner_path}, pattern {pattern!r}) empty none: the export would be the unchanged "
                         "model. Export it with --format compressed (or dense/onnx), or run again with --pattern "
                         "heads, neurons or heads+neurons")


def _copy_sidefile_sizes(model_dir: Path, out: Path, report: ExportReport) -> None:
    """Copy the tokenizer and other small files of the run's model directory (not its weights or config)."""
    for src in sorted(model_dir.iterdir()):
        if not src.is_file() or src.name == "config.json" or src.name.endswith((".safetensors", ".bin")) \
                or src.name.startswith("model.safetensors") or (out / src.name).exists():
            continue
        shutil.copy2(src, out / src.name)
    report.files = file_sizes(out)
    report.total_bytes = sum(report.files.values())
