"""Protocol R's tables and plots for docs/results.md (sections R.1-R.5), from the committed files in
docs/results/R/.

Each run's summary (result.json, config.json, predictions.npz, diagnostics.json) is committed by
``experiments/results/collect.py``; the mask overlaps, which need the masks, are in
``docs/results/R/overlap.json``. The paired records behind the summaries are written to
``docs/results/R/paired.json`` (SEVEN_dyn) and ``paired_pre.json`` (SEVEN_pre). Reading, statistics and
plots are ``results_common``'s; nothing here reads ``runs/``.
"""

from __future__ import annotations

import csv
import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

import results_common as common
from results_common import (LABELS, accuracy, cell, commits, design_pairs, design_table, diagnostics,
                            difference_text, discount_table,
                            load_runs, main_table, paired, plot_curve, protocol_dir, pyplot, save_figure,
                            verdict_summary, write_records)
from sevenprune.tasks import diagnostics_plots as dplots
from sevenprune.tasks.report import arm_of_run

DYN_ORDER = ["dense", "seven", "seven_nd", "platon", "movement", "soft_movement", "magnitude", "random"]
PRE_ORDER = ["dense", "seven_pre", "seven_pre_frozen", "snip", "grasp", "grasp_abs", "force", "magnitude_init",
             "random_init"]
DYN_SWEEPS = ["R_dyn80", "R_dyn90", "R_dyn50", "R_dyn70", "R_base80", "R_base90", "R_base50", "R_base70"]
PAPER_PRE_SWEEPS = ["R_pre80", "R_pre50", "R_pre90"]  # the methods of the paper's pruning-early panel
PRE_SWEEPS = PAPER_PRE_SWEEPS + ["R_grasp_abs"]  # R_grasp_abs: GraSP ranked by |W*Hg| (docs/methods.md)
OPT_ORDER = ["dense", "seven", "seven_opt", "seven_opt_bf16", "seven_nd"]
POOLER_ORDER = ["seven_pooler", "platon_pooler"]
PAPER = common.ROOT / "experiments" / "results" / "paper_figure_values.csv"  # values read off the paper's figures
R_HEADING = "**In short (protocol R, generated from the paired comparisons of docs/results.md, R.1):**"


def cost_table(rows: list[dict[str, Any]], order: list[str]) -> str:
    """Pruner time per window step relative to the rest of the step, and bytes of state per weight."""
    lines = ["| method | pruner.step() / rest of a window step | state, bytes per prunable weight (peak) | runs |",
             "|---|---|---|---|"]
    for m in order:
        runs = [r for r in rows if r["name"] == m and r.get("window_steps")]
        if not runs:
            continue
        ratios = [r["pruner_seconds"] / max(1e-9, r["window_seconds"] - r["pruner_seconds"]) for r in runs]
        peaks = [d["state_bytes_per_weight_peak"] for r in runs if (d := diagnostics(r)) and
                 d.get("state_bytes_per_weight_peak") is not None]
        peak = f"{np.median(peaks):g}" if peaks else "-"
        lines.append(f"| {LABELS.get(m, m)} | {np.median(ratios) * 100:.1f} % (median) | {peak} | {len(runs)} |")
    return "\n".join(lines)


def _classes(d: dict[str, Any], label: str) -> dict[str, Any]:
    """The persistent/transient classes of one top set (early runs recorded only the 1 % set, flat)."""
    c = d.get("top_classes", {})
    if "persistent" in c or "transient" in c:  # the first format: one set, the top 1 %
        return c if label == "0.01" else {}
    return c.get(label, {})


def sentinel_table(rows: list[dict[str, Any]], order: list[str], label: str = "keep") -> str:
    """Of the entries at the top of |W*G| at the snapshots: how many the final mask keeps, by class."""
    lines = ["| method | sparsity | persistent top entries kept | transient top entries kept | runs |",
             "|---|---|---|---|---|"]
    for m in order:
        for s in sorted({float(r["target_sparsity"]) for r in rows if r["name"] == m}):
            per, tra = [], []
            for r in rows:
                if r["name"] != m or float(r["target_sparsity"]) != s or not (d := diagnostics(r)):
                    continue
                c = _classes(d, label)
                if c.get("persistent", {}).get("kept_fraction") is not None:
                    per.append(c["persistent"]["kept_fraction"])
                if c.get("transient", {}).get("kept_fraction") is not None:
                    tra.append(c["transient"]["kept_fraction"])
            if per or tra:
                lines.append(f"| {LABELS.get(m, m)} | {s * 100:g} % | {_frac(per)} | {_frac(tra)} | {len(per)} |")
    return "\n".join(lines) if len(lines) > 2 else "(no run has recorded this set yet)"


