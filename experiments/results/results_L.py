"""Protocol L (docs/results.md, section L): decoder LMs, one-shot pruning (Wanda, SparseGPT) against pruning
during fine-tuning, from the committed files in docs/results/L/ (``experiments/results/L/*.json``,
``run_L.sh``).

SmolLM2-135M on the Shakespeare plays, at 50 % unstructured and 2:4 (variants whose name ends in ``24``):

* ``L_oneshot``: the starting model pruned one shot, no fine-tuning (``dense``: the starting model itself);
  ``L_oneshot_more``, ``L_oneshot70`` and ``L_oneshot_magnm`` add one-shot rows without fine-tuning at 4:8
  (names ending in ``48``), at 70 % (the run's sparsity) and one-shot magnitude per matrix (also at 2:4 and 4:8);
* ``L_ft50``, ``L_ft24``: 268 fine-tuning steps; Wanda and SparseGPT prune at step 0 and keep their masks
  fixed, SEVEN_dyn, its ``noise_discount=False`` control, PLATON and gradual magnitude prune during
  fine-tuning; ``dense`` (in ``L_ft50``) is fine-tuned unpruned. ``L_ft70``: the same arms at 70 %
  unstructured (the issue's "where time allows"; its dense arm is ``L_ft50``'s), shown once it has runs.

Every run scores the same 256 windows of 128 tokens of the held-out plays (``test``) and of PTB's test split
(``ptb``) and keeps each window's mean token loss (predictions.npz), so that two runs are compared window by
window: ``results_common.paired_window_bootstrap`` (seeds, then windows within seed). The records behind
the summaries are written to ``docs/results/L/paired.json``. Like every protocol module, it reads only
committed files.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import results_common as common
from results_common import (commits, load_runs, nats_text, paired_window_bootstrap, protocol_dir, ratio_text,
                            seeds_text, window_losses, write_records)
from sevenprune.tasks.diagnostics_plots import layer_index
from sevenprune.tasks.report import machine_fields

ONESHOT_SWEEPS = ["L_oneshot", "L_oneshot_more", "L_oneshot70", "L_oneshot_magnm"]
FT_SWEEPS = ["L_ft50", "L_ft24", "L_ft70"]
# the fine-tuned protocol's (a variant's name ends in "24" for 2:4); a table shows those with runs
PATTERNS = {"50": "50 %", "24": "2:4", "70": "70 %"}
# the one-shot rows without fine-tuning also at 70 % (the run's sparsity) and 4:8 (a name ending in "48")
ONESHOT_PATTERNS = {"50": "50 %", "70": "70 %", "24": "2:4", "48": "4:8"}
NM_SUFFIXES = ("24", "48")
TEST_SETS = {"test": "held-out plays", "ptb": "PTB"}
ON = {"test": "On the held-out plays", "ptb": "On PTB"}  # a table's heading per test set
ONESHOT = ["wanda", "sparsegpt"]  # pruned at step 0, then fine-tuned with the masks fixed
DURING = ["seven", "seven_local", "seven_nd", "platon", "magnitude"]  # pruning during fine-tuning
# SparseGPT at step 0 with the per-matrix sparsities SEVEN_dyn reached on the same seed (--layer-sparsity),
# then fine-tuned: an analysis arm (it needs SEVEN_dyn's run first), not a one-shot method a user has, so it
# is never "the best one-shot arm"
ALLOC = "sparsegpt_seven_alloc"
FT_ORDER = ["dense"] + ONESHOT + [ALLOC] + DURING
# the 50 % comparison taken apart: when the masks are chosen (one shot, during fine-tuning) x where the
# sparsity goes (every matrix alike, SEVEN_dyn's allocation): (during, one shot, where) with both sides alike
MATCHED = [("seven_local", "sparsegpt", "every matrix pruned alike"),
           ("seven", ALLOC, "SEVEN_dyn's per-matrix sparsities")]
COMPARED = ["seven_local", "seven_nd", "platon", "magnitude", "wanda", "sparsegpt", "dense"]  # SEVEN_dyn minus each
LABELS = {"dense": "dense, fine-tuned", "wanda": "Wanda, then fine-tuned (masks fixed)",
          "sparsegpt": "SparseGPT, then fine-tuned (masks fixed)", "seven": "SEVEN_dyn",
          ALLOC: "SparseGPT at SEVEN_dyn's per-matrix sparsities (its run of the same seed), then fine-tuned",
          "seven_local": "SEVEN_dyn, the same sparsity in every matrix (scope local)",
          "seven_nd": "SEVEN, noise_discount=False", "platon": "PLATON (deltaT 10)",
          "magnitude": "gradual magnitude (one ranking over all matrices)"}
ONESHOT_LABELS = {"dense": "starting model (dense, not fine-tuned)",
                  "magnitude_init": "magnitude (each matrix alike), no fine-tuning", "wanda": "Wanda, no fine-tuning",
                  "sparsegpt": "SparseGPT, no fine-tuning"}
# one shot without fine-tuning: magnitude (no calibration; the SparseGPT paper's baseline) at 50 %, 70 %, 2:4, 4:8
ONESHOT_ROWS = ["dense", "magnitude_init"] + ONESHOT
NAMES = {"dense": "dense fine-tuning", "wanda": "Wanda + fine-tuning", "sparsegpt": "SparseGPT + fine-tuning",
         ALLOC: "SparseGPT at SEVEN_dyn's allocation + fine-tuning",
         "seven": "SEVEN_dyn", "seven_local": "SEVEN_dyn per matrix", "seven_nd": "its noise_discount=False control",
         "platon": "PLATON", "magnitude": "gradual magnitude"}
SHORT = {"dense": "dense", "wanda": "Wanda", "sparsegpt": "SparseGPT", "seven": "SEVEN_dyn",
         "magnitude_init": "magnitude, one shot",
         ALLOC: "SparseGPT at SEVEN_dyn's allocation",
         "seven_local": "SEVEN_dyn per matrix", "seven_nd": "SEVEN with noise_discount=False", "platon": "PLATON",
         "magnitude": "gradual magnitude"}
NONE_YET = "(no runs committed yet)"
QUESTION = "*Prune while fine-tuning, or one-shot (Wanda, SparseGPT) and then fine-tune?*"


# -- the committed runs -----------------------------------------------------------------------------------
def _tag(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each run's ``method`` (the variant without its ``24`` or ``48``) and ``pattern`` (``"24"``, ``"48"``
    from the name; else the run's sparsity in percent, ``"50"``, ``"70"``; None for dense)."""
    for r in rows:
        nm = next((suffix for suffix in NM_SUFFIXES if r["name"].endswith(suffix)), None)
        r["method"] = r["name"].removesuffix(nm) if nm else r["name"]
        r["pattern"] = (None if r["method"] == "dense" else nm if nm
                        else f"{round(100 * float(r['target_sparsity']))}")
    return rows


