"""experiments/results: each protocol's tables are rebuilt from committed-format files, with the right numbers.

The modules live in experiments/results/ (on the test path: pyproject's ``pythonpath``); the committed runs
of protocol P in ``results_common.RESULTS / P``, which the fixture points at a temporary folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import collect
import numpy as np
import pytest
import results_common
import results_R as results_R_module
import results_S
import results_V
import todo
import torch
from _tiny_diagnostics import tiny_bert_diagnostics

import sevenprune as sp
from sevenprune._fsutil import RUN_MARKER, write_marker


@pytest.fixture()
def results_R(tmp_path, monkeypatch):
    """protocol R's module, reading committed runs from ``tmp_path/<protocol>/`` and drawing into ``tmp_path/img``."""
    monkeypatch.setattr(results_common, "RESULTS", tmp_path)
    monkeypatch.setattr(results_common, "IMG", tmp_path / "img")
    monkeypatch.setattr(results_common, "N_BOOT", 300)
    (tmp_path / "img").mkdir()
    return results_R_module


def _diagnostics(path: Path) -> None:
    """A real diagnostics.json from a tiny BERT (the names the plots parse)."""
    tiny_bert_diagnostics("seven")[1].save(path)


def _run(root: Path, sweep: str, name: str, seed: int, sparsity: float, correct: np.ndarray, diag: bool) -> None:
    d = root / sweep / (f"dense-seed{seed}" if name == "dense" else f"{name}-s{sparsity:g}-seed{seed}")
    d.mkdir(parents=True)
    labels = np.arange(correct.size) % 2
    pred = np.where(correct == 1, labels, 1 - labels)
    np.savez_compressed(d / "predictions.npz", **{"test.pred": pred, "test.label": labels})
    result = {"method": name, "seed": seed, "target_sparsity": 0.0 if name == "dense" else sparsity,
              "metrics": {"accuracy": float(correct.mean())}, "seconds": 100.0, "layers": {"a.weight": sparsity},
              "window_steps": 180, "window_seconds": 200.0, "pruner_seconds": 20.0}
    (d / "result.json").write_text(json.dumps(result))
    (d / "config.json").write_text(json.dumps({"code": {"git_commit": "abc1234567890"}}))
    if diag:
        _diagnostics(d / "diagnostics.json")


def test_protocol_R_blocks_from_committed_files(results_R, tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "R"
    for seed in (1, 2, 3):
        base = (rng.random(400) < 0.75).astype(np.int8)
        better = base.copy()
        better[np.flatnonzero(base == 0)[:40]] = 1  # SEVEN right on 40 more sentences: +10 points
        _run(root, "R_dyn80", "dense", seed, 0.0, better, False)
        _run(root, "R_dyn80", "seven", seed, 0.8, better, seed == 1)
        _run(root, "R_dyn80", "platon", seed, 0.8, better, False)   # identical predictions: not separated
        _run(root, "R_dyn80", "seven_nd", seed, 0.8, base, False)
        # SEVEN right on the same 3 sentences in every seed where random is wrong, and the same elsewhere:
        # redrawn per seed these are 9 independent sentences (no draw of 1,200 misses all: ahead); shared
        # by the seeds they are 3, which a draw of 400 misses with probability (1 - 3/400)^400 = 0.049 >
        # 0.025 (the interval reaches 0: not separated)
        lucky = better.copy()
        lucky[np.flatnonzero(better == 1)[:3]] = 0
        _run(root, "R_dyn80", "random", seed, 0.8, lucky, False)
    blocks = results_R.blocks()
    # the main table: the mean and sample sd over the 3 seeds, computed here independently
    accs = [json.loads((root / "R_dyn80" / f"seven-s0.8-seed{s}" / "result.json").read_text())["metrics"]["accuracy"]
            for s in (1, 2, 3)]
    assert f"{np.mean(accs):.3f} ± {np.std(accs, ddof=1):.3f} (3)" in blocks["R_main"]
    rows = {line.split("|")[1].strip(): line for line in blocks["R_paired"].splitlines()[2:]}
    assert "| ahead |" in rows["seven − seven_nd"] and "+10.0 [+" in rows["seven − seven_nd"]
    assert "| not separated |" in rows["seven − platon"] and "+0.0 [+0.0, +0.0]" in rows["seven − platon"]
    assert "| ahead |" in rows["seven − random"] and "+0.8 [+" in rows["seven − random"]
    design = blocks["R_design"].splitlines()
    assert design[0].startswith("4 comparisons, 2 of them ahead or behind") and "1 verdict changes" in design[0]
    changed = [[c.strip() for c in line.split("|")[1:-1]] for line in design[4:]]
    assert len(changed) == 1 and changed[0][0] == "seven − random, 80 %"
    assert changed[0][2] == "ahead" and changed[0][4] == "not separated" and changed[0][3].startswith("+0.8 [+0.0,")
    assert "| 10 % (median) |" in blocks["R_cost"].replace("11.1 %", "10 %") or "11.1 %" in blocks["R_cost"]
    assert "results_R_noise_discount.png" in blocks["R_figures"]
    assert (tmp_path / "img" / "results_R_noise_discount.png").exists()
    # deterministic: a second build gives the same bytes
    first = (tmp_path / "img" / "results_R_dyn.png").read_bytes()
    results_R.blocks()
    assert (tmp_path / "img" / "results_R_dyn.png").read_bytes() == first


def test_collect_copies_summaries_only_and_computes_mask_overlap(tmp_path, monkeypatch):
    monkeypatch.setattr(collect, "RESULTS", tmp_path / "committed")
    monkeypatch.setattr(collect, "OUT", tmp_path / "committed" / "R")
    runs = tmp_path / "runs"
    layer = torch.nn.Linear(4, 1, bias=False)
    keeps = {"seven": [True, True, False, False], "platon": [True, False, True, False]}
    for name, keep in keeps.items():
        d = runs / "R_dyn80" / "runs" / f"{name}-s0.5-seed1"
        pruner = sp.Pruner(layer, "magnitude", 0.5, prune_steps=1)
        pruner.set_masks({"weight": torch.tensor([keep])})
        sp.save_state(pruner, d / "pruner")
        (d / "result.json").write_text(json.dumps({"target_sparsity": 0.5, "seed": 1}))
        (d / "predictions.npz").write_bytes(b"x")
    collect.collect(runs)
    copied = sorted(p.name for p in (tmp_path / "committed" / "R" / "R_dyn80" / "seven-s0.5-seed1").iterdir())
    assert copied == ["predictions.npz", "result.json"]  # never the pruner state or the weights
    pairs = collect.overlap(runs)["s0.5-seed1"]
    # kept sets {0, 1} and {0, 2}: intersection 1, union 3
    assert pairs["platon vs seven"]["all"] == pytest.approx(1 / 3, abs=1e-5)
    assert pairs["platon vs seven"]["layers"]["weight"] == pytest.approx(1 / 3, abs=1e-5)
    # incremental: a pair already computed is kept as it was, a pair whose run is gone is dropped
    known = {"s0.5-seed1": {"platon vs seven": {"all": 0.25, "layers": {}}, "gone vs seven": {"all": 1.0}}}
    assert collect.overlap(runs, known)["s0.5-seed1"] == {"platon vs seven": {"all": 0.25, "layers": {}}}


def test_strategy_study_blocks_pair_seven_with_each_method_at_each_level(results_R, tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "R"
    for seed in (1, 2):
        base = (rng.random(400) < 0.75).astype(np.int8)
        better = base.copy()
        better[np.flatnonzero(base == 0)[:20]] = 1  # right on 20 more of 400 sentences: +5 points
        # the reference level (protocol R itself): SEVEN and its control identical
        _run(root, "R_dyn80", "dense", seed, 0.0, base, False)
        _run(root, "R_dyn80", "seven", seed, 0.8, base, False)
        _run(root, "R_dyn80", "seven_nd", seed, 0.8, base, False)
        _run(root, "R_dyn80", "seven", seed, 0.9, better, False)  # another sparsity: not a level of the study
        # batch 8: SEVEN 5 points ahead of its control on both seeds
        _run(tmp_path / "S", "S_batch80", "seven_b8", seed, 0.8, better, False)
        _run(tmp_path / "S", "S_batch80", "seven_nd_b8", seed, 0.8, base, False)
    (tmp_path / "S" / "S_batch80" / "dense_b8-seed1").mkdir()  # an unfinished run (no result.json) is not read
    blocks = results_S.blocks()
    table = blocks["S_batch"].split("\n\n")
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table[0].splitlines()[2:]}
    acc_base = [json.loads((root / "R_dyn80" / f"seven-s0.8-seed{s}" / "result.json").read_text())["metrics"]["accuracy"]
                for s in (1, 2)]
    acc_better = [json.loads((tmp_path / "S" / "S_batch80" / f"seven_b8-s0.8-seed{s}" / "result.json").read_text())
                  ["metrics"]["accuracy"] for s in (1, 2)]
    # columns: batch 8, 32 (protocol R), 128 (not run)
    assert rows["SEVEN_dyn"] == [f"{np.mean(acc_better):.3f} ± {np.std(acc_better, ddof=1):.3f} (2)",
                                 f"{np.mean(acc_base):.3f} ± {np.std(acc_base, ddof=1):.3f} (2)", "-"]
    assert rows["dense"] == ["-", f"{np.mean(acc_base):.3f} ± {np.std(acc_base, ddof=1):.3f} (2)", "-"]
    paired = {(line.split("|")[1].strip(), line.split("|")[2].strip()): line for line in table[1].splitlines()[2:]}
    assert "+5.0 [+" in paired[("seven − seven_nd", "8")] and "| ahead |" in paired[("seven − seven_nd", "8")]
    assert "+0.0 [+0.0, +0.0]" in paired[("seven − seven_nd", "32")]
    assert ("seven − dense", "8") not in paired  # no dense run at batch 8 finished
    assert blocks["S_lr"] == "(not run yet)" and blocks["S_optimizer"] == "(not run yet)"
    assert "protocol R: not separated" in blocks["S_short"] and "batch 8: ahead (+5.0" in blocks["S_short"]
    assert (tmp_path / "img" / "results_S.png").exists()
    # the discount pooled: protocol R at 80 % (0 on both seeds) and batch 8 (+5 on both); 90 % has no
    # control, so it is no condition. Mean over the four pairs: (0 + 0 + 5 + 5) / 4 = +2.5 points
    per_condition, _, summary = blocks["S_discount_pooled"].split("\n\n")
    pooled = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
              for line in per_condition.splitlines()[2:]}
    assert list(pooled) == ["protocol R, 80 %", "batch 8", "**all 2 conditions pooled**"]
    assert pooled["protocol R, 80 %"][:3] == ["2", "+0.0 [+0.0, +0.0]", "not separated"]
    assert pooled["batch 8"][1].startswith("+5.0 [+") and pooled["batch 8"][2:] == ["ahead", "2 / 0"]
    assert pooled["**all 2 conditions pooled**"][0] == "4"
    assert pooled["**all 2 conditions pooled**"][1].startswith("**+2.5 [+")
    assert pooled["**all 2 conditions pooled**"][2:] == ["**ahead**", "2 / 0"]
    # the summary over methods: only the control ran beside SEVEN here, so one row, the same pooling
    rows = [[c.strip() for c in line.split("|")[1:-1]] for line in summary.splitlines()[2:]]
    assert len(rows) == 1 and rows[0][:3] == ["SEVEN, noise_discount=False", "2", "4"]
    assert rows[0][3] == pooled["**all 2 conditions pooled**"][1].strip("*") and rows[0][4] == "ahead"


