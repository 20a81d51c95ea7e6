"""Fine-tuning strategies (issue: robustness under fine-tuning strategies): optimizers and schedules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import sevenprune as sp
from sevenprune.tasks.run import lr_factor, make_optimizer, resolve_config


def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


@pytest.mark.parametrize("name", ["sgd", "adafactor", "adamw"])
def test_pruned_weights_stay_exactly_zero_and_their_state_is_cleared(name: str) -> None:
    model = mlp()
    opt = make_optimizer(name, model.parameters(), lr=0.05, weight_decay=0.01)
    pruner = sp.Pruner(model, "seven", 0.6, start_step=2, prune_steps=6, optimizer=opt)
    gen = torch.Generator().manual_seed(2)
    cleared = 0
    for step in range(12):
        x, y = torch.randn(8, 6, generator=gen), torch.randint(0, 3, (8,), generator=gen)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        before = {n: m.clone() for n, m in pruner.masks.items()}
        pruner.step()
        opt.zero_grad()
        for n, p in pruner.params.items():
            assert bool((p[~pruner.masks[n]] == 0).all()), (name, step, n)
            newly = before[n] & ~pruner.masks[n]
            for value in opt.state[p].values():  # per-entry state (momentum, Adam moments) of newly pruned entries
                if isinstance(value, torch.Tensor) and value.shape == p.shape and newly.any():
                    assert bool((value[newly] == 0).all()), (name, step, n)
                    cleared += 1
    assert pruner.sparsity() == pytest.approx(0.6, abs=1 / pruner.numel)
    # SGD's momentum buffer and AdamW's two moments are per-entry; Adafactor's are factored (no per-entry state)
    assert (cleared > 0) == (name != "adafactor")


@pytest.mark.parametrize(("schedule", "maker"), [
    ("linear", "get_linear_schedule_with_warmup"), ("cosine", "get_cosine_schedule_with_warmup")])
def test_lr_schedules_match_transformers(schedule: str, maker: str) -> None:
    import transformers

    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = getattr(transformers, maker)(opt, num_warmup_steps=5, num_training_steps=40)
    factor = lr_factor(schedule, 5, 40)
    for step in range(40):
        assert factor(step) == pytest.approx(ref.lr_lambdas[0](step), abs=1e-12), step


def test_constant_schedule_keeps_the_old_warmup_and_none_without_warmup() -> None:
    assert lr_factor("constant", 0, 100) is None
    assert [lr_factor("constant", 4, 100)(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_strategy_options_are_validated_and_recorded() -> None:
    cfg = resolve_config({"optimizer": "sgd", "lr_schedule": "cosine", "sparsity": 0.5})
    assert (cfg.optimizer, cfg.lr_schedule) == ("sgd", "cosine") and cfg.to_dict()["optimizer"] == "sgd"
    with pytest.raises(ValueError, match=r"unknown optimizer 'adam'; choose one of \['adamw', 'sgd', 'adafactor'\]"):
        resolve_config({"optimizer": "adam", "sparsity": 0.5})
    with pytest.raises(ValueError, match="unknown lr_schedule 'step'"):
        resolve_config({"lr_schedule": "step", "sparsity": 0.5})
