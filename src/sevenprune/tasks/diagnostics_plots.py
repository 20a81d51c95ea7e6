"""Plots of the sentinel diagnostics (``diagnostics.json``), for your own runs as for docs/results.md.

A run made with ``--diagnostics`` (or a :class:`sevenprune.PruningDiagnostics` you saved yourself) has
a ``diagnostics.json``; these functions draw from it the figures of docs/results.md, section R.4::

    sevenprune diagnostics runs/seven-s0.8-seed1 runs/platon-s0.8-seed1 --out plots/

or from Python::

    from sevenprune.tasks.diagnostics_plots import load_diagnostics, plot_noise_discount, plot_stability
    d = load_diagnostics("runs/seven-s0.8-seed1")          # a run folder or the JSON file itself
    plot_noise_discount(d, "noise_discount.png")           # SEVEN with its noise discount only
    plot_stability({"seven": [d]}, "stability.png")        # one curve per label, mean over its runs

* :func:`plot_noise_discount`: SEVEN's ``m_hat / r_hat`` of the kept weights over the window (median
  and quartiles per matrix kind) and its histogram per layer at the last snapshot;
* :func:`plot_stability`: how early each method's ranking settles (Jaccard index of the set it would
  keep at each snapshot with the final kept set);
* :func:`plot_layer_sparsity`: the final sparsity of every matrix.

The files are the same bytes on every install (no matplotlib version in the PNG).
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["load_diagnostics", "plot_noise_discount", "plot_stability", "plot_layer_sparsity", "plot_runs"]

PNG_METADATA = {"Software": None}  # no matplotlib version in the file: identical bytes across installs
_KINDS = (("attention.self.query", "query"), ("attention.self.key", "key"), ("attention.self.value", "value"),
          ("attention.output.dense", "attention out"), ("intermediate.dense", "FFN in"), ("output.dense", "FFN out"))


def _pyplot() -> Any:
    from .report import _pyplot as files_only_pyplot

    plt = files_only_pyplot()
    plt.rcParams["svg.hashsalt"] = "sevenprune"
    return plt


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata=PNG_METADATA)
    _pyplot().close(fig)
    return path


def matrix_kind(name: str) -> str:
    """``encoder.layer.3.attention.self.query.weight`` -> ``query`` (BERT-style names; else ``other``)."""
    for key, label in _KINDS:
        if key in name:
            return label
    return "other"


def layer_index(name: str) -> int:
    """``encoder.layer.3.output.dense.weight`` -> 3 (-1 when the name has no ``layer.N.``)."""
    found = re.search(r"layer\.(\d+)\.", name)
    return int(found.group(1)) if found else -1


def load_diagnostics(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A run's diagnostics: ``path`` is a ``diagnostics.json`` or a run folder that holds one."""
    path = Path(path)
    file = path / "diagnostics.json" if path.is_dir() else path
    if not file.is_file():
        hint = " (was the run made with --diagnostics?)" if path.is_dir() else ""
        raise FileNotFoundError(f"no diagnostics file at {file}{hint}")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{file} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or "snapshots" not in data:
        raise ValueError(f"{file} is not a sevenprune diagnostics file (no 'snapshots' key)")
    return data


