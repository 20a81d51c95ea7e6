"""SEVEN's score, hand-computed, and the sentinel property that motivates it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import sevenprune as sp

W = [[1.0, -2.0, 0.5], [3.0, -1.0, 2.0]]
GRADS = [
    [[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]],
    [[0.5, 1.0, -2.0], [-1.0, 0.5, -0.5]],
    [[0.5, -3.0, 2.0], [1.0, 0.0, 4.0]],
]


def reference_scores(moments: str, b1: float = 0.8, b2: float = 0.9, eps: float = 1e-9) -> list[list[float]]:
    """method.md's formula, entry by entry in plain Python (no torch)."""
    out = []
    for i in range(2):
        row = []
        for j in range(3):
            m = v = s = 0.0
            for t, grads in enumerate(GRADS, start=1):
                g = grads[i][j]
                a = abs(g)
                m = b1 * m + (1 - b1) * (g if moments == "signed" else a)
                v = b2 * v + (1 - b2) * a * a
                m_hat = m / (1 - b1**t)
                r_hat = math.sqrt(v / (1 - b2**t)) + eps
                s += abs(W[i][j] * a * (abs(m_hat) if moments == "signed" else m_hat) / r_hat)
            row.append(s)
        out.append(row)
    return out


def run_window(moments: str, grads: list[list[list[float]]], weight: list[list[float]], **options: float) -> sp.Pruner:
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    # sparsity 0 and a long window: scores are observed and nothing is pruned or freed
    pruner = sp.Pruner(layer, "seven", sparsity=0.0, start_step=0, prune_steps=100, moments=moments, **options)
    for g in grads:
        layer.weight.grad = torch.tensor(g)
        pruner.step()
    return pruner


@pytest.mark.parametrize("moments", ["abs", "signed"])
def test_seven_score_matches_formula_over_three_steps(moments: str) -> None:
    pruner = run_window(moments, GRADS, W)
    got = pruner.importance.stats["score"]["weight"]
    assert torch.allclose(got, torch.tensor(reference_scores(moments)), rtol=1e-6, atol=0)
    assert pruner.observed_steps == 3


def test_seven_first_step_is_first_order_and_signed_moments_penalise_sign_flips() -> None:
    # hand values: a constant gradient makes m_hat / r_hat = 1, so S_1 = |w g| and S_2 = 2 |w g|;
    # an alternating gradient (+1, -1) keeps |m_hat| / r_hat = 1 under "abs" but gives
    # m_2 = 0.8 * 0.2 - 0.2 = -0.04, m_hat = -0.04 / 0.36 = -1/9, r_hat = 1 under "signed".
    alternating = [[[1.0]], [[-1.0]]]
    abs_score = run_window("abs", alternating, [[2.0]]).importance.stats["score"]["weight"].item()
    signed_score = run_window("signed", alternating, [[2.0]]).importance.stats["score"]["weight"].item()
    assert abs_score == pytest.approx(2.0 + 2.0, rel=1e-6)
    assert signed_score == pytest.approx(2.0 + 2.0 / 9.0, rel=1e-6)


def test_seven_keeps_steady_gradients_where_gradient_magnitude_would_not() -> None:
    # 4 weights with a steady gradient 1.0 and 4 whose gradient alternates 2.0 / 0.2 (mean 1.1):
    # the accumulated first-order score sum |w g| prefers the noisy ones, SEVEN the steady ones.
    steps = 10
    grads = [[[1.0] * 4 + [2.0 if t % 2 == 0 else 0.2] * 4] for t in range(steps)]
    weight = [[1.0] * 8]
    first_order = torch.tensor(grads).abs().sum(0)[0]
    assert (first_order[4:] > first_order[:4]).all()  # |w g| alone would keep the noisy weights

    pruner = run_window("abs", grads, weight)
    score = pruner.importance.stats["score"]["weight"][0]
    assert (score[:4] > score[4:]).all()
    pruner.update_masks(0.5)
    assert pruner.masks["weight"][0].tolist() == [True] * 4 + [False] * 4


def test_seven_options_are_validated() -> None:
    layer = nn.Linear(3, 2)
    with pytest.raises(ValueError, match="moments must be 'abs', 'signed' or 'optimizer', got 'sign'"):
        sp.Pruner(layer, "seven", 0.5, moments="sign")
    with pytest.raises(ValueError, match=r"beta1 must be a number in \[0, 1\), got 1.5"):
        sp.Pruner(layer, "seven", 0.5, beta1=1.5)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['beta3'\].*beta1"):
        sp.Pruner(layer, "seven", 0.5, beta3=0.1)
    with pytest.raises(ValueError, match="state_dtype"):
        sp.Pruner(layer, "seven", 0.5, state_dtype=torch.int8)


@pytest.mark.parametrize("dtype,limit", [(torch.float32, 13), (torch.bfloat16, 9)])
def test_memory_per_prunable_parameter(dtype: torch.dtype, limit: int) -> None:
    layer = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 32))
    pruner = sp.Pruner(layer, "seven", 0.5, start_step=0, prune_steps=4, state_dtype=dtype)
    for _ in range(2):
        layer(torch.randn(4, 64)).sum().backward()
        pruner.step()
    per_param = pruner.state_nbytes() / pruner.numel
    assert per_param == (13 if dtype == torch.float32 else 9)
    assert per_param <= limit
    for _ in range(2):
        pruner.step()
    assert pruner.state_nbytes() == pruner.numel  # after the window only the 1-byte masks remain


def test_bf16_statistics_track_fp32_ranking() -> None:
    torch.manual_seed(0)
    grads = [torch.randn(8, 16).tolist() for _ in range(6)]
    weight = torch.randn(8, 16).tolist()
    s32 = run_window("abs", grads, weight).importance.stats["score"]["weight"]
    layer = nn.Linear(16, 8, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    pruner = sp.Pruner(layer, "seven", 0.0, prune_steps=100, state_dtype=torch.bfloat16)
    for g in grads:
        layer.weight.grad = torch.tensor(g)
        pruner.step()
    s16 = pruner.importance.stats["score"]["weight"]
    assert pruner.importance.stats["m"]["weight"].dtype == torch.bfloat16
    assert torch.allclose(s16, s32, rtol=2e-2)
