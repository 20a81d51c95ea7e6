"""`diagnostics` and `report` write single files into folders that may hold the user's own: they never
replace a file they did not write, never write through a link, never give two outputs one name, and
refuse a malformed diagnostics file before writing anything."""

from __future__ import annotations

import copy
import json

import pytest
from _tiny_diagnostics import tiny_bert_diagnostics

from sevenprune.cli import main
from sevenprune._fsutil import DIAGNOSTICS_MARKER, own_files


@pytest.fixture(scope="module")
def summaries():
    """The diagnostics of one SEVEN run and one PLATON run (tiny BERT, 6 steps)."""
    return {m: tiny_bert_diagnostics(m)[1].summary() for m in ("seven", "platon")}


def write_run(folder, summary):
    folder.mkdir(parents=True)
    (folder / "diagnostics.json").write_text(json.dumps(summary))
    return folder


def diagnostics(capsys, *args):
    status = main(["diagnostics", *map(str, args)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, captured.err


def test_a_file_of_the_users_own_is_never_replaced(tmp_path, capsys, summaries):
    run = write_run(tmp_path / "seven-s0.5-seed1", summaries["seven"])
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "layers.png").write_text("my own figure")
    status, _, err = diagnostics(capsys, run, "--out", plots)
    assert status == 2 and f"{plots / 'layers.png'} exists and was not written by sevenprune" in err
    assert (plots / "layers.png").read_text() == "my own figure"
    assert sorted(p.name for p in plots.iterdir()) == ["layers.png"]  # nothing else written either


def test_its_own_files_are_replaced_and_listed(tmp_path, capsys, summaries):
    run = write_run(tmp_path / "seven-s0.5-seed1", summaries["seven"])
    plots = tmp_path / "plots"
    assert diagnostics(capsys, run, "--out", plots)[0] == 0
    names = {"noise_discount-seven-s0.5-seed1.png", "stability.png", "layers.png"}
    assert own_files(plots, DIAGNOSTICS_MARKER) == names
    (plots / "stability.png").write_bytes(b"stale")
    assert diagnostics(capsys, run, "--out", plots)[0] == 0  # ours: replaced
    assert (plots / "stability.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("name", ["stability.png", "layers.png", "noise_discount-seven-s0.5-seed1.png"])
def test_a_link_in_the_folder_is_never_written_through(tmp_path, capsys, summaries, name):
    run = write_run(tmp_path / "seven-s0.5-seed1", summaries["seven"])
    plots = tmp_path / "plots"
    assert diagnostics(capsys, run, "--out", plots)[0] == 0  # the names are ours now
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    (plots / name).unlink()
    (plots / name).symlink_to(outside)
    status, _, err = diagnostics(capsys, run, "--out", plots)
    assert status == 2 and f"{plots / name} is a symbolic link; refusing to write through it" in err
    assert outside.read_text() == "keep me" and (plots / name).is_symlink()


def test_two_runs_of_one_name_get_two_plots(tmp_path, capsys, summaries):
    a = write_run(tmp_path / "sweep-a" / "runs" / "seven-s0.5-seed1", summaries["seven"])
    b_summary = copy.deepcopy(summaries["seven"])
    b_summary["snapshots"][-1]["noise_discount"]["bin_edges"][-1] = 2.0  # another drawing
    b = write_run(tmp_path / "sweep-b" / "runs" / "seven-s0.5-seed1", b_summary)
    plots = tmp_path / "plots"
    status, out, _ = diagnostics(capsys, a, b, "--out", plots)
    assert status == 0
    noise = sorted(p.name for p in plots.glob("noise_discount-*.png"))
    assert noise == ["noise_discount-sweep-a-runs-seven-s0.5-seed1.png",
                     "noise_discount-sweep-b-runs-seven-s0.5-seed1.png"]
    assert len(out.split()) == len(set(out.split())) == 4


def test_two_files_in_one_folder_get_two_plots(tmp_path, capsys, summaries):
    (tmp_path / "first.json").write_text(json.dumps(summaries["seven"]))
    (tmp_path / "second.json").write_text(json.dumps(summaries["seven"]))
    assert diagnostics(capsys, tmp_path / "first.json", tmp_path / "second.json", "--out", tmp_path / "p")[0] == 0
    assert sorted(p.name for p in (tmp_path / "p").glob("noise_*")) == ["noise_discount-first.png",
                                                                       "noise_discount-second.png"]


def test_the_same_run_twice_is_an_error(tmp_path, capsys, summaries):
    run = write_run(tmp_path / "r", summaries["seven"])
    status, _, err = diagnostics(capsys, run, run / "diagnostics.json", "--out", tmp_path / "p")
    assert status == 2 and "are the same diagnostics file" in err and not (tmp_path / "p").exists()


def test_out_an_existing_file_is_a_clear_error(tmp_path, capsys, summaries):
    run = write_run(tmp_path / "r", summaries["seven"])
    (tmp_path / "taken").write_text("mine")
    status, _, err = diagnostics(capsys, run, "--out", tmp_path / "taken")
    assert status == 2 and f"diagnostics --out {tmp_path / 'taken'} is a file, not a folder" in err
    assert (tmp_path / "taken").read_text() == "mine"


def _snap(s):
    return s["snapshots"]


MALFORMED = [
    ("snapshots-string", lambda s: s.update(snapshots="none"), "'snapshots' must be a non-empty list"),
    ("snapshots-empty", lambda s: s.update(snapshots=[]), "'snapshots' must be a non-empty list"),
    ("snapshot-string", lambda s: _snap(s).__setitem__(0, "x"), "'snapshots' must be a non-empty list"),
    ("no-window", lambda s: s.pop("prune_steps"), "'prune_steps' must be an integer"),
    ("window-step", lambda s: _snap(s)[1].update(window_step="2"), r"'snapshots\[1\].window_step' must be an integer"),
    ("jaccard-text", lambda s: _snap(s)[0].update(jaccard_with_final_kept="high"),
     r"'snapshots\[0\].jaccard_with_final_kept' must be a number"),
    ("jaccard-cut", lambda s: _snap(s)[2].pop("jaccard_with_final_kept"),
     "'jaccard_with_final_kept' is in 2 of the 3 snapshots"),
    ("noise-string", lambda s: _snap(s)[0].update(noise_discount="x"), r"'snapshots\[0\].noise_discount' must be"),
    ("quantiles", lambda s: next(iter(_snap(s)[0]["noise_discount"]["per_weight"].values())).update(quantiles=[1]),
     r"'snapshots\[0\].noise_discount.per_weight.\S+' must be an object with 5 'quantiles'"),
    ("per-matrix", lambda s: s.update(final_sparsity_per_weight={"a": "half"}),
     "'final_sparsity_per_weight' must be an object"),
    ("method", lambda s: s.update(method=["seven"]), "'method' must be a string"),
]


@pytest.mark.parametrize("change,problem", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_diagnostics_file_is_named_before_anything_is_written(tmp_path, capsys, summaries, change,
                                                                           problem):
    good = write_run(tmp_path / "good", summaries["seven"])  # first: its plots would come first
    bad_summary = copy.deepcopy(summaries["seven"])
    change(bad_summary)
    bad = write_run(tmp_path / "bad", bad_summary)
    status, _, err = diagnostics(capsys, good, bad, "--out", tmp_path / "plots")
    assert status == 2, err
    assert f"{bad / 'diagnostics.json'}: " in err or f"{bad / 'diagnostics.json'} " in err
    assert pytest.importorskip("re").search(problem, err), err
    assert not (tmp_path / "plots").exists()


def test_runs_of_different_models_are_not_mixed_in_one_layer_plot(tmp_path, capsys, summaries):
    a = write_run(tmp_path / "a", summaries["seven"])
    other = copy.deepcopy(summaries["platon"])
    other["final_sparsity_per_weight"] = {"some.other.weight": 0.5}
    b = write_run(tmp_path / "b", other)
    status, _, err = diagnostics(capsys, a, b, "--out", tmp_path / "plots")
    assert status == 2 and "has other matrices than" in err and not (tmp_path / "plots").exists()


def test_nothing_to_plot_is_said(tmp_path, capsys, summaries):
    s = copy.deepcopy(summaries["platon"])
    for snap in s["snapshots"]:
        snap.pop("jaccard_with_final_kept")
    s.pop("final_sparsity_per_weight")
    status, _, err = diagnostics(capsys, write_run(tmp_path / "r", s), "--out", tmp_path / "p")
    assert status == 2 and "nothing to plot" in err


# -- report ------------------------------------------------------------------------------------------------------
def fake_sweep(folder):
    """A sweep folder with two finished runs (their result.json only)."""
    from sevenprune._fsutil import SWEEP_MARKER, write_marker

    for i, (method, s) in enumerate((("dense", 0.0), ("seven", 0.5))):
        run = folder / "runs" / f"{method}-seed1"
        run.mkdir(parents=True)
        result = {"task": "mr", "model": "tiny", "method": method, "seed": 1, "target_sparsity": s, "sparsity": s,
                  "model_sparsity": s / 2, "metric": "accuracy", "metrics": {"accuracy": 0.8 - i / 10},
                  "seconds": 1.0, "layers": {"encoder.layer.0.output.dense.weight": s}}
        (run / "result.json").write_text(json.dumps(result))
    write_marker(folder, SWEEP_MARKER)
    return folder


@pytest.mark.parametrize("name", ["report.md", "results.csv", "curve.png", "layers.png"])
def test_report_never_writes_through_a_link_in_a_sweep_folder(tmp_path, capsys, name):
    sweep = fake_sweep(tmp_path / "sweep")
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    (sweep / name).symlink_to(outside)
    assert main(["report", str(sweep)]) == 2
    err = capsys.readouterr().err
    assert f"{sweep / name} is a symbolic link; refusing to write through it" in err and "Traceback" not in err
    assert outside.read_text() == "keep me"
    assert not any((sweep / n).exists() for n in ("report.md", "results.csv", "curve.png", "layers.png") if n != name)


def test_report_rebuilds_its_own_files(tmp_path, capsys):
    sweep = fake_sweep(tmp_path / "sweep")
    assert main(["report", str(sweep)]) == 0
    (sweep / "report.md").write_text("old")
    assert main(["report", str(sweep)]) == 0
    assert (sweep / "report.md").read_text().startswith("# Sweep report")


# -- run ---------------------------------------------------------------------------------------------------------
def test_a_run_is_never_written_through_a_link(tmp_path):
    """In a sweep, runs/<name> may be a link to an empty folder elsewhere: refused before any work."""
    from sevenprune.tasks.run_dir import RunExistsError, check_run_dir

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "runs").mkdir()
    link = tmp_path / "runs" / "seven-s0.5-seed1"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(RunExistsError, match="is a symbolic link .* never written through a link"):
        check_run_dir(link, overwrite=True)
    assert not any((tmp_path / "elsewhere").iterdir())
