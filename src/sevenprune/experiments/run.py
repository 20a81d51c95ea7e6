"""One experiment: fine-tune and prune once, evaluate, write everything to a run directory.

A run directory holds, when finished:

* ``.sevenprune-run``: the marker written first, by which a folder is known as a run (a folder
  without it is never written into unless it is empty, and never deleted);
* ``config.json``: the effective configuration (defaults <- ``--preset`` <- explicit flags) and the
  resolved schedule (``max_steps``, ``start_step``, ``prune_steps``, the library method);
* ``metrics.jsonl``: one line per evaluation (step, split, metrics, sparsity, train loss);
* ``pruner/``: the pruner state (``sevenprune.save_state``: safetensors + JSON), not for ``dense``;
* ``model/``: the pruned model (safetensors) and its tokenizer;
* ``result.json``: written last, so its presence marks a finished run.

Methods: ``dense`` (no pruning); every training-time method of :func:`sevenprune.methods`
(``seven``, ``magnitude``, ``platon``, ``movement``, ...), run through :class:`sevenprune.Pruner`;
the pruning-at-initialisation methods (``snip``, ``grasp``, ``force``) through
``sevenprune.init_pruning.prune_at_init``; and these aliases:

* ``seven_dyn``: ``seven`` with the default schedule of training-time methods (start after 10% of
  the steps, window 60% of the steps), i.e. SEVEN_dyn;
* ``seven_pre``: ``seven`` with ``start_step=0`` and ``prune_steps=100`` (the reference hint for K),
  the weights updated at every step as in Algorithm 1, i.e. SEVEN_pre;
* ``seven_pre_frozen``: SEVEN scored on ``prune_steps`` batches at the starting weights without
  updating them (``prune_at_init(model, "seven", ...)``), then fine-tuned with the mask fixed;
* ``magnitude_init``, ``random_init``: one-shot magnitude / random pruning at the starting weights
  (``prune_at_init``), the baselines of the pruning-at-initialisation protocol (plain ``magnitude``
  and ``random`` prune gradually during fine-tuning).

A pruning window that does not fit in ``max_steps`` is an error, never a lower sparsity.

Everything is checked (options, data, model, method options) before the run folder is written. An
existing run (interrupted, or finished with ``overwrite``) is replaced only once the new run has
finished: the new one is written beside it and swapped in (:mod:`sevenprune._fsutil`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

import sevenprune as sp
from sevenprune._validate import SCOPES, STATE_DTYPES
from sevenprune.init_pruning import init_method, prune_at_init

from sevenprune._fsutil import (RUN_MARKER, atomic_write_text, check_output_parent, check_replaceable_position,
                                has_marker, make_sibling_dir, normal_permissions, replace_dir, write_marker)

__all__ = ["RunConfig", "RunExistsError", "resolve_config", "method_choices", "run", "plan_schedule",
           "ALIASES", "INIT_METHODS", "is_finished", "is_run_dir", "check_run_dir", "COSMETIC", "RUN_FILES"]

#: alias -> (library method, phase); see the module docstring
ALIASES: dict[str, tuple[str, str]] = {
    "seven_dyn": ("seven", "train"),
    "seven_pre": ("seven", "train"),
    "seven_pre_frozen": ("seven", "init"),
    # one-shot baselines at the starting weights, for the pruning-at-initialisation protocol
    "magnitude_init": ("magnitude", "init"),
    "random_init": ("random", "init"),
}
#: the methods that only prune at initialisation (the others are also the Pruner's)
INIT_METHODS = tuple(m for m in sp.init_methods() if m not in sp.pruner_methods())
#: the seed of the data subsamples (--train-limit, --eval-limit): every run of a sweep sees the same rows
DATA_SEED = 1234
#: SEVEN_pre's default window (the reference hint: 100 steps at batch 32)
SEVEN_PRE_STEPS = 100


#: --optimizer choices: AdamW (0.9, 0.999, eps 1e-8), SGD with momentum 0.9, torch's Adafactor
OPTIMIZERS = ("adamw", "sgd", "adafactor")
#: --lr-schedule choices (after --warmup-steps of linear warm-up): constant, linear decay to 0, cosine to 0
LR_SCHEDULES = ("constant", "linear", "cosine")


def make_optimizer(name: str, params: Any, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """The fine-tuning optimizer of a run (its settings are recorded in config.json by name)."""
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adafactor":  # torch's own (maintained in core since 2.5), with an explicit learning rate
        return torch.optim.Adafactor(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}")


def lr_factor(schedule: str, warmup_steps: int, max_steps: int) -> Any:
    """``step -> factor`` for ``LambdaLR`` (step counts optimizer updates from 0), or None for a constant
    learning rate without warm-up. The same shapes as transformers' ``get_*_schedule_with_warmup``."""
    if schedule == "constant" and not warmup_steps:
        return None

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps if schedule == "constant" else step / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
        if schedule == "linear":
            return max(0.0, 1.0 - progress)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))

    return factor


