"""What the tool may delete or replace, and how: markers, refusals, staged replacement, permissions,
pruner states that cannot mix two saves, untrusted export files."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

import sevenprune as sp
from sevenprune import _fsutil as fs
from sevenprune.tasks.run import RunExistsError, is_run_dir, resolve_config, run
from sevenprune.export import COMPRESSED_FILE, COMPRESSED_MANIFEST, export_compressed, load_compressed

from _fake_mr import fake_mr


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- the policy ---------------------------------------------------------------------------------------------------
def test_check_removable_refuses_every_protected_place(tmp_path, monkeypatch):
    home, work = tmp_path / "home", tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work / "sub")
    for d in (home, work, work / "sub", tmp_path):
        fs.write_marker(d, fs.EXPORT_MARKER)  # a marker does not make these removable
    refused = {"/": "filesystem root", str(home): "home folder", str(tmp_path): "home folder or one above",
               ".": "current folder", "..": "current folder or one above it"}
    for path, why in refused.items():
        with pytest.raises(fs.UnsafePathError, match=why):
            fs.check_removable(path, fs.EXPORT_MARKER)
    kept = tmp_path / "elsewhere" / "run"
    (kept / "model").mkdir(parents=True)
    fs.write_marker(kept, fs.EXPORT_MARKER)
    with pytest.raises(fs.UnsafePathError, match="which this command reads"):
        fs.check_removable(kept, fs.EXPORT_MARKER, protect=[kept / "model"])
    unmarked = tmp_path / "elsewhere" / "mine"
    unmarked.mkdir()
    with pytest.raises(fs.UnsafePathError, match="not written by sevenprune"):
        fs.check_removable(unmarked, fs.EXPORT_MARKER)
    with pytest.raises(fs.UnsafePathError, match="not written by sevenprune"):  # another kind's marker
        fs.write_marker(unmarked, fs.RUN_MARKER)
        fs.check_removable(unmarked, fs.EXPORT_MARKER)
    link = tmp_path / "elsewhere" / "link"
    link.symlink_to(kept)
    with pytest.raises(fs.UnsafePathError, match="symbolic link"):
        fs.check_removable(link, fs.EXPORT_MARKER)
    assert fs.check_removable(kept, fs.EXPORT_MARKER) == kept.resolve()


def test_replace_dir_swaps_and_restores_the_old_folder_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    fs.write_marker(target, fs.EXPORT_MARKER)
    (target / "old.txt").write_text("old")
    new = fs.make_sibling_dir(target, "tmp")
    (new / "new.txt").write_text("new")
    real_replace = os.replace

    def failing(src, dst):  # the second rename (new folder into place) fails
        if Path(src) == new:
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing)
    with pytest.raises(OSError, match="disk full"):
        fs.replace_dir(new, target, fs.EXPORT_MARKER)
    monkeypatch.setattr(os, "replace", real_replace)
    assert (target / "old.txt").read_text() == "old" and new.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", new.name])  # nothing else aside
    fs.replace_dir(new, target, fs.EXPORT_MARKER)
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"] and list(tmp_path.iterdir()) == [target]


def test_made_folders_and_files_have_the_usual_permissions(tmp_path):
    old = os.umask(0o027)
    try:
        d = fs.make_sibling_dir(tmp_path / "x", "tmp")
        save_file({"a": torch.zeros(2)}, str(d / "a.safetensors"))  # safetensors writes 0o600
        fs.normal_permissions(d)
        assert mode(d) == 0o750 and mode(d / "a.safetensors") == 0o640
    finally:
        os.umask(old)


# -- runs ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    with fake_mr(root, sentences=60, test_size=12, seed=4) as (bert, cache):
        yield {"model": str(bert), "cache_dir": str(cache), "root": root}


def _cfg(env, **kw):
    return resolve_config({"task": "mr", "model": env["model"], "cache_dir": env["cache_dir"], "max_steps": 2,
                           "batch_size": 8, "max_length": 16, "progress": False, "method": "magnitude",
                           "sparsity": 0.5, **kw})


def test_run_marks_its_folder_and_writes_readable_files(env):
    out = env["root"] / "r-perm"
    run(_cfg(env), out, log=lambda *a: None)
    assert fs.has_marker(out, fs.RUN_MARKER) and is_run_dir(out)
    umask = os.umask(0)
    os.umask(umask)
    for p in (out / "model" / "model.safetensors", out / "pruner" / "pruner.safetensors", out / "result.json"):
        assert mode(p) == 0o666 & ~umask, p
    assert mode(out / "model") == 0o777 & ~umask


def test_overwrite_replaces_only_after_the_new_run_finished(env, monkeypatch):
    out = env["root"] / "r-over"
    run(_cfg(env, seed=1), out, log=lambda *a: None)
    before = (out / "result.json").read_text()

    def broken_train(*args, **kwargs):
        raise RuntimeError("training failed")

    from sevenprune.tasks import training

    monkeypatch.setattr(training, "train", broken_train)
    with pytest.raises(RuntimeError, match="training failed"):
        run(_cfg(env, seed=2), out, overwrite=True, log=lambda *a: None)
    assert (out / "result.json").read_text() == before  # the old run is untouched
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".r-over")) == []  # no leftovers
    monkeypatch.undo()
    run(_cfg(env, seed=2), out, overwrite=True, log=lambda *a: None)
    assert json.loads((out / "result.json").read_text())["seed"] == 2
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".r-over")] == []


def test_a_failed_new_run_leaves_nothing(env, monkeypatch):
    out = env["root"] / "r-fail"
    from sevenprune.tasks import training

    monkeypatch.setattr(training, "train", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        run(_cfg(env), out, log=lambda *a: None)
    assert not out.exists()


def test_a_model_folder_is_never_taken_for_a_run(env):
    out = env["root"] / "hf"
    shutil.copytree(env["model"], out)
    names = sorted(p.name for p in out.iterdir())
    for overwrite in (False, True):
        with pytest.raises(RunExistsError, match="not a sevenprune run folder"):
            run(_cfg(env), out, overwrite=overwrite)
    assert sorted(p.name for p in out.iterdir()) == names


def test_a_run_from_before_markers_is_still_resumed(env):
    out = env["root"] / "legacy"
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"task": "mr", "resolved": {"max_steps": 2}}))
    (out / "metrics.jsonl").write_text("{}\n")
    assert is_run_dir(out)
    run(_cfg(env), out, log=lambda *a: None)
    assert (out / "result.json").exists() and fs.has_marker(out, fs.RUN_MARKER)
    (out / "extra.txt").write_text("not ours")
    (out / fs.RUN_MARKER).unlink()
    assert not is_run_dir(out)  # a name a run never writes, and no marker: not a run


# -- pruner states ----------------------------------------------------------------------------------------------
def _pruner():
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.Linear(4, 2))
    pruner = sp.Pruner(model, "magnitude", sparsity=0.5, prune_steps=1)
    pruner.step()
    return model, pruner


def test_a_save_cut_between_its_two_renames_is_refused(tmp_path, monkeypatch):
    model, pruner = _pruner()
    sp.save_state(pruner, tmp_path / "s")
    real_replace = os.replace
    calls = []

    def crash_on_json(src, dst):
        calls.append(dst)
        if str(dst).endswith("pruner.json"):
            raise KeyboardInterrupt  # the tensors are renamed, the JSON is not
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_json)
    with pytest.raises(KeyboardInterrupt):
        sp.save_state(pruner, tmp_path / "s", overwrite=True)
    monkeypatch.undo()
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["pruner.json", "pruner.safetensors"]
    with pytest.raises(ValueError, match="were written by different saves"):
        sp.load_state(tmp_path / "s", model)
    sp.save_state(pruner, tmp_path / "s", overwrite=True)  # a complete save is read again
    assert sp.load_state(tmp_path / "s", model).sparsity() == pytest.approx(pruner.sparsity())


def test_state_masks_must_have_their_weights_shape(tmp_path):
    model, pruner = _pruner()
    sp.save_state(pruner, tmp_path / "s")
    path = tmp_path / "s" / "pruner.safetensors"
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        metadata = fh.metadata()
    tensors = load_file(str(path))
    tensors["mask/0.weight"] = tensors["mask/0.weight"][:1].contiguous()  # (1, 6) broadcasts over (4, 6)
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ValueError, match=r"pruner.safetensors: mask/0.weight is torch.bool of shape \[1, 6\]; "
                                         r"expected torch.bool of shape \[4, 6\]"):
        sp.load_state(tmp_path / "s", model)


# -- untrusted export files -------------------------------------------------------------------------------------
def _compressed(tmp_path):
    cfg = transformers.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                  vocab_size=50)
    model = transformers.BertModel(cfg).eval()
    pruner = sp.Pruner(model, "magnitude", sparsity=0.5, prune_steps=1)
    pruner.step()
    export_compressed(model, pruner.masks, tmp_path / "c", verbose=False)
    return tmp_path / "c", next(iter(pruner.masks))


def test_compressed_bitmask_must_fit_the_shape(tmp_path):
    out, name = _compressed(tmp_path)
    manifest = json.loads((out / COMPRESSED_MANIFEST).read_text())
    manifest["weights"][name]["shape"] = [4096, 4096]  # 16 M entries for a bitmask of a few bytes
    (out / COMPRESSED_MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=rf"bitmask/{name} holds \d+ torch.uint8 entries; shape \[4096, 4096\] "
                                         r"needs 2097152 uint8 bytes"):
        load_compressed(out)
    manifest["weights"][name]["shape"] = [-1, 2]
    (out / COMPRESSED_MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="has no valid shape"):
        load_compressed(out)


def test_compressed_file_damage_is_named(tmp_path):
    out, _ = _compressed(tmp_path)
    data = (out / COMPRESSED_FILE).read_bytes()
    (out / COMPRESSED_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=f"{COMPRESSED_FILE} is not a readable safetensors file"):
        load_compressed(out)


def test_export_folder_is_marked_and_replaced_only_when_marked(tmp_path):
    out, name = _compressed(tmp_path)
    assert fs.has_marker(out, fs.EXPORT_MARKER) and mode(out) == 0o777 & ~_umask()
    assert mode(out / COMPRESSED_FILE) == 0o666 & ~_umask()
    (out / fs.EXPORT_MARKER).unlink()
    with pytest.raises(fs.UnsafePathError, match="not written by sevenprune"):
        export_compressed(load_compressed(out), None, out, overwrite=True, verbose=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temporary folder left


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_an_output_that_cannot_be_created_is_named_before_any_work(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(fs.UnsafePathError, match=r"--out .*a-file/sub cannot be created: .*a-file is a file"):
        fs.check_output_parent(tmp_path / "a-file" / "sub", "--out")
    locked = tmp_path / "locked"
    locked.mkdir()
    # the tests run as root, which writes anywhere: stand in for a folder without write permission
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked)
    with pytest.raises(fs.UnsafePathError, match=r"--out .*locked/new/run cannot be created: .*locked is not writable"):
        fs.check_output_parent(locked / "new" / "run", "--out")
    fs.check_output_parent(tmp_path / "new" / "deep" / "run", "--out")  # missing parents are created later


def test_an_empty_out_folder_keeps_its_own_mode(env):
    out = env["root"] / "mine-empty"
    out.mkdir(mode=0o700)
    os.chmod(out, 0o700)
    run(_cfg(env, save_model=False), out, log=lambda *a: None)
    assert mode(out) == 0o700 and mode(out / "pruner" / "pruner.safetensors") == 0o666 & ~_umask()


def test_sibling_folders_land_beside_the_target_whatever_the_spelling(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    d = fs.make_sibling_dir("a/../out", "tmp")
    assert d.parent == tmp_path and d.name.startswith(".out.tmp-")
    assert fs.replace_dir(d, "a/../out", fs.EXPORT_MARKER) == tmp_path / "out" and (tmp_path / "out").is_dir()
