"""The fine-tuning-strategy study (docs/results.md, section S), from the committed files in docs/results/S/
and protocol R's reference runs in docs/results/R/.

Each factor is protocol R at 80 % with one thing changed (``experiments/results/S/make_configs.py``);
the protocol's own runs (``R_dyn80``, ``R_base80``) are the reference level of every factor (batch 32,
AdamW at 1e-4, constant schedule). For every factor: one table of accuracy per method and level, the
paired differences of SEVEN against each method at each level, and one plot of accuracy against the
factor. The pooled comparisons behind the page's summary are written to ``docs/results/S/pooled.json``.
Like every protocol module, it reads only committed files (``results_common``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

import results_common as common
from results_common import (LABELS, accuracy, cell, correct, design_table, difference_text, discount_table,
                            load_runs, protocol_dir, pyplot, save_figure, write_records)
from sevenprune.tasks.stats import format_points, mcnemar, paired_bootstrap, pooled_paired_bootstrap

METHODS = ["dense", "seven", "seven_nd", "platon", "magnitude"]
COMPARED = ["seven_nd", "platon", "magnitude", "dense"]  # SEVEN minus each of these, level by level
SPARSITY = 0.8
SEARCH = "S_lr_dense"  # the dense learning-rate search for the optimizers other than AdamW


@dataclass(frozen=True)
class Factor:
    """One axis of the study: its sweep, and its levels as (label, variant suffix; None = protocol R)."""

    key: str
    title: str
    sweep: str
    levels: tuple[tuple[str, str | None], ...]
    # the dense cells come from the dense learning-rate search's run at the rate the sweep used (the same
    # run: not made twice), unless the sweep made its own dense run at that seed
    dense_from_search: bool = False


FACTORS = (
    Factor("batch", "batch size (same training examples seen)", "S_batch80",
           (("8", "b8"), ("32", None), ("128", "b128"))),
    Factor("lr", "AdamW learning rate", "S_lr80",
           (("3e-5 (x0.3)", "lr0.3x"), ("1e-4 (x1)", None), ("3e-4 (x3)", "lr3x"))),
    Factor("schedule", "learning-rate schedule", "S_sched80",
           (("constant", None), ("linear decay, 10 % warm-up", "linear"))),
    Factor("optimizer", "optimizer (each at the rate found on the dense model)", "S_optim80",
           (("AdamW", None), ("SGD, momentum 0.9", "sgd"), ("Adafactor", "adafactor")), dense_from_search=True),
)


def _split(run: str) -> tuple[str, str | None]:
    """``seven_nd_b8-s0.8-seed1`` -> ("seven_nd", "b8"); ``dense-seed2`` -> ("dense", None)."""
    variant = run.split("-s0")[0] if "-s0" in run else run.rsplit("-seed", 1)[0]
    for m in sorted(METHODS, key=len, reverse=True):  # seven_nd before seven
        if variant == m:
            return m, None
        if variant.startswith(m + "_"):
            return m, variant[len(m) + 1:]
    return variant, None


def _reference(factor: Factor) -> str:
    return next(label for label, suffix in factor.levels if suffix is None)


def _search_run(run: str) -> tuple[str, float]:
    """``sgd_lr0.03-seed1`` -> ("sgd", 0.03): a run of the dense learning-rate search."""
    optimizer, lr = run.rsplit("-seed", 1)[0].split("_lr")
    return optimizer, float(lr)


def chosen_rates(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Optimizer -> the learning rate ``runs`` were made at, from each run's own config.json."""
    rates: dict[str, float] = {}
    for r in runs:
        config = json.loads((r["dir"] / "config.json").read_text(encoding="utf-8"))
        if config.get("optimizer", "adamw") != "adamw":
            rates.setdefault(config["optimizer"], float(config["lr"]))
    return rates


def _used(optimizer: str, lr: float, rates: dict[str, float]) -> bool:
    """Whether the search's run at (optimizer, lr) is at the rate the study used."""
    return optimizer in rates and bool(np.isclose(lr, rates[optimizer]))


