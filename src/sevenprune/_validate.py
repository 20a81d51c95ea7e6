"""The argument checks and small policies shared by the library's modules (one place for each).

Every error names the bad value and, where there is a list, the valid choices. Nothing here imports
another module of the package, so any module may import it.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any

import torch

__all__ = ["SCOPES", "STATE_DTYPES", "check_int", "check_sparsity", "check_scope", "state_dtype",
           "dtype_name", "check_not_a_file", "check_may_write", "unwrap_optimizer"]

#: where the pruned count is reached: over all prunable weights together, or in each matrix
SCOPES = ("global", "local")

#: ``state_dtype`` by name (in configurations, saved states and on the command line)
STATE_DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16,
                                        "float16": torch.float16, "float64": torch.float64}


def check_int(value: Any, name: str, minimum: int) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) ``>= minimum``.

    >>> check_int(3, "steps", 1)
    3
    >>> check_int(0, "steps", 1)
    Traceback (most recent call last):
    ...
    ValueError: steps must be >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_sparsity(value: Any) -> float:
    """A sparsity (the fraction of prunable weights set to zero) as a ``float`` in ``[0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"sparsity must be a number in [0, 1) (the fraction set to zero), got {value!r}")
    if not (0.0 <= float(value) < 1.0) or math.isnan(float(value)):
        raise ValueError(
            f"sparsity must be in [0, 1) (the fraction of prunable weights set to zero), got {value!r}"
        )
    return float(value)


def check_scope(value: Any) -> str:
    """One of :data:`SCOPES`."""
    if value not in SCOPES:
        raise ValueError(f"scope must be one of {list(SCOPES)}, got {value!r}")
    return str(value)


def state_dtype(value: Any) -> torch.dtype:
    """A ``state_dtype`` given as a ``torch.dtype`` or by name (a key of :data:`STATE_DTYPES`).

    >>> state_dtype("bfloat16")
    torch.bfloat16
    """
    if isinstance(value, str):
        if value not in STATE_DTYPES:
            raise ValueError(f"unknown state_dtype {value!r}; choose one of {sorted(STATE_DTYPES)}")
        return STATE_DTYPES[value]
    if value not in STATE_DTYPES.values():
        raise ValueError(f"state_dtype must be one of torch.{', torch.'.join(STATE_DTYPES)} (or its name), "
                         f"got {value!r}")
    return value  # type: ignore[no-any-return]


def dtype_name(dtype: torch.dtype) -> str:
    """The name of a ``state_dtype`` in :data:`STATE_DTYPES` (``torch.bfloat16`` -> ``"bfloat16"``)."""
    return str(dtype).replace("torch.", "")


def check_not_a_file(path: str | os.PathLike[str], what: str = "") -> Path:
    """``path`` as a ``Path``, refused if it exists and is not a directory (an output directory)."""
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        label = f"{what} {directory}" if what else str(directory)
        raise FileExistsError(f"{label} exists and is not a directory; pass a directory path")
    return directory


def check_may_write(path: str | os.PathLike[str], overwrite: bool, hint: str = "") -> Path:
    """``path`` as a ``Path``, refused (``FileExistsError``) if it is a file, or a non-empty directory
    while ``overwrite`` is false: an output directory is written only when new or empty, or when asked.

    ``hint`` names the command-line flag of ``overwrite`` if there is one (``" (--overwrite)"``).
    """
    directory = Path(path)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())) and not overwrite:
        raise FileExistsError(f"{directory} exists and is not empty; pass overwrite=True{hint} or choose another "
                              f"output directory")
    return directory


def unwrap_optimizer(optimizer: Any) -> torch.optim.Optimizer:
    """The innermost torch optimizer of a wrapper that keeps it in ``.optimizer`` (Accelerate's
    ``AcceleratedOptimizer``, the HF Trainer's optimizer); any other optimizer is returned as is.

    >>> opt = torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)
    >>> unwrap_optimizer(opt) is opt
    True
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    inner: torch.optim.Optimizer = optimizer
    seen = {id(inner)}
    while isinstance(wrapped := getattr(inner, "optimizer", None), torch.optim.Optimizer):
        inner = wrapped
        if id(inner) in seen:  # a wrapper pointing to itself
            break
        seen.add(id(inner))
    return inner
