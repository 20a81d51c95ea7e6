"""The folder of one run: what a run writes there, how a folder is known as a run, and how an existing
run is replaced only once the new one has finished.

A run directory holds, when finished:

* ``.sevenprune-run``: the marker written first, by which a folder is known as a run (a folder
  without it is never written into unless it is empty, and never deleted);
* ``config.json``: the effective configuration (defaults <- ``--preset`` <- explicit flags) and the
  resolved schedule (``max_steps``, ``start_step``, ``prune_steps``, the library method);
* ``metrics.jsonl``: one line per evaluation (step, split, metrics, sparsity, train loss);
* ``pruner/``: the pruner state (``sevenprune.save_state``: safetensors + JSON), not for ``dense``;
* ``model/``: the pruned model (safetensors) and its tokenizer;
* ``result.json``: written last, so its presence marks a finished run.

While it trains with ``--checkpoint-every``, a run also keeps ``checkpoint/`` (``checkpoint.tmp/`` while
one is written; :mod:`sevenprune.tasks.checkpoint`): an interrupted run's folder keeps it, to resume
from, and a finished run deletes it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sevenprune._fsutil import (RUN_MARKER, check_output_parent, check_replaceable_position, has_marker,
                                make_sibling_dir, normal_permissions, replace_dir, write_marker)

__all__ = ["RunExistsError", "RunFolder", "is_finished", "is_run_dir", "check_run_dir", "RUN_FILES", "DIAGNOSTICS_FILE",
           "PREDICTIONS_FILE", "CHECKPOINT_DIRS"]


#: the sentinel diagnostics (``--diagnostics``; see sevenprune.diagnostics)
DIAGNOSTICS_FILE = "diagnostics.json"


#: per-example predictions of the final evaluation (``<split>.pred`` and ``<split>.label`` arrays)
PREDICTIONS_FILE = "predictions.npz"


class RunExistsError(FileExistsError):
    """The run directory already holds a finished run."""


def is_finished(out: Path) -> bool:
    """Whether ``out`` holds a finished run (its ``result.json``)."""
    return (Path(out) / "result.json").exists()


#: a run's resumable checkpoint (``--checkpoint-every``), and the names it has while it is replaced
CHECKPOINT_DIRS = ("checkpoint", "checkpoint.tmp", "checkpoint.old")


#: everything a run writes into its folder (and nothing else is ever deleted from it)
RUN_FILES = (RUN_MARKER, "config.json", "metrics.jsonl", "result.json", "pruner", "model", DIAGNOSTICS_FILE,
             PREDICTIONS_FILE, *CHECKPOINT_DIRS)


def _is_legacy_run(out: Path) -> bool:
    """A run folder written before runs carried :data:`RUN_MARKER`: only a run's own names, and a
    ``config.json`` with the ``resolved`` schedule that only runs write (a model folder has weights
    and no such key, so it never passes)."""
    names = {p.name for p in out.iterdir()}
    if not names <= set(RUN_FILES) | {"config.json.tmp", "result.json.tmp"} or "config.json" not in names:
        return False
    try:
        config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(config, dict) and isinstance(config.get("resolved"), dict)


def is_run_dir(out: str | os.PathLike[str]) -> bool:
    """Whether ``out`` is a folder that :func:`run` wrote (its marker, or a run from before markers)."""
    out = Path(out)
    return out.is_dir() and not out.is_symlink() and (has_marker(out, RUN_MARKER) or _is_legacy_run(out))


def check_run_dir(out: Path, overwrite: bool) -> None:
    """Refuse, before any slow work: an output that cannot be created, a non-empty folder that is not
    a run (marker or not: nothing there is ours to delete), a finished run unless ``overwrite``, and
    a run that may not be replaced (the current folder, home, ...)."""
    check_output_parent(out, "--out")
    if out.is_symlink():  # an empty folder it points to would be written into, wherever it is
        raise RunExistsError(f"{out} is a symbolic link (to {out.resolve()}); a run is never written through a "
                             "link: give the folder itself, or another --out")
    if not out.exists() or not any(out.iterdir()):
        return
    if not is_run_dir(out):
        raise RunExistsError(f"{out} is not empty and is not a sevenprune run folder (no {RUN_MARKER} inside); "
                             f"choose another --out")
    if is_finished(out) and not overwrite:
        raise RunExistsError(f"{out} already holds a finished run (result.json); choose another --out "
                             f"or pass --overwrite to replace it")
    check_replaceable_position(out, what="--out")


class RunFolder:
    """Where a run writes: ``out`` itself if it is new or empty; otherwise (an interrupted run, or a
    finished one with ``overwrite``) a new folder beside it that replaces it only once the new run
    has finished, so a failing run never costs the old one."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.created = not out.exists()
        self.replacing = out.exists() and any(out.iterdir())
        if self.replacing:
            self.path = make_sibling_dir(out, "new")
        else:
            out.mkdir(parents=True, exist_ok=True)
            self.path = out
        write_marker(self.path, RUN_MARKER)

    def commit(self) -> None:
        # safetensors writes 0o600 files; an empty --out that the user made keeps its own mode
        for p in [self.path] if (self.created or self.replacing) else [self.path / n for n in RUN_FILES]:
            if p.exists():
                normal_permissions(p)
        if self.replacing:
            if not has_marker(self.out, RUN_MARKER) and _is_legacy_run(self.out):
                write_marker(self.out, RUN_MARKER)  # checked as a run by check_run_dir: ours to replace
            replace_dir(self.path, self.out, RUN_MARKER, what="--out")

    def abort(self) -> None:
        """Remove what this run wrote (and only that)."""
        if self.replacing or self.created:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        for name in RUN_FILES:
            p = self.path / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
