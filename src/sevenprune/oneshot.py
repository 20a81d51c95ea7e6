"""One-shot pruning from calibration data: Wanda and SparseGPT, layer by layer.

``prune_oneshot(model, method, sparsity, calibration_batches, pattern=...)`` prunes every prunable
weight (:func:`sevenprune.find_prunable`: embeddings, heads and a tied ``lm_head`` excluded) once, from
statistics of each layer's inputs on the calibration batches, and returns a finished
:class:`~sevenprune.Pruner` holding the masks; attach the fine-tuning optimizer to it and the masks stay
applied (it saves, resumes and exports like any pruner)::

    import sevenprune as sp
    pruner = sp.prune_oneshot(model, "sparsegpt", 0.5, [ids[i:i + 1] for i in range(128)], pattern="2:4")
    pruner.attach(optimizer)

The sequential procedure is the authors' (``prune_wanda`` in locuslab/wanda ``lib/prune.py``,
``llama_sequential`` / ``opt_sequential`` in IST-DASLab/sparsegpt):

1. the model's repeated blocks are found (:func:`find_blocks`: ``model.model.layers``,
   ``transformer.h``, ... the largest ``nn.ModuleList`` of blocks of one type holding prunable layers);
2. the inputs of the first block (positional and keyword arguments: attention mask, position
   embeddings, ...) are captured for every calibration batch by a pre-hook that stops the forward there;
3. for each block in order: a forward pass of the block over every captured input, with forward hooks
   feeding each prunable layer's inputs to the method (``add_batch``); every prunable layer of the block
   is pruned (``prune``); a second pass through the *pruned* block computes the inputs of the next block.
   Within a block every layer's statistics come from the dense block, as in both authors' default
   (SparseGPT's ``--true-sequential`` is not the default and is not reproduced).

A model without such blocks (an ``nn.Sequential``, a model whose layers are not in a ``ModuleList``) is
one block: one pass of the whole model over the batches with the hooks, then every layer is pruned.
Prunable layers outside the blocks (a pooler, OPT's ``project_out``) are pruned last, from a pass of the
whole (already pruned) model; those that run *before* the first block (OPT's ``project_in``) are
pruned first, from the capture pass, and the first block's inputs are captured again through them.

Memory: the model itself, plus the first block's inputs for every calibration batch (kept once: each
batch's block input is replaced by its block output as the blocks advance), plus the statistics of one
block's layers, plus the transient activations of one block on one batch. The statistics: Wanda one
vector of ``columns`` floats per layer (negligible); SparseGPT one ``columns x columns`` float32 Hessian
per layer of the block, and while a layer is pruned its inverse factor and a float32 copy of its weight.

* SmolLM2-135M (hidden 576, intermediate 1536, 30 blocks, 135 M parameters), 128 windows of 256 tokens:
  weights 135e6 x 4 B = 0.54 GB in float32; block inputs 128 x 256 x 576 x 4 B = 75 MB; SparseGPT's
  Hessians 6 x 576^2 x 4 B (q, k, v, o, gate, up) + 1536^2 x 4 B (down) = 8.0 + 9.4 = 17 MB. About
  0.65 GB in all (Wanda: 0.62 GB).
* A 7 B Llama (hidden 4096, intermediate 11008, 32 blocks, 6.7 B parameters), 128 windows of 2048
  tokens (the papers' setting): weights 6.7e9 x 2 B = 13.5 GB in float16 (27 GB in float32); block
  inputs 128 x 2048 x 4096 x 2 B = 2.1 GB in float16; SparseGPT's Hessians 6 x 4096^2 x 4 B + 11008^2 x
  4 B = 0.40 + 0.48 = 0.89 GB, plus about 1 GB while ``down_proj`` is pruned (its inverse factor 0.48 GB
  and the float32 copy of its weight 11008 x 4096 x 4 B = 0.18 GB); one batch's attention scores in the
  eager implementation 32 x 2048^2 x 4 B = 0.54 GB. About 18 GB in float16 (Wanda: about 16.5 GB).

The whole model stays on its device: the layer-by-layer procedure bounds the *activation* memory to one
block's worth, it does not offload weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ._validate import check_sparsity
from .batches import check_batch_device
from .importance.calibration import CalibrationMethod
from .importance.registry import method_for, methods
from .patterns import parse_pattern
from .pruner import Pruner
from .targets import find_prunable, pattern_list

__all__ = ["check_layer_sparsity", "find_blocks", "oneshot_methods", "prune_oneshot"]

_CACHE_KWARGS = ("past_key_value", "past_key_values", "cache", "layer_past")


def oneshot_methods() -> list[str]:
    """Names of the methods of :func:`prune_oneshot`: the registry's methods of the ``"calibration"`` phase."""
    return methods("calibration")


