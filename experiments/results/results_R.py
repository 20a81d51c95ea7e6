"""Protocol R's tables and plots for docs/results.md, from the committed files in docs/results/R/.

Each run's summary (result.json, config.json, predictions.npz, diagnostics.json) is committed by
``experiments/results/R/collect_R.py``; the mask overlaps, which need the masks, are in
``docs/results/R/overlap.json``. Nothing here reads ``runs/`` or anything outside the repository, so a
fresh clone rebuilds the same bytes (the bootstrap is seeded; matplotlib's PNG metadata is fixed).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from sevenprune.tasks import diagnostics_plots as dplots
from sevenprune.tasks.stats import format_points, mcnemar, paired_bootstrap

ROOT = Path(__file__).resolve().parents[2]
R_DIR = ROOT / "docs" / "results" / "R"
IMG = ROOT / "docs" / "img"

DYN_ORDER = ["dense", "seven", "seven_nd", "platon", "movement", "soft_movement", "magnitude", "random"]
PRE_ORDER = ["dense", "seven_pre", "seven_pre_frozen", "snip", "grasp", "grasp_abs", "force", "magnitude_init",
             "random_init"]
DYN_SWEEPS = ["R_dyn80", "R_dyn90", "R_dyn50", "R_dyn70", "R_base80", "R_base90", "R_base50", "R_base70"]
PAPER_PRE_SWEEPS = ["R_pre80", "R_pre50", "R_pre90"]  # the methods of the paper's pruning-early panel
PRE_SWEEPS = PAPER_PRE_SWEEPS + ["R_grasp_abs"]  # R_grasp_abs: GraSP ranked by |W*Hg| (docs/methods.md)
LABELS = {"seven": "SEVEN_dyn", "seven_nd": "SEVEN, noise_discount=False", "platon": "PLATON (deltaT 10)",
          "movement": "movement (authors' form, per matrix)", "soft_movement": "soft movement (authors' form)",
          "magnitude": "gradual magnitude (per matrix)", "random": "random", "dense": "dense",
          "seven_pooler": "SEVEN_dyn, pooler included (R.2)", "platon_pooler": "PLATON, pooler included (R.2)",
          "grasp_abs": "grasp, variant=abs (\\|W*Hg\\|)",
          "seven_opt": "SEVEN_dyn, moments=optimizer (AdamW's)",
          "seven_opt_bf16": "SEVEN_dyn, moments=optimizer, bf16 score"}
OPT_ORDER = ["dense", "seven", "seven_opt", "seven_opt_bf16", "seven_nd"]
POOLER_ORDER = ["seven_pooler", "platon_pooler"]
N_BOOT = 4000


# -- loading ---------------------------------------------------------------------------------------
def load_runs(sweeps: list[str]) -> list[dict[str, Any]]:
    """Every committed run of ``sweeps``: result.json plus ``run``, ``sweep``, ``name`` (method label)."""
    rows = []
    for sweep in sweeps:
        for result in sorted((R_DIR / sweep).glob("*/result.json")):
            r = json.loads(result.read_text(encoding="utf-8"))
            r["run"] = result.parent.name
            r["sweep"] = sweep
            r["name"] = r["run"].split("-s")[0]  # the variant: "seven_nd-s0.8-seed1", "dense-seed2"
            r["dir"] = result.parent
            rows.append(r)
    return rows


def correct(row: dict[str, Any]) -> np.ndarray:
    with np.load(row["dir"] / "predictions.npz") as p:
        return (p["test.pred"] == p["test.label"]).astype(np.int8)


def diagnostics(row: dict[str, Any]) -> dict[str, Any] | None:
    path = row["dir"] / "diagnostics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _acc(r: dict[str, Any]) -> float:
    return float(r["metrics"]["accuracy"])


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    sd = f" ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else ""
    return f"{np.mean(values):.3f}{sd} ({len(values)})"


# -- tables ------------------------------------------------------------------------------------------
def main_table(rows: list[dict[str, Any]], order: list[str]) -> str:
    """Mean ± sample sd of accuracy (seeds in brackets), method x sparsity; dense in every column."""
    sparsities = sorted({float(r["target_sparsity"]) for r in rows if r["name"] != "dense"})
    names = [m for m in order if any(r["name"] == m for r in rows)]
    lines = ["| method | " + " | ".join(f"{s * 100:g} %" for s in sparsities) + " |",
             "|---|" + "---|" * len(sparsities)]
    for m in names:
        if m == "dense" or m.startswith("dense_"):  # dense variants (S study): one value for every column
            cell = _cell([_acc(r) for r in rows if r["name"] == m])
            lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(cell for _ in sparsities) + " |")
            continue
        cells = [_cell([_acc(r) for r in rows if r["name"] == m and float(r["target_sparsity"]) == s])
                 for s in sparsities]
        lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired(rows: list[dict[str, Any]], ours: str, others: list[str],
           sentences: str = "independent") -> tuple[str, list[dict[str, Any]]]:
    """``ours - other`` per sparsity on the seeds both have: bootstrap interval, verdict, McNemar per seed.

    ``sentences``: the bootstrap's sentence design (``sevenprune.tasks.stats``); the page's tables
    use the default, :func:`design_table` the other one beside it."""
    by = {(r["name"], float(r["target_sparsity"]), int(r["seed"])): r for r in rows}
    dense = {(r["name"], int(r["seed"])): r for r in rows if r["name"].startswith("dense")}
    sparsities = sorted({s for (m, s, _) in by if m == ours})
    lines = ["| comparison | sparsity | seeds | difference, points [95 % CI] | verdict | McNemar p per seed |",
             "|---|---|---|---|---|---|"]
    records = []
    for other in others:
        for s in sparsities:
            seeds = sorted(k for (m, s2, k) in by if m == ours and s2 == s
                           and ((other, s, k) in by or (other, k) in dense))
            if not seeds:
                continue
            a = [correct(by[(ours, s, k)]) for k in seeds]
            b = [correct(dense[(other, k)] if (other, k) in dense else by[(other, s, k)]) for k in seeds]
            d = paired_bootstrap(a, b, n_boot=N_BOOT, seed=0, sentences=sentences)
            ps = ", ".join(f"{mcnemar(x, y):.2g}" for x, y in zip(a, b))
            lines.append(f"| {ours} − {other} | {s * 100:g} % | {len(seeds)} | {d.points()} | {d.verdict} | {ps} |")
            records.append({"ours": ours, "other": other, "sparsity": s, "seeds": len(seeds), "mean": d.mean,
                            "low": d.low, "high": d.high, "verdict": d.verdict})
    if not records:
        return f"(no paired comparison yet: {ours} has no finished run beside another method)", records
    return "\n".join(lines), records


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def difference_text(r: dict[str, Any]) -> str:
    """``+0.3 [-0.2, +0.9], 5 seeds``: a paired record's difference in points, its interval and seeds."""
    return f"{format_points(r['mean'], r['low'], r['high'])}, {_seeds(r['seeds'])}"