#: the sentinel diagnostics (``--diagnostics``; see sevenprune.diagnostics)
DIAGNOSTICS_FILE = "diagnostics.json"
#: per-example predictions of the final evaluation (``<split>.pred`` and ``<split>.label`` arrays)
PREDICTIONS_FILE = "predictions.npz"


def code_version() -> dict[str, Any]:
    """The package version and, in a git checkout, the commit (recorded with every run)."""
    import subprocess

    import sevenprune

    info: dict[str, Any] = {"version": getattr(sevenprune, "__version__", None), "git_commit": None}
    try:
        here = Path(__file__).resolve().parent
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10, check=False)
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
            info["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return info


#: options that do not change the result (a finished run is still valid if they differ)
COSMETIC = ("progress", "eval_batch_size", "cache_dir", "device", "save_model", "threads", "diagnostics")


class RunExistsError(FileExistsError):
    """The run directory already holds a finished run."""


def _phase(method: str) -> str:
    """``"train"`` for a method the Pruner runs during fine-tuning, ``"init"`` for the others."""
    return "train" if method in sp.pruner_methods() else "init"


def method_choices() -> list[str]:
    """Every ``--method`` value: ``dense``, the aliases, the library's methods, the init methods."""
    return ["dense"] + sorted(set(sp.methods()) | set(ALIASES))


@dataclass
class RunConfig:
    """Every option of a run (the CLI's flags). ``None`` means: derived (see :func:`plan_schedule`)."""

    task: str = "mr"
    model: str = "minilm"
    method: str = "seven"
    sparsity: float | None = None
    start_step: int | None = None
    prune_steps: int | None = None
    max_steps: int | None = None
    epochs: float = 3.0
    batch_size: int = 32
    eval_batch_size: int = 128
    lr: float = 2e-5
    optimizer: str = "adamw"
    lr_schedule: str = "constant"
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0
    max_length: int = 128
    doc_stride: int = 128
    seed: int = 42
    eval_every: int = 0
    train_limit: int | None = None
    eval_limit: int | None = None
    data_dir: str | None = None
    text_column: str | None = None
    text_pair_column: str | None = None
    label_column: str | None = None
    cache_dir: str | None = None
    device: str = "auto"
    threads: int | None = None
    state_dtype: str = "float32"
    pattern: str = "unstructured"
    scope: str = "global"
    mask_interval: int = 1
    method_options: dict[str, Any] = field(default_factory=dict)
    include: list[str] | None = None
    exclude: list[str] | None = None
    preset: str | None = None
    save_model: bool = True
    progress: bool = True
    diagnostics: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)



def _fields() -> set[str]:
    return {f.name for f in dataclasses.fields(RunConfig)}


def resolve_config(explicit: dict[str, Any]) -> RunConfig:
    """Defaults <- preset (``explicit["preset"]``) <- every explicit value that is not ``None``.

    >>> resolve_config({"task": "mrpc", "preset": "paper", "lr": 1e-4}).lr
    0.0001
    >>> resolve_config({"task": "mrpc", "preset": "paper"}).start_step
    300
    """
    from .presets import get_preset
    from .tasks import get_task

    unknown = sorted(set(explicit) - _fields())
    if unknown:
        raise ValueError(f"unknown run option(s) {unknown}; valid options are {sorted(_fields())}")
    values: dict[str, Any] = {}
    task = explicit.get("task") or RunConfig.task
    get_task(task)
    if explicit.get("preset"):
        values.update(get_preset(explicit["preset"], task))
    values.update({k: v for k, v in explicit.items() if v is not None})
    cfg = RunConfig(**values)
    validate(cfg)
    return cfg


