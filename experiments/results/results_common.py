"""What every protocol of docs/results.md shares: reading committed runs, the paired statistics and their
words, the tables, and the plots.

A protocol ``P`` keeps its sweep configurations and run script in ``experiments/results/P/`` and its
committed runs in ``docs/results/P/<sweep>/<run>/`` (``result.json``, ``config.json``,
``predictions.npz``, ``diagnostics.json``; written by ``experiments/results/collect.py``). Its module
(``results_R.py``, ``results_S.py``, ``results_V.py``) turns them into the page's blocks with the
functions here. Nothing here reads ``runs/`` or anything outside the repository, so a fresh clone rebuilds
the same bytes: the bootstrap is seeded and the PNG metadata is fixed.

The statistics themselves are the library's public :mod:`sevenprune.tasks.stats` (a two-level paired
bootstrap over seeds and test examples, McNemar per seed, the verdict words).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from sevenprune.tasks.diagnostics_plots import PNG_METADATA
from sevenprune.tasks.report import arm_of_run
from sevenprune.tasks.stats import format_points, mcnemar, paired_bootstrap

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"  # docs/results/<protocol>/<sweep>/<run>/
IMG = ROOT / "docs" / "img"
N_BOOT = 4000  # bootstrap draws of every interval on the page

# the page's names of the methods (run names as the sweeps' variants name them)
LABELS = {"seven": "SEVEN_dyn", "seven_nd": "SEVEN, noise_discount=False", "platon": "PLATON (deltaT 10)",
          "movement": "movement (authors' form, per matrix)", "soft_movement": "soft movement (authors' form)",
          "magnitude": "gradual magnitude (per matrix)", "random": "random", "dense": "dense",
          "seven_pooler": "SEVEN_dyn, pooler included (R.2)", "platon_pooler": "PLATON, pooler included (R.2)",
          "grasp_abs": "grasp, variant=abs (\\|W*Hg\\|)",
          "seven_opt": "SEVEN_dyn, moments=optimizer (AdamW's)",
          "seven_opt_bf16": "SEVEN_dyn, moments=optimizer, bf16 score"}
# the same in running text (the summaries)
NAMES = {"seven": "SEVEN_dyn", "seven_opt": "SEVEN_dyn reading AdamW's moments", "seven_pre": "SEVEN_pre", "seven_nd": "its noise_discount=False control",
         "platon": "PLATON", "movement": "movement", "soft_movement": "soft movement",
         "magnitude": "gradual magnitude", "random": "random", "dense": "dense", "seven_pre_frozen": "its frozen form",
         "snip": "SNIP", "grasp": "GraSP", "grasp_abs": "GraSP's |W*Hg| form", "force": "FORCE",
         "magnitude_init": "one-shot magnitude", "random_init": "one-shot random"}
VERDICT_WORDS = {"ahead": "ahead of", "behind": "behind", "not separated": "not separated from"}


# -- committed runs -----------------------------------------------------------------------------------
def protocol_dir(protocol: str) -> Path:
    """``docs/results/R``: a protocol's committed runs and the figures computed from them."""
    return RESULTS / protocol


def sweep_dir(sweep: str) -> Path:
    """``docs/results/S/S_batch80`` for ``S_batch80``: a sweep's runs live under its protocol's folder."""
    return protocol_dir(sweep.split("_", 1)[0]) / sweep


def load_runs(sweeps: list[str]) -> list[dict[str, Any]]:
    """Every committed run of ``sweeps``: result.json plus ``run``, ``sweep``, ``name`` (method label), ``dir``."""
    rows = []
    for sweep in sweeps:
        for result in sorted(sweep_dir(sweep).glob("*/result.json")):
            r = json.loads(result.read_text(encoding="utf-8"))
            r["run"] = result.parent.name
            r["sweep"] = sweep
            r["name"] = arm_of_run(r["run"], r)  # the variant: "seven_nd-s0.8-seed1", "dense-seed2"
            r["dir"] = result.parent
            rows.append(r)
    return rows


def correct(row: dict[str, Any]) -> np.ndarray:
    """A run's 0/1 vector of correct answers on its test split (from predictions.npz)."""
    with np.load(row["dir"] / "predictions.npz") as p:
        return (p["test.pred"] == p["test.label"]).astype(np.int8)


def diagnostics(row: dict[str, Any]) -> dict[str, Any] | None:
    path = row["dir"] / "diagnostics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def accuracy(r: dict[str, Any]) -> float:
    return float(r["metrics"]["accuracy"])


def commits(rows: list[dict[str, Any]]) -> list[str]:
    """The commits the runs were made from (config.json["code"]), sorted."""
    return sorted({json.loads((r["dir"] / "config.json").read_text())["code"].get("git_commit") or "?"
                   for r in rows})


# -- tables ---------------------------------------------------------------------------------------------
def cell(values: list[float]) -> str:
    """``0.843 ± 0.005 (5)``: mean ± sample sd (seeds in brackets); ``-`` for no value."""
    if not values:
        return "-"
    sd = f" ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else ""
    return f"{np.mean(values):.3f}{sd} ({len(values)})"


