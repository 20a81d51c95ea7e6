"""The superseded first wave of docs/results/archive.md: 32-step protocols on mr (MiniLM) and a 40-step ViT
on Fashion-MNIST, from the per-run CSVs in docs/results/archive/ (configurations and run script in
experiments/results/archive/). Protocols R and V replace them; they are kept because the main page cites
them (the pooler control, the moments grid, the first image protocol). Their runs are not made again.

A cell is the mean ± sample standard deviation over the seeds that finished. Differences are paired:
every method of a sweep sees the same seeds, batches and evaluation sentences, so "SEVEN - baseline" is
taken per seed, then averaged.
"""

from __future__ import annotations

import csv
from typing import Any

import numpy as np

import results_common as common
from results_R import by_key, paper_table
from sevenprune.tasks.report import markdown_table, plot_curve

CSV_DIR = common.RESULTS / "archive"
# the columns of the archive's CSVs that describe a run; every other column is a metric (the files are
# frozen: written by ``sevenprune.tasks.report.write_csv`` when these sweeps ran)
RUN_COLUMNS = {"run", "task", "model", "method", "seed", "target_sparsity", "sparsity", "model_sparsity",
               "zero_fraction", "train_loss", "steps", "start_step", "prune_steps", "train_seconds",
               "eval_seconds", "seconds"}

DYN_ORDER = ["dense", "seven_dyn", "platon", "movement", "soft_movement", "magnitude", "random"]
PRE_ORDER = ["dense", "seven_pre", "seven_pre_frozen", "snip", "grasp", "force", "magnitude_init", "random_init"]
VIT_ORDER = ["dense", "seven_dyn", "magnitude", "seven_pre", "snip", "grasp", "magnitude_init"]
MOMENTS = [("abs", 0.8, 0.9, "mr_dyn"), ("signed", 0.8, 0.9, "mr_moments_signed_b0.8_0.9"),
           ("abs", 0.5, 0.7, "mr_moments_abs_b0.5_0.7"), ("abs", 0.9, 0.999, "mr_moments_abs_b0.9_0.999"),
           ("signed", 0.9, 0.999, "mr_moments_signed_b0.9_0.999")]


def _number(text: str) -> Any:
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    return int(value) if value.is_integer() and "." not in text and "e" not in text else value


def rows_of(*sweeps: str) -> list[dict[str, Any]]:
    """The runs of the archive's sweeps, read back from their committed CSVs (in the format of
    ``sevenprune.tasks.report.collect_results``: the metric columns under ``"metrics"``)."""
    rows: list[dict[str, Any]] = []
    for s in sweeps:
        path = CSV_DIR / f"{s}.csv"
        if not path.exists():
            continue
        with open(path, encoding="utf-8", newline="") as f:
            for raw in csv.DictReader(f):
                row = {k: _number(v) for k, v in raw.items()}
                metrics = {k: row.pop(k) for k in list(row) if k not in RUN_COLUMNS}
                row["metrics"] = metrics
                rows.append(row)
    return rows


def seeds_note(rows: list[dict[str, Any]]) -> str:
    seeds = sorted({int(r["seed"]) for r in rows})
    total = sum(float(r["seconds"]) for r in rows)
    return (f"{len(rows)} runs, seeds {seeds}; compute {total / 60:.0f} min in all "
            f"({total / max(1, len(rows)):.0f} s a run, one thread each)")


def _points(d: list[float]) -> str:
    """Mean ± sample std of accuracy differences, in points (no "-0.0")."""
    mean = float(np.mean(d)) * 100
    mean = 0.0 if abs(mean) < 0.05 else mean
    return f"{mean:+.1f}" + (f" ± {np.std(d, ddof=1) * 100:.1f}" if len(d) > 1 else "")


def paired_table(rows: list[dict[str, Any]], metric: str, ours: str, baselines: list[str]) -> str:
    """``ours - baseline`` per seed, mean ± std, and on how many seeds ours is ahead."""
    vals = by_key(rows, metric)
    sparsities = sorted({s for (m, s, _) in vals if m == ours})
    head = "| " + ours + " minus | " + " | ".join(f"{round(s * 100):g}%" for s in sparsities) + " |"
    lines = [head, "|---|" + "---|" * len(sparsities)]
    for b in baselines:
        cells = []
        for s in sparsities:
            d = [vals[(ours, s, k)] - vals[(b, s, k)] for (m, s2, k) in vals
                 if m == ours and s2 == s and (b, s, k) in vals]
            if not d:
                cells.append("-")
                continue
            wins = sum(x > 0 for x in d)
            cells.append(f"{_points(d)} ({wins}/{len(d)})")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def with_dense(rows: list[dict[str, Any]], dense_from: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in dense_from if r["method"] == "dense"] + [r for r in rows if r["method"] != "dense"]


