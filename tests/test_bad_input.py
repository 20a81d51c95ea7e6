"""Bad input on the command line: one line naming the file, key or value; exit status 2; no traceback;
and nothing that existed before is changed or deleted.

Each case builds its own scenario in a fresh folder (``t``), which is also the working directory
(``$HOME`` is a fresh folder beside it). Every file there, and in the shared tiny model and data, is fingerprinted
(path, bytes, mode) before the command and compared after it: a case passes only if the command left
all of it exactly as it was. Deleting anything is also blocked outside the temporary folders while
the command runs, so even a wrong implementation cannot remove ``/`` or a real home folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from sevenprune import cli
from sevenprune.tasks.run import resolve_config, run

from _fake_mr import fake_mr


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny BERT, the fake mr data and one finished run (magnitude 0.5, model saved), shared read-only."""
    root = tmp_path_factory.mktemp("world")
    with fake_mr(root, sentences=60, test_size=12, seed=3) as (bert, cache):
        cfg = resolve_config({"task": "mr", "model": str(bert), "cache_dir": str(cache), "method": "magnitude",
                              "sparsity": 0.5, "max_steps": 2, "batch_size": 8, "max_length": 16,
                              "progress": False})
        run(cfg, root / "run", log=lambda *a: None)
        yield {"root": root, "bert": bert, "cache": cache, "run": root / "run"}


def mr(w: dict) -> list[str]:
    """Flags of a quick valid mr run."""
    return ["--task", "mr", "--model", str(w["bert"]), "--cache-dir", str(w["cache"]), "--max-steps", "2",
            "--batch-size", "8", "--max-length", "16", "--no-progress", "--no-save-model"]


def tc(w: dict) -> list[str]:
    """Flags of a quick text-classification run (``--data-dir`` is added by each case)."""
    return ["run", "--task", "text-classification", "--model", str(w["bert"]), "--method", "magnitude",
            "--sparsity", "0.5", "--max-steps", "2", "--batch-size", "4", "--no-progress", "--no-save-model"]


def csvs(t: Path, train: str, validation: str | None = "text,label\nfine,pos\n", name: str = "data") -> str:
    d = t / name
    d.mkdir()
    (d / "train.csv").write_text(train, encoding="utf-8")
    if validation is not None:
        (d / "validation.csv").write_text(validation, encoding="utf-8")
    return str(d)


def glue(t: Path, label: str, text: bool = True) -> str:
    d = t / "glue"
    d.mkdir()
    for split in ("train", "validation"):
        if text:
            (d / f"{split}.tsv").write_text(f"sentence\tlabel\ngood\t1\nbad\t{label}\n", encoding="utf-8")
        else:
            (d / f"{split}.tsv").write_bytes(b"\xff\xfe\x00\x81binary\x00\x9c" * 20)
    return str(d)


def images(t: Path, train: tuple[str, ...], val: tuple[str, ...]) -> str:
    from PIL import Image

    for split, classes in (("train", train), ("val", val)):
        for c in classes:
            (t / "img" / split / c).mkdir(parents=True)
            Image.new("RGB", (4, 4), (200, 0, 0)).save(t / "img" / split / c / "0.png")
    return str(t / "img")


def copy_run(t: Path, w: dict) -> Path:
    return Path(shutil.copytree(w["run"], t / "run"))


def user_folder(t: Path, name: str = "mine") -> Path:
    d = t / name
    d.mkdir(parents=True)
    (d / "notes.txt").write_text("my notes\n")
    return d


def export(t: Path, w: dict, out: str, *extra: str) -> list[str]:
    return ["export", str(copy_run(t, w)), "--format", "compressed", "--out", out, "--overwrite", *extra]


def damage(path: Path, how: str) -> None:
    if how == "truncate":
        path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])
    elif how == "garbage":
        path.write_bytes(b"\x00\x01not a safetensors file")


def state_file(t: Path, w: dict, name: str, how: str) -> list[str]:
    run_dir = copy_run(t, w)
    damage(run_dir / "pruner" / name, how)
    return ["export", str(run_dir), "--format", "dense", "--out", str(t / "e")]


