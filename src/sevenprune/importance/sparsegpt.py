"""SparseGPT (Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned in
One-Shot", ICML 2023, arXiv:2301.00774), as the authors' code computes it (IST-DASLab/sparsegpt,
``sparsegpt.py``, class ``SparseGPT``: ``add_batch`` and ``fasterprune``).

Per layer, with ``W`` (rows, columns) and the calibration inputs ``X`` (columns, tokens):

1. ``H = (2 / nsamples) X X^T``, as a running average over samples (``H *= n/(n+b); n += b;
   x = sqrt(2/n) x; H += x x^T``); ``nsamples`` counts samples (sequences), not tokens.
2. Dead inputs: where ``H_ii == 0`` set ``H_ii = 1`` and ``W[:, i] = 0``.
3. Dampening: ``H += percdamp * mean(diag(H)) * I`` (``percdamp = 0.01``).
4. ``Hinv = cholesky(H^-1, upper=True)``: the inverse by Cholesky (``cholesky_inverse``), then its
   upper Cholesky factor, whose rows hold the OBS updates of the columns still to come.
5. Columns in blocks of ``blocksize`` (128). At the start of a block (unstructured) the mask is chosen
   among the block's entries by ``w^2 / diag(Hinv)^2``, lowest first; for ``n:m`` it is chosen at every
   ``m``-th column among the next ``m`` columns of each row (``m - n`` lowest), from the weights as
   updated so far. Column by column: ``q = w`` with the pruned entries zeroed, ``err = (w - q) / d``
   (``d = Hinv_ii``), the rest of the block ``W[:, i:] -= err Hinv[i, i:]`` (the OBS correction); after
   the block, the lazy batch update ``W[:, i2:] -= Err Hinv[i1:i2, i2:]``.

The updated weights are written back into the layer (the method's reconstruction depends on them).

One deliberate difference: the authors prune ``tmp <= sort(tmp)[int(numel * s)]`` in a block, that is
``int(numel * s) + 1`` entries (more on ties); we prune exactly the ``int(numel * s)`` lowest (stable
sort), so the pruned count is the requested fraction, as everywhere else in the library. That is one
entry in a block of ``rows * 128`` (1 in 73 728 for a 576-row matrix).
"""

from __future__ import annotations

import contextlib
import math
import numbers
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .calibration import CalibrationMethod, nm_of
from .registry import register

__all__ = ["SparseGPTPruner"]


