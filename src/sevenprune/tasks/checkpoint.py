"""A run's resumable checkpoint (``--checkpoint-every N``): what the training loop needs to go on from
step k exactly as if it had never stopped, in safetensors + JSON (never pickle).

``<run folder>/checkpoint/`` holds

* ``model.safetensors``: the model's weights and buffers (``safetensors.torch.save_model``: tied weights
  once), pruned entries at zero;
* ``optimizer.safetensors`` + ``optimizer.json``: the optimizer's ``state_dict``, its tensors by parameter
  index and key, the rest (param groups, plain numbers) as JSON;
* ``pruner/``: :func:`sevenprune.save_state` (absent for ``dense``);
* ``rng.safetensors``: torch's random generator states (CPU and every CUDA device: dropout);
* ``state.json``, written last: the step, the run's configuration, the training loop's bookkeeping
  (every training loss, the pruning window's timers, the learning-rate scheduler's state) and what the
  run had written by then (its ``metrics.jsonl`` lines, the starting perplexity, the one-shot pruning's
  seconds).

The data order needs no state: the loader's seeded generator is replayed over the ``k`` batches already
used (:func:`sevenprune.tasks.training.train`). A checkpoint is written into ``checkpoint.tmp`` and
renamed over the previous one, so an interruption at any moment leaves the last complete checkpoint.

An interrupted run keeps its folder with the checkpoint; the same command finds it (in the run folder,
or in the hidden folder beside it where a replacing run was writing: :mod:`sevenprune.tasks.run_dir`),
checks that the configuration is the same (:func:`~sevenprune.tasks.config.config_differences`) and
resumes. A finished run deletes its checkpoint: it is gigabytes for a language model (weights, AdamW's
two moments and the pruner's statistics: 13 + 12 bytes per weight for SEVEN's default form).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from .._fsutil import RUN_MARKER, atomic_write_text, has_marker
from .config import config_differences
from .run_dir import CHECKPOINT_DIRS

__all__ = ["CHECKPOINT_DIR", "LoopState", "Checkpoint", "save_checkpoint", "find_checkpoint", "optimizer_to_files",
           "optimizer_from_files", "remove_stale_checkpoints", "discard", "has_checkpoint"]

CHECKPOINT_DIR, _TMP, _OLD = CHECKPOINT_DIRS
_STATE = "state.json"
_FORMAT = "sevenprune-checkpoint-1"


@dataclass
class LoopState:
    """The training loop's own state after ``step`` optimizer steps (see :func:`~.training.train`)."""

    step: int
    losses: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    window_steps: int = 0
    window_seconds: float = 0.0
    pruner_seconds: float = 0.0
    scheduler: dict[str, Any] | None = None
    #: the optimizer's ``state_dict`` (loaded by ``train`` after it builds the scheduler, whose
    #: construction sets the learning rate)
    optimizer: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "optimizer"}


@dataclass
class Checkpoint:
    """A checkpoint found on disk: its folder and ``state.json``."""

    path: Path
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["loop"]["step"])

    def loop_state(self) -> LoopState:
        loop = LoopState(**self.state["loop"])
        loop.optimizer = optimizer_from_files(self.path)
        return loop

    def load_model(self, model: torch.nn.Module) -> None:
        missing, unexpected = load_model(model, str(self.path / "model.safetensors"), strict=False)
        if missing or unexpected:
            raise ValueError(f"checkpoint {self.path}: the model's tensors differ from the saved ones (missing "
                             f"{sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]})")

    def restore_rng(self) -> None:
        states = load_file(str(self.path / "rng.safetensors"))
        torch.set_rng_state(states["cpu"])
        if torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                if f"cuda/{i}" in states:
                    torch.cuda.set_rng_state(states[f"cuda/{i}"], i)