VERDICT_WORDS = {"ahead": "ahead of", "behind": "behind", "not separated": "not separated from"}


R_HEADING = "**In short (protocol R, generated from the paired comparisons of docs/results.md, R.1):**"


def verdict_summary(records: list[dict[str, Any]], rows: list[dict[str, Any]], heading: str = R_HEADING,
                    forms: tuple[tuple[str, str], ...] = (("seven", "SEVEN_dyn"),), against_dense: bool = False) -> str:
    """The page's summary, generated from the paired records so that it can never say more than they do.
    Worded to read the same on the page and in the README, which repeats it.

    One line per form of SEVEN (``forms``: run name, label) and sparsity: ``- At 80 %, SEVEN_dyn (0.841) is
    ahead of X (+1.0 [...], 3 seeds); ...``; the comparisons with dense only if ``against_dense``."""
    if not records:
        return "(no paired comparison yet)"
    lines = [heading]
    dense = [_acc(r) for r in rows if r["name"] == "dense"]
    if dense:
        lines.append(f"- Dense: {np.mean(dense):.3f} ({_seeds(len(dense))}).")
    for ours, label in forms:
        for s in sorted({r["sparsity"] for r in records if r["ours"] == ours}):
            acc = [_acc(r) for r in rows if r["name"] == ours and float(r["target_sparsity"]) == s]
            parts = [f"{VERDICT_WORDS[r['verdict']]} {r['other']} ({difference_text(r)})" for r in records
                     if r["ours"] == ours and r["sparsity"] == s and (against_dense or r["other"] != "dense")]
            if parts:
                lines.append(f"- At {s * 100:g} %, {label} ({np.mean(acc):.3f}) is " + "; ".join(parts) + ".")
    seeds = sorted({r["seeds"] for r in records})
    span = f"{seeds[0]}-{seeds[-1]}" if seeds[0] != seeds[-1] else f"{seeds[0]}"
    lines.append("- \"Ahead\" and \"behind\" mean that the 95 % interval of the paired difference excludes 0; "
                 f"with {span} seeds, \"not separated\" is the usual answer for gaps of a point "
                 "or two.")
    return "\n".join(lines)


