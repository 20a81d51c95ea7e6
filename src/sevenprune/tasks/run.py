"""One experiment: fine-tune and prune once, evaluate, write everything to a run directory.

The run's configuration and its checks are in :mod:`sevenprune.tasks.config`, its folder in
:mod:`sevenprune.tasks.run_dir`; this module loads the data and the model, prunes with the
library as a user does (:class:`sevenprune.Pruner` with the optimizer attached, or
:func:`sevenprune.prune_at_init`), trains (:mod:`sevenprune.tasks.training`), evaluates and saves.

Everything is checked (options, data, model, method options) before the run folder is written. An
existing run (interrupted, or finished with ``overwrite``) is replaced only once the new run has
finished: the new one is written beside it and swapped in (:mod:`sevenprune._fsutil`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors import SafetensorError

import sevenprune as sp
from sevenprune._fsutil import atomic_write_text
from sevenprune._validate import STATE_DTYPES
from sevenprune.importance import get_method
from sevenprune.init_pruning import init_patterns, prune_at_init

from .config import (ALIASES, COSMETIC, INIT_METHODS, OPTIMIZERS, SEVEN_PRE_STEPS, RunConfig, method_choices,
                     plan_schedule, resolve_config, validate)
from .checkpoint import (CHECKPOINT_DIR, Checkpoint, LoopState, discard, find_checkpoint, has_checkpoint,
                         remove_stale_checkpoints, save_checkpoint)
from .machine import LoadMonitor
from .run_dir import (DIAGNOSTICS_FILE, PREDICTIONS_FILE, RUN_FILES, RunExistsError, RunFolder, check_run_dir,
                      is_finished, is_run_dir)

# the configuration and folder names are re-exported here, where callers have always found them
__all__ = ["RunConfig", "RunExistsError", "resolve_config", "method_choices", "run", "plan_schedule",
           "ALIASES", "INIT_METHODS", "is_finished", "is_run_dir", "check_run_dir", "COSMETIC", "RUN_FILES",
           "make_optimizer", "lr_factor", "code_version", "DIAGNOSTICS_FILE", "PREDICTIONS_FILE"]

#: the seed of the data subsamples (--train-limit, --eval-limit): every run of a sweep sees the same rows
DATA_SEED = 1234


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
    if spec.kind == "causal-lm":  # windows of the text tokenized once; the limits count windows
        from .lm_eval import encode_lm

        where = f"the {'training' if train else 'evaluation'} text ({', '.join(cols['name'][:3])}" \
                f"{', ...' if len(cols['name']) > 3 else ''})"
        return encode_lm(cols, tokenizer, cfg.max_length, where=where,
                         limit=cfg.train_limit if train else cfg.eval_limit, seed=DATA_SEED + (0 if train else 1))
    return encode_text(spec, cols, tokenizer, cfg.max_length)


def method_options(cfg: RunConfig, library_method: str) -> dict[str, Any]:
    """The method's options for this run: ``cfg.method_options``, and for random pruning the run's
    ``seed`` unless an option sets one, so that ``--seed`` changes the random masks as it changes
    everything else (the library's own default is seed 0)."""
    options = dict(cfg.method_options)
    if library_method == "random" and "seed" not in options:
        options["seed"] = cfg.seed
    return options


class _DeviceBatches:
    """Re-iterable batches on ``device``: the first ``limit`` batches of ``loader`` (all if None)."""

    def __init__(self, loader: Any, device: torch.device, limit: int | None) -> None:
        self.loader, self.device, self.limit = loader, device, limit

    def __iter__(self) -> Any:
        for i, batch in enumerate(self.loader):
            if self.limit is not None and i >= self.limit:
                return
            yield {k: v.to(self.device) for k, v in batch.items()}


def _prune_at_init(model: Any, method: str, sparsity: float, loader: Any, device: torch.device,
                   steps: int | None, cfg: RunConfig, state_dtype: torch.dtype,
                   optimizer: torch.optim.Optimizer) -> sp.Pruner:
    """Score before fine-tuning: SNIP/GraSP on ``steps`` batches (default 1), FORCE/SEVEN_pre frozen
    for ``steps`` iterations (default 100), each on the next batch. Gradients are taken in eval mode
    (no dropout), so the masks do not depend on dropout noise. The pruner returned holds the masks,
    with ``optimizer`` attached (as a user's ``prune_at_init(..., optimizer=optimizer)``)."""
    def loss_fn(m: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return cast(torch.Tensor, m(**batch).loss)

    if getattr(get_method(method), "one_shot", False):
        # the one-shot methods score on every batch given and ignore ``steps``
        batches, iterations = _DeviceBatches(loader, device, steps or 1), 1
    else:
        batches, iterations = _DeviceBatches(loader, device, None), steps or SEVEN_PRE_STEPS
    model.eval()
    try:
        return prune_at_init(model, method, sparsity, batches, loss_fn, steps=iterations, include=cfg.include,
                             exclude=cfg.exclude, optimizer=optimizer, state_dtype=state_dtype, scope=cfg.scope,
                             pattern=cfg.pattern, **method_options(cfg, method))
    finally:
        model.train()


def _calibration_data(cfg: RunConfig, spec: Any, data: Any, tokenizer: Any, train_enc: Any, pad_id: int,
                      device: torch.device) -> list[Any]:
    """The calibration batches of a one-shot method (``--calibration-samples``, seeded by ``--seed``): for a
    causal LM, windows of ``--max-length`` tokens at random offsets of the training text (as Wanda's and
    SparseGPT's authors draw them, one window a batch); else the inputs of seeded training batches (labels
    left out) until that many examples."""
    if spec.kind == "causal-lm":
        from .lm_eval import calibration_batches

        windows = calibration_batches(data.train, tokenizer, n_samples=cfg.calibration_samples,
                                      max_length=cfg.max_length, seed=cfg.seed)
        return [w.to(device) for w in windows]
    from .training import make_loader

    loader = make_loader(train_enc, spec, cfg.batch_size, shuffle=True, seed=cfg.seed + 1, pad_id=pad_id)
    batches: list[Any] = []
    seen = 0
    for batch in loader:
        inputs = {k: v.to(device) for k, v in batch.items() if k not in ("labels", "start_positions",
                                                                          "end_positions")}
        batches.append(inputs)
        seen += len(next(iter(inputs.values())))
        if seen >= cfg.calibration_samples:
            break
    return batches


def _prune_oneshot(model: Any, method: str, sparsity: float, batches: list[Any], cfg: RunConfig,
                   optimizer: torch.optim.Optimizer) -> sp.Pruner:
    """Wanda / SparseGPT from the calibration batches, in eval mode (no dropout); the pruner returned keeps
    the masks fixed, with ``optimizer`` attached, through the fine-tuning that follows."""
    chosen: float | dict[str, float] = sparsity
    if cfg.layer_sparsity is not None:
        from .layer_sparsity import check_overall, layer_sparsity_path, read_layer_sparsity

        chosen = read_layer_sparsity(cfg.layer_sparsity, cfg.seed)
        sizes = {n: p.numel() for n, p in sp.find_prunable(model, cfg.include, cfg.exclude).items()}
        check_overall(chosen, sizes, sparsity,
                      str(layer_sparsity_path(cfg.layer_sparsity, cfg.seed)))
    model.eval()
    try:
        return sp.prune_oneshot(model, method, chosen, batches,
                                pattern=None if cfg.pattern == "unstructured" else cfg.pattern,
                                include=cfg.include, exclude=cfg.exclude, optimizer=optimizer,
                                progress=cfg.progress, **method_options(cfg, method))
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
    # the machine's load while the run runs: its seconds mean little without it (machine.py)
    with _library_progress_bars(cfg.progress), LoadMonitor() as load:
        return _run(cfg, out, overwrite=overwrite, log=log, load=load)


def _run(cfg: RunConfig, out: str | os.PathLike[str], *, overwrite: bool, log: Any,
         load: LoadMonitor) -> dict[str, Any]:
    import sevenprune as sp

    from .models import load_model
    from .loading import load_task, subsample
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
    lm = spec.kind == "causal-lm"  # its limits and its schedule count windows, known once tokenized
    train_cols = data.train if lm else subsample(data.train, cfg.train_limit, DATA_SEED)
    eval_cols = {s: c if lm else subsample(c, cfg.eval_limit, DATA_SEED + 1) for s, c in data.evals.items()}
    plan = None if lm else plan_schedule(cfg, len(next(iter(train_cols.values()))))
    device = _device(cfg.device)
    model, tokenizer = load_model(cfg.model, spec, labels=data.info.get("labels"), cache_dir=cfg.cache_dir)
    positions = getattr(model.config, "max_position_embeddings", None)
    if spec.kind != "image" and isinstance(positions, int) and cfg.max_length > positions:
        # longer inputs would index past the position table in the middle of training
        raise ValueError(f"--max-length {cfg.max_length} exceeds the {positions} positions of model {cfg.model!r}")
    model.to(device)
    pad_id = getattr(tokenizer, "pad_token_id", None) or 0
    train_enc = _encode(spec, train_cols, tokenizer, model, cfg, train=True)
    eval_encs = {s: _encode(spec, c, tokenizer, model, cfg, train=False) for s, c in eval_cols.items()}
    if plan is None:
        plan = plan_schedule(cfg, len(train_enc["features"]))
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
                           mask_interval=cfg.mask_interval, **method_options(cfg, plan["library_method"]))
    elif plan["phase"] in ("init", "oneshot") and cfg.pattern not in ("unstructured",) and ":" not in cfg.pattern:
        raise ValueError(f"--pattern {cfg.pattern!r}: method {cfg.method!r} prunes unstructured or N:M (2:4, 4:8)")
    elif (plan["phase"] == "init" and cfg.pattern != "unstructured"
          and "n:m" not in init_patterns(get_method(plan["library_method"]))):
        raise ValueError(f"--pattern {cfg.pattern!r}: method {cfg.method!r} prunes unstructured only")
    # an interrupted run of the same configuration with a checkpoint (--checkpoint-every) goes on from it
    resume = find_checkpoint(out, cfg.to_dict(), log) if plan["max_steps"] else None
    calibration = (_calibration_data(cfg, spec, data, tokenizer, train_enc, pad_id, device)
                   if plan["phase"] == "oneshot" and resume is None else None)

    # every option is checked and the data and model are loaded: only now is anything written
    folder = RunFolder(out)
    try:
        result = _execute(folder.path, _Prepared(cfg, plan, data.info, spec, model, tokenizer, pruner, optimizer,
                                                 device, train_enc, eval_encs, eval_loaders, train_loader, eval_cols,
                                                 dtype, pad_id, t0, load, calibration, resume), log)
    except BaseException:
        if has_checkpoint(folder.path):  # kept to resume from: the same command goes on from there
            log(f"run stopped; its checkpoint is kept in {folder.path / CHECKPOINT_DIR} (the same command resumes)")
        else:
            folder.abort()
        raise
    discard(folder.path)  # gigabytes for a language model; a finished run needs none
    folder.commit()
    remove_stale_checkpoints(out)
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
    load: LoadMonitor  # entered when this attempt started (a resumed run: the attempt that finished it)
    calibration: Any = None
    resume: Checkpoint | None = None


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
    lm = spec.kind == "causal-lm"
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

    earlier_seconds = 0.0  # a resumed run: the seconds before its checkpoint
    loop = None
    if p.resume is not None:
        ckpt = p.resume
        log(f"resuming from the checkpoint at step {ckpt.step} of {plan['max_steps']} ({ckpt.path})")
        written_by, here = (ckpt.state.get("code") or {}).get("git_commit"), code_version().get("git_commit")
        if written_by != here:
            log(f"note: the checkpoint was written by commit {written_by}, this is {here}")
        try:
            atomic_write_text(out / "metrics.jsonl", ckpt.state["metrics_text"])
            start_metrics, prune_seconds = ckpt.state["start_metrics"], ckpt.state["prune_seconds"]
            earlier_seconds = float(ckpt.state["seconds"])
            ckpt.load_model(model)
            if plan["phase"] == "train":
                sp.load_state(ckpt.path / "pruner", pruner)
            elif plan["phase"] in ("init", "oneshot"):  # the masks found before fine-tuning, fixed since
                pruner = sp.load_state(ckpt.path / "pruner", model, optimizer=optimizer)
            ckpt.restore_rng()
            loop = ckpt.loop_state()
        except (OSError, KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as exc:  # damaged, foreign
            raise ValueError(f"checkpoint {ckpt.path} cannot be resumed ({type(exc).__name__}: {exc}); delete "
                             f"that folder to start the run afresh") from None
    else:
        # a language model's starting perplexity (step 0 of metrics.jsonl, before any pruning): the run's
        # dense reference, on the same windows as its final perplexity
        # (without fine-tuning the final evaluation is at step 0 itself: not done twice)
        start_metrics = evaluate_all(0, None) if lm and plan["max_steps"] else None
        t_prune = time.perf_counter()
        if plan["phase"] == "init":
            log(f"pruning at initialisation with {cfg.method} ...")
            init_loader = make_loader(train_enc, spec, cfg.batch_size, shuffle=True, seed=cfg.seed + 1,
                                      pad_id=pad_id)
            pruner = _prune_at_init(model, plan["library_method"], sparsity, init_loader, device,
                                    plan["prune_steps"], cfg, dtype, optimizer)
        elif plan["phase"] == "oneshot":
            log(f"pruning one shot with {cfg.method} from {len(p.calibration)} calibration batches ...")
            pruner = _prune_oneshot(model, plan["library_method"], sparsity, p.calibration, cfg, optimizer)
        prune_seconds = time.perf_counter() - t_prune if plan["phase"] in ("init", "oneshot") else None

    def checkpoint(state: LoopState) -> None:
        metrics_file = out / "metrics.jsonl"
        save_checkpoint(out, model=model, optimizer=optimizer, pruner=pruner, loop=state, run={
            "config": cfg.to_dict(), "code": code_version(), "max_steps": plan["max_steps"],
            "seconds": earlier_seconds + time.perf_counter() - t0,
            "metrics_text": metrics_file.read_text(encoding="utf-8") if metrics_file.exists() else "",
            "start_metrics": start_metrics, "prune_seconds": prune_seconds})

    diag = None
    if cfg.diagnostics and pruner is not None and plan["phase"] == "train":
        diag = sp.PruningDiagnostics(pruner)
    if plan["max_steps"]:
        stats = train(model, train_loader, optimizer, max_steps=plan["max_steps"], device=device, pruner=pruner,
                      lr_lambda=lr_lambda, max_grad_norm=cfg.max_grad_norm,
                      eval_every=cfg.eval_every, on_eval=evaluate_all,
                      progress=cfg.progress, after_pruner_step=diag.step if diag is not None else None,
                      resume=loop, checkpoint_every=cfg.checkpoint_every, on_checkpoint=checkpoint)
    else:  # --no-fine-tune: the pruned (or dense) starting model is evaluated as it is
        stats = {"steps": 0, "train_loss": None, "train_seconds": 0.0, "window_steps": 0, "window_seconds": 0.0,
                 "pruner_seconds": 0.0}
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
        if lm:
            model.config.use_cache = True  # off while training and scoring windows; on for generate()
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
        # pruning before fine-tuning or one shot (prune_at_init / prune_oneshot), the whole call
        "prune_seconds": prune_seconds,
        "eval_seconds": eval_seconds,
        "seconds": earlier_seconds + time.perf_counter() - t0,
        "device": str(device),
        # what the seconds above were measured on, when, and how busy the machine was meanwhile
        "machine": p.load.record(),
        "layers": layers,
    }
    if p.resume is not None:  # its seconds add up the attempts (not the work lost after the last checkpoint)
        result["resumed_from_step"] = p.resume.step
    if lm:
        from .lm_eval import lm_result

        if start_metrics is None and plan["phase"] == "dense":
            start_metrics = metrics  # the unpruned starting model, evaluated once

        result.update(lm_result(start_metrics, train_enc, eval_encs))
    _write_json(out / "result.json", result)
    return result
