"""Find the weights a pruner may prune.

The default set follows method.md: the weights of ``nn.Linear`` / ``nn.Conv*`` layers (and of Hugging
Face's GPT-2 style ``Conv1D``), excluding the task head (``classifier``, ``qa_outputs``, ``lm_head``,
...), every embedding module and the model's output embeddings. Biases and LayerNorm weights are never
pruned: they are 1-D and excluded by construction. Weights that do not require a gradient (frozen) are
skipped. A weight shared by several modules (tied weights) is counted once, under the first name
``named_parameters()`` gives it.

``include`` / ``exclude`` are regular expressions matched with :func:`re.search` against a weight's
qualified name (e.g. ``bert.encoder.layer.0.attention.self.query.weight``):

* ``include``: if given, the candidates are *every* trainable weight of 2 or more dimensions whose name
  matches one of the patterns (so a head can be included explicitly); embedding tables stay excluded.
* ``exclude``: removed from whatever set the defaults or ``include`` produced.

A pattern that matches nothing is an error (it is almost always a typo).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["DEFAULT_EXCLUDE", "find_prunable", "describe_candidates", "pattern_list", "prunable_module_types"]

#: Module-name patterns excluded by default: task heads and everything under an embeddings module.
DEFAULT_EXCLUDE: tuple[str, ...] = (
    r"(^|\.)(classifier|qa_outputs|lm_head|score|head|heads)(\.|$)",
    r"(^|\.)cls\.predictions(\.|$)",
    r"(^|\.)(embeddings|embed_tokens|wte|wpe)(\.|$)",
)

_EMBEDDING_TYPES: tuple[type[nn.Module], ...] = (nn.Embedding, nn.EmbeddingBag)


def prunable_module_types() -> tuple[type[nn.Module], ...]:
    """The layer types whose ``weight`` is prunable by default (Linear, Conv, transformers' Conv1D)."""
    types: list[type[nn.Module]] = [nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d]
    try:  # GPT-2 style layers; transformers is optional for the core
        from transformers.pytorch_utils import Conv1D

        types.append(Conv1D)
    except Exception:  # pragma: no cover - transformers missing or changed
        pass
    return tuple(types)


def _as_patterns(value: str | Sequence[str] | None, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    patterns = list(value)
    for p in patterns:
        if not isinstance(p, str):
            raise TypeError(f"{what} patterns must be strings (regular expressions), got {p!r}")
        try:
            re.compile(p)
        except re.error as exc:
            raise ValueError(f"{what} pattern {p!r} is not a valid regular expression: {exc}") from exc
    return patterns


def pattern_list(value: str | Sequence[str] | None) -> list[str] | None:
    """``include``/``exclude`` as given by a user (one pattern, several, or none) as a list or ``None``."""
    return [value] if isinstance(value, str) else (list(value) if value else None)


def _unique_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every parameter once (tied parameters under their first name), in registration order."""
    return dict(model.named_parameters(remove_duplicate=True))


def _output_embedding_ids(model: nn.Module) -> set[int]:
    getter = getattr(model, "get_output_embeddings", None)
    if getter is None:
        return set()
    try:
        out = getter()
    except Exception:
        return set()
    weight = getattr(out, "weight", None)
    return {id(weight)} if isinstance(weight, torch.Tensor) else set()


def describe_candidates(model: nn.Module, limit: int = 8) -> str:
    """A short list of the model's parameter names, for error messages."""
    names = [n for n, p in model.named_parameters() if p.dim() >= 2][:limit]
    if not names:
        names = [n for n, _ in model.named_parameters()][:limit]
    return ", ".join(names) if names else "(the model has no parameters)"


def find_prunable(
    model: nn.Module,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
) -> dict[str, nn.Parameter]:
    """Return ``{qualified name: parameter}`` of the weights to prune, in a fixed order.

    >>> mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> list(find_prunable(mlp))
    ['0.weight', '2.weight']
    >>> list(find_prunable(mlp, exclude=r"^2\\."))
    ['0.weight']
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    include_p = _as_patterns(include, "include")
    exclude_p = _as_patterns(exclude, "exclude")
    params = _unique_weights(model)
    by_id = {id(p): n for n, p in params.items()}
    embedding_ids = {id(m.weight) for m in model.modules() if isinstance(m, _EMBEDDING_TYPES)}
    embedding_ids |= _output_embedding_ids(model)

    chosen: dict[str, nn.Parameter] = {}
    if include_p:
        hits = {p: 0 for p in include_p}
        for name, param in params.items():
            if param.dim() < 2 or id(param) in embedding_ids:
                continue
            matched = [p for p in include_p if re.search(p, name)]
            for p in matched:
                hits[p] += 1
            if matched and param.requires_grad:
                chosen[name] = param
        _check_all_matched(hits, "include", model)
    else:
        types = prunable_module_types()
        for mod_name, module in model.named_modules():
            if not isinstance(module, types):
                continue
            weight = getattr(module, "weight", None)
            if not isinstance(weight, nn.Parameter) or id(weight) not in by_id:
                continue
            name = by_id[id(weight)]
            if id(weight) in embedding_ids or not weight.requires_grad:
                continue
            if any(re.search(p, mod_name) for p in DEFAULT_EXCLUDE):
                continue
            chosen[name] = weight
        # keep the model's registration order, whatever order modules were visited in
        chosen = {n: p for n, p in params.items() if n in chosen}

    if exclude_p:
        # a pattern is a typo only if it names no parameter at all (excluding a weight the defaults
        # already leave out, such as the classifier, is harmless)
        hits = {p: sum(1 for n in params if re.search(p, n)) for p in exclude_p}
        _check_all_matched(hits, "exclude", model)
        for name in list(chosen):
            if any(re.search(p, name) for p in exclude_p):
                del chosen[name]

    if not chosen:
        raise ValueError(
            "no prunable weights found (Linear/Conv weights that require grad, heads and embeddings "
            f"excluded, include={include_p or None}, exclude={exclude_p or None}); "
            f"some of the model's weights: {describe_candidates(model)}. "
            "Pass include=[...] with regular expressions naming the weights to prune."
        )
    return chosen


def _check_all_matched(hits: dict[str, int], what: str, model: nn.Module) -> None:
    missing = [p for p, n in hits.items() if n == 0]
    if missing:
        raise ValueError(
            f"{what} pattern(s) {missing} matched no weight of the model; patterns are regular "
            f"expressions searched in qualified names such as: {describe_candidates(model)}"
        )
