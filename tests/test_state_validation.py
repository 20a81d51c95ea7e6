"""A saved pruner state that was edited or damaged is refused, naming the file and the field; every
state the library writes still loads."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import sevenprune as sp
from sevenprune import cli
from sevenprune.state import STATE_JSON, STATE_TENSORS, StateFileError, read_state


def model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))


def saved(tmp_path, method="magnitude", steps=2, *, start_step=1, prune_steps=4, sparsity=0.5, **kwargs):
    """A state saved after ``steps`` steps of a real pruner (step 2: inside the window 2..5)."""
    m = model()
    pruner = sp.Pruner(m, method, sparsity, start_step=start_step, prune_steps=prune_steps, **kwargs)
    for _ in range(steps):
        m(torch.randn(3, 8)).sum().backward()
        pruner.step()
        m.zero_grad()
    return sp.save_state(pruner, tmp_path / "state"), pruner


def edit_json(directory, change):
    path = directory / STATE_JSON
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))
    return path


def edit_masks(directory, change):
    path = directory / STATE_TENSORS
    tensors = load_file(str(path))
    change(tensors)
    meta = json.loads((directory / STATE_JSON).read_text())
    save_file(tensors, str(path), metadata={"format": meta["format"], "generation": meta["generation"]})


def put(keys, value):
    def change(meta):
        d = meta
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value
    return change


BAD_FIELDS = [
    (("step",), -1, "step", "must be in"),
    (("step",), 2.5, "step", "must be an integer"),
    (("step",), 10**30, "step", "must be in"),
    (("step",), "2", "step", "must be an integer"),
    (("step",), True, "step", "must be an integer"),
    (("step",), None, "step", "must be an integer"),
    (("observed_steps",), 7, "observed_steps", "more than the 2 steps"),
    (("skipped_steps",), -3, "skipped_steps", "must be in"),
    (("config", "prune_steps"), 0, "config.prune_steps", "must be in"),
    (("config", "prune_steps"), -4, "config.prune_steps", "must be in"),
    (("config", "prune_steps"), 4.5, "config.prune_steps", "must be an integer"),
    (("config", "prune_steps"), 10**30, "config.prune_steps", "must be in"),
    (("config", "start_step"), -1, "config.start_step", "must be in"),
    (("config", "mask_interval"), 0, "config.mask_interval", "must be in"),
    (("config", "sparsity"), 1.5, "config.sparsity", r"must be a number in \[0, 1\)"),
    (("config", "sparsity"), "0.5", "config.sparsity", r"must be a number in \[0, 1\)"),
    (("config", "method"), "bogus", "config.method", "unknown method 'bogus'"),
    (("config", "method"), 3, "config.method", "must be a method name"),
    (("config", "method_options"), {"colour": 1}, "config.method_options", r"has no option\(s\) \['colour'\]"),
    (("config", "method_options"), [1], "config.method_options", "must be an object"),
    (("config", "method_options"), {"seed": "x"}, "config.method_options", "seed"),
    (("config", "scope"), "galaxy", "config.scope", "must be one of"),
    (("config", "state_dtype"), "int8", "config.state_dtype", "must be one of"),
    (("config", "pattern"), "4:2", "config.pattern", "n:m pattern needs"),
    (("config", "pattern"), 24, "config.pattern", "must be a string"),
    (("config", "include"), "[", "config.include", "not a regular expression"),
    (("config", "exclude"), {"a": 1}, "config.exclude", "must be null, a regular expression"),
    (("config", "colour"), "red", "config", r"unknown field\(s\) \['colour'\]"),
    (("shapes", "0.weight"), [8, "8"], "shapes.0.weight", "must be a list of sizes"),
]


@pytest.mark.parametrize("keys,value,field,problem", BAD_FIELDS, ids=[f"{'.'.join(k)}={v!r}"[:40] for k, v, *_ in
                                                                       BAD_FIELDS])
def test_an_edited_field_is_refused_naming_the_file_and_the_field(tmp_path, keys, value, field, problem):
    directory, _ = saved(tmp_path)
    path = edit_json(directory, put(keys, value))
    for load in (lambda: read_state(directory), lambda: sp.load_state(directory, model())):
        with pytest.raises(StateFileError, match=problem) as info:
            load()
        assert isinstance(info.value, ValueError)
        assert info.value.path == path and info.value.field == field
        assert str(info.value).startswith(f"{path}: {field}: ")


def test_a_missing_field_is_named(tmp_path):
    directory, _ = saved(tmp_path)
    path = edit_json(directory, lambda meta: meta["config"].pop("prune_steps"))
    with pytest.raises(StateFileError, match=r"config\.prune_steps: missing") as info:
        sp.load_state(directory, model())
    assert info.value.path == path
    edit_json(directory, lambda meta: meta.pop("step"))
    with pytest.raises(StateFileError, match="step: must be an integer, got None"):
        sp.load_state(directory, model())


def test_masks_edited_after_the_window_are_refused(tmp_path):
    directory, pruner = saved(tmp_path, steps=6)  # window 2..5 over: half of the 96 weights pruned
    assert pruner.finished and pruner.sparsity() == pytest.approx(0.5, abs=0.01)
    edit_masks(directory, lambda t: t.__setitem__("mask/0.weight", torch.ones(8, 8, dtype=torch.bool)))
    with pytest.raises(StateFileError, match=r"pruner.safetensors: mask/\*: .* edited after the window"):
        sp.load_state(directory, model())


def test_more_pruned_than_the_schedule_allows_is_refused(tmp_path):
    directory, pruner = saved(tmp_path, steps=2)  # step 2 of the window: cubic schedule 0.5 * (1 - 0.75**3)
    assert 0 < pruner.sparsity() < 0.3
    edit_masks(directory, lambda t: t.__setitem__("mask/0.weight", torch.zeros(8, 8, dtype=torch.bool)))
    with pytest.raises(StateFileError, match=r"more than the schedule's \d+"):
        read_state(directory)


def test_masks_pruned_before_the_window_are_refused(tmp_path):
    directory, pruner = saved(tmp_path, steps=1)  # step 1 = start_step: nothing pruned yet
    assert pruner.sparsity() == 0
    edit_masks(directory, lambda t: t.__setitem__("mask/2.weight", torch.zeros(4, 8, dtype=torch.bool)))
    with pytest.raises(StateFileError, match="32 entries are pruned before the pruning window starts"):
        read_state(directory)


def test_a_later_step_with_the_masks_of_an_earlier_one_is_refused(tmp_path):
    """Moving ``step`` past the window without pruning more: the masks fall short of the target."""
    directory, _ = saved(tmp_path, steps=2)
    edit_json(directory, put(("step",), 9))
    with pytest.raises(StateFileError, match="edited after the window"):
        read_state(directory)


def test_a_huge_window_with_finished_masks_is_refused(tmp_path):
    directory, _ = saved(tmp_path, steps=6)
    edit_json(directory, put(("config", "prune_steps"), 10**6))
    with pytest.raises(StateFileError, match="more than the schedule's"):
        read_state(directory)


def test_export_of_a_tampered_run_is_a_clear_error(tmp_path, capsys):
    import transformers

    torch.manual_seed(0)
    cfg = transformers.BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                                  vocab_size=50)
    bert = transformers.BertForSequenceClassification(cfg)
    pruner = sp.Pruner(bert, "magnitude", 0.5, prune_steps=1)
    pruner.step()
    run = tmp_path / "run"
    bert.save_pretrained(str(run / "model"))
    sp.save_state(pruner, run / "pruner")
    edit_json(run / "pruner", put(("config", "method"), "bogus"))
    edit_json(run / "pruner", put(("config", "start_step"), 3))
    assert cli.main(["export", str(run), "--format", "compressed"]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'pruner' / STATE_JSON}: config.method: unknown method 'bogus'" in err and "Traceback" not in err
    assert not (run / "export-compressed").exists()


# -- what the library writes still loads ---------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [
    {"method": "seven", "steps": 3},
    {"method": "magnitude", "steps": 9, "scope": "local", "sparsity": 0.37},
    {"method": "magnitude", "steps": 6, "pattern": "2:4"},
    {"method": "magnitude", "steps": 0},
    {"method": "magnitude", "steps": 5, "mask_interval": 2},
], ids=["seven-mid-window", "local-finished", "2:4", "before-any-step", "mask-interval"])
def test_states_the_library_writes_load(tmp_path, kwargs):
    directory, pruner = saved(tmp_path, **kwargs)
    restored = sp.load_state(directory, model())
    assert restored.config() == pruner.config() and restored.step_count == pruner.step_count
    assert all(torch.equal(restored.masks[n], m) for n, m in pruner.masks.items())


def test_fixed_masks_with_a_label_of_their_own_load(tmp_path):
    m = model()
    masks = {n: torch.rand(p.shape, generator=torch.Generator().manual_seed(1)) > 0.3
             for n, p in m.named_parameters() if n.endswith("weight")}
    pruner = sp.Pruner.from_masks(m, masks, method="diagonal")
    sp.save_state(pruner, tmp_path / "s")
    restored = sp.load_state(tmp_path / "s", model())
    assert restored.method == "diagonal" and restored.sparsity() == pytest.approx(pruner.sparsity())


def test_a_state_of_another_model_names_the_file(tmp_path):
    directory, _ = saved(tmp_path)
    other = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 5))
    with pytest.raises(StateFileError, match=r"pruner.json: state: this pruner state belongs to another model"):
        sp.load_state(directory, other)


def test_bad_option_values_of_seven_are_named(tmp_path):
    directory, _ = saved(tmp_path, method="seven", steps=3)
    edit_json(directory, lambda meta: meta["config"]["method_options"].update(moments="weird"))
    with pytest.raises(StateFileError, match=r"config.method_options: moments must be 'abs', 'signed' or 'optimizer'"):
        sp.load_state(directory, model())
