"""The layout of a pruner's state (``Pruner.state_dict()``) and how states of older versions read.

A state is ``{"format", "config", "step", "observed_steps", "skipped_steps", "shapes", "masks",
"importance", "extra_masks"}``: tensors under ``"masks"``, ``"importance"`` and ``"extra_masks"``,
everything else JSON. A field or a method option added later is read from an older state with its
default, which is always the behaviour from before it existed (:func:`normal_config`). The checks here
say why a state does not fit a pruner: another format, another configuration, another model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from .importance import get_method, methods

__all__ = ["STATE_FORMAT", "CONFIG_DEFAULTS", "normal_config", "check_fits", "loaded_masks", "loaded_extra_masks",
           "saved_method"]

#: identifies the layout of ``Pruner.state_dict()``; bumped on incompatible changes
STATE_FORMAT = "sevenprune.pruner/1"

#: the configuration of a state saved before a field existed is read with the field's default
CONFIG_DEFAULTS: dict[str, Any] = {"include": None, "exclude": None, "state_dtype": "float32",
                                   "pattern": "unstructured", "scope": "global", "mask_interval": 1,
                                   "method_options": {}}


def _option_defaults(method: Any) -> Mapping[str, Any]:
    """The registered defaults of ``method``'s options ({} for masks chosen outside the registry). A new
    option's default is the behaviour from before the option existed, so it is also what an older state
    ran with."""
    return get_method(method).defaults if isinstance(method, str) and method in methods() else {}


def normal_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration as JSON holds it, with the defaults of fields and method options an older state
    lacks (a state saved before ``noise_discount`` or GraSP's ``variant`` existed still loads)."""
    out = {**CONFIG_DEFAULTS, **json.loads(json.dumps(dict(config)))}
    if isinstance(out["method_options"], dict):
        out["method_options"] = {**_option_defaults(out.get("method")), **out["method_options"]}
    return out


def saved_method(state: Any) -> tuple[str, dict[str, Any]]:
    """``(method, the rest of the configuration)`` of a state, its older fields completed."""
    if not isinstance(state, Mapping) or not isinstance(state.get("config"), Mapping):
        raise ValueError("not a sevenprune pruner state (no 'config'); pass a Pruner.state_dict() or "
                         "sevenprune.read_state(path)")
    config = normal_config(state["config"])
    method = config.pop("method", None)
    if not isinstance(method, str):
        raise ValueError(f"the pruner state's configuration names no method (method {method!r})")
    return method, config


def _config_differences(saved: Mapping[str, Any], mine: Mapping[str, Any]) -> list[str]:
    """``"field: state X, pruner Y"`` for each field where two configurations differ."""
    saved, mine = normal_config(saved), normal_config(mine)
    return [f"{k}: state {saved.get(k)!r}, pruner {mine.get(k)!r}"
            for k in sorted(set(saved) | set(mine)) if saved.get(k) != mine.get(k)]


def check_fits(state: Mapping[str, Any], config: Mapping[str, Any], params: Mapping[str, Tensor]) -> None:
    """Refuse a state of another format, of another configuration than ``config`` (naming the fields
    that differ) or of another model (naming the weights whose names or shapes differ)."""
    if state.get("format") != STATE_FORMAT:
        raise ValueError(f"not a sevenprune pruner state (format {state.get('format')!r}, "
                         f"expected {STATE_FORMAT!r})")
    differences = _config_differences(state["config"], config)
    if differences:
        raise ValueError("this pruner state has another configuration than the pruner ("
                         + "; ".join(differences) + "); build the pruner from the state with "
                         "sevenprune.Pruner.from_state(model, state) or sevenprune.load_state(path, model)")
    saved = {n: tuple(s) for n, s in state["shapes"].items()}
    mine = {n: tuple(p.shape) for n, p in params.items()}
    if saved != mine:
        only_saved = sorted(set(saved) - set(mine))[:5]
        only_mine = sorted(set(mine) - set(saved))[:5]
        shape_diff = [f"{n}: saved {saved[n]}, model {mine[n]}" for n in saved
                      if n in mine and saved[n] != mine[n]][:5]
        raise ValueError(
            "this pruner state belongs to another model: "
            + "; ".join(x for x in (
                f"weights only in the state: {only_saved}" if only_saved else "",
                f"weights only in the model: {only_mine}" if only_mine else "",
                f"shapes differ: {shape_diff}" if shape_diff else "") if x)
        )


def loaded_masks(state: Mapping[str, Any], params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The state's masks, each a bool copy on its weight's device."""
    masks = {}
    for n, p in params.items():
        m = state["masks"][n]
        if m.dtype != torch.bool:
            raise ValueError(f"mask {n!r} has dtype {m.dtype}, expected torch.bool")
        masks[n] = m.to(p.device).clone()
    return masks


def loaded_extra_masks(state: Mapping[str, Any], model: nn.Module) -> dict[str, Tensor]:
    """The state's masks of other parameters (biases of removed heads), each on its parameter's device."""
    devices = {n: p.device for n, p in model.named_parameters()}
    return {n: m.to(devices.get(n, m.device)).clone() for n, m in state.get("extra_masks", {}).items()}