# -- the optimizer's state_dict as safetensors + JSON ------------------------------------------------------------
def optimizer_to_files(optimizer: torch.optim.Optimizer, folder: Path) -> None:
    """``optimizer.state_dict()`` as ``optimizer.safetensors`` (every tensor) and ``optimizer.json``."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain_state: dict[str, dict[str, Any]] = {}
    for index, entries in sd["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state/{index}/{key}"] = value.detach().cpu().contiguous()
            else:
                plain_state.setdefault(str(index), {})[key] = _plain(value, f"state {index} {key!r}")
    groups = []
    for g, group in enumerate(sd["param_groups"]):
        plain: dict[str, Any] = {}
        for key, value in group.items():
            if isinstance(value, torch.Tensor):
                tensors[f"group/{g}/{key}"] = value.detach().cpu().contiguous()
            else:
                plain[key] = _plain(value, f"param group {g} {key!r}")
        groups.append(plain)
    save_file(tensors, str(folder / "optimizer.safetensors"))
    tuples = sorted({k for group in sd["param_groups"] for k, v in group.items() if isinstance(v, tuple)})
    meta = {"class": type(optimizer).__qualname__, "state_indices": sorted(str(i) for i in sd["state"]),
            "plain_state": plain_state, "param_groups": groups, "tuple_keys": tuples}
    atomic_write_text(folder / "optimizer.json", json.dumps(meta, indent=1) + "\n")


def optimizer_from_files(folder: Path) -> dict[str, Any]:
    """The ``state_dict`` written by :func:`optimizer_to_files`, tuples included."""
    meta = json.loads((folder / "optimizer.json").read_text(encoding="utf-8"))
    tensors = load_file(str(folder / "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {int(i): dict(meta["plain_state"].get(i, {})) for i in meta["state_indices"]}
    groups = [dict(g) for g in meta["param_groups"]]
    for name, tensor in tensors.items():
        kind, index, key = name.split("/", 2)
        if kind == "state":
            state[int(index)][key] = tensor
        else:
            groups[int(index)][key] = tensor
    for group in groups:  # JSON has no tuples: those the optimizer held (betas, ...) come back as tuples
        for key in meta.get("tuple_keys", []):
            if isinstance(group.get(key), list):
                group[key] = tuple(group[key])
    return {"state": state, "param_groups": groups}


def _plain(value: Any, what: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(v is None or isinstance(v, (bool, int, float, str)) for v in value):
        return list(value)
    raise TypeError(f"the optimizer's {what} is a {type(value).__name__}, which a checkpoint cannot hold "
                    "(tensors, numbers, strings and lists of them)")


# -- writing and finding ---------------------------------------------------------------------------------------
def save_checkpoint(run_folder: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer, pruner: Any,
                    loop: LoopState, run: Mapping[str, Any]) -> Path:
    """Write the checkpoint of step ``loop.step`` into ``run_folder/checkpoint`` (replacing the previous
    one only once the new one is complete). ``run``: the run's configuration and what it wrote so far."""
    import sevenprune as sp

    tmp = run_folder / _TMP
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_model(model, str(tmp / "model.safetensors"))
    optimizer_to_files(optimizer, tmp)
    if pruner is not None:
        sp.save_state(pruner, tmp / "pruner")
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda/{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(rng, str(tmp / "rng.safetensors"))
    atomic_write_text(tmp / _STATE, json.dumps({"format": _FORMAT, "loop": loop.to_json(), **run}) + "\n")
    final, old = run_folder / CHECKPOINT_DIR, run_folder / _OLD
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def _read(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((path / _STATE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return state if isinstance(state, dict) and state.get("format") == _FORMAT else None


def _candidates(out: Path) -> list[Path]:
    """The run folder and the hidden folders beside it where a replacing run wrote (``.<name>.new-*``),
    those that are run folders (marker inside); none where ``out``'s parent folder does not exist."""
    if not out.parent.is_dir():
        return []
    prefix = f".{out.name}.new-"  # compared as text: a name may hold glob characters ("run[1]")
    folders = [out] + sorted(p for p in out.parent.iterdir() if p.name.startswith(prefix))
    return [f for f in folders if f.is_dir() and not f.is_symlink() and has_marker(f, RUN_MARKER)]


def checkpoint_paths(out: Path) -> list[Path]:
    """Where checkpoints of the run at ``out`` may lie: ``out/checkpoint`` and the checkpoint folders of the
    hidden run folders beside it. A resumed run writes its newer checkpoints there (it replaces ``out`` only
    when it finishes), so ``out/checkpoint`` alone may be the older one it resumed from."""
    return [folder / CHECKPOINT_DIR for folder in _candidates(out)]


def find_checkpoint(out: Path, config: Mapping[str, Any], log: Any = print) -> Checkpoint | None:
    """The latest checkpoint of an interrupted run of this configuration at ``out``, or None. A checkpoint
    of another configuration is not used (said in ``log``): the run starts afresh."""
    best: Checkpoint | None = None
    for path in checkpoint_paths(out):
        state = _read(path)
        if state is None:
            continue
        differ = config_differences(state.get("config", {}), dict(config))
        if differ:
            log(f"checkpoint {path} is of another configuration (differs in {differ}): not resumed")
            continue
        found = Checkpoint(path, state)
        if best is None or found.step > best.step:
            best = found
    return best


def remove_stale_checkpoints(out: Path) -> None:
    """After a run has finished into ``out``: delete the hidden folders beside it that interrupted runs
    left with a checkpoint (run folders of ours, marker inside; never ``out`` itself)."""
    for folder in _candidates(out)[1:]:
        if (folder / CHECKPOINT_DIR).exists() or (folder / _TMP).exists():
            shutil.rmtree(folder, ignore_errors=True)


def discard(run_folder: Path) -> None:
    """Delete the checkpoint of a run that has finished (and any half-written one)."""
    for name in CHECKPOINT_DIRS:
        shutil.rmtree(run_folder / name, ignore_errors=True)


def has_checkpoint(run_folder: Path) -> bool:
    return _read(run_folder / CHECKPOINT_DIR) is not None
