"""A standard transformers config for a shrunken model, when one can describe it.

A transformers 5 config has one FFN width (``intermediate_size``; DistilBERT: ``hidden_dim``) and
one head count for all layers, and derives the head size from ``hidden_size / num_attention_heads``.
So a model from :func:`sevenprune.structured.shrink` loads with plain
``AutoModel...from_pretrained`` exactly when

* no attention head was removed (fewer heads of the same size cannot be written in the config:
  fewer heads there means wider heads), and
* every layer keeps the same number of FFN neurons (``Pruner(..., pattern="neurons", scope="local")``
  prunes the same fraction in every layer).

:func:`plain_config_problem` says why a model does not qualify (``None`` if it does);
:func:`make_plain` rewrites its config (smaller FFN width, no ``sevenprune_structure`` record). Head
pruning is left to ONNX (``sevenprune export --format onnx --structured``), which has no such limit.
"""

from __future__ import annotations

from torch import nn

from ..structured import STRUCTURE_KEY, find_blocks

__all__ = ["FFN_WIDTH_ATTRS", "HEAD_COUNT_ATTRS", "make_plain", "plain_config_problem"]

#: the config attribute that holds the FFN width, per layout of :mod:`sevenprune.structured`
FFN_WIDTH_ATTRS = {"bert": "intermediate_size", "vit": "intermediate_size", "distilbert": "hidden_dim"}
#: the config attribute that holds the number of attention heads, per layout
HEAD_COUNT_ATTRS = {"bert": "num_attention_heads", "vit": "num_attention_heads", "distilbert": "n_heads"}


def _widths(model: nn.Module) -> tuple[str, list[int], list[int]]:
    blocks = find_blocks(model)
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no Transformer layer in a layout sevenprune knows")
    layouts = {b.layout for b in blocks}
    if len(layouts) != 1:
        raise ValueError(f"{type(model).__name__} mixes layer layouts {sorted(layouts)}")
    return layouts.pop(), [b.num_heads for b in blocks], [b.num_neurons for b in blocks]


def plain_config_problem(model: nn.Module) -> str | None:
    """Why ``model``'s shape cannot be written as a standard config; ``None`` if it can."""
    config = getattr(model, "config", None)
    if config is None:
        return f"{type(model).__name__} has no transformers config"
    layout, heads, neurons = _widths(model)
    head_attr, ffn_attr = HEAD_COUNT_ATTRS[layout], FFN_WIDTH_ATTRS[layout]
    configured = getattr(config, head_attr, None)
    if any(h != configured for h in heads):
        return (f"attention heads were removed (heads per layer {heads}, config {head_attr}={configured}); "
                "a transformers 5 config cannot describe fewer heads of the same size, so plain "
                "transformers cannot load it: use sevenprune.structured.load_structured, or "
                "--format onnx --structured")
    if len(set(neurons)) != 1:
        return (f"the layers keep different numbers of FFN neurons ({neurons}); a config has one "
                f"{ffn_attr}: prune with pattern='neurons' and scope='local' for the same number in every "
                "layer, or load with sevenprune.structured.load_structured")
    if not hasattr(config, ffn_attr):
        return f"{type(config).__name__} has no {ffn_attr} to record the FFN width in"
    return None


def make_plain(model: nn.Module) -> int:
    """Rewrite ``model.config`` as a standard config (see :func:`plain_config_problem`); returns the FFN width.

    Raises ``ValueError`` (with the reason) if the model's shape cannot be described that way.
    """
    problem = plain_config_problem(model)
    if problem is not None:
        raise ValueError(problem)
    layout, _, neurons = _widths(model)
    config = model.config
    setattr(config, FFN_WIDTH_ATTRS[layout], neurons[0])
    if hasattr(config, STRUCTURE_KEY):
        delattr(config, STRUCTURE_KEY)
    return neurons[0]