def test_optimizer_factor_takes_dense_from_the_search_run_at_the_rate_the_sweep_used(results_R, tmp_path):
    root = tmp_path / "R"
    rng = np.random.default_rng(2)
    base = (rng.random(400) < 0.75).astype(np.int8)
    worse = base.copy()
    worse[np.flatnonzero(base == 1)[:40]] = 0  # 10 points below
    _run(root, "R_dyn80", "dense", 1, 0.0, base, False)
    _run(root, "R_dyn80", "seven", 1, 0.8, base, False)
    s_root = tmp_path / "S"
    _run(s_root, "S_optim80", "seven_sgd", 1, 0.8, base, False)
    (s_root / "S_optim80" / "seven_sgd-s0.8-seed1" / "config.json").write_text(json.dumps({"optimizer": "sgd", "lr": 0.03}))
    (s_root / "S_lr_dense").mkdir()
    for lr, correct in (("0.01", base), ("0.03", worse)):  # the sweep ran at 0.03: that dense run is the cell
        _run(s_root, "tmp", "dense", 1, 0.0, correct, False)
        (s_root / "tmp" / "dense-seed1").rename(s_root / "S_lr_dense" / f"sgd_lr{lr}-seed1")
    blocks = results_S.blocks()
    table, paired = blocks["S_optimizer"].split("\n\n")
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table.splitlines()[2:]}
    assert rows["dense"] == [f"{base.mean():.3f} (1)", f"{worse.mean():.3f} (1)", "-"]
    line = next(ln for ln in paired.splitlines() if "seven − dense | SGD" in ln)
    assert "+10.0 [+" in line and "| ahead |" in line
    search = {ln.split("|")[2].strip(): ln.split("|")[4].strip() for ln in blocks["S_lr_dense"].splitlines()[2:]}
    assert search == {"0.01": "", "0.03": "yes"}


@pytest.mark.parametrize("run, expected", [("seven_nd_b8-s0.8-seed1", ("seven_nd", "b8")),
                                           ("seven-s0.8-seed3", ("seven", None)),
                                           ("dense_lr0.3x-seed2", ("dense", "lr0.3x")),
                                           ("magnitude_adafactor-s0.8-seed1", ("magnitude", "adafactor")),
                                           ("dense-seed1", ("dense", None))])
def test_strategy_study_reads_method_and_level_from_the_run_name(run, expected):
    assert results_S._split(run) == expected


def test_pretrained_function_table_averages_each_methods_runs(results_R, tmp_path):
    root = tmp_path / "R"
    root.mkdir()
    data = {"dense (no mask)": {"cosine_to_dense": 1.0, "probe_accuracy": 0.75, "majority_class_rate": 0.53},
            "R_base80/movement-s0.8-seed1": {"cosine_to_dense": 0.01, "probe_accuracy": 0.50},
            "R_base80/movement-s0.8-seed2": {"cosine_to_dense": 0.03, "probe_accuracy": 0.56},
            "R_pooler80/seven-s0.9-seed1": {"cosine_to_dense": 0.9, "probe_accuracy": 0.9},  # another target set
            "R_dyn90/seven-s0.9-seed1": {"cosine_to_dense": 0.3, "probe_accuracy": 0.7, "layer_output_norm_ratio": 0.4,
                                         "layer_output_cosine": 0.5, "layer_output_unit_shift": 0.6}}
    (root / "pretrained_function.json").write_text(json.dumps(data))
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): [c.strip() for c in line.split("|")[3:-1]]
            for line in results_R.pretrained_function_table(results_R.DYN_ORDER + results_R.POOLER_ORDER)
            .splitlines()[2:]}
    assert rows[("movement (authors' form, per matrix)", "80%")] == ["0.020", "0.530", "-", "-", "-", "2"]
    assert rows[("SEVEN_dyn", "90%")] == ["0.300", "0.700", "0.400", "0.500", "0.600", "1"]  # not the pooler run
    assert rows[("SEVEN_dyn, pooler included (R.2)", "90%")][:2] == ["0.900", "0.900"]
    assert rows[("(the probe's majority-class rate)", "-")] == ["-", "0.530", "-", "-", "-", "-"]


def test_collect_recomputes_the_overlap_of_a_run_made_again_under_the_same_name(tmp_path, monkeypatch):
    """The random runs were made again once --seed reached random pruning: same folder names, other masks.
    The cached overlap of the old masks must not survive the new run's collection."""
    monkeypatch.setattr(collect, "RESULTS", tmp_path / "committed")
    monkeypatch.setattr(collect, "OUT", tmp_path / "committed" / "R")
    monkeypatch.setattr(collect, "ROOT", tmp_path)
    monkeypatch.setattr(collect, "pretrained_magnitude_overlap", lambda runs, known=None: {})
    monkeypatch.setattr(collect, "pretrained_function", lambda runs, known: {})
    monkeypatch.setattr(sys, "argv", ["collect", "--runs", str(tmp_path / "runs")])
    layer = torch.nn.Linear(4, 1, bias=False)

    def make(name: str, keep: list[bool], accuracy: float) -> None:
        d = tmp_path / "runs" / "R_base80" / "runs" / f"{name}-s0.5-seed1"
        pruner = sp.Pruner(layer, "magnitude", 0.5, prune_steps=1)
        pruner.set_masks({"weight": torch.tensor([keep])})
        sp.save_state(pruner, d / "pruner", overwrite=True)
        (d / "result.json").write_text(json.dumps({"target_sparsity": 0.5, "seed": 1, "accuracy": accuracy}))

    make("seven", [True, True, False, False], 0.8)
    make("random", [True, True, False, False], 0.7)   # the old draw: the same kept set as seven
    assert collect.main() == 0
    stored = json.loads((tmp_path / "committed" / "R" / "overlap.json").read_text())
    assert stored["s0.5-seed1"]["random vs seven"]["all"] == 1.0
    make("random", [False, False, True, True], 0.6)   # made again: a disjoint kept set
    assert collect.main() == 0
    stored = json.loads((tmp_path / "committed" / "R" / "overlap.json").read_text())
    assert stored["s0.5-seed1"]["random vs seven"]["all"] == 0.0
    copied = json.loads((tmp_path / "committed" / "R" / "R_base80" / "random-s0.5-seed1" / "result.json").read_text())
    assert copied["accuracy"] == 0.6


