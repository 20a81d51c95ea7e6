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
import math
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from ._fsutil import normal_permissions
from ._readers import read_json, read_safetensors, safetensors_metadata
from ._validate import check_not_a_file
from .pruner import STATE_FORMAT, Pruner

__all__ = ["save_state", "load_state", "read_state", "StateFileError", "STATE_TENSORS", "STATE_JSON"]

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
    check_state_fields(meta, json_path)
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
    check_masks_follow_schedule(state, tensors_path)
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
    try:
        if isinstance(target, nn.Module):
            return Pruner.from_state(target, state, optimizer=optimizer)
        target.load_state_dict(state)
    except StateFileError:
        raise
    except (KeyError, TypeError, IndexError) as exc:  # a field the checks above do not cover: still name the file
        raise StateFileError(Path(path) / STATE_JSON, "state", f"cannot be loaded ({type(exc).__name__}: {exc})") \
            from None
    except ValueError as exc:  # the state does not fit this model or pruner: the message says how
        raise StateFileError(Path(path) / STATE_JSON, "state", str(exc)) from None
    if optimizer is not None:
        target.attach(optimizer)
    return target


# -- validation of a saved state: every field against the configuration's own rules ---------------------------
class StateFileError(ValueError):
    """A saved pruner state that is damaged or was edited: ``path`` is the file, ``field`` the field
    (``"config.prune_steps"``, ``"mask/<weight>"``, ...); the message names both."""

    def __init__(self, path: str | os.PathLike[str], field: str, problem: str) -> None:
        self.path, self.field = Path(path), field
        super().__init__(f"{path}: {field}: {problem}")


#: the largest step count a state may hold: beyond 2**53 a JSON number is no longer an exact integer
MAX_STEP = 2**53
#: the fields of ``config`` (what ``Pruner(model, **config)`` takes)
_CONFIG_FIELDS = ("method", "sparsity", "start_step", "prune_steps", "include", "exclude", "state_dtype",
                  "pattern", "scope", "mask_interval", "method_options")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_count(value: Any, path: Path, field: str, minimum: int) -> int:
    if not _is_int(value):
        raise StateFileError(path, field, f"must be an integer, got {value!r}")
    if not minimum <= value <= MAX_STEP:
        raise StateFileError(path, field, f"must be in [{minimum}, 2**53], got {value!r}")
    return int(value)


def _check_patterns(value: Any, path: Path, field: str) -> None:
    items = [value] if isinstance(value, str) else value
    if value is None:
        return
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise StateFileError(path, field, f"must be null, a regular expression or a list of them, got {value!r}")
    for x in items:
        try:
            re.compile(x)
        except re.error as exc:
            raise StateFileError(path, field, f"{x!r} is not a regular expression ({exc})") from None


def _check_method(config: Mapping[str, Any], step: int, path: Path) -> None:
    """The method must be one the Pruner runs, with its own options; any other name is only the label of
    fixed masks (``Pruner.from_masks``, ``prune_at_init``), whose window is one step and over."""
    from .importance.registry import checked_options, get_method, methods

    method, options = config["method"], config.get("method_options", {})
    if not isinstance(method, str) or not method:
        raise StateFileError(path, "config.method", f"must be a method name, got {method!r}")
    if not isinstance(options, dict):
        raise StateFileError(path, "config.method_options", f"must be an object {{option: value}}, got {options!r}")
    runs_in_pruner = method in methods("fine-tuning")
    if not runs_in_pruner:
        fixed = config.get("start_step") == 0 and config.get("prune_steps") == 1 and step >= 1
        if not fixed:
            raise StateFileError(path, "config.method", f"unknown method {method!r}: the pruner runs "
                                 f"{methods('fine-tuning')}; any other name only labels fixed masks "
                                 "(Pruner.from_masks, prune_at_init, prune_oneshot), whose state has start_step 0, "
                                 "prune_steps 1 and step >= 1")
    registered = method in methods()
    known = set(get_method(method).defaults) if registered else set(options)
    unknown = sorted(set(options) - known)
    if unknown:
        raise StateFileError(path, "config.method_options", f"method {method!r} has no option(s) {unknown}; "
                             f"its options are {sorted(known)}")
    try:  # the values, by the method's own checks
        if registered:
            phase = "fine-tuning" if runs_in_pruner else get_method(method).phases[0]
            checked_options(method, options, phase)
    except (TypeError, ValueError) as exc:
        raise StateFileError(path, "config.method_options", str(exc)) from None


