"""Sparsity patterns beyond unstructured: N:M, attention heads and FFN neurons, scored by any method.

``sp.Pruner(model, method, sparsity, ..., pattern=...)`` accepts:

``"unstructured"`` (default)
    one global threshold over every prunable entry (:class:`sevenprune.selection.Unstructured`).

``"n:m"`` (e.g. ``"2:4"``, ``"4:8"``; ``1 <= n < m``)
    in every group of ``m`` consecutive *input* weights of a row (the reduction dimension of the
    layer's matrix product: dim 1 of an ``nn.Linear`` weight, dim 0 of a GPT-2 ``Conv1D`` weight,
    the flattened ``in*kh*kw`` of a convolution), keep the ``n`` with the highest score.
    **Decision:** ``sparsity`` must be ``1 - n/m`` (0.5 for 2:4 and 4:8), and the cubic schedule
    *ramps to* the pattern: at each pruning step the schedule's count ``k`` of entries is pruned by
    one global threshold, but only among each group's ``m - n`` lowest-scored entries (the
    *candidates*), so no group ever loses more than ``m - n`` and at the end of the window every
    group has lost exactly ``m - n``: the model is exactly n:m. Every prunable weight's reduction
    length must be a multiple of ``m`` (exclude the others with ``exclude=``).

``"heads"``, ``"neurons"``, ``"heads+neurons"``
    remove whole attention heads and/or FFN intermediate neurons (see :mod:`sevenprune.structured`
    for the architectures: BERT-like encoders, ViT, DistilBERT). **Decisions:**

    * a group's score is the **sum** of its weights' scores (query, key and value rows and attention
      output columns of a head; FFN input row and output column of a neuron). Within a kind every
      group has the same number of weights, so the sum ranks exactly as the mean does; heads and
      neurons are never ranked against each other.
    * ``sparsity`` is the **fraction of groups removed**, of each kind separately, ranked globally
      over all layers (``"heads+neurons"`` at 0.5 removes half of all heads and half of all neurons);
      with ``scope="local"`` the same fraction in every layer, ranked within the layer (uniform
      layers: a structured export then has one ``intermediate_size`` for every layer).
      At a pruning step the fraction is ``k / N`` (the schedule's entry count over the prunable
      entries), so the cubic schedule ramps the number of groups.
    * the best-scored head and neuron of each layer are never removed (a layer needs one).
    * a removed group is masked entirely: its weights, and the biases of its query/key/value rows or
      its FFN input entry (returned as extra masks, which the pruner applies after every step), so
      the masked model and the physically smaller one (:func:`sevenprune.structured.shrink`, or
      ``sevenprune export --format structured``) compute the same thing.
    * ``pruner.sparsity()`` still reports the fraction of prunable *weights* set to zero (weights
      outside every group, such as the pooler, are never pruned by these patterns).

>>> parse_pattern("2:4")
('nm', 2, 4)
>>> parse_pattern("heads+neurons")
('structured', ('heads', 'neurons'))
>>> nm_holds(torch.tensor([[True, False, False, True]]), 2, 4)
True
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .structured import Block, require_blocks
from .threshold import matrix_sample_size, smallest_k_keep_masks

__all__ = ["VALID_PATTERNS", "group_keep_masks", "nm_holds", "nm_keep_masks", "parse_pattern", "require_blocks",
           "validate_pattern", "weight_kinds"]

#: the valid forms, for error messages
VALID_PATTERNS = "'unstructured', 'n:m' with 1 <= n < m (e.g. '2:4', '4:8'), 'heads', 'neurons', 'heads+neurons'"

_NM = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_KINDS = ("heads", "neurons")


def parse_pattern(pattern: str) -> tuple[Any, ...]:
    """``("unstructured",)``, ``("nm", n, m)`` or ``("structured", kinds)``; ``ValueError`` otherwise."""
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a string, one of {VALID_PATTERNS}; got {pattern!r}")
    if pattern == "unstructured":
        return ("unstructured",)
    match = _NM.match(pattern)
    if match:
        n, m = int(match.group(1)), int(match.group(2))
        if not 1 <= n < m:
            raise ValueError(f"pattern {pattern!r}: an n:m pattern needs 1 <= n < m; valid forms: {VALID_PATTERNS}")
        return ("nm", n, m)
    parts = [p.strip() for p in pattern.split("+")]
    if parts and all(p in _KINDS for p in parts) and len(set(parts)) == len(parts):
        return ("structured", tuple(k for k in _KINDS if k in parts))
    raise ValueError(f"unknown pattern {pattern!r}; valid forms: {VALID_PATTERNS}")


# -- N:M ------------------------------------------------------------------------------------------------
def _owner_kinds(model: torch.nn.Module) -> dict[int, str]:
    """``id(weight) -> "conv1d"`` for GPT-2 style ``Conv1D`` weights (stored as (in, out))."""
    out: dict[int, str] = {}
    for module in model.modules():
        if type(module).__name__ == "Conv1D" and isinstance(getattr(module, "weight", None), Tensor):
            out[id(module.weight)] = "conv1d"
    return out


def _as_rows(t: Tensor, kind: str) -> Tensor:
    """View a weight-shaped tensor as (rows, reduction length)."""
    if kind == "conv1d":
        return t.t()
    return t.reshape(t.shape[0], -1)


def _from_rows(rows: Tensor, shape: torch.Size, kind: str) -> Tensor:
    if kind == "conv1d":
        return rows.t().contiguous()
    return rows.reshape(shape)


def weight_kinds(model: nn.Module, params: Mapping[str, Tensor]) -> list[str]:
    """Per prunable weight: ``"conv1d"`` (GPT-2 ``Conv1D``, stored as (in, out)) or ``"matrix"``."""
    owners = _owner_kinds(model)
    return [owners.get(id(p), "matrix") for p in params.values()]


def nm_holds(mask: Tensor, n: int, m: int, *, transposed: bool = False) -> bool:
    """True if every group of ``m`` consecutive entries along the rows of ``mask`` keeps exactly ``n``.

    ``mask`` is a keep-mask (True = kept) shaped like an ``nn.Linear`` weight (``transposed=True``
    for a GPT-2 ``Conv1D`` weight).
    """
    rows = _as_rows(mask, "conv1d" if transposed else "matrix")
    if rows.shape[1] % m:
        return False
    kept = rows.reshape(rows.shape[0], -1, m).sum(dim=2)
    return bool((kept == n).all())


def _nm_candidate_scores(score: Tensor, mask: Tensor, kind: str, n: int, m: int, name: str) -> Tensor:
    """The score with every entry outside its group's ``m - n`` lowest set to ``+inf``."""
    rows = _as_rows(score, kind)
    keep_rows = _as_rows(mask, kind)
    groups = rows.reshape(rows.shape[0], -1, m)
    pruned_per_group = (~keep_rows).reshape(rows.shape[0], -1, m).sum(dim=2)
    if bool((pruned_per_group > m - n).any()):
        raise ValueError(f"the mask of {name!r} already prunes more than {m - n} of {m} entries in some "
                         f"group, so it cannot become {n}:{m}")
    order = torch.sort(groups, dim=2, stable=True).indices  # ascending; pruned (-inf) first
    candidate = torch.zeros_like(groups, dtype=torch.bool)
    candidate.scatter_(2, order[..., : m - n], True)
    finite_max = torch.finfo(groups.dtype).max
    cand_scores = torch.where(candidate, groups.clamp(max=finite_max), math.inf)
    return _from_rows(cand_scores.reshape(rows.shape), score.shape, kind)