def plot_noise_discount(diagnostics: Mapping[str, Any], path: str | os.PathLike[str], *,
                        title: str = "SEVEN's noise discount") -> Path:
    """SEVEN's ``m_hat / r_hat`` over the window, and its histogram per layer at the last snapshot."""
    snapshots = diagnostics.get("snapshots") or []
    if not snapshots or not snapshots[0].get("noise_discount"):
        raise ValueError(f"these diagnostics have no noise discount to plot (method {diagnostics.get('method')!r}: "
                         "it is recorded for seven with noise_discount=True)")
    import numpy as np

    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    kinds: dict[str, list[tuple[int, float, float, float]]] = defaultdict(list)
    layers: set[int] = set()
    for snap in snapshots:
        by_kind = defaultdict(list)
        for w, v in snap["noise_discount"]["per_weight"].items():
            by_kind[matrix_kind(w)].append(v["quantiles"])
            layers.add(layer_index(w))
        for k, qs in by_kind.items():
            q = np.mean(np.array(qs), axis=0)  # mean over layers of each quantile
            kinds[k].append((snap["window_step"], q[1], q[2], q[3]))
    for k, pts in sorted(kinds.items()):
        xs = [p[0] for p in pts]
        line = ax1.plot(xs, [p[2] for p in pts], marker="o", label=k)[0]
        ax1.fill_between(xs, [p[1] for p in pts], [p[3] for p in pts], alpha=0.12, color=line.get_color())
    ax1.set_xlabel(f"pruning step (window of {diagnostics['prune_steps']})")
    ax1.set_ylabel("m_hat / r_hat of kept weights")
    ax1.set_title(f"median (band: quartiles), mean over the {len(layers)} layers")
    ax1.legend(fontsize=7)
    last = snapshots[-1]["noise_discount"]
    edges = np.array(last["bin_edges"])
    by_layer: dict[int, Any] = defaultdict(lambda: np.zeros(len(edges) - 1))
    for w, v in last["per_weight"].items():
        by_layer[layer_index(w)] += np.array(v["histogram"])
    for layer, hist in sorted(by_layer.items()):
        ax2.plot((edges[:-1] + edges[1:]) / 2, hist / max(1, hist.sum()), marker=".", label=f"layer {layer}")
    ax2.set_xlabel("m_hat / r_hat")
    ax2.set_ylabel("fraction of kept weights")
    ax2.set_title(f"at window step {snapshots[-1]['window_step']}")
    ax2.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_stability(groups: Mapping[str, Sequence[Mapping[str, Any]]], path: str | os.PathLike[str], *,
                   title: str = "How early each method's ranking settles") -> Path:
    """One curve per label: the mean, over its runs' diagnostics, of the Jaccard index of the set the
    method would keep at each snapshot (at the final sparsity) with the final kept set."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    windows: set[int] = set()
    for label, runs in groups.items():
        curves = [[(s["window_step"], s["jaccard_with_final_kept"]) for s in d["snapshots"]]
                  for d in runs if d.get("snapshots") and "jaccard_with_final_kept" in d["snapshots"][0]]
        if not curves:
            continue
        windows.update(d["prune_steps"] for d in runs)
        xs = [p[0] for p in curves[0]]
        ys = np.mean([[p[1] for p in c] for c in curves if len(c) == len(xs)], axis=0)
        ax.plot(xs, ys, marker="o", label=f"{label} ({len(curves)})")
    if not windows:
        plt.close(fig)
        raise ValueError("none of these diagnostics has a finished window to plot (jaccard_with_final_kept)")
    ax.set_xlabel("pruning step (window of " + ", ".join(str(w) for w in sorted(windows)) + ")")
    ax.set_ylabel("Jaccard(kept now at final sparsity, final kept)")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(fig, path)


def plot_layer_sparsity(groups: Mapping[str, Sequence[Mapping[str, float]]], path: str | os.PathLike[str], *,
                        title: str = "Final sparsity of every matrix") -> Path:
    """One line per label: each matrix's final sparsity (``{name: sparsity}`` per run), mean over runs."""
    import numpy as np

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.8))
    names: list[str] = []
    for label, runs in groups.items():
        runs = [r for r in runs if r]
        if not runs:
            continue
        names = list(runs[0])
        ys = np.mean([[r[n] for n in names] for r in runs], axis=0)
        ax.plot(range(len(names)), ys, marker=".", label=label)
    if not names:
        plt.close(fig)
        raise ValueError("no per-matrix sparsity to plot")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{layer_index(n)} {matrix_kind(n)}" for n in names], rotation=90, fontsize=6)
    ax.set_ylabel("final sparsity of the matrix")
    ax.set_title(title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(fig, path)


def _label(run_dir: Path, diagnostics: Mapping[str, Any]) -> str:
    """A sweep's run names (``seven_nd-s0.8-seed2``) group by their method part; else the method."""
    name = run_dir.name
    return name.split("-s0")[0] if "-s0" in name else str(diagnostics.get("method", name))


def plot_runs(run_dirs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Every plot the runs' diagnostics allow, into ``out_dir``: ``noise_discount-<run>.png`` for each
    SEVEN run with its discount, ``stability.png`` and ``layers.png`` over all runs (grouped by method)."""
    if not run_dirs:
        raise ValueError("give at least one run folder (or diagnostics.json)")
    loaded = []
    for run in run_dirs:
        path = Path(run)
        d = load_diagnostics(path)
        run_dir = path if path.is_dir() else path.parent
        loaded.append((run_dir, d))
    out = Path(out_dir)
    written = []
    for run_dir, d in loaded:
        if d["snapshots"] and d["snapshots"][0].get("noise_discount"):
            written.append(plot_noise_discount(d, out / f"noise_discount-{run_dir.name}.png",
                                               title=f"SEVEN's noise discount, {run_dir.name}"))
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    layers: dict[str, list[Mapping[str, float]]] = defaultdict(list)
    for run_dir, d in loaded:
        groups[_label(run_dir, d)].append(d)
        per_matrix = d.get("final_sparsity_per_weight")
        if per_matrix is None and (run_dir / "result.json").is_file():  # runs made before it was recorded
            per_matrix = json.loads((run_dir / "result.json").read_text(encoding="utf-8")).get("layers")
        if per_matrix:
            layers[_label(run_dir, d)].append(per_matrix)
    if any(d["snapshots"] and "jaccard_with_final_kept" in d["snapshots"][0] for _, d in loaded):
        written.append(plot_stability(groups, out / "stability.png"))
    if layers:
        written.append(plot_layer_sparsity(layers, out / "layers.png"))
    return written
