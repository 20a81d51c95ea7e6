"""One experiment: fine-tune and prune once, evaluate, write everything to a run directory.

A run directory holds, when finished:

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
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

__all__ = ["RunConfig", "RunExistsError", "resolve_config", "method_choices", "run", "plan_schedule",
           "ALIASES", "INIT_METHODS", "is_finished", "COSMETIC"]

#: alias -> (library method, phase); see the module docstring
ALIASES: dict[str, tuple[str, str]] = {
    "seven_dyn": ("seven", "train"),
    "seven_pre": ("seven", "train"),
    "seven_pre_frozen": ("seven", "init"),
    # one-shot baselines at the starting weights, for the pruning-at-initialisation protocol
    "magnitude_init": ("magnitude", "init"),
    "random_init": ("random", "init"),
}
INIT_METHODS = ("snip", "grasp", "force")
#: modules of methods written beside the core; imported (if present) so that they register
_METHOD_MODULES = ("platon", "movement", "soft_movement", "random_scores")
#: the seed of the data subsamples (--train-limit, --eval-limit): every run of a sweep sees the same rows
DATA_SEED = 1234
#: SEVEN_pre's default window (the reference hint: 100 steps at batch 32)
SEVEN_PRE_STEPS = 100


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
COSMETIC = ("progress", "eval_batch_size", "cache_dir", "device", "save_model", "threads")


class RunExistsError(FileExistsError):
    """The run directory already holds a finished run."""


def _register_methods() -> list[str]:
    import sevenprune as sp

    for mod in _METHOD_MODULES:
        try:
            importlib.import_module(f"sevenprune.importance.{mod}")
        except ImportError:
            pass
    try:
        importlib.import_module("sevenprune.init_pruning")
    except ImportError:
        pass
    return sp.methods()


def _phase(method: str) -> str:
    from sevenprune.importance import get_method

    return get_method(method).phase


def method_choices() -> list[str]:
    """Every ``--method`` value: ``dense``, the aliases, the library's methods, the init methods."""
    lib = _register_methods()
    return ["dense"] + sorted(set(lib) | set(ALIASES) | set(INIT_METHODS))


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
    cache_dir: str | None = None
    device: str = "auto"
    threads: int | None = None
    state_dtype: str = "float32"
    pattern: str = "unstructured"
    method_options: dict[str, Any] = field(default_factory=dict)
    include: list[str] | None = None
    exclude: list[str] | None = None
    preset: str | None = None
    save_model: bool = True
    progress: bool = True

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


def validate(cfg: RunConfig) -> None:
    """Check names and ranges before anything is loaded (errors name the value and the choices)."""
    from .models import resolve_model_path
    from .tasks import get_task

    get_task(cfg.task)
    choices = method_choices()
    if cfg.method not in choices:
        raise ValueError(f"unknown method {cfg.method!r}; choose one of {choices}")
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
    if cfg.state_dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"unknown state_dtype {cfg.state_dtype!r}; choose one of ['float32', 'bfloat16', 'float16']")
    if cfg.device not in ("auto", "cpu") and not cfg.device.startswith("cuda"):
        raise ValueError(f"unknown device {cfg.device!r}; choose 'auto', 'cpu' or 'cuda[:N]'")
    for name in ("batch_size", "eval_batch_size", "max_length"):
        if int(getattr(cfg, name)) < 1:
            raise ValueError(f"{name} must be >= 1, got {getattr(cfg, name)}")
    for name in ("max_steps", "train_limit", "eval_limit"):
        v = getattr(cfg, name)
        if v is not None and int(v) < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")
    if cfg.lr <= 0:
        raise ValueError(f"lr must be > 0, got {cfg.lr}")


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
        method, phase = cfg.method, (_phase(cfg.method) if cfg.method in _register_methods() else "init")
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


def _check_dir(out: Path, overwrite: bool) -> None:
    """Refuse a finished run (unless ``overwrite``) and a non-empty directory that is not a run."""
    if is_finished(out) and not overwrite:
        raise RunExistsError(f"{out} already holds a finished run (result.json); choose another --out "
                             f"or pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise RunExistsError(f"{out} is a file, not a run directory; choose another --out")
    if out.exists() and any(out.iterdir()) and not (out / "config.json").exists() and not overwrite:
        raise RunExistsError(f"{out} is not empty and is not a sevenprune run directory; choose another --out")


def _prepare_dir(out: Path, overwrite: bool) -> None:
    _check_dir(out, overwrite)
    if out.exists() and any(out.iterdir()):
        # an interrupted (or explicitly overwritten) run: start it again from scratch
        for name in ("result.json", "metrics.jsonl", "config.json"):
            (out / name).unlink(missing_ok=True)
        for name in ("pruner", "model"):
            shutil.rmtree(out / name, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


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
                   steps: int | None, cfg: RunConfig, state_dtype: torch.dtype) -> Any:
    """Score before fine-tuning: SNIP/GraSP on ``steps`` batches (default 1), FORCE/SEVEN_pre frozen
    for ``steps`` iterations (default 100), each on the next batch. Gradients are taken in eval mode
    (no dropout), so the masks do not depend on dropout noise."""
    try:
        from sevenprune.init_pruning import prune_at_init
    except ImportError:
        raise ValueError(f"method {method!r} prunes at initialisation through sevenprune.init_pruning, "
                         f"which this installation does not have") from None

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
                             exclude=cfg.exclude, state_dtype=state_dtype, **cfg.method_options)
    finally:
        model.train()


