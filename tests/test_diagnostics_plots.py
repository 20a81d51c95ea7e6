"""`sevenprune diagnostics` and experiments.diagnostics_plots: the figures of docs/results.md R.4 from runs."""

from __future__ import annotations

import json

import pytest
from _tiny_diagnostics import tiny_bert_diagnostics

from sevenprune.cli import main
from sevenprune.tasks import diagnostics_plots as dplots


def _run(out, method: str, seed: int = 0, **options: object) -> dict:
    """A tiny BERT pruned with diagnostics; its diagnostics.json in ``out`` (a run folder)."""
    pruner, diag = tiny_bert_diagnostics(method, seed, **options)
    out.mkdir(parents=True)
    diag.save(out / "diagnostics.json")
    return {"pruner": pruner, "summary": json.loads((out / "diagnostics.json").read_text())}


def test_summary_records_each_matrix_final_sparsity(tmp_path):
    run = _run(tmp_path / "seven-s0.5-seed1", "seven")
    per = run["summary"]["final_sparsity_per_weight"]
    masks = run["pruner"].masks
    assert set(per) == set(masks)
    for name, mask in masks.items():  # computed here from the mask itself
        assert per[name] == pytest.approx(float((mask == 0).sum()) / mask.numel())
    assert sum(per[n] * masks[n].numel() for n in per) == pytest.approx(0.5 * run["pruner"].numel, abs=1)


def test_cli_writes_every_plot_the_runs_allow(tmp_path, capsys):
    _run(tmp_path / "seven-s0.5-seed1", "seven")
    _run(tmp_path / "seven-s0.5-seed2", "seven", seed=1)
    _run(tmp_path / "platon-s0.5-seed1", "platon")
    runs = [str(tmp_path / n) for n in ("seven-s0.5-seed1", "seven-s0.5-seed2", "platon-s0.5-seed1")]
    assert main(["diagnostics", *runs, "--out", str(tmp_path / "plots")]) == 0
    written = sorted(p.name for p in (tmp_path / "plots").iterdir() if not p.name.startswith("."))
    # the noise discount for each SEVEN run only (PLATON has none); one stability and one layer plot
    assert written == ["layers.png", "noise_discount-seven-s0.5-seed1.png", "noise_discount-seven-s0.5-seed2.png",
                       "stability.png"]
    assert capsys.readouterr().out.split() == [str(tmp_path / "plots" / n) for n in
                                               ("noise_discount-seven-s0.5-seed1.png",
                                                "noise_discount-seven-s0.5-seed2.png", "stability.png", "layers.png")]
    # the same bytes when drawn again
    first = (tmp_path / "plots" / "stability.png").read_bytes()
    main(["diagnostics", *runs, "--out", str(tmp_path / "plots")])
    assert (tmp_path / "plots" / "stability.png").read_bytes() == first


def test_runs_group_by_method_and_noise_discount_needs_seven(tmp_path):
    seven = _run(tmp_path / "seven-s0.5-seed1", "seven")["summary"]
    platon = _run(tmp_path / "platon-s0.5-seed1", "platon")["summary"]
    assert dplots._label(tmp_path / "seven_nd-s0.8-seed2", seven) == "seven_nd"
    assert dplots._label(tmp_path / "my-run", platon) == "platon"
    with pytest.raises(ValueError, match="no noise discount.*'platon'"):
        dplots.plot_noise_discount(platon, tmp_path / "x.png")
    nd = _run(tmp_path / "nd", "seven", noise_discount=False)["summary"]
    with pytest.raises(ValueError, match="no noise discount"):
        dplots.plot_noise_discount(nd, tmp_path / "x.png")


def test_bad_input_names_the_file_without_a_traceback(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["diagnostics", str(tmp_path / "empty"), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert "empty/diagnostics.json" in err and "--diagnostics" in err and "Traceback" not in err
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["diagnostics", str(tmp_path / "bad.json"), "--out", str(tmp_path / "p")]) == 2
    assert "bad.json is not valid JSON" in capsys.readouterr().err
    (tmp_path / "other.json").write_text('{"a": 1}')
    assert main(["diagnostics", str(tmp_path / "other.json"), "--out", str(tmp_path / "p")]) == 2
    assert "not a sevenprune diagnostics file" in capsys.readouterr().err


@pytest.mark.parametrize("name, layer, kind", [("encoder.layer.3.attention.self.query.weight", 3, "query"),
                                               ("bert.encoder.layer.0.output.dense.weight", 0, "FFN out"),
                                               ("encoder.layer.11.attention.output.dense.weight", 11, "attention out"),
                                               ("classifier.weight", -1, "other"),
                                               ("model.layers.29.mlp.down_proj.weight", 29, "other"),
                                               ("transformer.h.4.mlp.c_fc.weight", 4, "other"),
                                               ("graph.3.weight", -1, "other")])
def test_matrix_names(name, layer, kind):
    assert dplots.layer_index(name) == layer and dplots.matrix_kind(name) == kind


def test_runs_recorded_before_the_per_matrix_field_take_it_from_result_json(tmp_path):
    run = tmp_path / "seven-s0.5-seed1"
    summary = _run(run, "seven")["summary"]
    del summary["final_sparsity_per_weight"]  # as a diagnostics.json written by an older version
    (run / "diagnostics.json").write_text(json.dumps(summary))
    assert "layers.png" not in [p.name for p in dplots.plot_runs([run], tmp_path / "a")]
    (run / "result.json").write_text(json.dumps({"layers": {"encoder.layer.0.output.dense.weight": 0.5}}))
    assert "layers.png" in [p.name for p in dplots.plot_runs([run / "diagnostics.json"], tmp_path / "b")]
