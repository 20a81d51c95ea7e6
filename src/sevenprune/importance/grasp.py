"""GraSP (Wang, Zhang & Grosse, ICLR 2020): prune once, before fine-tuning, keeping the weights whose
removal would reduce gradient flow most (``S = -W * (H g)``, a Hessian-vector product, no Hessian).

Memory: the gradient ``g`` (one extra full-size copy) while ``H g`` accumulates in ``.grad``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..batches import Batches, LossFn, backward, compute_loss, model_devices, own_grads
from ..targets import prunable_module_types
from .init_request import InitRequest
from .registry import register

__all__ = ["Grasp", "GRASP_VARIANTS", "grasp_scores"]

#: GraSP's rankings: the paper's (remove the highest ``S``) and the magnitude form (remove the lowest ``|S|``)
GRASP_VARIANTS = ("paper", "abs")


def _math_attention() -> contextlib.AbstractContextManager[Any]:
    """Route ``scaled_dot_product_attention`` to its differentiable-twice math implementation."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # pragma: no cover - older torch
        return contextlib.nullcontext()
    return sdpa_kernel([SDPBackend.MATH])


def grasp_scores(
    model: nn.Module, params: Mapping[str, nn.Parameter], batches: Any, loss_fn: LossFn
) -> list[Tensor]:
    """GraSP scores as the paper defines them (Wang, Zhang & Grosse, "Picking Winning Tickets Before
    Training by Preserving Gradient Flow", ICLR 2020, Eq. 8): ``S(-W) = -W * (H g)``.

    ``g = sum_b dL_b/dW`` over every batch, then ``H g = sum_b d(g . dL_b/dW)/dW`` by double backward
    with ``g`` held fixed, as the authors' code does (a Hessian-vector product, no Hessian formed).
    As in their ``GraSP.py``, ``g`` and ``H g`` run over the weight of **every** Linear/Conv layer the
    loss depends on, the classifier head included (the cross terms through the head change ``H g`` of
    the layers below); only the prunable weights (``params``) are scored and returned.

    Sign convention: removing a set of weights is the perturbation ``delta = -W`` on them, which
    changes the gradient norm by ``Delta(g^T g) ~ 2 delta^T H g = 2 sum S``. A *large* ``S`` means
    removing the weight barely reduces (or even increases) gradient flow, so GraSP **removes the
    highest scores** and keeps the lowest (most negative): the weights whose removal would reduce
    gradient flow most. :func:`prune_at_init` therefore ranks by ``-S``. Returned here: ``S`` itself.

    Memory: ``g`` (one extra full-size copy) while ``H g`` accumulates in ``.grad``; the scores are then
    written into ``g``'s storage. While the second pass runs, one batch's gradient also exists
    transiently (autograd's buffer). Batches are iterated twice (for ``g``, then for ``H g``, on the same
    data): they are first gathered into a list. The weights' ``.grad`` are left as they were.

    The authors' code divides the logits by a temperature ``T = 200`` before the loss; with this
    interface that belongs in ``loss_fn`` (e.g. ``cross_entropy(model(x) / 200, y)``).

    For least squares on one sample ``H g = |x|^2 g``: here ``g = [[-1, -3]]``, ``|x|^2 = 10``, so
    ``S = -W * H g = [[20, -30]]`` and GraSP removes the first weight.

    >>> layer = nn.Linear(2, 1, bias=False)
    >>> layer.weight.data = torch.tensor([[2.0, -1.0]])
    >>> batch = (torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0]]))
    >>> loss = lambda m, b: 0.5 * ((m(b[0]) - b[1]) ** 2).sum()
    >>> grasp_scores(layer, {"weight": layer.weight}, [batch], loss)
    [tensor([[ 20., -30.]])]
    """
    flow = _gradient_flow_weights(model, params)
    devices = model_devices(params)
    data = list(Batches(batches, devices).once())
    with own_grads(flow):
        all_scores = _grasp(model, flow, data, loss_fn)
    ids = {id(p) for p in params.values()}
    by_id = {id(p): s for p, s in zip(flow, all_scores) if id(p) in ids}
    return [by_id[id(p)] for p in params.values()]


