"""PruningCallback inside a real Hugging Face Trainer on a tiny random BERT (CPU, a few steps)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

transformers = pytest.importorskip("transformers")

import sevenprune as sp  # noqa: E402
from sevenprune.integrations.hf import PRUNER_DIR, PruningCallback  # noqa: E402

VOCAB, SEQ = 64, 8




def tiny_bert(seed: int = 0) -> Any:
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=32, num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


class Rows(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Random token sequences; the label is whether token 1 occurs (learnable, deterministic)."""

    def __init__(self, n: int = 64, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(2, VOCAB, (n, SEQ), generator=g)
        self.ids[: n // 2, 3] = 1
        self.labels = (self.ids == 1).any(dim=1).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(SEQ, dtype=torch.long),
                "labels": self.labels[i]}


def make_args(out: Path, **overrides: Any) -> Any:
    kwargs: dict[str, Any] = dict(
        output_dir=str(out), max_steps=6, per_device_train_batch_size=4, gradient_accumulation_steps=2,
        learning_rate=1e-3, max_grad_norm=1.0, logging_steps=1, save_strategy="no", report_to=[],
        use_cpu=True, disable_tqdm=True, seed=7, dataloader_num_workers=0,
    )
    kwargs.update(overrides)
    return transformers.TrainingArguments(**kwargs)


class Recorder(transformers.TrainerCallback):
    """Records (event, global_step, pruner step) after the PruningCallback has handled each event."""

    def __init__(self, pruning: PruningCallback) -> None:
        self.pruning = pruning
        self.events: list[tuple[str, int, int]] = []

    def _record(self, name: str, state: Any) -> None:
        pruner = self.pruning.pruner
        self.events.append((name, state.global_step, -1 if pruner is None else pruner.step_count))

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("on_"):
            return lambda args, state, control, **kw: self._record(name, state)
        return super().__getattribute__(name)


def scheduled_fraction(step: int, sparsity: float, start: int, steps: int, numel: int) -> float:
    # cubic schedule written out by hand: s * (1 - (1 - (t - t_i)/K)^3), pruning round(s_t * N) entries
    t = min(max(step - start, 0), steps)
    return round(sparsity * (1 - (1 - t / steps) ** 3) * numel) / numel


def test_trainer_prunes_per_optimizer_update_in_event_order(tmp_path: Path) -> None:
    model = tiny_bert()
    callback = PruningCallback(method="seven", sparsity=0.5, start_step=1, prune_steps=3)
    trainer = transformers.Trainer(model=model, args=make_args(tmp_path), train_dataset=Rows(),
                                   callbacks=[callback])
    recorder = Recorder(callback)
    trainer.add_callback(recorder)
    assert callback.pruner is not None and callback.pruner.model is model  # built at on_init_end
    trainer.train()
    pruner = callback.pruner

    # attached to the torch optimizer inside the Trainer's AcceleratedOptimizer (clears its state)
    assert pruner.optimizer is trainer.optimizer.optimizer
    # 6 optimizer updates of 2 micro-batches each: the schedule counted updates, not micro-batches
    assert pruner.step_count == 6 and pruner.observed_steps == 3
    names = [e[0] for e in recorder.events]
    assert names.count("on_optimizer_step") == 6 and names.count("on_substep_end") == 6
    # within an update: pre-optimizer step, then optimizer step (pruner steps here), then step end
    first = names.index("on_pre_optimizer_step")
    assert names[first:first + 4] == ["on_pre_optimizer_step", "on_optimizer_step", "on_step_end", "on_log"]
    for name, global_step, pruner_step in recorder.events:
        if name == "on_optimizer_step":  # pruner.step() ran before zero_grad, global_step not yet bumped
            assert pruner_step == global_step + 1
        if name == "on_step_end":
            assert pruner_step == global_step

    # sparsity reached exactly, pruned weights are exactly zero, the head is not pruned
    assert pruner.sparsity() == pytest.approx(round(0.5 * pruner.numel) / pruner.numel)
    for name, p in pruner.params.items():
        assert torch.all(p[~pruner.masks[name]] == 0)
    assert "classifier.weight" not in pruner.params

    # the logs carry both sparsities, following the schedule step by step
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in logged] == [1, 2, 3, 4, 5, 6]
    for h in logged:
        expected = scheduled_fraction(h["step"], 0.5, 1, 3, pruner.numel)
        assert h["sparsity"] == pytest.approx(expected)
        total = sum(p.numel() for p in model.parameters())
        assert h["model_sparsity"] == pytest.approx(expected * pruner.numel / total)
    assert logged[0]["sparsity"] == 0.0 and logged[-1]["sparsity"] > 0.49


