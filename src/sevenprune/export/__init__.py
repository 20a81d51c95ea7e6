"""Export a pruned model: one module per format, this package's face is the public functions.

| format | writer | loader |
|---|---|---|
| ``dense`` (a ``save_pretrained`` folder, zeros stored) | :func:`export_dense` | ``from_pretrained`` / :func:`load_exported` |
| ``compressed`` (kept values + bit masks) | :func:`export_compressed` | :func:`load_compressed` / :func:`load_exported` |
| ``structured`` (heads and neurons removed) | :func:`export_structured` | :func:`load_exported` |
| ``onnx`` (optionally int8) | :func:`export_onnx` | :func:`onnx_session`, :func:`onnx_predict` |

:func:`export_run` exports a ``sevenprune run`` folder (its model and pruner state) in any of them.
"""

from .common import ExportReport
from .compressed import (COMPRESSED_FILE, COMPRESSED_FORMAT, COMPRESSED_MANIFEST, export_compressed, load_compressed,
                         pack_mask, unpack_mask)
from .dense import export_dense
from .load import load_exported
from .onnx import export_onnx, onnx_predict, onnx_session, quantize_int8
from .run import FORMATS, export_run, find_run_layout
from .structured import export_structured

__all__ = [
    "COMPRESSED_FILE",
    "COMPRESSED_FORMAT",
    "COMPRESSED_MANIFEST",
    "FORMATS",
    "ExportReport",
    "export_compressed",
    "export_dense",
    "export_onnx",
    "export_run",
    "export_structured",
    "find_run_layout",
    "load_compressed",
    "load_exported",
    "onnx_predict",
    "onnx_session",
    "pack_mask",
    "quantize_int8",
    "unpack_mask",
]
