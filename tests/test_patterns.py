"""N:M and structured (heads / neurons) patterns inside sp.Pruner."""

from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn

import sevenprune as sp
from sevenprune.patterns import nm_holds, parse_pattern


def tiny_bert(seed: int = 0, heads: int = 4, layers: int = 2) -> transformers.BertForSequenceClassification:
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=heads,
                                  intermediate_size=64, vocab_size=100, num_labels=2)
    model = transformers.BertForSequenceClassification(cfg).eval()
    with torch.no_grad():  # BERT initialises biases to zero; make them visible
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.02)
    return model


def run_window(pruner: sp.Pruner, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        pruner.step()
        out.append(pruner.sparsity())
    return out


# -- parsing ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, parsed", [
    ("2:4", ("nm", 2, 4)), ("4:8", ("nm", 4, 8)), ("1:3", ("nm", 1, 3)),
    ("heads", ("structured", ("heads",))), ("neurons", ("structured", ("neurons",))),
    ("neurons+heads", ("structured", ("heads", "neurons"))), ("unstructured", ("unstructured",)),
])
def test_parse_pattern(text, parsed):
    assert parse_pattern(text) == parsed


@pytest.mark.parametrize("bad", ["4:2", "2:2", "0:4", "2:4:8", "head", "heads+heads", "", "blocks"])
def test_bad_pattern_names_the_valid_forms(bad):
    with pytest.raises(ValueError, match=r"'n:m'.*'heads'"):
        sp.Pruner(nn.Sequential(nn.Linear(8, 8)), "magnitude", 0.5, pattern=bad)


def test_pattern_must_be_a_string():
    with pytest.raises(TypeError, match="pattern must be a string"):
        sp.Pruner(nn.Sequential(nn.Linear(8, 8)), "magnitude", 0.5, pattern=24)  # type: ignore[arg-type]


# -- N:M ---------------------------------------------------------------------------------------------------------
def test_two_four_by_hand():
    model = nn.Sequential(nn.Linear(8, 2, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, -4.0, 3.0, 2.0, 0.5, 0.1, -0.2, 0.3],
                                            [9.0, 8.0, -7.0, 6.0, 1.0, 1.0, 1.0, 1.0]]))
    pruner = sp.Pruner(model, "magnitude", 0.5, prune_steps=1, pattern="2:4")
    pruner.step()
    # per group of 4, the two largest |w| stay; the tie 1,1,1,1 keeps the last two (earlier pruned first)
    expected = torch.tensor([[False, True, True, False, True, False, False, True],
                             [True, True, False, False, False, False, True, True]])
    assert torch.equal(pruner.masks["0.weight"], expected)
    assert torch.equal(model[0].weight != 0, expected)


@pytest.mark.parametrize("pattern, n, m", [("2:4", 2, 4), ("4:8", 4, 8), ("1:4", 1, 4)])
def test_nm_holds_in_every_group_and_ramps_with_the_schedule(pattern, n, m):
    model = tiny_bert()
    original = {k: v.detach().clone() for k, v in model.named_parameters()}
    pruner = sp.Pruner(model, "magnitude", 1 - n / m, start_step=0, prune_steps=5, pattern=pattern)
    for step in range(1, 6):
        pruner.step()
        want = round(pruner.scheduled_sparsity(step) * pruner.numel)
        assert sum(int((~mk).sum()) for mk in pruner.masks.values()) == want  # exact count every step
        for mask in pruner.masks.values():  # never more than m - n pruned in a group
            pruned = (~mask).reshape(mask.shape[0], -1, m).sum(dim=2)
            assert int(pruned.max()) <= m - n
    for name, mask in pruner.masks.items():
        assert nm_holds(mask, n, m)
        # magnitude with frozen weights: exactly the n largest |w| of each group are kept
        groups = original[name].abs().reshape(mask.shape[0], -1, m)
        top = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, groups.topk(n, dim=2).indices, True)
        assert torch.equal(mask, top.reshape(mask.shape))


