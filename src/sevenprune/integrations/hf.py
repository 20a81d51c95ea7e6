"""Pruning inside the Hugging Face ``Trainer``: :class:`PruningCallback`.

::

    from sevenprune.integrations.hf import PruningCallback
    callback = PruningCallback(method="seven", sparsity=0.6, start_step=100, prune_steps=400)
    trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[callback])
    trainer.train()                       # or trainer.train(resume_from_checkpoint=True)
    # resuming from a checkpoint outside output_dir: PruningCallback(..., resume_from=that_checkpoint)
    trainer.save_model()                  # zeros in place; loads into plain transformers

What the callback does at each Trainer event (the order of a training step is: backward for each
micro-batch, gradient clipping, ``optimizer.step()``, ``on_optimizer_step``, ``zero_grad()``,
``on_step_end``, logging, saving):

* ``on_init_end`` / ``on_train_begin``: builds the :class:`~sevenprune.Pruner` on the Trainer's
  (unwrapped) model if it was given the Pruner's arguments; on a resumed run (``state.global_step``
  > 0), loads the pruner state saved with the checkpoint of that step (``resume_from``, else
  ``args.resume_from_checkpoint``, else ``<output_dir>/checkpoint-<step>``); attaches the Trainer's optimizer (the inner torch
  optimizer), so that pruned entries of its state are cleared and masks re-applied after each step.
* ``on_optimizer_step``: ``pruner.step()``: the schedule counts optimizer updates, so with gradient
  accumulation one step per update; gradients are all-reduced (DDP), clipped and unscaled (AMP) by
  then, and an AMP overflow step (non-finite gradients) is counted but not observed.
* ``on_save``: writes the pruner state (safetensors + JSON, :func:`sevenprune.save_state`) into
  ``<checkpoint>/pruner``.
* ``on_log``: adds ``sparsity`` (over the prunable weights) and ``model_sparsity`` (over every
  parameter) to the logs and to ``trainer.state.log_history``. Reporting callbacks placed before this
  one (TensorBoard, W&B, ...) see them only if it comes first: ``PruningCallback.add_to(trainer)``.
* ``on_train_end``: with ``load_best_model_at_end``, loads the pruner state of the best checkpoint
  together with its weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
except ImportError as exc:  # pragma: no cover - exercised only without transformers
    raise ImportError(
        "sevenprune.integrations.hf needs transformers: pip install 'sevenprune[hf]'"
    ) from exc

from ..pruner import Pruner, method_class
from ..state import STATE_JSON, load_state, read_state, save_state

__all__ = ["PruningCallback", "PRUNER_DIR"]

#: the sub-directory of each checkpoint that holds the pruner state
PRUNER_DIR = "pruner"


def _output_dir(args: TrainingArguments) -> Path:
    """The Trainer's output directory (``TrainingArguments`` sets a default when none is given)."""
    assert args.output_dir is not None
    return Path(args.output_dir)


