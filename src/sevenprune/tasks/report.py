"""Tables and plots from finished runs: ``results.csv``, ``report.md``, ``curve.png``, ``layers.png``.

The table has one row per method (``dense`` first, as the baseline) and one column per target
sparsity; a cell is the mean ± sample standard deviation over seeds of the task's main metric
(or ``metric``). ``dense`` runs once per seed; its value is repeated under every sparsity.
"""

from __future__ import annotations

import csv
import os
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._fsutil import atomic_write_text, save_file_atomically
from .._readers import read_json

__all__ = ["collect_results", "write_csv", "markdown_table", "plot_curve", "plot_layers", "build_report"]


def collect_results(out: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The ``result.json`` of every finished run under ``out/runs`` (sorted by run name)."""
    runs = Path(out) / "runs"
    rows = []
    for path in sorted(runs.glob("*/result.json")) if runs.is_dir() else []:
        if path.parent.name.startswith("."):  # a run being written beside the one it replaces
            continue
        r = read_json(path)
        if not isinstance(r.get("metrics"), dict):
            raise ValueError(f"{path} has no 'metrics' object (not a finished run's result)")
        r["run"] = path.parent.name
        r["arm"] = arm_of_run(path.parent.name, r)
        rows.append(r)
    return rows


_RUN_NAME = re.compile(r"^(?P<arm>.+?)(?:-s[0-9.e+-]+)?-seed-?\d+$")


def arm_of_run(run: str, result: Mapping[str, Any]) -> str:
    """The sweep's name for the method of run folder ``run``: the variant name where the sweep has one
    (``seven_nd-s0.5-seed1`` -> ``seven_nd``, a ``noise_discount=False`` form of method ``seven``), so that
    the report keeps a variant apart from its method; ``result["method"]`` for a folder named otherwise.

    >>> arm_of_run("seven_nd-s0.5-seed1", {"method": "seven"}), arm_of_run("dense-seed2", {"method": "dense"})
    ('seven_nd', 'dense')
    >>> arm_of_run("my-run", {"method": "seven"})
    'seven'
    """
    match = _RUN_NAME.match(run)
    return match["arm"] if match else str(result["method"])


def _arm(r: Mapping[str, Any]) -> str:
    """A row's label in the tables and plots: its sweep arm where known (rows built elsewhere: the method)."""
    return str(r.get("arm") or r["method"])


_CSV_FIRST = ["run", "task", "model", "method", "arm", "seed", "target_sparsity", "sparsity", "model_sparsity",
              "zero_fraction"]
_CSV_LAST = ["train_loss", "steps", "start_step", "prune_steps", "train_seconds", "eval_seconds", "seconds"]
# what the seconds were measured on (result.json["machine"]; empty for runs from before it was recorded)
_CSV_MACHINE = ["cpu", "torch_threads", "load_1min_mean", "cpu_share"]


def machine_fields(r: Mapping[str, Any]) -> dict[str, Any]:
    """A run's processor, torch threads, mean one-minute load and CPU share while it ran (None where not
    recorded).

    >>> machine_fields({"machine": {"cpu": "EPYC", "torch_threads": 1, "load_1min": {"mean": 2.1}, "cpu_share": 0.98}})
    {'cpu': 'EPYC', 'torch_threads': 1, 'load_1min_mean': 2.1, 'cpu_share': 0.98}
    >>> machine_fields({})
    {'cpu': None, 'torch_threads': None, 'load_1min_mean': None, 'cpu_share': None}
    """
    m = r.get("machine") or {}
    return {"cpu": m.get("cpu"), "torch_threads": m.get("torch_threads"),
            "load_1min_mean": (m.get("load_1min") or {}).get("mean"), "cpu_share": m.get("cpu_share")}


def shared_machine(r: Mapping[str, Any]) -> bool:
    """Whether the run waited for its CPU while it ran (its seconds are then inflated): a one-thread run that
    got the CPU for less than 90 % of its wall time (``cpu_share``, measured on the run itself); otherwise a
    mean one-minute load above the machine's logical CPUs by half a CPU or more.

    >>> shared_machine({"machine": {"torch_threads": 1, "cpu_share": 0.7, "load_1min": {"mean": 2.0}}})
    True
    >>> shared_machine({"machine": {"logical_cpus": 2, "load_1min": {"mean": 2.9}}})
    True
    >>> shared_machine({"machine": {"logical_cpus": 2, "load_1min": {"mean": 2.2}}}), shared_machine({})
    (False, False)
    """
    fields = machine_fields(r)
    if fields["torch_threads"] == 1 and fields["cpu_share"] is not None:
        return float(fields["cpu_share"]) < 0.9
    mean, cpus = fields["load_1min_mean"], (r.get("machine") or {}).get("logical_cpus")
    if mean is None or not cpus:
        return False
    return float(mean) >= float(cpus) + 0.5


def timing_note(rows: list[dict[str, Any]]) -> str:
    """A sentence on what the runs' seconds were measured on: the processors (comparable within one only)
    and the runs that shared their machine (marked †); empty where no run records its machine."""
    recorded = [r for r in rows if r.get("machine")]
    if not recorded:
        return ""
    cpus = Counter(str(r["machine"].get("cpu")) for r in recorded)
    if len(cpus) == 1:
        note = f"Timed on {next(iter(cpus))}"
    else:
        counts = "; ".join(f"{c}: {n} run{'s' if n > 1 else ''}" for c, n in cpus.items())
        note = f"Timed on {len(cpus)} processors ({counts}): compare seconds between runs of one processor only"
    missing = len(rows) - len(recorded)
    if missing:
        note += f"; {missing} runs do not record theirs" if missing > 1 else "; 1 run does not record its machine"
    shared = sum(shared_machine(r) for r in rows)
    if shared:
        note += (f". † {shared} run{'s' if shared > 1 else ''} waited for the CPU (another process shared it): "
                 f"{'their' if shared > 1 else 'its'} seconds are inflated")
    return note + "."


def write_csv(rows: list[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """One line per run; metric columns are named after the metrics."""
    metric_keys = sorted({k for r in rows for k in r["metrics"]})

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(_CSV_FIRST + metric_keys + _CSV_LAST + _CSV_MACHINE)
            for r in rows:
                machine = machine_fields(r)
                w.writerow([r.get(k) for k in _CSV_FIRST] + [r["metrics"].get(k) for k in metric_keys]
                           + [r.get(k) for k in _CSV_LAST] + [machine[k] for k in _CSV_MACHINE])

    # renamed into place: a sweep stopped mid-write, or two sweeps of one folder, never leave a torn file
    return save_file_atomically(path, write)


def _method_order(rows: list[dict[str, Any]], order: list[str] | None) -> list[str]:
    present = list(dict.fromkeys(_arm(r) for r in rows))
    ordered = [m for m in (order or []) if m in present] + [m for m in present if m not in (order or [])]
    return sorted(ordered, key=lambda m: m != "dense")  # dense first, the rest as given


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"


def summarise(rows: list[dict[str, Any]], metric: str, order: list[str] | None = None
              ) -> tuple[list[str], list[float], dict[tuple[str, float], list[float]]]:
    """``(arms, sparsities, {(arm, sparsity): values over seeds})``; unpruned runs under every sparsity.
    An arm is a method or a sweep's variant of one (:func:`arm_of_run`)."""
    methods = _method_order(rows, order)
    sparsities = sorted({float(r["target_sparsity"]) for r in rows if r["method"] != "dense"})
    cells: dict[tuple[str, float], list[float]] = {}
    for r in rows:
        if metric not in r["metrics"]:
            raise ValueError(f"run {r['run']} has no metric {metric!r}; it has {sorted(r['metrics'])}")
        targets = sparsities if r["method"] == "dense" else [float(r["target_sparsity"])]
        for s in targets:
            cells.setdefault((_arm(r), s), []).append(float(r["metrics"][metric]))
    return methods, sparsities, cells


def markdown_table(rows: list[dict[str, Any]], metric: str, order: list[str] | None = None) -> str:
    """The methods x sparsities table (mean ± std over seeds) in Markdown.

    >>> rows = [{"run": "a", "method": "dense", "target_sparsity": 0.0, "metrics": {"accuracy": 0.9}},
    ...         {"run": "b", "method": "seven", "target_sparsity": 0.5, "metrics": {"accuracy": 0.8}},
    ...         {"run": "c", "method": "seven", "target_sparsity": 0.5, "metrics": {"accuracy": 0.7}}]
    >>> print(markdown_table(rows, "accuracy"))
    | method | 50% |
    |---|---|
    | dense | 0.9000 |
    | seven | 0.7500 ± 0.0707 |

    Only unpruned runs (a dense warm-up) give one column, the metric:

    >>> print(markdown_table([{"run": "d", "method": "dense", "target_sparsity": 0.0, "metrics": {"accuracy": 0.9}},
    ...                       {"run": "e", "method": "dense", "target_sparsity": 0.0, "metrics": {"accuracy": 0.8}}],
    ...                      "accuracy"))
    | method | accuracy |
    |---|---|
    | dense | 0.8500 ± 0.0707 |
    """
    methods, sparsities, cells = summarise(rows, metric, order)
    if not sparsities:  # only unpruned runs (e.g. a dense warm-up): one column, the metric itself
        lines = [f"| method | {metric} |", "|---|---|"]
        for m in methods:
            lines.append(f"| {m} | " + _cell([float(r["metrics"][metric]) for r in rows if _arm(r) == m]) + " |")
        return "\n".join(lines)
    head = "| method | " + " | ".join(f"{round(s * 100, 4):g}%" for s in sparsities) + " |"
    lines = [head, "|---|" + "---|" * len(sparsities)]
    for m in methods:
        lines.append(f"| {m} | " + " | ".join(_cell(cells.get((m, s), [])) for s in sparsities) + " |")
    return "\n".join(lines)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_curve(rows: list[dict[str, Any]], metric: str, path: str | os.PathLike[str],
               order: list[str] | None = None, title: str = "") -> Path:
    """The metric against target sparsity, one line per method (error bars: std over seeds),
    the dense baseline as a dashed horizontal line."""
    plt = _pyplot()
    methods, sparsities, cells = summarise(rows, metric, order)
    unpruned = {_arm(r) for r in rows if r["method"] == "dense"}
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for m in methods:
        if m in unpruned:
            continue
        xs = [s for s in sparsities if cells.get((m, s))]
        means = [float(np.mean(cells[(m, s)])) for s in xs]
        stds = [float(np.std(cells[(m, s)], ddof=1)) if len(cells[(m, s)]) > 1 else 0.0 for s in xs]
        ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=m)
    for i, m in enumerate(sorted(unpruned, key=lambda a: a != "dense")):  # dense (and its variants) as lines
        values = [float(r["metrics"][metric]) for r in rows if _arm(r) == m]
        ax.axhline(float(np.mean(values)), linestyle=("--", ":", "-.")[i % 3], color="black", label=m)
    ax.set_xlabel("sparsity (fraction of prunable weights removed)")
    ax.set_ylabel(metric)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    # outside the axes: with many methods, a legend inside covers the curves
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    fig.tight_layout()
    # renamed into place (never a torn file); no "Software" tag: the same bytes across installs
    save_file_atomically(path, lambda tmp: fig.savefig(tmp, dpi=120, metadata={"Software": None}))
    plt.close(fig)
    return Path(path)


def pick_layers_run(rows: list[dict[str, Any]], wanted: str | None = None) -> dict[str, Any] | None:
    """The run for ``layers.png``: ``wanted`` (a run name) or the first SEVEN-like run at the highest
    sparsity (else any pruned run)."""
    pruned = [r for r in rows if r.get("layers")]
    if wanted:
        match = [r for r in rows if r["run"] == wanted]
        if not match:
            raise ValueError(f"no finished run named {wanted!r}; runs are {[r['run'] for r in rows]}")
        return match[0]
    if not pruned:
        return None
    top = max(float(r["target_sparsity"]) for r in pruned)
    at_top = [r for r in pruned if float(r["target_sparsity"]) == top]
    seven = [r for r in at_top if str(r["method"]).startswith("seven")]
    return (seven or at_top)[0]


def plot_layers(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Sparsity of every prunable weight of one run (horizontal bars, in model order)."""
    plt = _pyplot()
    layers = result["layers"]
    names = list(layers)
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.22 * len(names) + 1)))
    ax.barh(range(len(names)), [layers[n] for n in names], color="tab:blue")
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels([n.removesuffix(".weight") for n in names], fontsize=6)
    ax.invert_yaxis()
    ax.axvline(float(result["sparsity"]), linestyle="--", color="black", label=f"overall {result['sparsity']:.3f}")
    ax.set_xlabel("sparsity of the layer")
    ax.set_xlim(0, 1)
    ax.set_title(f"{result['run']}: per-layer sparsity")
    ax.legend(loc="lower right")
    fig.tight_layout()
    # renamed into place (never a torn file); no "Software" tag: the same bytes across installs
    save_file_atomically(path, lambda tmp: fig.savefig(tmp, dpi=120, metadata={"Software": None}))
    plt.close(fig)
    return Path(path)


REPORT_FILES = ("results.csv", "report.md", "curve.png", "layers.png")


def _check_report_outputs(out: Path) -> None:
    """Replace report files only in a folder the tool wrote (a sweep's marker or its sweep.json); in any
    other folder, write them only where they do not exist yet, and mark the folder as ours."""
    from .._fsutil import SWEEP_MARKER, check_file_outputs, has_marker, write_marker

    # a link among the report's files is never written through, even in a sweep folder
    check_file_outputs(out, REPORT_FILES, what="report", owned=REPORT_FILES)
    if has_marker(out, SWEEP_MARKER) or has_marker(out, "sweep.json"):
        return
    existing = [name for name in REPORT_FILES if (out / name).exists()]
    if existing:
        raise FileExistsError(f"{out / existing[0]} exists and {out} is not a sweep folder written by sevenprune "
                              f"(no {SWEEP_MARKER}); move the file away or choose another folder")
    write_marker(out, SWEEP_MARKER)


def build_report(out: str | os.PathLike[str], *, metric: str | None = None, order: list[str] | None = None,
                 layers_run: str | None = None) -> dict[str, Any]:
    """(Re)build ``results.csv``, ``report.md``, ``curve.png`` and ``layers.png`` in ``out``.

    Reads ``out/sweep.json`` (if present) for the method order, the chosen layers run and the metric.
    Returns the paths and the Markdown table.
    """
    out = Path(out)
    rows = collect_results(out)
    if not rows:
        raise ValueError(f"no finished runs under {out / 'runs'} (a run is finished once it has result.json)")
    _check_report_outputs(out)
    sweep: dict[str, Any] = {}
    if (out / "sweep.json").exists():
        sweep = read_json(out / "sweep.json")
    order = order or sweep.get("methods")
    layers_run = layers_run or sweep.get("layers_run")
    metric = metric or sweep.get("metric") or rows[0]["metric"]
    table = markdown_table(rows, metric, order)
    csv_path = write_csv(rows, out / "results.csv")
    tasks = sorted({r["task"] for r in rows})
    models = sorted({r["model"] for r in rows})
    title = f"{', '.join(tasks)} / {', '.join(models)}"
    curve = plot_curve(rows, metric, out / "curve.png", order, title=title)
    chosen = pick_layers_run(rows, layers_run)
    layers = plot_layers(chosen, out / "layers.png") if chosen is not None else None
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        f"# Sweep report: {title}",
        "",
        f"Metric: **{metric}** on the evaluation set, mean ± sample std over seeds {seeds} "
        "(no ± with one seed). Columns: target sparsity of the prunable weights; `dense` is the "
        "unpruned baseline, the same runs under every column.",
        "",
        table,
        "",
        "Achieved sparsity (prunable weights / whole model) and time per run:",
        "",
        "| run | sparsity | model sparsity | " + metric + " | seconds | load |",
        "|---|---|---|---|---|---|",
    ]
    rank = {m: i for i, m in enumerate(_method_order(rows, order))}
    for r in sorted(rows, key=lambda r: (rank[_arm(r)], float(r["target_sparsity"]), r["seed"])):
        load = machine_fields(r)["load_1min_mean"]
        lines.append(f"| {r['run']} | {r['sparsity']:.4f} | {r['model_sparsity']:.4f} | "
                     f"{r['metrics'][metric]:.4f} | {r['seconds']:.0f}{' †' if shared_machine(r) else ''} | "
                     f"{'-' if load is None else f'{load:.1f}'} |")
    note = timing_note(rows)
    lines += (["", "Load: the machine's mean one-minute load average while the run ran. " + note] if note else [])
    lines += ["", "Plots: `curve.png` (metric against sparsity)"
              + (f", `layers.png` (per-layer sparsity of `{chosen['run']}`)" if chosen else "") + "."]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return {"table": table, "metric": metric, "csv": csv_path, "report": out / "report.md", "curve": curve,
            "layers": layers, "runs": len(rows)}