def _check_method_options(cfg: RunConfig) -> None:
    """The method's options, checked by the method itself before anything is loaded (an unknown name or
    a bad value is bad input: ``ValueError``)."""
    from sevenprune.importance import get_method

    if cfg.method == "dense":
        if cfg.method_options:
            raise ValueError(f"method 'dense' takes no --method-option; got {sorted(cfg.method_options)}")
        return
    if not isinstance(cfg.method_options, dict):
        raise ValueError(f"method_options must be a table of option names and values, got {cfg.method_options!r}")
    library, phase = ALIASES.get(cfg.method, (cfg.method, _phase(cfg.method)))
    options = dict(cfg.method_options)
    try:
        if phase == "init":
            init_method(library).options({}, torch.float32, options)
        else:
            options.pop("freeze_during_pruning", None)  # prune_at_init's own (refused by the Pruner later)
            get_method(library)({}, **options)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def validate(cfg: RunConfig) -> None:
    """Check names and ranges before anything is loaded (errors name the value and the choices)."""
    from .models import resolve_model_path
    from .tasks import get_task

    get_task(cfg.task)
    choices = method_choices()
    if cfg.method not in choices:
        raise ValueError(f"unknown method {cfg.method!r}; choose one of {choices}")
    _check_method_options(cfg)
    if cfg.method == "dense":
        if cfg.sparsity not in (None, 0, 0.0):
            raise ValueError(f"method 'dense' does not prune; got --sparsity {cfg.sparsity} (leave it out or use 0)")
    else:
        if cfg.sparsity is None:
            raise ValueError(f"method {cfg.method!r} needs --sparsity, a fraction in (0, 1) such as 0.5")
        s = cfg.sparsity
        if isinstance(s, bool) or not isinstance(s, (int, float)) or not (0.0 < float(s) < 1.0):
            raise ValueError(f"sparsity must be a fraction in (0, 1) (e.g. 0.5 = half the weights "
                             f"removed), got {s!r}")
    if cfg.model != "vit-scratch":
        resolve_model_path(cfg.model)
    if cfg.scope not in SCOPES:
        raise ValueError(f"unknown scope {cfg.scope!r}; choose 'global' (one ranking over every prunable weight) "
                         f"or 'local' (the same fraction in every matrix)")
    if cfg.state_dtype not in STATE_DTYPES:
        raise ValueError(f"unknown state_dtype {cfg.state_dtype!r}; choose one of {list(STATE_DTYPES)}")
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose one of {list(OPTIMIZERS)}")
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r}; choose one of {list(LR_SCHEDULES)}")
    _check_device(cfg.device)
    _check_numbers(cfg)
    _check_data_options(cfg)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_numbers(cfg: RunConfig) -> None:
    """Every numeric option in its range (``--epochs 0`` would still run a step; ``--threads 0`` is torch's
    error later)."""
    def number(name: str, integer: bool) -> float | None:
        v = getattr(cfg, name)
        if v is None:
            return None
        ok = isinstance(v, int) if integer else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok:
            raise ValueError(f"{_flag(name)} must be {'an integer' if integer else 'a number'}, got {v!r}")
        return float(v)

    at_least = {"batch_size": 1, "eval_batch_size": 1, "max_length": 1, "doc_stride": 1, "max_steps": 1,
                "train_limit": 1, "eval_limit": 1, "threads": 1, "prune_steps": 1, "start_step": 0,
                "warmup_steps": 0, "eval_every": 0, "mask_interval": 1}
    for name, low in at_least.items():
        v = number(name, integer=True)
        if v is not None and v < low:
            raise ValueError(f"{_flag(name)} must be >= {low}, got {getattr(cfg, name)}")
    for name in ("epochs", "lr"):
        v = number(name, integer=False)
        if v is None or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{_flag(name)} must be > 0, got {getattr(cfg, name)}")
    for name in ("weight_decay", "max_grad_norm"):
        v = number(name, integer=False)
        if v is not None and (not math.isfinite(v) or v < 0):
            raise ValueError(f"{_flag(name)} must be >= 0, got {getattr(cfg, name)}")


