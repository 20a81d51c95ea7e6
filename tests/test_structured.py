"""Physical removal of heads and neurons: shapes, outputs, save/load."""

from __future__ import annotations

import pytest
import torch
import transformers
from torch import nn

import sevenprune as sp
from sevenprune.structured import find_blocks, load_structured, removable_groups, save_structured, shrink


def randomize_biases(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.02)
    return model.eval()


def tiny_bert(seed: int = 0) -> transformers.BertForSequenceClassification:
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, vocab_size=100, num_labels=2)
    return randomize_biases(transformers.BertForSequenceClassification(cfg))


def tiny_distilbert() -> nn.Module:
    torch.manual_seed(0)
    cfg = transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=100)
    return randomize_biases(transformers.DistilBertForSequenceClassification(cfg))


def tiny_vit() -> nn.Module:
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                 image_size=16, patch_size=8, num_channels=3)
    return randomize_biases(transformers.ViTForImageClassification(cfg))


def prune(model: nn.Module, pattern: str = "heads+neurons", sparsity: float = 0.5) -> sp.Pruner:
    pruner = sp.Pruner(model, "magnitude", sparsity, start_step=0, prune_steps=2, pattern=pattern)
    for _ in range(2):
        pruner.step()
    return pruner


def test_find_blocks_layouts():
    assert [(b.layout, b.num_heads, b.head_size, b.num_neurons) for b in find_blocks(tiny_bert())] == [
        ("bert", 4, 8, 64)] * 2
    assert [b.layout for b in find_blocks(tiny_distilbert())] == ["distilbert"] * 2
    vit = find_blocks(tiny_vit())
    assert [b.layout for b in vit] == ["vit"] * 2 and vit[0].query.endswith("attention.q_proj")
    assert find_blocks(nn.Sequential(nn.Linear(4, 4))) == []


def test_shrink_shapes_and_outputs_match_the_masked_model():
    model = tiny_bert()
    pruner = prune(model)
    x = torch.randint(0, 100, (3, 10))
    with torch.no_grad():
        masked = model(input_ids=x).logits
    groups = removable_groups(model, pruner.masks)
    assert sum(len(g["heads"]) for g in groups.values()) == 4   # half of 2 x 4 heads
    assert sum(len(g["neurons"]) for g in groups.values()) == 64  # half of 2 x 64 neurons
    small = shrink(model, pruner.masks)
    for i, layer in enumerate(small.bert.encoder.layer):
        g = groups[f"bert.encoder.layer.{i}"]
        heads, neurons = 4 - len(g["heads"]), 64 - len(g["neurons"])
        assert tuple(layer.attention.self.query.weight.shape) == (8 * heads, 32)
        assert tuple(layer.attention.self.value.bias.shape) == (8 * heads,)
        assert tuple(layer.attention.output.dense.weight.shape) == (32, 8 * heads)
        assert tuple(layer.intermediate.dense.weight.shape) == (neurons, 32)
        assert tuple(layer.output.dense.weight.shape) == (32, neurons)
    n_small = sum(p.numel() for p in small.parameters())
    n_big = sum(p.numel() for p in model.parameters())
    # each layer loses 4 x (32 x 8 + 8) per removed head... counted exactly:
    removed = 4 * (3 * (32 * 8 + 8) + 32 * 8) + 64 * (32 + 1 + 32)
    assert n_big - n_small == removed
    with torch.no_grad():
        out = small(input_ids=x).logits
    torch.testing.assert_close(out, masked, rtol=0, atol=1e-6)
    # the original is untouched (shrink copies by default)
    assert model.bert.encoder.layer[0].attention.self.query.weight.shape == (32, 32)


@pytest.mark.parametrize("build, inputs", [
    (tiny_distilbert, lambda: {"input_ids": torch.randint(0, 100, (2, 7))}),
    (tiny_vit, lambda: {"pixel_values": torch.randn(2, 3, 16, 16)}),
])
def test_shrink_other_architectures(build, inputs):
    model = build()
    pruner = prune(model)
    batch = inputs()
    with torch.no_grad():
        masked = model(**batch).logits
        small = shrink(model, pruner.masks)
        torch.testing.assert_close(small(**batch).logits, masked, rtol=0, atol=1e-6)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in model.parameters())


def test_shrink_without_masks_uses_zero_columns_and_keeps_one_head():
    model = tiny_bert()
    layer = model.bert.encoder.layer[0]
    with torch.no_grad():
        layer.attention.output.dense.weight.zero_()   # every head of layer 0 adds nothing
        layer.output.dense.weight[:, 5].zero_()       # neuron 5
    assert removable_groups(model)["bert.encoder.layer.0"] == {"heads": [1, 2, 3], "neurons": [5]}
    x = torch.randint(0, 100, (2, 9))
    with torch.no_grad():
        before = model(input_ids=x).logits
        small = shrink(model)
        after = small(input_ids=x).logits
    assert small.bert.encoder.layer[0].attention.self.query.out_features == 8  # one head kept
    assert small.bert.encoder.layer[0].intermediate.dense.out_features == 63
    assert small.bert.encoder.layer[1].intermediate.dense.out_features == 64
    torch.testing.assert_close(after, before, rtol=0, atol=1e-6)


def test_save_and_load_structured_round_trip(tmp_path):
    model = tiny_bert()
    pruner = prune(model, "heads")
    small = shrink(model, pruner.masks)
    save_structured(small, tmp_path / "s")
    loaded = load_structured(tmp_path / "s")
    assert type(loaded) is type(small)
    x = torch.randint(0, 100, (2, 11))
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=x).logits, small(input_ids=x).logits)
    for (n1, p1), (n2, p2) in zip(small.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
    with pytest.raises(FileExistsError, match="not empty"):
        save_structured(small, tmp_path / "s")


def test_plain_from_pretrained_refuses_a_shrunken_checkpoint(tmp_path, capsys):
    model = tiny_bert()
    small = shrink(model, prune(model, "neurons").masks)
    save_structured(small, tmp_path / "s")
    with pytest.raises(RuntimeError, match="mismatched"):
        transformers.BertForSequenceClassification.from_pretrained(str(tmp_path / "s"))


def test_unsupported_model_errors_clearly():
    with pytest.raises(ValueError, match=r"Sequential has no layer in a supported layout"):
        shrink(nn.Sequential(nn.Linear(4, 4)))
