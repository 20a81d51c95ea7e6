"""The configuration of one run: :class:`RunConfig` (every option; the command line's flags), its
resolution (defaults <- ``--preset`` <- explicit values), its checks (before anything is loaded or
written) and the plan of its schedule.

Methods: ``dense`` (no pruning); every training-time method of :func:`sevenprune.methods`
(``seven``, ``magnitude``, ``platon``, ``movement``, ...), run through :class:`sevenprune.Pruner`;
the pruning-at-initialisation methods (``snip``, ``grasp``, ``force``) through
``sevenprune.prune_at_init``; and these aliases:

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
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import sevenprune as sp
from sevenprune._validate import SCOPES, STATE_DTYPES
from sevenprune.patterns import parse_pattern
from sevenprune.importance import checked_options

__all__ = ["RunConfig", "resolve_config", "validate", "method_choices", "plan_schedule", "ALIASES", "INIT_METHODS",
           "TASK_DEFAULTS", "task_defaults",
           "COSMETIC", "OPTIMIZERS", "LR_SCHEDULES", "SEVEN_PRE_STEPS", "config_differences"]


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


#: SEVEN_pre's default window (the reference hint: 100 steps at batch 32)
SEVEN_PRE_STEPS = 100


#: --optimizer choices: AdamW (0.9, 0.999, eps 1e-8), SGD with momentum 0.9, torch's Adafactor
OPTIMIZERS = ("adamw", "sgd", "adafactor")


#: --lr-schedule choices (after --warmup-steps of linear warm-up): constant, linear decay to 0, cosine to 0
LR_SCHEDULES = ("constant", "linear", "cosine")


#: options that do not change the result (a finished run is still valid if they differ)
COSMETIC = ("progress", "eval_batch_size", "cache_dir", "device", "save_model", "threads", "diagnostics",
            "checkpoint_every")


def _phase(method: str) -> str:
    """``"train"`` for a method the Pruner runs during fine-tuning, ``"oneshot"`` for one shot from
    calibration data (``sp.prune_oneshot``), ``"init"`` for the others (``sp.prune_at_init``)."""
    if method in sp.pruner_methods():
        return "train"
    return "oneshot" if method in sp.methods("calibration") else "init"


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
    #: write a resumable checkpoint every N training steps (0: never); results do not depend on it
    checkpoint_every: int = 0
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
    #: one-shot methods from calibration data (wanda, sparsegpt): how many calibration samples (causal-lm:
    #: windows of --max-length tokens at seeded random offsets of the training text; else training examples)
    calibration_samples: int = 128
    #: False: prune (before fine-tuning or one shot) and evaluate, without any training step
    fine_tune: bool = True
    #: wanda, sparsegpt: a sparsity per matrix, from a JSON file {weight name: sparsity}, a run's result.json
    #: or its folder; "{seed}" in it is the run's seed (:mod:`sevenprune.tasks.layer_sparsity`)
    layer_sparsity: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def config_differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The options in which two run configurations differ, beyond :data:`COSMETIC` ones and the recorded
    extras (``resolved``, ``task_info``, ``code``). An option added after a run was made is taken at its
    default (the value that run used)."""
    keys = (set(saved) | set(wanted)) - set(COSMETIC) - {"resolved", "task_info", "code"}
    defaults = RunConfig().to_dict()
    return sorted(k for k in keys if saved.get(k, defaults.get(k)) != wanted.get(k, defaults.get(k)))


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
    from .loading import get_task

    unknown = sorted(set(explicit) - _fields())
    if unknown:
        raise ValueError(f"unknown run option(s) {unknown}; valid options are {sorted(_fields())}")
    values: dict[str, Any] = {}
    task = explicit.get("task") or RunConfig.task
    get_task(task)
    defaults = task_defaults(task)
    if explicit.get("fine_tune") is False:  # no training: the task's training budget does not apply
        defaults.pop("max_steps", None)
    values.update(defaults)
    if explicit.get("preset"):
        values.update(get_preset(explicit["preset"], task))
    values.update({k: v for k, v in explicit.items() if v is not None})
    cfg = RunConfig(**values)
    validate(cfg)
    return cfg


