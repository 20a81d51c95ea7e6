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
    from .._fsutil import save_file_atomically

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # through a temporary file: a link at ``path`` is replaced, never written through
        save_file_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png",
                                                           metadata=PNG_METADATA))
    finally:
        _pyplot().close(fig)
    return path


def matrix_kind(name: str) -> str:
    """``encoder.layer.3.attention.self.query.weight`` -> ``query`` (BERT-style names; else ``other``)."""
    for key, label in _KINDS:
        if key in name:
            return label
    return "other"


_LAYER = re.compile(r"(?:^|\.)(?:layers?|h|blocks?)\.(\d+)\.")


def layer_index(name: str) -> int:
    """The block a weight is in: ``encoder.layer.3.output.dense.weight`` (BERT, ViT) -> 3,
    ``model.layers.3.mlp.up_proj.weight`` (Llama) -> 3, ``transformer.h.3.mlp.c_fc.weight`` (GPT-2) -> 3;
    -1 when the name has no such ``layer.N.``."""
    found = _LAYER.search(name)
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
    except UnicodeDecodeError:
        raise ValueError(f"{file} is not UTF-8 text (not a sevenprune diagnostics file)") from None
    if not isinstance(data, dict) or "snapshots" not in data:
        raise ValueError(f"{file} is not a sevenprune diagnostics file (no 'snapshots' key)")
    check_diagnostics(data, file)
    return data


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _numbers(x: Any, length: int | None = None) -> bool:
    return isinstance(x, list) and all(_is_number(v) for v in x) and (length is None or len(x) == length)


def check_diagnostics(data: Mapping[str, Any], file: str | os.PathLike[str]) -> None:
    """Refuse a diagnostics file the plots cannot read, naming ``file`` and the key (before any plot is
    drawn): the keys the plots use must have the types ``PruningDiagnostics.save`` writes."""
    def bad(key: str, what: str, value: Any) -> ValueError:
        return ValueError(f"{file}: {key!r} must be {what}, got {str(value)[:80]!r}")

    snapshots = data["snapshots"]
    if not isinstance(snapshots, list) or not snapshots or not all(isinstance(x, dict) for x in snapshots):
        raise bad("snapshots", "a non-empty list of snapshot objects (a run made with --diagnostics whose pruning "
                  "window started)", snapshots)
    if not isinstance(data.get("prune_steps"), int) or isinstance(data.get("prune_steps"), bool):
        raise bad("prune_steps", "an integer", data.get("prune_steps"))
    if "method" in data and not isinstance(data["method"], str):
        raise bad("method", "a string", data["method"])
    with_jaccard = sum("jaccard_with_final_kept" in x for x in snapshots)
    if with_jaccard not in (0, len(snapshots)):
        raise ValueError(f"{file}: 'jaccard_with_final_kept' is in {with_jaccard} of the {len(snapshots)} snapshots "
                         "(all or none: the file was edited or cut)")
    for i, snap in enumerate(snapshots):
        where = f"snapshots[{i}]"
        if not isinstance(snap.get("window_step"), int) or isinstance(snap.get("window_step"), bool):
            raise bad(f"{where}.window_step", "an integer", snap.get("window_step"))
        if "jaccard_with_final_kept" in snap and not _is_number(snap["jaccard_with_final_kept"]):
            raise bad(f"{where}.jaccard_with_final_kept", "a number", snap["jaccard_with_final_kept"])
        nd = snap.get("noise_discount")
        if nd is None:
            continue
        if not isinstance(nd, dict) or not _numbers(nd.get("bin_edges")) or len(nd["bin_edges"]) < 2 \
                or not isinstance(nd.get("per_weight"), dict):
            raise bad(f"{where}.noise_discount", "an object with 'bin_edges' (numbers) and 'per_weight'", nd)
        for name, v in nd["per_weight"].items():
            if not isinstance(v, dict) or not _numbers(v.get("quantiles"), 5) \
                    or not _numbers(v.get("histogram"), len(nd["bin_edges"]) - 1):
                raise bad(f"{where}.noise_discount.per_weight.{name}", "an object with 5 'quantiles' and a "
                          f"'histogram' of {len(nd['bin_edges']) - 1} counts", v)
    _check_per_matrix(data.get("final_sparsity_per_weight"), file, "final_sparsity_per_weight")


