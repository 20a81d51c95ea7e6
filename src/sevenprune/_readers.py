"""Read the files this tool wrote, which may since have been truncated, corrupted or replaced.

Every error is a ``ValueError`` (or ``FileNotFoundError``) whose one-line message names the file, so
that the command line reports it without a traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import Tensor

__all__ = ["one_line", "read_json", "read_safetensors", "safetensors_metadata"]


def one_line(exc: BaseException) -> str:
    """An error for the command line, as one line (an OSError as its file name and reason, no errno)."""
    if isinstance(exc, OSError) and exc.strerror and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    text = " ".join(part.strip() for part in str(exc).splitlines() if part.strip())
    return text or type(exc).__name__


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_json(path: str | os.PathLike[str], *, expect: type = dict) -> Any:
    """Parse ``path`` as JSON whose top level is an ``expect`` (a dict by default)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a JSON file (not UTF-8 text)") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a folder, expected a JSON file") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})") from None
    if not isinstance(obj, expect):
        want = {"dict": "an object {...}", "list": "a list [...]"}.get(expect.__name__, expect.__name__)
        raise ValueError(f"{path}: expected {want} at the top level, got {type(obj).__name__}")
    return obj


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """All tensors of a ``.safetensors`` file (on the CPU); a damaged file is a ``ValueError`` naming it."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own SafetensorError (and OSError) on damaged files
        raise ValueError(f"{path} is not a readable safetensors file ({_first_line(exc)})") from None


def safetensors_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The ``__metadata__`` of a ``.safetensors`` file (its header only)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except Exception as exc:
        raise ValueError(f"{path} is not a readable safetensors file ({_first_line(exc)})") from None