@contextlib.contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """On the CPU, run the column loop on one thread: it is thousands of small operations, for which the
    threads' synchronisation costs more than they save (a 576 x 576 layer from 4 x 256 tokens took 0.75 s
    on one thread and 20 s on two, on this project's shared 2-core machine)."""
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@register
class SparseGPTPruner(CalibrationMethod):
    """SparseGPT for one layer: ``add_batch`` accumulates ``H``; ``prune`` selects the mask block by
    block, updates the remaining weights (OBS) and writes them into the layer.

    >>> import torch
    >>> torch.manual_seed(0) and None
    >>> layer = torch.nn.Linear(8, 4, bias=False)
    >>> s = SparseGPTPruner(layer)
    >>> s.add_batch(torch.randn(2, 16, 8))
    >>> keep = s.prune(0.5)
    >>> int(keep.sum()), bool((layer.weight[~keep] == 0).all())
    (16, True)
    """

    name: ClassVar[str] = "sparsegpt"
    defaults: ClassVar[dict[str, Any]] = {"blocksize": 128, "percdamp": 0.01}

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        bs = options["blocksize"]
        if isinstance(bs, bool) or not isinstance(bs, numbers.Integral) or bs < 1:
            raise ValueError(f"sparsegpt option blocksize must be an integer >= 1, got {bs!r}")
        pd = options["percdamp"]
        if isinstance(pd, bool) or not isinstance(pd, numbers.Real) or not math.isfinite(pd) or pd < 0:
            raise ValueError(f"sparsegpt option percdamp must be a finite number >= 0 (a fraction of the "
                             f"mean Hessian diagonal), got {pd!r}")

    def __init__(self, layer: nn.Module, *, dtype: torch.dtype = torch.float32, **options: Any) -> None:
        super().__init__(layer, dtype=dtype, **options)
        self.H = torch.zeros(self.columns, self.columns, dtype=dtype, device=self.weight.device)

    def add_batch(self, inp: Tensor) -> None:
        x, samples = self.input_rows(inp)
        self.H *= self.running_scale(samples)
        x = math.sqrt(2 / self.nsamples) * x
        self.H += x.t() @ x

    def inverse_hessian_factor(self, W: Tensor) -> Tensor:
        """Steps 2-4: fix dead inputs (zeroing ``W``'s column in place), dampen, and return the upper
        Cholesky factor of ``H^-1``. Consumes ``self.H``."""
        H = self.H
        self.H = torch.zeros(0)
        dead = torch.diag(H) == 0
        H[dead, dead] = 1
        W[:, dead] = 0
        damp = self.options["percdamp"] * torch.mean(torch.diag(H))
        H.diagonal().add_(damp)
        try:
            L = torch.linalg.cholesky(H)
            Hinv = torch.cholesky_inverse(L)
            U: Tensor = torch.linalg.cholesky(Hinv, upper=True)
            return U
        except RuntimeError as exc:  # torch.linalg.LinAlgError subclasses RuntimeError
            raise RuntimeError(f"sparsegpt: the dampened Hessian of a {self.rows}x{self.columns} layer is "
                               f"not positive definite (percdamp={self.options['percdamp']}); raise percdamp "
                               "or give more calibration data") from exc

    @torch.no_grad()
    def prune(self, sparsity: float, pattern: str | None = None) -> Tensor:
        nm = nm_of(pattern)
        blocksize = int(self.options["blocksize"])
        self.check_nm(nm, "this layer")
        if nm is not None and blocksize % nm[1]:
            raise ValueError(f"sparsegpt option blocksize={blocksize} must be a multiple of m={nm[1]} for "
                             f"pattern '{nm[0]}:{nm[1]}'")
        if self.nsamples == 0:
            raise ValueError("sparsegpt: no calibration input reached this layer (add_batch never called)")
        W = self.matrix().to(self.dtype).clone(memory_format=torch.contiguous_format)  # Conv1D: a transposed view
        with _one_cpu_thread(W.device):
            pruned = self._fasterprune(W, sparsity, nm, blocksize)
        self.write(W)
        return self.keep_mask(pruned)

    def _fasterprune(self, W: Tensor, sparsity: float, nm: tuple[int, int] | None, blocksize: int) -> Tensor:
        """Steps 2-5 on ``W`` (rows, columns) in place; returns the pruned-mask."""
        Hinv = self.inverse_hessian_factor(W)
        pruned = torch.zeros(W.shape, dtype=torch.bool, device=W.device)

        for i1 in range(0, self.columns, blocksize):
            i2 = min(i1 + blocksize, self.columns)
            count = i2 - i1
            W1 = W[:, i1:i2].clone()
            Err1 = torch.zeros_like(W1)
            Hinv1 = Hinv[i1:i2, i1:i2]
            d1 = torch.diag(Hinv1)
            mask1 = torch.zeros(W1.shape, dtype=torch.bool, device=W1.device)
            if nm is None:
                tmp = W1 ** 2 / d1.reshape(1, -1) ** 2
                k = self.count(tmp.numel(), sparsity)
                mask1.view(-1)[torch.sort(tmp.flatten(), stable=True).indices[:k]] = True

            for i in range(count):
                if nm is not None and i % nm[1] == 0:
                    m = nm[1]
                    tmp = W1[:, i:i + m] ** 2 / d1[i:i + m].reshape(1, -1) ** 2
                    mask1[:, i:i + m] = self.lowest_per_group(tmp, nm[0], m)
                # their q = w with the pruned entries zeroed, err = (w - q) / d: w - q is exactly w where
                # pruned and exactly 0 elsewhere, so this is the same number in fewer operations
                err1 = torch.where(mask1[:, i], W1[:, i], 0.0) / Hinv1[i, i]
                W1[:, i:].addr_(err1, Hinv1[i, i:], alpha=-1)  # W1[:, i:] -= err1 Hinv1[i, i:]
                Err1[:, i] = err1

            # their Q1: column i stored as q before the later columns moved; the later columns never touch
            # column i again and a kept entry had err = 0, so Q1 is W1 with the pruned entries zeroed
            W[:, i1:i2] = W1.masked_fill(mask1, 0.0)
            pruned[:, i1:i2] = mask1
            W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
        return pruned

    def free(self) -> None:
        self.H = torch.zeros(0)
