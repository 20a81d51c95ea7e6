"""Pruning before fine-tuning: SNIP, GraSP, FORCE, SEVEN_pre (frozen), magnitude and random.

``prune_at_init(model, method, sparsity, batches, loss_fn, steps=...)`` scores the prunable weights at
the starting weights from a few batches, fixes the masks, and returns a finished :class:`Pruner` that
keeps them applied during the fine-tuning that follows (attach your optimizer to it, call
``pruner.step()`` after each ``optimizer.step()``)::

    import sevenprune as sp
    pruner = sp.prune_at_init(model, "snip", 0.8, batches=loader, loss_fn=lambda m, b: m(**b).loss)
    pruner.attach(optimizer)

Protocol, the same for every method:

* ``loss_fn(model, batch)`` returns the scalar loss of one batch; ``batches`` is any iterable of batches
  (a list, a DataLoader). Batches must already be on the model's device.
* One-shot methods (SNIP, GraSP) use every batch given, once; iterative ones (FORCE, SEVEN_pre) run
  ``steps`` iterations, each on the next batch, cycling through ``batches`` (so ``batches`` must be
  re-iterable, e.g. a list or a DataLoader, when ``steps`` exceeds its length). Magnitude and random
  use no data (``batches`` and ``loss_fn`` may be ``None``).
* No optimizer step is taken. The weights, the model's buffers and the ``.grad`` of every parameter
  are left exactly as they were, except that pruned weights are exactly zero; on an error, the
  weights are restored before the error propagates.
* Gradients are computed with the model in whatever mode it is in (``model.eval()`` makes them
  deterministic by disabling dropout) and under ``torch.enable_grad()``.
* Selection is global over all prunable weights, exactly ``round(s * N)`` entries pruned, ties broken
  by index (:func:`sevenprune.threshold.smallest_k_keep_masks`).

Memory: SNIP holds the accumulated gradient (in ``.grad``) and nothing else full-size; GraSP holds the
gradient ``g`` (one extra full-size copy) while the Hessian-gradient product accumulates in ``.grad``
(the buffer every backward pass writes), then computes the scores in ``g``'s storage; FORCE holds the
starting weights (one extra full-size copy) and scores in ``.grad``; SEVEN_pre holds the starting
weights plus SEVEN's three statistics. Autograd's own transient buffers are not counted.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from . import schedules
from ._validate import check_int, check_scope, check_sparsity
from ._validate import state_dtype as check_state_dtype
from .importance.base import get_method, methods
from .importance.random_scores import random_scores
from .pruner import Pruner
from .targets import find_prunable, pattern_list, prunable_module_types
from .threshold import smallest_k_keep_masks

__all__ = [
    "prune_at_init",
    "init_methods",
    "init_method",
    "register_init",
    "InitMethod",
    "InitRequest",
    "INIT_METHODS",
    "snip_scores",
    "grasp_scores",
    "force_masks",
]

LossFn = Callable[[nn.Module, Any], Tensor]


# -- input checks --------------------------------------------------------------------------------
def _model_devices(params: Mapping[str, nn.Parameter]) -> set[torch.device]:
    return {p.device for p in params.values()}


def _check_batch_device(batch: Any, devices: set[torch.device], index: int, path: str = "batch") -> None:
    """Raise if a tensor of ``batch`` is not on a device of the model's weights (nested containers)."""
    if isinstance(batch, Tensor):
        if batch.dim() > 0 and batch.device not in devices:
            where = ", ".join(sorted(str(d) for d in devices))
            raise ValueError(
                f"batch {index}: {path} is on {batch.device} but the model's prunable weights are on "
                f"{where}; move the batches to the model's device before passing them (e.g. "
                f"[{{k: v.to('{where.split(', ')[0]}') for k, v in b.items()}} for b in loader])"
            )
    elif isinstance(batch, Mapping):
        for key, value in batch.items():
            _check_batch_device(value, devices, index, f"{path}[{key!r}]")
    elif isinstance(batch, (list, tuple)):
        for i, value in enumerate(batch):
            _check_batch_device(value, devices, index, f"{path}[{i}]")