class _StopForward(Exception):
    """Raised by the capture hook to end the model's forward at the first block."""


# -- input checks ---------------------------------------------------------------------------------------
def check_layer_sparsity(sparsity: Mapping[str, Any], names: Iterable[str]) -> dict[str, float]:
    """A sparsity per matrix ``{weight name: fraction}`` checked against ``names``, the prunable weights
    (:func:`sevenprune.find_prunable`): every one named once, nothing else, each fraction checked like a
    single sparsity. Returns the fractions as floats in the order of ``names``; errors name the weight.

    >>> check_layer_sparsity({"b": 0.25, "a": 0.5}, ["a", "b"])
    {'a': 0.5, 'b': 0.25}
    """
    order = list(names)
    unknown = sorted(set(sparsity) - set(order))
    missing = [n for n in order if n not in sparsity]
    if unknown or missing:
        parts = ([f"names no prunable weight: {unknown[:5]}"] if unknown else []) + (
            [f"lacks the prunable weight(s) {missing[:5]}" + (f" and {len(missing) - 5} more" if len(missing) > 5
                                                             else "")] if missing else [])
        raise ValueError(f"the sparsity per matrix {' and '.join(parts)}; it must give one fraction for every "
                         f"prunable weight ({len(order)}: sevenprune.find_prunable with the same include/exclude)")
    out = {}
    for name in order:
        try:
            out[name] = check_sparsity(sparsity[name])
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"sparsity of {name!r}: {exc}") from None
    return out


def _check_pattern(pattern: str | None, sparsity: float | None) -> tuple[str | None, float]:
    """The pattern (``None`` = unstructured, or ``"n:m"``) and the sparsity it implies or is given."""
    if pattern is None or pattern == "unstructured":
        if sparsity is None:
            raise ValueError("sparsity is required for unstructured pruning (a number in [0, 1))")
        return None, check_sparsity(sparsity)
    parsed = parse_pattern(pattern)
    if parsed[0] != "nm":
        raise ValueError(f"prune_oneshot supports pattern 'unstructured' or 'n:m' (e.g. '2:4'), got {pattern!r}")
    n, m = int(parsed[1]), int(parsed[2])
    implied = 1 - n / m
    if sparsity is not None and abs(check_sparsity(sparsity) - implied) > 1e-9:
        raise ValueError(f"pattern {pattern!r} keeps {n} of every {m} weights, i.e. sparsity {implied}; "
                         f"got sparsity={sparsity!r} (pass sparsity={implied} or None)")
    return f"{n}:{m}", implied


def _batches(calibration_batches: Any, devices: set[torch.device]) -> list[Any]:
    if isinstance(calibration_batches, (Tensor, Mapping, str, bytes)) or not isinstance(calibration_batches, Iterable):
        raise TypeError("calibration_batches must be an iterable of batches (a list of input-id tensors, of "
                        f"dicts of model keywords, or of input tensors), got {type(calibration_batches).__name__}; "
                        "for a single batch pass [batch]")
    batches = list(calibration_batches)
    if not batches:
        raise ValueError("calibration_batches is empty: one-shot pruning needs at least one calibration batch")
    for i, b in enumerate(batches):
        check_batch_device(b, devices, i, what="calibration batch")
    return batches


def _call(model: nn.Module, batch: Any) -> Any:
    """The model's forward on one batch: a dict as keywords, a tuple/list as positional arguments,
    anything else (a tensor of input ids, an input tensor) as the one argument."""
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (list, tuple)):
        return model(*batch)
    return model(batch)


