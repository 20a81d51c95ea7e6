"""Lottery tickets: iterative magnitude pruning with rewinding (sevenprune.lottery.lottery_ticket)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import sevenprune as sp
from sevenprune.lottery import lottery_ticket

# a "training" that lands on known weights, so the masks can be computed by hand: the entries of
# TRAINED_1 are a permutation of 1..16, those of TRAINED_2 another one
TRAINED_1 = torch.tensor([[16.0, 1.0, 15.0, 2.0], [14.0, 3.0, 13.0, 4.0],
                          [12.0, 5.0, 11.0, 6.0], [10.0, 7.0, 9.0, 8.0]])
TRAINED_2 = torch.tensor([[1.0, 16.0, 2.0, 15.0], [3.0, 14.0, 4.0, 13.0],
                          [5.0, 12.0, 6.0, 11.0], [7.0, 10.0, 8.0, 9.0]])


def four_by_four() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(4, 4)


def test_two_rounds_by_hand_with_rewind_to_start() -> None:
    layer = four_by_four()
    start = {k: v.clone() for k, v in layer.state_dict().items()}
    seen = []

    def train(model: nn.Module, pruner: sp.Pruner) -> None:
        seen.append((pruner.lottery_round, pruner.masks["weight"].clone()))  # type: ignore[attr-defined]
        trained = TRAINED_1 if len(seen) == 1 else -TRAINED_2  # the sign must not matter
        with torch.no_grad():
            model.weight.copy_(trained)
            model.bias.add_(1.0)
        pruner.apply_masks()  # a masked training leaves pruned weights at zero

    ticket = lottery_ticket(layer, train, sparsity=0.75, rounds=2)
    # round 1 trains the dense network; sparsity 1 - 0.25 ** (1/2) = 0.5 -> the 8 largest of
    # TRAINED_1 survive (9..16: columns 0 and 2)
    assert seen[0][0] == 1 and bool(seen[0][1].all())
    round_1 = torch.tensor([[True, False, True, False]] * 4)
    assert seen[1][0] == 2 and torch.equal(seen[1][1], round_1)
    # round 2: among those, |TRAINED_2| = [2, 1, 4, 3, 6, 5, 8, 7] -> keep 16 - 12 = 4: 8, 7, 6, 5
    final = torch.tensor([[False, False, False, False], [False, False, False, False],
                          [True, False, True, False], [True, False, True, False]])
    assert torch.equal(ticket.masks["weight"], final)
    assert ticket.sparsity() == 0.75 and ticket.finished and ticket.method == "magnitude"
    # rewound to the starting weights (bias included), pruned weights zero
    assert torch.equal(layer.weight, start["weight"] * final)
    assert torch.equal(layer.bias, start["bias"])


def mlp() -> nn.Sequential:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 2))


DATA = [(torch.randn(8, 5, generator=torch.Generator().manual_seed(i)),
         torch.randn(8, 2, generator=torch.Generator().manual_seed(100 + i))) for i in range(6)]


def test_rewind_to_an_early_step_with_real_training() -> None:
    model = mlp()
    at_step_2: dict[str, torch.Tensor] = {}
    rounds_seen: list[dict[str, torch.Tensor]] = []

    def train(m: nn.Module, pruner: sp.Pruner) -> None:
        rounds_seen.append({n: mask.clone() for n, mask in pruner.masks.items()})
        opt = torch.optim.SGD(m.parameters(), lr=0.2, momentum=0.9)
        pruner.attach(opt)
        for step, (x, y) in enumerate(DATA, start=1):
            nn.functional.mse_loss(m(x), y).backward()
            opt.step()
            pruner.step()
            opt.zero_grad()
            for name, mask in pruner.masks.items():
                assert bool((pruner.params[name][~mask] == 0).all())
            if len(rounds_seen) == 1 and step == 2:
                at_step_2.update({k: v.clone() for k, v in m.state_dict().items()})

    ticket = lottery_ticket(model, train, sparsity=0.9, rounds=3, rewind_step=2)
    n = ticket.numel
    for r, masks in enumerate(rounds_seen, start=1):  # entry masks of round r = result of round r - 1
        expected = round((1 - 0.1 ** ((r - 1) / 3)) * n)
        assert sum(int((~m).sum()) for m in masks.values()) == expected
    for earlier, later in zip(rounds_seen, rounds_seen[1:] + [ticket.masks]):
        assert all(bool((later[k] <= earlier[k]).all()) for k in earlier), "masks must only shrink"
    assert ticket.report()["pruned"] == round(0.9 * n)
    for name, value in model.state_dict().items():
        expected_value = at_step_2[name] * ticket.masks[name] if name in ticket.masks else at_step_2[name]
        assert torch.equal(value, expected_value), name


def test_each_round_prunes_by_magnitude_of_the_trained_weights() -> None:
    model = mlp()
    trained: list[dict[str, torch.Tensor]] = []

    def train(m: nn.Module, pruner: sp.Pruner) -> None:
        opt = torch.optim.SGD(m.parameters(), lr=0.3)
        pruner.attach(opt)
        for x, y in DATA:
            nn.functional.mse_loss(m(x), y).backward()
            opt.step()
            pruner.step()
            opt.zero_grad()
        trained.append({n: p.detach().clone() for n, p in pruner.params.items()})

    ticket = lottery_ticket(model, train, sparsity=0.5, rounds=1)
    magnitudes = torch.cat([w.abs().flatten() for w in trained[0].values()])
    kept = torch.cat([ticket.masks[n].flatten() for n in trained[0]])
    assert magnitudes[kept].min() >= magnitudes[~kept].max()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rounds": 0}, ValueError, "rounds must be >= 1"),
        ({"rounds": 1.5}, TypeError, "rounds must be an integer"),
        ({"sparsity": 1.0}, ValueError, "sparsity must be in"),
        ({"rewind_step": -1}, ValueError, "rewind_step must be >= 0"),
        ({"rewind_step": 10}, ValueError, r"rewind_step=10 but train_fn called pruner.step\(\) only 6"),
        ({"train_fn": "train"}, TypeError, "train_fn must be a callable"),
        ({"model": "bert"}, TypeError, "model must be a torch.nn.Module"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, match: str) -> None:
    def train(m: nn.Module, pruner: sp.Pruner) -> None:
        for _ in DATA:
            pruner.step()

    args = {"model": mlp(), "train_fn": train, "sparsity": 0.5, "rounds": 2, **kwargs}
    with pytest.raises(error, match=match):
        lottery_ticket(args.pop("model"), args.pop("train_fn"), args.pop("sparsity"), args.pop("rounds"),
                       **args)
