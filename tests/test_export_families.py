"""Every model family the CLI trains, exported from a saved run folder in every format.

The run folder matters: ``save_pretrained`` may write a model's tensors under older names than its
modules carry (transformers 5 saves a ViT's ``vit.layers.0.attention.q_proj`` as
``vit.encoder.layer.0.attention.attention.query``), so an export that reads the folder must rename
them as ``from_pretrained`` does. Exporting the model object in memory would not show it.
"""

from __future__ import annotations

import pytest
import torch
import transformers

import sevenprune as sp
from sevenprune.export import load_exported
from sevenprune.export.run import export_run


def _randomize_biases(model):
    with torch.no_grad():  # nonzero biases, so that a bias lost on the way shows in the outputs
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
    return model.eval()


def _bert_config(**extra):
    return transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                   intermediate_size=64, vocab_size=100, **extra)


def bert_classifier():
    return transformers.BertForSequenceClassification(_bert_config(num_labels=3))


def bert_question_answering():  # the squad task
    return transformers.BertForQuestionAnswering(_bert_config())


def distilbert_classifier():
    cfg = transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=64, vocab_size=100)
    return transformers.DistilBertForSequenceClassification(cfg)


def vit_classifier():  # --model vit-scratch, smaller
    cfg = transformers.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64)
    cfg.num_labels = 3
    return transformers.ViTForImageClassification(cfg)


def gpt2_lm():  # the causal LMs to come: dense and compressed exports already hold
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(n_embd=32, n_layer=2, n_head=4, vocab_size=100,
                                                                n_positions=32))


def llama_lm():
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=100))


FAMILIES = {"bert": bert_classifier, "bert-qa": bert_question_answering, "distilbert": distilbert_classifier,
            "vit": vit_classifier}
CAUSAL_LMS = {"gpt2": gpt2_lm, "llama": llama_lm}


def _inputs(name):
    gen = torch.Generator().manual_seed(1)
    if name == "vit":
        return {"pixel_values": torch.randn(2, 3, 16, 16, generator=gen)}
    ids = torch.randint(0, 100, (2, 9), generator=gen)
    if name in CAUSAL_LMS:
        return {"input_ids": ids}
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}


def _outputs(model, inputs):
    if "token_type_ids" in inputs and "token_type_ids" not in model.forward.__code__.co_varnames:
        inputs = {k: v for k, v in inputs.items() if k != "token_type_ids"}  # DistilBERT takes none
    with torch.no_grad():
        out = model(**inputs)
    return torch.cat([out.start_logits, out.end_logits], 1) if hasattr(out, "start_logits") else out.logits


def _make_run(tmp_path, name, pattern):
    """A run folder as ``sevenprune run`` leaves it: model/ (save_pretrained) and pruner/ (save_state)."""
    make = {**FAMILIES, **CAUSAL_LMS}[name]
    torch.manual_seed(0)
    model = _randomize_biases(make())
    pruner = sp.Pruner(model, "magnitude", 0.5, prune_steps=1, pattern=pattern)
    pruner.step()
    run = tmp_path / "run"
    model.save_pretrained(str(run / "model"))
    sp.save_state(sp.Pruner.from_masks(make(), pruner.masks, method="magnitude", sparsity=0.5), run / "pruner")
    return run, model


@pytest.mark.parametrize("name", [*FAMILIES, *CAUSAL_LMS])
def test_every_family_exports_from_its_run_folder(tmp_path, name):
    inputs = _inputs(name)
    run, model = _make_run(tmp_path, name, "unstructured")
    want = _outputs(model, inputs)
    for fmt in ("dense", "compressed"):
        report = export_run(run, fmt, tmp_path / fmt, verbose=False)
        assert report.sparsity == pytest.approx(0.5, abs=1e-3)
        torch.testing.assert_close(_outputs(load_exported(tmp_path / fmt), inputs), want, rtol=0, atol=1e-6)
    # the dense export is also what plain transformers loads
    plain = type(model).from_pretrained(str(tmp_path / "dense")).eval()
    torch.testing.assert_close(_outputs(plain, inputs), want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_exports_structured_from_its_run_folder(tmp_path, name):
    inputs = _inputs(name)
    run, model = _make_run(tmp_path, name, "heads+neurons")
    report = export_run(run, "structured", tmp_path / "s", verbose=False)
    assert report.params < report.dense_params
    torch.testing.assert_close(_outputs(load_exported(tmp_path / "s"), inputs), _outputs(model, inputs),
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_every_family_exports_to_onnx_from_its_run_folder(tmp_path, name):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from sevenprune.export.onnx import onnx_predict, onnx_session

    inputs = _inputs(name)
    run, model = _make_run(tmp_path, name, "heads+neurons")
    export_run(run, "onnx", tmp_path / "o", structured=True, verbose=False)
    session = onnx_session(tmp_path / "o")
    got = onnx_predict(session, {k: v for k, v in inputs.items() if k in {i.name for i in session.get_inputs()}})
    want = _outputs(model, inputs)
    got_all = torch.cat([torch.as_tensor(v) for v in got.values()], 1) if name == "bert-qa" \
        else torch.as_tensor(next(iter(got.values())))
    assert got_all.shape == want.shape
    torch.testing.assert_close(got_all, want, rtol=0, atol=1e-4)
