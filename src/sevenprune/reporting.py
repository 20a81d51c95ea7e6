"""A pruner's report: how much of each prunable weight, of all of them and of the whole model is pruned
(:meth:`sevenprune.Pruner.report`), and the same as a small text table (:meth:`~sevenprune.Pruner.summary`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

__all__ = ["pruning_report", "summary_table"]


def pruning_report(model: nn.Module, owners: Mapping[str, nn.Parameter], pruned: Mapping[str, int],
                   **header: Any) -> dict[str, Any]:
    """``header`` (step, method, target and scheduled sparsity, step counters), then the sparsity over the
    prunable weights (``owners``, each with its ``pruned`` count over every rank) and over the model."""
    model_params = sum(p.numel() for p in model.parameters())
    numel = sum(p.numel() for p in owners.values())
    total = sum(pruned.values())
    return {
        **{k: header[k] for k in ("step", "method", "target_sparsity", "scheduled_sparsity")},
        "sparsity": total / numel,
        "model_sparsity": total / model_params if model_params else 0.0,
        "pruned": total,
        "prunable_params": numel,
        "model_params": model_params,
        **{k: header[k] for k in ("observed_steps", "skipped_steps")},
        "layers": {n: {"numel": p.numel(), "pruned": pruned[n], "sparsity": pruned[n] / p.numel()}
                   for n, p in owners.items()},
    }


def summary_table(report: Mapping[str, Any]) -> str:
    """The report as a small text table: one line per weight, then the totals."""
    width = max(len(n) for n in report["layers"])
    lines = [f"{'weight':<{width}}  {'numel':>10}  sparsity"]
    for n, layer in report["layers"].items():
        lines.append(f"{n:<{width}}  {layer['numel']:>10}  {layer['sparsity']:.4f}")
    lines.append(
        f"step {report['step']}: sparsity {report['sparsity']:.4f} of {report['prunable_params']} prunable weights "
        f"(target {report['target_sparsity']}), {report['model_sparsity']:.4f} of the whole model"
    )
    return "\n".join(lines)