def edit_state_json(t: Path, w: dict, edit: Callable[[dict], None]) -> list[str]:
    run_dir = copy_run(t, w)
    path = run_dir / "pruner" / "pruner.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))
    return ["export", str(run_dir), "--format", "dense", "--out", str(t / "e")]


def reshaped_mask(t: Path, w: dict) -> list[str]:
    run_dir = copy_run(t, w)
    path = run_dir / "pruner" / "pruner.safetensors"
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        metadata = fh.metadata()
    tensors = load_file(str(path))
    name = sorted(k for k in tensors if k.startswith("mask/"))[0]
    tensors[name] = tensors[name][:1].contiguous()  # one row: it would broadcast over the weight
    save_file(tensors, str(path), metadata=metadata)
    return ["export", str(run_dir), "--format", "dense", "--out", str(t / "e")]


def sharded_model_outside(t: Path, w: dict) -> list[str]:
    run_dir = copy_run(t, w)
    model = run_dir / "model"
    (t / "elsewhere.safetensors").write_bytes((model / "model.safetensors").read_bytes())
    (model / "model.safetensors").unlink()
    (model / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"classifier.weight": "../../elsewhere.safetensors"}}))
    return ["export", str(run_dir), "--format", "dense", "--out", str(t / "e")]


def sweep_with_corrupt_run(t: Path, w: dict) -> list[str]:
    out = t / "sw"
    done = out / "runs" / "dense-seed42"
    done.mkdir(parents=True)
    (out / ".sevenprune-sweep").write_text("")
    (done / ".sevenprune-run").write_text("")
    (done / "result.json").write_text("{}")
    (done / "config.json").write_text('{"task": "mr", ')  # cut off
    return ["sweep", *mr(w), "--methods", "dense", "--out", str(out)]


def report_with_corrupt_result(t: Path, w: dict) -> list[str]:
    out = t / "sw"
    (out / "runs" / "a").mkdir(parents=True)
    (out / "runs" / "a" / "result.json").write_text('{"metrics": ')
    return ["report", str(out)]


def sweep_file(t: Path, w: dict, name: str, text: str | bytes) -> list[str]:
    path = t / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return ["sweep", "--config", str(path), *mr(w), "--out", str(t / "sw")]


def hf_model_folder(t: Path, w: dict) -> Path:
    return Path(shutil.copytree(w["bert"], t / "hf-model"))


def model_with_custom_code(t: Path, w: dict) -> list[str]:
    """A model folder whose config asks for its own Python code, which would leave a file if it ran."""
    model = hf_model_folder(t, w)
    config = json.loads((model / "config.json").read_text())
    config.update(model_type="evil-bert", auto_map={"AutoConfig": "evil.EvilConfig",
                                                    "AutoModelForSequenceClassification": "evil.EvilModel"})
    (model / "config.json").write_text(json.dumps(config))
    (model / "evil.py").write_text(f"open({str(t / 'RAN')!r}, 'w').write('the checkpoint ran code')\n")
    return ["run", *mr(w), "--model", str(model), "--method", "dense"]


def corrupt_model(t: Path, w: dict) -> list[str]:
    model = hf_model_folder(t, w)
    damage(model / "model.safetensors", "truncate")
    return ["run", *mr(w), "--model", str(model), "--method", "dense", "--out", str(t / "r")]


