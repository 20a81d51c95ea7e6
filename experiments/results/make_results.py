"""Tables and plots of docs/results.md, rebuilt from committed files only.

Protocol R (the main comparison) comes from the per-run summaries in docs/results/R/ (see
``experiments/results/results_R.py``), as do the strategy study (``results_S.py``) and protocol V, the
ViT on Fashion-MNIST (``results_V.py``); the appendix's 32-step protocols from the per-run CSVs in
docs/results/<sweep>.csv; the paper's values from experiments/results/paper_figure_values.csv. Every
generated block of docs/results.md (between ``<!-- BEGIN name -->`` and ``<!-- END name -->``) is
replaced; the prose around the blocks is left as it is. README.md's results summary repeats two of them
(``README_BLOCKS``), so it is rewritten too. From the repository root:

    python experiments/results/make_results.py                # from the committed files (a fresh clone)
    python experiments/results/make_results.py --from-runs    # first refresh the appendix CSVs from runs/

A cell of the appendix is the mean ± sample standard deviation over the seeds that have finished.
Differences are paired: every method of a sweep sees the same seeds, batches and evaluation sentences,
so "SEVEN - baseline" is taken per seed, then averaged.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from sevenprune.tasks.report import _CSV_FIRST, _CSV_LAST, collect_results, markdown_table, plot_curve, write_csv

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_R  # noqa: E402 - beside this script
import results_S  # noqa: E402 - beside this script
import results_V  # noqa: E402 - beside this script

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "runs" / "results"
DOC = ROOT / "docs" / "results.md"
README = ROOT / "README.md"
# blocks the README repeats from the page (its results summary), so that it cannot go stale; the page
# itself has R_short but not R_table (its R_main holds the same table with the run count and plot)
README_BLOCKS = ("R_table", "R_short")
IMG = ROOT / "docs" / "img"
CSV_DIR = ROOT / "docs" / "results"
PAPER = ROOT / "experiments" / "results" / "paper_figure_values.csv"
APPENDIX_SWEEPS = ["mr_warmup", "mr_dyn", "mr_pre", "mr_pre_long", "vit_dyn", "vit_pre", "vit_pretrain",
                   "mr_dyn_nopooler", "mr_moments_signed_b0.8_0.9", "mr_moments_abs_b0.5_0.7",
                   "mr_moments_abs_b0.9_0.999", "mr_moments_signed_b0.9_0.999"]

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
    """The runs of the appendix sweeps, read back from their committed CSVs (in the format of
    ``collect_results``: the metric columns under ``"metrics"``)."""
    rows: list[dict[str, Any]] = []
    for s in sweeps:
        path = CSV_DIR / f"{s}.csv"
        if not path.exists():
            continue
        with open(path, encoding="utf-8", newline="") as f:
            for raw in csv.DictReader(f):
                row = {k: _number(v) for k, v in raw.items()}
                metrics = {k: row.pop(k) for k in list(row) if k not in _CSV_FIRST + _CSV_LAST}
                row["metrics"] = metrics
                rows.append(row)
    return rows


def by_key(rows: list[dict[str, Any]], metric: str) -> dict[tuple[str, float, int], float]:
    return {(r["method"], float(r["target_sparsity"]), int(r["seed"])): float(r["metrics"][metric]) for r in rows}


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


def _seeds(n: int) -> str:
    return f"{n} seed" if n == 1 else f"{n} seeds"


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
        cell = f"{np.mean(acc):.4f}" + (f" ± {np.std(acc, ddof=1):.4f}" if len(acc) > 1 else "")
        if sweep == "mr_dyn":
            diff = "(the default)"
        else:
            d = [v - base[k] for k, v in vals.items() if k[1] == 0.8 and k in base]
            diff = f"{_points(d)} points ({_seeds(len(d))})" if d else "-"
        lines.append(f"| {moments} | {b1} | {b2} | {cell} ({_seeds(len(acc))}) | {diff} |")
    return "\n".join(lines)


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


def replace_block(text: str, name: str, body: str, where: str = "docs/results.md") -> str:
    pattern = re.compile(rf"(<!-- BEGIN {re.escape(name)} -->\n).*?(<!-- END {re.escape(name)} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"{where} has no block {name!r} (<!-- BEGIN {name} --> ... <!-- END {name} -->)")
    return pattern.sub(lambda m: m.group(1) + body.rstrip() + "\n" + m.group(2), text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from-runs", action="store_true",
                        help="first rewrite the appendix CSVs in docs/results/ from the runs under runs/results/")
    args = parser.parse_args()
    IMG.mkdir(parents=True, exist_ok=True)
    CSV_DIR.mkdir(parents=True, exist_ok=True)
    metric = "accuracy"
    text = DOC.read_text(encoding="utf-8")
    if args.from_runs:
        for sweep in APPENDIX_SWEEPS:
            found = collect_results(RUNS / sweep)
            if found:
                write_csv(found, CSV_DIR / f"{sweep}.csv")
    blocks: dict[str, str] = results_R.blocks() | results_S.blocks() | results_V.blocks()
    pre_r = results_R.load_runs(results_R.PAPER_PRE_SWEEPS)  # each sparsity's column fills in as its runs land
    if pre_r:  # beside the paper's SST-2 panel: drops from dense, ours from protocol R's dense
        blocks["R_paper"] = paper_table(pre_r + [r for r in results_R.load_runs(["R_dyn80"]) if r["name"] == "dense"],
                                        metric)

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
            blocks[name] = "(no finished runs yet)"
            continue
        plot_curve(rows, metric, IMG / f"results_{name}.png", order, title=title)
        blocks[name] = (markdown_table(rows, metric, order) + "\n\n" + seeds_note(rows) + "\n")
    if dyn:
        blocks["mr_dyn_paired"] = paired_table(dyn, metric, "seven_dyn",
                                               ["platon", "movement", "soft_movement", "magnitude", "random"])
    if pre:
        blocks["mr_pre_paired"] = paired_table(pre, metric, "seven_pre",
                                               ["seven_pre_frozen", "snip", "grasp", "force", "magnitude_init",
                                                "random_init"])
        blocks["paper"] = paper_table(pre, metric)
    if vit:
        blocks["vit_paired"] = (paired_table(vit, metric, "seven_dyn", ["magnitude", "seven_pre", "snip", "grasp",
                                                                        "magnitude_init"]) + "\n\n"
                                + paired_table(vit, metric, "seven_pre", ["snip", "grasp", "magnitude_init"]))
    long = rows_of("mr_pre_long")
    if long:
        blocks["mr_pre_long"] = (markdown_table(long, metric, PRE_ORDER) + "\n\n" + seeds_note(long) + "\n\n"
                                 + paired_table(long, metric, "seven_pre", ["snip", "grasp", "magnitude_init"]))
    nopool = rows_of("mr_dyn_nopooler")
    if nopool:
        blocks["nopooler"] = nopooler_table(nopool, dyn, metric)
    blocks["moments"] = moments_table(dyn, metric)
    pre_vit = rows_of("vit_pretrain")
    if pre_vit:
        r = pre_vit[0]
        blocks["vit_pretrain"] = (f"Pretrained ViT: accuracy {r['metrics'][metric]:.4f} on 2000 test "
                                  f"images after {r['steps']} steps ({r['seconds'] / 60:.1f} min).")
    readme = README.read_text(encoding="utf-8")
    for name in README_BLOCKS:
        if name in blocks:
            readme = replace_block(readme, name, blocks[name], where="README.md")
    README.write_text(readme, encoding="utf-8")
    for name, body in blocks.items():
        if f"<!-- BEGIN {name} -->" in text:
            text = replace_block(text, name, body)
        elif name not in README_BLOCKS:  # a README-only block (R_table) is no omission of the page
            print(f"note: docs/results.md has no block {name!r}; skipped", file=sys.stderr)
    DOC.write_text(text, encoding="utf-8")
    print(f"updated {DOC.relative_to(ROOT)} and README.md's results summary, plots in docs/img/results_*.png, "
          f"csv in docs/results/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