#: a two-class accuracy this close to 0.5 is called "at chance" in the generated readings (one class predicted
#: everywhere gives 0.487 or 0.513 on protocol R's test split)
CHANCE_BAND = 0.02


def pace_reading(pace: list[dict[str, Any]], dyn: list[dict[str, Any]], records: list[dict[str, Any]]) -> str:
    """The generated reading of movement at its authors' pace: against protocol R's movement (another
    budget: beside it, not paired) and against dense at the same two epochs (paired, where both ran)."""
    lines = []
    for s in sorted({float(r["target_sparsity"]) for r in pace if r["name"] == "movement"}):
        slow = [accuracy(r) for r in pace if r["name"] == "movement" and float(r["target_sparsity"]) == s]
        fast = [accuracy(r) for r in dyn if r["name"] == "movement" and float(r["target_sparsity"]) == s]
        seven = [accuracy(r) for r in dyn if r["name"] == "seven" and float(r["target_sparsity"]) == s]
        at_chance = sum(abs(a - 0.5) <= CHANCE_BAND for a in slow)
        line = (f"- {s * 100:g} %: movement at its authors' pace {cell(slow)}, {at_chance} of {len(slow)} "
                f"run{'s' if len(slow) != 1 else ''} at chance (within {CHANCE_BAND * 100:g} points of 0.5); at protocol "
                f"R's pace {cell(fast)}, where SEVEN_dyn reaches {cell(seven)} (268 steps: another budget, not paired)")
        against = [r for r in records if r["sparsity"] == s]
        line += (f"; against dense at the same 536 steps: {against[0]['verdict']} ({difference_text(against[0])})."
                 if against else "; dense at the same 536 steps: not run yet on these seeds.")
        lines.append(line)
    return "\n".join(lines)


def opt_reading(records: list[dict[str, Any]]) -> str:
    """The generated reading of R.2b: each optimizer form against the default form, and the advice the
    issue asked for (recommend it where memory is short if it is not separated from the default)."""
    lines = []
    for arm, nbytes in (("seven_opt", 5), ("seven_opt_bf16", 3)):
        against = [r for r in records if r["ours"] == arm and r["other"] == "seven"]
        if not against:
            continue
        cells = "; ".join(f"{r['sparsity'] * 100:g} %: {r['verdict']} ({difference_text(r)})" for r in against)
        label = "`moments=\"optimizer\"`" + (" with a bf16 score" if arm.endswith("bf16") else "")
        line = f"- {label} against the default form: {cells}."
        if min(r["seeds"] for r in against) < 3:
            line += " Fewer than three seeds: no advice yet."
        elif all(r["verdict"] == "not separated" for r in against):
            line += (f" Not separated at any sparsity measured: where memory is short, use it ({nbytes} bytes of "
                     "pruner state per weight instead of 13).")
        lines.append(line)
    return "\n\n" + "\n".join(lines) if lines else ""


def _method_of(sweep: str, run: str) -> str:
    """The method a committed run stands for in the mask tables: the pooler control's runs
    (``R_pooler80``, another target set) are ``<method>_pooler``."""
    method = arm_of_run(run, {"method": run})
    return f"{method}_pooler" if sweep.startswith("R_pooler") else method


def _frac(v: list[float]) -> str:
    return f"{np.mean(v) * 100:.1f} %" + (f" ± {np.std(v, ddof=1) * 100:.1f}" if len(v) > 1 else "") if v else "-"


def by_key(rows: list[dict[str, Any]], metric: str) -> dict[tuple[str, float, int], float]:
    """``{(method, sparsity, seed): metric}`` of runs read from result.json or the archive's CSVs."""
    return {(r["method"], float(r["target_sparsity"]), int(r["seed"])): float(r["metrics"][metric]) for r in rows}


