"""Dense, compressed and structured exports: round-trips, sizes, run directories, the command line."""

from __future__ import annotations

import json
import math
import os
import struct

import pytest
import torch
import transformers

import sevenprune as sp
from sevenprune import cli
from sevenprune.export import (
    export_compressed,
    export_dense,
    export_structured,
    load_compressed,
    load_exported,
    pack_mask,
    unpack_mask,
)
from sevenprune.export.run import export_run, find_run_layout


def tiny_bert(seed: int = 0, cls=transformers.BertForSequenceClassification):
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, vocab_size=100, num_labels=2)
    model = cls(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.02)
    return model


def pruned(sparsity: float = 0.9, pattern: str = "unstructured", cls=transformers.BertForSequenceClassification):
    model = tiny_bert(cls=cls)
    pruner = sp.Pruner(model, "magnitude", sparsity, prune_steps=1, pattern=pattern)
    pruner.step()
    return model, pruner


X = torch.randint(0, 100, (3, 10), generator=torch.Generator().manual_seed(1))


def logits(model):
    with torch.no_grad():
        return model(input_ids=X).logits


# -- bit packing ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 5), (8,), (1,), (2, 3, 7)])
def test_pack_unpack_round_trip(shape):
    mask = torch.rand(shape, generator=torch.Generator().manual_seed(0)) > 0.5
    bits = pack_mask(mask)
    assert bits.dtype == torch.uint8 and bits.numel() == math.ceil(mask.numel() / 8)
    assert torch.equal(unpack_mask(bits, shape), mask)


def test_pack_rejects_non_bool():
    with pytest.raises(TypeError, match="bool"):
        pack_mask(torch.ones(3))


# -- dense ---------------------------------------------------------------------------------------------------------
def test_dense_round_trip_with_plain_transformers(tmp_path):
    model, pruner = pruned()
    report = export_dense(model, pruner, tmp_path / "d", verbose=False)
    loaded = transformers.AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "d")).eval()
    assert torch.equal(logits(loaded), logits(model))
    params = dict(loaded.named_parameters())
    for name, mask in pruner.masks.items():
        assert torch.equal(params[name] != 0, mask)  # the zeros are in place
    assert report.files == {p: os.path.getsize(tmp_path / "d" / p) for p in os.listdir(tmp_path / "d")}
    assert report.total_bytes == sum(report.files.values())
    assert report.sparsity == pytest.approx(0.9, abs=1e-4)


