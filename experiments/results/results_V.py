"""Protocol V (docs/results.md, section V): the Fashion-MNIST ViT protocol at protocol R's proportions,
from the committed files in docs/results/V/ (``experiments/results/V/*.json``, ``run_V.sh``).

A 4-layer ViT trained from scratch for 1,000 steps (``V_pretrain``), then fine-tuned for 268 steps while
pruned: during fine-tuning from step 30 over 180 steps (``V_dyn``), or early, in the first 100 steps
(``V_pre``). Every run is evaluated on all 10,000 test images, and the paired comparisons use the same
statistics as protocol R (``results_common.paired``); the records behind the page's summary are written to
``docs/results/V/paired.json``. Like every protocol module, it reads only committed files.
"""

from __future__ import annotations

import csv
from typing import Any

import numpy as np

from results_common import (ROOT, accuracy, commits, design_pairs, design_table, diagnostics, load_runs, main_table,
                            paired, plot_curve, protocol_dir, verdict_summary, write_records)
from sevenprune.tasks.stats import format_points

DYN_ORDER = ["dense", "seven", "seven_nd", "platon", "magnitude"]
PRE_ORDER = ["seven_pre", "snip", "grasp", "magnitude_init"]
DYN_COMPARED = ["seven_nd", "platon", "magnitude", "dense"]  # SEVEN_dyn minus each
PRE_COMPARED = ["snip", "grasp", "magnitude_init", "dense"]  # SEVEN_pre minus each
TITLE, YLABEL = "Fashion-MNIST / ViT, protocol V", "accuracy (10,000 test images)"
HEADING = "**In short (protocol V, generated from the paired comparisons of docs/results.md, V):**"
PAPER = ROOT / "experiments" / "results" / "paper_figure_values.csv"
# the paper's ViT panel (ViT-B/32 on ImageNet, pruned early) and our names of its methods
PAPER_METHODS = {"SEVENpre": "seven_pre", "SNIP": "snip", "GraSP": "grasp"}


def paper_vit() -> dict[tuple[str, float], float]:
    """``{(method, sparsity): top-1}`` of the paper's ImageNet ViT-B/32 panel (values read off its figure;
    "~" marks a value read visually, which is kept; "<x", below the axis, is left out)."""
    out = {}
    with PAPER.open(encoding="utf-8") as f:
        rows = [r for r in csv.reader(line for line in f if not line.startswith("#"))]
    head = rows[0]
    for row in rows[1:]:
        if not row[0].startswith("ImageNet") or row[1] not in PAPER_METHODS:
            continue
        for col, value in zip(head[2:], row[2:]):
            if value and not value.startswith("<"):
                out[(PAPER_METHODS[row[1]], float(col.removeprefix("s")))] = float(value.lstrip("~"))
    return out


def paper_table(records: list[dict[str, Any]]) -> str:
    """SEVEN_pre minus SNIP and GraSP: the paper's ImageNet ViT-B/32 figure beside our paired differences."""
    paper = paper_vit()
    lines = ["| comparison | sparsity | paper (ImageNet, ViT-B/32), points "
             "| ours (Fashion-MNIST), points [95 % CI] | ours |", "|---|---|---|---|---|"]
    for r in records:
        key = (r["other"], r["sparsity"])
        if r["ours"] != "seven_pre" or key not in paper or ("seven_pre", r["sparsity"]) not in paper:
            continue
        gap = (paper[("seven_pre", r["sparsity"])] - paper[key]) * 100
        lines.append(f"| seven_pre − {r['other']} | {r['sparsity'] * 100:g} % | {gap:+.1f} | "
                     f"{format_points(r['mean'], r['low'], r['high'])} | {r['verdict']} |")
    return "\n".join(lines) if len(lines) > 2 else "(no comparison with the paper yet)"


def discount_summary(rows: list[dict[str, Any]]) -> str:
    """What SEVEN's noise discount changes on its own runs: at each recorded window step, the share of the
    entries SEVEN keeps that the first-order sum ``|W*G|`` of the same run would prune (``rescued``), as the
    diagnostics record it (``discount_effect``); per sparsity, its mean over seeds at the step where it is
    largest and at the last recorded step."""
    by: dict[float, dict[int, list[float]]] = {}
    for r in rows:
        if r["name"] != "seven" or not (d := diagnostics(r)):
            continue
        for e in d.get("discount_effect") or []:
            share = e["rescued"]["entries"] / (e["rescued"]["entries"] + e["kept_by_both"]["entries"])
            by.setdefault(float(r["target_sparsity"]), {}).setdefault(int(e["window_step"]), []).append(share)
    if not by:
        return "(no SEVEN run has recorded the discount's effect yet)"
    lines = ["| sparsity | runs | largest share of SEVEN's kept entries the first-order sum would prune (window step) "
             "| at the last recorded step (window step) |", "|---|---|---|---|"]
    for sparsity, steps in sorted(by.items()):
        means = {k: float(np.mean(v)) for k, v in steps.items()}
        top, last = max(means, key=lambda k: means[k]), max(means)
        lines.append(f"| {sparsity * 100:g} % | {max(len(v) for v in steps.values())} | {means[top] * 100:.2f} % ({top}) "
                     f"| {means[last] * 100:.2f} % ({last}) |")
    return "\n".join(lines)


def blocks() -> dict[str, str]:
    out: dict[str, str] = {}
    pretrain = load_runs(["V_pretrain"])
    if pretrain:
        r = pretrain[0]
        out["V_pretrain"] = (f"Pretrained ViT (dense, seed 1): accuracy {accuracy(r):.4f} on the 10,000 test images "
                             f"after {r['steps']} steps ({float(r['seconds']) / 60:.1f} min, one thread).")
    dyn = load_runs(["V_dyn"])
    pre = load_runs(["V_pre"])
    if not dyn and not pre:
        out["V_main"] = "(no finished protocol-V runs yet)"
        return out
    dense = [r for r in dyn if r["name"] == "dense"]
    rows = dyn + pre
    seconds = sum(float(r["seconds"]) for r in rows)
    out["V_main"] = (main_table(rows, DYN_ORDER + PRE_ORDER) + "\n\n"
                     + f"Mean ± sample sd of accuracy over seeds (seeds in brackets); {len(rows)} runs, "
                       f"{seconds / 60:.0f} min of compute (one thread each, two runs side by side). "
                       f"Code: commit(s) {', '.join(c[:10] for c in commits(rows + pretrain))}.\n\n"
                     + f"![protocol V]({plot_curve(rows, DYN_ORDER + PRE_ORDER, 'results_V.png', TITLE, YLABEL)})")
    tables, design, records_all = [], [], []
    for ours, others, group in (("seven", DYN_COMPARED, dyn), ("seven_pre", PRE_COMPARED, pre + dense)):
        if not any(r["name"] == ours for r in group):
            continue
        table, records = paired(group, ours, others)
        tables.append(table)
        design += design_pairs(group, ours, others, records)
        records_all += records
    out["V_paired"] = "\n\n".join(tables) if tables else "(no paired comparison yet)"
    out["V_design"] = design_table(design)
    out["V_paper"] = paper_table(records_all)
    out["V_discount"] = discount_summary(dyn)
    write_records(protocol_dir("V") / "paired.json", records_all)
    out["V_short"] = verdict_summary(records_all, rows, HEADING, (("seven", "SEVEN_dyn"), ("seven_pre", "SEVEN_pre")),
                                     against_dense=True)
    return out

