"""PruningDiagnostics: the recorded statistics against hand computations, and a run it does not change."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

import sevenprune as sp
from sevenprune import schedules


def fixed_run(method: str, grads: list[list[list[float]]], weight: list[list[float]], *, sparsity: float,
              prune_steps: int, snapshots: int, top_fraction: float | None, **options: object):
    layer = nn.Linear(len(weight[0]), len(weight), bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
    pruner = sp.Pruner(layer, method, sparsity=sparsity, start_step=0, prune_steps=prune_steps, **options)
    diag = sp.PruningDiagnostics(pruner, snapshots=snapshots, top_fractions=(top_fraction,))
    for g in grads:
        layer.weight.grad = torch.tensor(g)
        pruner.step()
        diag.step()
    return pruner, diag


def test_noise_discount_snapshot_matches_the_moments_by_hand() -> None:
    # weight 0: |g| = 1, 1 (steady: m_hat / r_hat = 1); weight 1: |g| = 2, 0 at t = 2 with b1 = 0.8, b2 = 0.9:
    # m_hat = (0.8 * 0.4) / 0.36 = 8/9, r_hat = sqrt(0.9 * 0.4 / 0.19) -> ratio 0.6458
    grads = [[[1.0, 2.0]], [[1.0, 0.0]], [[1.0, 1.0]]]
    pruner, diag = fixed_run("seven", grads, [[1.0, 1.0]], sparsity=0.0, prune_steps=3, snapshots=1,
                             top_fraction=0.5)
    assert diag.snapshot_steps == [2]
    nd = diag.summary()["snapshots"][0]["noise_discount"]["per_weight"]["weight"]
    ratio = (0.8 * 0.4 / 0.36) / math.sqrt(0.9 * 0.4 / 0.19)
    assert nd["quantiles"][0] == pytest.approx(ratio + 0.05 * (1 - ratio), abs=1e-5)  # linear interpolation
    assert nd["quantiles"][-1] == pytest.approx(1.0 - 0.05 * (1 - ratio), abs=1e-5)
    assert sum(nd["histogram"]) == 2


def test_persistent_and_transient_top_entries_and_what_the_final_mask_keeps() -> None:
    # 4 entries, top_fraction 0.25: one "top" entry per snapshot. Entry 0 is at the top at every
    # snapshot (persistent); entries 1 and 2 are at the top once each (transient); entry 3 never.
    grads = [[[3.0, 1.0, 0.5, 0.1]], [[3.0, 5.0, 0.5, 0.1]], [[3.0, 0.5, 6.0, 0.1]], [[3.0, 0.5, 0.5, 0.1]],
             [[3.0, 0.5, 0.5, 0.1]]]
    pruner, diag = fixed_run("seven", grads, [[1.0] * 4], sparsity=0.25, prune_steps=5, snapshots=4,
                             top_fraction=0.25)
    assert diag.snapshot_steps == [1, 2, 3, 4]
    summary = diag.summary()
    kept = pruner.masks["weight"][0].tolist()
    classes = summary["top_classes"]["0.25"]
    assert classes["persistent"]["entries"] == 1 and classes["persistent"]["kept"] == int(kept[0])
    assert classes["transient"]["entries"] == 2
    assert classes["transient"]["kept"] == int(kept[1]) + int(kept[2])
    # pruned counts follow the cubic schedule at every window step
    assert kept == [True, True, True, False]  # entry 3 has the lowest score throughout
    assert summary["pruned_per_step"] == [[n, schedules.pruned_count(sp.cubic_sparsity(n, 0.25, 0, 5), 4)]
                                          for n in range(1, 6)]
    for record in summary["snapshots"]:
        assert 0.0 <= record["jaccard_with_final_kept"] <= 1.0
    assert summary["snapshots"][-1]["state_bytes_per_weight"] == 13  # SEVEN in fp32: m, v, score + mask


def test_diagnostics_do_not_change_the_run(tmp_path) -> None:
    def train(with_diag: bool):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        pruner = sp.Pruner(model, "seven", 0.6, start_step=1, prune_steps=6, optimizer=opt)
        diag = sp.PruningDiagnostics(pruner, snapshots=3) if with_diag else None
        gen = torch.Generator().manual_seed(1)
        for _ in range(9):
            x, y = torch.randn(4, 6, generator=gen), torch.randint(0, 3, (4,), generator=gen)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
            pruner.step()
            if diag is not None:
                diag.step()
            opt.zero_grad()
        if diag is not None:
            data = json.loads(diag.save(tmp_path / "d.json").read_text())
            assert [r["step"] for r in data["snapshots"]] == diag.snapshot_steps
        return {k: v.clone() for k, v in model.state_dict().items()}

    a, b = train(False), train(True)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_diagnostics_reject_bad_arguments() -> None:
    pruner = sp.Pruner(nn.Linear(4, 4), "seven", 0.5, prune_steps=4)
    with pytest.raises(ValueError, match="snapshots must be an integer >= 1, got 0"):
        sp.PruningDiagnostics(pruner, snapshots=0)
    with pytest.raises(ValueError, match=r"top_fractions must be numbers in \(0, 1\) or None, got \(1.5,\)"):
        sp.PruningDiagnostics(pruner, top_fractions=(1.5,))


def test_the_default_top_set_is_what_a_one_batch_first_order_score_would_keep() -> None:
    # sparsity 0.5 of 4 entries: the "keep" top set has 2 entries per snapshot (the final keep count)
    grads = [[[3.0, 2.0, 0.5, 0.1]], [[3.0, 0.1, 2.0, 0.5]], [[3.0, 0.1, 0.5, 2.0]], [[3.0, 2.0, 0.5, 0.1]]]
    layer = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    pruner = sp.Pruner(layer, "seven", sparsity=0.5, start_step=0, prune_steps=100)
    diag = sp.PruningDiagnostics(pruner, snapshots=3)
    assert diag.snapshot_steps == [33, 66, 99]
    diag.snapshot_steps = [1, 2, 3]  # early snapshots, while the long window has pruned nothing yet
    for g in grads:
        layer.weight.grad = torch.tensor(g)
        pruner.step()
        diag.step()
    summary = diag.summary()
    assert [r["top_entries"]["keep"] for r in summary["snapshots"]] == [2, 2, 2]
    # entry 0 at the top every time (persistent); 1, 2 and 3 once each (transient)
    keep = summary["top_classes"]["keep"]
    assert keep["persistent"]["entries"] == 1 and keep["transient"]["entries"] == 3



def test_discount_effect_finds_the_steady_weights_seven_rescues() -> None:
    # 4 steady weights (|g| = 1) and 4 noisy ones (|g| alternating 2.0 / 0.2: larger first-order sum).
    # At 50 %, the first-order sum keeps the noisy ones, SEVEN the steady ones: the discount rescues the
    # steady (ratio ~1) and drops the noisy (lower ratio).
    grads = [[[1.0] * 4 + [2.0 if t % 2 == 0 else 0.2] * 4] for t in range(12)]
    layer = nn.Linear(8, 1, bias=False)
    with torch.no_grad():
        layer.weight.fill_(1.0)
    pruner = sp.Pruner(layer, "seven", sparsity=0.5, start_step=0, prune_steps=10_000)  # nothing pruned yet
    diag = sp.PruningDiagnostics(pruner, snapshots=1)
    diag.snapshot_steps = [12]
    for g in grads:
        layer.weight.grad = torch.tensor(g)
        pruner.step()
        diag.step()
    effect = diag.summary()["discount_effect"][-1]
    assert effect["rescued"]["entries"] == 4 and effect["dropped"]["entries"] == 4
    assert effect["rescued"]["ratio_mean"] == pytest.approx(1.0, abs=1e-6)
    assert effect["dropped"]["ratio_mean"] < 0.9
    assert effect["jaccard_kept"] == 0.0