#: the defaults that differ by task (under --preset and explicit flags): a decoder LM on a CPU wants
#: smaller batches and longer windows than a sentence classifier
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    # protocol L's budget (docs/results.md): 268 steps of 8 windows of 128 tokens, about half an hour on two
    # CPU cores, where three epochs of the plays at 256 tokens would take many hours
    "causal-lm": {"model": "smollm2", "batch_size": 8, "eval_batch_size": 8, "max_length": 128, "max_steps": 268},
}


def task_defaults(task: str) -> dict[str, Any]:
    """The options whose default differs for ``task`` (see :data:`TASK_DEFAULTS`).

    >>> resolve_config({"task": "causal-lm", "method": "dense"}).model
    'smollm2'
    """
    return dict(TASK_DEFAULTS.get(task, {}))


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
            checked_options(library, options, phase="before")
        elif phase == "oneshot":
            checked_options(library, options, phase="calibration")
        else:
            options.pop("freeze_during_pruning", None)  # prune_at_init's own (refused by the Pruner later)
            get_method(library).checked_options(options)
    except TypeError as exc:
        raise ValueError(str(exc)) from None


def validate(cfg: RunConfig) -> None:
    """Check names and ranges before anything is loaded (errors name the value and the choices)."""
    from .models import resolve_model_path
    from .loading import get_task

    get_task(cfg.task)
    _check_paths_named(cfg)
    choices = method_choices()
    if cfg.method not in choices:
        raise ValueError(f"unknown method {cfg.method!r}; choose one of {choices}")
    _check_method_options(cfg)
    if cfg.method != "dense" and cfg.method_options.get("moments") == "optimizer" and cfg.optimizer != "adamw":
        raise ValueError(f"--method-option moments=optimizer reads AdamW's own moments, which --optimizer "
                         f"{cfg.optimizer} does not keep; use --optimizer adamw, or moments=abs or moments=signed")
    if cfg.method == "dense":
        if cfg.sparsity not in (None, 0, 0.0):
            raise ValueError(f"method 'dense' does not prune; got --sparsity {cfg.sparsity} (leave it out or use 0)")
    else:
        if cfg.sparsity is None:
            cfg.sparsity = _nm_sparsity(cfg.pattern)  # --pattern 2:4 alone means 50 %: the only sparsity it allows
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
    if cfg.checkpoint_every and cfg.diagnostics:
        raise ValueError("--checkpoint-every and --diagnostics cannot be combined yet: the diagnostics' own "
                         "records are not part of a checkpoint; leave one of them out")
    if cfg.max_steps:
        check_warmup(cfg, int(cfg.max_steps))
    _check_data_options(cfg)
    if cfg.layer_sparsity is not None:
        _check_layer_sparsity(cfg)


def _check_layer_sparsity(cfg: RunConfig) -> None:
    """``--layer-sparsity`` is for the one-shot methods, unstructured; its file is read now (errors before
    the model loads); the sum it reaches over the weights is checked against ``--sparsity`` at pruning."""
    from .layer_sparsity import read_layer_sparsity

    oneshot = sp.oneshot_methods()
    if not isinstance(cfg.layer_sparsity, str) or not cfg.layer_sparsity.strip():
        raise ValueError(f"--layer-sparsity must name a file, got {cfg.layer_sparsity!r}")
    if cfg.method not in oneshot:
        raise ValueError(f"--layer-sparsity is for the one-shot methods {oneshot}, not {cfg.method!r} (a method "
                         "that prunes during fine-tuning reaches its own allocation: --scope global or local)")
    if cfg.pattern != "unstructured":
        raise ValueError(f"--layer-sparsity is for unstructured pruning; --pattern {cfg.pattern} fixes the "
                         "sparsity of every matrix")
    read_layer_sparsity(cfg.layer_sparsity, cfg.seed)