def _check_batches(batches: Any) -> Iterable[Any]:
    if isinstance(batches, (Tensor, Mapping, str, bytes)) or not isinstance(batches, Iterable):
        raise TypeError(
            "batches must be an iterable of batches (a list of batches, a DataLoader), got "
            f"{type(batches).__name__}; to use a single batch pass [batch]"
        )
    return batches


def _compute_loss(model: nn.Module, loss_fn: LossFn, batch: Any, index: int) -> Tensor:
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


class _Batches:
    """Iterates the user's batches with the checks, once (one shot) or cycling (iterative methods)."""

    def __init__(self, batches: Any, devices: set[torch.device]) -> None:
        self.batches = _check_batches(batches)
        self.devices = devices

    def _checked(self, batch: Any, index: int) -> Any:
        _check_batch_device(batch, self.devices, index)
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


def _check_loss_fn(loss_fn: Any) -> LossFn:
    if not callable(loss_fn):
        raise TypeError(
            f"loss_fn must be a callable loss_fn(model, batch) -> scalar loss tensor, got {loss_fn!r}"
        )
    return loss_fn  # type: ignore[no-any-return]


# -- scoring functions ---------------------------------------------------------------------------
@contextlib.contextmanager
def _own_grads(plist: Sequence[nn.Parameter]) -> Iterator[None]:
    """Start with no ``.grad`` on the prunable weights and give the caller's gradients back on exit."""
    saved = [p.grad for p in plist]
    for p in plist:
        p.grad = None
    try:
        yield
    finally:
        for p, g in zip(plist, saved):
            p.grad = g


def _backward(model: nn.Module, loss_fn: LossFn, batch: Any, index: int, plist: list[nn.Parameter]) -> None:
    """Accumulate dL/dW of one batch into the prunable weights' ``.grad`` (and nowhere else)."""
    with torch.enable_grad():
        loss = _compute_loss(model, loss_fn, batch, index)
        loss.backward(inputs=plist)  # type: ignore[no-untyped-call]


def snip_scores(
    model: nn.Module, params: Mapping[str, nn.Parameter], batches: Any, loss_fn: LossFn
) -> list[Tensor]:
    """SNIP connection sensitivity (Lee, Ajanthan & Torr, "SNIP: Single-shot Network Pruning based on
    Connection Sensitivity", ICLR 2019, Eq. 6): ``s = |W * dL/dW|`` with the gradient summed over every
    batch given (the paper's normalisation by the sum of all ``s`` does not change the ranking).
    Higher = kept. The scores are computed in the gradient buffers (no other full-size copy); the
    weights' ``.grad`` are left as they were.

    >>> layer = nn.Linear(2, 1, bias=False)
    >>> layer.weight.data = torch.tensor([[2.0, -1.0]])
    >>> batch = (torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0]]))
    >>> loss = lambda m, b: 0.5 * ((m(b[0]) - b[1]) ** 2).sum()   # dL/dW = (W x - y) x^T = [[-1, -3]]
    >>> snip_scores(layer, {"weight": layer.weight}, [batch], loss)
    [tensor([[2., 3.]])]
    """
    plist = list(params.values())
    stream = _Batches(batches, _model_devices(params))
    out = []
    with _own_grads(plist):
        for i, batch in enumerate(stream.once()):
            _backward(model, loss_fn, batch, i, plist)
        for p in plist:
            grad = p.grad if p.grad is not None else torch.zeros_like(p)  # unused: no sensitivity
            score = grad.mul_(p.detach()).abs_()  # in the gradient buffer
            out.append(score if score.dtype == torch.float32 else score.float())
    return out


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
    devices = _model_devices(params)
    data = list(_Batches(batches, devices).once())
    with _own_grads(flow):
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
        _backward(model, loss_fn, batch, i, plist)
    g = [p.grad if p.grad is not None else torch.zeros_like(p) for p in plist]
    for p in plist:
        p.grad = None
    for i, batch in enumerate(data):
        # the fused attention kernels have no double backward; their "math" form does
        with torch.enable_grad(), _math_attention():
            loss = _compute_loss(model, loss_fn, batch, i)
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