def test_nm_with_seven_scores_and_training():
    model = tiny_bert()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    pruner = sp.Pruner(model, "seven", 0.5, start_step=1, prune_steps=3, optimizer=opt, pattern="2:4")
    x, y = torch.randint(0, 100, (4, 12)), torch.tensor([0, 1, 0, 1])
    model.train()
    for _ in range(6):
        model(input_ids=x, labels=y).loss.backward()
        opt.step()
        pruner.step()
        opt.zero_grad()
    assert pruner.sparsity() == 0.5
    for name, mask in pruner.masks.items():
        assert nm_holds(mask, 2, 4)
        assert torch.equal(pruner.params[name] != 0, mask)


def test_nm_transposed_conv1d():
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    model = nn.Sequential(Conv1D(6, 8))  # weight (in=8, out=6): the groups run along dim 0
    pruner = sp.Pruner(model, "magnitude", 0.5, prune_steps=1, pattern="2:4")
    pruner.step()
    mask = pruner.masks["0.weight"]
    assert nm_holds(mask, 2, 4, transposed=True)
    assert not nm_holds(mask, 2, 4) or nm_holds(mask.t().contiguous(), 2, 4)


def test_nm_needs_divisible_rows():
    with pytest.raises(ValueError, match=r"'0.weight' has 6 inputs per row, not a multiple of 4"):
        sp.Pruner(nn.Sequential(nn.Linear(6, 4)), "magnitude", 0.5, pattern="2:4")


def test_nm_sparsity_must_match():
    # checked when the pruner is built, not at the first pruning step
    with pytest.raises(ValueError, match=r"fixes the sparsity at 1 - 2/4 = 0.5; got sparsity=0.6"):
        sp.Pruner(nn.Sequential(nn.Linear(8, 4)), "magnitude", 0.6, prune_steps=1, pattern="2:4")


def test_nm_holds_helper():
    assert nm_holds(torch.tensor([[True, True, False, False]]), 2, 4)
    assert not nm_holds(torch.tensor([[True, True, True, False]]), 2, 4)
    assert not nm_holds(torch.ones(2, 6, dtype=torch.bool), 2, 4)


# -- heads and neurons -----------------------------------------------------------------------------------------
def head_sums(model, layer: int, heads: int) -> torch.Tensor:
    att = model.bert.encoder.layer[layer].attention
    d = 32 // heads
    total = torch.zeros(heads, dtype=torch.float64)
    for lin in (att.self.query, att.self.key, att.self.value):
        total += lin.weight.detach().abs().double().reshape(heads, d, -1).sum(dim=(1, 2))
    total += att.output.dense.weight.detach().abs().double().reshape(32, heads, d).sum(dim=(0, 2))
    return total


def test_heads_removes_the_lowest_summed_scores():
    model = tiny_bert(heads=4, layers=2)
    sums = torch.cat([head_sums(model, i, 4) for i in range(2)])
    pruner = sp.Pruner(model, "magnitude", 0.5, start_step=0, prune_steps=3, pattern="heads")
    counts = []
    for _ in range(3):
        pruner.step()
        gone = [(model.bert.encoder.layer[i].attention.output.dense.weight.reshape(32, 4, 8) == 0)
                .all(dim=2).all(dim=0) for i in range(2)]
        counts.append(int(torch.cat(gone).sum()))
    assert counts == sorted(counts) and counts[-1] == 4  # the schedule ramps to round(0.5 * 8) heads
    # expected by hand: protect each layer's best head, then the 4 lowest sums over both layers
    protected = {int(torch.argmax(sums[:4])), 4 + int(torch.argmax(sums[4:]))}
    order = [int(i) for i in torch.argsort(sums, stable=True) if int(i) not in protected]
    expected = set(order[:4])
    removed = {i * 4 + h for i in range(2) for h in range(4) if bool(gone[i][h])}
    assert removed == expected
    for i in range(2):
        att = model.bert.encoder.layer[i].attention
        for h in range(4):
            rows = slice(8 * h, 8 * h + 8)
            dead = (i * 4 + h) in expected
            for lin in (att.self.query, att.self.key, att.self.value):
                assert bool((lin.weight[rows] == 0).all()) == dead
                assert bool((lin.bias[rows] == 0).all()) == dead  # biases masked through extra_masks
        # the FFN is untouched by "heads"
        assert int((model.bert.encoder.layer[i].intermediate.dense.weight == 0).sum()) == 0
    assert set(pruner.extra_masks) == {f"bert.encoder.layer.{i}.attention.self.{p}.bias"
                                       for i in range(2) for p in ("query", "key", "value")}