def paper_table(ours: list[dict[str, Any]], metric: str) -> str:
    """The paper's SST-2 drop from dense beside ours on mr (the SST-2 source sentences)."""
    paper: dict[str, dict[str, str]] = {}
    dense_paper = None
    with open(PAPER, encoding="utf-8") as f:
        header, *rows = csv.reader(line for line in f if not line.startswith("#"))
    sparsities = [h.removeprefix("s") for h in header[2:]]  # s0.1 ... s0.9
    for row in rows:
        if row[0].startswith("SST2"):
            paper[row[1]] = dict(zip(sparsities, row[2:]))
            found = re.search(r"dense (\.\d+)", row[0])  # the first row's label: SST2_acc(dense .921)
            dense_paper = float(found.group(1)) if found else dense_paper
    if dense_paper is None:
        raise SystemExit(f"{PAPER}: no SST-2 panel label with the dense accuracy")
    vals = by_key(ours, metric)
    dense_ours = float(np.mean([v for (m, _, _), v in vals.items() if m == "dense"]))
    names = [("SEVENpre", "seven_pre"), ("Magnitude", "magnitude_init"), ("SNIP", "snip"), ("GraSP", "grasp")]
    cols = ["0.5", "0.7", "0.8", "0.9"]
    lines = ["| method (paper / ours) | " + " | ".join(f"{float(c) * 100:g}%" for c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for pname, oname in names:
        cells = []
        for c in cols:
            raw = paper.get(pname, {}).get(c, "").strip()
            num = re.sub(r"[~<]", "", raw)
            p = f"{(float(num) - dense_paper) * 100:+.1f}" if num else "-"
            if raw.startswith("<"):
                p = "below " + p
            o = [v for (m, s, _), v in vals.items() if m == oname and abs(s - float(c)) < 1e-9]
            q = f"{(np.mean(o) - dense_ours) * 100:+.1f}" if o else "-"
            cells.append(f"{p} / {q}")
        lines.append(f"| {pname} / {oname} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- plots -------------------------------------------------------------------------------------------
def plot_noise_discount(rows: list[dict[str, Any]], name: str) -> str | None:
    """SEVEN's m_hat/r_hat over the window: median per matrix kind, and the histogram at the last snapshot."""
    runs = [r for r in rows if r["name"] == "seven" and (d := diagnostics(r)) and d["snapshots"]
            and d["snapshots"][0].get("noise_discount")]
    if not runs:
        return None
    run = sorted(runs, key=lambda r: (abs(float(r["target_sparsity"]) - 0.8), r["seed"]))[0]
    d = diagnostics(run)
    assert d is not None
    dplots.plot_noise_discount(d, common.IMG / name, title=f"SEVEN's noise discount, {run['run']}")
    return f"img/{name}"


def plot_stability(rows: list[dict[str, Any]], order: list[str], sparsity: float, name: str) -> str | None:
    groups = {LABELS.get(m, m): [d for r in rows if r["name"] == m and float(r["target_sparsity"]) == sparsity
                                 and (d := diagnostics(r))] for m in order}
    if not any(groups.values()):
        return None
    dplots.plot_stability({k: v for k, v in groups.items() if v}, common.IMG / name,
                          title=f"How early each method's ranking settles ({sparsity * 100:g} %)")
    return f"img/{name}"


def plot_layers(rows: list[dict[str, Any]], order: list[str], sparsity: float, name: str) -> str | None:
    groups = {LABELS.get(m, m): [r["layers"] for r in rows if r["name"] == m
                                 and float(r["target_sparsity"]) == sparsity and r["layers"]] for m in order}
    if not any(groups.values()):
        return None
    dplots.plot_layer_sparsity({k: v for k, v in groups.items() if v}, common.IMG / name,
                               title=f"Per-matrix sparsity at {sparsity * 100:g} % overall (mean over seeds)")
    return f"img/{name}"


def plot_overlap(name: str) -> tuple[str | None, str]:
    path = protocol_dir("R") / "overlap.json"
    if not path.exists():
        return None, ""
    data = json.loads(path.read_text(encoding="utf-8"))
    key = next((k for k in sorted(data) if k.startswith("s0.8-seed1")), None) or next(iter(sorted(data)), None)
    if key is None:
        return None, ""
    pairs = {p.replace(" | ", " vs "): v for p, v in data[key].items() if "seven" in p}
    if not pairs:
        return None, ""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.8))
    names: list[str] = []
    for pair, v in sorted(pairs.items()):
        names = list(v["layers"])
        ax.plot(range(len(names)), [v["layers"][n] for n in names], marker=".", label=f"{pair} (all {v['all']:.2f})")
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{dplots.layer_index(n)} {dplots.matrix_kind(n)}" for n in names], rotation=90, fontsize=6)
    ax.set_ylabel("Jaccard index of the kept sets")
    ax.set_title(f"Mask overlap with SEVEN per matrix ({key})")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    lines = ["| pair | Jaccard of the kept sets, all matrices |", "|---|---|"]
    lines += [f"| {p} | {v['all']:.3f} |" for p, v in sorted(pairs.items())]
    return save_figure(fig, name), f"Run set {key}.\n\n" + "\n".join(lines)


def magnitude_overlap_table(order: list[str]) -> str:
    """How much of each method's kept set the pretrained weights' magnitude alone would have kept."""
    path = protocol_dir("R") / "magnitude_overlap.json"
    if not path.exists():
        return ""
    data = json.loads(path.read_text(encoding="utf-8"))
    cells: dict[tuple[str, str], list[float]] = {}
    chance: dict[str, float] = {}
    for run, v in data.items():
        sweep, run_name = run.split("/", 1)
        name, _, rest = run_name.partition("-s")
        if not rest:
            continue
        sparsity = rest.split("-")[0]
        cells.setdefault((_method_of(sweep, run_name), sparsity), []).append(v["kept_in_pretrained_top_abs_w"])
        chance[sparsity] = v["kept_fraction"]
    known = [m for m in order if any(k[0] == m for k in cells)] + sorted({k[0] for k in cells} - set(order))
    lines = ["| method | sparsity | kept weights among the pretrained top-\\|W\\| (same count per matrix) "
             "| unrelated to magnitude (= kept fraction) | runs |", "|---|---|---|---|---|"]
    for m in known:
        for sparsity in sorted({k[1] for k in cells if k[0] == m}):
            v = cells[(m, sparsity)]
            lines.append(f"| {LABELS.get(m, m)} | {float(sparsity):.0%} | {float(np.mean(v)):.3f} | "
                         f"{chance[sparsity]:.3f} | {len(v)} |")
    return "\n".join(lines)


def pretrained_function_table(order: list[str]) -> str | None:
    """Each method's final masks applied to the pretrained model, without fine-tuning (collect.py):
    how close its sentence embeddings stay to the unpruned model's, and how well a linear probe reads
    the sentiment from them."""
    path = protocol_dir("R") / "pretrained_function.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    cells: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for key, v in data.items():
        if "/" not in key:
            continue
        sweep, run = key.split("/")
        if "-s" not in run or run.startswith("dense"):
            continue
        rest = run.split("-s", 1)[1]
        cells[(_method_of(sweep, run), rest.split("-")[0])].append(v)
    dense = data.get("dense (no mask)")
    columns = ("cosine_to_dense", "probe_accuracy", "layer_output_norm_ratio", "layer_output_cosine",
               "layer_output_unit_shift")
    lines = ["| final mask of | sparsity | embeddings: mean cosine to the unpruned model's | linear-probe accuracy "
             "| layers: \\|kept output\\| / \\|full output\\| | layers: cosine of kept and full output "
             "| layers: token-independent share of the kept output | runs |", "|---|---|---|---|---|---|---|---|"]
    if dense:
        lines.append(f"| (no mask: the pretrained model) | 0 % | 1.000 | {dense['probe_accuracy']:.3f} | 1.000 | 1.000 "
                     f"| - | - |")
        if "majority_class_rate" in dense:  # what a probe that always answers the larger class gets
            lines.append(f"| (the probe's majority-class rate) | - | - | {dense['majority_class_rate']:.3f} "
                         f"| - | - | - | - |")
    for m in order:
        for sparsity in sorted({k[1] for k in cells if k[0] == m}):
            v = cells[(m, sparsity)]
            values = [f"{np.mean([r[c] for r in v]):.3f}" if all(c in r for r in v) else "-" for c in columns]
            lines.append(f"| {LABELS.get(m, m)} | {float(sparsity):.0%} | " + " | ".join(values) + f" | {len(v)} |")
    return "\n".join(lines)


# -- the page's blocks ----------------------------------------------------------------------------------
def blocks() -> dict[str, str]:
    out: dict[str, str] = {}
    dyn = load_runs(DYN_SWEEPS)
    if not dyn:
        out["R_main"] = "(no finished protocol-R runs yet)"
        return out
    seconds = sum(float(r["seconds"]) for r in dyn)
    out["R_table"] = main_table(dyn, DYN_ORDER)  # also README.md's (make_results.readme_blocks, the same function)
    out["R_main"] = (out["R_table"] + "\n\n"
                     + f"Mean ± sample sd of accuracy over seeds (seeds in brackets); {len(dyn)} runs, "
                       f"{seconds / 3600:.1f} h of compute (one thread each, two runs side by side). "
                       f"Code: commit(s) {', '.join(c[:10] for c in commits(dyn))}.\n\n"
                     + f"![protocol R]({plot_curve(dyn, DYN_ORDER, 'results_R_dyn.png', 'mr / MiniLM, protocol R')})")
    table, records = paired(dyn, "seven", ["seven_nd", "platon", "movement", "soft_movement", "magnitude", "random",
                                           "dense"])
    out["R_paired"] = table
    design = design_pairs(dyn, "seven", ["seven_nd", "platon", "movement", "soft_movement", "magnitude", "random",
                                          "dense"], records)
    out["R_short"] = verdict_summary(records, dyn, R_HEADING)
    write_records(protocol_dir("R") / "paired.json", records)
    # only the top-1 % set: with the larger "keep" set, most entries at the top of an early snapshot are
    # pruned before the later ones (a pruned weight is zero, never at the top), so "transient" there
    # mostly means "pruned early" and says nothing about noise
    out["R_sentinels"] = sentinel_table(dyn, DYN_ORDER, "0.01")
    out["R_cost"] = cost_table(dyn, DYN_ORDER)
    out["R_discount"] = discount_table(dyn)
    figs = []
    for fig in (plot_noise_discount(dyn, "results_R_noise_discount.png"),
                plot_stability(dyn, DYN_ORDER, 0.8, "results_R_stability.png"),
                plot_layers(dyn, DYN_ORDER, 0.8, "results_R_layers.png")):
        if fig:
            figs.append(f"![{Path(fig).stem}]({fig})")
    overlap_fig, overlap_table = plot_overlap("results_R_overlap.png")
    if overlap_fig:
        figs.append(f"![mask overlap]({overlap_fig})")
    out["R_figures"] = "\n\n".join(figs) if figs else "(no diagnostics yet)"
    magnitude = magnitude_overlap_table(DYN_ORDER + PRE_ORDER + POOLER_ORDER)
    out["R_overlap"] = (overlap_table or "(no overlap data yet)") + (
        "\n\nHow much of each kept set the pretrained weights' magnitude alone would keep:\n\n" + magnitude
        if magnitude else "")
    function = pretrained_function_table(DYN_ORDER + PRE_ORDER[1:] + POOLER_ORDER)
    if function:
        out["R_function"] = function
    pooler = load_runs(["R_pooler80"])
    if pooler:  # the same methods with the pooler in the target set, beside the main table's runs
        for r in pooler:
            r["name"] = _method_of(r["sweep"], r["run"])
        rows = pooler + [r for r in dyn if r["name"] in ("seven", "platon", "dense")
                         and float(r["target_sparsity"]) in (0.0, 0.8)]
        comparisons = [paired(rows, f"{m}_pooler", [m])[0] for m in ("seven", "platon")
                       if any(r["name"] == f"{m}_pooler" for r in pooler)]
        tables = [c.splitlines() for c in comparisons if c.startswith("|")]
        paired_rows = tables[0] + [line for t in tables[1:] for line in t[2:]] if tables else []  # one header
        out["R_pooler"] = (main_table(rows, ["dense", "seven", "seven_pooler", "platon", "platon_pooler"]) + "\n\n"
                           + "\n".join(paired_rows))
    opt = load_runs(["R_opt"])
    if opt:  # issue 40: the optimizer's moments against SEVEN's own and its control, paired by seed
        rows = opt + [r for r in dyn if r["name"] in ("seven", "seven_nd", "dense")
                      and float(r["target_sparsity"]) in (0.0, 0.8, 0.9)]
        results = [paired(rows, arm, ["seven", "seven_nd"]) for arm in ("seven_opt", "seven_opt_bf16")
                   if any(r["name"] == arm for r in opt)]
        tables = [c.splitlines() for c, _ in results if c.startswith("|")]
        paired_rows = tables[0] + [line for t in tables[1:] for line in t[2:]] if tables else []
        opt_records = [rec for _, recs in results for rec in recs]
        write_records(protocol_dir("R") / "paired_opt.json", opt_records)
        out["R_opt"] = main_table(rows, OPT_ORDER) + "\n\n" + "\n".join(paired_rows) + opt_reading(opt_records)
    pre = load_runs(PRE_SWEEPS)
    if pre:
        pre += [r for r in dyn if r["name"] == "dense"]
        out["R_pre"] = main_table(pre, PRE_ORDER)
        # beside the paper's SST-2 panel: drops from dense, ours from protocol R's dense; each sparsity's
        # column fills in as its runs land
        paper_rows = load_runs(PAPER_PRE_SWEEPS) + [r for r in load_runs(["R_dyn80"]) if r["name"] == "dense"]
        out["R_paper"] = paper_table(paper_rows, "accuracy")
        others = [m for m in PRE_ORDER[2:] if any(r["name"] == m for r in pre)] + ["dense"]  # as R_paired
        out["R_pre_paired"], pre_records = paired(pre, "seven_pre", others)
        write_records(protocol_dir("R") / "paired_pre.json", pre_records)
        design += design_pairs(pre, "seven_pre", others, pre_records)
        if any(r["name"] == "grasp_abs" for r in pre):  # the magnitude form of GraSP against SNIP (R.3)
            out["R_grasp_abs_snip"] = paired(pre, "grasp_abs", ["snip"])[0]
        layers = plot_layers(pre, PRE_ORDER, 0.8, "results_R_layers_pre.png")
        if layers:
            out["R_pre_layers"] = f"![per-matrix sparsity, pruning early]({layers})"
    pace = load_runs(["R_movement_pace"])  # movement at its authors' pace: two epochs, pruning in the second
    if pace:
        table, pace_records = paired(pace, "movement", ["dense"])
        out["R_movement_pace"] = (main_table(pace, ["dense", "movement"]) + "\n\n" + table + "\n\n"
                                  + pace_reading(pace, dyn, pace_records))
    else:
        out["R_movement_pace"] = ("(not run yet: `bash experiments/results/R/run_R.sh pace`, then "
                                  "`python experiments/results/collect.py`)")
    start = grasp_start_table()
    if start:
        out["R_grasp_start"] = start
    out["R_design"] = design_table(design)
    return out


def grasp_start_table() -> str | None:
    """``docs/results/R/grasp_start.json`` (experiments/results/R/grasp_start.py): 50 % masks on the pretrained model,
    no fine-tuning, and the distribution of GraSP's S."""
    path = protocol_dir("R") / "grasp_start.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    lines = ["| 50 % mask, no fine-tuning | embeddings: mean cosine to the unpruned model's | linear-probe accuracy |",
             "|---|---|---|",
             f"| (no mask) | 1.000 | {data['dense']['probe_accuracy']:.3f} |"]
    for name, v in data["masks"].items():
        lines.append(f"| {name} | {v['cosine_to_dense']:.3f} | {v['probe_accuracy']:.3f} |")
    s = data["S"]
    lines.append("")
    lines.append(f"GraSP's S = -W*Hg over the {s['weights']:,} prunable weights (temperature 1): "
                 f"{s['fraction_positive']:.1%} positive, {s['fraction_zero']:.1%} exactly zero, median "
                 f"{s['median']:.1e} against a median |S| of {s['median_abs']:.1e}.")
    return "\n".join(lines)
