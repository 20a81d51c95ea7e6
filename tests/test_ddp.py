"""DDP on the CPU: ``torchrun --nproc_per_node 2`` (gloo), every rank ends with the same masks, and a
difference between ranks raises a MaskMismatchError naming the weight (see tests/_ddp_worker.py)."""

from __future__ import annotations


import pytest
import torch
from _ddp_worker import scenario

from sevenprune.distributed import MaskMismatchError, check_masks_consistent, mask_checksums

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")






def test_ddp_ranks_end_with_identical_masks() -> None:
    r0, r1 = scenario("ddp")
    assert r0["losses"] != r1["losses"]  # the ranks read different data ...
    for r in (r0, r1):
        assert r["masks_equal"] and r["weights_equal"]  # ... yet hold the same masks and weights
        assert r["sparsity"] == round(0.75 * r["numel"]) / r["numel"] == 0.75
        assert r["zeros_where_pruned"]
        assert r["checks"] == 4  # the consistency check ran at each of the 4 mask updates
        assert r["names"] == ["0.weight", "2.weight", "4.weight"]  # unwrapped names, no "module."


def test_ddp_with_optimizer_moments_ends_with_identical_masks() -> None:
    r0, r1 = scenario("ddp_optimizer_moments")  # moments="optimizer", bf16 score
    assert r0["losses"] != r1["losses"]
    for r in (r0, r1):
        assert r["masks_equal"] and r["weights_equal"]
        assert r["sparsity"] == round(0.75 * r["numel"]) / r["numel"]
        assert r["zeros_where_pruned"] and r["checks"] == 4


def test_a_forced_difference_raises_on_every_rank() -> None:
    for r in scenario("mismatch"):
        assert r["equal"]["error"] is None
        # one kept and one pruned entry swapped on one rank: same count, caught by the positional hash
        assert r["swapped"]["error"] == "MaskMismatchError"
        assert "masks differ between ranks for weight '2.weight'" in r["swapped"]["message"]
        assert "1 of 3 weights differ" in r["swapped"]["message"]
        assert r["flipped"]["error"] == "MaskMismatchError"
        assert "'4.weight'" in r["flipped"]["message"] and "rank 0: 23 kept" in r["flipped"]["message"]
        assert r["layout"]["error"] == "MaskMismatchError"
        assert "different sets of weights" in r["layout"]["message"]


def test_unsynchronised_gradients_are_caught_at_the_first_mask_update() -> None:
    for r in scenario("unsynced"):
        assert r["error"] == "MaskMismatchError" and r["step"] == 1
        assert "all-reduced" in r["message"]


def test_checksums_single_process() -> None:
    check_masks_consistent({"w": torch.ones(3, dtype=torch.bool)})  # no process group: a no-op
    a = torch.zeros(4, 5, dtype=torch.bool)
    a[1, 2] = True
    b = torch.zeros(4, 5, dtype=torch.bool)
    b[2, 1] = True
    sums = mask_checksums({"a": a, "b": b, "c": a.clone()})
    assert sums[:, 0].tolist() == [1, 1, 1]
    assert sums[0, 1] != sums[1, 1] and sums[0, 1] == sums[2, 1]
    # odd sizes (not a multiple of 8 entries) and non-contiguous masks hash too
    odd = torch.ones(3, 3, dtype=torch.bool).t()
    assert mask_checksums({"odd": odd})[0, 0] == 9
    with pytest.raises(TypeError, match="mask 'x' must be a bool tensor"):
        mask_checksums({"x": torch.ones(2)})
    assert issubclass(MaskMismatchError, RuntimeError)


def test_hf_trainer_under_torchrun_prunes_identically_on_both_ranks() -> None:
    for r in scenario("trainer"):
        assert r["world_size"] == 2 and r["step"] == 4
        assert r["sparsity"] == round(0.5 * r["numel"]) / r["numel"] and r["masks_equal"]
        # written once (by the process that saves) beside each checkpoint
        assert r["saved"] == [f"checkpoint-{s}/pruner/{f}" for s in (2, 4)
                              for f in ("pruner.json", "pruner.safetensors")]
        # cubic schedule, s = 0.5 over 3 updates: 0.5 * (1 - (2/3)^3) = 0.3519, 0.5 * (26/27) = 0.4815
        assert [round(x, 3) for x in r["logged"]] == [0.352, 0.481, 0.5, 0.5]