# moments="optimizer": the score reads the Trainer's AdamW moments, which its checkpoint restores
@pytest.mark.parametrize("options", [{}, {"moments": "optimizer", "state_dtype": "bfloat16"}])
def test_checkpoint_resume_gives_the_masks_of_an_uninterrupted_run(tmp_path: Path, options: dict[str, Any]) -> None:
    def run(out: Path, resume: str | bool | None, **callback_args: Any) -> PruningCallback:
        callback = PruningCallback(method="seven", sparsity=0.6, start_step=1, prune_steps=4, **options,
                                   **callback_args)
        args = make_args(out, save_strategy="steps", save_steps=3)
        trainer = transformers.Trainer(model=tiny_bert(), args=args, train_dataset=Rows(),
                                       callbacks=[callback])
        trainer.train(resume_from_checkpoint=resume)
        return callback

    full = run(tmp_path / "full", None)
    ckpt = tmp_path / "full" / "checkpoint-3"
    assert sorted(p.name for p in (ckpt / PRUNER_DIR).iterdir()) == ["pruner.json", "pruner.safetensors"]
    mid = sp.read_state(ckpt / PRUNER_DIR)
    assert mid["step"] == 3 and 0 < sum(int((~m).sum()) for m in mid["masks"].values())

    # a fresh model, a fresh callback, resumed from step 3 (in the middle of the pruning window): from a
    # checkpoint outside output_dir, named explicitly; and from output_dir's own checkpoint-3 (=True)
    shutil.rmtree(tmp_path / "full" / "checkpoint-6")
    for resumed in (run(tmp_path / "resumed", str(ckpt), resume_from=ckpt), run(tmp_path / "full", True)):
        assert full.pruner is not None and resumed.pruner is not None
        assert resumed.pruner.step_count == 6
        for name, mask in full.pruner.masks.items():
            assert torch.equal(mask, resumed.pruner.masks[name]), name
        for name, p in full.pruner.params.items():
            assert torch.equal(p, resumed.pruner.params[name]), name
    # the end state equals the checkpoint the uninterrupted run wrote at step 6 (written again by the resumed run)
    final = sp.read_state(tmp_path / "full" / "checkpoint-6" / PRUNER_DIR)
    assert all(torch.equal(final["masks"][n], m) for n, m in full.pruner.masks.items())


def test_resume_from_a_checkpoint_elsewhere_needs_it_named(tmp_path: Path) -> None:
    def trainer(out: Path, callback: PruningCallback, **overrides: Any) -> Any:
        return transformers.Trainer(model=tiny_bert(), args=make_args(out, **overrides), train_dataset=Rows(),
                                    callbacks=[callback])

    first = PruningCallback(method="magnitude", sparsity=0.5, start_step=0, prune_steps=4)
    trainer(tmp_path / "a", first, save_strategy="steps", save_steps=2, max_steps=2).train()
    ckpt = str(tmp_path / "a" / "checkpoint-2")
    # the Trainer does not tell callbacks where it resumes from (and no stack frame is read for it)
    with pytest.raises(FileNotFoundError, match=r"resume_from=.*resume_from_checkpoint="):
        trainer(tmp_path / "b", PruningCallback(method="magnitude", sparsity=0.5, start_step=0, prune_steps=4),
                max_steps=4).train(resume_from_checkpoint=ckpt)
    # named in TrainingArguments (a documented field), it is found
    named = PruningCallback(method="magnitude", sparsity=0.5, start_step=0, prune_steps=4)
    trainer(tmp_path / "c", named, max_steps=4, resume_from_checkpoint=ckpt).train(resume_from_checkpoint=ckpt)
    assert named.pruner is not None and named.pruner.step_count == 4 and named.pruner.sparsity() == 0.5