CASES = [
    # -- data: your own files ------------------------------------------------------------------------
    ("tc-unseen-validation-label",
     lambda t, w: [*tc(w), "--data-dir", csvs(t, "text,label\ngood,pos\nbad,neg\n", "text,label\nok,pos\nmeh,neu\n"),
                   "--out", str(t / "r")],
     ["validation.csv: row 2: label 'neu' does not occur in the training split"]),
    ("tc-missing-label-column",
     lambda t, w: [*tc(w), "--data-dir", csvs(t, "text,label\ngood,pos\nbad,neg\n"), "--label-column", "sentiment"],
     ["train.csv: no column 'sentiment' (--label-column)"]),
    ("tc-no-text-column",
     lambda t, w: [*tc(w), "--data-dir", csvs(t, "review,label\ngood,pos\nbad,neg\n")],
     ["train.csv: no column 'text' or 'sentence'", "--text-column"]),
    ("tc-binary-train-file", lambda t, w: [*tc(w), "--data-dir", binary_train(t)],
     ["train.csv cannot be read as csv (not UTF-8 text)"]),
    ("tc-one-label", lambda t, w: [*tc(w), "--data-dir", csvs(t, "text,label\ngood,pos\nfine,pos\n")],
     ["train.csv: the training labels take 1 value(s) ['pos']"]),
    ("tc-no-validation-file", lambda t, w: [*tc(w), "--data-dir", csvs(t, "text,label\na,x\nb,y\n", None)],
     ["no validation{.csv"]),
    ("tc-empty-label", lambda t, w: [*tc(w), "--data-dir", csvs(t, "text,label\ngood,pos\nbad,\nok,neg\n")],
     ["train.csv: row 2: no label in column 'label'"]),
    ("tc-column-flag-for-glue", lambda t, w: ["run", "--task", "sst2", "--method", "dense", "--text-column", "review"],
     ["--text-column 'review' is for --task text-classification, not 'sst2'"]),
    ("tc-without-data-dir", lambda t, w: [*tc(w)], ["task 'text-classification' needs --data-dir"]),
    ("image-unknown-val-class",
     lambda t, w: ["run", "--task", "image-classification", "--model", "vit-scratch", "--method", "dense",
                   "--data-dir", images(t, ("cat", "dog"), ("cat", "bird"))],
     ["class folder 'bird' is not among the training classes"]),
    ("image-one-class",
     lambda t, w: ["run", "--task", "image-classification", "--model", "vit-scratch", "--method", "dense",
                   "--data-dir", images(t, ("cat",), ("cat",))],
     ["holds 1 class folder(s)"]),
    # -- data: GLUE files ---------------------------------------------------------------------------------
    ("glue-string-label", lambda t, w: ["run", *mr(w)[2:], "--task", "sst2", "--method", "dense",
                                        "--data-dir", glue(t, "neg")],
     ["train.tsv: row 2: label 'neg' in column 'label' is not a class id 0..1 of task sst2",
      "--task text-classification"]),
    ("glue-label-out-of-range", lambda t, w: ["run", *mr(w)[2:], "--task", "sst2", "--method", "dense",
                                              "--data-dir", glue(t, "5")],
     ["train.tsv: row 2: label '5' in column 'label' is outside the class ids 0..1 of task sst2"]),
    ("glue-binary-file", lambda t, w: ["run", *mr(w)[2:], "--task", "sst2", "--method", "dense",
                                       "--data-dir", glue(t, "1", text=False)],
     ["train.tsv is not UTF-8 text"]),
    ("mr-with-data-dir", lambda t, w: ["run", *mr(w), "--method", "dense", "--data-dir", str(user_folder(t))],
     ["task 'mr' reads its own data and would ignore --data-dir"]),
    ("data-dir-missing", lambda t, w: [*tc(w), "--data-dir", str(t / "nope")], ["--data-dir", "nope' is not a folder"]),
    # -- output paths -------------------------------------------------------------------------------------
    ("run-out-below-a-file",
     lambda t, w: ["run", *mr(w), "--method", "dense", "--out", str(file_at(t) / "sub")],
     ["a-file is a file, not a folder"]),
    ("run-out-is-a-file", lambda t, w: ["run", *mr(w), "--method", "dense", "--out", str(file_at(t))],
     ["a-file is a file, not a folder"]),
    ("run-out-hf-model-folder",
     lambda t, w: ["run", *mr(w), "--method", "dense", "--out", str(hf_model_folder(t, w))],
     ["hf-model is not empty and is not a sevenprune run folder"]),
    ("run-out-hf-model-folder-overwrite",
     lambda t, w: ["run", *mr(w), "--method", "dense", "--out", str(hf_model_folder(t, w)), "--overwrite"],
     ["hf-model is not empty and is not a sevenprune run folder"]),
    ("run-out-current-folder-overwrite",
     lambda t, w: ["run", *mr(w), "--method", "dense", "--out", ".", "--overwrite"],
     ["is not empty and is not a sevenprune run folder"]),
    ("run-overwrite-with-bad-method-option",
     lambda t, w: ["run", *mr(w), "--method", "magnitude", "--sparsity", "0.5", "--out", str(copy_run(t, w)),
                   "--overwrite", "--method-option", "nonsense=1"],
     ["nonsense"]),
    ("run-overwrite-with-bad-data",
     lambda t, w: [*tc(w), "--data-dir", csvs(t, "text,label\ngood,pos\nbad,neg\n", "text,label\nx,odd\n"),
                   "--out", str(copy_run(t, w)), "--overwrite"],
     ["label 'odd' does not occur"]),
    ("run-finished-without-overwrite",
     lambda t, w: ["run", *mr(w), "--method", "magnitude", "--sparsity", "0.5", "--out", str(copy_run(t, w))],
     ["already holds a finished run"]),
    ("sweep-out-not-a-sweep",
     lambda t, w: ["sweep", *mr(w), "--methods", "dense", "--out", str(user_folder(t))],
     ["mine is not empty and is not a sevenprune sweep folder"]),
    ("sweep-out-below-a-file",
     lambda t, w: ["sweep", *mr(w), "--methods", "dense", "--out", str(file_at(t) / "sw")],
     ["a-file is a file, not a folder"]),
    # -- export: what --overwrite may remove -----------------------------------------------------------
    ("export-over-the-run", lambda t, w: export(t, w, str(t / "run")), ["refusing to remove", "/run"]),
    ("export-over-its-model", lambda t, w: export(t, w, str(t / "run" / "model")), ["refusing to remove", "model"]),
    ("export-over-its-pruner", lambda t, w: export(t, w, str(t / "run" / "pruner")), ["refusing to remove", "pruner"]),
    ("export-over-current-folder", lambda t, w: export(t, w, "."),
     ["refusing to remove", "the current folder or one above it"]),
    ("export-over-parent-folder", lambda t, w: ["export", *export(t, w, "..")[1:]] if chdir_below(t) else [],
     ["refusing to remove", "the current folder or one above it"]),
    ("export-over-home", lambda t, w: export(t, w, str(Path.home())), ["refusing to remove", "the home folder"]),
    ("export-over-root", lambda t, w: export(t, w, "/"), ["refusing to remove", "root"]),
    ("export-over-a-user-folder", lambda t, w: export(t, w, str(user_folder(t))),
     ["refusing to remove", "mine", "not written by sevenprune"]),
    ("export-existing-without-overwrite", lambda t, w: export(t, w, str(user_folder(t)))[:-1],
     ["exists and is not empty"]),
    ("export-out-is-a-file", lambda t, w: export(t, w, str(file_at(t))), ["a-file is a file, not a folder"]),
    # -- devices ---------------------------------------------------------------------------------------------
    ("device-cuda-not-there", lambda t, w: ["run", *mr(w), "--method", "dense", "--device", "cuda:99"],
     ["--device cuda:99"]),
    ("device-unknown", lambda t, w: ["run", *mr(w), "--method", "dense", "--device", "tpu"],
     ["unknown device 'tpu'"]),
    # -- damaged files ----------------------------------------------------------------------------------------
    ("state-tensors-truncated", lambda t, w: state_file(t, w, "pruner.safetensors", "truncate"),
     ["pruner.safetensors is not a readable safetensors file"]),
    ("state-tensors-garbage", lambda t, w: state_file(t, w, "pruner.safetensors", "garbage"),
     ["pruner.safetensors is not a readable safetensors file"]),
    ("state-json-truncated", lambda t, w: state_file(t, w, "pruner.json", "truncate"),
     ["pruner.json is not valid JSON"]),
    ("state-unknown-format",
     lambda t, w: edit_state_json(t, w, lambda m: m.update(format="sevenprune.pruner/99")),
     ["pruner.json: unknown format 'sevenprune.pruner/99'"]),
    ("state-two-generations", lambda t, w: edit_state_json(t, w, lambda m: m.update(generation="0123")),
     ["pruner.safetensors and", "pruner.json were written by different saves"]),
    ("state-mask-of-another-shape", reshaped_mask, ["pruner.safetensors: mask/", "expected torch.bool of shape"]),
    ("model-tensors-truncated",
     lambda t, w: (damage(copy_run(t, w) / "model" / "model.safetensors", "truncate"),
                   ["export", str(t / "run"), "--format", "dense", "--out", str(t / "e")])[1],
     ["model.safetensors is not a readable safetensors file"]),
    ("model-shard-outside-the-folder", sharded_model_outside,
     ["model.safetensors.index.json: shard name '../../elsewhere.safetensors' is not a file name inside"]),
    ("run-model-truncated", corrupt_model, ["cannot load model", "hf-model"]),
    ("run-model-with-custom-code", model_with_custom_code, ["hf-model contains custom code",
                                                            "trust_remote_code"]),
    ("sweep-run-config-truncated", sweep_with_corrupt_run, ["dense-seed42/config.json is not valid JSON"]),
    ("report-result-truncated", report_with_corrupt_result, ["runs/a/result.json is not valid JSON"]),
    # -- sweep configurations ----------------------------------------------------------------------------
    ("sweep-json-invalid", lambda t, w: sweep_file(t, w, "s.json", '{"methods": ["dense"],}'),
     ["s.json' is not valid JSON"]),
    ("sweep-toml-invalid", lambda t, w: sweep_file(t, w, "s.toml", 'methods = ["dense"\n'),
     ["s.toml' is not valid TOML"]),
    ("sweep-json-list", lambda t, w: sweep_file(t, w, "s.json", '["dense"]'), ["s.json'", "got a list"]),
    ("sweep-sparsities-string", lambda t, w: sweep_file(t, w, "s.json", '{"methods": ["seven"], "sparsities": "0.5"}'),
     ["s.json'", "'sparsities' must be a list of numbers in (0, 1), got '0.5'"]),
    ("sweep-methods-number", lambda t, w: sweep_file(t, w, "s.toml", 'methods = 7\n'),
     ["s.toml'", "'methods' must be a list of method names (strings), got 7"]),
    ("sweep-sparsity-out-of-range",
     lambda t, w: sweep_file(t, w, "s.toml", 'methods = ["seven"]\nsparsities = [1.5]\n'),
     ["s.toml'", "1.5 is not"]),
    ("sweep-binary-config", lambda t, w: sweep_file(t, w, "s.json", b"\xff\xfe\x00binary"),
     ["s.json' is not UTF-8 text"]),
    ("model-config-truncated",
     lambda t, w: (damage(copy_run(t, w) / "model" / "config.json", "truncate"),
                   ["export", str(t / "run"), "--format", "dense", "--out", str(t / "e")])[1],
     ["cannot read", "model/config.json as a transformers config"]),
    ("data-dir-damaged-save-to-disk",
     lambda t, w: ["run", *mr(w)[2:], "--task", "sst2", "--method", "dense", "--data-dir", damaged_dataset(t)],
     ["--data-dir", "is not a readable datasets save_to_disk folder"]),
    ("include-not-a-regex",
     lambda t, w: ["run", *mr(w), "--method", "magnitude", "--sparsity", "0.5", "--include", "(query"],
     ["include pattern '(query' is not a valid regular expression"]),
    ("max-length-past-the-model",
     lambda t, w: ["run", *mr(w)[:-6], "--max-length", "4096", "--no-progress", "--method", "dense"],
     ["--max-length 4096 exceeds the 128 positions of model"]),
    # -- values that used to be accepted silently ------------------------------------------------------------
    ("epochs-zero", lambda t, w: ["run", "--method", "dense", "--epochs", "0"], ["--epochs must be > 0, got 0"]),
    ("threads-zero", lambda t, w: ["run", "--method", "dense", "--threads", "0"], ["--threads must be >= 1, got 0"]),
    ("max-steps-zero", lambda t, w: ["run", "--method", "dense", "--max-steps", "0"], ["--max-steps must be >= 1"]),
    ("warmup-negative", lambda t, w: ["run", "--method", "dense", "--warmup-steps", "-1"],
     ["--warmup-steps must be >= 0, got -1"]),
    ("eval-every-negative", lambda t, w: ["run", "--method", "dense", "--eval-every", "-2"],
     ["--eval-every must be >= 0, got -2"]),
    ("start-step-negative", lambda t, w: ["run", "--method", "seven", "--sparsity", "0.5", "--start-step", "-1"],
     ["--start-step must be >= 0, got -1"]),
    ("mask-interval-zero", lambda t, w: ["run", "--method", "seven", "--sparsity", "0.5", "--mask-interval", "0"],
     ["--mask-interval must be >= 1, got 0"]),
    ("max-grad-norm-negative", lambda t, w: ["run", "--method", "dense", "--max-grad-norm", "-1"],
     ["--max-grad-norm must be >= 0, got -1"]),
    ("sparsity-not-a-number", lambda t, w: ["run", "--method", "seven", "--sparsity", "half"],
     ["argument --sparsity: invalid float value: 'half'"]),
    ("unknown-flag", lambda t, w: ["run", "--method", "dense", "--sparsty", "0.5"],
     ["unrecognized arguments: --sparsty"]),
]