def runs() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the one-shot runs without fine-tuning, the fine-tuned runs), as committed."""
    return _tag(load_runs(ONESHOT_SWEEPS)), _tag(load_runs(FT_SWEEPS))


def committed_count() -> int:
    """How many runs of protocol L are committed (result.json files under docs/results/L/)."""
    return sum(1 for _ in protocol_dir("L").glob("L_*/*/result.json"))


def perplexity(r: dict[str, Any], split: str) -> float:
    return float(r["metrics"]["perplexity" if split == "test" else f"{split}/perplexity"])


def _of(rows: list[dict[str, Any]], method: str, pattern: str) -> list[dict[str, Any]]:
    """The runs of ``method`` at ``pattern``; dense (one model for both patterns) at every pattern."""
    return [r for r in rows if r["method"] == method and (method == "dense" or r["pattern"] == pattern)]


def ppl_cell(values: list[float]) -> str:
    """``23.41 ± 0.12 (3)``: mean ± sample sd of perplexity over seeds (seeds in brackets); ``-`` for none."""
    if not values:
        return "-"
    mean = float(np.mean(values))
    digits = 1 if mean >= 100 else 2
    sd = f" ± {np.std(values, ddof=1):.{digits}f}" if len(values) > 1 else ""
    return f"{mean:.{digits}f}{sd} ({len(values)})"


def fine_tuned_patterns(rows: list[dict[str, Any]]) -> list[str]:
    """The patterns of :data:`PATTERNS` that have a pruned run among ``rows``, in its order."""
    return [p for p in PATTERNS if any(r["pattern"] == p for r in rows)]


def perplexity_table(rows: list[dict[str, Any]], order: list[str], labels: dict[str, str]) -> str:
    """Perplexity per method (rows) on each test set and pattern of the fine-tuned protocol with runs (columns)."""
    columns = [(split, pattern) for split in TEST_SETS for pattern in fine_tuned_patterns(rows)]
    lines = ["| method | " + " | ".join(f"{TEST_SETS[s]}, {PATTERNS[p]}" for s, p in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for m in order:
        if not any(r["method"] == m for r in rows):
            continue
        cells = [ppl_cell([perplexity(r, s) for r in _of(rows, m, p)]) for s, p in columns]
        lines.append(f"| {labels.get(m, m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pattern_order(pattern: str | None) -> tuple[int, str]:
    """Sort key of a pattern: those of :data:`ONESHOT_PATTERNS` in its order, then other sparsities, then dense."""
    listed = list(ONESHOT_PATTERNS)
    return (listed.index(pattern) if pattern in listed else len(listed) + (pattern is None), pattern or "")


def _pattern_label(pattern: str | None) -> str:
    """``"50 %"``, ``"4:8"``; a sparsity without an entry in :data:`ONESHOT_PATTERNS` as ``"60 %"``; ``-`` for dense."""
    return "-" if pattern is None else ONESHOT_PATTERNS.get(pattern, f"{pattern} %")


def oneshot_table(rows: list[dict[str, Any]], split: str) -> str:
    """Perplexity on ``split`` without fine-tuning, per method (rows) and pattern (columns: those with runs),
    with its ratio to the starting model's where that was evaluated."""
    patterns = sorted({r["pattern"] for r in rows} - {None}, key=_pattern_order)
    start = [perplexity(r, split) for r in rows if r["method"] == "dense"]
    lines = ["| method | " + " | ".join(map(_pattern_label, patterns)) + " |", "|---|" + "---|" * len(patterns)]
    for m in ONESHOT_ROWS:
        if not any(r["method"] == m for r in rows):
            continue
        cells = []
        for p in patterns:
            values = [perplexity(r, split) for r in _of(rows, m, p)]
            ratio = f" ×{np.mean(values) / np.mean(start):.2f}" if values and start and m != "dense" else ""
            cells.append(ppl_cell(values) + ratio)
        lines.append(f"| {ONESHOT_LABELS.get(m, m)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- paired comparisons -------------------------------------------------------------------------------------
def compare(rows: list[dict[str, Any]], ours: str, other: str, pattern: str, split: str,
            kind: str = "seven") -> dict[str, Any] | None:
    """``ours - other`` at ``pattern`` on ``split``, on the seeds both have: a record, None if no seed is
    shared, or a record with ``refused`` (and no interval) if their window counts differ."""
    by = {(r["method"], r["pattern"], int(r["seed"])): r for r in rows}

    def run(m: str, seed: int) -> dict[str, Any] | None:
        return by.get((m, None if m == "dense" else pattern, seed))

    seeds = sorted({int(r["seed"]) for r in rows if run(ours, int(r["seed"])) and run(other, int(r["seed"]))})
    if not seeds:
        return None
    record: dict[str, Any] = {"kind": kind, "ours": ours, "other": other, "pattern": PATTERNS[pattern],
                              "test_set": split}
    try:
        record |= paired_window_bootstrap([window_losses(run(ours, k), split) for k in seeds],
                                          [window_losses(run(other, k), split) for k in seeds],
                                          n_boot=common.N_BOOT, seed=0)
    except ValueError as err:
        record |= {"seeds": len(seeds), "refused": str(err)}
    return record


def mean_loss(rows: list[dict[str, Any]], method: str, pattern: str, split: str = "test") -> float | None:
    runs_ = _of(rows, method, pattern)
    return float(np.mean([window_losses(r, split).mean() for r in runs_])) if runs_ else None


def best(rows: list[dict[str, Any]], methods: list[str], pattern: str) -> str | None:
    """The method of ``methods`` with the lowest mean loss on the held-out plays at ``pattern`` (the first
    listed on a tie), over the seeds that every one of them with runs has: while the seeds land, an arm
    with more seeds is not ranked on seeds the others lack (on all seeds where they share none)."""
    seeds = {m: {int(r["seed"]) for r in _of(rows, m, pattern)} for m in methods}
    seeds = {m: s for m, s in seeds.items() if s}
    if not seeds:
        return None
    shared = set.intersection(*seeds.values())
    on = [r for r in rows if not shared or int(r["seed"]) in shared]
    losses = {m: v for m in seeds if (v := mean_loss(on, m, pattern)) is not None}  # every m has runs in ``on``
    return min(losses, key=losses.__getitem__)


def most_seeded(rows: list[dict[str, Any]], methods: list[str], pattern: str) -> list[str]:
    """The arms of ``methods`` with the most seeds at ``pattern`` (none without runs), in their order."""
    counts = {m: len({int(r["seed"]) for r in _of(rows, m, pattern)}) for m in methods}
    most = max(counts.values(), default=0)
    return [m for m, n in counts.items() if n == most and n > 0]


def paired_records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """SEVEN_dyn minus every other arm; pruning during fine-tuning minus SparseGPT then fine-tuned with the
    same sparsity in every matrix on both sides (``matched``: every matrix alike, or SEVEN_dyn's allocation,
    :data:`MATCHED`); SparseGPT at SEVEN_dyn's allocation minus SparseGPT (``allocation``); and the best arm
    pruned during fine-tuning minus the best one-shot arm fine-tuned after (both chosen on the held-out
    plays), per pattern and test set. While seeds land, the best arms are ranked on the seeds they share,
    which may be one: the same comparison among the arms with the most seeds (``best_seeded``) is added
    where it is another pair on more seeds."""
    records = []
    for pattern in PATTERNS:
        for split in TEST_SETS:
            for other in COMPARED:
                if (r := compare(rows, "seven", other, pattern, split)) is not None:
                    records.append(r)
        for during, oneshot, where in MATCHED:
            for split in TEST_SETS:
                if (r := compare(rows, during, oneshot, pattern, split, kind="matched")) is not None:
                    records.append(r | {"alike": where})
        for split in TEST_SETS:  # where the sparsity goes, with the masks chosen one shot
            if (r := compare(rows, ALLOC, "sparsegpt", pattern, split, kind="allocation")) is not None:
                records.append(r)
        during, oneshot = best(rows, DURING, pattern), best(rows, ONESHOT, pattern)
        if not (during and oneshot):
            continue
        seeded_during = best(rows, most_seeded(rows, DURING, pattern), pattern)
        seeded_oneshot = best(rows, most_seeded(rows, ONESHOT, pattern), pattern)
        other_pair = (seeded_during, seeded_oneshot) != (during, oneshot)
        for split in TEST_SETS:
            if (r := compare(rows, during, oneshot, pattern, split, kind="best")) is None:
                continue
            records.append(r)
            if other_pair and seeded_during and seeded_oneshot:
                more = compare(rows, seeded_during, seeded_oneshot, pattern, split, kind="best_seeded")
                if more is not None and more["seeds"] > r["seeds"]:
                    records.append(more)
    return records


def paired_table(records: list[dict[str, Any]]) -> str:
    if not records:
        return "(no paired comparison yet: no two arms have a finished run on the same seed)"
    lines = ["| comparison | pattern | test set | seeds | windows | loss difference, nats [95 % CI] "
             "| perplexity ratio [95 % CI] | verdict |", "|---|---|---|---|---|---|---|---|"]
    for r in records:
        name = f"{r['ours']} − {r['other']}"
        if r["kind"] == "best":
            name = f"best during fine-tuning ({r['ours']}) − best one-shot + fine-tuning ({r['other']})"
        elif r["kind"] == "best_seeded":
            name = (f"the same among the arms with the most seeds: during fine-tuning ({r['ours']}) − one-shot + "
                    f"fine-tuning ({r['other']})")
        if "refused" in r:
            lines.append(f"| {name} | {r['pattern']} | {TEST_SETS[r['test_set']]} | {r['seeds']} | - | "
                         f"not paired: {r['refused']} | - | - |")
            continue
        lines.append(f"| {name} | {r['pattern']} | {TEST_SETS[r['test_set']]} | {r['seeds']} | {r['windows']} | "
                     f"{nats_text(r)} | {ratio_text(r)} | {r['verdict']} |")
    return "\n".join(lines)


# -- when the masks are chosen x where the sparsity goes (50 %) --------------------------------------------------
def _record(records: list[dict[str, Any]], ours: str, other: str, split: str, pattern: str = "50 %") -> dict[str, Any] | None:
    return next((r for r in records if "refused" not in r and (r["ours"], r["other"], r["test_set"], r["pattern"])
                 == (ours, other, split, pattern)), None)


def _effect(r: dict[str, Any] | None) -> str:
    """``-0.043 [-0.049, -0.036], lower perplexity (2 seeds)``, or ``-`` where the two arms share no seed."""
    return f"{nats_text(r)}, {r['verdict']} ({seeds_text(r['seeds'])})" if r else "-"


def factor_table(rows: list[dict[str, Any]], records: list[dict[str, Any]], split: str) -> str:
    """At 50 %, on ``split``: perplexity of the four arms of the 2 x 2 (masks chosen one shot by SparseGPT or
    during fine-tuning by SEVEN_dyn; every matrix at 50 % or SEVEN_dyn's per-matrix sparsities), and the paired
    difference along each factor (nats, mean [95 % CI]) at each level of the other."""
    cell = {m: ppl_cell([perplexity(r, split) for r in _of(rows, m, "50")]) for m in ("sparsegpt", "seven_local",
                                                                                     ALLOC, "seven")}
    if all(c == "-" for c in cell.values()):
        return NONE_YET
    return "\n".join([
        "| where the sparsity goes | one shot (SparseGPT), then fine-tuned | during fine-tuning (SEVEN_dyn) | "
        "during − one shot, nats [95 % CI] |", "|---|---|---|---|",
        f"| every matrix at 50 % | {cell['sparsegpt']} | {cell['seven_local']} | "
        f"{_effect(_record(records, 'seven_local', 'sparsegpt', split))} |",
        f"| SEVEN_dyn's per-matrix sparsities | {cell[ALLOC]} | {cell['seven']} | "
        f"{_effect(_record(records, 'seven', ALLOC, split))} |",
        f"| SEVEN_dyn's − every matrix alike, nats [95 % CI] | {_effect(_record(records, ALLOC, 'sparsegpt', split))} | "
        f"{_effect(_record(records, 'seven', 'seven_local', split))} | |"])


def factor_block(rows: list[dict[str, Any]], records: list[dict[str, Any]]) -> str:
    """:func:`factor_table` on each test set, or :data:`NONE_YET`."""
    tables = {split: factor_table(rows, records, split) for split in TEST_SETS}
    if all(t == NONE_YET for t in tables.values()):
        return NONE_YET
    return "\n\n".join(f"{ON[split]}, perplexity (mean ± sample sd over seeds, seeds in brackets):\n\n"
                       f"{table}" for split, table in tables.items())


# -- where the sparsity goes ---------------------------------------------------------------------------------
def _kind(weight: str) -> str:
    """``model.layers.3.self_attn.q_proj.weight`` -> ``q_proj`` (the module's own name)."""
    parts = weight.split(".")
    return parts[-2] if len(parts) > 1 else weight


def allocation_table(rows: list[dict[str, Any]], pattern: str = "50") -> str:
    """Per arm at ``pattern``: the sparsity of each kind of matrix (q_proj, ..., down_proj: the mean over the
    layers), and the mean sparsity of the matrices of each third of the depth, averaged over seeds, from
    ``result.json``'s per-matrix sparsities."""
    rows = [r for r in rows if r.get("layers")]
    arms = [m for m in FT_ORDER if m != "dense" and _of(rows, m, pattern)]
    if not arms:
        return NONE_YET
    weights = list(_of(rows, arms[0], pattern)[0]["layers"])  # every run prunes the same matrices
    columns: dict[str, list[str]] = {}  # a column of the table: the weights it averages
    for w in weights:
        columns.setdefault(_kind(w), []).append(w)
    n_layers = max(layer_index(w) for w in weights) + 1
    if n_layers >= 3:
        for a, b in ((0, n_layers // 3), (n_layers // 3, 2 * n_layers // 3), (2 * n_layers // 3, n_layers)):
            columns[f"layers {a}-{b - 1}"] = [w for w in weights if a <= layer_index(w) < b]
    lines = ["| arm | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for m in arms:
        per_seed = [r["layers"] for r in _of(rows, m, pattern)]
        cells = [f"{np.mean([np.mean([layers[w] for w in ws]) for layers in per_seed]):.2f}" for ws in columns.values()]
        lines.append(f"| {SHORT[m]} ({len(per_seed)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- cost -----------------------------------------------------------------------------------------------------
def _method_patterns(rows: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    """The (method, pattern) pairs of the runs, in the fine-tuned table's method order, each method's patterns
    in the page's order (a cost table's rows)."""
    return sorted({(r["method"], r["pattern"]) for r in rows},
                  key=lambda k: (FT_ORDER.index(k[0]) if k[0] in FT_ORDER else len(FT_ORDER), k[0],
                                 _pattern_order(k[1])))


def _step_seconds(run: dict[str, Any]) -> float:
    """Seconds per training step of a fine-tuned run, the pruner included (its attempts added up)."""
    return float(run["train_seconds"]) / run["steps"]


def cost_table(rows: list[dict[str, Any]]) -> str:
    """Seconds of one one-shot pruning (``prune_seconds``), of the pruner per pruning step (``pruner_seconds /
    window_steps``) and of a whole training step (``train_seconds / steps``, the pruner included), medians
    over the runs present."""
    lines = ["| method | pattern | one-shot pruning, s | pruner, s per pruning step | training step, s "
             "(pruner included) | runs |", "|---|---|---|---|---|---|"]
    seen = _method_patterns(rows)

    def median(values: list[float], digits: int) -> str:
        return f"{np.median(values):.{digits}f}" if values else "-"

    for method, pattern in seen:
        group = [r for r in rows if r["method"] == method and r["pattern"] == pattern]
        prune = [float(r["prune_seconds"]) for r in group if r.get("prune_seconds") is not None]
        # the pruner's time per pruning step of the methods that prune during fine-tuning (a one-shot run's
        # fixed-mask pruner has a one-step "window" of its own: not a pruning step)
        pruner = [float(r["pruner_seconds"]) / r["window_steps"] for r in group
                  if r.get("window_steps") and r.get("prune_seconds") is None]
        step = [_step_seconds(r) for r in group if r.get("steps")]
        timed = [r for r in group if r.get("prune_seconds") is not None or r.get("window_steps") or r.get("steps")]
        if not timed:  # the starting model evaluated as it is: nothing timed
            continue
        lines.append(f"| {SHORT.get(method, method)} | {_pattern_label(pattern)} | {median(prune, 1)} | "
                     f"{median(pruner, 3)} | {median(step, 2)} | {len(timed)} |")
    return "\n".join(lines) if len(lines) > 2 else NONE_YET


def step_seconds_table(rows: list[dict[str, Any]]) -> str:
    """Each fine-tuned run's seconds per training step (``train_seconds / steps``), a column per seed: the
    spread behind the medians of :func:`cost_table`. A run that went on from a checkpoint says at which step
    (its seconds add up the attempts); a run whose ``result.json`` records its machine (``machine``, written by
    runs since it was recorded) gives the mean one-minute load while it ran and the share of its wall time it
    had the CPU (near 100 % for a one-thread run alone on its core)."""
    timed = [r for r in rows if r.get("steps")]
    if not timed:
        return NONE_YET
    seeds = sorted({int(r["seed"]) for r in timed})
    lines = ["| method | pattern | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|---|" + "---|" * len(seeds)]
    seen = _method_patterns(timed)

    def cell(r: dict[str, Any] | None) -> str:
        if r is None:
            return "-"
        notes = []
        if r.get("resumed_from_step") is not None:
            notes.append(f"resumed at step {r['resumed_from_step']}")
        machine = machine_fields(r)
        if machine["load_1min_mean"] is not None:
            notes.append(f"load {machine['load_1min_mean']:.1f}")
        if machine["cpu_share"] is not None:  # one thread per run: the share of the time it had a core
            notes.append(f"CPU {100 * float(machine['cpu_share']):.0f} %")
        text = f"{_step_seconds(r):.2f}"
        return f"{text} ({', '.join(notes)})" if notes else text

    for method, pattern in seen:
        by_seed = {int(r["seed"]): r for r in timed if r["method"] == method and r["pattern"] == pattern}
        lines.append(f"| {SHORT.get(method, method)} | {_pattern_label(pattern)} | "
                     + " | ".join(cell(by_seed.get(s)) for s in seeds) + " |")
    return "\n".join(lines)


# -- words ------------------------------------------------------------------------------------------------------
def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"



def _difference(r: dict[str, Any]) -> str:
    """``-0.012 [-0.030, +0.006] nats, perplexity ×0.988, 3 seeds``."""
    return f"{nats_text(r)} nats, perplexity ×{np.exp(r['mean']):.3f}, {seeds_text(r['seeds'])}"


def grouped(records: list[dict[str, Any]]) -> str:
    """``has lower perplexity than PLATON (...) and ...; is not separated from ...``, in the records' order."""
    words = {"lower perplexity": "has lower perplexity than", "higher perplexity": "has higher perplexity than",
             "not separated": "is not separated from"}
    groups = []
    for verdict in ("lower perplexity", "not separated", "higher perplexity"):
        items = [f"{NAMES.get(r['other'], r['other'])} ({_difference(r)})" for r in records
                 if r.get("verdict") == verdict]
        if items:
            listed = items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
            groups.append(f"{words[verdict]} {listed}")
    return "; ".join(groups)


def _paired(records: list[dict[str, Any]], kind: str, **where: str) -> list[dict[str, Any]]:
    """The comparisons of ``kind`` that have an interval (not refused), those matching ``where`` (pattern,
    test_set, other)."""
    return [r for r in records if r["kind"] == kind and "refused" not in r and all(r[k] == v for k, v in where.items())]


CONCLUSIONS = {"lower perplexity": "pruning during fine-tuning gives the lower perplexity",
               "higher perplexity": "one-shot pruning then fine-tuning gives the lower perplexity",
               "not separated": "the two are not separated"}


def _answers(records: list[dict[str, Any]], split: str = "test") -> list[str]:
    """One clause per pattern: the best arm pruned during fine-tuning minus the best one-shot arm; where
    that rests on fewer seeds than other arms have, the same among the arms with the most seeds."""
    out = []
    for pattern in PATTERNS.values():
        for r in _paired(records, "best", pattern=pattern, test_set=split):
            clause = (f"at {pattern}, {CONCLUSIONS[r['verdict']]} ({SHORT[r['ours']]} − {SHORT[r['other']]} + "
                      f"fine-tuning: {_difference(r)})")
            for more in _paired(records, "best_seeded", pattern=pattern, test_set=split):
                same = "the same" if more["verdict"] == r["verdict"] else CONCLUSIONS[more["verdict"]]
                clause += (f", and among the arms with {more['seeds']} seeds {same} ({SHORT[more['ours']]} − "
                           f"{SHORT[more['other']]} + fine-tuning: {_difference(more)})")
            out.append(clause)
    return out


def answer(records: list[dict[str, Any]], committed: int, matched_pairs: list[tuple[str, str, str]] = MATCHED) -> str:
    """The protocol's answer in one sentence, worded from the paired intervals on the held-out plays, or
    where its runs stand; with the ``matched`` comparisons of ``matched_pairs`` (:data:`MATCHED`)."""
    clauses = _answers(records)
    if not clauses:
        return (f"Runs in progress: {committed} run{'s' if committed != 1 else ''} of protocol L committed so far, "
                "not yet a pair of a one-shot arm and an arm pruned during fine-tuning on the same seed.")
    shown = {(during, oneshot) for during, oneshot, _ in matched_pairs}
    matched = [r for r in _paired(records, "matched", test_set="test") if (r["ours"], r["other"]) in shown]
    alike = "".join(f" With {r['alike']} on both sides ({r['pattern']}), {SHORT[r['ours']]} − {SHORT[r['other']]} "
                    f"+ fine-tuning: {r['verdict']} ({_difference(r)})." for r in matched)
    used = [r for r in records if r["kind"] != "matched" or (r["ours"], r["other"]) in shown]
    return (f"On the held-out plays, {'; '.join(clauses)}. Each side is its arm with the lowest perplexity on these "
            f"windows, picked after the fact.{alike}{_few_seeds_caveat(used)}")


def _few_seeds_caveat(records: list[dict[str, Any]]) -> str:
    """A sentence where the answer rests on fewer than three seeds: with one, its interval resamples test
    windows only; with two, the spread between seeds rests on two draws. It names only the counts that
    occur among the answer's comparisons."""
    seeds = [r["seeds"] for r in _paired(records, "best") + _paired(records, "matched")]
    few = {n for n in seeds if n < 3}
    if not few:
        return ""
    if max(seeds) < 2:
        return " One seed so far: the interval covers the test windows, not the spread between seeds."
    if set(seeds) == {2}:
        return (" Two seeds so far: the interval's spread between seeds rests on two draws (the protocol asks for "
                "three).")
    if few == {2}:
        return " Where two seeds, the spread between seeds rests on two draws (the protocol asks for three)."
    return (" Where one seed, the interval covers the test windows, not the spread between seeds"
            + ("; where two, that spread rests on two draws" if 2 in few else "") + " (the protocol asks for three).")


def summary_lines(records: list[dict[str, Any]], committed: int) -> list[str]:
    """The page summary's paragraph for protocol L (results_summary.page_summary)."""
    shown = [p for p in PATTERNS.values() if any(r["pattern"] == p for r in records)] or ["50 %", "2:4"]
    kinds = [p if ":" in p else f"{p} unstructured" for p in shown]
    kinds_text = kinds[0] if len(kinds) == 1 else f"{', '.join(kinds[:-1])} and {kinds[-1]}"
    head = ("**L. Decoder LMs** (SmolLM2-135M on the Shakespeare plays, 268 fine-tuning steps, "
            f"{kinds_text}, section L). {QUESTION}")
    lines = [head, "", f"- {answer(records, committed)}"]
    for pattern in PATTERNS.values():
        for split, where in TEST_SETS.items():
            chosen = _paired(records, "seven", pattern=pattern, test_set=split)
            if chosen:
                lines.append(f"- At {pattern}, on {where}, SEVEN_dyn {grouped(chosen)}.")
    return lines + [""]


def readme_line(records: list[dict[str, Any]], committed: int) -> str:
    """README's results glance: protocol L's question and its answer."""
    return ("Decoder LMs (protocol L, SmolLM2-135M on Shakespeare, 268 fine-tuning steps): prune while "
            f"fine-tuning, or one-shot then fine-tune? {answer(records, committed, MATCHED[:1])} The 50 % "
            "comparison taken apart (when the masks are chosen, where the sparsity goes): docs/results.md, L.2c.")


def reading(one: list[dict[str, Any]], ft: list[dict[str, Any]], records: list[dict[str, Any]]) -> str:
    """The numbers the section's reading rests on, in sentences generated from the tables and intervals."""
    if not one and not ft:
        return NONE_YET
    seeds = sorted({int(r["seed"]) for r in one + ft})
    lines = [f"- **Runs.** {_runs(len(one))} without fine-tuning (one shot) and {_runs(len(ft))} fine-tuned committed, "
             f"seeds {', '.join(map(str, seeds))}; every run scored on the same windows of both test sets."]
    start = [perplexity(r, "test") for r in one if r["method"] == "dense"]
    start_ptb = [perplexity(r, "ptb") for r in one if r["method"] == "dense"]
    tuned = fine_tuned_patterns(ft)
    for pattern, label in ONESHOT_PATTERNS.items():
        shots = [f"{SHORT[m]} {ppl_cell([perplexity(r, 'test') for r in _of(one, m, pattern)])} "
                 f"(PTB {ppl_cell([perplexity(r, 'ptb') for r in _of(one, m, pattern)])})" for m in ONESHOT_ROWS[1:]
                 if _of(one, m, pattern)]
        if shots:
            base = f"; the starting model {np.mean(start):.2f} (PTB {np.mean(start_ptb):.2f})" if start else ""
            lines.append(f"- **One shot, no fine-tuning, {label}:** perplexity on the held-out plays "
                         f"{', '.join(shots)}{base}.")
        if pattern not in tuned:  # fine-tuned at 50 %, 2:4 and 70 % only, once pruned runs are in
            continue
        arms = [(m, mean_loss(ft, m, pattern)) for m in FT_ORDER]
        arms = [(m, v) for m, v in arms if v is not None]
        if arms:
            listed = ", ".join(f"{NAMES[m]} {ppl_cell([perplexity(r, 'test') for r in _of(ft, m, pattern)])}"
                               for m, _ in sorted(arms, key=lambda a: a[1]))
            lines.append(f"- **Fine-tuned, {label}, lowest perplexity on the held-out plays first:** {listed}.")
    clauses = _answers(records)
    ptb = _answers(records, "ptb")
    if clauses:
        lines.append(f"- **The question.** On the held-out plays, {'; '.join(clauses)}."
                     + (f" On PTB, {'; '.join(ptb)}." if ptb else "") + _few_seeds_caveat(records))
    for during, oneshot, where in MATCHED:
        matched = _paired(records, "matched", ours=during, other=oneshot)
        if matched:
            lines.append(f"- **{where[0].upper() + where[1:]} on both sides** ({SHORT[during]} − {NAMES[oneshot]}): "
                         + "; ".join(f"{r['pattern']}, {TEST_SETS[r['test_set']]}: {r['verdict']} ({_difference(r)})"
                                     for r in matched) + ".")
    allocation = _paired(records, "allocation")
    if allocation:
        lines.append(f"- **SEVEN_dyn's allocation, the masks chosen one shot** ({SHORT[ALLOC]} − SparseGPT, both "
                     "fine-tuned): " + "; ".join(f"{r['pattern']}, {TEST_SETS[r['test_set']]}: {r['verdict']} "
                                                 f"({_difference(r)})" for r in allocation) + ".")
    control = _paired(records, "seven", other="seven_nd")
    if control:
        lines.append("- **The noise discount** (SEVEN_dyn − its control): "
                     + "; ".join(f"{r['pattern']}, {TEST_SETS[r['test_set']]}: {r['verdict']} ({_difference(r)})"
                                 for r in control) + ".")
    return "\n".join(lines)


# -- the page's blocks ---------------------------------------------------------------------------------------
def blocks() -> dict[str, str]:
    one, ft = runs()
    records = paired_records(ft)
    if records:
        write_records(protocol_dir("L") / "paired.json", records)
    out = {"L_oneshot": NONE_YET, "L_ft": NONE_YET, "L_paired": paired_table(records), "L_cost": NONE_YET,
           "L_alloc": allocation_table(ft), "L_reading": reading(one, ft, records),
           "L_factors": factor_block(ft, records)}
    if one:
        unused = ", which magnitude does not use" if any(r["method"] == "magnitude_init" for r in one) else ""
        out["L_oneshot"] = ("\n\n".join(f"{ON[split]}:\n\n{oneshot_table(one, split)}"
                                        for split in TEST_SETS) + "\n\n"
                            + f"Mean ± sample sd of perplexity over seeds (seeds in brackets; the seed draws the 128 "
                              f"calibration windows{unused}), ×: the ratio of the mean to the starting model's; "
                              f"{_runs(len(one))}. Code: commit(s) "
                              f"{', '.join(c[:10] for c in commits(one))}.")
    if ft:
        hours = sum(float(r["seconds"]) for r in ft) / 3600
        out["L_ft"] = (perplexity_table(ft, FT_ORDER, LABELS) + "\n\n"
                       + f"Mean ± sample sd of perplexity over seeds (seeds in brackets); {_runs(len(ft))}, "
                         f"{hours:.1f} h of compute (one thread each, two runs side by side). Code: commit(s) "
                         f"{', '.join(c[:10] for c in commits(ft))}.")
    if one or ft:
        out["L_cost"] = cost_table(one + ft)
    out["L_cost_runs"] = step_seconds_table(ft)
    return out
