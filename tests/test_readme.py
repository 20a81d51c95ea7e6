"""README.md: its generated results equal what make_results writes, and its code runs as written.

The results blocks are compared with ``make_results.readme_blocks()`` on the committed runs (it reads
result.json files and the committed paired records, no bootstrap: fast); the full rebuild, bootstrap
included, is ``python experiments/results/make_results.py`` followed by ``git diff``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import make_results
import numpy as np
import pytest
import results_summary
import torch
from results_common import read_block

import sevenprune as sp
from sevenprune.tasks.testing import make_tiny_bert

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _code_block(heading: str, language: str) -> str:
    """The first ``language`` code block after the Markdown heading ``heading``."""
    section = README.split(f"\n## {heading}\n", 1)[1]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)


@pytest.mark.parametrize("name", sorted(make_results.readme_blocks()))
def test_readme_results_are_the_generated_blocks(name):
    assert read_block(README, name) == make_results.readme_blocks()[name].rstrip()


def test_results_page_opens_with_the_generated_summary():
    page = (ROOT / "docs" / "results.md").read_text(encoding="utf-8")
    assert read_block(page, "summary") == results_summary.page_summary().rstrip()
    # the summary comes first: the page's first section, right after the title and a short introduction
    sections = re.findall(r"^## .*", page, re.M)
    assert sections[0] == "## Summary"
    assert page.index("## Summary") < page.index("<!-- BEGIN summary -->") < page.index(sections[1])


def test_summary_words_each_comparison_from_its_interval():
    records = [{"ours": "seven", "other": o, "sparsity": 0.8, "seeds": 3, "mean": m, "low": lo, "high": hi,
                "verdict": v} for o, m, lo, hi, v in [("platon", -0.001, -0.005, 0.002, "not separated"),
                                                        ("magnitude", 0.044, 0.033, 0.056, "ahead"),
                                                        ("dense", -0.017, -0.028, -0.006, "behind")]]
    text = results_summary.grouped_verdicts(records, ["magnitude", "platon", "dense"])
    assert text == ("not separated from PLATON (-0.1 [-0.5, +0.2], 3 seeds); ahead of gradual magnitude "
                    "(+4.4 [+3.3, +5.6], 3 seeds); behind dense (-1.7 [-2.8, -0.6], 3 seeds)")
    # SEVEN ahead of every weak baseline at every sparsity is said once; one exception and it is not said
    weak = [{**records[1], "other": "random", "sparsity": s} for s in (0.5, 0.9)]
    assert results_summary._always_ahead(weak, "seven", ["random"]).startswith("SEVEN_dyn is ahead of random")
    assert results_summary._always_ahead(weak + [{**records[0], "other": "random"}], "seven", ["random"]) == ""


def test_readme_training_loop_runs_as_written(tmp_path, monkeypatch):
    """The loop example on a tiny BERT: the model name and the window are the only substitutions."""
    code = _code_block("In your own training loop", "python")
    assert '"bert-base-uncased"' in code and "start_step=100, prune_steps=400" in code
    bert = make_tiny_bert(tmp_path / "bert")
    code = code.replace('"bert-base-uncased"', repr(str(bert)))
    code = code.replace("start_step=100, prune_steps=400", "start_step=1, prune_steps=2")
    torch.manual_seed(0)
    loader = [{"input_ids": torch.randint(5, 40, (4, 12)), "attention_mask": torch.ones(4, 12, dtype=torch.long),
               "labels": torch.randint(0, 2, (4,))} for _ in range(4)]
    monkeypatch.chdir(tmp_path)
    namespace = {"loader": loader}
    exec(compile(code, "README.md", "exec"), namespace)
    pruner, model = namespace["pruner"], namespace["model"]
    assert pruner.sparsity() == pytest.approx(0.6, abs=1e-3)
    zeros = {n: p.detach().clone() == 0 for n, p in model.named_parameters()}
    restored = sp.load_state(tmp_path / "ckpt" / "pruner", model)
    assert restored.sparsity() == pytest.approx(0.6, abs=1e-3)
    assert all(torch.equal(p.detach() == 0, zeros[n]) for n, p in model.named_parameters())


def test_readme_decoder_lm_example_runs_as_written(tmp_path, monkeypatch):
    """The one-shot example on a tiny Llama with a character tokenizer: the model name is the only
    substitution. SparseGPT at 2:4 leaves exactly 2 of every 4 consecutive weights of a row, and they stay
    zero through the fine-tuning loop (the pruner's optimizer hook)."""
    pytest.importorskip("transformers")
    from sevenprune.tasks.testing import make_tiny_causal_lm

    code = _code_block("Decoder LMs: one shot, then fine-tune", "python")
    assert code.count('"HuggingFaceTB/SmolLM2-135M"') == 2
    path = make_tiny_causal_lm(tmp_path / "lm")
    code = code.replace('"HuggingFaceTB/SmolLM2-135M"', repr(str(path)))
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list("abcdefgh ,.\n"), size=128 * 6))
    loader = [torch.as_tensor(rng.integers(5, 20, (2, 32))) for _ in range(3)]
    monkeypatch.chdir(tmp_path)
    namespace = {"text": text, "loader": loader}
    exec(compile(code, "README.md", "exec"), namespace)
    pruner, model = namespace["pruner"], namespace["model"]
    assert pruner.report()["method"] == "sparsegpt" and len(pruner.masks) == 14  # 7 matrices x 2 layers
    weights = dict(model.named_parameters())
    for name in pruner.masks:
        kept = (weights[name].detach() != 0).reshape(weights[name].shape[0], -1, 4).sum(-1)
        assert torch.all(kept <= 2), name  # trained weights never come back where the mask is 0
        assert torch.equal(pruner.masks[name].reshape(kept.shape[0], -1, 4).sum(-1).float(),
                           torch.full(kept.shape, 2.0)), name
    restored = sp.load_state(tmp_path / "ckpt" / "pruner", model)
    assert restored.sparsity() == pytest.approx(0.5)


def test_readme_trainer_callback_takes_the_arguments_shown():
    pytest.importorskip("transformers")
    from sevenprune.integrations.hf import PruningCallback

    code = _code_block("Hugging Face Trainer", "python")
    args = re.search(r"PruningCallback\((.*?)\)\]", code).group(1)
    callback = eval(f"PruningCallback({args})", {"PruningCallback": PruningCallback})
    assert isinstance(callback, PruningCallback)


CLI = [line.split("#")[0].strip() for line in _code_block("Command line", "bash").splitlines() if line.strip()]


@pytest.mark.parametrize("line", CLI)
def test_readme_command_lines_parse(line):
    from sevenprune.cli import build_parser
    from sevenprune.tasks.loading import TASKS

    words = shlex.split(line)
    assert words[0] == "sevenprune"
    task = words[words.index("--task") + 1] if "--task" in words else None
    if task is not None and task not in TASKS:
        pytest.skip(f"task {task!r} is not registered in this checkout")
    build_parser().parse_args(words[1:])  # argparse exits (SystemExit) on an unknown flag or choice