def _zero_fraction(pruner: Any) -> float:
    total = zeros = 0
    for p in pruner.params.values():
        total += p.numel()
        zeros += int((p.detach() == 0).sum())
    return zeros / total if total else 0.0


def run(cfg: RunConfig, out: str | os.PathLike[str], *, overwrite: bool = False,
        log: Any = print) -> dict[str, Any]:
    """Run one experiment into the directory ``out``; returns ``result.json``'s content."""
    import sevenprune as sp

    from .models import load_model
    from .tasks import load_task, subsample
    from .training import append_jsonl, evaluate, make_loader, train

    validate(cfg)
    out = Path(out)
    _check_dir(out, overwrite)  # before any slow work; the directory is written once the model loaded
    t0 = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    _seed_everything(cfg.seed)
    data = load_task(cfg.task, data_dir=cfg.data_dir, cache_dir=cfg.cache_dir)
    spec = data.spec
    train_cols = subsample(data.train, cfg.train_limit, DATA_SEED)
    eval_cols = {s: subsample(c, cfg.eval_limit, DATA_SEED + 1) for s, c in data.evals.items()}
    plan = plan_schedule(cfg, len(next(iter(train_cols.values()))))
    device = _device(cfg.device)
    model, tokenizer = load_model(cfg.model, spec)
    _prepare_dir(out, overwrite)
    config = {**cfg.to_dict(), "resolved": plan, "task_info": data.info, "code": code_version()}
    _write_json(out / "config.json", config)
    model.to(device)
    pad_id = getattr(tokenizer, "pad_token_id", None) or 0
    train_enc = _encode(spec, train_cols, tokenizer, model, cfg, train=True)
    eval_encs = {s: _encode(spec, c, tokenizer, model, cfg, train=False) for s, c in eval_cols.items()}
    train_loader = make_loader(train_enc, spec, cfg.batch_size, shuffle=True, seed=cfg.seed, pad_id=pad_id)
    eval_loaders = {s: make_loader(e, spec, cfg.eval_batch_size, shuffle=False, seed=0, pad_id=pad_id)
                    for s, e in eval_encs.items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8,
                                  weight_decay=cfg.weight_decay)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[cfg.state_dtype]
    pruner = None
    sparsity = float(cfg.sparsity or 0.0)
    if plan["phase"] == "train":
        pruner = sp.Pruner(model, plan["library_method"], sparsity, plan["start_step"], plan["prune_steps"],
                           include=cfg.include, exclude=cfg.exclude, optimizer=optimizer,
                           state_dtype=dtype, pattern=cfg.pattern, **cfg.method_options)
    elif plan["phase"] == "init":
        if cfg.pattern != "unstructured":
            raise ValueError(f"--pattern {cfg.pattern!r} works with methods that prune during fine-tuning "
                             f"(sp.Pruner), not with {cfg.method!r}")
        log(f"pruning at initialisation with {cfg.method} ...")
        init_loader = make_loader(train_enc, spec, cfg.batch_size, shuffle=True, seed=cfg.seed + 1, pad_id=pad_id)
        pruner = _prune_at_init(model, plan["library_method"], sparsity, init_loader, device,
                                 plan["prune_steps"], cfg, dtype)
        if getattr(pruner, "optimizer", None) is None:
            pruner.attach(optimizer)

    def lr_lambda(step: int) -> float:
        return min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0

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

    stats = train(model, train_loader, optimizer, max_steps=plan["max_steps"], device=device, pruner=pruner,
                  lr_lambda=lr_lambda if cfg.warmup_steps else None, max_grad_norm=cfg.max_grad_norm,
                  eval_every=cfg.eval_every, on_eval=evaluate_all,
                  progress=cfg.progress)
    t_eval = time.perf_counter()
    final_predictions.clear()
    metrics = evaluate_all(plan["max_steps"], stats["train_loss"])
    eval_seconds = time.perf_counter() - t_eval
    if final_predictions:  # per-example predictions of the final model: paired tests between runs
        np.savez_compressed(out / PREDICTIONS_FILE, **final_predictions)

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
        "eval_seconds": eval_seconds,
        "seconds": time.perf_counter() - t0,
        "device": str(device),
        "layers": layers,
    }
    _write_json(out / "result.json", result)
    return result
