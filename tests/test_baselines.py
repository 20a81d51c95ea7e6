"""Baselines scored during fine-tuning: PLATON, movement, soft movement, random (through sp.Pruner).

Each score is checked against a hand computation on a 2x3 weight, the direction of each criterion is
checked on a case built to separate it from magnitude, and every method is checked for exact counts,
monotone masks and exact resume.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

import sevenprune as sp
from sevenprune import schedules
from sevenprune.importance import movement as _movement  # noqa: F401 - registers the methods
from sevenprune.importance import platon as _platon  # noqa: F401
from sevenprune.importance import random_scores as _random  # noqa: F401
from sevenprune.importance import soft_movement as _soft  # noqa: F401
from sevenprune.importance.random_scores import random_scores

W = [[1.0, -2.0, 0.5], [3.0, -1.0, 2.0]]
GRADS = [
    [[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]],
    [[0.5, 1.0, -2.0], [-1.0, 0.5, -0.5]],
    [[0.5, -3.0, 2.0], [1.0, 0.0, 4.0]],
]
TRAIN_METHODS = ["platon", "movement", "movement_instant", "soft_movement", "random"]


def layer_with(weight: list[list[float]]) -> nn.Linear:
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    return layer


def observe_only(method: str, grads: list[list[list[float]]], weight: list[list[float]] = W,
                 **options: object) -> sp.Pruner:
    """Feed fixed gradients at a fixed weight; sparsity 0 so nothing is pruned or freed."""
    layer = layer_with(weight)
    pruner = sp.Pruner(layer, method, sparsity=0.0, start_step=0, prune_steps=100, **options)
    for g in grads:
        layer.weight.grad = torch.tensor(g)
        pruner.step()
    return pruner


def test_all_baselines_are_registered() -> None:
    assert set(TRAIN_METHODS) <= set(sp.methods())


# -- PLATON ---------------------------------------------------------------------------------------
def test_platon_first_step_literal() -> None:
    # I = |W*G| = [[0.5, 2, 1], [3, 0, 1]]; Ibar = 0.15 I; U = 0.05 |I - 0.15 I| = 0.0425 I
    pruner = observe_only("platon", GRADS[:1], delta_t=1)
    stats = pruner.importance.stats
    i = torch.tensor([[0.5, 2.0, 1.0], [3.0, 0.0, 1.0]])
    assert torch.allclose(stats["ibar"]["weight"], 0.15 * i)
    assert torch.allclose(stats["unc"]["weight"], 0.0425 * i)
    score = pruner.importance.scores(pruner.masks)[0]
    assert score[1, 0].item() == pytest.approx(0.15 * 0.0425 * 9.0)  # 0.057375


def test_platon_matches_formula_over_three_steps() -> None:
    b1, b2 = 0.85, 0.95
    expected = []
    for i in range(2):
        row = []
        for j in range(3):
            ibar = unc = 0.0
            for g in GRADS:
                sens = abs(W[i][j] * g[i][j])
                ibar = b1 * ibar + (1 - b1) * sens
                unc = b2 * unc + (1 - b2) * abs(sens - ibar)  # the updated Ibar (Eq. 6)
            row.append(ibar * unc)
        expected.append(row)
    pruner = observe_only("platon", GRADS, delta_t=1)
    got = pruner.importance.scores(pruner.masks)[0]
    assert torch.allclose(got, torch.tensor(expected), rtol=1e-6, atol=0)


def test_platon_keeps_the_uncertain_weight_at_equal_mean_sensitivity() -> None:
    # weight 0: |W*G| = 1 every step; weight 1: 0, 2, 0, 2, ... (same mean, high uncertainty)
    grads = [[[1.0, 2.0 * (t % 2)]] for t in range(20)]
    pruner = observe_only("platon", grads, weight=[[1.0, 1.0]], delta_t=1)
    ibar = pruner.importance.stats["ibar"]["weight"][0]
    assert abs(ibar[0] - ibar[1]) < 0.1  # about the same smoothed sensitivity
    pruner.update_masks(0.5)
    assert pruner.masks["weight"].tolist() == [[False, True]]
    # SEVEN, by contrast, keeps the steady one (its ratio discounts the noisy gradient)
    seven = observe_only("seven", grads, weight=[[1.0, 1.0]])
    seven.update_masks(0.5)
    assert seven.masks["weight"].tolist() == [[True, False]]


# -- movement ---------------------------------------------------------------------------------------
def test_movement_matches_minus_sum_w_times_g_with_moving_weights() -> None:
    layer = layer_with(W)
    pruner = sp.Pruner(layer, "movement", sparsity=0.0, start_step=0, prune_steps=100)
    expected = [[0.0] * 3 for _ in range(2)]
    weights = [W, [[1.5, -2.0, 0.0], [2.0, 1.0, 2.5]], [[0.5, -1.0, 1.0], [1.0, 0.5, -2.0]]]
    for w, g in zip(weights, GRADS):
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(w))
        layer.weight.grad = torch.tensor(g)
        pruner.step()
        for i in range(2):
            for j in range(3):
                expected[i][j] -= w[i][j] * g[i][j]
    # by hand, entry (0, 1): -(-2*-1) - (-2*1) - (-1*-3) = -2 + 2 - 3 = -3
    assert expected[0][1] == -3.0
    got = pruner.importance.stats["score"]["weight"]
    assert torch.allclose(got, torch.tensor(expected))


@pytest.mark.parametrize("method", ["movement", "soft_movement"])
def test_movement_keeps_the_weight_growing_in_magnitude(method: str) -> None:
    # w0 = 0.1 is pushed away from zero, w1 = 1.0 towards it; magnitude would keep w1
    layer = layer_with([[0.1, 1.0]])
    opt = torch.optim.SGD(layer.parameters(), lr=0.05)
    pruner = sp.Pruner(layer, method, sparsity=0.5, start_step=0, prune_steps=10, optimizer=opt)
    magnitude_start = layer.weight.detach().abs().clone()
    for _ in range(10):
        layer.weight.grad = torch.tensor([[-1.0, 1.0]])
        opt.step()
        pruner.step()
        opt.zero_grad()
    assert pruner.masks["weight"].tolist() == [[True, False]]
    assert layer.weight[0, 0].abs() > magnitude_start[0, 0]  # it did grow
    assert layer.weight[0, 1].item() == 0.0


def test_movement_instant_is_the_last_batch_abs_w_times_g() -> None:
    pruner = observe_only("movement_instant", GRADS)
    expected = [[abs(W[i][j] * GRADS[-1][i][j]) for j in range(3)] for i in range(2)]
    assert torch.equal(pruner.importance.scores(pruner.masks)[0], torch.tensor(expected))


# -- soft movement -----------------------------------------------------------------------------------
def test_soft_movement_sgd_matches_formula() -> None:
    lr, lam = 0.5, 3.0
    pruner = observe_only("soft_movement", GRADS, score_optimizer="sgd", lr=lr, reg_lambda=lam)
    # one weight matrix of 6 entries: dR/dS = sigmoid'(S) / (1 * 6)
    expected = []
    for i in range(2):
        row = []
        for j in range(3):
            s = 0.0
            for g in GRADS:
                sig = 1 / (1 + math.exp(-s))
                s -= lr * (W[i][j] * g[i][j] + lam * sig * (1 - sig) / 6)
            row.append(s)
        expected.append(row)
    # entry (0, 0), first step by hand: 0 - 0.5 * (1*0.5 + 3 * 0.25 / 6) = -0.3125
    first = observe_only("soft_movement", GRADS[:1], score_optimizer="sgd", lr=lr, reg_lambda=lam)
    assert first.importance.stats["score"]["weight"][0, 0].item() == pytest.approx(-0.3125)
    assert torch.allclose(pruner.importance.stats["score"]["weight"], torch.tensor(expected), rtol=1e-6)


def test_soft_movement_adam_matches_formula() -> None:
    lr, lam, b1, b2, eps = 0.01, 2.0, 0.9, 0.999, 1e-8
    pruner = observe_only("soft_movement", GRADS, lr=lr, reg_lambda=lam)
    expected = []
    for i in range(2):
        row = []
        for j in range(3):
            s = m = v = 0.0
            for t, g in enumerate(GRADS, start=1):
                sig = 1 / (1 + math.exp(-s))
                d = W[i][j] * g[i][j] + lam * sig * (1 - sig) / 6
                m = b1 * m + (1 - b1) * d
                v = b2 * v + (1 - b2) * d * d
                s -= lr * (m / (1 - b1**t)) / (math.sqrt(v / (1 - b2**t)) + eps)
            row.append(s)
        expected.append(row)
    assert torch.allclose(pruner.importance.stats["score"]["weight"], torch.tensor(expected), rtol=1e-5)


def test_soft_movement_regulariser_pushes_scores_down() -> None:
    zero_grads = [[[0.0] * 3] * 2] * 3
    with_reg = observe_only("soft_movement", zero_grads, score_optimizer="sgd", lr=1.0, reg_lambda=6.0)
    without = observe_only("soft_movement", zero_grads, score_optimizer="sgd", lr=1.0, reg_lambda=0.0)
    assert bool((with_reg.importance.stats["score"]["weight"] < 0).all())
    assert bool((without.importance.stats["score"]["weight"] == 0).all())


# -- random ---------------------------------------------------------------------------------------------
def test_random_scores_are_the_seeded_draw_and_prune_the_lowest() -> None:
    layer = layer_with(W)
    pruner = sp.Pruner(layer, "random", sparsity=0.5, start_step=0, prune_steps=1, seed=7)
    torch.manual_seed(999)  # the global RNG must not matter
    pruner.step()
    drawn = random_scores([torch.Size([2, 3])], seed=7)[0]
    expected_keep = drawn > drawn.flatten().sort().values[2]
    assert torch.equal(pruner.masks["weight"], expected_keep)


def test_random_is_deterministic_nested_and_seed_dependent() -> None:
    def final(seed: int, sparsity: float) -> torch.Tensor:
        layer = nn.Linear(20, 10)
        pruner = sp.Pruner(layer, "random", sparsity=sparsity, start_step=0, prune_steps=3, seed=seed)
        for _ in range(3):
            pruner.step()
        return pruner.masks["weight"]

    assert torch.equal(final(1, 0.5), final(1, 0.5))
    assert not torch.equal(final(1, 0.5), final(2, 0.5))
    assert bool((final(1, 0.7) <= final(1, 0.5)).all())  # pruned at 0.5 => pruned at 0.7


# -- common behaviour -------------------------------------------------------------------------------------
def tiny_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 3))


def batches(n: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(5)
    return [(torch.randn(4, 6, generator=gen), torch.randint(0, 3, (4,), generator=gen)) for _ in range(n)]


def train_steps(model: nn.Module, opt: torch.optim.Optimizer, pruner: sp.Pruner, data: list) -> None:
    for x, y in data:
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        pruner.step()
        opt.zero_grad()


#: (method, options, window): masks change every ``window`` pruning steps and on the last one
COUNT_CASES = [(m, {"delta_t": 1} if m == "platon" else {}, 1) for m in TRAIN_METHODS] + [
    ("platon", {"delta_t": 3}, 3), ("platon", {}, 10)]


@pytest.mark.parametrize(("method", "options", "window"), COUNT_CASES)
def test_exact_counts_monotone_masks_zero_weights(method: str, options: dict, window: int) -> None:
    model = tiny_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    pruner = sp.Pruner(model, method, sparsity=0.7, start_step=2, prune_steps=8, optimizer=opt, **options)
    previous = {n: m.clone() for n, m in pruner.masks.items()}
    due = 0  # the last step at which the masks were due
    for step, (x, y) in enumerate(batches(14), start=1):
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        pruner.step()
        opt.zero_grad()
        w = step - 2  # pruning step within the window
        if 1 <= w <= 8 and (w % window == 0 or w == 8):
            due = step
        expected = schedules.pruned_count(sp.cubic_sparsity(due, 0.7, 2, 8), pruner.numel) if due else 0
        assert pruner.report()["pruned"] == expected
        for name, mask in pruner.masks.items():
            assert bool((mask <= previous[name]).all()), "a pruned weight came back"
            assert bool((pruner.params[name][~mask] == 0).all())
        previous = {n: m.clone() for n, m in pruner.masks.items()}
    assert pruner.sparsity() == round(0.7 * pruner.numel) / pruner.numel
    assert pruner.importance.stats == {}  # freed after the window


@pytest.mark.parametrize("method", TRAIN_METHODS)
def test_resume_2x10_equals_20(method: str, tmp_path: Path) -> None:
    data = batches(20)
    # one run of 20 steps
    model_a = tiny_mlp()
    opt_a = torch.optim.SGD(model_a.parameters(), lr=0.1, momentum=0.9)
    pruner_a = sp.Pruner(model_a, method, sparsity=0.6, start_step=3, prune_steps=15, optimizer=opt_a)
    train_steps(model_a, opt_a, pruner_a, data)
    # 10 steps, save everything, rebuild from scratch, load, 10 more
    model_b = tiny_mlp()
    opt_b = torch.optim.SGD(model_b.parameters(), lr=0.1, momentum=0.9)
    pruner_b = sp.Pruner(model_b, method, sparsity=0.6, start_step=3, prune_steps=15, optimizer=opt_b)
    train_steps(model_b, opt_b, pruner_b, data[:10])
    stats_mid = {k: v.clone() for k, v in pruner_b.state_dict()["importance"].items()}
    assert stats_mid, f"{method} saved no statistics mid-window"
    sp.save_state(pruner_b, tmp_path / "state")
    weights = {k: v.clone() for k, v in model_b.state_dict().items()}
    opt_state = opt_b.state_dict()
    model_c = tiny_mlp(seed=99)
    model_c.load_state_dict(weights)
    opt_c = torch.optim.SGD(model_c.parameters(), lr=0.1, momentum=0.9)
    opt_c.load_state_dict(opt_state)
    pruner_c = sp.load_state(tmp_path / "state", model_c, optimizer=opt_c)
    for key, value in pruner_c.state_dict()["importance"].items():
        assert torch.equal(value, stats_mid[key])
    train_steps(model_c, opt_c, pruner_c, data[10:])
    for name in pruner_a.masks:
        assert torch.equal(pruner_a.masks[name], pruner_c.masks[name])
    for (name, a), c in zip(model_a.state_dict().items(), model_c.state_dict().values()):
        assert torch.equal(a, c), name


@pytest.mark.parametrize("method", ["platon", "movement", "soft_movement"])
def test_stats_in_bf16_state_dtype(method: str) -> None:
    model = tiny_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    pruner = sp.Pruner(model, method, sparsity=0.5, start_step=0, prune_steps=5, optimizer=opt,
                       state_dtype=torch.bfloat16)
    train_steps(model, opt, pruner, batches(5))
    assert pruner.sparsity() == round(0.5 * pruner.numel) / pruner.numel


@pytest.mark.parametrize(
    ("method", "options", "match"),
    [
        ("platon", {"beta1": 1.0}, "beta1 must be a number in"),
        ("platon", {"beta2": "x"}, "beta2 must be a number in"),
        ("platon", {"gamma": 0.1}, "unknown option"),
        ("soft_movement", {"lr": 0.0}, "lr must be a positive number"),
        ("soft_movement", {"reg_lambda": -1.0}, "reg_lambda must be"),
        ("soft_movement", {"score_optimizer": "rmsprop"}, "'adam' or 'sgd'"),
        ("soft_movement", {"betas": (0.9,)}, "betas must be two numbers"),
        ("soft_movement", {"init": math.nan}, "init must be a finite number"),
        ("random", {"seed": -1}, "seed must be an integer"),
        ("random", {"seed": 1.5}, "seed must be an integer"),
        ("movement", {"beta1": 0.9}, "unknown option"),
    ],
)
def test_bad_options(method: str, options: dict, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        sp.Pruner(nn.Linear(3, 2), method, sparsity=0.5, **options)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("method", TRAIN_METHODS)
def test_on_cuda(method: str) -> None:
    model = tiny_mlp().cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    pruner = sp.Pruner(model, method, sparsity=0.5, start_step=0, prune_steps=4, optimizer=opt)
    train_steps(model, opt, pruner, [(x.cuda(), y.cuda()) for x, y in batches(4)])
    assert pruner.sparsity() == round(0.5 * pruner.numel) / pruner.numel


@pytest.mark.parametrize("method", TRAIN_METHODS)
def test_options_are_checked_without_building_the_method(method: str) -> None:
    cls = sp.importance.get_method(method)
    assert cls.checked_options({}).keys() == cls.defaults.keys()  # the defaults, completed (betas as a list)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['nope'\]"):
        cls.checked_options({"nope": 1})
    pruner = sp.Pruner(layer_with(W), method, 0.5)
    assert pruner.importance.options == cls.checked_options({})
