"""An interrupted run resumes from its checkpoint (``--checkpoint-every``) exactly: the finished run's masks,
weights, per-example predictions and logged metrics are bit-identical to those of a run that never stopped
(same machine, same process: no cross-machine rounding enters), with a pruning window, a one-shot method,
dense, and dropout. The optimizer's state goes through safetensors + JSON without pickle."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sevenprune.cli import EXIT_INTERRUPTED, main
from sevenprune.tasks.checkpoint import optimizer_from_files, optimizer_to_files
from sevenprune.tasks.run import resolve_config, run

run_module = importlib.import_module("sevenprune.tasks.run")  # the module (sevenprune.tasks.run is also a function)
from sevenprune.tasks.testing import make_tiny_causal_lm

from _fake_mr import fake_mr

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def lm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("resume")
    data = root / "data"
    data.mkdir()
    words = ["to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis", "nobler", "in", "mind"]
    rng = np.random.default_rng(0)
    for name, n in (("train.txt", 500), ("validation.txt", 90)):
        (data / name).write_text(" ".join(rng.choice(words, n)), encoding="utf-8")
    return {"llama": make_tiny_causal_lm(root / "llama", "llama"), "data": data}


def _lm_args(lm: dict[str, Path], out: Path, *extra: str) -> list[str]:
    return ["run", "--task", "causal-lm", "--model", str(lm["llama"]), "--data-dir", str(lm["data"]),
            "--max-length", "32", "--batch-size", "4", "--eval-batch-size", "3", "--lr", "1e-3", "--max-steps", "6",
            "--no-progress", "--out", str(out), *extra]


class _StopAt:
    """Replaces run.save_checkpoint: writes the checkpoint, then stops the run as Ctrl-C would, at the
    given steps."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *steps: int) -> None:
        self.steps, self.saved = set(steps), []
        real = run_module.save_checkpoint

        def save(folder: Path, **kw: Any) -> Path:
            path = real(folder, **kw)
            self.saved.append(kw["loop"].step)
            if kw["loop"].step in self.steps:
                self.steps.discard(kw["loop"].step)
                raise KeyboardInterrupt
            return path

        monkeypatch.setattr(run_module, "save_checkpoint", save)


def _outputs(out: Path) -> dict[str, Any]:
    """What a run leaves that must not depend on an interruption (timings excluded)."""
    found: dict[str, Any] = {"metrics.jsonl": (out / "metrics.jsonl").read_text()}
    found.update({f"pred/{k}": v for k, v in np.load(out / "predictions.npz").items()})
    found.update({f"model/{k}": v for k, v in load_file(str(out / "model" / "model.safetensors")).items()})
    if (out / "pruner").exists():
        found.update({f"pruner/{k}": v for k, v in load_file(str(out / "pruner" / "pruner.safetensors")).items()})
    result = json.loads((out / "result.json").read_text())
    found["result"] = {k: result[k] for k in ("metrics", "sparsity", "train_loss", "zero_fraction", "layers")}
    return found