def _select(scores: Sequence[Tensor], scope: str, count_of: Callable[[int], int], seed: int = 0) -> list[Tensor]:
    """Keep-masks pruning ``count_of(n)`` of the ``n`` lowest scores: over all tensors together
    (``scope="global"``) or in each tensor separately (``"local"``)."""
    if scope == "local":
        return [smallest_k_keep_masks([s], count_of(s.numel()), seed=seed)[0] for s in scores]
    return smallest_k_keep_masks(scores, count_of(sum(s.numel() for s in scores)), seed=seed)


def force_masks(
    model: nn.Module,
    params: Mapping[str, nn.Parameter],
    batches: Any,
    loss_fn: LossFn,
    sparsity: float,
    steps: int,
    variant: str = "force",
    scope: str = "global",
) -> list[Tensor]:
    """FORCE / Iterative SNIP (de Jorge, Sanyal, Behl, Torr, Rogez & Dokania, "Progressive
    Skeletonization: Trimming more fat from a network at initialization", ICLR 2021, Sec. 4, Alg. 1).

    For iteration ``t = 1 .. T`` (``T = steps``), on the next batch:

    1. the network is the starting weights masked by the current mask, ``W0 * c_t``;
    2. saliency ``|W0 * dL(W0 * c_t)/d(W0 * c_t)|`` (= ``|dL/dc|``, SNIP's sensitivity of the *pruned*
       network) for every weight;
    3. keep the ``round(kappa_t * N)`` highest, ``kappa_t = (1 - s) ** (t / T)`` (the exponential
       schedule, :func:`sevenprune.schedules.exponential_keep`); the last iteration prunes exactly
       ``round(s * N)``. With ``scope="local"`` the same counts hold in every matrix separately.

    ``variant="force"`` ranks every weight, so a weight pruned at an earlier iteration can come back
    (FORCE); ``"iter_snip"`` ranks only the weights still kept (Iterative SNIP, monotone). The
    weights are modified during the iterations and restored (``W0``, the one extra full-size copy;
    the scores are computed in the gradient buffers) before returning, also on error. The weights'
    ``.grad`` are left as they were.
    """
    plist = list(params.values())
    total = sum(p.numel() for p in plist)
    stream = _Batches(batches, _model_devices(params))
    w0 = [p.detach().clone() for p in plist]
    keep = [torch.ones(p.shape, dtype=torch.bool, device=p.device) for p in plist]
    with _own_grads(plist):
        _force_iterations(model, plist, w0, keep, stream, loss_fn, sparsity, steps, variant, total, scope)
    return keep


def _force_iterations(
    model: nn.Module,
    plist: list[nn.Parameter],
    w0: list[Tensor],
    keep: list[Tensor],
    stream: _Batches,
    loss_fn: LossFn,
    sparsity: float,
    steps: int,
    variant: str,
    total: int,
    scope: str = "global",
) -> None:
    """The loop of :func:`force_masks`; writes the final masks into ``keep``."""
    try:
        for t, batch in enumerate(stream.cycle(steps), start=1):
            _backward(model, loss_fn, batch, t - 1, plist)
            scores = []
            for p, w, mask in zip(plist, w0, keep):
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                s = p.grad.mul_(w).abs_()  # in the gradient buffer
                s = s if s.dtype == torch.float32 else s.float()
                if variant == "iter_snip":
                    s.masked_fill_(~mask, -math.inf)
                scores.append(s)
            kept = schedules.exponential_keep(t, steps, 1.0 - sparsity)

            def count(n: int) -> int:
                if t == steps:
                    return schedules.pruned_count(sparsity, n)
                return n - min(n, max(0, round(kept * n)))

            keep[:] = _select(scores, scope, count, seed=t)
            del scores
            with torch.no_grad():
                for p, w, mask in zip(plist, w0, keep):
                    p.grad = None
                    p.copy_(w).mul_(mask)
    finally:
        with torch.no_grad():
            for p, w in zip(plist, w0):
                p.grad = None
                p.copy_(w)