def nm_keep_masks(scores: Sequence[Tensor], masks: Mapping[str, Tensor], kinds: Sequence[str], k: int, n: int,
                  m: int, *, numel: int, per_matrix: Sequence[int] | None = None, seed: int = 0) -> list[Tensor]:
    """Keep-masks (order of ``masks``) pruning ``k`` entries in all (``per_matrix``: each weight's own
    count), only among each group's ``m - n`` lowest-scored entries."""
    cand = [
        _nm_candidate_scores(s.float() if not s.is_floating_point() else s, mask.to(s.device), kind, n, m, name)
        for (name, mask), s, kind in zip(masks.items(), scores, kinds)
    ]
    limit = numel * (m - n) // m
    if k > limit:
        raise ValueError(f"pattern '{n}:{m}' prunes at most {limit} of {numel} entries "
                         f"(sparsity {1 - n / m}); the schedule asked for {k}: set sparsity={1 - n / m}")
    if per_matrix is not None:  # scope="local": each matrix's own count among its candidates
        return [smallest_k_keep_masks([c], count, seed=seed, sample_size=matrix_sample_size(c.numel()))[0]
                for c, count in zip(cand, per_matrix)]
    return smallest_k_keep_masks(cand, k, seed=seed)


# -- heads and neurons ------------------------------------------------------------------------------------
def _finite(t: Tensor) -> Tensor:
    return torch.where(torch.isfinite(t), t, 0.0)