def damaged_dataset(t: Path) -> str:
    d = t / "saved"
    d.mkdir()
    (d / "dataset_dict.json").write_text('{"splits": ["train", "valid')
    return str(d)


def binary_train(t: Path) -> str:
    d = t / "data"
    d.mkdir()
    (d / "train.csv").write_bytes(b"\xff\xfe\x00\x81\x9c\xff" * 50)
    (d / "validation.csv").write_text("text,label\nok,pos\n")
    return str(d)


def file_at(t: Path) -> Path:
    (t / "a-file").write_text("keep me\n")
    return t / "a-file"


def chdir_below(t: Path) -> bool:
    """Make ``t/cwd`` the working directory, so that ``..`` is ``t`` itself."""
    (t / "cwd").mkdir(exist_ok=True)
    os.chdir(t / "cwd")
    return True


def fingerprint(*roots: Path) -> dict[str, tuple[int, str]]:
    """Every file and folder under ``roots``: (mode, sha256 of the content or 'dir')."""
    out = {}
    for root in roots:
        for p in [root, *root.rglob("*")]:
            digest = "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            out[str(p)] = (p.stat().st_mode, digest)
    return out


@pytest.fixture
def guarded(monkeypatch, tmp_path):
    """Deleting or renaming anything outside the temporary folders fails the test instead."""
    tmp_root = Path(tempfile.gettempdir()).resolve()

    def check(path) -> None:
        p = Path(path).absolute()
        assert tmp_root in p.parents, f"the command tried to remove or move {p}"

    for module, name in ((shutil, "rmtree"), (os, "rmdir"), (os, "replace"), (os, "rename"), (os, "unlink"),
                         (os, "remove")):
        real = getattr(module, name)

        def wrapper(path, *args, _real=real, **kwargs):
            check(path)
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)


@pytest.mark.parametrize("build, expected", [pytest.param(b, e, id=i) for i, b, e in CASES])
def test_bad_input(build, expected, world, tmp_path, monkeypatch, capsys, guarded):
    t, home = tmp_path / "case", tmp_path / "home"  # home beside the case, not above it
    t.mkdir()
    home.mkdir()
    (home / "dotfile").write_text("mine\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(t)
    (t / "my-notes.txt").write_text("a file of the user's in the current folder\n")
    argv = build(t, world)
    before = fingerprint(t, home, world["root"])
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    captured = capsys.readouterr()
    lines = [x for x in captured.err.splitlines() if x.strip()]
    assert code == 2, (captured.out, captured.err)
    assert "Traceback" not in captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("sevenprune") and "error:" in lines[0]
    for fragment in expected:
        assert fragment in lines[0], lines[0]
    assert fingerprint(t, home, world["root"]) == before  # nothing pre-existing changed, nothing new left behind


def test_the_table_covers_every_category():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids)) >= 40
    for prefix in ("tc-", "glue-", "run-out", "export-over", "device-", "state-", "sweep-", "epochs-"):
        assert any(i.startswith(prefix) for i in ids), prefix