def check_state_fields(meta: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Check every field of a ``pruner.json`` (``meta``) against the rules a :class:`Pruner` applies to its
    own configuration; raise :class:`StateFileError` naming ``path`` and the field."""
    from ._validate import SCOPES, STATE_DTYPES
    from .patterns import parse_pattern

    path = Path(path)
    if not isinstance(meta.get("generation"), str):
        raise StateFileError(path, "generation", f"must be a string, got {meta.get('generation')!r}")
    step = _check_count(meta.get("step"), path, "step", 0)
    observed = _check_count(meta.get("observed_steps", 0), path, "observed_steps", 0)
    skipped = _check_count(meta.get("skipped_steps", 0), path, "skipped_steps", 0)
    if observed + skipped > step:
        raise StateFileError(path, "observed_steps", f"{observed} observed and {skipped} skipped steps are more "
                             f"than the {step} steps taken")
    for name, shape in meta["shapes"].items():
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise StateFileError(path, f"shapes.{name}", f"must be a list of sizes, got {shape!r}")
    config = meta["config"]
    unknown = sorted(set(config) - set(_CONFIG_FIELDS))
    if unknown:
        raise StateFileError(path, "config", f"unknown field(s) {unknown}; a configuration has {list(_CONFIG_FIELDS)}")
    for field in ("method", "sparsity", "start_step", "prune_steps"):
        if field not in config:
            raise StateFileError(path, f"config.{field}", "missing")
    sparsity = config["sparsity"]
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) or not math.isfinite(sparsity) \
            or not 0 <= sparsity < 1:
        raise StateFileError(path, "config.sparsity", f"must be a number in [0, 1), got {sparsity!r}")
    _check_count(config["start_step"], path, "config.start_step", 0)
    _check_count(config["prune_steps"], path, "config.prune_steps", 1)
    _check_count(config.get("mask_interval", 1), path, "config.mask_interval", 1)
    _check_patterns(config.get("include"), path, "config.include")
    _check_patterns(config.get("exclude"), path, "config.exclude")
    if config.get("state_dtype", "float32") not in STATE_DTYPES:
        raise StateFileError(path, "config.state_dtype", f"must be one of {sorted(STATE_DTYPES)}, got "
                             f"{config.get('state_dtype')!r}")
    if config.get("scope", "global") not in SCOPES:
        raise StateFileError(path, "config.scope", f"must be one of {list(SCOPES)}, got {config.get('scope')!r}")
    try:
        parse_pattern(config.get("pattern", "unstructured"))
    except (TypeError, ValueError) as exc:
        raise StateFileError(path, "config.pattern", str(exc)) from None
    _check_method(config, step, path)


def check_masks_follow_schedule(state: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Refuse masks that the saved configuration cannot have produced by the saved step: pruned entries
    before the window, more than the schedule allows inside it, another count than the target after it.

    For the patterns whose count is exact (unstructured, N:M) the tolerance is one entry per matrix
    (``scope="local"`` rounds each matrix's count); the structured patterns count heads and neurons,
    whose size the masks alone do not tell, so only "nothing pruned before the window" applies to them,
    as to fixed masks (a one-step window from step 0: ``Pruner.from_masks``, ``prune_at_init``).
    """
    from .patterns import parse_pattern
    from .schedules import cubic_sparsity, pruned_count

    config, step, masks = state["config"], int(state["step"]), state["masks"]
    total = sum(m.numel() for m in masks.values())
    pruned = total - sum(int(torch.count_nonzero(m)) for m in masks.values())
    start, window, target = int(config["start_step"]), int(config["prune_steps"]), float(config["sparsity"])
    where = f"the masks at step {step} (start_step {start}, prune_steps {window}, sparsity {target})"
    if step <= start and pruned:
        raise StateFileError(path, "mask/*", f"{pruned} entries are pruned before the pruning window starts: "
                             f"{where}; the masks were edited or belong to another state")
    if parse_pattern(config.get("pattern", "unstructured"))[0] == "structured" or not total:
        return
    if start == 0 and window == 1:
        # the one-step window of masks chosen elsewhere (Pruner.from_masks, prune_at_init): their count is
        # whatever was chosen, and ``sparsity`` only the intended one
        return
    tolerance = len(masks)
    allowed = pruned_count(cubic_sparsity(step, target, start, window), total)
    if step >= start + window and abs(pruned - allowed) > tolerance:
        raise StateFileError(path, "mask/*", f"{pruned} of {total} entries are pruned ({pruned / total:.4f}); "
                             f"{where} prune {allowed} ({target}): the masks were edited after the window or "
                             "belong to another state")
    if pruned > allowed + tolerance:
        raise StateFileError(path, "mask/*", f"{pruned} of {total} entries are pruned ({pruned / total:.4f}), more "
                             f"than the schedule's {allowed} for {where}: the masks were edited or belong "
                             "to another state")