def _check_device(device: str) -> None:
    """``auto``, ``cpu``, or a CUDA device this torch can use (checked now, not at the first tensor)."""
    if not isinstance(device, str) or not (device in ("auto", "cpu") or device == "cuda"
                                           or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ValueError(f"unknown device {device!r}; choose 'auto', 'cpu' or 'cuda[:N]'")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: this torch ({torch.__version__}) sees no CUDA device; use "
                             f"--device cpu or auto")
        index = int(device[5:]) if device.startswith("cuda:") else 0
        if index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) "
                             f"(cuda:0..cuda:{torch.cuda.device_count() - 1})")


def _check_data_options(cfg: RunConfig) -> None:
    """The options that say where the data is, for the task that reads it."""
    from .tasks import NO_DATA_DIR_TASKS, USER_DATA_TASKS, get_task

    if cfg.data_dir is not None and cfg.task in NO_DATA_DIR_TASKS:
        raise ValueError(f"task {cfg.task!r} reads its own data and would ignore --data-dir {cfg.data_dir!r}; "
                         f"leave --data-dir out, or use --task text-classification for files of your own")
    if cfg.data_dir is None and cfg.task in USER_DATA_TASKS:
        raise ValueError(f"task {cfg.task!r} needs --data-dir ({get_task(cfg.task).description})")
    if cfg.data_dir is not None and not Path(cfg.data_dir).is_dir():
        raise FileNotFoundError(f"--data-dir {cfg.data_dir!r} is not a folder")
    for name in ("text_column", "text_pair_column", "label_column"):
        value = getattr(cfg, name)
        if value is not None and cfg.task != "text-classification":
            raise ValueError(f"{_flag(name)} {value!r} is for --task text-classification, not {cfg.task!r}")
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{_flag(name)} must be a column name, got {value!r}")


def plan_schedule(cfg: RunConfig, n_train: int) -> dict[str, Any]:
    """Resolve ``max_steps``, the library method, its phase and the pruning window.

    >>> plan_schedule(RunConfig(method="seven_dyn", sparsity=0.5, max_steps=100), 1000)["start_step"]
    10
    >>> plan_schedule(RunConfig(method="seven", sparsity=0.5, max_steps=50, start_step=40, prune_steps=20), 1000)
    Traceback (most recent call last):
    ...
    ValueError: the pruning window (start_step 40 + prune_steps 20 = 60) does not fit in max_steps 50; raise --max-steps/--epochs or shorten the window
    """
    steps_per_epoch = max(1, math.ceil(n_train / cfg.batch_size))
    max_steps = int(cfg.max_steps) if cfg.max_steps else max(1, math.ceil(cfg.epochs * steps_per_epoch))
    method, phase = cfg.method, "dense"
    start, window = cfg.start_step, cfg.prune_steps
    if cfg.method in ALIASES:
        method, phase = ALIASES[cfg.method]
    elif cfg.method != "dense":
        method, phase = cfg.method, _phase(cfg.method)
    if cfg.method == "seven_pre" or cfg.method == "seven_pre_frozen":
        if start not in (None, 0):
            raise ValueError(f"{cfg.method} prunes from step 0; got --start-step {start} (use seven_dyn)")
        start, window = 0, (window if window is not None else SEVEN_PRE_STEPS)
    elif phase == "train":
        # the default schedule of training-time methods: start after 10% of the steps, prune over 60%
        start = start if start is not None else round(0.1 * max_steps)
        window = window if window is not None else max(1, round(0.6 * max_steps))
    elif phase == "init":
        start = 0
    else:  # dense: no pruning window
        start = window = None
    if phase == "train":
        assert start is not None and window is not None  # both set above for training-time methods
        if start + window > max_steps:
            raise ValueError(f"the pruning window (start_step {start} + prune_steps {window} = {start + window}) "
                             f"does not fit in max_steps {max_steps}; raise --max-steps/--epochs or shorten "
                             f"the window")
    return {"max_steps": max_steps, "steps_per_epoch": steps_per_epoch, "library_method": method,
            "phase": phase, "start_step": start, "prune_steps": window}


def is_finished(out: Path) -> bool:
    """Whether ``out`` holds a finished run (its ``result.json``)."""
    return (Path(out) / "result.json").exists()


