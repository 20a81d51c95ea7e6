"""Save and load a pruner's state as safetensors + JSON (never pickle).

``save_state(pruner, path)`` writes a directory ``path`` holding

* ``pruner.safetensors``: the masks (``mask/<weight name>``, bool), the method's running statistics
  (``stat/<statistic>/<weight name>``) and, for structured patterns, the masks of other parameters such
  as the biases of removed heads (``extra/<parameter name>``);
* ``pruner.json``: the configuration, the step counters and the weight shapes (human-readable).

Both files are written to temporary names first and renamed, so an interrupted save never leaves a
half-written file in place of a good one. They are renamed one after the other, so both carry the same
random ``generation`` (the JSON's key and the safetensors metadata): a crash between the two renames
leaves files of two generations, which :func:`read_state` refuses instead of mixing them.
Everything read is checked (the format string, the masks' dtypes and shapes against the recorded
shapes), and every error names the file.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from ._fsutil import normal_permissions
from ._readers import read_json, read_safetensors, safetensors_metadata
from ._validate import check_not_a_file
from .pruner import STATE_FORMAT, Pruner

__all__ = ["save_state", "load_state", "read_state", "STATE_TENSORS", "STATE_JSON"]

STATE_TENSORS = "pruner.safetensors"
STATE_JSON = "pruner.json"


def save_state(pruner: Pruner, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``pruner.state_dict()`` to the directory ``path`` (created if needed).

    Refuses to replace an existing state unless ``overwrite=True``.

    >>> import sevenprune as sp, tempfile
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    >>> pruner = sp.Pruner(model, "magnitude", sparsity=0.5, prune_steps=1)
    >>> out = sp.save_state(pruner, tempfile.mkdtemp() + "/state")
    >>> sorted(p.name for p in out.iterdir())
    ['pruner.json', 'pruner.safetensors']
    """
    if not isinstance(pruner, Pruner):
        raise TypeError(f"save_state expects a sevenprune.Pruner, got {type(pruner).__name__}")
    directory = check_not_a_file(path)
    targets = [directory / STATE_TENSORS, directory / STATE_JSON]
    if not overwrite and any(t.exists() for t in targets):
        raise FileExistsError(
            f"{directory} already holds a pruner state; pass overwrite=True to replace it, or another path"
        )
    directory.mkdir(parents=True, exist_ok=True)
    state = pruner.state_dict()
    tensors = {f"mask/{n}": m.detach().cpu().contiguous() for n, m in state["masks"].items()}
    tensors.update({f"stat/{k}": t.detach().cpu().contiguous() for k, t in state["importance"].items()})
    tensors.update({f"extra/{n}": m.detach().cpu().contiguous() for n, m in state["extra_masks"].items()})
    generation = secrets.token_hex(8)
    meta = {k: v for k, v in state.items() if k not in ("masks", "importance", "extra_masks")}
    meta["generation"] = generation
    tmp_tensors = directory / (STATE_TENSORS + ".tmp")
    tmp_json = directory / (STATE_JSON + ".tmp")
    try:
        save_file(tensors, str(tmp_tensors), metadata={"format": state["format"], "generation": generation})
        tmp_json.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        normal_permissions(tmp_tensors)  # safetensors writes 0o600
        os.replace(tmp_tensors, targets[0])
        os.replace(tmp_json, targets[1])
    finally:
        tmp_tensors.unlink(missing_ok=True)
        tmp_json.unlink(missing_ok=True)
    return directory


def read_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a saved state into the ``Pruner.state_dict()`` layout (tensors on the CPU)."""
    directory = Path(path)
    tensors_path, json_path = directory / STATE_TENSORS, directory / STATE_JSON
    if not tensors_path.is_file() or not json_path.is_file():
        raise FileNotFoundError(
            f"no pruner state in {directory}: expected {STATE_TENSORS} and {STATE_JSON} (written by save_state)"
        )
    meta = read_json(json_path)
    if meta.get("format") != STATE_FORMAT:
        raise ValueError(f"{json_path}: unknown format {meta.get('format')!r}; this version of sevenprune reads "
                         f"{STATE_FORMAT!r}")
    header = safetensors_metadata(tensors_path)
    if header.get("format") != STATE_FORMAT:
        raise ValueError(f"{tensors_path}: unknown format {header.get('format')!r}; expected {STATE_FORMAT!r}")
    if header.get("generation") != meta.get("generation"):
        raise ValueError(f"{tensors_path} and {json_path} were written by different saves (generation "
                         f"{header.get('generation')!r} vs {meta.get('generation')!r}; a save was interrupted): "
                         f"save the state again")
    shapes = meta.get("shapes")
    if not isinstance(shapes, dict) or not isinstance(meta.get("config"), dict):
        raise ValueError(f"{json_path} lacks 'shapes' or 'config' (not a complete pruner state)")
    tensors = read_safetensors(tensors_path)
    state = {k: v for k, v in meta.items() if k != "generation"}
    state["masks"] = {k[len("mask/"):]: t for k, t in tensors.items() if k.startswith("mask/")}
    state["importance"] = {k[len("stat/"):]: t for k, t in tensors.items() if k.startswith("stat/")}
    state["extra_masks"] = {k[len("extra/"):]: t for k, t in tensors.items() if k.startswith("extra/")}
    if set(state["masks"]) != set(shapes):
        odd = sorted(set(state["masks"]) ^ set(shapes))[:3]
        raise ValueError(f"{tensors_path}: its masks and the weights of {json_path.name} differ (e.g. {odd})")
    for name, mask in state["masks"].items():
        # a mask of another shape would be broadcast over the weight and silently zero it
        if mask.dtype != torch.bool or list(mask.shape) != list(shapes[name]):
            raise ValueError(f"{tensors_path}: mask/{name} is {mask.dtype} of shape {list(mask.shape)}; "
                             f"expected torch.bool of shape {list(shapes[name])} ({json_path.name})")
    for name, mask in state["extra_masks"].items():
        if mask.dtype != torch.bool:
            raise ValueError(f"{tensors_path}: extra/{name} is {mask.dtype}, expected torch.bool")
    return state


def _check_extra_masks(state: dict[str, Any], model: nn.Module, path: Path) -> None:
    params = dict(model.named_parameters())
    for name, mask in state["extra_masks"].items():
        if name not in params or tuple(mask.shape) != tuple(params[name].shape):
            want = tuple(params[name].shape) if name in params else "no such parameter"
            raise ValueError(f"{path / STATE_TENSORS}: extra/{name} has shape {tuple(mask.shape)}; the model's "
                             f"parameter: {want}")


def load_state(
    path: str | os.PathLike[str],
    target: nn.Module | Pruner,
    *,
    optimizer: torch.optim.Optimizer | None = None,
) -> Pruner:
    """Load a state written by :func:`save_state`.

    ``target`` is either a :class:`Pruner` of the saved configuration (the state is loaded into it;
    a configuration that differs is refused, naming the fields) or the model, in which case the
    pruner is built from the saved state (:meth:`Pruner.from_state`). The masks are applied to the
    model's weights. Raises ``ValueError`` if the state belongs to another model.
    """
    if not isinstance(target, (Pruner, nn.Module)):
        raise TypeError(f"load_state target must be a Pruner or an nn.Module, got {type(target).__name__}")
    state = read_state(path)
    _check_extra_masks(state, target.model if isinstance(target, Pruner) else target, Path(path))
    if isinstance(target, nn.Module):
        return Pruner.from_state(target, state, optimizer=optimizer)
    target.load_state_dict(state)
    if optimizer is not None:
        target.attach(optimizer)
    return target
