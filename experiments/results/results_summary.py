"""The summary that opens docs/results.md and the results at a glance of README.md, generated from the paired
records each protocol module commits (docs/results/R/paired.json, R/paired_opt.json, R/paired_pre.json,
S/pooled.json, V/paired.json, L/paired.json), so that neither can say more than the intervals do.

Both read only those small JSON files (no bootstrap), which is what lets a test compare the README with
them quickly (tests/test_readme.py).
"""

from __future__ import annotations

from typing import Any

import results_L
from results_common import NAMES, grouped_verdicts, protocol_dir, read_records
from sevenprune.tasks.stats import format_points

R_OTHERS = ["platon", "seven_nd", "magnitude", "dense"]  # the comparisons the summary names at each sparsity
R_WEAK = ["movement", "soft_movement", "random"]  # said once, if SEVEN is ahead of them at every sparsity
PRE_OTHERS = ["seven_pre_frozen", "snip", "grasp", "force", "magnitude_init", "random_init", "dense"]
V_DYN_OTHERS = ["platon", "seven_nd", "magnitude", "dense"]
V_PRE_OTHERS = ["snip", "grasp", "magnitude_init", "dense"]


def records() -> dict[str, list[dict[str, Any]]]:
    """The committed paired records: ``R`` (SEVEN_dyn), ``R_opt`` (SEVEN reading AdamW's moments), ``R_pre``
    (SEVEN_pre), ``S`` (pooled), ``V``, ``L`` (language models: window losses, results_L)."""
    return {"R": read_records(protocol_dir("R") / "paired.json"),
            "R_opt": read_records(protocol_dir("R") / "paired_opt.json"),
            "R_pre": read_records(protocol_dir("R") / "paired_pre.json"),
            "S": read_records(protocol_dir("S") / "pooled.json"),
            "V": read_records(protocol_dir("V") / "paired.json"),
            "L": read_records(protocol_dir("L") / "paired.json")}


def _at(recs: list[dict[str, Any]], ours: str, sparsity: float) -> list[dict[str, Any]]:
    return [r for r in recs if r["ours"] == ours and r["sparsity"] == sparsity]


def _sparsities(recs: list[dict[str, Any]], ours: str) -> list[float]:
    return sorted({r["sparsity"] for r in recs if r["ours"] == ours})


def _per_sparsity(recs: list[dict[str, Any]], ours: str, others: list[str]) -> list[str]:
    """``At 80 %, SEVEN_dyn is not separated from ...; ahead of ...``, one sentence a sparsity."""
    out = []
    for s in _sparsities(recs, ours):
        text = grouped_verdicts(_at(recs, ours, s), others)
        if text:
            out.append(f"At {s * 100:g} %, {NAMES[ours]} is {text}.")
    return out


def _always_ahead(recs: list[dict[str, Any]], ours: str, others: list[str]) -> str:
    """``SEVEN_dyn is ahead of movement, ... at every sparsity (by 4.0 to 36.0 points).``, if it is."""
    chosen = [r for r in recs if r["ours"] == ours and r["other"] in others]
    if not chosen or any(r["verdict"] != "ahead" for r in chosen):
        return ""
    names = [NAMES.get(o, o) for o in others if any(r["other"] == o for r in chosen)]
    listed = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]
    low, high = min(r["mean"] for r in chosen) * 100, max(r["mean"] for r in chosen) * 100
    return f"{NAMES[ours]} is ahead of {listed} at every sparsity (by {low:.1f} to {high:.1f} points)."


def _pooled(r: dict[str, Any]) -> str:
    return (f"{format_points(r['mean'], r['low'], r['high'], digits=2)} points over {r['conditions']} conditions "
            f"({r['seeds']} condition-seed pairs), {r['verdict']}")


