"""The Pruner in a training loop: exact counts, monotone masks, zeros that stay zero, resume, errors."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import sevenprune as sp
from conftest import tiny_bert, tiny_mlp


def train(model: nn.Module, opt: torch.optim.Optimizer, pruner: sp.Pruner | None, steps: int,
          seed: int = 0, start: int = 0) -> None:
    """A fixed data stream: batch i is the same whatever the starting point (for resume tests)."""
    for i in range(start, start + steps):
        g = torch.Generator().manual_seed(seed * 1000 + i)
        x = torch.randn(16, 6, generator=g)
        y = torch.randint(0, 3, (16,), generator=g)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if pruner is not None:
            pruner.step()
        opt.zero_grad()


# -- which weights ---------------------------------------------------------------------------------
def test_prunable_weights_of_a_bert_follow_method_md() -> None:
    model = tiny_bert()
    names = list(sp.find_prunable(model))
    assert "bert.encoder.layer.0.attention.self.query.weight" in names
    assert "bert.encoder.layer.1.output.dense.weight" in names
    assert "bert.pooler.dense.weight" in names
    assert not any("classifier" in n or "embeddings" in n or "LayerNorm" in n or n.endswith("bias")
                   for n in names)
    assert len(names) == 2 * 6 + 1  # q, k, v, attention out, ffn in, ffn out per layer + pooler


def test_include_exclude_tied_and_frozen() -> None:
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.Linear(4, 2))
    assert list(sp.find_prunable(model)) == ["0.weight", "3.weight"]  # the tied weight once
    model[3].weight.requires_grad_(False)
    assert list(sp.find_prunable(model)) == ["0.weight"]  # frozen weights are skipped
    bert = tiny_bert()
    only_q = sp.find_prunable(bert, include=r"query\.weight$")
    assert list(only_q) == [f"bert.encoder.layer.{i}.attention.self.query.weight" for i in range(2)]
    with_head = sp.find_prunable(bert, include=[r"classifier\.weight", r"layer\.0\.output\.dense"])
    assert list(with_head) == ["bert.encoder.layer.0.output.dense.weight", "classifier.weight"]
    no_pooler = sp.find_prunable(bert, exclude="pooler")
    assert "bert.pooler.dense.weight" not in no_pooler and len(no_pooler) == 12


# -- schedule, counts, monotone masks -------------------------------------------------------------
@pytest.mark.parametrize("method", ["seven", "magnitude"])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.55, 0.9])
def test_exact_final_count_and_monotone_masks(method: str, sparsity: float) -> None:
    model = tiny_mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    pruner = sp.Pruner(model, method, sparsity, start_step=2, prune_steps=5, optimizer=opt)
    n = pruner.numel
    assert n == 6 * 8 + 8 * 4 + 4 * 3
    previous = {k: m.clone() for k, m in pruner.masks.items()}
    for step in range(1, 10):
        train(model, opt, pruner, 1, start=step)
        expected = round(sp.cubic_sparsity(step, sparsity, 2, 5) * n)
        assert sum(int((~m).sum()) for m in pruner.masks.values()) == expected
        for k, m in pruner.masks.items():
            assert not (m & ~previous[k]).any(), "a pruned weight came back"
        previous = {k: m.clone() for k, m in pruner.masks.items()}
    assert pruner.sparsity() == round(sparsity * n) / n
    zeros = sum(int((p == 0).sum()) for p in pruner.params.values())
    assert zeros == round(sparsity * n)


def test_ties_are_broken_by_index_deterministically() -> None:
    layer = nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    pruner = sp.Pruner(layer, "magnitude", 0.5, prune_steps=1)
    pruner.step()
    assert pruner.masks["weight"].tolist() == [[False, False, False, False], [True, True, True, True]]


# -- zeros stay zero ----------------------------------------------------------------------------------
@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1),
    lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=0.01),
])
def test_pruned_weights_stay_exactly_zero(make_opt) -> None:  # type: ignore[no-untyped-def]
    model = tiny_mlp()
    opt = make_opt(model.parameters())
    pruner = sp.Pruner(model, "seven", 0.6, start_step=0, prune_steps=3, optimizer=opt)
    train(model, opt, pruner, 2)
    before = {k: m.clone() for k, m in pruner.masks.items()}
    train(model, opt, pruner, 1, start=2)
    masks = {k: m.clone() for k, m in pruner.masks.items()}
    # the optimizer's per-weight state was cleared for the entries pruned by the last update
    cleared = 0
    for name, p in pruner.params.items():
        new = before[name] & ~masks[name]
        for value in opt.state[p].values():
            if isinstance(value, torch.Tensor) and value.shape == p.shape:
                assert (value[new] == 0).all()
                assert (value[masks[name]] != 0).any()
                cleared += int(new.sum())
    assert cleared > 0
    train(model, opt, pruner, 10, start=3)
    for name, p in pruner.params.items():
        assert (p[~masks[name]] == 0).all()
        assert (p[masks[name]] != 0).all()
    # a forgotten pruner.step(): the optimizer hook still re-applies the masks
    train(model, opt, None, 5, start=13)
    for name, p in pruner.params.items():
        assert (p[~masks[name]] == 0).all()


def test_without_optimizer_masks_are_applied_by_step_only() -> None:
    model = tiny_mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=0.05, weight_decay=0.1)
    pruner = sp.Pruner(model, "magnitude", 0.5, prune_steps=1)  # not attached
    train(model, opt, pruner, 4)
    w = pruner.params["0.weight"]
    assert (w[~pruner.masks["0.weight"]] == 0).all()
    train(model, opt, None, 1, start=4)  # forgotten step, no hook: Adam revives the weights
    assert (w[~pruner.masks["0.weight"]] != 0).any()


def test_amp_overflow_steps_are_not_observed_but_counted() -> None:
    model = tiny_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    pruner = sp.Pruner(model, "seven", 0.5, start_step=0, prune_steps=4, optimizer=opt)
    x, y = torch.randn(8, 6), torch.randint(0, 3, (8,))

    def amp_step(overflow: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        if overflow:
            model[0].weight.grad[0, 0] = math.inf
        scaler.step(opt)
        scaler.update()
        pruner.step()
        opt.zero_grad()

    amp_step(False)
    stats = {k: {n: t.clone() for n, t in d.items()} for k, d in pruner.importance.stats.items()}
    weights = {n: p.detach().clone() for n, p in pruner.params.items()}
    amp_step(True)
    assert pruner.step_count == 2 and pruner.skipped_steps == 1 and pruner.observed_steps == 1
    for key, per_weight in pruner.importance.stats.items():
        for name, t in per_weight.items():
            alive = t > -math.inf  # entries pruned by this step's mask update hold -inf
            assert torch.isfinite(t[alive]).all()
            assert torch.equal(t[alive], stats[key][name][alive])
    for name, p in pruner.params.items():  # the optimizer step was skipped; masks still applied
        assert torch.equal(p[pruner.masks[name]], weights[name][pruner.masks[name]])
    amp_step(False)
    amp_step(False)
    assert pruner.sparsity() == round(0.5 * pruner.numel) / pruner.numel
    assert all((p[~pruner.masks[n]] == 0).all() for n, p in pruner.params.items())


# -- resume -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["seven", "magnitude"])
def test_resume_gives_identical_masks_and_weights(method: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    def fresh() -> tuple[nn.Module, torch.optim.Optimizer, sp.Pruner]:
        model = tiny_mlp(seed=3)
        opt = torch.optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.05)
        return model, opt, sp.Pruner(model, method, 0.7, start_step=10, prune_steps=20, optimizer=opt)

    model_a, opt_a, pruner_a = fresh()
    train(model_a, opt_a, pruner_a, 40)

    model_b, opt_b, pruner_b = fresh()
    train(model_b, opt_b, pruner_b, 20)
    sp.save_state(pruner_b, tmp_path / "pruner")
    model_state = copy.deepcopy(model_b.state_dict())
    opt_state = copy.deepcopy(opt_b.state_dict())
    del model_b, opt_b, pruner_b

    model_c = tiny_mlp(seed=99)  # a new model: weights come from the checkpoint
    model_c.load_state_dict(model_state)
    opt_c = torch.optim.AdamW(model_c.parameters(), lr=0.02, weight_decay=0.05)
    opt_c.load_state_dict(opt_state)
    pruner_c = sp.load_state(tmp_path / "pruner", model_c, optimizer=opt_c)
    assert pruner_c.step_count == 20 and pruner_c.method == method
    train(model_c, opt_c, pruner_c, 20, start=20)

    for name in pruner_a.masks:
        assert torch.equal(pruner_a.masks[name], pruner_c.masks[name])
    for (na, pa), (nc, pc) in zip(model_a.state_dict().items(), model_c.state_dict().items()):
        assert na == nc and torch.equal(pa, pc), na


def test_state_round_trip_keeps_every_statistic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = tiny_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    pruner = sp.Pruner(model, "seven", 0.5, start_step=0, prune_steps=10, optimizer=opt,
                       state_dtype=torch.bfloat16, beta1=0.7, moments="signed")
    train(model, opt, pruner, 4)
    sp.save_state(pruner, tmp_path / "s")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        sp.save_state(pruner, tmp_path / "s")
    loaded = sp.load_state(tmp_path / "s", tiny_mlp())
    assert loaded.config() == pruner.config()
    a, b = pruner.state_dict(), loaded.state_dict()
    assert a["step"] == b["step"] == 4
    assert a["importance"].keys() == b["importance"].keys() and len(a["importance"]) == 9
    for key in a["importance"]:
        assert torch.equal(a["importance"][key], b["importance"][key])
        assert b["importance"][key].dtype == a["importance"][key].dtype
    assert (tmp_path / "s" / "pruner.json").read_text().count('"moments": "signed"') == 1


def test_load_state_dict_refuses_another_configuration_naming_the_fields() -> None:
    model = tiny_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    seven = sp.Pruner(model, "seven", 0.9, start_step=0, prune_steps=10, optimizer=opt)
    train(model, opt, seven, 3)
    state = seven.state_dict()
    other = sp.Pruner(tiny_mlp(), "magnitude", 0.5, start_step=0, prune_steps=10)
    before = other.config()
    with pytest.raises(ValueError, match=r"another configuration.*method: state 'seven', pruner 'magnitude'"
                                         r".*sparsity: state 0.9, pruner 0.5") as info:
        other.load_state_dict(state)
    assert "start_step" not in str(info.value) and "from_state" in str(info.value)
    assert other.config() == before and other.step_count == 0  # nothing was reconfigured or loaded
    # the same configuration loads; from_state builds it from the state
    same = sp.Pruner(tiny_mlp(), "seven", 0.9, start_step=0, prune_steps=10)
    same.load_state_dict(state)
    built = sp.Pruner.from_state(tiny_mlp(), state)
    for p in (same, built):
        assert p.config() == seven.config() and p.step_count == 3
        assert all(torch.equal(p.masks[n], seven.masks[n]) for n in seven.masks)


def test_state_saved_before_an_option_existed_loads_with_its_default() -> None:
    model = tiny_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    seven = sp.Pruner(model, "seven", 0.5, start_step=0, prune_steps=10, optimizer=opt)
    train(model, opt, seven, 3)
    state = seven.state_dict()
    del state["config"]["method_options"]["noise_discount"]  # as saved before the option existed
    same = sp.Pruner(tiny_mlp(), "seven", 0.5, start_step=0, prune_steps=10)
    same.load_state_dict(state)
    assert same.step_count == 3 and all(torch.equal(same.masks[n], seven.masks[n]) for n in seven.masks)
    assert sp.Pruner.from_state(tiny_mlp(), state).config() == seven.config()
    with pytest.raises(ValueError, match="another configuration.*noise_discount"):  # the default, not any value
        sp.Pruner(tiny_mlp(), "seven", 0.5, start_step=0, prune_steps=10, noise_discount=False).load_state_dict(state)


def test_from_state_and_config_rebuild_every_field(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = tiny_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    pruner = sp.Pruner(model, "platon", 0.6, start_step=1, prune_steps=6, exclude=r"^0\.", scope="local",
                       mask_interval=2, state_dtype="bfloat16", optimizer=opt, delta_t=2)
    train(model, opt, pruner, 4)
    assert sp.Pruner(tiny_mlp(), **pruner.config()).config() == pruner.config()
    sp.save_state(pruner, tmp_path / "s")
    for loaded in (sp.Pruner.from_state(tiny_mlp(), pruner.state_dict()), sp.load_state(tmp_path / "s", tiny_mlp())):
        assert loaded.method == "platon" and loaded.config() == pruner.config()
        assert loaded.importance.state_dtype == torch.bfloat16 and list(loaded.masks) == list(pruner.masks)
        assert loaded.step_count == 4 and loaded.sparsity() == pruner.sparsity()
    with pytest.raises(ValueError, match=r"another configuration.*exclude: state \['\^0\\\\.'\], pruner None"):
        sp.load_state(tmp_path / "s", sp.Pruner(tiny_mlp(), "platon", 0.6, start_step=1, prune_steps=6,
                                                scope="local", mask_interval=2, state_dtype="bfloat16", delta_t=2))


def test_scheduled_and_final_sparsity_are_named_apart() -> None:
    model = tiny_mlp()
    pruner = sp.Pruner(model, "magnitude", 0.8, start_step=0, prune_steps=4)
    pruner.step()
    report = pruner.report()
    assert report["target_sparsity"] == pruner.sparsity_target == 0.8  # the final target
    assert report["scheduled_sparsity"] == pruner.scheduled_sparsity() == pruner.scheduled_sparsity(1) < 0.8
    assert not hasattr(pruner, "target_sparsity")  # the older name of scheduled_sparsity is gone
    assert pruner.scheduled_sparsity(4) == 0.8


def test_from_masks_holds_fixed_masks() -> None:
    model = tiny_mlp()
    masks = {n: torch.rand(p.shape, generator=torch.Generator().manual_seed(1)) > 0.25
             for n, p in sp.find_prunable(model).items()}
    pruner = sp.Pruner.from_masks(model, masks, method="mine", seed=3)
    assert pruner.finished and pruner.method == "mine" and not pruner.importance.needs_grad
    assert pruner.config()["method_options"] == {"seed": 3}
    assert pruner.sparsity() == pytest.approx(pruner.sparsity_target)  # measured from the masks
    assert all(bool((p[~masks[n]] == 0).all()) for n, p in pruner.params.items())
    pruner.step()  # keeps them applied; no gradient needed
    restored = sp.Pruner.from_state(tiny_mlp(), pruner.state_dict())
    assert restored.method == "mine" and restored.config() == pruner.config() and restored.finished
    other = sp.Pruner.from_masks(tiny_mlp(), masks, method="magnitude", sparsity=0.3)
    assert other.config()["sparsity"] == 0.3 and all(torch.equal(other.masks[n], masks[n]) for n in masks)
    assert not hasattr(sp.Pruner, "with_masks")  # the deprecated alias is gone


# -- end to end on a tiny BERT ------------------------------------------------------------------------
def test_tiny_bert_end_to_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    transformers = pytest.importorskip("transformers")
    model = tiny_bert()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    pruner = sp.Pruner(model, "seven", 0.6, start_step=2, prune_steps=6, optimizer=opt)
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        ids = torch.randint(0, 64, (4, 12), generator=g)
        out = model(input_ids=ids, labels=torch.randint(0, 2, (4,), generator=g))
        out.loss.backward()
        opt.step()
        pruner.step()
        opt.zero_grad()
    report = pruner.report()
    assert report["sparsity"] == round(0.6 * pruner.numel) / pruner.numel
    total = sum(p.numel() for p in model.parameters())
    assert report["model_sparsity"] == pytest.approx(round(0.6 * pruner.numel) / total)
    assert set(report["layers"]) == set(pruner.params)
    assert len({round(v["sparsity"], 3) for v in report["layers"].values()}) > 1  # one global threshold
    assert "bert.pooler.dense.weight" in pruner.summary()
    model.save_pretrained(tmp_path / "m")
    reloaded = transformers.BertForSequenceClassification.from_pretrained(tmp_path / "m")
    for name, mask in pruner.masks.items():
        assert (reloaded.get_parameter(name)[~mask] == 0).all()


# -- errors -------------------------------------------------------------------------------------------
def test_errors_name_the_bad_value(tmp_path) -> None:  # type: ignore[no-untyped-def]
    model = tiny_mlp()
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\).*got 1.0"):
        sp.Pruner(model, "seven", 1.0)
    with pytest.raises(ValueError, match=r"got -0.1"):
        sp.Pruner(model, "seven", -0.1)
    with pytest.raises(TypeError, match=r"sparsity must be a number.*'0.5'"):
        sp.Pruner(model, "seven", "0.5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown method 'sevn'; choose one of \[.*'magnitude'.*'seven'"):
        sp.Pruner(model, "sevn", 0.5)
    with pytest.raises(ValueError, match="start_step must be >= 0, got -1"):
        sp.Pruner(model, "seven", 0.5, start_step=-1)
    with pytest.raises(ValueError, match="prune_steps must be >= 1, got 0"):
        sp.Pruner(model, "seven", 0.5, prune_steps=0)
    with pytest.raises(TypeError, match="prune_steps must be an integer, got 2.5"):
        sp.Pruner(model, "seven", 0.5, prune_steps=2.5)  # type: ignore[arg-type]
    embeddings_only = nn.Sequential(nn.Embedding(10, 4), nn.LayerNorm(4))
    with pytest.raises(ValueError, match=r"no prunable weights found.*0\.weight"):
        sp.Pruner(embeddings_only, "seven", 0.5)
    with pytest.raises(ValueError, match=r"include pattern\(s\) \['nope'\] matched no weight.*0\.weight"):
        sp.Pruner(model, "seven", 0.5, include="nope")
    with pytest.raises(ValueError, match=r"exclude pattern\(s\) \['nope'\] matched no weight"):
        sp.Pruner(model, "seven", 0.5, exclude=["nope"])
    with pytest.raises(ValueError, match="not a valid regular expression"):
        sp.Pruner(model, "seven", 0.5, include="(")
    pruner = sp.Pruner(model, "seven", 0.5)
    with pytest.raises(RuntimeError, match=r"call pruner.step\(\) after loss.backward\(\) and before "
                                           r"optimizer.zero_grad\(\)"):
        pruner.step()
    with pytest.raises(TypeError, match="optimizer must be a torch.optim.Optimizer"):
        pruner.attach("adam")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="optimizer holds none of the prunable weights"):
        pruner.attach(torch.optim.SGD(tiny_mlp().parameters(), lr=0.1))

    sp.save_state(pruner, tmp_path / "mlp")
    other = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 3))
    with pytest.raises(ValueError, match=r"another model: shapes differ: \['2.weight: saved \(4, 8\), model \(5, 8\)"):
        sp.load_state(tmp_path / "mlp", other)
    renamed = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4), nn.Linear(4, 3))
    with pytest.raises(ValueError, match=r"another model: weights only in the state: \['4.weight'\]"):
        sp.load_state(tmp_path / "mlp", renamed)
    with pytest.raises(FileNotFoundError, match="no pruner state in"):
        sp.load_state(tmp_path / "missing", model)
