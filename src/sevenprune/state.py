"""Save and load a pruner's state as safetensors + JSON (never pickle).

``save_state(pruner, path)`` writes a directory ``path`` holding

* ``pruner.safetensors``: the masks (``mask/<weight name>``, bool), the method's running statistics
  (``stat/<statistic>/<weight name>``) and, for structured patterns, the masks of other parameters such
  as the biases of removed heads (``extra/<parameter name>``);
* ``pruner.json``: the configuration, the step counters and the weight shapes (human-readable).

Both files are written to temporary names first and renamed, so an interrupted save never leaves a
half-written state in place of a good one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .pruner import Pruner

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
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a directory; pass a directory path")
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
    meta = {k: v for k, v in state.items() if k not in ("masks", "importance", "extra_masks")}
    tmp_tensors = directory / (STATE_TENSORS + ".tmp")
    tmp_json = directory / (STATE_JSON + ".tmp")
    save_file(tensors, str(tmp_tensors), metadata={"format": state["format"]})
    tmp_json.write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_tensors, targets[0])
    os.replace(tmp_json, targets[1])
    return directory


def read_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a saved state into the ``Pruner.state_dict()`` layout (tensors on the CPU)."""
    directory = Path(path)
    tensors_path, json_path = directory / STATE_TENSORS, directory / STATE_JSON
    if not tensors_path.is_file() or not json_path.is_file():
        raise FileNotFoundError(
            f"no pruner state in {directory}: expected {STATE_TENSORS} and {STATE_JSON} (written by save_state)"
        )
    try:
        meta = json.loads(json_path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{json_path} is not valid JSON: {exc}") from exc
    tensors = load_file(str(tensors_path))
    state = dict(meta)
    state["masks"] = {k[len("mask/"):]: t for k, t in tensors.items() if k.startswith("mask/")}
    state["importance"] = {k[len("stat/"):]: t for k, t in tensors.items() if k.startswith("stat/")}
    state["extra_masks"] = {k[len("extra/"):]: t for k, t in tensors.items() if k.startswith("extra/")}
    return state


def load_state(
    path: str | os.PathLike[str],
    target: nn.Module | Pruner,
    *,
    optimizer: torch.optim.Optimizer | None = None,
) -> Pruner:
    """Load a state written by :func:`save_state`.

    ``target`` is either a :class:`Pruner` (its state is replaced) or the model, in which case a
    pruner is built from the saved configuration. The masks are applied to the model's weights.
    Raises ``ValueError`` if the state belongs to another model.
    """
    state = read_state(path)
    if isinstance(target, Pruner):
        pruner = target
        pruner.load_state_dict(state)
        if optimizer is not None:
            pruner.attach(optimizer)
        return pruner
    if not isinstance(target, nn.Module):
        raise TypeError(f"load_state target must be a Pruner or an nn.Module, got {type(target).__name__}")
    config = state.get("config", {})
    # a placeholder configuration: load_state_dict replaces it with the saved one
    pruner = Pruner(target, "magnitude", 0.0, prune_steps=1,
                    include=config.get("include"), exclude=config.get("exclude"))
    pruner.load_state_dict(state)
    if optimizer is not None:
        pruner.attach(optimizer)
    return pruner