def _assert_identical(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        if isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        elif isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("method", [
    ["--method", "seven_dyn", "--sparsity", "0.5", "--start-step", "1", "--prune-steps", "4"],  # window spans both stops
    ["--method", "seven", "--pattern", "2:4", "--start-step", "1", "--prune-steps", "4", "--mask-interval", "2"],
    ["--method", "sparsegpt", "--pattern", "2:4", "--calibration-samples", "4"],  # one shot, masks fixed after
    ["--method", "dense"],
])
def test_a_run_stopped_twice_finishes_as_if_it_never_stopped(method: list[str], lm: dict[str, Path], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    whole = tmp_path / "whole"
    assert main(_lm_args(lm, whole, *method)) == 0  # no checkpoints at all: the reference
    out = tmp_path / "stopped"
    args = _lm_args(lm, out, *method, "--checkpoint-every", "2")
    stop = _StopAt(monkeypatch, 2, 4)
    assert main(args) == EXIT_INTERRUPTED  # stopped after the checkpoint of step 2, written into out itself
    assert (out / "checkpoint" / "state.json").exists() and not (out / "result.json").exists()
    assert main(args) == EXIT_INTERRUPTED  # resumed from 2, stopped at 4, in the hidden folder beside out
    beside = list(tmp_path.glob(".stopped.new-*"))
    assert len(beside) == 1 and (beside[0] / "checkpoint" / "state.json").exists()
    assert main(args) == 0  # resumes from the later checkpoint (step 4)
    assert stop.saved == [2, 4]  # the last attempt went on from 4 to the end (no checkpoint after the last step)
    result = json.loads((out / "result.json").read_text())
    assert result["resumed_from_step"] == 4
    _assert_identical(_outputs(out), _outputs(whole))
    # the checkpoints are gone, with the hidden folder; the run folder holds a finished run's files only
    assert not (out / "checkpoint").exists() and not list(tmp_path.glob(".stopped.*"))


def test_dropout_schedule_and_evaluations_resume_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A BERT with dropout (torch's generator restored), an evaluation every 3 steps, SEVEN's moments, a
    learning rate that warms up and decays (the scheduler restored)."""
    with fake_mr(tmp_path, sentences=90, test_size=20, seed=3) as (bert, cache):
        opts = {"task": "mr", "model": str(bert), "cache_dir": str(cache), "max_steps": 8, "batch_size": 8,
                "lr": 1e-3, "max_length": 32, "progress": False, "method": "seven", "sparsity": 0.5,
                "start_step": 2, "prune_steps": 5, "eval_every": 3, "lr_schedule": "linear", "warmup_steps": 2}
        run(resolve_config(opts), tmp_path / "whole", log=lambda *a: None)
        cfg = resolve_config({**opts, "checkpoint_every": 4})
        _StopAt(monkeypatch, 4)
        with pytest.raises(KeyboardInterrupt):
            run(cfg, tmp_path / "stopped", log=lambda *a: None)
        said: list[str] = []
        run(cfg, tmp_path / "stopped", log=lambda *a: said.append(" ".join(map(str, a))))
    assert any("resuming from the checkpoint at step 4 of 8" in line for line in said)
    _assert_identical(_outputs(tmp_path / "stopped"), _outputs(tmp_path / "whole"))
    steps = [json.loads(x)["step"] for x in (tmp_path / "stopped" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3, 6, 8]  # the evaluation of step 3, before the stop, kept once


def test_a_checkpoint_of_another_configuration_is_not_resumed(lm: dict[str, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    _StopAt(monkeypatch, 2)
    assert main(_lm_args(lm, out, "--method", "dense", "--checkpoint-every", "2")) == EXIT_INTERRUPTED
    # another learning rate: the checkpoint is not this run's; the new run starts afresh and replaces the folder
    args = _lm_args(lm, out, "--method", "dense", "--checkpoint-every", "2")
    args[args.index("--lr") + 1] = "2e-3"
    assert main(args) == 0
    result = json.loads((out / "result.json").read_text())
    assert "resumed_from_step" not in result and not (out / "checkpoint").exists()
    # --checkpoint-every itself does not change the run: a checkpoint from another cadence is resumed
    other = tmp_path / "cadence"
    _StopAt(monkeypatch, 2)
    assert main(_lm_args(lm, other, "--method", "dense", "--checkpoint-every", "2")) == EXIT_INTERRUPTED
    assert main(_lm_args(lm, other, "--method", "dense", "--checkpoint-every", "5")) == 0
    assert json.loads((other / "result.json").read_text())["resumed_from_step"] == 2


def test_checkpoint_options_are_checked(lm: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_lm_args(lm, tmp_path / "a", "--method", "dense", "--checkpoint-every", "-1")) == 2
    assert "--checkpoint-every must be >= 0, got -1" in capsys.readouterr().err
    assert main(_lm_args(lm, tmp_path / "b", "--method", "seven_dyn", "--sparsity", "0.5", "--checkpoint-every", "2",
                         "--diagnostics")) == 2
    assert "--checkpoint-every and --diagnostics cannot be combined" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.parametrize("make", [
    lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9),
    lambda ps: torch.optim.Adafactor(ps, lr=1e-2),
])
def test_optimizer_state_round_trips_through_safetensors_and_json(make: Any, tmp_path: Path) -> None:
    """Three steps, save, load into a fresh optimizer over a copy of the model: the next steps agree exactly
    with the original optimizer's (a state lost or cast on the way changes them)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    opt = make(model.parameters())
    x = torch.randn(16, 6)

    def step(m: torch.nn.Module, o: torch.optim.Optimizer) -> None:
        o.zero_grad()
        m(x).pow(2).mean().backward()
        o.step()

    for _ in range(3):
        step(model, opt)
    optimizer_to_files(opt, tmp_path)
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.pkl"))
    twin = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    twin.load_state_dict(model.state_dict())
    twin_opt = make(twin.parameters())
    twin_opt.load_state_dict(optimizer_from_files(tmp_path))
    for _ in range(2):
        step(model, opt)
        step(twin, twin_opt)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)


def test_a_damaged_checkpoint_is_a_clear_error_naming_it(lm: dict[str, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = _lm_args(lm, out, "--method", "dense", "--checkpoint-every", "2")
    _StopAt(monkeypatch, 2)
    assert main(args) == EXIT_INTERRUPTED
    (out / "checkpoint" / "model.safetensors").write_bytes(b"not safetensors")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {out / 'checkpoint'} cannot be resumed" in err and "delete that folder" in err
    assert (out / "checkpoint" / "state.json").exists()  # nothing of the user's was removed