def moments_table(dyn: list[dict[str, Any]], metric: str) -> str:
    """SEVEN_dyn at 80 % under each (moments, beta1, beta2); ``dyn``: protocol 1's runs (the default)."""
    lines = ["| moments | beta1 | beta2 | accuracy at 80% | minus the default (abs, 0.8, 0.9), per seed |",
             "|---|---|---|---|---|"]
    base = by_key([r for r in dyn if r["method"] == "seven_dyn"], metric)
    for moments, b1, b2, sweep in MOMENTS:
        vals = base if sweep == "mr_dyn" else by_key(rows_of(sweep), metric)
        acc = [v for (m, s, k), v in vals.items() if s == 0.8]
        if not acc:
            lines.append(f"| {moments} | {b1} | {b2} | - | - |")
            continue
        value = f"{np.mean(acc):.4f}" + (f" ± {np.std(acc, ddof=1):.4f}" if len(acc) > 1 else "")
        if sweep == "mr_dyn":
            diff = "(the default)"
        else:
            d = [v - base[k] for k, v in vals.items() if k[1] == 0.8 and k in base]
            diff = f"{_points(d)} points ({common.seeds_text(len(d))})" if d else "-"
        lines.append(f"| {moments} | {b1} | {b2} | {value} ({common.seeds_text(len(acc))}) | {diff} |")
    return "\n".join(lines)


def nopooler_table(nopool: list[dict[str, Any]], dyn: list[dict[str, Any]], metric: str) -> str:
    """Protocol 1 with ``exclude=["pooler"]`` beside the same runs with the pooler prunable."""
    with_pool, without = by_key(dyn, metric), by_key(nopool, metric)
    methods = list(dict.fromkeys(m for (m, _, _) in without))
    sparsities = sorted({s for (_, s, _) in without})
    lines = ["| method | " + " | ".join(f"{round(s * 100):g}%: pooler prunable / pooler dense" for s in sparsities) + " |",
             "|---|" + "---|" * len(sparsities)]
    for m in methods:
        cells = []
        for s in sparsities:
            seeds = sorted(k for (m2, s2, k) in without if m2 == m and s2 == s)
            a = [with_pool[(m, s, k)] for k in seeds if (m, s, k) in with_pool]
            b = [without[(m, s, k)] for k in seeds]
            cells.append(f"{np.mean(a):.4f} / {np.mean(b):.4f}" if a else f"- / {np.mean(b):.4f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    seeds = sorted({k for (_, _, k) in without})
    return "\n".join(lines) + f"\n\nMeans over seeds {seeds} (the same seeds on both sides)."


def blocks() -> dict[str, str]:
    """The archive page's blocks (and its plots, docs/img/results_{mr_dyn,mr_pre,vit}.png)."""
    metric = "accuracy"
    out: dict[str, str] = {}
    dyn = rows_of("mr_dyn")
    pre = rows_of("mr_pre")  # its own dense: it starts from the pretrained MiniLM
    vit_dyn = rows_of("vit_dyn")
    vit_pre = with_dense(rows_of("vit_pre"), vit_dyn)
    vit = vit_dyn + [r for r in vit_pre if r["method"] != "dense"]
    for name, rows, order, title in [
            ("mr_dyn", dyn, DYN_ORDER, "mr / MiniLM: pruning during fine-tuning"),
            ("mr_pre", pre, PRE_ORDER, "mr / MiniLM: pruning early or at initialisation"),
            ("vit", vit, VIT_ORDER, "Fashion-MNIST / ViT (4 layers, width 192)")]:
        if not rows:
            out[name] = "(no finished runs)"
            continue
        plot_curve(rows, metric, common.IMG / f"results_{name}.png", order, title=title)
        out[name] = (markdown_table(rows, metric, order) + "\n\n" + seeds_note(rows) + "\n")
    if dyn:
        out["mr_dyn_paired"] = paired_table(dyn, metric, "seven_dyn",
                                            ["platon", "movement", "soft_movement", "magnitude", "random"])
    if pre:
        out["mr_pre_paired"] = paired_table(pre, metric, "seven_pre",
                                            ["seven_pre_frozen", "snip", "grasp", "force", "magnitude_init",
                                             "random_init"])
        out["paper"] = paper_table(pre, metric)
    if vit:
        out["vit_paired"] = (paired_table(vit, metric, "seven_dyn", ["magnitude", "seven_pre", "snip", "grasp",
                                                                     "magnitude_init"]) + "\n\n"
                             + paired_table(vit, metric, "seven_pre", ["snip", "grasp", "magnitude_init"]))
    long = rows_of("mr_pre_long")
    if long:
        out["mr_pre_long"] = (markdown_table(long, metric, PRE_ORDER) + "\n\n" + seeds_note(long) + "\n\n"
                              + paired_table(long, metric, "seven_pre", ["snip", "grasp", "magnitude_init"]))
    nopool = rows_of("mr_dyn_nopooler")
    if nopool:
        out["nopooler"] = nopooler_table(nopool, dyn, metric)
    out["moments"] = moments_table(dyn, metric)
    pre_vit = rows_of("vit_pretrain")
    if pre_vit:
        r = pre_vit[0]
        out["vit_pretrain"] = (f"Pretrained ViT: accuracy {r['metrics'][metric]:.4f} on 2000 test "
                               f"images after {r['steps']} steps ({r['seconds'] / 60:.1f} min).")
    return out