#: everything a run writes into its folder (and nothing else is ever deleted from it)
RUN_FILES = (RUN_MARKER, "config.json", "metrics.jsonl", "result.json", "pruner", "model", DIAGNOSTICS_FILE,
             PREDICTIONS_FILE)


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
    if not out.exists() or not any(out.iterdir()):
        return
    if not is_run_dir(out):
        raise RunExistsError(f"{out} is not empty and is not a sevenprune run folder (no {RUN_MARKER} inside); "
                             f"choose another --out")
    if is_finished(out) and not overwrite:
        raise RunExistsError(f"{out} already holds a finished run (result.json); choose another --out "
                             f"or pass --overwrite to replace it")
    check_replaceable_position(out, what="--out")


class _RunFolder:
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


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _encode(spec: Any, cols: Any, tokenizer: Any, model: Any, cfg: RunConfig, *, train: bool) -> Any:
    from .features import encode_images, encode_squad, encode_text

    if spec.kind == "image":
        return encode_images(spec, cols, int(model.config.image_size))
    if spec.kind == "squad":
        return encode_squad(cols, tokenizer, cfg.max_length, min(cfg.doc_stride, cfg.max_length // 2), train=train)
    return encode_text(spec, cols, tokenizer, cfg.max_length)


class _DeviceBatches:
    """Re-iterable batches on ``device``: the first ``limit`` batches of ``loader`` (all if None)."""

    def __init__(self, loader: Any, device: torch.device, limit: int | None) -> None:
        self.loader, self.device, self.limit = loader, device, limit

    def __iter__(self) -> Any:
        for i, batch in enumerate(self.loader):
            if self.limit is not None and i >= self.limit:
                return
            yield {k: v.to(self.device) for k, v in batch.items()}


#: pruning-at-initialisation methods that score once (the others iterate ``steps`` times)
ONE_SHOT = ("snip", "grasp")


def _prune_at_init(model: Any, method: str, sparsity: float, loader: Any, device: torch.device,
                   steps: int | None, cfg: RunConfig, state_dtype: torch.dtype,
                   optimizer: torch.optim.Optimizer) -> sp.Pruner:
    """Score before fine-tuning: SNIP/GraSP on ``steps`` batches (default 1), FORCE/SEVEN_pre frozen
    for ``steps`` iterations (default 100), each on the next batch. Gradients are taken in eval mode
    (no dropout), so the masks do not depend on dropout noise. The pruner returned holds the masks,
    with ``optimizer`` attached (as a user's ``prune_at_init(..., optimizer=optimizer)``)."""
    def loss_fn(m: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return cast(torch.Tensor, m(**batch).loss)

    if method in ONE_SHOT:
        # the one-shot methods score on every batch given and ignore ``steps``
        batches, iterations = _DeviceBatches(loader, device, steps or 1), 1
    else:
        batches, iterations = _DeviceBatches(loader, device, None), steps or SEVEN_PRE_STEPS
    model.eval()
    try:
        return prune_at_init(model, method, sparsity, batches, loss_fn, steps=iterations, include=cfg.include,
                             exclude=cfg.exclude, optimizer=optimizer, state_dtype=state_dtype, scope=cfg.scope,
                             **cfg.method_options)
    finally:
        model.train()


def _zero_fraction(pruner: Any) -> float:
    total = zeros = 0
    for p in pruner.params.values():
        total += p.numel()
        zeros += int((p.detach() == 0).sum())
    return zeros / total if total else 0.0


@contextlib.contextmanager
def _library_progress_bars(enabled: bool) -> Iterator[None]:
    """Silence transformers' and datasets' own progress bars ("Loading weights", "Writing model
    shards", ...) under ``--no-progress``; restore the previous setting after."""
    if enabled:
        yield
        return
    import datasets
    from transformers.utils import logging as tf_logging

    tf_was_on = tf_logging.is_progress_bar_enabled()
    ds_was_off = datasets.utils.are_progress_bars_disabled()
    tf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if tf_was_on:
            tf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]
        if not ds_was_off:
            datasets.enable_progress_bars()


def run(cfg: RunConfig, out: str | os.PathLike[str], *, overwrite: bool = False,
        log: Any = print) -> dict[str, Any]:
    """Run one experiment into the directory ``out``; returns ``result.json``'s content."""
    with _library_progress_bars(cfg.progress):
        return _run(cfg, out, overwrite=overwrite, log=log)


def _run(cfg: RunConfig, out: str | os.PathLike[str], *, overwrite: bool, log: Any) -> dict[str, Any]:
    import sevenprune as sp

    from .models import load_model
    from .tasks import load_task, subsample
    from .training import make_loader

    validate(cfg)
    out = Path(out)
    check_run_dir(out, overwrite)  # before any slow work; the folder is written once everything is checked
    t0 = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    _seed_everything(cfg.seed)
    data = load_task(cfg.task, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir, text_column=cfg.text_column,
                     text_pair_column=cfg.text_pair_column, label_column=cfg.label_column)
    spec = data.spec
    train_cols = subsample(data.train, cfg.train_limit, DATA_SEED)
    eval_cols = {s: subsample(c, cfg.eval_limit, DATA_SEED + 1) for s, c in data.evals.items()}
    plan = plan_schedule(cfg, len(next(iter(train_cols.values()))))
    device = _device(cfg.device)
    model, tokenizer = load_model(cfg.model, spec, labels=data.info.get("labels"))
    positions = getattr(model.config, "max_position_embeddings", None)
    if spec.kind != "image" and isinstance(positions, int) and cfg.max_length > positions:
        # longer inputs would index past the position table in the middle of training
        raise ValueError(f"--max-length {cfg.max_length} exceeds the {positions} positions of model {cfg.model!r}")
    model.to(device)
    pad_id = getattr(tokenizer, "pad_token_id", None) or 0
    train_enc = _encode(spec, train_cols, tokenizer, model, cfg, train=True)
    eval_encs = {s: _encode(spec, c, tokenizer, model, cfg, train=False) for s, c in eval_cols.items()}
    train_loader = make_loader(train_enc, spec, cfg.batch_size, shuffle=True, seed=cfg.seed, pad_id=pad_id)
    eval_loaders = {s: make_loader(e, spec, cfg.eval_batch_size, shuffle=False, seed=0, pad_id=pad_id)
                    for s, e in eval_encs.items()}
    optimizer = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr, cfg.weight_decay)
    dtype = STATE_DTYPES[cfg.state_dtype]
    pruner = None
    sparsity = float(cfg.sparsity or 0.0)
    if plan["phase"] == "train":
        pruner = sp.Pruner(model, plan["library_method"], sparsity, plan["start_step"], plan["prune_steps"],
                           include=cfg.include, exclude=cfg.exclude, optimizer=optimizer,
                           state_dtype=dtype, pattern=cfg.pattern, scope=cfg.scope,
                           mask_interval=cfg.mask_interval, **cfg.method_options)
    elif plan["phase"] == "init" and cfg.pattern != "unstructured":
        raise ValueError(f"--pattern {cfg.pattern!r} works with methods that prune during fine-tuning "
                         f"(sp.Pruner), not with {cfg.method!r}")

    # every option is checked and the data and model are loaded: only now is anything written
    folder = _RunFolder(out)
    try:
        result = _execute(folder.path, _Prepared(cfg, plan, data.info, spec, model, tokenizer, pruner, optimizer,
                                                 device, train_enc, eval_encs, eval_loaders, train_loader, eval_cols,
                                                 dtype, pad_id, t0), log)
    except BaseException:
        folder.abort()
        raise
    folder.commit()
    return result


@dataclass
class _Prepared:
    """Everything :func:`run` checks and builds before it writes anything."""

    cfg: RunConfig
    plan: dict[str, Any]
    info: dict[str, Any]
    spec: Any
    model: Any
    tokenizer: Any
    pruner: Any
    optimizer: Any
    device: torch.device
    train_enc: Any
    eval_encs: Any
    eval_loaders: Any
    train_loader: Any
    eval_cols: Any
    dtype: torch.dtype
    pad_id: int
    t0: float


def _execute(out: Path, p: _Prepared, log: Any) -> dict[str, Any]:
    """The part of :func:`run` that writes into the run folder ``out``: prune, train, evaluate, save."""
    import sevenprune as sp

    from .training import append_jsonl, evaluate, make_loader, train

    cfg, plan, info, spec, model, tokenizer = p.cfg, p.plan, p.info, p.spec, p.model, p.tokenizer
    pruner, optimizer, device, dtype, pad_id = p.pruner, p.optimizer, p.device, p.dtype, p.pad_id
    train_enc, eval_encs, eval_loaders, eval_cols = p.train_enc, p.eval_encs, p.eval_loaders, p.eval_cols
    train_loader, t0 = p.train_loader, p.t0
    _write_json(out / "config.json", {**cfg.to_dict(), "resolved": plan, "task_info": info, "code": code_version()})
    sparsity = float(cfg.sparsity or 0.0)
    if plan["phase"] == "init":
        log(f"pruning at initialisation with {cfg.method} ...")
        init_loader = make_loader(train_enc, spec, cfg.batch_size, shuffle=True, seed=cfg.seed + 1, pad_id=pad_id)
        pruner = _prune_at_init(model, plan["library_method"], sparsity, init_loader, device,
                                plan["prune_steps"], cfg, dtype, optimizer)

    lr_lambda = lr_factor(cfg.lr_schedule, cfg.warmup_steps, plan["max_steps"])

    final_predictions: dict[str, np.ndarray] = {}

    def evaluate_all(step: int, train_loss: float | None) -> dict[str, float]:
        primary = spec.eval_splits[0]
        merged: dict[str, float] = {}
        for split, loader in eval_loaders.items():
            kept: dict[str, np.ndarray] = {}
            m = evaluate(model, spec, eval_encs[split], loader, device, desc=f"eval {split}",
                         progress=cfg.progress, keep=kept if spec.kind != "squad" else None)
            final_predictions.update({f"{split}.{k}": v for k, v in kept.items()})
            append_jsonl(out / "metrics.jsonl", {
                "step": step, "split": split, **m,
                "sparsity": pruner.sparsity() if pruner is not None else 0.0,
                "train_loss": train_loss})
            merged.update({(k if split == primary else f"{split}/{k}"): v for k, v in m.items()})
        return merged

    diag = None
    if cfg.diagnostics and pruner is not None and plan["phase"] == "train":
        diag = sp.PruningDiagnostics(pruner)
    stats = train(model, train_loader, optimizer, max_steps=plan["max_steps"], device=device, pruner=pruner,
                  lr_lambda=lr_lambda, max_grad_norm=cfg.max_grad_norm,
                  eval_every=cfg.eval_every, on_eval=evaluate_all,
                  progress=cfg.progress, after_pruner_step=diag.step if diag is not None else None)
    if diag is not None:
        diag.save(out / DIAGNOSTICS_FILE)
    t_eval = time.perf_counter()
    final_predictions.clear()
    metrics = evaluate_all(plan["max_steps"], stats["train_loss"])
    eval_seconds = time.perf_counter() - t_eval
    if final_predictions:  # per-example predictions of the final model: paired tests between runs
        np.savez_compressed(out / PREDICTIONS_FILE, **cast(dict[str, Any], final_predictions))

    if pruner is not None:
        report = pruner.report()
        sp.save_state(pruner, out / "pruner", overwrite=True)
        achieved, model_sparsity = report["sparsity"], report["model_sparsity"]
        layers = {n: v["sparsity"] for n, v in report["layers"].items()}
        zero_fraction = _zero_fraction(pruner)
    else:
        achieved = model_sparsity = zero_fraction = 0.0
        layers = {}
    if cfg.save_model:
        model.save_pretrained(str(out / "model"))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(out / "model"))
    result = {
        "task": cfg.task,
        "model": cfg.model,
        "method": cfg.method,
        "library_method": plan["library_method"] if cfg.method != "dense" else None,
        "seed": cfg.seed,
        "target_sparsity": sparsity,
        "sparsity": achieved,
        "model_sparsity": model_sparsity,
        "zero_fraction": zero_fraction,
        "metric": spec.metric,
        "metrics": metrics,
        "train_loss": stats["train_loss"],
        "steps": plan["max_steps"],
        "start_step": plan["start_step"],
        "prune_steps": plan["prune_steps"],
        "train_examples": len(train_enc["features"]),
        "eval_examples": {s: len(c[next(iter(c))]) for s, c in eval_cols.items()},
        "train_seconds": stats["train_seconds"],
        # the cost of pruning: pruner.step() over the window's steps, and the window's whole steps
        "window_steps": stats["window_steps"],
        "window_seconds": stats["window_seconds"],
        "pruner_seconds": stats["pruner_seconds"],
        "eval_seconds": eval_seconds,
        "seconds": time.perf_counter() - t0,
        "device": str(device),
        "layers": layers,
    }
    _write_json(out / "result.json", result)
    return result