def _gradient_flow_weights(model: nn.Module, params: Mapping[str, nn.Parameter]) -> list[nn.Parameter]:
    """The weights whose gradient norm GraSP preserves: as in the authors' ``GraSP.py``, the weight of
    every Linear/Conv layer (the classifier head included), plus any other prunable weight, each once."""
    kinds = prunable_module_types()
    out: dict[int, nn.Parameter] = {}
    for module in model.modules():
        w = getattr(module, "weight", None)
        if isinstance(module, kinds) and isinstance(w, nn.Parameter) and w.requires_grad:
            out.setdefault(id(w), w)
    for p in params.values():
        out.setdefault(id(p), p)
    return list(out.values())


def _grasp(model: nn.Module, plist: list[nn.Parameter], data: list[Any], loss_fn: LossFn) -> list[Tensor]:
    for i, batch in enumerate(data):
        backward(model, loss_fn, batch, i, plist)
    g = [p.grad if p.grad is not None else torch.zeros_like(p) for p in plist]
    for p in plist:
        p.grad = None
    for i, batch in enumerate(data):
        # the fused attention kernels have no double backward; their "math" form does
        with torch.enable_grad(), _math_attention():
            loss = compute_loss(model, loss_fn, batch, i)
            grads = torch.autograd.grad(loss, plist, create_graph=True, allow_unused=True)
            z: Tensor | None = None
            for gf, gi in zip(grads, g):
                if gf is not None:
                    term = (gf * gi).sum()
                    z = term if z is None else z + term
            del grads
            if z is not None and z.requires_grad:
                try:
                    z.backward(inputs=plist)  # type: ignore[no-untyped-call]
                except RuntimeError as exc:
                    if "double backward" in str(exc) or "derivative for" in str(exc):
                        raise RuntimeError(
                            "GraSP needs second derivatives (a Hessian-vector product) and an operation "
                            "of this model does not support double backward (a fused kernel?); for Hugging "
                            f"Face models try attn_implementation='eager'. ({exc})"
                        ) from exc
                    raise
    scores = []
    for p, gi in zip(plist, g):
        hg = p.grad
        if hg is None:  # the loss is linear in this weight (or does not use it): H g = 0
            gi.zero_()
        else:
            gi.copy_(hg).mul_(p.detach()).neg_()  # S = -W * Hg, in g's storage
        p.grad = None
        scores.append(gi if gi.dtype == torch.float32 else gi.float())
    return scores


@register
class Grasp:
    """``method="grasp"`` of :func:`sevenprune.prune_at_init`: one shot; ``variant="paper"|"abs"``."""

    name = "grasp"
    phases = ("before",)
    one_shot = True
    needs_grad = True
    defaults: ClassVar[dict[str, Any]] = {"variant": "paper"}

    @classmethod
    def check_options(cls, options: dict[str, Any]) -> None:
        if options["variant"] not in GRASP_VARIANTS:
            raise ValueError(f"variant must be one of {list(GRASP_VARIANTS)}, got {options['variant']!r}")

    @classmethod
    def init_masks(cls, request: InitRequest) -> dict[str, Tensor]:
        assert request.loss_fn is not None
        scores = grasp_scores(request.model, request.params, request.batches, request.loss_fn)
        # "paper": GraSP removes the highest S, so rank by -S = W * Hg. "abs": |W * Hg|, a weight matters if
        # removing it changes gradient flow either way; at a pretrained optimum S sits symmetric around 0
        # (docs/results.md, "GraSP at a pretrained start"), so the sign rule keeps weights by sign alone.
        rank = Tensor.abs_ if request.options["variant"] == "abs" else Tensor.neg_
        for t in scores:
            rank(t)
        return request.select(scores)