def _seven_iterations(
    model: nn.Module,
    plist: list[nn.Parameter],
    w0: list[Tensor],
    inner: Pruner,
    stream: _Batches,
    loss_fn: LossFn,
    steps: int,
) -> None:
    try:
        for t, batch in enumerate(stream.cycle(steps)):
            _backward(model, loss_fn, batch, t, plist)
            if all(p.grad is None for p in plist):
                for p in plist:
                    p.grad = torch.zeros_like(p)
            inner.step()  # observe, update the masks, zero the pruned weights in place
            for p in plist:
                p.grad = None
    except BaseException:
        with torch.no_grad():
            for p, w in zip(plist, w0):
                p.copy_(w)
        raise
    finally:
        for p in plist:
            p.grad = None


# -- the registry: one entry per method, a function from a request to masks ---------------------------
@dataclass(frozen=True)
class InitRequest:
    """What an initialisation method is given: the model, its prunable weights, the data and the
    configuration (``options`` checked and completed with their defaults)."""

    model: nn.Module
    params: dict[str, nn.Parameter]
    sparsity: float
    batches: Any
    loss_fn: LossFn | None
    steps: int
    scope: str
    state_dtype: torch.dtype
    include: list[str] | None
    exclude: list[str] | None
    options: dict[str, Any]

    def count(self, n: int) -> int:
        """Entries pruned among ``n``: ``round(sparsity * n)``."""
        return schedules.pruned_count(self.sparsity, n)

    def select(self, scores: Sequence[Tensor]) -> dict[str, Tensor]:
        """Keep-masks by weight name, pruning the lowest ``scores`` (global or per matrix, by ``scope``)."""
        return dict(zip(self.params, _select(scores, self.scope, self.count)))


@dataclass(frozen=True)
class InitMethod:
    """A method of :func:`prune_at_init`: ``masks(request) -> {weight name: keep-mask}``.

    Its options are those of the registered importance ``scorer`` (whose scores it computes at the
    starting weights), or else ``defaults``; ``check`` may refuse values or drop options of its own.
    """

    name: str
    masks: Callable[[InitRequest], dict[str, Tensor]]
    needs_data: bool = True
    scorer: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[dict[str, Any]], None] | None = None

    def options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """``given`` checked (unknown names and bad values refused) and completed with the defaults."""
        options = dict(given)
        if self.check is not None:
            self.check(options)
        if self.scorer is not None:
            return get_method(self.scorer).checked_options(options)
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise TypeError(f"method {self.name!r} got unknown option(s) {unknown}; "
                            f"its options are {sorted(self.defaults) or 'none'}")
        return {**self.defaults, **options}


_INIT: dict[str, InitMethod] = {}


def register_init(method: InitMethod) -> InitMethod:
    """Add a method to :func:`prune_at_init`'s registry under ``method.name``."""
    _INIT[method.name] = method
    return method


def init_method(name: str) -> InitMethod:
    """The registry entry of ``name`` (``ValueError`` naming the choices if there is none)."""
    if not isinstance(name, str) or name not in _INIT:
        raise ValueError(f"unknown method {name!r} for prune_at_init; choose one of {init_methods()}")
    return _INIT[name]


def init_methods() -> list[str]:
    """Names of the methods of :func:`prune_at_init`, in the order of its documentation."""
    return list(_INIT)


def _snip_masks(req: InitRequest) -> dict[str, Tensor]:
    assert req.loss_fn is not None
    scores = snip_scores(req.model, req.params, req.batches, req.loss_fn)
    return req.select(scores)  # the scores live in the former gradient buffers, freed on return


#: GraSP's rankings: the paper's (remove the highest ``S``) and the magnitude form (remove the lowest ``|S|``)
GRASP_VARIANTS = ("paper", "abs")


def _check_grasp(options: dict[str, Any]) -> None:
    if options.get("variant", "paper") not in GRASP_VARIANTS:
        raise ValueError(f"variant must be one of {list(GRASP_VARIANTS)}, got {options['variant']!r}")


