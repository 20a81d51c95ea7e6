"""ONNX export of a pruned model, optionally physically smaller (structured) and int8-quantized.

:func:`export_onnx` writes a directory holding ``model.onnx`` (one self-contained file: weights
inside), the exported model's ``config.json`` (labels, sizes) and, from a run directory, the
tokenizer or image processor (:func:`sevenprune.export.export_run` copies them).

* **Exporter and opset.** ``torch.onnx.export(..., dynamo=True)`` (the ``torch.export``-based exporter,
  the default of torch 2.9+, which handles transformers 5's attention code) at opset
  :data:`DEFAULT_OPSET` = 20, torch 2.13's default; onnxruntime 1.20+ runs it.
* **Inputs and outputs.** Text models take ``input_ids``, ``attention_mask`` and, when the model has
  more than one token type, ``token_type_ids`` (int64, axes ``batch`` and ``sequence`` dynamic); image
  models take ``pixel_values`` (``batch`` dynamic). The outputs are the tensors of the model's output
  object under their own names (``logits`` for a classifier).
* **structured=True** removes the entirely pruned attention heads and FFN neurons first
  (:func:`sevenprune.structured.shrink`), so the ONNX graph has narrower matrices; heads may differ
  from layer to layer, which ONNX expresses and a transformers 5 config does not. It refuses (``ValueError``)
  masks that remove no head or neuron: such a model would be exported whole.
* **quantize="int8"**: dynamic int8 quantization with onnxruntime's own tool
  (``onnxruntime.quantization.quantize_dynamic``, signed int8 weights, one scale per tensor): the
  weights of the matrix products are stored as int8 and activations are quantized on the fly. The
  file holds only the quantized model.
* **Check.** After writing, the model is run once in onnxruntime on the check inputs and compared
  with PyTorch; the largest absolute difference of the outputs is in ``report.extra["max_abs_diff"]``
  (about 1e-6 in fp32; int8 differs more, which is why quantized models need their accuracy measured).

:func:`onnx_session` opens an export in onnxruntime, :func:`onnx_predict` runs it on a tokenizer's
output (extra keys such as ``token_type_ids`` of a model that takes none are dropped).
"""

from __future__ import annotations

import copy
import inspect
import logging
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .common import ExportReport, check_export_model, checked_masks, file_sizes, param_count, write_staged

__all__ = [
    "DEFAULT_OPSET",
    "ONNX_FILE",
    "QUANTIZE_CHOICES",
    "export_onnx",
    "onnx_predict",
    "onnx_session",
    "quantize_int8",
    "removed_groups",
]

ONNX_FILE = "model.onnx"
DEFAULT_OPSET = 20
QUANTIZE_CHOICES = ("int8",)
# protobuf cannot hold a single file over 2 GiB: larger models keep their weights in model.onnx.data
_SINGLE_FILE_LIMIT = 1 << 31


def _require_onnx() -> None:
    missing = []
    for name in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(f"ONNX export needs {', '.join(missing)}: pip install 'sevenprune[onnx]'")


# -- what the model takes and returns -----------------------------------------------------------------------
def _input_names(model: nn.Module) -> list[str]:
    config = getattr(model, "config", None)
    if getattr(model, "main_input_name", "input_ids") == "pixel_values":
        return ["pixel_values"]
    takes = set(inspect.signature(model.forward).parameters)
    names = ["input_ids", "attention_mask"]
    # a single token type (RoBERTa, DistilBERT) needs no input: its tokenizers return none
    if "token_type_ids" in takes and int(getattr(config, "type_vocab_size", 1) or 1) > 1:
        names.append("token_type_ids")
    return [n for n in names if n in takes]