def search_as_dense(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The search's dense runs at the rates ``runs`` used, named as that level's dense cell (``dense_sgd-seed1``)."""
    rates = chosen_rates(runs)
    have = {r["run"] for r in runs}
    out = []
    for r in load_runs([SEARCH]):
        optimizer, lr = _search_run(r["run"])
        name = f"dense_{optimizer}-seed{r['seed']}"
        if _used(optimizer, lr, rates) and name not in have:
            out.append({**r, "run": name})
    return out


def factor_rows(factor: Factor, reference: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The factor's runs with ``name`` the method and ``level`` the level's label, reference level included."""
    by_suffix = {suffix: label for label, suffix in factor.levels}
    runs = load_runs([factor.sweep])
    if factor.dense_from_search:
        runs += search_as_dense(runs)
    rows = []
    for r in reference + runs:
        method, suffix = _split(r["run"])
        if method not in METHODS or suffix not in by_suffix:
            continue
        if method != "dense" and float(r["target_sparsity"]) != SPARSITY:
            continue
        rows.append({**r, "name": method, "level": by_suffix[suffix]})
    return rows


def level_table(factor: Factor, rows: list[dict[str, Any]]) -> str:
    """Accuracy, mean ± sample sd over seeds (seeds in brackets), method x level."""
    levels = [label for label, _ in factor.levels]
    lines = [f"| method | " + " | ".join(levels) + " |", "|---|" + "---|" * len(levels)]
    for m in METHODS:
        cells = [cell([accuracy(r) for r in rows if r["name"] == m and r["level"] == lv]) for lv in levels]
        if any(c != "-" for c in cells):
            lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_records(factor: Factor, rows: list[dict[str, Any]], sentences: str = "independent") -> list[dict[str, Any]]:
    """SEVEN minus each compared method at each level, on the seeds both have (``sentences``: the
    bootstrap's sentence design, as in ``results_common.paired``)."""
    by = {(r["name"], r["level"], int(r["seed"])): r for r in rows}
    records = []
    for other in COMPARED:
        for label, _ in factor.levels:
            seeds = sorted(k for (m, lv, k) in by if m == "seven" and lv == label and (other, label, k) in by)
            if not seeds:
                continue
            a = [correct(by[("seven", label, k)]) for k in seeds]
            b = [correct(by[(other, label, k)]) for k in seeds]
            d = paired_bootstrap(a, b, n_boot=common.N_BOOT, seed=0, sentences=sentences)
            records.append({"factor": factor.key, "level": label, "reference": label == _reference(factor), "other": other, "seeds": len(seeds),
                            "mean": d.mean, "low": d.low, "high": d.high, "verdict": d.verdict,
                            "points": d.points(), "mcnemar": [mcnemar(x, y) for x, y in zip(a, b)]})
    return records


def paired_table(factor: Factor, records: list[dict[str, Any]]) -> str:
    lines = [f"| comparison | {factor.key} | seeds | difference, points [95 % CI] | verdict | McNemar p per seed |",
             "|---|---|---|---|---|---|"]
    for r in records:
        ps = ", ".join(f"{p:.2g}" for p in r["mcnemar"])
        lines.append(f"| seven − {r['other']} | {r['level']} | {r['seeds']} | {r['points']} | {r['verdict']} | {ps} |")
    return "\n".join(lines)


def summary(records: list[dict[str, Any]]) -> str:
    """One line per comparison: the verdict at each level of each factor, generated from the intervals."""
    if not records:
        return "(no paired comparison yet)"
    lines = ["**In short (generated from the paired comparisons of every factor below):**"]
    def verdict(r: dict[str, Any]) -> str:
        return f"{r['verdict']} ({difference_text(r)})"

    for other in COMPARED:
        ours = [r for r in records if r["other"] == other]
        # protocol R is every factor's reference level: said once, first
        parts = [f"protocol R: {verdict(r)}" for r in ours if r["reference"]][:1]
        parts += [f"{r['factor']} {r['level']}: {verdict(r)}" for r in ours if not r["reference"]]
        if parts:
            lines.append(f"- SEVEN − {LABELS.get(other, other)}: " + "; ".join(parts) + ".")
    return "\n".join(lines)


def paired_conditions(factor_rows_: list[tuple[Factor, list[dict[str, Any]]]], protocol_r: list[dict[str, Any]],
                      other: str = "seven_nd") -> list[tuple[str, list[Any], list[Any]]]:
    """Every condition with SEVEN and ``other`` on the same seeds (default: SEVEN's ``noise_discount=False``
    control).

    (label, SEVEN's correct-answer vectors, ``other``'s), one entry a seed: protocol R at each sparsity,
    then each factor's levels other than protocol R's own (which is protocol R at 80 %, counted once).
    """
    conditions = []

    def add(label: str, at: dict[tuple[str, Any, int], dict[str, Any]], level: Any) -> None:
        seeds = sorted(k for (m, lv, k) in at if m == "seven" and lv == level and (other, level, k) in at)
        if seeds:
            conditions.append((label, [correct(at[("seven", level, k)]) for k in seeds],
                               [correct(at[(other, level, k)]) for k in seeds]))

    by = {(r["name"], float(r["target_sparsity"]), int(r["seed"])): r for r in protocol_r}
    for sparsity in sorted({s for (m, s, _) in by if m == "seven"}):
        add(f"protocol R, {sparsity * 100:g} %", by, sparsity)
    for factor, rows in factor_rows_:
        at = {(r["name"], r["level"], int(r["seed"])): r for r in rows}
        for label, suffix in factor.levels:
            if suffix is not None:
                add(f"{factor.key} {label}", at, label)
    return conditions


def _significant(a: list[Any], b: list[Any]) -> str:
    """Of the seeds with McNemar p < 0.05: how many SEVEN leads / trails."""
    signs = [np.sign(x.mean() - y.mean()) for x, y in zip(a, b) if mcnemar(x, y) < 0.05]
    return f"{sum(s > 0 for s in signs)} / {sum(s < 0 for s in signs)}"


def _pool(conditions: list[tuple[str, list[Any], list[Any]]], sentences: str = "independent") -> tuple[Any, str]:
    pooled = pooled_paired_bootstrap([(a, b) for _, a, b in conditions], n_boot=common.N_BOOT, seed=0, sentences=sentences)
    return pooled, _significant([x for _, a, _ in conditions for x in a], [y for _, _, b in conditions for y in b])


def discount_pooled(conditions: list[tuple[str, list[Any], list[Any]]]) -> str:
    """SEVEN minus its control in every condition, then pooled over all of them (stratified bootstrap)."""
    if not conditions:
        return "(no condition has both SEVEN and its control yet)"
    lines = ["| condition | seeds | SEVEN − control, points [95 % CI] | verdict | seeds with McNemar p < 0.05: SEVEN ahead / behind |",
             "|---|---|---|---|---|"]
    for label, a, b in conditions:
        d = paired_bootstrap(a, b, n_boot=common.N_BOOT, seed=0)
        lines.append(f"| {label} | {len(a)} | {d.points()} | {d.verdict} | {_significant(a, b)} |")
    pooled, significant = _pool(conditions)
    lines.append(f"| **all {len(conditions)} conditions pooled** | {pooled.seeds} | **{pooled.points()}** | "
                 f"**{pooled.verdict}** | {significant} |")
    return "\n".join(lines)


def pooled_summary(by_other: dict[str, list[tuple[str, list[Any], list[Any]]]]) -> str:
    """SEVEN against each method, pooled over every condition where both ran on the same seeds."""
    lines = ["| SEVEN − | conditions | condition-seed pairs | pooled difference, points [95 % CI] | verdict | "
             "seeds with McNemar p < 0.05: SEVEN ahead / behind |", "|---|---|---|---|---|---|"]
    for other, conditions in by_other.items():
        if conditions:
            pooled, significant = _pool(conditions)
            lines.append(f"| {LABELS.get(other, other)} | {len(conditions)} | {pooled.seeds} | {pooled.points()} | "
                         f"{pooled.verdict} | {significant} |")
    return "\n".join(lines)


def plot(factors: list[tuple[Factor, list[dict[str, Any]]]], name: str) -> str:
    """Accuracy against each factor's level, one line per method (means; seeds as small dots)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(factors), figsize=(4.2 * len(factors), 3.8), squeeze=False)
    for ax, (factor, rows) in zip(axes[0], factors):
        levels = [label for label, _ in factor.levels]
        for i, m in enumerate(METHODS):
            xs, ys = [], []
            for x, lv in enumerate(levels):
                vals = [accuracy(r) for r in rows if r["name"] == m and r["level"] == lv]
                if vals:
                    offset = (i - 2) * 0.04  # side by side, so that the seeds' dots do not hide each other
                    ax.plot([x + offset] * len(vals), vals, ".", ms=3, color=f"C{i}", alpha=0.5)
                    xs.append(x + offset)
                    ys.append(float(np.mean(vals)))
            if xs:
                ax.plot(xs, ys, marker="o", color=f"C{i}", ls="--" if m == "dense" else "-", label=LABELS.get(m, m))
        ax.set_xticks(range(len(levels)), levels, fontsize=7)
        ax.set_title(factor.title, fontsize=8)
        ax.set_ylabel("accuracy (2,000 test sentences)", fontsize=7)
    axes[0][-1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle("Protocol R at 80 %, one fine-tuning factor changed at a time", fontsize=9)
    return save_figure(fig, name)


def dense_search() -> str | None:
    """The dense learning-rate search for SGD and Adafactor (seed 1), if it ran, with the rate the study used."""
    rows = load_runs([SEARCH])
    if not rows:
        return None
    rates = chosen_rates(load_runs([next(f.sweep for f in FACTORS if f.dense_from_search)]))
    lines = ["| optimizer | learning rate | dense accuracy | used by the study |", "|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: _search_run(r["run"])):
        opt, lr = _search_run(r["run"])
        used = "yes" if _used(opt, lr, rates) else ""
        lines.append(f"| {opt} | {lr:g} | {accuracy(r):.3f} | {used} |")
    return "\n".join(lines)


def blocks() -> dict[str, str]:
    reference = load_runs(["R_dyn80", "R_base80"])
    out: dict[str, str] = {}
    plotted, records, design = [], [], []
    for factor in FACTORS:
        rows = factor_rows(factor, reference)
        if all(r["level"] == _reference(factor) for r in rows):  # only protocol R's own runs: not run yet
            out[f"S_{factor.key}"] = "(not run yet)"
            continue
        recs = paired_records(factor, rows)
        records += recs
        design += [(f"seven − {i['other']}, {factor.key} {i['level']}", i, s)
                   for i, s in zip(recs, paired_records(factor, rows, sentences="shared")) if not i["reference"]]
        plotted.append((factor, rows))
        out[f"S_{factor.key}"] = level_table(factor, rows) + "\n\n" + paired_table(factor, recs)
    out["S_short"] = summary(records)
    protocol_r = load_runs(["R_dyn50", "R_dyn80", "R_dyn90", "R_base50", "R_base80", "R_base90"])
    by_other = {other: paired_conditions(plotted, protocol_r, other) for other in ("seven_nd", "platon", "magnitude")}
    out["S_discount_pooled"] = (discount_pooled(by_other["seven_nd"]) + "\n\nThe same pooling for SEVEN against "
                                "PLATON and gradual magnitude (each over the conditions where it ran):\n\n"
                                + pooled_summary(by_other))
    pooled_records = []
    for other, conditions in by_other.items():
        if conditions:
            pooled = [_pool(conditions, sentences)[0] for sentences in ("independent", "shared")]
            pooled_records.append({"ours": "seven", "other": other, "conditions": len(conditions),
                                   "seeds": int(pooled[0].seeds), "mean": float(pooled[0].mean), "low": float(pooled[0].low),
                                   "high": float(pooled[0].high), "verdict": pooled[0].verdict})
            design.append((f"seven − {other}, pooled over {len(conditions)} conditions",
                           *({"mean": d.mean, "low": d.low, "high": d.high, "verdict": d.verdict} for d in pooled)))
    write_records(protocol_dir("S") / "pooled.json", pooled_records)

    def ci(r: dict[str, Any]) -> str:  # two digits: the pooled intervals are narrow
        return format_points(r["mean"], r["low"], r["high"], digits=2)
    pooled_rows = [f"- {label}: {ci(i)} per seed, {ci(s)} shared ({s['verdict']})"
                   for label, i, s in design if "pooled" in label]
    out["S_design"] = design_table(design) + (
        "\n\nThe pooled comparisons under both designs (points [95 % CI]):\n\n" + "\n".join(pooled_rows)
        if pooled_rows else "")
    # what the discount exchanges at each batch size: SEVEN's runs that recorded it, protocol R's among them
    seven = [{**r, "name": "seven"} for r in reference + load_runs(["S_batch80"])
             if _split(r["run"])[0] == "seven" and float(r["target_sparsity"]) == SPARSITY]
    out["S_batch_discount"] = discount_table(seven)
    if plotted:
        out["S_plot"] = f"![fine-tuning strategies]({plot(plotted, 'results_S.png')})"
    search = dense_search()
    if search:
        out["S_lr_dense"] = search
    return out
