"""The batches and losses of the methods that score from data before fine-tuning (``prune_at_init``'s
protocol): checks of the user's batches and loss, their iteration (once, or cycling), gradients
accumulated into the prunable weights' ``.grad`` with the caller's gradients given back, and the
selection of keep-masks from scores (global or per matrix).

``loss_fn(model, batch)`` returns the scalar loss of one batch; ``batches`` is any iterable of batches
(a list, a DataLoader) already on the model's device. Every check names the batch and what to do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .threshold import smallest_k_keep_masks

__all__ = ["LossFn", "Batches", "backward", "check_batch_device", "check_batches", "check_loss_fn", "compute_loss",
           "model_devices", "own_grads", "select_keep_masks"]

LossFn = Callable[[nn.Module, Any], Tensor]


def model_devices(params: Mapping[str, nn.Parameter]) -> set[torch.device]:
    return {p.device for p in params.values()}


def _moving_example(batch: Any, device: str) -> str:
    """How to move batches shaped like ``batch`` (a tensor, a dict, a tuple) to ``device``."""
    if isinstance(batch, Tensor):
        return f"[b.to('{device}') for b in batches]"
    if isinstance(batch, Mapping):
        return f"[{{k: v.to('{device}') for k, v in b.items()}} for b in loader]"
    return f"[tuple(t.to('{device}') for t in b) for b in loader]"


def check_batch_device(batch: Any, devices: set[torch.device], index: int, what: str = "batch") -> None:
    """Raise if a tensor of ``batch`` is not on a device of the model's weights (nested containers); the
    message calls the batch ``f"{what} {index}"`` and the tensor by its path inside it, and shows how to
    move batches of the batch's shape."""
    for path, tensor in _tensors(batch, "batch"):
        if tensor.dim() > 0 and tensor.device not in devices:
            where = ", ".join(sorted(str(d) for d in devices))
            raise ValueError(
                f"{what} {index}: {path} is on {tensor.device} but the model's prunable weights are on "
                f"{where}; move the batches to the model's device before passing them (e.g. "
                f"{_moving_example(batch, where.split(', ')[0])})"
            )


def _tensors(batch: Any, path: str) -> Iterator[tuple[str, Tensor]]:
    """The tensors of a nested batch (dicts, lists, tuples), each with its path (``batch['ids'][0]``)."""
    if isinstance(batch, Tensor):
        yield path, batch
    elif isinstance(batch, Mapping):
        for key, value in batch.items():
            yield from _tensors(value, f"{path}[{key!r}]")
    elif isinstance(batch, (list, tuple)):
        for i, value in enumerate(batch):
            yield from _tensors(value, f"{path}[{i}]")


def check_batches(batches: Any) -> Iterable[Any]:
    if isinstance(batches, (Tensor, Mapping, str, bytes)) or not isinstance(batches, Iterable):
        raise TypeError(
            "batches must be an iterable of batches (a list of batches, a DataLoader), got "
            f"{type(batches).__name__}; to use a single batch pass [batch]"
        )
    return batches


def compute_loss(model: nn.Module, loss_fn: LossFn, batch: Any, index: int) -> Tensor:
    loss = loss_fn(model, batch)
    if not isinstance(loss, Tensor):
        raise TypeError(
            f"loss_fn(model, batch) must return the scalar loss tensor of the batch; batch {index} gave "
            f"{type(loss).__name__} (with Hugging Face models return model(**batch).loss)"
        )
    if loss.dim() != 0:
        raise ValueError(
            f"loss_fn(model, batch) must return a scalar (0-dim) tensor; batch {index} gave shape "
            f"{tuple(loss.shape)} (reduce it, e.g. loss.mean())"
        )
    if not loss.is_floating_point():
        raise TypeError(f"loss_fn returned a {loss.dtype} tensor on batch {index}; expected a float loss")
    if not loss.requires_grad:
        raise ValueError(
            f"the loss of batch {index} does not depend on any trainable parameter (requires_grad is "
            "False): does loss_fn detach it, call .item(), or run under torch.no_grad()?"
        )
    if not bool(torch.isfinite(loss.detach())):
        raise ValueError(f"the loss of batch {index} is {float(loss.detach())}; pruning scores need a finite loss")
    return loss


class Batches:
    """Iterates the user's batches with the checks, once (one shot) or cycling (iterative methods)."""

    def __init__(self, batches: Any, devices: set[torch.device]) -> None:
        self.batches = check_batches(batches)
        self.devices = devices

    def _checked(self, batch: Any, index: int) -> Any:
        check_batch_device(batch, self.devices, index)
        return batch

    def once(self) -> Iterator[Any]:
        n = 0
        for n, batch in enumerate(self.batches, start=1):
            yield self._checked(batch, n - 1)
        if n == 0:
            raise ValueError("batches is empty: pruning at initialisation needs at least one batch")

    def cycle(self, steps: int) -> Iterator[Any]:
        given = 0
        passes = 0
        while given < steps:
            it = iter(self.batches)
            in_pass = 0
            for batch in it:
                yield self._checked(batch, given)
                given += 1
                in_pass += 1
                if given == steps:
                    return
            if in_pass == 0:
                if passes == 0:
                    raise ValueError("batches is empty: pruning at initialisation needs at least one batch")
                raise ValueError(
                    f"batches ran out after {given} of steps={steps} batches and cannot be iterated again "
                    "(a generator or iterator?); pass a list or a DataLoader, or fewer steps"
                )
            passes += 1


def check_loss_fn(loss_fn: Any) -> LossFn:
    if not callable(loss_fn):
        raise TypeError(
            f"loss_fn must be a callable loss_fn(model, batch) -> scalar loss tensor, got {loss_fn!r}"
        )
    return loss_fn  # type: ignore[no-any-return]


@contextlib.contextmanager
def own_grads(plist: Sequence[nn.Parameter]) -> Iterator[None]:
    """Start with no ``.grad`` on the prunable weights and give the caller's gradients back on exit."""
    saved = [p.grad for p in plist]
    for p in plist:
        p.grad = None
    try:
        yield
    finally:
        for p, g in zip(plist, saved):
            p.grad = g


def backward(model: nn.Module, loss_fn: LossFn, batch: Any, index: int, plist: list[nn.Parameter]) -> None:
    """Accumulate dL/dW of one batch into the prunable weights' ``.grad`` (and nowhere else)."""
    with torch.enable_grad():
        loss = compute_loss(model, loss_fn, batch, index)
        loss.backward(inputs=plist)  # type: ignore[no-untyped-call]


def select_keep_masks(scores: Sequence[Tensor], scope: str, count_of: Callable[[int], int], seed: int = 0
                      ) -> list[Tensor]:
    """Keep-masks pruning ``count_of(n)`` of the ``n`` lowest scores: over all tensors together
    (``scope="global"``) or in each tensor separately (``"local"``)."""
    if scope == "local":
        return [smallest_k_keep_masks([s], count_of(s.numel()), seed=seed)[0] for s in scores]
    return smallest_k_keep_masks(scores, count_of(sum(s.numel() for s in scores)), seed=seed)