def _group_scores(block: Block, kind: str, score_of: Mapping[str, Tensor]) -> Tensor:
    """Sum of the scores of each head (or neuron) of ``block``, in float64."""
    if kind == "heads":
        total = torch.zeros(block.num_heads, dtype=torch.float64, device=score_of[block.query + ".weight"].device)
        for role in ("query", "key", "value"):
            s = _finite(score_of[block.linear(role) + ".weight"])
            total += s.reshape(block.num_heads, -1).sum(dim=1, dtype=torch.float64)
        o = _finite(score_of[block.attn_out + ".weight"])
        total += o.reshape(o.shape[0], block.num_heads, -1).sum(dim=(0, 2), dtype=torch.float64)
        return total
    fi = _finite(score_of[block.ffn_in + ".weight"])
    fo = _finite(score_of[block.ffn_out + ".weight"])
    return fi.sum(dim=1, dtype=torch.float64) + fo.sum(dim=0, dtype=torch.float64)


def _group_gone(block: Block, kind: str, masks: Mapping[str, Tensor]) -> Tensor:
    """Groups already removed: their output-projection columns are all pruned."""
    if kind == "heads":
        o = masks[block.attn_out + ".weight"]
        return ~o.reshape(o.shape[0], block.num_heads, -1).any(dim=2).any(dim=0)
    return ~masks[block.ffn_out + ".weight"].any(dim=0)


def _select_groups(scores: Tensor, gone: Tensor, sizes: list[int], count: int) -> Tensor:
    """Bool over all groups (concatenated per layer): the ``count`` to remove, lowest score first.

    Groups already gone come first; the best remaining group of each layer is never chosen.
    """
    key = torch.where(gone, -math.inf, scores)
    protected = torch.zeros_like(gone)
    start = 0
    for size in sizes:
        layer = key[start: start + size].clone()
        layer[gone[start: start + size]] = -math.inf
        best = int(torch.argmax(layer))  # first of the highest (ties: lowest index)
        protected[start + best] = True
        start += size
    key = torch.where(protected, math.inf, key)
    count = min(count, int((~protected).sum()))
    order = torch.sort(key, stable=True).indices
    chosen = torch.zeros_like(gone)
    chosen[order[:count]] = True
    return chosen | (gone & ~protected)