def design_table(pairs: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> str:
    """Every comparison under both bootstrap designs: how many verdicts change, and which.

    ``pairs``: (label, record with sentences redrawn per seed, record with one draw shared by all seeds),
    each record holding ``mean``, ``low``, ``high`` and ``verdict``. The protocol's 2,000 test sentences
    are the same in every seed, so a sentence one method gets right in every seed is one sentence: the
    shared design counts it once (see ``sevenprune.tasks.stats``)."""
    if not pairs:
        return "(no paired comparison yet)"
    def ci(r: dict[str, Any]) -> str:
        return format_points(r["mean"], r["low"], r["high"])

    ratios = [(s["high"] - s["low"]) / (i["high"] - i["low"]) for _, i, s in pairs if i["high"] > i["low"]]
    changed = [(label, i, s) for label, i, s in pairs if i["verdict"] != s["verdict"]]
    separated = sum(i["verdict"] != "not separated" for _, i, _ in pairs)
    head = (f"{len(pairs)} comparisons, {separated} of them ahead or behind with the sentences redrawn per seed; "
            f"with one sentence draw shared by every seed, {len(changed)} verdict"
            f"{'s' if len(changed) != 1 else ''} change"
            f"{'' if len(changed) != 1 else 's'}. Interval width, shared / per seed: median "
            f"{np.median(ratios):.2f}, range {min(ratios):.2f}-{max(ratios):.2f} "
            f"({len(ratios)} comparisons with a non-zero interval).")
    if not changed:
        return head
    lines = [head, "", "| comparison | per seed: points [95 % CI] | verdict | shared: points [95 % CI] | verdict |",
             "|---|---|---|---|---|"]
    lines += [f"| {label} | {ci(i)} | {i['verdict']} | {ci(s)} | {s['verdict']} |" for label, i, s in changed]
    return "\n".join(lines)


def _design_pairs(rows: list[dict[str, Any]], ours: str, others: list[str],
                  records: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``paired``'s records beside the same comparisons with the shared sentence design."""
    shared = paired(rows, ours, others, sentences="shared")[1]
    return [(f"{i['ours']} − {i['other']}, {i['sparsity'] * 100:g} %", i, s) for i, s in zip(records, shared)]


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


def discount_table(rows: list[dict[str, Any]]) -> str:
    """SEVEN's ranking against the first-order sum on the same run: what the noise discount changes."""
    lines = ["| run | window step | kept by SEVEN only (rescued): entries, mean m_hat/r_hat | kept by the sum only "
             "(dropped): entries, mean m_hat/r_hat | still kept entries: mean m_hat/r_hat | Jaccard of the two sets |",
             "|---|---|---|---|---|---|"]

    def mean(x: dict[str, Any]) -> str:
        return f"{x['ratio_mean']:.3f}" if x["ratio_mean"] is not None else "-"

    for r in rows:
        if r["name"] != "seven" or not (d := diagnostics(r)) or not d.get("discount_effect"):
            continue
        effects = d["discount_effect"]
        if isinstance(effects, dict):  # the first form (one comparison among the kept entries): not shown
            continue
        for e in effects:
            lines.append(f"| {r['run']} | {e['window_step']} | {e['rescued']['entries']:,}, {mean(e['rescued'])} | "
                         f"{e['dropped']['entries']:,}, {mean(e['dropped'])} | {mean(e['alive'])} | "
                         f"{e['jaccard_kept']:.3f} |")
    return "\n".join(lines) if len(lines) > 2 else "(no SEVEN run has recorded it yet: it is recorded by runs made from commit 05617c015a on)"


def _method_of(sweep: str, run: str) -> str:
    """The method a committed run stands for in the mask tables: the pooler control's runs
    (``R_pooler80``, another target set) are ``<method>_pooler``."""
    method = run.split("-s")[0]
    return f"{method}_pooler" if sweep.startswith("R_pooler") else method


def _frac(v: list[float]) -> str:
    return f"{np.mean(v) * 100:.1f} %" + (f" ± {np.std(v, ddof=1) * 100:.1f}" if len(v) > 1 else "") if v else "-"


# -- plots -------------------------------------------------------------------------------------------
def _plt() -> Any:
    return dplots._pyplot()


def _save(fig: Any, name: str) -> str:
    dplots._save(fig, IMG / name)
    return f"img/{name}"


def plot_curve(rows: list[dict[str, Any]], order: list[str], name: str, title: str,
               ylabel: str = "accuracy (2,000 test sentences)") -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    dense = [_acc(r) for r in rows if r["name"] == "dense"]
    if dense:
        ax.axhline(float(np.mean(dense)), color="grey", ls="--", lw=1, label="dense")
    for m in order:
        pts = defaultdict(list)
        for r in rows:
            if r["name"] == m and m != "dense":
                pts[float(r["target_sparsity"])].append(_acc(r))
        if not pts:
            continue
        xs = sorted(pts)
        ys = [float(np.mean(pts[x])) for x in xs]
        err = [float(np.std(pts[x], ddof=1)) if len(pts[x]) > 1 else 0.0 for x in xs]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=LABELS.get(m, m))
    ax.set_xlabel("sparsity of the prunable weights")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _save(fig, name)


def plot_noise_discount(rows: list[dict[str, Any]], name: str) -> str | None:
    """SEVEN's m_hat/r_hat over the window: median per matrix kind, and the histogram at the last snapshot."""
    runs = [r for r in rows if r["name"] == "seven" and (d := diagnostics(r)) and d["snapshots"]
            and d["snapshots"][0].get("noise_discount")]
    if not runs:
        return None
    run = sorted(runs, key=lambda r: (abs(float(r["target_sparsity"]) - 0.8), r["seed"]))[0]
    d = diagnostics(run)
    assert d is not None
    dplots.plot_noise_discount(d, IMG / name, title=f"SEVEN's noise discount, {run['run']}")
    return f"img/{name}"


def plot_stability(rows: list[dict[str, Any]], order: list[str], sparsity: float, name: str) -> str | None:
    groups = {LABELS.get(m, m): [d for r in rows if r["name"] == m and float(r["target_sparsity"]) == sparsity
                                 and (d := diagnostics(r))] for m in order}
    if not any(groups.values()):
        return None
    dplots.plot_stability({k: v for k, v in groups.items() if v}, IMG / name,
                          title=f"How early each method's ranking settles ({sparsity * 100:g} %)")
    return f"img/{name}"


def plot_layers(rows: list[dict[str, Any]], order: list[str], sparsity: float, name: str) -> str | None:
    groups = {LABELS.get(m, m): [r["layers"] for r in rows if r["name"] == m
                                 and float(r["target_sparsity"]) == sparsity and r["layers"]] for m in order}
    if not any(groups.values()):
        return None
    dplots.plot_layer_sparsity({k: v for k, v in groups.items() if v}, IMG / name,
                               title=f"Per-matrix sparsity at {sparsity * 100:g} % overall (mean over seeds)")
    return f"img/{name}"


def plot_overlap(name: str) -> tuple[str | None, str]:
    path = R_DIR / "overlap.json"
    if not path.exists():
        return None, ""
    data = json.loads(path.read_text(encoding="utf-8"))
    key = next((k for k in sorted(data) if k.startswith("s0.8-seed1")), None) or next(iter(sorted(data)), None)
    if key is None:
        return None, ""
    pairs = {p.replace(" | ", " vs "): v for p, v in data[key].items() if "seven" in p}
    if not pairs:
        return None, ""
    plt = _plt()
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
    return _save(fig, name), f"Run set {key}.\n\n" + "\n".join(lines)


def magnitude_overlap_table(order: list[str]) -> str:
    """How much of each method's kept set the pretrained weights' magnitude alone would have kept."""
    path = R_DIR / "magnitude_overlap.json"
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
    """Each method's final masks applied to the pretrained model, without fine-tuning (collect_R.py):
    how close its sentence embeddings stay to the unpruned model's, and how well a linear probe reads
    the sentiment from them."""
    path = R_DIR / "pretrained_function.json"
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
    commits = sorted({json.loads((r["dir"] / "config.json").read_text())["code"].get("git_commit") or "?"
                      for r in dyn})
    out["R_table"] = main_table(dyn, DYN_ORDER)  # the README's copy (README_BLOCKS in make_results.py)
    out["R_main"] = (out["R_table"] + "\n\n"
                     + f"Mean ± sample sd of accuracy over seeds (seeds in brackets); {len(dyn)} runs, "
                       f"{seconds / 3600:.1f} h of compute (one thread each, two runs side by side). "
                       f"Code: commit(s) {', '.join(c[:10] for c in commits)}.\n\n"
                     + f"![protocol R]({plot_curve(dyn, DYN_ORDER, 'results_R_dyn.png', 'mr / MiniLM, protocol R')})")
    table, records = paired(dyn, "seven", ["seven_nd", "platon", "movement", "soft_movement", "magnitude", "random",
                                           "dense"])
    out["R_paired"] = table
    design = _design_pairs(dyn, "seven", ["seven_nd", "platon", "movement", "soft_movement", "magnitude", "random",
                                          "dense"], records)
    out["R_short"] = verdict_summary(records, dyn)
    (R_DIR / "paired.json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")
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
        comparisons = [paired(rows, arm, ["seven", "seven_nd"])[0] for arm in ("seven_opt", "seven_opt_bf16")
                       if any(r["name"] == arm for r in opt)]
        tables = [c.splitlines() for c in comparisons if c.startswith("|")]
        paired_rows = tables[0] + [line for t in tables[1:] for line in t[2:]] if tables else []
        out["R_opt"] = main_table(rows, OPT_ORDER) + "\n\n" + "\n".join(paired_rows)
    pre = load_runs(PRE_SWEEPS)
    if pre:
        pre += [r for r in dyn if r["name"] == "dense"]
        out["R_pre"] = main_table(pre, PRE_ORDER)
        others = [m for m in PRE_ORDER[2:] if any(r["name"] == m for r in pre)] + ["dense"]  # as R_paired
        out["R_pre_paired"], pre_records = paired(pre, "seven_pre", others)
        design += _design_pairs(pre, "seven_pre", others, pre_records)
        if any(r["name"] == "grasp_abs" for r in pre):  # the magnitude form of GraSP against SNIP (R.3)
            out["R_grasp_abs_snip"] = paired(pre, "grasp_abs", ["snip"])[0]
        layers = plot_layers(pre, PRE_ORDER, 0.8, "results_R_layers_pre.png")
        if layers:
            out["R_pre_layers"] = f"![per-matrix sparsity, pruning early]({layers})"
    start = grasp_start_table()
    if start:
        out["R_grasp_start"] = start
    out["R_design"] = design_table(design)
    return out


def grasp_start_table() -> str | None:
    """``docs/results/grasp_start.json`` (experiments/grasp_start.py): 50 % masks on the pretrained model,
    no fine-tuning, and the distribution of GraSP's S."""
    path = R_DIR.parent / "grasp_start.json"
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
