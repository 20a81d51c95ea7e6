"""Load any export of :mod:`sevenprune.export` that is not ONNX: told apart by their files."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from ..structured import load_structured
from .compressed import COMPRESSED_FILE, load_compressed

__all__ = ["load_exported"]


def load_exported(directory: str | os.PathLike[str], model_class: type[nn.Module] | None = None) -> nn.Module:
    """Load a dense, compressed or structured export (told apart by their files), in eval mode."""
    directory = Path(directory)
    if (directory / COMPRESSED_FILE).is_file():
        return load_compressed(directory, model_class)
    return load_structured(directory, model_class)
