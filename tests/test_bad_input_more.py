"""More bad input (issue 36): inputs once accepted in silence, and messages that did not say what was
wrong. The same harness as test_bad_input.py: one line naming the file, key or value, exit status 2, no
traceback, and nothing that existed before changed or left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import transformers

from sevenprune.tasks.config import RunConfig, plan_schedule
from sevenprune.tasks.sweep import load_sweep_file

from test_bad_input import copy_run, csvs, guarded, images, mr, tc, world  # noqa: F401 (fixtures)
from test_bad_input import test_bad_input as _check_bad_input


def tsv(t: Path, text: str, name: str = "data") -> str:
    d = t / name
    d.mkdir()
    for split in ("train", "validation"):
        (d / f"{split}.tsv").write_text(text, encoding="utf-8")
    return str(d)


def sweep_file(t: Path, **spec) -> str:
    spec = {"methods": ["dense"], "max_steps": 1, "out": str(t / "s"), **spec}
    (t / "sweep.json").write_text(json.dumps(spec))
    return str(t / "sweep.json")


def sweep_in_subfolder(t: Path, w: dict) -> list[str]:
    """A sweep file in sub/ naming data_dir "data": read beside the file (sub/data, missing), not from the
    current folder (./data exists)."""
    csvs(t, TWO)
    (t / "sub").mkdir()
    (t / "sub" / "s.json").write_text(json.dumps({"methods": ["dense"], "task": "text-classification",
                                                  "model": str(w["bert"]), "data_dir": "data", "max_steps": 1}))
    return ["sweep", "--config", "sub/s.json", "--out", str(t / "s")]


def quietly(make):
    """Build a model folder without transformers' progress bars (the harness counts stderr's lines)."""
    def wrapped(*args):
        transformers.logging.disable_progress_bar()
        try:
            return make(*args)
        finally:
            transformers.logging.enable_progress_bar()
    return wrapped


@quietly
def classifier_folder(t: Path, w: dict, labels: int) -> str:
    model = transformers.BertForSequenceClassification.from_pretrained(str(w["bert"]), num_labels=labels)
    model.save_pretrained(str(t / f"bert-{labels}-labels"))
    for f in Path(w["bert"]).iterdir():  # the tokenizer's files
        if f.name not in ("config.json", "model.safetensors"):
            (t / f"bert-{labels}-labels" / f.name).write_bytes(f.read_bytes())
    return str(t / f"bert-{labels}-labels")


@quietly
def vit_folder(t: Path) -> str:
    cfg = transformers.ViTConfig(image_size=8, patch_size=4, hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=32)
    transformers.ViTForImageClassification(cfg).save_pretrained(str(t / "vit"))
    return str(t / "vit")


TWO = "text,label\ngood,pos\nbad,neg\n"

CASES = [
    # -- one column in two roles ---------------------------------------------------------------------
    ("tc-label-as-text", lambda t, w: [*tc(w), "--data-dir", csvs(t, TWO), "--text-column", "label"],
     ["column 'label' is both --text-column and --label-column"]),
    ("tc-label-as-pair", lambda t, w: [*tc(w), "--data-dir", csvs(t, TWO), "--text-pair-column", "label"],
     ["column 'label' is both --text-pair-column and --label-column"]),
    ("tc-text-as-pair", lambda t, w: [*tc(w), "--data-dir", csvs(t, TWO), "--text-column", "text",
                                      "--text-pair-column", "text"],
     ["column 'text' is both --text-column and --text-pair-column"]),
    ("tc-label-is-the-default-text", lambda t, w: [*tc(w), "--data-dir", csvs(t, TWO), "--label-column", "text"],
     ["train.csv: column 'text' is both --text-column and --label-column"]),
    # -- a warm-up longer than the run -----------------------------------------------------------------
    ("warmup-longer-than-max-steps", lambda t, w: ["run", *mr(w), "--method", "dense", "--warmup-steps", "3"],
     ["--warmup-steps 3 is longer than the run (2 steps)"]),
    ("warmup-longer-than-the-epochs",
     lambda t, w: ["run", "--task", "text-classification", "--model", str(w["bert"]), "--method", "dense",
                   "--data-dir", csvs(t, TWO), "--epochs", "1", "--batch-size", "2", "--warmup-steps", "9",
                   "--no-progress"],
     ["--warmup-steps 9 is longer than the run (1 steps)"]),
    # -- empty paths (the current folder in disguise) --------------------------------------------------
    ("empty-run-out", lambda t, w: ["run", *mr(w), "--method", "dense", "--out", ""],
     ["argument --out: expected a path, got ''"]),
    ("empty-data-dir", lambda t, w: [*tc(w), "--data-dir", ""], ["argument --data-dir: expected a path"]),
    ("empty-model", lambda t, w: ["run", *mr(w)[2:], "--task", "mr", "--method", "dense", "--model", ""],
     ["--model must name a folder or a model, got ''"]),
    ("empty-sweep-out", lambda t, w: ["sweep", "--methods", "dense", "--out", ""], ["argument --out: expected a path"]),
    ("empty-export-out", lambda t, w: ["export", str(copy_run(t, w)), "--format", "dense", "--out", ""],
     ["argument --out: expected a path"]),
    ("empty-export-run", lambda t, w: ["export", "", "--format", "dense"], ["argument RUN_DIR: expected a path"]),
    ("empty-report-dir", lambda t, w: ["report", ""], ["argument DIR: expected a path"]),
    ("empty-diagnostics-out", lambda t, w: ["diagnostics", str(t), "--out", ""], ["argument --out: expected a path"]),
    # -- sweep files -----------------------------------------------------------------------------------
    ("sweep-seeds-empty", lambda t, w: ["sweep", "--config", sweep_file(t, seeds=[])],
     ["'seeds' is an empty list"]),
    ("sweep-methods-empty", lambda t, w: ["sweep", "--config", sweep_file(t, methods=[])],
     ["'methods' is an empty list"]),
    ("sweep-sparsities-empty", lambda t, w: ["sweep", "--config", sweep_file(t, sparsities=[])],
     ["'sparsities' is an empty list"]),
    ("sweep-out-empty", lambda t, w: ["sweep", "--config", sweep_file(t, out="")],
     ["'out' must be a non-empty string, got ''"]),
    ("sweep-data-dir-beside-the-file", sweep_in_subfolder, ["--data-dir 'sub/data' is not a folder"]),
    # -- export ----------------------------------------------------------------------------------------
    ("export-structured-of-unstructured",
     lambda t, w: ["export", str(copy_run(t, w)), "--format", "structured", "--out", str(t / "e")],
     ["--format structured removes pruned heads and neurons", "pattern 'unstructured'", "empty none"]),
    # -- messages that did not say what was wrong ------------------------------------------------------
    ("tc-tsv-named-csv", lambda t, w: [*tc(w), "--data-dir", csvs(t, "text\tlabel\ngood\tpos\nbad\tneg\n")],
     ["train.csv looks tab-separated", "rename it to train.tsv"]),
    ("tc-csv-named-tsv", lambda t, w: [*tc(w), "--data-dir", tsv(t, TWO)],
     ["train.tsv looks comma-separated", "rename it to train.csv"]),
    ("tc-header-only", lambda t, w: [*tc(w), "--data-dir", csvs(t, "text,label\n")],
     ["train.csv holds a header line but no rows"]),
    ("tc-empty-file", lambda t, w: [*tc(w), "--data-dir", csvs(t, "")], ["train.csv is empty"]),
    ("image-task-with-a-text-model",
     lambda t, w: ["run", "--task", "image-classification", "--data-dir", images(t, ("a", "b"), ("a", "b")),
                   "--model", str(w["bert"]), "--method", "dense", "--max-steps", "1", "--no-progress"],
     ["is a 'bert' model, which cannot do task 'image-classification'", "--model vit-scratch"]),
    ("text-task-with-an-image-model",
     lambda t, w: [*tc(w)[:4], vit_folder(t), *tc(w)[5:], "--data-dir", csvs(t, TWO)],
     ["is a 'vit' model, which cannot do task 'text-classification'"]),
    ("saved-classifier-with-other-labels",
     lambda t, w: [*tc(w)[:4], classifier_folder(t, w, 3), *tc(w)[5:], "--data-dir", csvs(t, TWO)],
     ["is a classifier saved with 3 labels", "task 'text-classification' has 2"]),
]


@pytest.mark.parametrize("build, expected", [pytest.param(b, e, id=i) for i, b, e in CASES])
def test_more_bad_input(build, expected, world, tmp_path, monkeypatch, capsys, guarded):  # noqa: F811
    _check_bad_input(build, expected, world, tmp_path, monkeypatch, capsys, guarded)


def test_sweep_file_paths_are_relative_to_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp" / "tiny").mkdir(parents=True)
    (tmp_path / "exp" / "tiny" / "config.json").write_text("{}")
    spec = {"methods": ["dense"], "data_dir": "data", "cache_dir": "../cache", "model": "tiny", "out": "runs/x",
            "variants": {"d2": {"method": "dense", "data_dir": "other"}}}
    (tmp_path / "exp" / "s.json").write_text(json.dumps(spec))
    got = load_sweep_file("exp/s.json")
    assert got["data_dir"] == "exp/data" and got["cache_dir"] == "cache" and got["model"] == "exp/tiny"
    assert got["variants"]["d2"]["data_dir"] == "exp/other"
    assert got["out"] == "runs/x"  # outputs stay relative to the current folder, like every --out
    for name in ("minilm", "org/model"):  # names, not folders beside the file
        (tmp_path / "exp" / "s.json").write_text(json.dumps({**spec, "model": name}))
        assert load_sweep_file("exp/s.json")["model"] == name
    (tmp_path / "exp" / "s.json").write_text(json.dumps({**spec, "data_dir": str(tmp_path / "abs")}))
    assert load_sweep_file("exp/s.json")["data_dir"] == str(tmp_path / "abs")
    (tmp_path / "exp" / "s.json").write_text(json.dumps(spec))
    monkeypatch.chdir(tmp_path / "exp")  # from the file's own folder: as before
    assert load_sweep_file("s.json")["data_dir"] == "data"


def test_a_warmup_as_long_as_the_run_is_fine():
    cfg = RunConfig(method="dense", max_steps=5, warmup_steps=5)
    assert plan_schedule(cfg, 100)["max_steps"] == 5
    with pytest.raises(ValueError, match="--warmup-steps 6 is longer than the run"):
        plan_schedule(RunConfig(method="dense", max_steps=5, warmup_steps=6), 100)


@pytest.mark.parametrize("spec", [{"methods": ["seven", "seven"], "sparsities": [0.5]},
                                  {"methods": ["seven"], "sparsities": [0.5, 0.5]},
                                  {"methods": ["dense"], "seeds": [1, 1]},
                                  {"methods": ["seven"], "sparsities": [0.5, 0.5000001]}])
def test_two_runs_of_one_name_are_refused(spec):
    from sevenprune.tasks.sweep import expand

    with pytest.raises(ValueError, match="the sweep has two runs named"):
        expand(spec)