# -- compressed ----------------------------------------------------------------------------------------------------
def test_compressed_round_trip_is_exact(tmp_path):
    model, pruner = pruned()
    export_compressed(model, pruner.masks, tmp_path / "c", verbose=False)
    loaded = load_compressed(tmp_path / "c")
    assert type(loaded) is type(model)
    assert torch.equal(logits(loaded), logits(model))
    for (n1, t1), (n2, t2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and t1.dtype == t2.dtype and torch.equal(t1, t2)


def test_compressed_sizes_at_90_percent(tmp_path, capsys):
    model, pruner = pruned(0.9)
    report = export_compressed(model, pruner.masks, tmp_path / "c")
    printed = capsys.readouterr().out
    assert "compressed.safetensors" in printed and "of their dense fp32 size" in printed
    params = dict(model.named_parameters())
    # by hand: ceil(numel/8) bytes of bits + 4 bytes per kept value, for each pruned weight
    want = sum(math.ceil(m.numel() / 8) + 4 * int(m.sum()) for m in pruner.masks.values())
    assert report.pruned_bytes == want
    assert report.pruned_dense_fp32_bytes == sum(4 * params[n].numel() for n in pruner.masks)
    assert report.pruned_ratio <= 0.15
    assert report.pruned_ratio == pytest.approx(1 / 32 + 0.1, abs=0.01)
    # the file is exactly header + bitmasks/values + the other tensors
    path = tmp_path / "c" / "compressed.safetensors"
    with open(path, "rb") as fh:
        header = 8 + struct.unpack("<Q", fh.read(8))[0]
    assert os.path.getsize(path) == header + report.pruned_bytes + report.other_bytes
    assert report.extra["safetensors_header_bytes"] == header
    assert report.files["compressed.safetensors"] == os.path.getsize(path)
    assert report.total_bytes == sum(os.path.getsize(tmp_path / "c" / f) for f in os.listdir(tmp_path / "c"))
    # against the dense export of the same model the file saves at least 80% of the pruned weights'
    # size (the embeddings, unpruned, dominate this tiny model's files)
    dense = export_dense(model, pruner, tmp_path / "d", verbose=False)
    saved = dense.files["model.safetensors"] - report.files["compressed.safetensors"]
    assert saved >= 0.8 * report.pruned_dense_fp32_bytes


def test_compressed_tied_weights_and_bfloat16(tmp_path):
    model, pruner = pruned(0.8, cls=transformers.BertForMaskedLM)
    model.to(torch.bfloat16)
    manifest_dir = tmp_path / "c"
    export_compressed(model, pruner.masks, manifest_dir, verbose=False)
    manifest = json.loads((manifest_dir / "compression.json").read_text())
    assert manifest["aliases"]  # the decoder weight is the word embeddings, stored once
    loaded = load_compressed(manifest_dir)
    assert loaded.cls.predictions.decoder.weight.dtype == torch.bfloat16
    assert torch.equal(logits(loaded), logits(model))


def test_compressed_of_an_nm_model(tmp_path):
    model, pruner = pruned(0.5, pattern="2:4")
    report = export_compressed(model, pruner, tmp_path / "c", verbose=False)
    assert report.pruned_ratio == pytest.approx(1 / 32 + 0.5, abs=1e-3)
    assert torch.equal(logits(load_exported(tmp_path / "c")), logits(model))


def test_masks_default_to_the_zeros_of_the_prunable_weights(tmp_path):
    model, pruner = pruned(0.9)
    report = export_compressed(model, None, tmp_path / "c", verbose=False)
    assert report.pruned_weights == len(pruner.masks) and report.sparsity == pytest.approx(0.9, abs=1e-4)
    assert torch.equal(logits(load_compressed(tmp_path / "c")), logits(model))


# -- bad inputs ----------------------------------------------------------------------------------------------------
def test_never_overwrites(tmp_path):
    model, pruner = pruned()
    export_compressed(model, pruner.masks, tmp_path / "c", verbose=False)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(FileExistsError, match="not empty"):
        export_compressed(model, pruner.masks, tmp_path / "c", verbose=False)
    with pytest.raises(FileExistsError, match="not empty"):
        export_dense(model, None, tmp_path / "c", verbose=False)
    assert sorted(os.listdir(tmp_path)) == before  # nothing half-written left behind
    (tmp_path / "empty").mkdir()
    export_dense(model, None, tmp_path / "empty", verbose=False)  # an empty directory is fine
    export_compressed(model, pruner.masks, tmp_path / "c", overwrite=True, verbose=False)
    assert torch.equal(logits(load_compressed(tmp_path / "c")), logits(model))


def test_masks_must_match_the_model(tmp_path):
    model, pruner = pruned()
    masks = dict(pruner.masks)
    name = next(iter(masks))
    with pytest.raises(ValueError, match="nonzero entries where its mask prunes"):
        export_compressed(model, {name: torch.zeros_like(masks[name])}, tmp_path / "a", verbose=False)
    with pytest.raises(ValueError, match="must be a bool tensor of shape"):
        export_compressed(model, {name: masks[name].float()}, tmp_path / "b", verbose=False)
    with pytest.raises(ValueError, match="names no parameter"):
        export_compressed(model, {"nope.weight": masks[name]}, tmp_path / "c", verbose=False)
    with pytest.raises(TypeError, match="PreTrainedModel"):
        export_dense(torch.nn.Linear(2, 2), None, tmp_path / "d", verbose=False)
    assert not any(tmp_path.iterdir())


def test_load_compressed_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no compressed export"):
        load_compressed(tmp_path)


# -- structured ---------------------------------------------------------------------------------------------------
def test_structured_export_is_smaller_and_agrees(tmp_path):
    model, pruner = pruned(0.5, pattern="heads+neurons")
    report = export_structured(model, pruner.masks, tmp_path / "s", verbose=False)
    loaded = load_exported(tmp_path / "s")
    assert report.params == sum(p.numel() for p in loaded.parameters()) < report.dense_params
    assert loaded.bert.encoder.layer[0].attention.self.query.out_features < 32
    torch.testing.assert_close(logits(loaded), logits(model), rtol=0, atol=1e-6)
    dense = export_dense(model, None, tmp_path / "d", verbose=False)
    assert report.files["model.safetensors"] < dense.files["model.safetensors"]


# -- run directories and the command line -------------------------------------------------------------------------
def make_run(tmp_path, pattern="unstructured", sparsity=0.9):
    model, pruner = pruned(sparsity, pattern=pattern)
    run = tmp_path / "run"
    model.save_pretrained(str(run / "model"))
    (run / "model" / "vocab.txt").write_text("[PAD]\n[UNK]\n")  # stands for the tokenizer's files
    (run / "config.json").write_text("{}")  # the run's own configuration, not a model's
    # a fixed-mask pruner: structured pruners' extra masks are biases, which the model already holds
    fixed = sp.Pruner.from_masks(tiny_bert(), pruner.masks, method="magnitude", sparsity=sparsity)
    sp.save_state(fixed, run / "pruner")
    return run, model


@pytest.mark.parametrize("fmt", ["dense", "compressed"])
def test_export_run(tmp_path, fmt):
    run, model = make_run(tmp_path)
    report = export_run(run, fmt, verbose=False)
    assert report.out_dir == str(run / f"export-{fmt}")
    assert (run / f"export-{fmt}" / "vocab.txt").read_text() == "[PAD]\n[UNK]\n"
    assert report.files["vocab.txt"] == 12 and report.total_bytes == sum(report.files.values())
    assert torch.equal(logits(load_exported(report.out_dir)), logits(model))


def test_export_run_structured(tmp_path):
    run, model = make_run(tmp_path, "heads+neurons", 0.5)
    report = export_run(run, "structured", tmp_path / "out", verbose=False)
    assert report.params < report.dense_params
    torch.testing.assert_close(logits(load_exported(tmp_path / "out")), logits(model), rtol=0, atol=1e-6)


def test_find_run_layout(tmp_path):
    run, _ = make_run(tmp_path)
    assert find_run_layout(run) == (run / "model", run / "pruner")
    os.rename(run / "pruner", run / "state")  # found anywhere if it is the only one
    assert find_run_layout(run)[1] == run / "state"
    with pytest.raises(FileNotFoundError, match="no single pruned model"):
        find_run_layout(run / "state")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_run_layout(tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown export format 'zip'"):
        export_run(run, "zip")


def test_command_line(tmp_path, capsys):
    run, model = make_run(tmp_path)
    assert cli.main(["export", str(run), "--format", "compressed", "--out", str(tmp_path / "c"), "--json"]) == 0
    out = capsys.readouterr().out
    assert "of their dense fp32 size" in out and '"pruned_ratio"' in out
    assert cli.main(["export", str(run), "--format", "compressed", "--out", str(tmp_path / "c")]) == 2  # exists
    assert "exists and is not empty" in capsys.readouterr().err
    assert cli.main(["export", str(run), "--format", "dense"]) == 0
    assert torch.equal(logits(load_exported(run / "export-dense")), logits(model))
    with pytest.raises(SystemExit):
        cli.main(["export", str(run), "--format", "zip"])
    assert "invalid choice: 'zip'" in capsys.readouterr().err


def test_a_dense_run_exports_without_a_pruner_state(tmp_path):
    # a `dense` run has model/ and no pruner/: dense and ONNX exports need no masks; the others refuse
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, vocab_size=50)
    torch.manual_seed(0)
    BertForSequenceClassification(cfg).save_pretrained(tmp_path / "run" / "model")
    assert find_run_layout(tmp_path / "run", require_pruner=False) == (tmp_path / "run" / "model", None)
    report = export_run(tmp_path / "run", "dense", verbose=False)
    assert report.sparsity == 0.0 and (tmp_path / "run" / "export-dense" / "model.safetensors").exists()
    with pytest.raises(FileNotFoundError, match="no single pruner state"):
        export_run(tmp_path / "run", "compressed", verbose=False)


def test_exporters_take_one_argument_order(tmp_path):
    import inspect

    from sevenprune import export
    from sevenprune.export.onnx import export_onnx

    for writer in (export_dense, export_compressed, export_structured, export_onnx):
        assert list(inspect.signature(writer).parameters)[:3] == ["model", "masks", "out_dir"], writer.__name__
    model, pruner = pruned(0.5)
    with pytest.raises(TypeError, match=r"\(model, masks, out_dir\)"):
        export_dense(model, tmp_path / "old", pruner, verbose=False)  # the older order is refused
    assert not (tmp_path / "old").exists()
    with pytest.raises(TypeError, match="needs out_dir"):
        export_dense(model, pruner)
    assert export.export_run is export_run  # the package face holds every writer