def _check_inputs(model: nn.Module, names: list[str]) -> dict[str, Tensor]:
    """Small inputs to trace with: batch 2 and 16 tokens (not 1: torch.export would fix a size-1 axis)."""
    config = getattr(model, "config", None)
    gen = torch.Generator().manual_seed(0)
    if names == ["pixel_values"]:
        size = int(getattr(config, "image_size", 224))
        channels = int(getattr(config, "num_channels", 3))
        return {"pixel_values": torch.randn(2, channels, size, size, generator=gen)}
    vocab = int(getattr(config, "vocab_size", 100))
    ids = torch.randint(min(5, vocab - 1), vocab, (2, 16), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0  # a padded row, so that the exported graph is checked on the mask as well
    out = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in names:
        out["token_type_ids"] = torch.zeros_like(ids)
        out["token_type_ids"][:, 8:] = 1
    return {n: out[n] for n in names}


class _Positional(nn.Module):
    """The model with named positional inputs and a tuple of output tensors, as the exporter wants."""

    def __init__(self, model: nn.Module, inputs: list[str], outputs: list[str]) -> None:
        super().__init__()
        self.model = model
        self.inputs = inputs
        self.outputs = outputs

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        result = self.model(**dict(zip(self.inputs, args)))
        return tuple(result[name] for name in self.outputs)


def _output_names(model: nn.Module, example: Mapping[str, Tensor]) -> tuple[list[str], dict[str, np.ndarray]]:
    with torch.inference_mode():
        result = model(**example)
    if isinstance(result, Tensor):
        raise TypeError(f"{type(model).__name__} returns a bare tensor; ONNX export needs a transformers "
                        "model that returns a ModelOutput")
    names = [k for k, v in result.items() if isinstance(v, Tensor)]
    return names, {k: result[k].detach().float().numpy() for k in names}


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's notices that do not concern the user (absent torchvision, shared axis names)."""
    logger = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # two axes share a name on purpose (every input's batch axis is the same batch)
            warnings.filterwarnings("ignore", message=r"# The axis name: .* will not be used", category=UserWarning)
            # torch 2.13's own exporter code still uses a pytree API it deprecates
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
            yield
    finally:
        logger.setLevel(level)


def _write_onnx(model: nn.Module, path: Path, example: dict[str, Tensor], outputs: list[str], opset: int) -> None:
    names = list(example)
    batch = torch.export.Dim("batch")
    seq = torch.export.Dim("sequence")
    # one entry per positional input: images have a dynamic batch, token inputs also a dynamic length
    dynamic = tuple({0: batch} if n == "pixel_values" else {0: batch, 1: seq} for n in names)
    wrapper = _Positional(model, names, outputs).eval()
    big = sum(p.numel() * p.element_size() for p in model.parameters()) >= _SINGLE_FILE_LIMIT
    with _quiet_exporter():
        torch.onnx.export(wrapper, tuple(example[n] for n in names), str(path), dynamo=True,
                          input_names=names, output_names=outputs, dynamic_shapes=(dynamic,),
                          opset_version=opset, external_data=big, verbose=False)


# -- int8 ----------------------------------------------------------------------------------------------------------
class _NoPreprocessHint(logging.Filter):
    """Drop the quantizer's advice to pre-process: its symbolic shape inference fails on dynamo graphs
    ("Incomplete symbolic shape inference"), so this module cannot follow it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Dynamic int8 quantization of ``src`` into ``dst`` (``onnxruntime.quantization.quantize_dynamic``)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src))
    # The dynamo exporter records intermediate shapes (value_info) that onnx's shape inference, which
    # the quantizer runs first, rejects for some nodes ("Inferred shape and existing shape differ"):
    # drop them and let the quantizer infer them again.
    del model.graph.value_info[:]
    plain = dst.with_name(dst.stem + ".noshapes.onnx")
    big = src.with_name(src.name + ".data").exists()  # the exporter kept the weights outside
    onnx.save(model, str(plain), save_as_external_data=big, location=plain.name + ".data")
    hint = _NoPreprocessHint()
    logging.getLogger().addFilter(hint)  # the quantizer logs on the root logger
    try:
        quantize_dynamic(str(plain), str(dst), weight_type=QuantType.QInt8, use_external_data_format=big)
    finally:
        logging.getLogger().removeFilter(hint)
        plain.unlink(missing_ok=True)
        plain.with_name(plain.name + ".data").unlink(missing_ok=True)


# -- onnxruntime -----------------------------------------------------------------------------------------------
def onnx_session(path: str | os.PathLike[str], *, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU for ``path`` (an export directory or a ``.onnx`` file).

    ``threads``: intra-op threads (default: onnxruntime's choice, all cores).
    """
    _require_onnx()
    import onnxruntime as ort

    path = Path(path)
    if path.is_dir():
        path = path / ONNX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX model at {path} (written by sevenprune export --format onnx)")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_predict(session: Any, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Run ``session`` on ``inputs`` (tensors or arrays, e.g. a tokenizer's output); ``{output name: array}``.

    Keys the model does not take are dropped; integer inputs are given as int64.
    """
    feeds: dict[str, np.ndarray] = {}
    for spec in session.get_inputs():
        if spec.name not in inputs:
            raise ValueError(f"the ONNX model needs input {spec.name!r}; got {sorted(inputs)}")
        value = inputs[spec.name]
        array = value.detach().cpu().numpy() if isinstance(value, Tensor) else np.asarray(value)
        feeds[spec.name] = array.astype(np.int64) if spec.type == "tensor(int64)" else array.astype(np.float32)
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


# -- export --------------------------------------------------------------------------------------------------------
def removed_groups(model: nn.Module, masks: Mapping[str, Tensor] | None) -> tuple[int, int]:
    """``(heads, neurons)`` that :func:`sevenprune.structured.shrink` would remove, over all layers."""
    from ..structured import removable_groups

    groups = removable_groups(model, masks).values()
    return sum(len(g["heads"]) for g in groups), sum(len(g["neurons"]) for g in groups)


def export_onnx(
    model: nn.Module,
    masks: Mapping[str, Tensor] | Any | None,
    out_dir: str | os.PathLike[str],
    *,
    structured: bool = False,
    quantize: str | None = None,
    opset: int = DEFAULT_OPSET,
    pattern: str | None = None,
    overwrite: bool = False,
    verbose: bool = True,
    protect: Sequence[str | os.PathLike[str]] = (),
) -> ExportReport:
    """Write the pruned ``model`` as ``out_dir/model.onnx`` (+ ``config.json``); returns an ``ExportReport``.

    ``masks``: ``{weight name: bool keep-mask}`` (``pruner.masks``), a Pruner, or ``None`` (the zeros
    of the prunable weights); they must already be applied. ``structured``: remove the entirely pruned
    heads and FFN neurons first (``ValueError`` if there are none; ``pattern``, the run's pruning
    pattern, only makes that message precise). ``quantize``: ``None`` or ``"int8"``.

    In the report, ``pruned_bytes`` counts the masked weights' entries that remain in the exported
    model at 4 bytes each (1 with int8), an estimate: ONNX renames and may transpose initializers.
    """
    from ..pruner import Pruner
    from ..structured import shrink

    _require_onnx()
    if quantize not in (None, *QUANTIZE_CHOICES):
        raise ValueError(f"unknown quantization {quantize!r}; choose one of {list(QUANTIZE_CHOICES)} or None")
    if isinstance(masks, Pruner) and pattern is None:
        pattern = masks.pattern
    check_export_model(model)
    checked = checked_masks(model, masks)
    dense_params = param_count(model)
    extra: dict[str, Any] = {"opset": opset, "quantize": quantize, "structured": structured,
                             "exporter": f"torch.onnx.export(dynamo=True), torch {torch.__version__}"}
    if structured:
        heads, neurons = removed_groups(model, checked)
        if heads == neurons == 0:
            raise ValueError(
                "a structured export removes the attention heads and FFN neurons that are entirely pruned, "
                f"and these masks (pattern {pattern or 'unknown'!r}) remove none: prune with pattern "
                "'heads', 'neurons' or 'heads+neurons', or export without --structured")
        extra.update(heads_removed=heads, neurons_removed=neurons)
        exported = shrink(model, checked).eval()
    else:
        exported = copy.deepcopy(model).eval()
    if getattr(getattr(exported, "config", None), "use_cache", None):
        # a decoder LM is exported without its KV cache: input_ids + attention_mask -> logits over the
        # whole sequence (generation step by step would need the cache as inputs and outputs)
        exported.config.use_cache = False  # type: ignore[union-attr]
    example = _check_inputs(exported, _input_names(exported))
    outputs, expected = _output_names(exported, example)
    extra.update(inputs=list(example), outputs=outputs)

    def write(tmp: Path) -> None:
        if quantize is None:
            _write_onnx(exported, tmp / ONNX_FILE, example, outputs, opset)
        else:
            fp32 = tmp / "fp32"
            fp32.mkdir()
            _write_onnx(exported, fp32 / ONNX_FILE, example, outputs, opset)
            quantize_int8(fp32 / ONNX_FILE, tmp / ONNX_FILE)
            for f in fp32.iterdir():
                f.unlink()
            fp32.rmdir()
        exported.config.save_pretrained(str(tmp))  # type: ignore[operator, union-attr]
        got = onnx_predict(onnx_session(tmp), example)
        extra["max_abs_diff"] = max(float(np.abs(got[k] - expected[k]).max()) for k in outputs)

    out = write_staged(out_dir, overwrite, write, protect)
    params = dict(exported.named_parameters())
    bytes_per_entry = 1 if quantize == "int8" else 4
    stored = sum(params[n].numel() * bytes_per_entry for n in checked if n in params)
    dense32 = sum(4 * m.numel() for m in checked.values())
    pruned = sum(int((~m).sum()) for m in checked.values())
    numel = sum(m.numel() for m in checked.values())
    files = file_sizes(out)
    total = sum(files.values())
    report = ExportReport("onnx", str(out), files, total, len(checked), stored, dense32, max(total - stored, 0),
                          dense_params, param_count(exported), pruned / numel if numel else 0.0, extra=extra)
    if verbose:
        print(report.summary())
    return report