class PruningCallback(TrainerCallback):
    """Prune during ``Trainer.train()`` on the Pruner's cubic schedule, one step per optimizer update.

    Args:
        pruner: a :class:`~sevenprune.Pruner` built on the model given to the Trainer; or leave it
            out and pass the Pruner's arguments (``method``, ``sparsity``, ``start_step``,
            ``prune_steps``, ``include``, ``exclude``, method options): the pruner is then built on
            the Trainer's model when the Trainer is created (or when training starts).
        resume_from: the checkpoint directory (or its ``pruner/`` folder) to read the pruner state from
            when the Trainer resumes. The Trainer does not tell callbacks which checkpoint it resumes
            from, so without it the state is looked for in ``args.resume_from_checkpoint``, then in
            ``<output_dir>/checkpoint-<global step>`` (the checkpoint ``resume_from_checkpoint=True``
            picks); pass it when resuming from a checkpoint elsewhere.

    The pruner is available as ``callback.pruner`` once built.

    >>> from transformers import TrainerCallback
    >>> callback = PruningCallback(method="magnitude", sparsity=0.5, start_step=0, prune_steps=4)
    >>> isinstance(callback, TrainerCallback), callback.pruner is None
    (True, True)
    >>> PruningCallback("seven")
    Traceback (most recent call last):
    ...
    TypeError: pruner must be a sevenprune.Pruner (or pass the Pruner's arguments by keyword, e.g. PruningCallback(method='seven', sparsity=0.6)); got str
    """

    def __init__(
        self,
        pruner: Pruner | None = None,
        *,
        resume_from: str | os.PathLike[str] | None = None,
        **pruner_kwargs: Any,
    ) -> None:
        if pruner is not None and not isinstance(pruner, Pruner):
            raise TypeError(
                "pruner must be a sevenprune.Pruner (or pass the Pruner's arguments by keyword, e.g. "
                f"PruningCallback(method='seven', sparsity=0.6)); got {type(pruner).__name__}"
            )
        if pruner is not None and pruner_kwargs:
            raise TypeError(f"give either a Pruner or the Pruner's arguments, not both (got {sorted(pruner_kwargs)})")
        for bad in ("model", "optimizer"):
            if bad in pruner_kwargs:
                raise TypeError(f"PruningCallback takes no {bad!r}: the Trainer's {bad} is used")
        if pruner is None:
            method_class(pruner_kwargs.get("method", "seven"))  # an unknown method fails here, not mid-train
        self.pruner: Pruner | None = pruner
        self.pruner_kwargs = pruner_kwargs
        self.resume_from = None if resume_from is None else Path(resume_from)

    # -- helpers --------------------------------------------------------------------------------------
    @staticmethod
    def add_to(trainer: Any, callback: PruningCallback | None = None, **pruner_kwargs: Any) -> PruningCallback:
        """Put ``callback`` (or a new one from ``pruner_kwargs``) first among ``trainer``'s callbacks, so
        that every reporting callback sees the sparsity it adds to the logs. Returns the callback."""
        callback = callback if callback is not None else PruningCallback(**pruner_kwargs)
        handler = trainer.callback_handler
        handler.callbacks = [c for c in handler.callbacks if c is not callback]
        handler.callbacks.insert(0, callback)
        callback._ensure_pruner(trainer.model)
        return callback

    def _ensure_pruner(self, model: nn.Module | None) -> Pruner:
        if self.pruner is None:
            if model is None:
                raise RuntimeError("PruningCallback got no model from the Trainer to build its pruner on")
            self.pruner = Pruner(model, **self.pruner_kwargs)
        elif model is not None:
            owned = {id(p) for p in model.parameters()}
            if not any(id(p) in owned for p in self.pruner.params.values()):
                raise ValueError(
                    "the pruner given to PruningCallback was built on another model than the Trainer's; "
                    "build it on the model you pass to Trainer(model=...) (unwrapped)"
                )
        return self.pruner

    @staticmethod
    def _checkpoint_dir(args: TrainingArguments, state: TrainerState) -> Path:
        """The directory the Trainer has just saved the checkpoint of this step into."""
        name = f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        direct = _output_dir(args) / name
        if direct.is_dir():
            return direct
        # hyper-parameter search saves under output_dir/<run name>/: take the newest such checkpoint
        found = sorted(_output_dir(args).glob(f"*/{name}"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise FileNotFoundError(f"the Trainer saved a checkpoint at step {state.global_step} but "
                                    f"{direct} does not exist; cannot store the pruner state beside it")
        return found[-1]

    def _resume(self, args: TrainingArguments, state: TrainerState, pruner: Pruner) -> None:
        name = f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        candidates = (
            [self.resume_from] if self.resume_from is not None else
            [args.resume_from_checkpoint, _output_dir(args) / name,
             # hyper-parameter search saves under output_dir/<run name>/
             *sorted(_output_dir(args).glob(f"*/{name}"), key=lambda p: p.stat().st_mtime, reverse=True)]
        )
        tried = []
        for c in candidates:
            if c is None or isinstance(c, bool):
                continue
            directory = Path(c)
            directory = directory / PRUNER_DIR if (directory / PRUNER_DIR / STATE_JSON).is_file() else directory
            tried.append(str(directory))
            if not (directory / STATE_JSON).is_file():
                continue
            saved = read_state(directory)
            if int(saved["step"]) != state.global_step:
                raise ValueError(
                    f"the pruner state in {directory} is at step {saved['step']} but the Trainer resumes at "
                    f"step {state.global_step}; pass PruningCallback(resume_from=<the checkpoint's directory>)"
                )
            self._check_weights_match(saved, pruner, directory)
            load_state(directory, pruner)
            return
        if pruner.step_count == state.global_step:
            return  # the same callback continues in this process: its pruner is already there
        raise FileNotFoundError(
            f"the Trainer resumes at step {state.global_step} but no pruner state was found (looked in "
            f"{tried}); the Trainer does not tell callbacks which checkpoint it resumes from: pass "
            f"PruningCallback(resume_from=<checkpoint directory holding '{PRUNER_DIR}/'>) or "
            f"TrainingArguments(resume_from_checkpoint=<that directory>)"
        )

    @staticmethod
    @torch.no_grad()
    def _check_weights_match(saved: dict[str, Any], pruner: Pruner, directory: Path) -> None:
        """The resumed weights must be zero wherever the saved masks prune: else the pruner state
        belongs to another checkpoint."""
        params = dict(pruner.model.named_parameters())
        for name, mask in saved["masks"].items():
            p = params.get(name)
            if p is None or p.shape != mask.shape:
                continue  # load_state reports layout mismatches with a precise message
            if bool((p.detach()[~mask.to(p.device)] != 0).any()):
                raise ValueError(
                    f"the pruner state in {directory} does not belong to the checkpoint being resumed: "
                    f"weight {name!r} is non-zero where that state prunes it"
                )

    # -- Trainer events --------------------------------------------------------------------------------
    def on_init_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    model: nn.Module | None = None, **kwargs: Any) -> None:
        self._ensure_pruner(model)

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                       model: nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None,
                       **kwargs: Any) -> None:
        pruner = self._ensure_pruner(model)
        if state.global_step > 0:
            self._resume(args, state, pruner)
        if optimizer is not None:
            pruner.attach(optimizer)  # attach takes the inner torch optimizer of the Trainer's wrapper

    def on_optimizer_step(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                          **kwargs: Any) -> None:
        if self.pruner is None:
            raise RuntimeError("PruningCallback: on_optimizer_step before on_train_begin built the pruner")
        self.pruner.step()

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                **kwargs: Any) -> None:
        if self.pruner is not None and args.should_save:
            save_state(self.pruner, self._checkpoint_dir(args, state) / PRUNER_DIR, overwrite=True)

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
               logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        if self.pruner is None or logs is None:
            return
        report = self.pruner.report()
        extra = {"sparsity": report["sparsity"], "model_sparsity": report["model_sparsity"]}
        # the Trainer appended a copy of `logs` to log_history just before this event: complete it
        last = state.log_history[-1] if state.log_history else None
        if last is not None and last.get("step") == state.global_step and set(logs) <= set(last):
            last.update(extra)
        logs.update(extra)

    def on_train_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                     **kwargs: Any) -> None:
        best = state.best_model_checkpoint
        if self.pruner is not None and args.load_best_model_at_end and best is not None:
            directory = Path(best) / PRUNER_DIR
            if (directory / STATE_JSON).is_file():  # the Trainer reloaded that checkpoint's weights
                load_state(directory, self.pruner)