def _grasp_masks(req: InitRequest) -> dict[str, Tensor]:
    assert req.loss_fn is not None
    scores = grasp_scores(req.model, req.params, req.batches, req.loss_fn)
    # "paper": GraSP removes the highest S, so rank by -S = W * Hg. "abs": |W * Hg|, a weight matters if
    # removing it changes gradient flow either way; at a pretrained optimum S sits symmetric around 0
    # (docs/results.md, "GraSP at a pretrained start"), so the sign rule keeps weights by sign alone.
    rank = Tensor.abs_ if req.options["variant"] == "abs" else Tensor.neg_
    for t in scores:
        rank(t)
    return req.select(scores)


def _check_force(options: dict[str, Any]) -> None:
    if options.get("variant", "force") not in ("force", "iter_snip"):
        raise ValueError(f"variant must be 'force' or 'iter_snip', got {options['variant']!r}")


def _force_masks(req: InitRequest) -> dict[str, Tensor]:
    assert req.loss_fn is not None
    return dict(zip(req.params, force_masks(req.model, req.params, req.batches, req.loss_fn, req.sparsity,
                                            req.steps, req.options["variant"], req.scope)))


def _check_seven(options: dict[str, Any]) -> None:
    """``freeze_during_pruning`` is prune_at_init's own option of SEVEN_pre (only ``True``)."""
    if options.pop("freeze_during_pruning", True) is not True:
        raise ValueError(
            "prune_at_init runs SEVEN_pre with freeze_during_pruning=True (scores at the starting "
            "weights, no weight update); for SEVEN_pre as Algorithm 1 (weights updated while pruning) "
            "use sp.Pruner(model, 'seven', sparsity, start_step=0, prune_steps=K) in your training loop"
        )


def _seven_masks(req: InitRequest) -> dict[str, Tensor]:
    """SEVEN_pre with ``freeze_during_pruning=True`` (method.md's decision).

    ``steps`` = K batches at the starting weights, no weight update: at step t the gradient of the
    *masked* network is observed by SEVEN's score (``sevenprune.importance.seven``), the cubic
    schedule ``s * (1 - (1 - t/K)**3)`` gives the sparsity and the global threshold prunes the
    lowest-scored kept weights (monotone). The last step reaches exactly ``round(s * N)``.
    """
    assert req.loss_fn is not None
    plist = list(req.params.values())
    stream = _Batches(req.batches, _model_devices(req.params))
    inner = Pruner(req.model, "seven", req.sparsity, start_step=0, prune_steps=req.steps, include=req.include,
                   exclude=req.exclude, state_dtype=req.state_dtype, scope=req.scope, **req.options)
    w0 = [p.detach().clone() for p in plist]  # to restore the weights if a batch fails
    with _own_grads(plist):
        _seven_iterations(req.model, plist, w0, inner, stream, req.loss_fn, req.steps)
    return dict(inner.masks)


def _magnitude_masks(req: InitRequest) -> dict[str, Tensor]:
    return req.select([p.detach().abs().float() for p in req.params.values()])


def _random_masks(req: InitRequest) -> dict[str, Tensor]:
    drawn = random_scores([p.shape for p in req.params.values()], int(req.options.get("seed", 0)))
    return req.select([s.to(p.device) for s, p in zip(drawn, req.params.values())])


register_init(InitMethod("snip", _snip_masks))
register_init(InitMethod("grasp", _grasp_masks, defaults={"variant": "paper"}, check=_check_grasp))
register_init(InitMethod("force", _force_masks, defaults={"variant": "force"}, check=_check_force))
register_init(InitMethod("seven", _seven_masks, scorer="seven", check=_check_seven))
register_init(InitMethod("magnitude", _magnitude_masks, needs_data=False, scorer="magnitude"))
register_init(InitMethod("random", _random_masks, needs_data=False, scorer="random"))

#: methods accepted by :func:`prune_at_init` (:func:`init_methods`)
INIT_METHODS: tuple[str, ...] = tuple(_INIT)


