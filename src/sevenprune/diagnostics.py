"""What a pruning run did, in numbers: the statistics behind the sentinel diagnostics of docs/results.md.

Attach a :class:`PruningDiagnostics` to a :class:`~sevenprune.Pruner` and call :meth:`~PruningDiagnostics.step`
right after every ``pruner.step()`` (the gradients must still be there, so before ``zero_grad()``)::

    diag = sp.PruningDiagnostics(pruner, snapshots=6)
    for batch in loader:
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        pruner.step()
        diag.step()
        optimizer.zero_grad()
    diag.save("run/diagnostics.json")

It only reads (weights, gradients, the method's statistics, the masks): the run is bit-identical with or
without it. At ``snapshots`` pruning steps spread over the window it records:

* **the noise discount** (SEVEN with ``noise_discount=True`` only): ``m_hat / r_hat`` of the kept entries,
  per weight matrix, as quantiles and a histogram on ``[0, 1.05]``; near 1 = a steady gradient, near 0 =
  mostly noise;
* **the top first-order scores of the step**: which kept entries have the highest ``|W * G|`` of that
  batch, for each fraction in ``top_fractions`` (``None`` stands for the final keep fraction
  ``1 - sparsity``: the entries a one-batch first-order criterion would keep). At the end each entry is
  classed by how often it was at the top: *persistent* (at half the snapshots or more: a sentinel by
  the first-order score's own measure) or *transient* (at exactly one snapshot: large once, by the
  batch's noise: a temporary sentinel); the summary gives how many of each the final mask keeps.
  Only entries still kept at a snapshot can be at its top (a pruned weight is zero): with a large top
  set, entries pruned early are at the top of the first snapshots only and count as transient, so read
  the classes of a small top set (the 1 % default), whose entries are rarely pruned;
* **ranking stability**: the entries the method would keep if it stopped now (its current scores at the
  final sparsity), compared with the final mask (Jaccard index of the kept sets);

and at every pruning step the number of entries pruned (the mask changes; masks only lose entries).

For SEVEN with its noise discount it also keeps, beside the run, the score the ablation would have on
the same trajectory (``S += |W * G|`` over every entry, 4 more bytes per weight while recording), and
at every snapshot compares the set SEVEN would keep at the final sparsity (its current scores) with
the set that sum would keep: the entries the discount *rescues* (kept by SEVEN only) and those it
*drops* (kept by the sum only), with the quantiles of their ``m_hat / r_hat``. If the sentinel idea is
what SEVEN does, the rescued entries have steadier gradients (a higher ratio) than the dropped ones.
(The trajectory is SEVEN's: an entry it pruned stops adding to the sum, which favours agreement, so
the early snapshots are the informative ones.)
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from . import schedules, threshold
from .importance.seven import SevenImportance
from .pruner import Pruner

__all__ = ["PruningDiagnostics"]

_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
_BINS = 21  # histogram of m_hat / r_hat on [0, 1.05]


class PruningDiagnostics:
    """Record the sentinel diagnostics of one pruning run (see the module docstring).

    Args:
        pruner: the pruner to watch (a training-time method; its window must not have ended).
        snapshots: how many pruning steps to take snapshots at, spread evenly over the window (the last
            one a step before its end, while the method's statistics still exist).
        top_fractions: the shares of kept entries counted as "top" by ``|W * G|`` at a snapshot; ``None``
            stands for the final keep fraction ``1 - sparsity``.
    """

    def __init__(self, pruner: Pruner, *, snapshots: int = 6,
                 top_fractions: tuple[float | None, ...] = (None, 0.01)) -> None:
        if not isinstance(pruner, Pruner):
            raise TypeError(f"pruner must be a sevenprune.Pruner, got {type(pruner).__name__}")
        if not isinstance(snapshots, int) or isinstance(snapshots, bool) or snapshots < 1:
            raise ValueError(f"snapshots must be an integer >= 1, got {snapshots!r}")
        fractions = [1.0 - pruner.sparsity_target if f is None else f for f in top_fractions]
        if not fractions or not all(0.0 < float(f) < 1.0 for f in fractions):
            raise ValueError(f"top_fractions must be numbers in (0, 1) or None, got {top_fractions!r}")
        self.pruner = pruner
        self.top_fractions = [float(f) for f in fractions]
        self._labels = ["keep" if f is None else f"{float(f):g}" for f in top_fractions]
        window = pruner.prune_steps
        last = max(1, window - 1)
        points = sorted({max(1, round(last * (i + 1) / snapshots)) for i in range(snapshots)})
        self.snapshot_steps = [pruner.start_step + w for w in points]
        self.names = list(pruner.params)
        self.sizes = [p.numel() for p in pruner.params.values()]
        self._top_hits = {lab: [torch.zeros(n, dtype=torch.int16) for n in self.sizes] for lab in self._labels}
        self._top_sets: dict[str, list[list[Tensor]]] = {lab: [] for lab in self._labels}
        self._candidate_keeps: list[list[Tensor]] = []
        self.records: list[dict[str, Any]] = []
        self.pruned_per_step: list[list[int]] = []  # [step, pruned entries after it]
        opts = pruner.importance.options
        self._first_order: list[Tensor] | None = (
            [torch.zeros(w.numel(), dtype=torch.float32, device=w.device) for w in pruner.params.values()]
            if pruner.method == "seven" and opts.get("noise_discount", True) else None)
        self.discount_effect: list[dict[str, Any]] = []
        self._observed = pruner.observed_steps

    # -- during the run ---------------------------------------------------------------------------
    @torch.no_grad()
    def step(self) -> None:
        """Call right after ``pruner.step()``, before ``zero_grad()``."""
        p = self.pruner
        n = p.step_count
        if schedules.in_window(n, p.start_step, p.prune_steps):
            self.pruned_per_step.append([n, int(sum(p._pruned.values()))])
            if self._first_order is not None and p.observed_steps > self._observed:  # the ablation's score
                for acc, w in zip(self._first_order, p.params.values()):
                    if w.grad is not None:
                        acc.add_((w.detach().float() * w.grad.detach().float()).abs_().reshape(-1))
        self._observed = p.observed_steps
        if n in self.snapshot_steps and not p.finished:
            self._snapshot(n)
            if self._first_order is not None:
                effect = self._discount_effect()
                if effect is not None:
                    self.discount_effect.append(effect)

    def _snapshot(self, n: int) -> None:
        p = self.pruner
        record: dict[str, Any] = {"step": n, "window_step": n - p.start_step, "sparsity": p.sparsity(),
                                  "state_bytes_per_weight": p.state_nbytes() / p.numel,
                                  "noise_discount": self._noise_discount()}
        # the top |W * G| of this batch among kept entries
        first_order = []
        for name, w in p.params.items():
            g = w.grad if w.grad is not None else torch.zeros_like(w)
            s = (w.detach().float() * g.detach().float()).abs_().reshape(-1)
            s[~p.masks[name].reshape(-1)] = -math.inf
            first_order.append(s)
        alive = p.numel - int(sum(p._pruned.values()))
        record["top_entries"] = {}
        for label, fraction in zip(self._labels, self.top_fractions):
            top = min(alive, max(1, round(fraction * p.numel)) if label == "keep" else max(1, round(fraction * alive)))
            keep_low = threshold.smallest_k_keep_masks(first_order, p.numel - top)  # True = among the top
            top_sets = []
            for hits, is_top in zip(self._top_hits[label], keep_low):
                idx = torch.nonzero(is_top.reshape(-1).cpu()).squeeze(1)
                hits[idx] += 1
                top_sets.append(idx)
            self._top_sets[label].append(top_sets)
            record["top_entries"][label] = top
        # what the method would keep if it stopped now, at the final sparsity
        scores = [s.detach().float().reshape(-1).cpu() for s in p.importance.scores(p.masks)]
        k_final = schedules.pruned_count(p.sparsity_target, p.numel)
        self._candidate_keeps.append(threshold.smallest_k_keep_masks(scores, k_final, seed=n))
        self.records.append(record)

    def _discount_effect(self) -> dict[str, Any] | None:
        """SEVEN's ranking against the first-order sum's on the same trajectory, at the final sparsity."""
        p = self.pruner
        if not getattr(p.importance, "has_discount", False):  # SEVEN's own or the optimizer's moments
            return None
        k_final = schedules.pruned_count(p.sparsity_target, p.numel)
        seven = [s.detach().float().reshape(-1).cpu() for s in p.importance.scores(p.masks)]
        alive = [m.reshape(-1).cpu() for m in p.masks.values()]
        keep_seven = threshold.smallest_k_keep_masks(seven, k_final, seed=1)
        keep_plain = threshold.smallest_k_keep_masks([a.cpu() for a in self._first_order or []], k_final, seed=1)
        imp = p.importance
        assert isinstance(imp, SevenImportance)  # only SEVEN runs keep the first-order sum
        t = max(1, p.observed_steps)
        ratio = torch.cat([imp.discount(name, t).reshape(-1).cpu() for name in self.names])
        ks, kp, al = torch.cat(keep_seven), torch.cat(keep_plain), torch.cat(alive)
        levels = torch.tensor(_QUANTILES, dtype=torch.float64)

        def describe(sel: Tensor) -> dict[str, Any]:
            values = ratio[sel]
            if values.numel() == 0:
                return {"entries": 0, "ratio_quantiles": None, "ratio_mean": None}
            sample = values[torch.randperm(values.numel(), generator=torch.Generator().manual_seed(0))[:1 << 22]]
            return {"entries": int(values.numel()), "ratio_mean": round(float(values.double().mean()), 6),
                    "ratio_quantiles": [round(float(x), 6) for x in torch.quantile(sample.double(), levels)]}

        return {"step": p.step_count, "window_step": p.step_count - p.start_step, "quantile_levels": list(_QUANTILES),
                "rescued": describe(ks & ~kp), "dropped": describe(kp & ~ks),
                "kept_by_both": describe(ks & kp), "alive": describe(al),
                "jaccard_kept": int((ks & kp).sum()) / max(1, int((ks | kp).sum()))}

    def _noise_discount(self) -> dict[str, Any] | None:
        imp = self.pruner.importance
        if not isinstance(imp, SevenImportance) or not imp.has_discount:  # SEVEN with its noise discount
            return None
        t = max(1, self.pruner.observed_steps)
        out: dict[str, Any] = {}
        edges = torch.linspace(0.0, 1.05, _BINS + 1)
        for name in self.names:
            ratio = imp.discount(name, t)[self.pruner.masks[name]].reshape(-1).cpu()
            if ratio.numel() == 0:
                continue
            q = torch.quantile(ratio[:1 << 24].double(), torch.tensor(_QUANTILES, dtype=torch.float64))
            hist = torch.histc(ratio.clamp(0.0, 1.05), bins=_BINS, min=0.0, max=1.05)
            out[name] = {"quantiles": [round(float(x), 6) for x in q], "histogram": [int(x) for x in hist]}
        return {"quantile_levels": list(_QUANTILES), "bin_edges": [round(float(e), 4) for e in edges],
                "per_weight": out}

    # -- after the run ----------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """The recorded statistics, JSON-serialisable. Call after the pruning window ended."""
        p = self.pruner
        final = [m.reshape(-1).cpu() for m in p.masks.values()]
        kept_total = sum(int(m.sum()) for m in final)
        n_snap = len(self.records)
        kept_flat = torch.cat(final) if final else torch.zeros(0, dtype=torch.bool)
        classes: dict[str, dict[str, Any]] = {}
        for top_label in self._labels:
            hits = torch.cat([h.int() for h in self._top_hits[top_label]])
            per: dict[str, Any] = {}
            if n_snap:
                for label, sel in (("persistent", hits >= max(1, math.ceil(n_snap / 2))), ("transient", hits == 1)):
                    if n_snap == 1 and label == "persistent":
                        continue
                    count = int(sel.sum())
                    kept = int((sel & kept_flat).sum())
                    per[label] = {"entries": count, "kept": kept, "kept_fraction": kept / count if count else None}
            classes[top_label] = per
        for i, (record, cand) in enumerate(zip(self.records, self._candidate_keeps)):
            record["top_kept_by_final_mask"] = {}
            for top_label in self._labels:
                tops = self._top_sets[top_label][i]
                kept_top = sum(int(m[idx].sum()) for m, idx in zip(final, tops))
                record["top_kept_by_final_mask"][top_label] = kept_top / max(1, sum(int(x.numel()) for x in tops))
            inter = sum(int((c.reshape(-1) & f).sum()) for c, f in zip(cand, final))
            union = sum(int((c.reshape(-1) | f).sum()) for c, f in zip(cand, final))
            record["jaccard_with_final_kept"] = inter / union if union else 1.0
        return {
            "method": p.method,
            "method_options": dict(p.importance.options),
            "sparsity_target": p.sparsity_target,
            "start_step": p.start_step,
            "prune_steps": p.prune_steps,
            "prunable": p.numel,
            "kept": kept_total,
            "top_fractions": dict(zip(self._labels, self.top_fractions)),
            "snapshots": self.records,
            "top_classes": classes,
            "pruned_per_step": self.pruned_per_step,
            "discount_effect": self.discount_effect,
            # the final mask's sparsity per matrix (the per-layer figure of `sevenprune diagnostics`)
            "final_sparsity_per_weight": {n: 1.0 - int(m.sum()) / m.numel() for n, m in zip(self.names, final)},
            "state_bytes_per_weight_peak": max((r["state_bytes_per_weight"] for r in self.records), default=None),
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write :meth:`summary` as JSON to ``path``; returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.summary(), indent=1) + "\n", encoding="utf-8")
        return path
