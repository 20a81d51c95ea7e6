"""``--layer-sparsity FILE``: a sparsity per matrix for the one-shot methods (Wanda, SparseGPT).

A non-uniform allocation (OWL's, a search's, or the one another run reached) is a JSON object
``{weight name: fraction}``. The file may also be a run's ``result.json``, whose ``layers`` table holds
the sparsity every matrix ended with, or the run's folder: so that ``sevenprune run --method sparsegpt
--layer-sparsity runs/seven-s0.5-seed1`` prunes one shot with the allocation SEVEN_dyn's global ranking
reached (protocol L asks whether that allocation, rather than pruning during fine-tuning, is what helps).
``{seed}`` in the path is replaced by the run's seed, so that a sweep takes each seed's allocation from
the run of the same seed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._validate import check_sparsity
from ..oneshot import check_layer_sparsity

__all__ = ["layer_sparsity_path", "read_layer_sparsity", "check_overall"]


def layer_sparsity_path(template: str, seed: int) -> Path:
    """The file ``template`` names for ``seed`` (``{seed}`` replaced; a folder means its ``result.json``).

    >>> str(layer_sparsity_path("runs/seven-s0.5-seed{seed}/result.json", 2))
    'runs/seven-s0.5-seed2/result.json'
    """
    path = Path(template.replace("{seed}", str(seed)))
    return path / "result.json" if path.is_dir() else path


def read_layer_sparsity(template: str, seed: int) -> dict[str, float]:
    """``{weight name: sparsity}`` from the file of :func:`layer_sparsity_path`; errors name the file and
    the bad entry."""
    path = layer_sparsity_path(template, seed)
    if not path.is_file():
        raise ValueError(f"--layer-sparsity: {str(path)!r} does not exist (a JSON file of {{weight name: "
                         "sparsity}, a run's result.json or its folder)")
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--layer-sparsity: {str(path)!r} is not readable JSON ({exc})") from None
    if isinstance(data, Mapping) and isinstance(data.get("layers"), Mapping):
        data = data["layers"]  # a run's result.json
    if not isinstance(data, Mapping) or not data:
        raise ValueError(f"--layer-sparsity: {str(path)!r} must hold a JSON object {{weight name: sparsity}} (or "
                         "be a run's result.json, with its 'layers')")
    out: dict[str, float] = {}
    for name, value in data.items():  # each fraction now, so that a bad file fails before the model loads
        try:
            out[str(name)] = check_sparsity(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"--layer-sparsity: {str(path)!r}: the sparsity of {name!r}: {exc}") from None
    return out


def check_overall(per_matrix: Mapping[str, float], sizes: Mapping[str, int], sparsity: float, source: str,
                  tolerance: float = 0.01) -> float:
    """The fraction ``per_matrix`` prunes over all weights (``sizes``: every prunable weight's number of
    entries); an error when it names other weights than ``sizes`` (the check of
    :func:`sevenprune.oneshot.check_layer_sparsity`), or when that fraction is further than ``tolerance``
    from ``sparsity``, the run's ``--sparsity`` (which names the run and is what it is
    compared at).

    >>> check_overall({"a": 0.75, "b": 0.25}, {"a": 100, "b": 100}, 0.5, "f.json")
    0.5
    """
    try:  # the check prune_oneshot makes, here with the file's name and before the overall fraction
        check_layer_sparsity(per_matrix, sizes)
    except (TypeError, ValueError) as exc:
        # the likely cause, where the names differ (not where a fraction is out of range)
        hint = " (made for another model, or other --include/--exclude?)" if set(per_matrix) != set(sizes) else ""
        raise ValueError(f"--layer-sparsity {source}: {exc}{hint}") from None
    total = sum(sizes[n] for n in per_matrix)
    overall = sum(per_matrix[n] * sizes[n] for n in per_matrix) / total if total else 0.0
    if not math.isclose(overall, sparsity, abs_tol=tolerance):
        raise ValueError(f"--layer-sparsity {source}: its sparsities prune {overall:.4f} of the prunable weights, "
                         f"but --sparsity is {sparsity}; give the --sparsity it reaches")
    return overall