def _check_per_matrix(value: Any, file: str | os.PathLike[str], key: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or not all(_is_number(v) and 0 <= v <= 1 for v in value.values()):
        raise ValueError(f"{file}: {key!r} must be an object {{matrix name: sparsity in [0, 1]}}, got "
                         f"{str(value)[:80]!r}")


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


def _plot_names(loaded: Sequence[tuple[Path, Path, Mapping[str, Any]]]) -> list[str]:
    """One plot name per input, never two alike: the run folder's name (a file other than
    ``diagnostics.json``: its own stem); where two inputs share it, the folders above are added."""
    bases = [file.stem if file.name != "diagnostics.json" else run_dir.name for run_dir, file, _ in loaded]
    names = list(bases)
    for depth in range(1, 64):
        clashes = {n for n in names if names.count(n) > 1}
        if not clashes:
            return names
        for i, (run_dir, _, _) in enumerate(loaded):
            if names[i] in clashes:
                above = [p.name for p in run_dir.resolve().parents][:depth][::-1]
                names[i] = "-".join([a for a in above if a] + [bases[i]])
    return [f"{n}-{i}" for i, n in enumerate(names, 1)]  # pragma: no cover (64 folders deep)


def plot_runs(run_dirs: Sequence[str | os.PathLike[str]], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Every plot the runs' diagnostics allow, into ``out_dir``: ``noise_discount-<run>.png`` for each
    SEVEN run with its discount, ``stability.png`` and ``layers.png`` over all runs (grouped by method).

    Every input is read and checked, and every output name checked, before anything is written: the
    folder may hold files of your own, which are never replaced (only the files this function wrote
    there, listed in ``.sevenprune-diagnostics``), and no plot is written through a link."""
    from .._fsutil import DIAGNOSTICS_MARKER, check_file_outputs, check_output_parent, own_files, record_own_files

    if not run_dirs:
        raise ValueError("give at least one run folder (or diagnostics.json)")
    out = Path(out_dir)
    check_output_parent(out, "diagnostics --out")
    loaded: list[tuple[Path, Path, Mapping[str, Any]]] = []
    seen: dict[Path, str] = {}
    for run in run_dirs:
        path = Path(run)
        d = load_diagnostics(path)
        file = path / "diagnostics.json" if path.is_dir() else path
        if file.resolve() in seen:
            raise ValueError(f"{run} and {seen[file.resolve()]} are the same diagnostics file; give each run once")
        seen[file.resolve()] = str(run)
        loaded.append((path if path.is_dir() else path.parent, file, d))
    plans: list[tuple[str, Any]] = []
    for (_, _, diag), name in zip(loaded, _plot_names(loaded)):
        if diag["snapshots"][0].get("noise_discount"):
            plans.append((f"noise_discount-{name}.png", lambda p, diag=diag, name=name: plot_noise_discount(
                diag, p, title=f"SEVEN's noise discount, {name}")))
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    layers: dict[str, list[Mapping[str, float]]] = defaultdict(list)
    matrices: tuple[set[str], Path] | None = None
    for run_dir, file, diag in loaded:
        groups[_label(run_dir, diag)].append(diag)
        per_matrix, source = diag.get("final_sparsity_per_weight"), file
        if per_matrix is None and (run_dir / "result.json").is_file():  # runs made before it was recorded
            from .._readers import read_json

            source = run_dir / "result.json"
            result = read_json(source)
            per_matrix = result.get("layers") if isinstance(result, dict) else None
            _check_per_matrix(per_matrix, source, "layers")
        if per_matrix:
            if matrices is not None and set(per_matrix) != matrices[0]:
                raise ValueError(f"{source} has other matrices than {matrices[1]}: runs of different models "
                                 "cannot share a per-matrix plot; plot them separately")
            matrices = (set(per_matrix), source)
            layers[_label(run_dir, diag)].append(per_matrix)
    for label, runs in groups.items():
        steps = {tuple(s["window_step"] for s in r["snapshots"]) for r in runs if "jaccard_with_final_kept"
                 in r["snapshots"][0]}
        if len(steps) > 1:
            raise ValueError(f"the {label!r} runs have snapshots at different window steps {sorted(steps)}; their "
                             "stability curves cannot be averaged: plot them separately")
    if any("jaccard_with_final_kept" in r["snapshots"][0] for _, _, r in loaded):
        plans.append(("stability.png", lambda p: plot_stability(groups, p)))
    if layers:
        plans.append(("layers.png", lambda p: plot_layer_sparsity(layers, p)))
    if not plans:
        raise ValueError("nothing to plot: none of these diagnostics has SEVEN's noise discount, a finished window "
                         "(jaccard_with_final_kept) or per-matrix sparsities")
    names = [name for name, _ in plans]
    check_file_outputs(out, names, what="diagnostics --out", owned=own_files(out, DIAGNOSTICS_MARKER))
    out.mkdir(parents=True, exist_ok=True)
    record_own_files(out, names, DIAGNOSTICS_MARKER)  # first: a file cut off half-way is still known as ours
    return [draw(out / name) for name, draw in plans]