def test_resume_with_state_of_another_run_is_refused(tmp_path: Path) -> None:
    args = make_args(tmp_path / "a", save_strategy="steps", save_steps=3, max_steps=3)
    callback = PruningCallback(method="magnitude", sparsity=0.5, start_step=0, prune_steps=2)
    transformers.Trainer(model=tiny_bert(), args=args, train_dataset=Rows(), callbacks=[callback]).train()
    other = sp.Pruner(tiny_bert(seed=1), "magnitude", 0.5, prune_steps=1)
    other.step()  # prunes other entries than the checkpoint's model has at zero
    other.step_count = 3
    sp.save_state(other, tmp_path / "other")
    stray = PruningCallback(method="magnitude", sparsity=0.5, start_step=0, prune_steps=2,
                            resume_from=tmp_path / "other")
    trainer = transformers.Trainer(model=tiny_bert(), args=make_args(tmp_path / "b", max_steps=4),
                                   train_dataset=Rows(), callbacks=[stray])
    with pytest.raises(ValueError, match="does not belong to the checkpoint being resumed"):
        trainer.train(resume_from_checkpoint=str(tmp_path / "a" / "checkpoint-3"))


def test_saved_model_loads_into_plain_transformers_with_zeros(tmp_path: Path) -> None:
    callback = PruningCallback(method="magnitude", sparsity=0.7, start_step=0, prune_steps=2)
    trainer = transformers.Trainer(model=tiny_bert(), args=make_args(tmp_path, max_steps=3, bf16=True),
                                   train_dataset=Rows(), callbacks=[callback])
    trainer.train()
    trainer.save_model(str(tmp_path / "final"))
    plain = transformers.BertForSequenceClassification.from_pretrained(str(tmp_path / "final"))
    params = dict(plain.named_parameters())
    assert callback.pruner is not None
    zeros = sum(int((params[n] == 0).sum()) for n in callback.pruner.params)
    pruned = round(0.7 * callback.pruner.numel)
    assert zeros >= pruned  # every pruned entry is an exact zero in the file
    for name, mask in callback.pruner.masks.items():
        assert torch.all(params[name][~mask] == 0), name


def test_callback_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown method 'sevn'"):
        PruningCallback(method="sevn")
    with pytest.raises(ValueError, match="prune_at_init"):  # a method that prunes before fine-tuning
        PruningCallback(method="snip")
    with pytest.raises(TypeError, match="either a Pruner or the Pruner's arguments"):
        PruningCallback(sp.Pruner(tiny_bert(), "magnitude", 0.5, prune_steps=1), sparsity=0.5)
    with pytest.raises(TypeError, match="takes no 'optimizer'"):
        PruningCallback(method="seven", optimizer=None)
    foreign = PruningCallback(sp.Pruner(tiny_bert(), "magnitude", 0.5, prune_steps=1))
    with pytest.raises(ValueError, match="built on another model"):
        transformers.Trainer(model=tiny_bert(), args=make_args(Path("unused")), train_dataset=Rows(),
                             callbacks=[foreign])


def test_add_to_puts_the_callback_first(tmp_path: Path) -> None:
    trainer = transformers.Trainer(model=tiny_bert(), args=make_args(tmp_path), train_dataset=Rows())
    callback = PruningCallback.add_to(trainer, method="magnitude", sparsity=0.5, start_step=0, prune_steps=1)
    assert trainer.callback_handler.callbacks[0] is callback
    assert callback.pruner is not None and math.isclose(callback.pruner.sparsity(), 0.0)


class Overflow(transformers.TrainerCallback):
    """Makes one update look like an fp16 overflow: an inf gradient when the pruner looks at it
    (placed before the PruningCallback, after optimizer.step(), so the weights stay finite)."""

    def __init__(self, at_update: int) -> None:
        self.at_update = at_update

    def on_optimizer_step(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        if state.global_step + 1 == self.at_update:
            model.bert.encoder.layer[0].attention.self.query.weight.grad[0, 0] = math.inf


def test_an_overflowed_update_is_counted_but_not_observed(tmp_path: Path) -> None:
    callback = PruningCallback(method="seven", sparsity=0.5, start_step=0, prune_steps=4)
    trainer = transformers.Trainer(model=tiny_bert(), args=make_args(tmp_path, max_steps=5),
                                   train_dataset=Rows(), callbacks=[Overflow(at_update=2), callback])
    trainer.train()
    pruner = callback.pruner
    assert pruner is not None
    assert (pruner.step_count, pruner.observed_steps, pruner.skipped_steps) == (5, 3, 1)
    assert pruner.sparsity() == pytest.approx(round(0.5 * pruner.numel) / pruner.numel)