def seeds_text(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def main_table(rows: list[dict[str, Any]], order: list[str]) -> str:
    """Mean ± sample sd of accuracy (seeds in brackets), method x sparsity; dense in every column."""
    sparsities = sorted({float(r["target_sparsity"]) for r in rows if r["name"] != "dense"})
    names = [m for m in order if any(r["name"] == m for r in rows)]
    lines = ["| method | " + " | ".join(f"{s * 100:g} %" for s in sparsities) + " |",
             "|---|" + "---|" * len(sparsities)]
    for m in names:
        if m == "dense" or m.startswith("dense_"):  # dense variants (S study): one value for every column
            value = cell([accuracy(r) for r in rows if r["name"] == m])
            lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(value for _ in sparsities) + " |")
            continue
        cells = [cell([accuracy(r) for r in rows if r["name"] == m and float(r["target_sparsity"]) == s])
                 for s in sparsities]
        lines.append(f"| {LABELS.get(m, m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- paired comparisons ---------------------------------------------------------------------------------
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


# -- paired comparisons of language models: mean token losses per test window ---------------------------
# A - B in loss: an interval above 0 ("ahead" in accuracy terms) is a higher loss, a higher perplexity
LOSS_VERDICTS = {"ahead": "higher perplexity", "behind": "lower perplexity", "not separated": "not separated"}


def window_losses(row: dict[str, Any], split: str) -> np.ndarray:
    """A language-model run's mean token loss per test window of ``split`` (``test``, ``ptb``), in order
    (predictions.npz, ``<split>.window_loss``): the same windows for every run of a protocol."""
    with np.load(row["dir"] / "predictions.npz") as p:
        key = f"{split}.window_loss"
        if key not in p.files:
            raise ValueError(f"{row['dir'] / 'predictions.npz'} has no {key!r} (has: {', '.join(p.files)})")
        return np.asarray(p[key], dtype=np.float64).reshape(-1)


def paired_window_bootstrap(losses_a: list[np.ndarray], losses_b: list[np.ndarray], *, n_boot: int = N_BOOT,
                            seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """``A - B`` in mean token loss (nats), paired by seed and by test window, with a two-level bootstrap
    interval: the seeds resampled, then the windows within each drawn seed (the same draw of windows for A
    and B). ``losses_a[i]``, ``losses_b[i]``: seed i's per-window mean token losses.

    Every array must hold the same number of windows (one test set, scored alike by every run): anything
    else is refused with a ValueError, since a difference between different windows would measure the
    windows. Returns ``mean``, ``low``, ``high`` (nats), ``seeds``, ``windows`` and ``verdict``: "lower
    perplexity" (the interval is below 0: A's perplexity is lower), "higher perplexity" or "not separated".
    The perplexity ratio A / B is ``exp`` of each of the three. The statistic is
    :func:`sevenprune.tasks.stats.paired_bootstrap`'s (it takes real-valued per-example scores as well as
    0/1 correctness), draw for draw."""
    if len(losses_a) != len(losses_b) or not losses_a:
        raise ValueError(f"need the same, non-zero number of seeds for both runs; got {len(losses_a)} and "
                         f"{len(losses_b)}")
    sizes = sorted({int(np.asarray(x).size) for x in [*losses_a, *losses_b]})
    if len(sizes) != 1:
        raise ValueError(f"the runs were scored on different numbers of test windows ({', '.join(map(str, sizes))}): "
                         "not the same test set, refusing to pair them")
    arrays = [[np.asarray(x, dtype=np.float64) for x in side] for side in (losses_a, losses_b)]
    if not all(np.isfinite(x).all() for side in arrays for x in side):
        raise ValueError("a window loss is not finite: refusing to pair")
    d = paired_bootstrap(arrays[0], arrays[1], n_boot=n_boot, seed=seed, level=level)
    return {"seeds": d.seeds, "windows": d.examples, "mean": d.mean, "low": d.low, "high": d.high,
            "verdict": LOSS_VERDICTS[d.verdict]}


def signed(x: float, digits: int = 3) -> str:
    """``+0.012``; a value that rounds to zero prints as ``+0.000``, never ``-0.000``."""
    text = f"{x:+.{digits}f}"
    return f"{0.0:+.{digits}f}" if float(text) == 0 else text


def nats_text(r: dict[str, Any], digits: int = 3) -> str:
    """``-0.012 [-0.030, +0.006]``: a paired loss difference (nats) and its interval."""
    return f"{signed(r['mean'], digits)} [{signed(r['low'], digits)}, {signed(r['high'], digits)}]"


def ratio_text(r: dict[str, Any], digits: int = 3) -> str:
    """``×0.988 [0.970, 1.006]``: the perplexity ratio exp(difference) and its interval."""
    return f"×{np.exp(r['mean']):.{digits}f} [{np.exp(r['low']):.{digits}f}, {np.exp(r['high']):.{digits}f}]"


def write_records(path: Path, records: list[dict[str, Any]]) -> None:
    """The paired records a summary is generated from, committed beside the runs (docs/results/<protocol>/)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")


def read_records(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else []


def difference_text(r: dict[str, Any]) -> str:
    """``+0.3 [-0.2, +0.9], 5 seeds``: a paired record's difference in points, its interval and seeds."""
    return f"{format_points(r['mean'], r['low'], r['high'])}, {seeds_text(r['seeds'])}"


def verdict_summary(records: list[dict[str, Any]], rows: list[dict[str, Any]], heading: str,
                    forms: tuple[tuple[str, str], ...] = (("seven", "SEVEN_dyn"),), against_dense: bool = False) -> str:
    """A protocol's summary, generated from the paired records so that it can never say more than they do.

    One line per form of SEVEN (``forms``: run name, label) and sparsity: ``- At 80 %, SEVEN_dyn (0.841) is
    ahead of X (+1.0 [...], 3 seeds); ...``; the comparisons with dense only if ``against_dense``."""
    if not records:
        return "(no paired comparison yet)"
    lines = [heading]
    dense = [accuracy(r) for r in rows if r["name"] == "dense"]
    if dense:
        lines.append(f"- Dense: {np.mean(dense):.3f} ({seeds_text(len(dense))}).")
    for ours, label in forms:
        for s in sorted({r["sparsity"] for r in records if r["ours"] == ours}):
            acc = [accuracy(r) for r in rows if r["name"] == ours and float(r["target_sparsity"]) == s]
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


def grouped_verdicts(records: list[dict[str, Any]], others: list[str] | None = None) -> str:
    """``not separated from PLATON (-0.1 [-0.5, +0.2], 5 seeds) or its control (...); ahead of ...``: one
    sparsity's records grouped by verdict, in the order of ``others`` (default: the records' order)."""
    order = others if others is not None else [r["other"] for r in records]
    chosen = sorted((r for r in records if r["other"] in order), key=lambda r: order.index(r["other"]))
    groups = []
    for verdict in ("not separated", "ahead", "behind"):
        items = [f"{NAMES.get(r['other'], r['other'])} ({difference_text(r)})" for r in chosen
                 if r["verdict"] == verdict]
        if items:
            listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
            groups.append(f"{VERDICT_WORDS[verdict]} {listed}")
    return "; ".join(groups)


def design_table(pairs: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> str:
    """Every comparison under both bootstrap designs: how many verdicts change, and which.

    ``pairs``: (label, record with sentences redrawn per seed, record with one draw shared by all seeds),
    each record holding ``mean``, ``low``, ``high`` and ``verdict``. The protocol's test examples are the
    same in every seed, so an example one method gets right in every seed is one example: the shared
    design counts it once (see ``sevenprune.tasks.stats``)."""
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


def design_pairs(rows: list[dict[str, Any]], ours: str, others: list[str],
                 records: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``paired``'s records beside the same comparisons with the shared sentence design."""
    shared = paired(rows, ours, others, sentences="shared")[1]
    return [(f"{i['ours']} − {i['other']}, {i['sparsity'] * 100:g} %", i, s) for i, s in zip(records, shared)]


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


# -- plots ------------------------------------------------------------------------------------------------
def pyplot() -> Any:
    """matplotlib.pyplot drawing to files only, with a fixed hash salt (identical SVG/PNG bytes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "sevenprune"
    return plt


def save_figure(fig: Any, name: str) -> str:
    """Save ``fig`` as docs/img/``name`` (no software version in the file) and return the page's link."""
    path = IMG / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata=PNG_METADATA)
    pyplot().close(fig)
    return f"img/{name}"


def plot_curve(rows: list[dict[str, Any]], order: list[str], name: str, title: str,
               ylabel: str = "accuracy (2,000 test sentences)") -> str:
    """Accuracy against sparsity, one line per method (mean and sample sd over seeds), dense dashed."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    dense = [accuracy(r) for r in rows if r["name"] == "dense"]
    if dense:
        ax.axhline(float(np.mean(dense)), color="grey", ls="--", lw=1, label="dense")
    for m in order:
        pts = defaultdict(list)
        for r in rows:
            if r["name"] == m and m != "dense":
                pts[float(r["target_sparsity"])].append(accuracy(r))
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
    return save_figure(fig, name)


# -- pages ------------------------------------------------------------------------------------------------
def replace_block(text: str, name: str, body: str, where: str = "docs/results.md") -> str:
    """``text`` with the block ``<!-- BEGIN name -->`` ... ``<!-- END name -->`` holding ``body``."""
    pattern = re.compile(rf"(<!-- BEGIN {re.escape(name)} -->\n).*?(<!-- END {re.escape(name)} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{where} has no block {name!r} (<!-- BEGIN {name} --> ... <!-- END {name} -->)")
    return pattern.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)


def read_block(text: str, name: str) -> str | None:
    """The body of block ``name`` in ``text`` (without its markers), or None."""
    found = re.search(rf"<!-- BEGIN {re.escape(name)} -->\n(.*?)<!-- END {re.escape(name)} -->", text, re.S)
    return found.group(1).rstrip() if found else None