def test_forget_drops_only_the_stale_runs_entries():
    cache = {"s0.8-seed1": {"random vs seven": 1, "platon vs seven": 2}, "s0.8-seed2": {"random vs seven": 3}}
    assert collect.forget(cache, {"R_base80/random-s0.8-seed1"}, by_pair=True) == {
        "s0.8-seed1": {"platon vs seven": 2}, "s0.8-seed2": {"random vs seven": 3}}
    # a new run of another study under a name of R's (protocol V's ViT) is not one of the pairs' runs
    assert collect.forget(cache, {"V_dyn/random-s0.8-seed1", "R_pooler80/platon-s0.8-seed1"}, by_pair=True) == cache
    runs = {"R_base80/random-s0.8-seed1": 1, "R_pre80/random_init-s0.8-seed1": 2}
    assert collect.forget(runs, {"R_base80/random-s0.8-seed1"}) == {"R_pre80/random_init-s0.8-seed1": 2}


def test_collect_on_a_machine_without_the_earlier_runs_masks_keeps_their_figures(tmp_path, monkeypatch):
    """Sweeps resume on a fresh machine: the runs folder holds only the new runs, the earlier runs exist
    only as committed summaries. Their cached figures cannot be recomputed and must not be dropped; a
    withdrawn run's (no summary anywhere) must."""
    monkeypatch.setattr(collect, "RESULTS", tmp_path / "committed")
    committed = tmp_path / "committed" / "R"
    monkeypatch.setattr(collect, "OUT", committed)
    monkeypatch.setattr(collect, "ROOT", tmp_path)
    monkeypatch.setattr(sys, "argv", ["collect", "--runs", str(tmp_path / "runs")])
    for run in ("R_dyn80/seven-s0.8-seed1", "R_dyn80/platon-s0.8-seed1", "R_pre80/snip-s0.8-seed1"):
        (committed / run).mkdir(parents=True)
        (committed / run / "result.json").write_text(json.dumps({"target_sparsity": 0.8, "seed": 1}))
    cached = {
        "overlap.json": {"s0.8-seed1": {"platon vs seven": {"all": 0.9, "layers": {}},
                                        "random vs seven": {"all": 0.2, "layers": {}}}},  # random: withdrawn
        "magnitude_overlap.json": {"R_dyn80/seven-s0.8-seed1": {"kept_in_pretrained_top_abs_w": 0.5,
                                                                "kept_fraction": 0.2},
                                   "R_base80/random-s0.8-seed1": {"kept_in_pretrained_top_abs_w": 0.2,
                                                                  "kept_fraction": 0.2}},
        "pretrained_function.json": {"R_pre80/snip-s0.8-seed1": {"probe_accuracy": 0.7},
                                     "R_base80/random-s0.8-seed1": {"probe_accuracy": 0.6},
                                     "dense (no mask)": {"probe_accuracy": 0.8}},
    }
    for name, data in cached.items():
        (committed / name).write_text(json.dumps(data))
    # this machine's runs: one new run at another sparsity, with its masks
    new = tmp_path / "runs" / "R_base50" / "runs" / "magnitude-s0.5-seed1"
    pruner = sp.Pruner(torch.nn.Linear(4, 1, bias=False), "magnitude", 0.5, prune_steps=1)
    pruner.set_masks({"weight": torch.tensor([[True, False, True, False]])})
    sp.save_state(pruner, new / "pruner")
    (new / "result.json").write_text(json.dumps({"target_sparsity": 0.5, "seed": 1}))
    # the real function on this run folder: the function probe needs the task's data, so it is called
    # directly below, on a run folder without masks (nothing to compute, nothing to load)
    pretrained_function = collect.pretrained_function
    monkeypatch.setattr(collect, "pretrained_function", lambda runs, known: known)
    assert collect.main() == 0
    stored = {name: json.loads((committed / name).read_text()) for name in cached}
    assert stored["overlap.json"] == {"s0.8-seed1": {"platon vs seven": {"all": 0.9, "layers": {}}}}
    assert stored["magnitude_overlap.json"] == {"R_dyn80/seven-s0.8-seed1": cached["magnitude_overlap.json"][
        "R_dyn80/seven-s0.8-seed1"]}
    assert (committed / "R_base50" / "magnitude-s0.5-seed1" / "result.json").exists()
    function = pretrained_function(tmp_path / "empty", cached["pretrained_function.json"])
    assert function == {"R_pre80/snip-s0.8-seed1": {"probe_accuracy": 0.7}, "dense (no mask)": {"probe_accuracy": 0.8}}