# -- blocks -------------------------------------------------------------------------------------------
def find_blocks(model: nn.Module, prunable: Iterable[nn.Module] | None = None) -> nn.ModuleList | None:
    """The model's repeated blocks, in forward order: the ``nn.ModuleList`` whose children all have one
    type and hold the most prunable layers (``model.model.layers`` of Llama, ``transformer.h`` of GPT-2,
    ``bert.encoder.layer``); ``None`` if there is none.

    >>> from torch import nn
    >>> find_blocks(nn.Sequential(nn.Linear(2, 2), nn.ReLU())) is None
    True
    """
    if prunable is None:
        ids = {id(p) for p in find_prunable(model).values()}
        prunable = [m for m in model.modules() if id(getattr(m, "weight", None)) in ids]
    layer_ids = {id(m) for m in prunable}
    best: nn.ModuleList | None = None
    best_count = 0
    for module in model.modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0:
            continue
        if len({type(child) for child in module}) != 1:
            continue
        per_block = [sum(1 for m in child.modules() if id(m) in layer_ids) for child in module]
        if min(per_block) == 0:
            continue
        if sum(per_block) > best_count:
            best, best_count = module, sum(per_block)
    return best


def _prunable_layers(model: nn.Module, params: Mapping[str, nn.Parameter]) -> dict[str, nn.Module]:
    """``{weight name: owning module}`` for every prunable weight; a weight of a kind the methods do not
    handle (convolutions) is an error naming it."""
    by_id = {id(p): n for n, p in params.items()}
    out: dict[str, nn.Module] = {}
    for module in model.modules():
        w = getattr(module, "weight", None)
        if id(w) in by_id and by_id[id(w)] not in out:
            if not (isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"):
                raise ValueError(f"prune_oneshot prunes Linear layers (and GPT-2 Conv1D); {by_id[id(w)]!r} "
                                 f"belongs to a {type(module).__name__}: exclude it with exclude=...")
            out[by_id[id(w)]] = module
    missing = sorted(set(params) - set(out))
    if missing:
        raise ValueError(f"prune_oneshot prunes the weights of Linear layers; {missing[:5]} are not one's "
                         "'weight': exclude them with exclude=...")
    return {n: out[n] for n in params}


# -- the per-group procedure -------------------------------------------------------------------------------
class _Group:
    """The method's per-layer objects for a set of layers, fed by forward hooks while active."""

    def __init__(self, layers: Mapping[str, nn.Module], cls: type[CalibrationMethod], options: Mapping[str, Any]):
        self.layers = dict(layers)
        self.stats = {name: cls(layer, **options) for name, layer in self.layers.items()}
        self.handles: list[Any] = []

    def __enter__(self) -> _Group:
        for name, layer in self.layers.items():
            self.handles.append(layer.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc: Any) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()

    def _hook(self, name: str) -> Callable[..., None]:
        stat = self.stats[name]

        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            if not inputs or not isinstance(inputs[0], Tensor):
                raise ValueError(f"prune_oneshot: layer {name!r} was called without a positional input tensor")
            stat.add_batch(inputs[0].detach())

        return hook

    def fired(self) -> dict[str, nn.Module]:
        return {n: layer for n, layer in self.layers.items() if self.stats[n].nsamples > 0}

    def prune(self, sparsity: float | Mapping[str, float], pattern: str | None,
              only: Iterable[str] | None = None) -> dict[str, Tensor]:
        names = list(only) if only is not None else list(self.stats)
        silent = [n for n in names if self.stats[n].nsamples == 0]
        if silent:  # checked before any layer of the group is pruned
            raise ValueError(f"prune_oneshot: layer(s) {silent[:5]} received no input during calibration (not "
                             "used by the model's forward on these batches); exclude them with exclude=...")
        masks = {}
        for name in names:
            stat = self.stats[name]
            try:
                masks[name] = stat.prune(sparsity[name] if isinstance(sparsity, Mapping) else sparsity, pattern)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
            stat.free()
        return masks


def _capture(model: nn.Module, block: nn.Module, batches: Sequence[Any]) -> list[tuple[list[Any], dict[str, Any]]]:
    """The positional and keyword arguments the first block receives on each batch."""
    captured: list[tuple[list[Any], dict[str, Any]]] = []

    def grab(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        kwargs = dict(kwargs)
        for key in _CACHE_KWARGS:  # a KV cache would grow on every call of the block
            if kwargs.get(key) is not None:
                kwargs[key] = None
        captured.append((list(args), kwargs))
        raise _StopForward

    handle = block.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        for i, batch in enumerate(batches):
            try:
                _call(model, batch)
            except _StopForward:
                continue
            raise ValueError(f"calibration batch {i}: the model's forward never called its first block "
                             f"({type(block).__name__}); pass blocks=None and a model whose forward runs its blocks")
    finally:
        handle.remove()
    return captured


def _hidden(output: Any) -> Tensor:
    """A block's new hidden state: its output, or the first element of a tuple output."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    raise TypeError(f"a block returned {type(output).__name__}; expected a tensor or a tuple starting with one")


def _advance(args: list[Any], kwargs: dict[str, Any], hidden: Tensor) -> None:
    """Replace the block input (the first positional argument, or ``hidden_states=``) by ``hidden``."""
    if args:
        args[0] = hidden
    elif "hidden_states" in kwargs:
        kwargs["hidden_states"] = hidden
    else:
        raise ValueError("cannot tell which argument of the block is its input (no positional argument and "
                         "no 'hidden_states' keyword)")


# -- the entry point -----------------------------------------------------------------------------------
def prune_oneshot(
    model: nn.Module,
    method: str,
    sparsity: float | Mapping[str, float] | None,
    calibration_batches: Iterable[Any],
    *,
    pattern: str | None = None,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
    blocks: nn.ModuleList | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    progress: bool = True,
    **options: Any,
) -> Pruner:
    """Prune ``model`` once with Wanda or SparseGPT from calibration data; return a finished
    :class:`Pruner` holding the masks (:meth:`Pruner.from_masks`).

    Args:
        model: any module with Linear layers; its weights are changed in place (pruned entries to 0;
            SparseGPT also updates the kept ones, as the method does).
        method: ``"wanda"`` or ``"sparsegpt"`` (:func:`oneshot_methods`).
        sparsity: the fraction pruned in ``[0, 1)``. Wanda prunes ``int(columns * s)`` of every row;
            SparseGPT ``int(n * s)`` of each block of 128 columns (``n`` = rows x 128). With an ``n:m``
            pattern it must be ``1 - n/m`` (or ``None``). Or, unstructured, a fraction per matrix:
            ``{weight name: sparsity}`` naming every prunable weight (a non-uniform allocation, e.g.
            OWL's, or the one another run reached: ``result.json``'s ``layers`` of ``sevenprune run``);
            the pruner's ``sparsity()`` is then the fraction pruned over all of them.
        calibration_batches: an iterable of what the model's forward takes, on the model's device: a
            tensor of input ids (``model(ids)``), a dict of keywords (``model(**batch)``), a tuple of
            positional arguments, or an input tensor. Each is one forward; a batch of ``b`` sequences
            counts as ``b`` samples in the running averages (the authors feed one sequence at a time).
        pattern: ``None``/``"unstructured"``, or ``"n:m"`` (``"2:4"``, ``"4:8"``): keep ``n`` of every
            ``m`` consecutive input weights of a row.
        include, exclude: regular expressions over weight names (:func:`sevenprune.find_prunable`).
        blocks: the ``nn.ModuleList`` of blocks to go through in order (default: :func:`find_blocks`).
        optimizer: attached to the returned pruner if given.
        progress: a tqdm bar over the blocks.
        **options: the method's options: SparseGPT ``blocksize`` (128) and ``percdamp`` (0.01).

    The model is put in eval mode and its ``config.use_cache`` off during pruning, then restored.

    >>> import torch, sevenprune as sp
    >>> torch.manual_seed(0) and None
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    >>> data = [torch.randn(4, 8) for _ in range(3)]
    >>> pruner = sp.prune_oneshot(model, "wanda", 0.5, data, progress=False)
    >>> pruner.sparsity(), pruner.finished, pruner.report()["method"]
    (0.5, True, 'wanda')
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(method, str) or method not in methods():
        raise ValueError(f"unknown method {method!r} for prune_oneshot; choose one of {oneshot_methods()}")
    cls: type[CalibrationMethod] = method_for(method, "calibration")  # names the entry point of other phases
    per_matrix = isinstance(sparsity, Mapping)
    if isinstance(sparsity, Mapping):
        if pattern not in (None, "unstructured"):
            raise ValueError(f"a sparsity per matrix (a mapping) is for unstructured pruning; pattern {pattern!r} "
                             "fixes the sparsity of every matrix (pass sparsity=None with it)")
        pattern_s, sparsity_f = None, 0.0
    else:
        pattern_s, sparsity_f = _check_pattern(pattern, sparsity)
    method_opts = cls.checked_options(options)
    include_l, exclude_l = pattern_list(include), pattern_list(exclude)
    params = find_prunable(model, include_l, exclude_l)
    chosen = check_layer_sparsity(sparsity, params) if isinstance(sparsity, Mapping) else sparsity_f
    layers = _prunable_layers(model, params)
    batches = _batches(calibration_batches, {p.device for p in params.values()})
    if blocks is None:
        blocks = find_blocks(model, layers.values())
    elif not isinstance(blocks, nn.ModuleList) or not any(b is blocks for b in model.modules()):
        raise TypeError("blocks must be an nn.ModuleList of the model (its repeated blocks), got "
                        f"{type(blocks).__name__}")

    config = getattr(model, "config", None)
    use_cache = getattr(config, "use_cache", None)
    modes = [(m, m.training) for m in model.modules()]  # restored module by module (mixed modes survive)
    model.eval()
    if use_cache is not None:
        config.use_cache = False  # type: ignore[union-attr]
    try:
        with torch.no_grad():
            masks = _run(model, cls, method_opts, chosen, pattern_s, layers, batches, blocks, progress, method)
    finally:
        for module, mode in modes:
            module.training = mode
        if use_cache is not None:
            config.use_cache = use_cache  # type: ignore[union-attr]
    extra: dict[str, Any] = {"pattern": pattern_s} if pattern_s is not None else {}
    # per matrix: the pruner's sparsity is the fraction its masks prune over all weights
    return Pruner.from_masks(model, masks, method=method, sparsity=None if per_matrix else sparsity_f,
                             include=include_l, exclude=exclude_l, optimizer=optimizer, **extra, **method_opts)


def _run(model: nn.Module, cls: type[CalibrationMethod], options: dict[str, Any],
         sparsity: float | dict[str, float],
         pattern: str | None, layers: dict[str, nn.Module], batches: list[Any], blocks: nn.ModuleList | None,
         progress: bool, method: str) -> dict[str, Tensor]:
    from tqdm.auto import tqdm

    masks: dict[str, Tensor] = {}
    if blocks is None:  # one block: the whole model
        with _Group(layers, cls, options) as group:
            for batch in tqdm(batches, desc=f"{method} (one block)", disable=not progress, leave=False):
                _call(model, batch)
        return group.prune(sparsity, pattern)

    in_block = {id(m) for block in blocks for m in block.modules()}
    outside = {n: layer for n, layer in layers.items() if id(layer) not in in_block}
    # the capture pass also feeds the layers outside the blocks that run before the first block
    with _Group(outside, cls, options) as before:
        inputs = _capture(model, blocks[0], batches)
    early = before.fired()
    if early:
        masks.update(before.prune(sparsity, pattern, only=early))
        inputs = _capture(model, blocks[0], batches)  # through the pruned early layers
    late = {n: layer for n, layer in outside.items() if n not in early}

    for block in tqdm(blocks, desc=method, disable=not progress):
        own = {n: layer for n, layer in layers.items() if any(layer is m for m in block.modules())}
        if own:
            with _Group(own, cls, options) as group:
                for args, kwargs in inputs:
                    block(*args, **kwargs)
            masks.update(group.prune(sparsity, pattern))
        for args, kwargs in inputs:  # the next block's inputs, through this pruned block
            _advance(args, kwargs, _hidden(block(*args, **kwargs)))
    del inputs

    if late:  # after the blocks (a pooler, a projection before the head): from the pruned model
        with _Group(late, cls, options) as group:
            for batch in batches:
                _call(model, batch)
        masks.update(group.prune(sparsity, pattern))
    return {n: masks[n] for n in layers}