def group_keep_masks(
    blocks: Sequence[Block], scores: Sequence[Tensor], masks: Mapping[str, Tensor], params: Mapping[str, Tensor],
    kinds: Sequence[str], fraction: float, local_fraction: float | None = None,
) -> tuple[list[Tensor], dict[str, Tensor]]:
    """Keep-masks (order of ``masks``) removing ``fraction`` of the groups of each kind, ranked over all
    layers (``local_fraction``: that fraction in every layer), and the extra masks of their biases
    (``params``: the model's parameters by name)."""
    names = list(masks)
    score_of = dict(zip(names, scores))
    keep = {name: torch.ones_like(masks[name]) for name in names}
    extra: dict[str, Tensor] = {}
    for kind in kinds:
        sizes = [b.num_heads if kind == "heads" else b.num_neurons for b in blocks]
        group_scores = torch.cat([_group_scores(b, kind, score_of).cpu() for b in blocks])
        gone = torch.cat([_group_gone(b, kind, masks).cpu() for b in blocks])
        if local_fraction is None:
            chosen = _select_groups(group_scores, gone, sizes, round(fraction * sum(sizes)))
        else:  # scope="local": the same fraction of groups in every layer, ranked within the layer
            parts, start = [], 0
            for size in sizes:
                sl = slice(start, start + size)
                parts.append(_select_groups(group_scores[sl], gone[sl], [size], round(local_fraction * size)))
                start += size
            chosen = torch.cat(parts)
        start = 0
        for block, size in zip(blocks, sizes):
            sel = chosen[start: start + size]
            start += size
            if kind == "heads":
                rows = sel.repeat_interleave(block.head_size)  # True = removed entry of the head dim
                for role in ("query", "key", "value"):
                    w = block.linear(role) + ".weight"
                    keep[w] &= ~rows.to(keep[w].device)[:, None]
                    _extra_bias(extra, params, block.linear(role) + ".bias", ~rows)
                w = block.attn_out + ".weight"
                keep[w] &= ~rows.to(keep[w].device)[None, :]
            else:
                w = block.ffn_in + ".weight"
                keep[w] &= ~sel.to(keep[w].device)[:, None]
                _extra_bias(extra, params, block.ffn_in + ".bias", ~sel)
                w = block.ffn_out + ".weight"
                keep[w] &= ~sel.to(keep[w].device)[None, :]
    return [keep[name] for name in names], extra


def _extra_bias(extra: dict[str, Tensor], params: Mapping[str, Tensor], name: str, keep: Tensor) -> None:
    bias = params.get(name)
    if bias is not None:
        extra[name] = keep.to(bias.device).clone()


# -- checks ------------------------------------------------------------------------------------------------
def validate_pattern(pattern: str, model: nn.Module, params: Mapping[str, Tensor],
                     sparsity: float | None = None) -> tuple[Any, ...]:
    """Check that ``pattern`` is valid and fits ``model`` and its prunable weights ``params``; return
    :func:`parse_pattern`'s reading of it.

    Raises ``ValueError`` naming the pattern and the valid forms, the weight that does not fit, or (if
    ``sparsity`` is given) the sparsity an ``n:m`` pattern requires.
    """
    parsed = parse_pattern(pattern)
    if parsed[0] == "nm":
        _, n, m = parsed
        for (name, p), kind in zip(params.items(), weight_kinds(model, params)):
            length = _as_rows(p.detach(), kind).shape[1]
            if length % m:
                raise ValueError(
                    f"pattern {pattern!r}: weight {name!r} has {length} inputs per row, not a multiple "
                    f"of {m}; exclude it (exclude=...) or choose another m"
                )
        if sparsity is not None and not math.isclose(sparsity, 1 - n / m, rel_tol=0, abs_tol=1e-9):
            raise ValueError(f"pattern {pattern!r} fixes the sparsity at 1 - {n}/{m} = {1 - n / m}; "
                             f"got sparsity={sparsity}")
    elif parsed[0] == "structured":
        blocks = require_blocks(model, f"pattern {pattern!r}")
        roles = []
        if "heads" in parsed[1]:
            roles += ["query", "key", "value", "attn_out"]
        if "neurons" in parsed[1]:
            roles += ["ffn_in", "ffn_out"]
        for block in blocks:
            for role in roles:
                weight = block.linear(role) + ".weight"
                if weight not in params:
                    raise ValueError(
                        f"pattern {pattern!r} needs {weight!r} among the prunable weights (it is not: "
                        "check include=/exclude=)"
                    )
    return parsed