def page_summary(recs: dict[str, list[dict[str, Any]]] | None = None) -> str:
    """The page's opening: per protocol, the question it answers and the verdicts, generated."""
    recs = records() if recs is None else recs
    lines = []
    r = recs["R"]
    if r:
        lines += ["**R. Pruning during fine-tuning** (MiniLM on movie reviews, 268 steps, section R.1). *Does "
                  "SEVEN_dyn keep more accuracy than the methods that prune during fine-tuning, and does its "
                  "noise discount matter?*", ""]
        lines += [f"- {s}" for s in _per_sparsity(r, "seven", R_OTHERS)]
        weak = _always_ahead(r, "seven", R_WEAK)
        lines += [f"- {weak}"] if weak else []
        lines.append("")
    opt = recs.get("R_opt", [])
    if opt:
        lines += ["**R.2b SEVEN reading AdamW's moments** (`moments=\"optimizer\"`: 5 bytes of pruner state per "
                  "weight instead of 13, section R.2b). *Does it prune as well as SEVEN's own moments?*", ""]
        lines += [f"- {x}" for x in _per_sparsity(opt, "seven_opt", ["seven", "seven_nd"])]
        lines.append("")
    pre = recs["R_pre"]
    if pre:
        lines += ["**R.3 Pruning early** (the same protocol, masks chosen in the first 100 steps or before "
                  "fine-tuning). *Does SEVEN_pre beat pruning at initialisation at the same budget?*", ""]
        lines += [f"- {s}" for s in _per_sparsity(pre, "seven_pre", PRE_OTHERS)]
        lines.append("")
    s = recs["S"]
    if s:
        lines += ["**S. Fine-tuning strategies** (protocol R at 80 % with the batch size, learning rate, schedule "
                  "or optimizer changed). *Does the noise discount help where the paper says it should, when "
                  "gradients are noisier or the training differs?* Pooled over every condition where both ran "
                  "on the same seeds, SEVEN_dyn minus:", ""]
        lines += [f"- {NAMES.get(p['other'], p['other'])}: {_pooled(p)}." for p in s]
        lines.append("")
    v = recs["V"]
    if v:
        lines += ["**V. Images** (a 4-layer ViT on Fashion-MNIST at protocol R's proportions, all 10,000 test "
                  "images). *Do the text results carry over to images?*", ""]
        lines += [f"- {x}" for x in _per_sparsity(v, "seven", V_DYN_OTHERS)]
        lines += [f"- {x}" for x in _per_sparsity(v, "seven_pre", V_PRE_OTHERS)]
        lines.append("")
    # protocol L is always listed: while its runs are in progress it says how many are committed
    lines += results_L.summary_lines(recs.get("L", []), results_L.committed_count())
    return "\n".join(lines)


def readme_glance(recs: dict[str, list[dict[str, Any]]] | None = None) -> str:
    """Four sentences for the README, each with its interval: SEVEN_dyn at 80 %, against dense at the
    highest sparsity, what the noise discount adds pooled over the strategy study, and protocol L's answer
    for decoder LMs (or how many of its runs are committed)."""
    recs = records() if recs is None else recs
    r = recs["R"]
    if not r:
        return "(no paired comparison yet)"
    sentences = [f"At 80 % sparsity, SEVEN_dyn is {grouped_verdicts(_at(r, 'seven', 0.8), ['platon', 'seven_nd', 'magnitude'])}."]
    top = _sparsities(r, "seven")[-1]
    sentences.append(f"At {top * 100:g} %, it is {grouped_verdicts(_at(r, 'seven', top), ['dense'])}.")
    control = [p for p in recs["S"] if p["other"] == "seven_nd"]
    if control:
        sentences.append("What the noise discount adds (SEVEN_dyn minus its noise_discount=False control), pooled "
                         f"over the fine-tuning strategies and sparsities: {_pooled(control[0])}.")
    sentences.append(results_L.readme_line(recs.get("L", []), results_L.committed_count()))
    return "\n".join(f"- {s}" for s in sentences)