def test_neurons_keep_at_least_one_per_layer_and_mask_biases():
    model = tiny_bert()
    pruner = sp.Pruner(model, "magnitude", 0.99, start_step=0, prune_steps=1, pattern="neurons")
    pruner.step()
    for i in range(2):
        inter = model.bert.encoder.layer[i].intermediate.dense
        alive_rows = (inter.weight != 0).any(dim=1)
        assert int(alive_rows.sum()) == 1  # 0.99 of 128 neurons, capped at all but one per layer
        assert torch.equal(inter.bias != 0, alive_rows)
        out_cols = (model.bert.encoder.layer[i].output.dense.weight != 0).any(dim=0)
        assert torch.equal(out_cols, alive_rows)
    assert int((model.bert.encoder.layer[0].attention.self.query.weight == 0).sum()) == 0


def test_heads_and_neurons_with_seven_and_an_optimizer():
    model = tiny_bert()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    pruner = sp.Pruner(model, "seven", 0.5, start_step=0, prune_steps=3, optimizer=opt,
                       pattern="heads+neurons")
    x, y = torch.randint(0, 100, (4, 12)), torch.tensor([0, 1, 0, 1])
    model.train()
    for _ in range(6):
        model(input_ids=x, labels=y).loss.backward()
        opt.step()
        pruner.step()
        opt.zero_grad()
    layers = model.bert.encoder.layer
    heads_gone = sum(int((lay.attention.output.dense.weight.reshape(32, 4, 8) == 0).all(2).all(0).sum())
                     for lay in layers)
    neurons_gone = sum(int((lay.output.dense.weight == 0).all(0).sum()) for lay in layers)
    assert (heads_gone, neurons_gone) == (4, 64)
    for name, mask in pruner.extra_masks.items():  # biases stay zero through AdamW's weight decay
        param = dict(model.named_parameters())[name]
        assert bool((param[~mask] == 0).all())


def test_structured_pattern_needs_a_known_architecture():
    with pytest.raises(ValueError, match="supported layout"):
        sp.Pruner(nn.Sequential(nn.Linear(8, 8)), "magnitude", 0.5, pattern="heads")


def test_structured_pattern_needs_its_weights_prunable():
    with pytest.raises(ValueError, match=r"needs 'bert.encoder.layer.0.attention.self.key.weight'"):
        sp.Pruner(tiny_bert(), "magnitude", 0.5, pattern="heads", exclude=r"attention\.self\.key")
    # the FFN weights are not needed by "heads"
    sp.Pruner(tiny_bert(), "magnitude", 0.5, pattern="heads", exclude=r"intermediate")


def test_nm_pruner_state_round_trip_resumes_the_ramp(tmp_path):
    model = tiny_bert()
    pruner = sp.Pruner(model, "magnitude", 0.5, start_step=0, prune_steps=4, pattern="2:4")
    run_window(pruner, 2)
    sp.save_state(pruner, tmp_path / "state")
    resumed = sp.load_state(tmp_path / "state", model)
    assert resumed.pattern == "2:4" and resumed.step_count == 2
    assert run_window(resumed, 2)[-1] == 0.5
    assert all(nm_holds(m, 2, 4) for m in resumed.masks.values())
