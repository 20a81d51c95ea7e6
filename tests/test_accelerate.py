"""The plain-loop API under Accelerate: the pruner sees the unwrapped model's names and the inner
optimizer; in one process here, and under torchrun with 2 processes (DDP-wrapped) via _ddp_worker.py."""

from __future__ import annotations


import pytest
import torch
from torch import nn

accelerate = pytest.importorskip("accelerate")

from _ddp_worker import scenario  # noqa: E402
from sevenprune.integrations.accelerate import build_pruner, unwrap_optimizer  # noqa: E402




def test_single_process_loop_with_accumulation() -> None:
    torch.manual_seed(0)
    accelerator = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=2)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    data = torch.utils.data.TensorDataset(torch.randn(32, 6), torch.randint(0, 3, (32,)))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    assert type(optimizer).__name__ == "AcceleratedOptimizer"
    pruner = build_pruner(accelerator, model, optimizer, method="seven", sparsity=0.5, start_step=0,
                          prune_steps=3)
    assert pruner.optimizer is unwrap_optimizer(optimizer) and pruner.optimizer is not optimizer
    for x, y in loader:  # 8 micro-batches = 4 optimizer updates
        with accelerator.accumulate(model):
            accelerator.backward(nn.functional.cross_entropy(model(x), y))
            optimizer.step()
            if accelerator.sync_gradients:
                pruner.step()
            optimizer.zero_grad()
    assert pruner.step_count == 4
    assert pruner.sparsity() == 0.5
    for name, p in pruner.params.items():
        assert torch.all(p[~pruner.masks[name]] == 0)  # re-applied by the inner optimizer's step hook


def test_build_pruner_checks_its_arguments() -> None:
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="unwrap_model"):
        build_pruner(object(), model, method="magnitude")
    with pytest.raises(TypeError, match="must be a torch.optim.Optimizer"):
        unwrap_optimizer("adam")  # type: ignore[arg-type]


def test_two_processes_under_torchrun() -> None:
    for r in scenario("accelerate"):  # fails with the rank's traceback if it crashed
        assert r["distributed_type"] == "DistributedType.MULTI_CPU"
        assert r["wrapped"] == "DistributedDataParallel"
        assert r["names"] == ["0.weight", "2.weight", "4.weight"]  # unwrapped: no "module." prefix
        assert r["sparsity"] == 0.5 and r["masks_equal"]