def test_todo_lists_the_runs_not_committed_and_the_sweeps_that_make_exactly_those(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(todo, "ROOT", tmp_path)
    monkeypatch.setattr(todo, "CONFIGS", tmp_path / "experiments" / "results")
    committed = tmp_path / "docs" / "results"
    monkeypatch.setattr(todo, "COMMITTED", committed)
    (tmp_path / "experiments" / "results" / "R").mkdir(parents=True)
    (tmp_path / "experiments" / "results" / "S").mkdir(parents=True)
    config = tmp_path / "experiments" / "results" / "R" / "R_x80.json"
    config.write_text(json.dumps({"task": "mr", "methods": ["dense", "seven", "platon"], "sparsities": [0.8],
                                  "seeds": [1, 2], "out": "runs/results/R_x80"}))
    optim = tmp_path / "experiments" / "results" / "S" / "S_o80.json"
    optim.write_text(json.dumps({"task": "mr", "methods": ["dense_sgd"], "sparsities": [0.8], "seeds": [1, 2],
                                 "variants": {"dense_sgd": {"method": "dense", "optimizer": "sgd", "lr": 0.01}},
                                 "out": "runs/results/S_o80"}))
    for run in ("R/R_x80/dense-seed1", "R/R_x80/seven-s0.8-seed1", "R/R_x80/platon-s0.8-seed2",
                "S/S_lr_dense/sgd_lr0.01-seed1"):  # the search's dense run at the rate used: seed 1's cell
        (committed / run).mkdir(parents=True)
        (committed / run / "result.json").write_text("{}")
    (committed / "R" / "R_x80" / "seven-s0.8-seed2").mkdir()  # unfinished (no result.json): still to make
    assert [c.stem for c in todo.configs()] == ["R_x80", "S_o80"]
    assert todo.missing(config) == [(1, "platon", "platon-s0.8-seed1"), (2, "dense", "dense-seed2"),
                                    (2, "seven", "seven-s0.8-seed2")]
    assert todo.commands(config, todo.missing(config)) == [
        "sevenprune sweep --config experiments/results/R/R_x80.json --methods platon --seeds 1",
        "sevenprune sweep --config experiments/results/R/R_x80.json --methods dense seven --seeds 2"]
    assert todo.tsv_lines(config, todo.missing(config)) == [  # what run_L.sh reads: the same sweeps, tab-separated
        "experiments/results/R/R_x80.json\t1\tplaton", "experiments/results/R/R_x80.json\t2\tdense seven"]
    assert todo.missing(optim) == [(2, "dense_sgd", "dense_sgd-seed2")]
    # a sweeps folder elsewhere: missing runs with a checkpoint there are listed with their step; a finished
    # (committed) run's leftover checkpoint and a run folder without one are not
    runs = tmp_path / "sweeps"
    for run, state in (("platon-s0.8-seed1", {"loop": {"step": 150}, "max_steps": 268}),
                       ("dense-seed1", {"loop": {"step": 50}, "max_steps": 268}),
                       ("seven-s0.8-seed2", None)):
        (runs / "R_x80" / "runs" / run / "checkpoint").mkdir(parents=True)
        write_marker(runs / "R_x80" / "runs" / run, RUN_MARKER)
        if state is not None:
            (runs / "R_x80" / "runs" / run / "checkpoint" / "state.json").write_text(json.dumps(state))
    assert todo.in_progress(config, todo.missing(config), runs) == ["R_x80/platon-s0.8-seed1: step 150 of 268"]
    (runs / "R_x80" / "runs" / "seven-s0.8-seed2" / "checkpoint" / "state.json").write_text("{")
    assert todo.in_progress(config, todo.missing(config), runs)[1].startswith(
        "R_x80/seven-s0.8-seed2: checkpoint unreadable")
    # resumed, the run writes its newer checkpoints into a hidden folder beside it and leaves the one it went on
    # from in place: the step shown is the newest, the one a sweep started again would resume from
    resumed = runs / "R_x80" / "runs" / ".platon-s0.8-seed1.new-1a2b3c4d"
    (resumed / "checkpoint").mkdir(parents=True)
    write_marker(resumed, RUN_MARKER)
    (resumed / "checkpoint" / "state.json").write_text(json.dumps({"loop": {"step": 200}, "max_steps": 268}))
    assert todo.in_progress(config, todo.missing(config), runs)[0] == "R_x80/platon-s0.8-seed1: step 200 of 268"
    (resumed / "checkpoint" / "state.json").write_text("{")  # the newer one damaged: the older one stands
    assert todo.in_progress(config, todo.missing(config), runs)[0] == "R_x80/platon-s0.8-seed1: step 150 of 268"
    with pytest.raises(SystemExit, match="--runs .*nowhere: no such folder"):
        todo.main(["--runs", str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit, match="--committed .*nowhere: no such folder"):
        todo.main(["--committed", str(tmp_path / "nowhere")])
    (tmp_path / "none").mkdir()  # --committed: another folder of committed runs, here an empty one
    todo.main(["--tsv", "--committed", str(tmp_path / "none"), "R_x80"])
    assert capsys.readouterr().out.splitlines() == ["experiments/results/R/R_x80.json\t1\tdense seven platon",
                                                    "experiments/results/R/R_x80.json\t2\tdense seven platon"]
    with pytest.raises(SystemExit, match="no configuration R_y80"):
        todo.configs(["R_y80"])


def test_protocol_V_pairs_each_form_of_seven_with_its_own_baselines_and_dense_from_V_dyn(results_R, tmp_path):
    rng = np.random.default_rng(2)
    root = tmp_path / "V"
    for seed in (1, 2):
        base = (rng.random(500) < 0.8).astype(np.int8)
        better = base.copy()
        better[np.flatnonzero(base == 0)[:25]] = 1  # right on 25 more of 500 images: +5 points
        _run(root, "V_dyn", "dense", seed, 0.0, better, False)
        _run(root, "V_dyn", "seven", seed, 0.9, better, seed == 1)
        _run(root, "V_dyn", "seven_nd", seed, 0.9, base, False)
        _run(root, "V_pre", "seven_pre", seed, 0.9, base, False)
        _run(root, "V_pre", "snip", seed, 0.9, better, False)
    _run(root, "V_pretrain", "dense", 1, 0.0, base, False)
    r = json.loads((root / "V_pretrain" / "dense-seed1" / "result.json").read_text())
    r["steps"] = 1000
    (root / "V_pretrain" / "dense-seed1" / "result.json").write_text(json.dumps(r))
    blocks = results_V.blocks()
    assert blocks["V_pretrain"].startswith(f"Pretrained ViT (dense, seed 1): accuracy {base.mean():.4f}")
    assert "after 1000 steps (1.7 min" in blocks["V_pretrain"]
    rows = {(line.split("|")[1].strip(), line.split("|")[2].strip()): line
            for line in blocks["V_paired"].splitlines() if line.startswith("| seven")}
    assert "+5.0 [+" in rows[("seven − seven_nd", "90 %")] and "| ahead |" in rows[("seven − seven_nd", "90 %")]
    assert "+0.0 [+0.0, +0.0]" in rows[("seven − dense", "90 %")]
    # SEVEN_pre is compared with the early methods and with V_dyn's dense runs (V_pre has none)
    assert "-5.0 [" in rows[("seven_pre − snip", "90 %")] and "| behind |" in rows[("seven_pre − snip", "90 %")]
    assert "-5.0 [" in rows[("seven_pre − dense", "90 %")] and "| 2 |" in rows[("seven_pre − dense", "90 %")]
    assert ("seven − platon", "90 %") not in rows  # no PLATON run: no row
    # beside the paper's ViT-B/32 panel at 90 %: .530 - .495 = +3.5 points (paper_figure_values.csv)
    paper = [line for line in blocks["V_paper"].splitlines() if line.startswith("| seven_pre − snip")]
    assert paper == ["| seven_pre − snip | 90 % | +3.5 | " + rows[("seven_pre − snip", "90 %")].split("|")[4].strip()
                     + " | behind |"]
    # the discount's effect on seed 1, the only run with diagnostics: the largest share over the window
    effects = json.loads((root / "V_dyn" / "seven-s0.9-seed1" / "diagnostics.json").read_text())["discount_effect"]
    shares = {e["window_step"]: e["rescued"]["entries"] / (e["rescued"]["entries"] + e["kept_by_both"]["entries"])
              for e in effects}
    top = max(shares, key=shares.get)
    assert blocks["V_discount"].splitlines()[2].startswith(f"| 90 % | 1 | {shares[top] * 100:.2f} % ({top}) |")
    short = blocks["V_short"].splitlines()
    dense = [json.loads((root / "V_dyn" / f"dense-seed{s}" / "result.json").read_text())["metrics"]["accuracy"]
             for s in (1, 2)]
    assert short[1] == f"- Dense: {np.mean(dense):.3f} (2 seeds)."
    assert short[2].startswith("- At 90 %, SEVEN_dyn (") and "ahead of seven_nd (+5.0 [" in short[2]
    assert short[3].startswith("- At 90 %, SEVEN_pre (") and "behind snip (-5.0 [" in short[3]
    assert "with 2 seeds, \"not separated\"" in short[4]  # every comparison has 2 seeds: no "2-2"
    table = blocks["V_main"].split("\n\n")[0].splitlines()
    assert table[0] == "| method | 90 % |" and table[2].startswith("| dense | ")
    assert (tmp_path / "img" / "results_V.png").exists()


def test_collect_puts_each_protocols_runs_in_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(collect, "RESULTS", tmp_path / "committed")
    runs = tmp_path / "runs"
    for sweep, run in (("R_dyn80", "seven-s0.8-seed1"), ("S_batch80", "seven_b8-s0.8-seed1"),
                       ("V_dyn", "seven-s0.9-seed1"), ("X_other", "seven-s0.8-seed1")):  # X: no protocol
        (runs / sweep / "runs" / run).mkdir(parents=True)
        (runs / sweep / "runs" / run / "result.json").write_text(json.dumps({"seed": 1}))
    assert sorted(collect.collect(runs)) == ["R_dyn80/seven-s0.8-seed1", "S_batch80/seven_b8-s0.8-seed1",
                                             "V_dyn/seven-s0.9-seed1"]
    found = sorted(str(p.relative_to(tmp_path / "committed")) for p in (tmp_path / "committed").rglob("result.json"))
    assert found == ["R/R_dyn80/seven-s0.8-seed1/result.json", "S/S_batch80/seven_b8-s0.8-seed1/result.json",
                     "V/V_dyn/seven-s0.9-seed1/result.json"]
    assert collect.uncommitted(runs) == []  # collected once: nothing new the second time
    assert collect.committed() == {"R_dyn80/seven-s0.8-seed1", "S_batch80/seven_b8-s0.8-seed1",
                                   "V_dyn/seven-s0.9-seed1"}


# -- protocol L: language models, paired by test window -----------------------------------------------------
def _lm_run(root: Path, sweep: str, name: str, seed: int, losses: dict[str, np.ndarray], sparsity: float = 0.5,
            **extra: float) -> None:
    """A committed protocol-L run: perplexity = exp(mean window loss) on each test set, the windows kept."""
    d = root / sweep / (f"dense-seed{seed}" if name == "dense" else f"{name}-s{sparsity:g}-seed{seed}")
    d.mkdir(parents=True)
    np.savez_compressed(d / "predictions.npz", **{f"{s}.window_loss": v for s, v in losses.items()})
    metrics = {"perplexity": float(np.exp(losses["test"].mean())), "loss": float(losses["test"].mean()),
               "ptb/perplexity": float(np.exp(losses["ptb"].mean())), "ptb/loss": float(losses["ptb"].mean())}
    result = {"method": name, "seed": seed, "target_sparsity": 0.0 if name == "dense" else sparsity, "metrics": metrics,
              "seconds": 600.0, "steps": 0, "train_seconds": 0.0, "window_steps": 0, "pruner_seconds": 0.0,
              "prune_seconds": None, **extra}
    (d / "result.json").write_text(json.dumps(result))
    (d / "config.json").write_text(json.dumps({"code": {"git_commit": "abc1234567890"}}))


def test_paired_window_bootstrap_words_the_loss_difference_from_its_interval():
    rng = np.random.default_rng(3)
    base = [rng.normal(4.0, 0.5, 64) for _ in range(3)]  # three seeds, 64 windows each
    lower = results_common.paired_window_bootstrap([b - 0.1 for b in base], base, n_boot=300)
    assert lower["verdict"] == "lower perplexity" and lower["high"] < 0
    assert lower["mean"] == pytest.approx(-0.1) and (lower["seeds"], lower["windows"]) == (3, 64)
    # noise on the windows, the same shift: still below 0, the interval now wider than a point
    noisy = results_common.paired_window_bootstrap([b - 0.1 + rng.normal(0, 0.05, 64) for b in base], base,
                                                   n_boot=300)
    assert noisy["verdict"] == "lower perplexity" and noisy["low"] < -0.1 < noisy["high"] < 0
    higher = results_common.paired_window_bootstrap(base, [b - 0.1 for b in base], n_boot=300)
    assert higher["verdict"] == "higher perplexity" and higher["low"] > 0
    same = results_common.paired_window_bootstrap(base, [b.copy() for b in base], n_boot=300)
    assert same["verdict"] == "not separated" and (same["mean"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    assert results_common.nats_text(lower) == "-0.100 [-0.100, -0.100]"
    assert results_common.ratio_text(lower) == f"×{np.exp(-0.1):.3f} [{np.exp(-0.1):.3f}, {np.exp(-0.1):.3f}]"
    with pytest.raises(ValueError, match="different numbers of test windows"):
        results_common.paired_window_bootstrap(base, [b[:32] for b in base], n_boot=10)
    with pytest.raises(ValueError, match="different numbers of test windows"):  # one seed scored differently
        results_common.paired_window_bootstrap(base[:2] + [base[2][:32]], base[:2] + [base[2][:32]], n_boot=10)


def test_protocol_L_tables_pair_each_arm_by_window_and_answer_the_question(results_R, tmp_path):
    import results_L

    one, ft = results_L.runs()
    assert (one, ft) == ([], [])
    empty = results_L.blocks()
    assert empty["L_ft"] == empty["L_oneshot"] == empty["L_cost"] == "(no runs committed yet)"
    assert results_L.answer([], 0).startswith("Runs in progress: 0 runs of protocol L committed")
    rng = np.random.default_rng(4)
    root = tmp_path / "L"
    shift = {"dense": -0.2, "seven": -0.1, "seven_nd": -0.1, "platon": 0.0, "wanda": 0.05, "sparsegpt": 0.02,
             "seven_local": 0.01, "sparsegpt_seven_alloc": -0.05, "magnitude": 0.3}
    pruner_step = {"seven": 0.5, "magnitude": 0.2}  # seconds per pruning step
    for seed in (1, 2):
        base = {"test": rng.normal(3.5, 0.4, 40), "ptb": rng.normal(4.5, 0.4, 24)}
        _lm_run(root, "L_oneshot", "dense", seed, base)
        _lm_run(root, "L_oneshot", "sparsegpt24", seed, {s: v + 1.0 for s, v in base.items()},
                prune_seconds=30.0 + seed)
        # the one-shot rows beyond 50 % and 2:4: SparseGPT at 4:8, magnitude (one shot) at 50 % and 70 %
        _lm_run(root, "L_oneshot_more", "sparsegpt48", seed, {s: v + 0.8 for s, v in base.items()}, prune_seconds=40.0)
        _lm_run(root, "L_oneshot_more", "magnitude_init", seed, {s: v + 1.5 for s, v in base.items()},
                prune_seconds=1.0)
        _lm_run(root, "L_oneshot70", "magnitude_init", seed, {s: v + 3.0 for s, v in base.items()}, sparsity=0.7,
                prune_seconds=1.0)
        _lm_run(root, "L_oneshot_magnm", "magnitude_init24", seed, {s: v + 2.0 for s, v in base.items()},
                prune_seconds=1.0)  # magnitude at 2:4, one shot: its own sweep, in the same row as 50 % and 70 %
        for name, d in shift.items():
            extra = {"steps": 268, "train_seconds": 268 * 4.0,
                     "prune_seconds": 20.0 if name.startswith(("wanda", "sparsegpt")) else None,
                     "window_steps": 180 if name in ("seven", "seven_nd", "platon", "magnitude") else 0,
                     "pruner_seconds": 180 * pruner_step.get(name, 0.0)}
            _lm_run(root, "L_ft50", name, seed, {s: v + d for s, v in base.items()}, **extra)
        _lm_run(root, "L_ft24", "seven24", seed, base)
        # the machine's load, recorded by newer runs (seed 2), and a run resumed from a checkpoint (seed 1)
        _lm_run(root, "L_ft24", "platon24", seed, base, steps=10, train_seconds=10 * (5.0 + seed),
                **({"machine": {"load_1min": {"mean": 2.94, "max": 3.5, "samples": 9}, "cpu_share": 0.6649}} if seed == 2
                   else {"resumed_from_step": 5}))
        _lm_run(root, "L_ft24", "wanda24", seed, {"test": base["test"][:20], "ptb": base["ptb"]})  # other windows
    blocks = results_L.blocks()
    # the fine-tuned table: mean ± sample sd of perplexity over the two seeds, computed here from result.json
    ppl = [json.loads((root / "L_ft50" / f"seven-s0.5-seed{s}" / "result.json").read_text())["metrics"]["perplexity"]
           for s in (1, 2)]
    seven_row = next(line for line in blocks["L_ft"].splitlines() if line.startswith("| SEVEN_dyn |"))
    assert seven_row.split("|")[2].strip() == f"{np.mean(ppl):.2f} ± {np.std(ppl, ddof=1):.2f} (2)"
    assert blocks["L_ft"].splitlines()[0] == ("| method | held-out plays, 50 % | held-out plays, 2:4 | PTB, 50 % "
                                              "| PTB, 2:4 |")
    # the one-shot table, a column per pattern with runs: each cell the mean ± sd over seeds and its ratio to the
    # starting model's mean, computed here from result.json
    def ppl_of(sweep: str, run: str, split: str = "perplexity") -> list[float]:
        return [json.loads((root / sweep / run.format(s) / "result.json").read_text())["metrics"][split]
                for s in (1, 2)]

    def cell(values: list[float], start: list[float]) -> str:
        digits = 1 if np.mean(values) >= 100 else 2
        return (f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f} (2) "
                f"×{np.mean(values) / np.mean(start):.2f}")

    plays, ptb = blocks["L_oneshot"].split("On PTB:")
    start = ppl_of("L_oneshot", "dense-seed{}")
    lines = plays.splitlines()
    assert lines[2] == "| method | 50 % | 70 % | 2:4 | 4:8 |"
    sgpt = ["-", "-", cell(ppl_of("L_oneshot", "sparsegpt24-s0.5-seed{}"), start),
            cell(ppl_of("L_oneshot_more", "sparsegpt48-s0.5-seed{}"), start)]
    assert "| SparseGPT, no fine-tuning | " + " | ".join(sgpt) + " |" in lines
    magnitude = [cell(ppl_of("L_oneshot_more", "magnitude_init-s0.5-seed{}"), start),
                 cell(ppl_of("L_oneshot70", "magnitude_init-s0.7-seed{}"), start),
                 cell(ppl_of("L_oneshot_magnm", "magnitude_init24-s0.5-seed{}"), start), "-"]
    assert "| magnitude (each matrix alike), no fine-tuning | " + " | ".join(magnitude) + " |" in lines
    ptb_start = ppl_of("L_oneshot", "dense-seed{}", "ptb/perplexity")
    assert (f"| magnitude (each matrix alike), no fine-tuning | "
            f"{cell(ppl_of('L_oneshot_more', 'magnitude_init-s0.5-seed{}', 'ptb/perplexity'), ptb_start)} |") in ptb
    assert "**One shot, no fine-tuning, 70 %:** perplexity on the held-out plays magnitude, one shot" \
        in blocks["L_reading"]
    rows = {tuple(c.strip() for c in line.split("|")[1:4]): line for line in blocks["L_paired"].splitlines()[2:]}
    platon = rows[("seven − platon", "50 %", "held-out plays")]
    assert "| 2 | 40 | -0.100 [-0.100, -0.100] |" in platon and platon.endswith("| lower perplexity |")
    assert rows[("seven − seven_nd", "50 %", "PTB")].endswith("| +0.000 [+0.000, +0.000] | ×1.000 [1.000, 1.000] "
                                                                "| not separated |")
    assert rows[("seven − dense", "50 %", "PTB")].endswith("| higher perplexity |")
    # the best arm of each kind, chosen on the plays: SEVEN_dyn (its control ties; the first listed) and SparseGPT
    # (SparseGPT at SEVEN_dyn's allocation is lower, but an analysis arm: never the best one-shot arm)
    best = rows[("best during fine-tuning (seven) − best one-shot + fine-tuning (sparsegpt)", "50 %",
                 "held-out plays")]
    assert "-0.120 [-0.120, -0.120]" in best and best.endswith("| lower perplexity |")
    refused = rows[("seven − wanda", "2:4", "held-out plays")]
    assert "not paired: the runs were scored on different numbers of test windows (20, 40)" in refused
    assert rows[("seven − wanda", "2:4", "PTB")].endswith("| not separated |")  # the PTB windows agree: paired
    # cost: one-shot pruning (median of 31 and 32 s), SEVEN's pruner per pruning step, the training step
    cost = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in blocks["L_cost"].splitlines()[2:]}
    assert cost[("SparseGPT", "2:4")] == "| SparseGPT | 2:4 | 31.5 | - | - | 2 |"
    assert ("dense", "-") in cost and list(cost).index(("SparseGPT", "50 %")) < list(cost).index(("SparseGPT", "2:4"))
    assert cost[("SEVEN_dyn", "50 %")] == "| SEVEN_dyn | 50 % | - | 0.500 | 4.00 | 2 |"
    # magnitude one shot and gradual magnitude during fine-tuning: two rows, never one median over both
    assert cost[("gradual magnitude", "50 %")] == "| gradual magnitude | 50 % | - | 0.200 | 4.00 | 2 |"
    assert cost[("magnitude, one shot", "50 %")] == "| magnitude, one shot | 50 % | 1.0 | - | - | 2 |"
    assert cost[("magnitude, one shot", "70 %")] == "| magnitude, one shot | 70 % | 1.0 | - | - | 2 |"
    # each fine-tuned run's seconds per training step, a column per seed, with what its result.json says of it
    per_run = {tuple(c.strip() for c in line.split("|")[1:3]): line for line in blocks["L_cost_runs"].splitlines()[2:]}
    assert blocks["L_cost_runs"].splitlines()[0] == "| method | pattern | seed 1 | seed 2 |"
    assert per_run[("PLATON", "2:4")] == "| PLATON | 2:4 | 6.00 (resumed at step 5) | 7.00 (load 2.9, CPU 66 %) |"
    assert per_run[("SEVEN_dyn", "50 %")] == "| SEVEN_dyn | 50 % | 4.00 | 4.00 |"
    assert ("SEVEN_dyn", "2:4") not in per_run  # no training steps: not a row
    assert list(per_run).index(("SEVEN_dyn", "50 %")) < list(per_run).index(("PLATON", "2:4"))
    # the records behind the summaries, and the answer worded from them
    records = json.loads((root / "paired.json").read_text())
    assert {r["kind"] for r in records} == {"seven", "best", "matched", "allocation"}
    assert not any(r["other"] == "sparsegpt_seven_alloc" and r["kind"] == "seven" for r in records)
    # the 2 x 2 at 50 %: during − one shot at each allocation, SEVEN_dyn's allocation − every matrix alike
    # under each way of choosing the masks (the shifts: seven -0.1, seven_local +0.01, alloc -0.05, sparsegpt +0.02)
    factors = blocks["L_factors"].split("On PTB")[0].splitlines()
    assert factors[4].startswith("| every matrix at 50 % |") and "-0.010 [-0.010, -0.010], lower perplexity (2 seeds)" \
        in factors[4]
    assert factors[5].startswith("| SEVEN_dyn's per-matrix sparsities |") and "-0.050 [-0.050, -0.050], lower" \
        in factors[5]
    assert factors[6].split("|")[2].strip() == "-0.070 [-0.070, -0.070], lower perplexity (2 seeds)"
    assert factors[6].split("|")[3].strip() == "-0.110 [-0.110, -0.110], lower perplexity (2 seeds)"
    assert ("With SEVEN_dyn's per-matrix sparsities on both sides (50 %), SEVEN_dyn − SparseGPT at SEVEN_dyn's "
            "allocation + fine-tuning: lower perplexity (-0.050") in results_L.answer(records, 28)
    assert "**SEVEN_dyn's allocation, the masks chosen one shot**" in blocks["L_reading"]
    # the README's line keeps the comparison with every matrix alike and points to L.2c for the rest
    line = results_L.readme_line(records, 28)
    assert "With every matrix pruned alike on both sides" in line and "per-matrix sparsities on both" not in line
    assert line.endswith("docs/results.md, L.2c.")
    # every matrix pruned alike on both sides: SEVEN_dyn per matrix (+0.01) − SparseGPT (+0.02)
    assert "-0.010 [-0.010, -0.010]" in rows[("seven_local − sparsegpt", "50 %", "held-out plays")]
    assert "**Every matrix pruned alike on both sides**" in blocks["L_reading"]
    assert ("With every matrix pruned alike on both sides (50 %), SEVEN_dyn per matrix − SparseGPT + fine-tuning: "
            "lower perplexity (-0.010 [-0.010, -0.010] nats") in results_L.answer(records, 28)
    text = results_L.answer(records, 28)
    assert text.startswith("On the held-out plays, at 50 %, pruning during fine-tuning gives the lower perplexity "
                           "(SEVEN_dyn − SparseGPT + fine-tuning: -0.120 [-0.120, -0.120] nats, perplexity ×0.887, "
                           "2 seeds)")
    assert text.endswith("Two seeds so far: the interval's spread between seeds rests on two draws (the protocol "
                         "asks for three).")
    summary = results_L.summary_lines(records, 28)
    assert any(line.startswith("- At 50 %, on held-out plays, SEVEN_dyn has lower perplexity than") and
               "PLATON" in line.split(";")[0] and "SEVEN_dyn per matrix" in line.split(";")[0] and
               "is not separated from its noise_discount=False control" in line for line in summary)
    assert "SEVEN_dyn − its control" in blocks["L_reading"] or "The noise discount" in blocks["L_reading"]


def test_protocol_L_best_arm_is_chosen_on_the_seeds_every_arm_has(results_R, tmp_path):
    """While seeds land, an arm with one seed must not win (or lose) on a seed the others lack: seven has
    seeds 1-2 (a bad seed 2), platon seed 1 only; on seed 1 seven is lower, so seven is the better arm.
    Ranked on all seeds (seven's mean of 3.0 and 5.0 against platon's 3.5) platon would win."""
    import results_L

    def row(method: str, seed: int, loss: float) -> dict:
        d = tmp_path / f"{method}-{seed}"
        d.mkdir()
        np.savez_compressed(d / "predictions.npz", **{"test.window_loss": np.full(8, loss),
                                                      "ptb.window_loss": np.full(8, loss)})
        return {"method": method, "pattern": "50", "seed": seed, "dir": d}

    rows = [row("seven", 1, 3.0), row("seven", 2, 5.0), row("platon", 1, 3.5)]
    assert results_L.best(rows, results_L.DURING, "50") == "seven"
    assert results_L.best(rows + [row("magnitude", 3, 1.0)], results_L.DURING, "50") == "magnitude"  # no shared seed
    assert results_L.best(rows, ["wanda"], "50") is None


def test_protocol_L_fine_tuned_at_70_percent_gets_its_columns_and_comparisons_once_it_has_runs(results_R, tmp_path):
    """L_ft70 (the same arms at 70 %, dense shared with L_ft50): no 70 % column while it has no run; then its
    columns, SEVEN_dyn's comparisons at 70 % (dense from L_ft50), a clause of the answer and the summary's
    head. Shifts: SparseGPT +0.3 nats over SEVEN_dyn at 70 %, on one seed."""
    import results_L

    rng = np.random.default_rng(7)
    root = tmp_path / "L"
    base = {"test": rng.normal(3.5, 0.4, 16), "ptb": rng.normal(4.5, 0.4, 8)}
    for name, d in {"dense": -0.2, "seven": -0.1, "sparsegpt": 0.0}.items():
        _lm_run(root, "L_ft50", name, 1, {s: v + d for s, v in base.items()})
    header = results_L.blocks()["L_ft"].splitlines()[0]
    assert header == "| method | held-out plays, 50 % | PTB, 50 % |"  # no 2:4 or 70 % runs: no columns
    _lm_run(root, "L_ft70", "seven", 1, {s: v + 0.2 for s, v in base.items()}, sparsity=0.7)
    _lm_run(root, "L_ft70", "sparsegpt", 1, {s: v + 0.5 for s, v in base.items()}, sparsity=0.7)
    blocks = results_L.blocks()
    assert blocks["L_ft"].splitlines()[0] == ("| method | held-out plays, 50 % | held-out plays, 70 % | PTB, 50 % "
                                              "| PTB, 70 % |")
    seven_70 = float(np.exp(base["test"].mean() + 0.2))
    row = next(line for line in blocks["L_ft"].splitlines() if line.startswith("| SEVEN_dyn |"))
    assert row.split("|")[3].strip() == f"{seven_70:.2f} (1)"
    records = json.loads((root / "paired.json").read_text())
    at70 = {(r["kind"], r["other"], r["test_set"]): r for r in records if r["pattern"] == "70 %"}
    assert at70[("seven", "sparsegpt", "test")]["mean"] == pytest.approx(-0.3)
    assert at70[("seven", "dense", "ptb")]["mean"] == pytest.approx(0.4)  # L_ft50's dense run, at every pattern
    assert at70[("best", "sparsegpt", "test")]["ours"] == "seven"
    assert ("at 70 %, pruning during fine-tuning gives the lower perplexity (SEVEN_dyn − SparseGPT + fine-tuning: "
            "-0.300 [-0.300, -0.300] nats") in results_L.answer(records, 5)
    assert "268 fine-tuning steps, 50 % unstructured and 70 % unstructured, section L" in \
        results_L.summary_lines(records, 5)[0]
    assert (f"**Fine-tuned, 70 %, lowest perplexity on the held-out plays first:** dense fine-tuning "
            f"{np.exp(base['test'].mean() - 0.2):.2f} (1), SEVEN_dyn {seven_70:.2f} (1), SparseGPT") in blocks["L_reading"]
    assert "**Fine-tuned, 2:4" not in blocks["L_reading"]  # no pruned run at 2:4: no line of dense alone


def test_protocol_L_answer_adds_the_arms_with_the_most_seeds_where_the_best_rest_on_fewer(results_R, tmp_path):
    """At 70 %: SEVEN_dyn and SparseGPT + FT have seeds 1-3, the control and Wanda seed 1 only. Ranked on the
    shared seed the control is the best during-FT arm (0.1 below SEVEN_dyn): the answer's comparison is the
    control − SparseGPT (-0.4, 1 seed); among the arms with three seeds it is SEVEN_dyn − SparseGPT (-0.3, 3
    seeds), added to the clause and to the paired records. With the control's seeds 2-3 in, its pair is the
    best on three seeds and nothing is added."""
    import results_L

    rng = np.random.default_rng(11)
    root = tmp_path / "L"
    base = {"test": rng.normal(3.5, 0.4, 16), "ptb": rng.normal(4.5, 0.4, 8)}
    shift = {"seven": 0.2, "sparsegpt": 0.5, "seven_nd": 0.1, "wanda": 0.8}
    for name, seeds in {"seven": (1, 2, 3), "sparsegpt": (1, 2, 3), "seven_nd": (1,), "wanda": (1,)}.items():
        for seed in seeds:
            _lm_run(root, "L_ft70", name, seed, {s: v + shift[name] for s, v in base.items()}, sparsity=0.7)
    results_L.blocks()
    records = json.loads((root / "paired.json").read_text())
    at70 = {(r["kind"], r["test_set"]): r for r in records if r["pattern"] == "70 %"}
    assert (at70[("best", "test")]["ours"], at70[("best", "test")]["seeds"]) == ("seven_nd", 1)
    seeded = at70[("best_seeded", "test")]
    assert (seeded["ours"], seeded["other"], seeded["seeds"]) == ("seven", "sparsegpt", 3)
    assert seeded["mean"] == pytest.approx(-0.3) and at70[("best_seeded", "ptb")]["mean"] == pytest.approx(-0.3)
    assert ("at 70 %, pruning during fine-tuning gives the lower perplexity (SEVEN with noise_discount=False − "
            "SparseGPT + fine-tuning: -0.400 [-0.400, -0.400] nats, perplexity ×0.670, 1 seed), and among the arms "
            "with 3 seeds the same "
            "(SEVEN_dyn − SparseGPT + fine-tuning: -0.300 [-0.300, -0.300] nats, perplexity ×0.741, 3 seeds)"
            ) in results_L.answer(records, 8)
    assert "the same among the arms with the most seeds: during fine-tuning (seven) − one-shot + fine-tuning " \
        "(sparsegpt) | 70 % | held-out plays | 3 |" in results_L.blocks()["L_paired"]
    for seed in (2, 3):
        _lm_run(root, "L_ft70", "seven_nd", seed, {s: v + shift["seven_nd"] for s, v in base.items()}, sparsity=0.7)
    results_L.blocks()
    records = json.loads((root / "paired.json").read_text())
    assert {r["kind"] for r in records if r["pattern"] == "70 %"} == {"seven", "best"}
    assert "among the arms" not in results_L.answer(records, 10)


def test_protocol_L_70_percent_sweep_is_the_50_percent_one_at_another_sparsity():
    """L_ft70 answers the same question at 70 %: every training and evaluation setting as L_ft50's, its arms
    L_ft50's one-shot and during-fine-tuning arms (dense and the analysis arms stay in L_ft50)."""
    folder = Path(todo.__file__).resolve().parent / "L"
    ft50, ft70 = (json.loads((folder / f"L_ft{p}.json").read_text()) for p in (50, 70))
    differ = {"methods", "sparsities", "variants", "out"}
    assert {k: v for k, v in ft70.items() if k not in differ} == {k: v for k, v in ft50.items() if k not in differ}
    assert ft70["sparsities"] == [0.7] and ft70["out"] == "runs/results/L_ft70"
    assert ft70["methods"] == [m for m in ft50["methods"] if m not in ("dense", "seven_local", "sparsegpt_seven_alloc")]
    assert ft70["variants"] == {"seven_nd": ft50["variants"]["seven_nd"]}


def test_protocol_L_allocation_table_averages_each_kind_of_matrix_and_each_third_of_the_depth(results_R):
    """Three layers of two kinds: SEVEN (two seeds) moves sparsity from v_proj to q_proj and toward depth;
    the expected cells are the means written out by hand."""
    import results_L

    def layers(q: list[float], v: list[float]) -> dict[str, float]:
        return {f"model.layers.{i}.self_attn.{kind}.weight": vals[i] for i in range(3)
                for kind, vals in (("q_proj", q), ("v_proj", v))}

    rows = [{"method": "seven", "pattern": "50", "seed": 1, "layers": layers([0.6, 0.7, 0.8], [0.2, 0.3, 0.4])},
            {"method": "seven", "pattern": "50", "seed": 2, "layers": layers([0.7, 0.7, 0.7], [0.3, 0.3, 0.3])},
            {"method": "sparsegpt", "pattern": "50", "seed": 1, "layers": layers([0.5] * 3, [0.5] * 3)},
            {"method": "seven", "pattern": "24", "seed": 1, "layers": layers([0.5] * 3, [0.5] * 3)},
            {"method": "platon", "pattern": "50", "seed": 1}]  # a run without per-matrix sparsities: left out
    lines = results_L.allocation_table(rows).splitlines()
    assert lines[0] == "| arm | q_proj | v_proj | layers 0-0 | layers 1-1 | layers 2-2 |"
    # q: (0.7 + 0.7) / 2; v: (0.3 + 0.3) / 2; layer 0: ((0.6 + 0.2) / 2 + (0.7 + 0.3) / 2) / 2 = 0.45; layer 2: 0.55
    assert lines[2:] == ["| SparseGPT (1) | 0.50 | 0.50 | 0.50 | 0.50 | 0.50 |",
                         "| SEVEN_dyn (2) | 0.70 | 0.30 | 0.45 | 0.50 | 0.55 |"]
    assert results_L.allocation_table([]) == results_L.NONE_YET


def test_protocol_L_answer_caveat_follows_the_seeds_of_its_comparisons(results_R):
    import results_L

    def caveat(*seeds: int) -> str:
        return results_L._few_seeds_caveat([{"kind": "best", "seeds": n} for n in seeds] +
                                          [{"kind": "seven", "seeds": 1}])  # only the answer's comparisons count
    assert caveat(1, 1).startswith(" One seed so far")
    assert caveat(1, 2).startswith(" Where one seed") and "where two" in caveat(1, 2)
    assert caveat(2, 2).startswith(" Two seeds so far")
    assert caveat(2, 3) == " Where two seeds, the spread between seeds rests on two draws (the protocol asks for three)."
    assert caveat(1, 3).startswith(" Where one seed") and "where two" not in caveat(1, 3)
    assert caveat(3, 3) == caveat() == ""


def test_collect_commits_protocol_L_runs_summaries_without_the_model(tmp_path, monkeypatch):
    monkeypatch.setattr(collect, "RESULTS", tmp_path / "committed")
    runs = tmp_path / "runs"
    for sweep, run in (("L_oneshot", "dense-seed1"), ("L_ft24", "sparsegpt24-s0.5-seed1"),
                       ("L_ft50", "seven-s0.5-seed2")):
        d = runs / sweep / "runs" / run
        (d / "model").mkdir(parents=True)
        (d / "model" / "model.safetensors").write_bytes(b"weights")
        for name in ("result.json", "config.json", "metrics.jsonl"):
            (d / name).write_text("{}")
        np.savez_compressed(d / "predictions.npz", **{"test.window_loss": np.ones(4), "ptb.window_loss": np.ones(4)})
    assert sorted(collect.collect(runs)) == ["L_ft24/sparsegpt24-s0.5-seed1", "L_ft50/seven-s0.5-seed2",
                                             "L_oneshot/dense-seed1"]
    committed = tmp_path / "committed"
    copied = sorted(str(p.relative_to(committed)) for p in committed.rglob("*") if p.is_file())
    assert copied == [f"L/{run}/{name}" for run in ("L_ft24/sparsegpt24-s0.5-seed1", "L_ft50/seven-s0.5-seed2",
                                                     "L_oneshot/dense-seed1")
                      for name in ("config.json", "metrics.jsonl", "predictions.npz", "result.json")]


def test_protocol_L_one_shot_rows_at_a_sparsity_without_a_label_get_a_column_not_an_error():
    import results_L

    def row(method: str, pattern: str | None, ppl: float) -> dict:
        return {"method": method, "pattern": pattern, "metrics": {"perplexity": ppl, "ptb/perplexity": ppl},
                "prune_seconds": 2.0}

    rows = [row("dense", None, 10.0), row("wanda", "50", 15.0), row("wanda", "60", 30.0)]
    table = results_L.oneshot_table(rows, "test").splitlines()
    assert table[0] == "| method | 50 % | 60 % |"
    assert table[3] == "| Wanda, no fine-tuning | 15.00 (1) ×1.50 | 30.00 (1) ×3.00 |"
    cost = results_L.cost_table(rows).splitlines()
    assert cost[-1] == "| Wanda | 60 % | 2.0 | - | - | 1 |"


def test_run_L_missing_shares_one_queue_of_todos_runs_between_both_workers(tmp_path: Path) -> None:
    """`run_L.sh missing` (a fresh machine: the sweeps' folders are empty) runs every run todo.py lists as
    missing exactly once, one sweep per run pointed at $RUNS/<configuration>, the two workers taking the runs
    in turn from one queue: fine-tuned runs at 50 % and 2:4 first, lowest seeds first, then those at 70 %, then
    the one-shot rows. Against an
    empty committed folder every run of protocol L is missing. SP=echo prints what it would run."""
    import os
    import subprocess

    repo = Path(todo.__file__).resolve().parents[2]
    runs, committed = tmp_path / "runs", tmp_path / "committed"
    committed.mkdir()
    env = dict(os.environ, SP="echo", PY=sys.executable, RUNS=str(runs), COMMITTED=str(committed))
    subprocess.run(["bash", str(repo / "experiments/results/L/run_L.sh"), "missing"], env=env, check=True,
                   capture_output=True, timeout=120)

    def one_run_each(*names: str) -> list[tuple[int, str]]:  # (seed, command) per missing run
        return [(seed, f"sweep --config {config.relative_to(repo)} --out {runs / config.stem} "
                       f"--methods {method} --seeds {seed}")
                for config in todo.configs(list(names)) for seed, method, _ in todo.missing(config, committed)]

    tuned = [c for _, c in sorted(one_run_each("L_ft50", "L_ft24"), key=lambda sc: sc[0])]  # stable: seed order
    # at 70 %: the answer's pair (SparseGPT + fine-tuning, SEVEN_dyn) of every seed before the other arms
    seventy = [c for _, c in sorted(one_run_each("L_ft70"),
                                    key=lambda sc: (not sc[1].split("--methods ")[1].startswith(("sparsegpt ", "seven ")),
                                                    sc[0]))]
    oneshot = [c for _, c in one_run_each("L_oneshot", "L_oneshot_more", "L_oneshot70", "L_oneshot_magnm")]
    queue = tuned + seventy + oneshot
    assert (len(tuned), len(seventy)) == (27 + 18, 18) and len(oneshot) > 0
    logs = [(runs / "logs" / f"L_{w}.log").read_text().splitlines() for w in "ab"]
    assert sorted(logs[0] + logs[1]) == sorted(queue)  # every run once, none twice, nothing else
    for log in logs:  # each worker took its runs in the queue's order
        assert log == [c for c in queue if c in set(log)]
    assert (runs / "L_queue.tsv").read_text() == ""  # the queue is used up
    # the lowest seeds first: no seed-2 fine-tuning run starts before every seed-1 one has been taken
    assert queue.index(next(c for c in tuned if c.endswith("--seeds 2"))) == sum(
        c.endswith("--seeds 1") for c in tuned)
    assert [c.split("--methods ")[1] for c in seventy[:6]] == [
        f"{m} --seeds {seed}" for seed in (1, 2, 3) for m in ("sparsegpt", "seven")]
    # todo.py failing (here: no Python at all) starts nothing and says so
    bad = subprocess.run(["bash", str(repo / "experiments/results/L/run_L.sh"), "missing"],
                         env=dict(env, PY="false", RUNS=str(tmp_path / "other")), capture_output=True, text=True)
    assert bad.returncode == 1 and "todo.py failed, nothing started" in bad.stderr
    assert not (tmp_path / "other" / "logs" / "L_a.log").exists()


def test_nm_ties_experiment_compares_the_librarys_own_mask_with_wandas_topk_rule() -> None:
    """experiments/results/L/nm_ties.py: its "ours" is the mask prune_at_init makes (on weights full of equal
    magnitudes, as a quantized checkpoint's), and its topk rule keeps n of every m; on weights without ties
    the two rules agree, so any difference it reports comes from ties alone."""
    import importlib.util

    path = Path(todo.__file__).resolve().parent / "L" / "nm_ties.py"
    spec = importlib.util.spec_from_file_location("nm_ties", path)
    nm_ties = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(nm_ties)
    assert nm_ties.settings_differ() == []  # its run is still the protocol's run but for the tie-break
    g = torch.Generator().manual_seed(0)
    levels = torch.tensor([-0.3, -0.1, 0.1, 0.3])  # four levels: ties in most groups
    tied = levels[torch.randint(0, 4, (6, 16), generator=g)]
    for n, m in nm_ties.PATTERNS:
        layer = torch.nn.Linear(16, 6, bias=False)
        with torch.no_grad():
            layer.weight.copy_(tied)
        pruner = sp.prune_at_init(torch.nn.Sequential(layer), "magnitude", 1 - n / m, pattern=f"{n}:{m}")
        assert torch.equal(nm_ties.stable_keep_mask(tied, n, m), pruner.masks["0.weight"].bool())
        topk = nm_ties.topk_keep_mask(tied, n, m)
        assert (topk.reshape(6, -1, m).sum(dim=2) == n).all()
        distinct = torch.randperm(96, generator=g).float().reshape(6, 16) - 48
        assert torch.equal(nm_ties.topk_keep_mask(distinct, n, m), nm_ties.stable_keep_mask(distinct, n, m))