# -- the entry point -----------------------------------------------------------------------------
def prune_at_init(
    model: nn.Module,
    method: str,
    sparsity: float,
    batches: Iterable[Any] | None = None,
    loss_fn: LossFn | None = None,
    *,
    steps: int = 100,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    state_dtype: torch.dtype | str = torch.float32,
    scope: str = "global",
    **options: Any,
) -> Pruner:
    """Prune ``model`` before fine-tuning and return a finished :class:`Pruner` holding the fixed masks
    (:meth:`Pruner.from_masks`).

    Args:
        model: the model; its weights are left unchanged except that pruned ones are set to 0.
        method: one of :func:`init_methods`: ``"snip"``, ``"grasp"``, ``"force"``, ``"seven"``
            (SEVEN_pre with ``freeze_during_pruning=True``), ``"magnitude"``, ``"random"``.
        sparsity: fraction of the prunable weights to prune, in ``[0, 1)``; exactly ``round(s * N)``.
        batches: iterable of batches on the model's device (unused by magnitude and random).
        loss_fn: ``loss_fn(model, batch) -> scalar loss tensor`` (unused by magnitude and random).
        steps: iterations of the iterative methods (FORCE, SEVEN_pre), each on the next batch, cycling
            through ``batches``; ignored by the one-shot methods. The reference hint for SEVEN_pre: 100.
        include, exclude: regular expressions over weight names (see :func:`sevenprune.find_prunable`).
        optimizer: attached to the returned pruner if given.
        state_dtype: dtype of SEVEN's moments while scoring (``"seven"`` only).
        scope: ``"global"`` (one ranking over every prunable weight) or ``"local"`` (the same fraction
            pruned in every matrix), as for :class:`~sevenprune.Pruner`.
        **options: the method's options: GraSP ``variant="paper"|"abs"`` (remove the highest ``S``, as
            the paper; or the lowest ``|S|``); FORCE ``variant="force"|"iter_snip"``; random ``seed``;
            SEVEN ``beta1``, ``beta2``, ``eps``, ``moments``, ``compile``, ``freeze_during_pruning``.

    >>> import torch, sevenprune as sp
    >>> torch.manual_seed(0) and None
    >>> model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    >>> data = [(torch.randn(5, 4), torch.randn(5, 2)) for _ in range(2)]
    >>> mse = lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1])
    >>> pruner = prune_at_init(model, "snip", 0.75, data, mse)
    >>> pruner.sparsity(), pruner.finished
    (0.75, True)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    entry = _INIT.get(method) if isinstance(method, str) else None
    if entry is None:
        hint = ""
        if isinstance(method, str) and method in methods():
            hint = f" ({method!r} prunes during fine-tuning: use sp.Pruner(model, {method!r}, ...))"
        raise ValueError(f"unknown method {method!r} for prune_at_init; choose one of {init_methods()}{hint}")
    sparsity = check_sparsity(sparsity)
    steps = check_int(steps, "steps", 1)
    scope = check_scope(scope)
    state_dtype = check_state_dtype(state_dtype)
    include_l, exclude_l = pattern_list(include), pattern_list(exclude)
    params = find_prunable(model, include_l, exclude_l)
    method_opts = entry.options(options)
    fn: LossFn | None = None
    if entry.needs_data:
        if batches is None:
            raise TypeError(f"method {method!r} needs batches (an iterable of batches, e.g. a DataLoader)")
        _check_batches(batches)
        fn = _check_loss_fn(loss_fn)
    request = InitRequest(model, params, sparsity, batches, fn, steps, scope, state_dtype, include_l, exclude_l,
                          method_opts)
    # forward passes in train mode update buffers (BatchNorm statistics): put them back afterwards
    buffers = [(b, b.detach().clone()) for b in model.buffers()] if entry.needs_data else []
    try:
        masks = entry.masks(request)
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
    return Pruner.from_masks(model, masks, method=method, sparsity=sparsity, include=include_l,
                             exclude=exclude_l, optimizer=optimizer, scope=scope, **method_opts)
