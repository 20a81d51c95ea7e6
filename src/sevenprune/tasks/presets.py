"""``--preset paper``: the reference implementation's hyper-parameters (see docs/method.md).

BERT-base on GLUE: AdamW, learning rate 2e-5 constant, batch 32, 10 epochs, seed 3404, and per task
the pruning start ``t_i`` (``start_step``), window ``K`` (``prune_steps``) and target sparsity. Tasks
the reference does not cover (``mr``, SQuAD, images) get the common values only; their schedule is
then the default one (see :mod:`sevenprune.tasks.run`). An explicit flag always wins.

>>> paper_preset("mrpc")["start_step"], paper_preset("mrpc")["prune_steps"], paper_preset("mrpc")["sparsity"]
(300, 600, 0.5)
"""

from __future__ import annotations

from typing import Any

__all__ = ["PRESETS", "paper_preset", "preset_names"]

_COMMON: dict[str, Any] = {"lr": 2e-5, "batch_size": 32, "epochs": 10, "seed": 3404, "weight_decay": 0.0}

#: task -> (t_i, K, target sparsity), from the reference implementation
_SCHEDULES: dict[str, tuple[int, int, float]] = {
    "mnli": (5400, 16600, 0.7), "qqp": (5400, 16600, 0.9), "rte": (200, 1000, 0.6),
    "qnli": (2000, 12000, 0.7), "mrpc": (300, 600, 0.5), "sst2": (1000, 4000, 0.6),
    "cola": (500, 1000, 0.5), "stsb": (500, 2000, 0.5),
}

PRESETS = ("paper",)


def preset_names() -> list[str]:
    return list(PRESETS)


def paper_preset(task: str) -> dict[str, Any]:
    """The run options ``--preset paper`` sets for ``task`` (a copy)."""
    out = dict(_COMMON)
    if task in _SCHEDULES:
        t_i, k, s = _SCHEDULES[task]
        out.update(start_step=t_i, prune_steps=k, sparsity=s)
    return out


def get_preset(name: str, task: str) -> dict[str, Any]:
    """Options of preset ``name`` for ``task``; ``ValueError`` naming the choices otherwise."""
    if name != "paper":
        raise ValueError(f"unknown preset {name!r}; choose one of {preset_names()}")
    return paper_preset(task)
