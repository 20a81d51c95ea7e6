"""Random pruning: every weight gets a score drawn once, uniformly in [0, 1), from a seeded generator.

The usual sanity baseline of the pruning literature (e.g. Lee et al. 2019, Wang et al. 2020, de Jorge
et al. 2021 all report it). On the cubic schedule during fine-tuning it prunes gradually, always
removing the lowest-drawn of the weights still kept; one shot (``prune_at_init``) it keeps a uniformly
random subset of exactly ``round((1 - s) * N)`` weights. Because the scores are drawn once, the pruned
set at a lower sparsity is a subset of the one at a higher sparsity.

Determinism: the scores come from a CPU ``torch.Generator`` seeded with ``seed`` and drawn weight by
weight in the pruner's order, then moved to the weight's device, so the same seed gives the same masks
on CPU and GPU and whatever the global RNG state. They are held in fp32 (4 bytes per weight) and saved
by ``state_dict()``.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
from torch import Tensor

from .base import Importance, register
from .init_request import InitRequest

__all__ = ["RandomImportance", "random_scores"]


def random_scores(shapes: list[torch.Size], seed: int) -> list[Tensor]:
    """Uniform [0, 1) scores, one CPU fp32 tensor per shape, drawn in order from ``seed``.

    >>> [t.shape for t in random_scores([torch.Size([2, 3]), torch.Size([4])], seed=0)]
    [torch.Size([2, 3]), torch.Size([4])]
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return [torch.rand(shape, generator=gen, dtype=torch.float32) for shape in shapes]


@register
class RandomImportance(Importance):
    """``method="random"``: scores drawn once, uniformly, from ``seed`` (option, default 0).

    >>> import torch, sevenprune as sp
    >>> layer = torch.nn.Linear(10, 10)
    >>> pruner = sp.Pruner(layer, "random", sparsity=0.3, prune_steps=2, seed=1)
    >>> for _ in range(2):
    ...     pruner.step()
    >>> int((~pruner.masks["weight"]).sum())
    30
    """

    name = "random"
    phases = ("fine-tuning", "before")  # gradual during fine-tuning; one shot at the starting weights
    monotone_scores = True  # drawn once, never changed
    needs_grad = False
    defaults = {"seed": 0}

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        seed = options["seed"]
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= int(seed) < 2**63:
            raise ValueError(f"seed must be an integer in [0, 2**63), got {seed!r}")

    def _allocate(self) -> None:
        drawn = random_scores([p.shape for p in self.params.values()], int(self.options["seed"]))
        self.stats = {"score": {n: s.to(p.device) for (n, p), s in zip(self.params.items(), drawn)}}

    def release(self) -> None:
        self.stats = {}

    def observe(self, t: int) -> None:
        if not self.stats:
            self._allocate()

    @classmethod
    def init_masks(cls, request: InitRequest) -> dict[str, Tensor]:
        drawn = random_scores([p.shape for p in request.params.values()], int(request.options.get("seed", 0)))
        return request.select([s.to(p.device) for s, p in zip(drawn, request.params.values())])