def _nm_sparsity(pattern: Any) -> float | None:
    """``1 - N/M`` for an N:M pattern (``"2:4"`` -> 0.5), else None (a bad pattern is named later)."""
    try:
        parsed = parse_pattern(pattern)
    except (TypeError, ValueError):
        return None
    return 1 - parsed[1] / parsed[2] if parsed[0] == "nm" else None


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
                "warmup_steps": 0, "eval_every": 0, "mask_interval": 1, "calibration_samples": 1,
                "checkpoint_every": 0}
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
    from .loading import NO_DATA_DIR_TASKS, USER_DATA_TASKS, get_task

    if cfg.data_dir is not None and cfg.task in NO_DATA_DIR_TASKS:
        raise ValueError(f"task {cfg.task!r} reads its own data and would ignore --data-dir {cfg.data_dir!r}; "
                         f"leave --data-dir out, or use --task text-classification for files of your own")
    if cfg.data_dir is None and cfg.task in USER_DATA_TASKS:
        raise ValueError(f"task {cfg.task!r} needs --data-dir ({get_task(cfg.task).description})")
    if cfg.data_dir is not None and not Path(cfg.data_dir).is_dir():
        raise FileNotFoundError(f"--data-dir {cfg.data_dir!r} is not a folder")
    for name in ("text_column", "text_pair_column", "label_column"):
        value = getattr(cfg, name)
        if name == "text_column" and value is not None and cfg.task == "causal-lm":
            if cfg.data_dir is None:
                raise ValueError(f"--text-column {value!r} names the text of --data-dir .jsonl files; give --data-dir")
        elif value is not None and cfg.task != "text-classification":
            raise ValueError(f"{_flag(name)} {value!r} is for --task text-classification, not {cfg.task!r}")
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{_flag(name)} must be a column name, got {value!r}")
    if cfg.task == "text-classification" and cfg.text_column is not None:  # the default text column: once read
        from .userdata import check_distinct_columns

        check_distinct_columns(cfg.text_column, cfg.text_pair_column, cfg.label_column)


def _check_paths_named(cfg: RunConfig) -> None:
    """An empty path would mean the current folder: refused, not read or written there in silence."""
    for name in ("data_dir", "cache_dir", "model"):
        value = getattr(cfg, name)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ValueError(f"{_flag(name)} must name a folder{' or a model' if name == 'model' else ''}, got "
                             f"{value!r}")


def check_warmup(cfg: RunConfig, max_steps: int) -> None:
    """A warm-up longer than the run would never reach the learning rate asked for."""
    if cfg.warmup_steps and cfg.warmup_steps > max_steps:
        raise ValueError(f"--warmup-steps {cfg.warmup_steps} is longer than the run ({max_steps} steps): the "
                         f"learning rate would never reach --lr; shorten the warm-up or raise --max-steps/--epochs")


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
    elif phase in ("init", "oneshot"):
        start = 0
    else:  # dense: no pruning window
        start = window = None
    if not cfg.fine_tune:
        if phase == "train":
            raise ValueError(f"--no-fine-tune: method {cfg.method!r} prunes during fine-tuning; without it, use a "
                             f"method that prunes before fine-tuning or one shot (e.g. wanda, sparsegpt, snip), "
                             f"or dense")
        max_steps = 0  # prune, then evaluate
    else:
        check_warmup(cfg, max_steps)
    if phase == "train":
        assert start is not None and window is not None  # both set above for training-time methods
        if start + window > max_steps:
            raise ValueError(f"the pruning window (start_step {start} + prune_steps {window} = {start + window}) "
                             f"does not fit in max_steps {max_steps}; raise --max-steps/--epochs or shorten "
                             f"the window")
    return {"max_steps": max_steps, "steps_per_epoch": steps_per_epoch, "library_method": method,
            "phase": phase, "start_step": start, "prune_steps": window}
