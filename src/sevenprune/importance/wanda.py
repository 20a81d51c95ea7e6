"""Wanda: pruning by weights and activations (Sun, Liu, Bair & Kolter, "A Simple and Effective Pruning
Approach for Large Language Models", arXiv:2306.11695, 2023), as the authors' code computes it
(locuslab/wanda, ``lib/layerwrapper.py`` ``WrappedGPT.add_batch`` and ``lib/prune.py`` ``prune_wanda``).

Per layer, from the calibration inputs ``x`` (every token of every sample):

    scaler_row_j = (1 / nsamples) * sum_tokens x_j^2      (a running mean over samples, updated as
                                                            ``scaler *= n/(n+b); n += b; scaler += |X_j|^2/n``)
    S_ij = |W_ij| * sqrt(scaler_row_j)                     (= |W_ij| * ||X_j||_2 / sqrt(nsamples))

``nsamples`` counts samples (sequences, the batch dimension), not tokens; the factor is the same for
every entry of a layer, so the ranking is that of ``|W_ij| * ||X_j||_2``.

* unstructured: per output row, the ``int(columns * s)`` lowest scores are pruned (``torch.sort(...,
  dim=-1, stable=True)`` then the first indices, ``prune.py``), so every row keeps the same fraction;
* ``n:m``: in every group of ``m`` consecutive input columns of a row, the ``m - n`` lowest are pruned
  (their ``topk(tmp, prune_n, largest=False)`` with ``prune_n = m - n`` for 2:4 and 4:8; ties here go
  to the lower index, a stable sort).

No weight is updated; pruned entries are set to zero.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .calibration import CalibrationMethod, nm_of
from .registry import register

__all__ = ["WandaPruner"]


@register
class WandaPruner(CalibrationMethod):
    """Wanda for one layer: ``add_batch`` accumulates ``scaler_row``, ``prune`` selects and zeroes.

    >>> import torch
    >>> layer = torch.nn.Linear(4, 2, bias=False)
    >>> layer.weight.data = torch.tensor([[1.0, 1.0, 1.0, 1.0], [4.0, 3.0, 2.0, 1.0]])
    >>> w = WandaPruner(layer)
    >>> w.add_batch(torch.tensor([[[1.0, 2.0, 3.0, 4.0]]]))   # one sample, one token
    >>> w.prune(0.5)        # row 0 scores 1,2,3,4; row 1 scores 4,6,6,4 (ties: lower index first)
    tensor([[False, False,  True,  True],
            [False,  True,  True, False]])
    """

    name: ClassVar[str] = "wanda"
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, layer: nn.Module, *, dtype: torch.dtype = torch.float32, **options: Any) -> None:
        super().__init__(layer, dtype=dtype, **options)
        self.scaler_row = torch.zeros(self.columns, dtype=dtype, device=self.weight.device)

    def add_batch(self, inp: Tensor) -> None:
        x, samples = self.input_rows(inp)
        self.scaler_row *= self.running_scale(samples)
        self.scaler_row += torch.linalg.vector_norm(x, ord=2, dim=0) ** 2 / self.nsamples

    def scores(self) -> Tensor:
        """``|W| * sqrt(scaler_row)`` as (rows, columns)."""
        return self.matrix().abs().to(self.dtype) * torch.sqrt(self.scaler_row).reshape(1, -1)

    @torch.no_grad()
    def prune(self, sparsity: float, pattern: str | None = None) -> Tensor:
        nm = nm_of(pattern)
        self.check_nm(nm, "this layer")
        metric = self.scores()
        if nm is not None:
            pruned = self.lowest_per_group(metric, *nm)
        else:
            order = torch.sort(metric, dim=-1, stable=True).indices[:, : self.count(self.columns, sparsity)]
            pruned = torch.zeros_like(metric, dtype=torch.bool)
            pruned.scatter_(1, order, True)
        self.matrix()[pruned] = 0  # a view of the weight: zeroes the pruned entries in place
        return self.keep_mask(pruned)

    def free(self) -> None:
        self.scaler_row = torch.zeros(0)
