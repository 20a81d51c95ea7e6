"""The main job: a small sweep on ``mr`` with ``minilm`` (dense, SEVEN_dyn, PLATON, magnitude at two
sparsities), sized to finish within 20 minutes on a 2-core CPU; ``quick`` for a first look (~5 min).

The same sweep as a file: ``experiments/demo.json`` (``sevenprune sweep --config experiments/demo.json``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEMO", "QUICK", "demo_spec"]

#: MiniLM at batch 32 and length <= 64 takes about 1.2 s per step on an idle 2-core CPU: 7 runs x 100
#: steps, each evaluated on the same 1,000 of the 2,000 test sentences, is about 15 minutes.
DEMO: dict[str, Any] = {
    "task": "mr",
    "model": "minilm",
    "methods": ["dense", "seven_dyn", "platon", "magnitude"],
    "sparsities": [0.5, 0.8],
    "seeds": [1],
    "max_steps": 100,
    "start_step": 10,
    "prune_steps": 60,
    "batch_size": 32,
    "max_length": 64,
    "lr": 1e-4,
    "eval_limit": 1000,
    "save_model": False,
    "out": "runs/demo",
}

#: a first look: fewer steps and test sentences
QUICK: dict[str, Any] = {**DEMO, "max_steps": 30, "start_step": 3, "prune_steps": 18, "eval_limit": 300,
                         "out": "runs/demo-quick"}


def demo_spec(quick: bool = False, out: str | None = None, methods: list[str] | None = None) -> dict[str, Any]:
    """The demo sweep (a copy), with ``platon`` dropped if this installation does not have it."""
    from .config import method_choices

    spec = dict(QUICK if quick else DEMO)
    if out:
        spec["out"] = out
    available = method_choices()
    wanted = methods or spec["methods"]
    spec["methods"] = [m for m in wanted if m in available]
    missing = [m for m in wanted if m not in available]
    if missing:
        print(f"note: method(s) {missing} are not available in this installation; running {spec['methods']}")
    return spec
