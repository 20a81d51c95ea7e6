"""What a one-shot, calibration-based method (Wanda, SparseGPT) implements for one layer.

These methods do not run inside :class:`sevenprune.Pruner`'s training loop: they prune each layer
once from statistics of its inputs on a few calibration batches (:func:`sevenprune.prune_oneshot`).
The driver (``sevenprune.oneshot``) builds one object per prunable layer of a block, calls
``add_batch(inp)`` from a forward hook for every calibration batch, then ``prune(sparsity, pattern)``,
which returns the keep-mask and leaves the pruned entries of the layer's weight at exactly zero (and,
for SparseGPT, the remaining entries updated), then ``free()``.

The weight is seen as a matrix ``W`` of shape ``(rows, columns)`` = (outputs, inputs), the layout of
``nn.Linear`` and of the authors' code; a GPT-2 ``Conv1D`` weight (stored as (in, out)) is transposed
as their ``sparsegpt.py`` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

__all__ = ["CalibrationMethod", "nm_of"]


def nm_of(pattern: str | None) -> tuple[int, int] | None:
    """``(n, m)`` for an ``"n:m"`` pattern (keep ``n`` of every ``m``), ``None`` for unstructured."""
    if pattern is None or pattern == "unstructured":
        return None
    from ..patterns import parse_pattern

    parsed = parse_pattern(pattern)
    if parsed[0] != "nm":
        raise ValueError(f"one-shot pruning supports 'unstructured' and 'n:m' patterns, got {pattern!r}")
    return int(parsed[1]), int(parsed[2])


def _is_conv1d(layer: nn.Module) -> bool:
    return type(layer).__name__ == "Conv1D"


class CalibrationMethod:
    """Base of the per-layer objects of the one-shot methods.

    Subclasses set ``name`` and ``defaults`` and implement ``add_batch`` and ``prune``.
    """

    name: ClassVar[str] = ""
    #: when the method acts: once, from calibration data, before any fine-tuning
    phases: ClassVar[tuple[str, ...]] = ("calibration",)
    #: options and their defaults; anything else is an error
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, layer: nn.Module, *, dtype: torch.dtype = torch.float32, **options: Any) -> None:
        weight = getattr(layer, "weight", None)
        if not isinstance(weight, Tensor) or not (isinstance(layer, nn.Linear) or _is_conv1d(layer)):
            raise TypeError(f"{self.name} prunes nn.Linear (and GPT-2 Conv1D) layers, got {type(layer).__name__}")
        self.layer = layer
        self.weight: Tensor = weight
        self.options = self.checked_options(options)
        #: the dtype the statistics and the pruning arithmetic use (float32, as the authors' code)
        self.dtype = dtype
        self.transposed = _is_conv1d(layer)
        self.rows, self.columns = self.matrix().shape
        self.nsamples = 0

    # -- options -------------------------------------------------------------------------------------
    @classmethod
    def checked_options(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` completed with :attr:`defaults` and checked: an unknown name is a ``TypeError``,
        a bad value a ``ValueError`` (:meth:`check_options`)."""
        unknown = sorted(set(options) - set(cls.defaults))
        if unknown:
            raise TypeError(f"method {cls.name!r} got unknown option(s) {unknown}; "
                            f"its options are {sorted(cls.defaults) or 'none'}")
        full = {**cls.defaults, **options}
        cls.check_options(full)
        return full

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        """Raise ``ValueError`` naming a bad option value."""

    # -- the weight as a matrix ------------------------------------------------------------------------
    def matrix(self) -> Tensor:
        """The layer's weight as ``(rows = outputs, columns = inputs)`` (a view, no copy)."""
        w = self.weight.data
        return w.t() if self.transposed else w

    def write(self, matrix: Tensor) -> None:
        """Store ``matrix`` (rows, columns) into the layer's weight, in the weight's dtype."""
        w = self.weight.data
        w.copy_((matrix.t() if self.transposed else matrix).to(w.dtype))

    def keep_mask(self, pruned: Tensor) -> Tensor:
        """The keep-mask in the weight's own layout from a (rows, columns) pruned-mask."""
        keep = ~pruned
        return (keep.t() if self.transposed else keep).contiguous().to(self.weight.device)

    def input_rows(self, inp: Tensor) -> tuple[Tensor, int]:
        """One batch of layer inputs as ``(tokens, columns)`` in :attr:`dtype`, and the number of
        samples it counts for: the leading (batch) dimension of a 3-D input, 1 for a 2-D one, as the
        authors' ``add_batch`` (``tmp = inp.shape[0]`` after ``unsqueeze(0)`` of a 2-D input)."""
        if inp.shape[-1] != self.columns:
            raise ValueError(f"layer input has {inp.shape[-1]} features, the weight has {self.columns} columns")
        samples = 1 if inp.dim() <= 2 else int(inp.shape[0])
        return inp.reshape(-1, self.columns).to(self.dtype), samples

    def running_scale(self, samples: int) -> float:
        """Advance the sample count; return the factor the running mean so far is rescaled by
        (``nsamples / (nsamples + tmp)`` in the authors' ``add_batch``)."""
        scale = self.nsamples / (self.nsamples + samples)
        self.nsamples += samples
        return scale

    # -- to implement ----------------------------------------------------------------------------------
    def add_batch(self, inp: Tensor) -> None:
        """Accumulate the statistics of one batch of the layer's inputs (``(..., columns)``)."""
        raise NotImplementedError

    def prune(self, sparsity: float, pattern: str | None = None) -> Tensor:
        """Prune the layer (pruned entries set to 0) and return its keep-mask (weight-shaped, bool)."""
        raise NotImplementedError

    def free(self) -> None:
        """Drop the statistics."""

    # -- shared selection helpers ------------------------------------------------------------------------
    @staticmethod
    def lowest_per_group(metric: Tensor, n: int, m: int) -> Tensor:
        """Pruned-mask of ``metric`` (rows, k*m): in every group of ``m`` consecutive columns of a row,
        the ``m - n`` lowest (stable sort: ties go to the lower column index)."""
        rows, cols = metric.shape
        groups = metric.reshape(rows, cols // m, m)
        order = torch.sort(groups, dim=2, stable=True).indices[..., : m - n]
        pruned = torch.zeros_like(groups, dtype=torch.bool)
        pruned.scatter_(2, order, True)
        return pruned.reshape(rows, cols)

    def check_nm(self, nm: tuple[int, int] | None, what: str) -> None:
        if nm is not None and self.columns % nm[1]:
            raise ValueError(f"pattern '{nm[0]}:{nm[1]}': {what} has {self.columns} input columns, not a "
                             f"multiple of {nm[1]}; exclude it (exclude=...) or use another pattern")

    @staticmethod
    def count(n: int, sparsity: float) -> int:
        """Entries pruned among ``n``: ``int(n * sparsity)``, the authors' expression (floor)."""
        return int(n * sparsity) if math.isfinite(sparsity) else 0
