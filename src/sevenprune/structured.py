"""Attention heads and FFN neurons: find them in a Transformer, and remove them physically.

A *head* ``h`` of a layer is rows ``h*d:(h+1)*d`` of the query, key and value projections (``d`` the
head size) and the same columns of the attention output projection; an FFN *neuron* ``j`` is row
``j`` of the FFN input projection and column ``j`` of the FFN output projection.

**When removal is exact.** A head whose columns of the attention output projection are all zero adds
exactly nothing to the layer's output, whatever its query/key/value weights and biases are; a neuron
whose column of the FFN output projection is zero likewise (whatever the activation). So
:func:`shrink` removes exactly those heads and neurons, and the smaller model computes what the
masked one computes (up to the order of floating-point additions inside the smaller matrix
products: equal to about 1e-6, not bit for bit). The structured patterns (``sevenprune.patterns``)
mask whole groups (rows, columns and biases), which satisfies this. At least one head and one neuron
are kept in every layer (a layer with zero heads is not a valid module in transformers); if all are
removable the first is kept, all zero, which changes nothing.

**Architectures** (found by module structure, relative to each Transformer layer module):

* ``bert``: attention ``attention.self.{query,key,value}`` and ``attention.output.dense``; FFN
  ``intermediate.dense`` and ``output.dense``;
* ``vit``: attention ``attention.{q,k,v,o}_proj``; FFN ``mlp.fc1`` and ``mlp.fc2``;
* ``distilbert``: attention ``attention.{q,k,v,out}_lin``; FFN ``ffn.lin1`` and ``ffn.lin2``.

``bert`` covers BERT, RoBERTa, XLM-RoBERTa, ELECTRA, MiniLM and the other BERT-shaped encoders of
transformers 5; ``vit`` covers ViT (transformers 5's module names). In transformers 5 these attention
modules infer the number of heads from the projection's width (``view(..., -1, head_size)``), which
is what makes narrower projections run; transformers 5 no longer has ``prune_heads``, so the layers
are replaced here instead. Any other model raises ``ValueError``.

**Saving and loading.** The per-layer widths differ, so ``config.json``'s sizes no longer describe
the model: :func:`save_structured` records every replaced layer's shape in the config under
``sevenprune_structure`` and :func:`load_structured` rebuilds the model with those shapes before
loading the weights. Plain ``from_pretrained`` refuses such a checkpoint (size mismatch), loudly.

>>> import transformers
>>> cfg = transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
...                               intermediate_size=4, vocab_size=10)
>>> model = transformers.BertModel(cfg)
>>> [(b.layout, b.num_heads, b.head_size, b.num_neurons) for b in find_blocks(model)]
[('bert', 2, 4, 4)]
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ._checkpoint import load_state_into, model_class_for, read_safetensors_dir
from ._validate import check_may_write

__all__ = [
    "Block",
    "LAYOUTS",
    "STRUCTURE_KEY",
    "apply_structure",
    "build_empty",
    "find_blocks",
    "load_state_into",
    "load_structured",
    "model_class_for",
    "removable_groups",
    "require_blocks",
    "save_structured",
    "shrink",
]

#: the config attribute that records the shapes of the replaced layers
STRUCTURE_KEY = "sevenprune_structure"

#: relative module names of each supported layout, and the head-size attribute of its attention module
LAYOUTS: dict[str, dict[str, str]] = {
    "bert": {
        "attention": "attention.self", "query": "attention.self.query", "key": "attention.self.key",
        "value": "attention.self.value", "attn_out": "attention.output.dense",
        "ffn_in": "intermediate.dense", "ffn_out": "output.dense", "head_size_attr": "attention_head_size",
    },
    "vit": {
        "attention": "attention", "query": "attention.q_proj", "key": "attention.k_proj",
        "value": "attention.v_proj", "attn_out": "attention.o_proj",
        "ffn_in": "mlp.fc1", "ffn_out": "mlp.fc2", "head_size_attr": "head_dim",
    },
    "distilbert": {
        "attention": "attention", "query": "attention.q_lin", "key": "attention.k_lin",
        "value": "attention.v_lin", "attn_out": "attention.out_lin",
        "ffn_in": "ffn.lin1", "ffn_out": "ffn.lin2", "head_size_attr": "attention_head_size",
    },
}

_LINEAR_ROLES = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")
# attributes of attention modules that hold the number of heads or their total width
_HEAD_COUNT_ATTRS = ("num_attention_heads", "n_heads", "num_heads")
_HEAD_WIDTH_ATTRS = ("all_head_size",)


@dataclass(frozen=True)
class Block:
    """One Transformer layer: the qualified names of its projections and its sizes."""

    layer: str
    layout: str
    attention: str
    query: str
    key: str
    value: str
    attn_out: str
    ffn_in: str
    ffn_out: str
    head_size: int
    num_heads: int
    num_neurons: int

    def linear(self, role: str) -> str:
        """Qualified module name of the projection ``role`` (``"query"``, ..., ``"ffn_out"``)."""
        return str(getattr(self, role))


def _get(model: nn.Module, name: str) -> nn.Module | None:
    try:
        return model.get_submodule(name)
    except AttributeError:
        return None


def find_blocks(model: nn.Module) -> list[Block]:
    """Every Transformer layer of ``model`` in a supported layout (see the module docstring).

    Returns an empty list for an unsupported model; :func:`require_blocks` raises instead.
    """
    blocks: list[Block] = []
    for name, module in model.named_modules():
        for layout, rel in LAYOUTS.items():
            mods = {role: _get(module, rel[role]) for role in _LINEAR_ROLES}
            if not all(isinstance(m, nn.Linear) for m in mods.values()):
                continue
            attention = _get(module, rel["attention"])
            head_size = getattr(attention, rel["head_size_attr"], None)
            q, o = mods["query"], mods["attn_out"]
            fi, fo = mods["ffn_in"], mods["ffn_out"]
            assert isinstance(q, nn.Linear) and isinstance(o, nn.Linear)
            assert isinstance(fi, nn.Linear) and isinstance(fo, nn.Linear)
            if not isinstance(head_size, int) or head_size <= 0 or q.out_features % head_size:
                continue
            if o.in_features != q.out_features or fo.in_features != fi.out_features:
                continue
            prefix = f"{name}." if name else ""
            blocks.append(Block(
                layer=name, layout=layout, attention=prefix + rel["attention"],
                **{role: prefix + rel[role] for role in _LINEAR_ROLES},
                head_size=head_size, num_heads=q.out_features // head_size,
                num_neurons=fi.out_features,
            ))
            break
    return blocks


def require_blocks(model: nn.Module, what: str) -> list[Block]:
    """:func:`find_blocks`, raising ``ValueError`` (naming the supported layouts) if there are none."""
    blocks = find_blocks(model)
    if not blocks:
        raise ValueError(
            f"{what} needs a Transformer whose attention heads and FFN neurons can be located; "
            f"{type(model).__name__} has no layer in a supported layout. Supported: "
            + "; ".join(f"{k} (query {v['query']!r}, FFN {v['ffn_in']!r}/{v['ffn_out']!r})"
                        for k, v in LAYOUTS.items())
            + ". Use pattern='unstructured' or an 'n:m' pattern for other models."
        )
    return blocks


def _zero_columns(matrix: Tensor, groups: int) -> Tensor:
    """Which of ``groups`` equal column groups of ``matrix`` are entirely zero/False (bool per group)."""
    nonzero = (matrix != 0).reshape(matrix.shape[0], groups, -1)
    return ~nonzero.any(dim=2).any(dim=0)


def removable_groups(
    model: nn.Module, masks: Mapping[str, Tensor] | None = None
) -> dict[str, dict[str, list[int]]]:
    """``{layer: {"heads": [...], "neurons": [...]}}``: the groups :func:`shrink` would remove.

    A head (neuron) is removable if its columns of the attention (FFN) output projection are all
    pruned: all False in ``masks`` (``{weight name: bool keep-mask}``) if that weight has a mask, else
    all zero in the weight. At least one head and one neuron per layer are kept.
    """
    out: dict[str, dict[str, list[int]]] = {}
    for block in require_blocks(model, "removing heads and neurons"):
        entry: dict[str, list[int]] = {}
        for kind, role, count in (("heads", "attn_out", block.num_heads),
                                  ("neurons", "ffn_out", block.num_neurons)):
            weight_name = block.linear(role) + ".weight"
            source = masks.get(weight_name) if masks is not None else None
            if source is None:
                weight = model.get_submodule(block.linear(role)).weight
                assert isinstance(weight, Tensor)  # an nn.Linear's (find_blocks checked the projections)
                source = weight.detach()
            gone = _zero_columns(source, count)
            if bool(gone.all()):
                gone[0] = False  # keep one (all zero: it adds nothing) so the layer stays valid
            entry[kind] = torch.nonzero(gone).flatten().tolist()
        out[block.layer] = entry
    return out


def _narrowed(linear: nn.Linear, rows: Tensor | None, cols: Tensor | None) -> nn.Linear:
    w = linear.weight.detach()
    b = linear.bias.detach() if linear.bias is not None else None
    if rows is not None:
        w = w.index_select(0, rows.to(w.device))
        b = b.index_select(0, rows.to(w.device)) if b is not None else None
    if cols is not None:
        w = w.index_select(1, cols.to(w.device))
    new = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if b is not None and new.bias is not None:
            new.bias.copy_(b)
    new.weight.requires_grad_(linear.weight.requires_grad)
    new.train(linear.training)
    return new


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def _set_head_attrs(attention: nn.Module, heads: int, head_size: int) -> None:
    for attr in _HEAD_COUNT_ATTRS:
        if isinstance(getattr(attention, attr, None), int):
            setattr(attention, attr, heads)
    for attr in _HEAD_WIDTH_ATTRS:
        if isinstance(getattr(attention, attr, None), int):
            setattr(attention, attr, heads * head_size)


def _record(model: nn.Module, linears: dict[str, list[int]], heads: dict[str, list[int]]) -> None:
    config = getattr(model, "config", None)
    if config is None:
        return
    old = getattr(config, STRUCTURE_KEY, None) or {}
    record = {"linears": {**old.get("linears", {}), **linears},
              "attention_heads": {**old.get("attention_heads", {}), **heads}}
    setattr(config, STRUCTURE_KEY, record)


@torch.no_grad()
def shrink(
    model: nn.Module, masks: Mapping[str, Tensor] | None = None, *, inplace: bool = False
) -> nn.Module:
    """Remove the removable heads and neurons (see :func:`removable_groups`), making Linear layers smaller.

    Returns the smaller model (a deep copy unless ``inplace=True``); its config records the new
    shapes (``config.sevenprune_structure``) so that :func:`save_structured` / :func:`load_structured`
    round-trip it. Masks of the removed rows/columns are not kept: the result is a plain dense model.

    >>> import transformers, torch
    >>> cfg = transformers.BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
    ...                               intermediate_size=4, vocab_size=10)
    >>> model = transformers.BertModel(cfg)
    >>> with torch.no_grad():
    ...     _ = model.encoder.layer[0].output.dense.weight[:, :2].zero_()   # neurons 0 and 1
    >>> small = shrink(model)
    >>> tuple(small.encoder.layer[0].intermediate.dense.weight.shape)
    (2, 8)
    """
    groups = removable_groups(model, masks)
    if not inplace:
        model = copy.deepcopy(model)
    linears: dict[str, list[int]] = {}
    head_record: dict[str, list[int]] = {}
    for block in find_blocks(model):
        gone = groups.get(block.layer, {"heads": [], "neurons": []})
        query_weight = model.get_submodule(block.query).weight
        assert isinstance(query_weight, Tensor)  # an nn.Linear's (find_blocks checked the projections)
        device = query_weight.device
        if gone["heads"]:
            keep_heads = [h for h in range(block.num_heads) if h not in set(gone["heads"])]
            d = block.head_size
            idx = torch.tensor([h * d + i for h in keep_heads for i in range(d)], device=device)
            for role in ("query", "key", "value"):
                lin = model.get_submodule(block.linear(role))
                assert isinstance(lin, nn.Linear)
                _set_module(model, block.linear(role), _narrowed(lin, idx, None))
            lin = model.get_submodule(block.attn_out)
            assert isinstance(lin, nn.Linear)
            _set_module(model, block.attn_out, _narrowed(lin, None, idx))
            _set_head_attrs(model.get_submodule(block.attention), len(keep_heads), d)
            head_record[block.attention] = [len(keep_heads), d]
        if gone["neurons"]:
            gone_set = set(gone["neurons"])
            idx = torch.tensor([j for j in range(block.num_neurons) if j not in gone_set], device=device)
            lin = model.get_submodule(block.ffn_in)
            assert isinstance(lin, nn.Linear)
            _set_module(model, block.ffn_in, _narrowed(lin, idx, None))
            lin = model.get_submodule(block.ffn_out)
            assert isinstance(lin, nn.Linear)
            _set_module(model, block.ffn_out, _narrowed(lin, None, idx))
        for role in _LINEAR_ROLES:
            lin = model.get_submodule(block.linear(role))
            assert isinstance(lin, nn.Linear)
            if (gone["heads"] and role in ("query", "key", "value", "attn_out")) or (
                gone["neurons"] and role in ("ffn_in", "ffn_out")
            ):
                linears[block.linear(role)] = [lin.out_features, lin.in_features]
    _record(model, linears, head_record)
    return model


def apply_structure(model: nn.Module, structure: Mapping[str, Any]) -> nn.Module:
    """Replace ``model``'s Linear layers by empty ones of the recorded shapes (in place; returns it).

    ``structure`` is what :func:`shrink` records in ``config.sevenprune_structure``.
    """
    if not isinstance(structure, Mapping) or "linears" not in structure:
        raise ValueError(f"not a sevenprune structure record (expected a dict with 'linears'): {structure!r}")
    for name, shape in structure["linears"].items():
        old = _get(model, name)
        if not isinstance(old, nn.Linear):
            raise ValueError(f"the structure names {name!r}, which is not a Linear layer of "
                             f"{type(model).__name__}")
        out_f, in_f = (int(x) for x in shape)
        new = nn.Linear(in_f, out_f, bias=old.bias is not None, device=old.weight.device,
                        dtype=old.weight.dtype)
        _set_module(model, name, new)
    for name, (heads, head_size) in structure.get("attention_heads", {}).items():
        module = _get(model, name)
        if module is None:
            raise ValueError(f"the structure names attention module {name!r}, absent from the model")
        _set_head_attrs(module, int(heads), int(head_size))
    return model


def save_structured(model: nn.Module, out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """``save_pretrained`` a (shrunken) transformers model, its structure recorded in its config."""
    out = check_may_write(out_dir, overwrite)
    save = getattr(model, "save_pretrained", None)
    if save is None:
        raise TypeError(f"save_structured needs a transformers PreTrainedModel, got {type(model).__name__}")
    if getattr(model.config, STRUCTURE_KEY, None) is None:
        setattr(model.config, STRUCTURE_KEY, {"linears": {}, "attention_heads": {}})
    save(str(out))
    return out


def build_empty(config_dir: str | os.PathLike[str], model_class: type[nn.Module] | None = None,
                dtype: torch.dtype | None = None) -> nn.Module:
    """The model described by ``config_dir/config.json`` (random weights), its recorded structure applied."""
    import transformers

    try:  # never run code shipped with a checkpoint
        config = transformers.AutoConfig.from_pretrained(str(config_dir), trust_remote_code=False)
    except (OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"cannot read {Path(config_dir) / 'config.json'} as a transformers config ({first})") \
            from None
    cls = model_class_for(config, model_class)
    model = cls(config)
    structure = getattr(config, STRUCTURE_KEY, None)
    if structure:
        apply_structure(model, structure)
    if dtype is not None:
        model.to(dtype)
    model.eval()
    return model


def load_structured(
    directory: str | os.PathLike[str], model_class: type[nn.Module] | None = None
) -> nn.Module:
    """Load a model written by :func:`save_structured` (or any ``save_pretrained`` dir), in eval mode."""
    directory = Path(directory)
    state = read_safetensors_dir(directory)
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    model = build_empty(directory, model_class, dtype=dtypes.pop() if len(dtypes) == 1 else None)
    load_state_into(model, state)
    return model
