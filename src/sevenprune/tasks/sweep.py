"""Sweeps: methods x sparsities x seeds, each run in ``OUT/runs/<name>``, resumable.

A sweep that is interrupted and started again skips every finished run (one with ``result.json``)
whose configuration matches, restarts the run that was cut off, and loses none. A finished run whose
configuration differs from the sweep's is an error (use another output directory), never silently
reused or overwritten.

A sweep configuration (JSON or TOML file, or flags) holds ``methods``, ``sparsities``, ``seeds``,
``out``, optionally ``metric``, ``layers_run`` and ``variants``, and any run option (``task``,
``model``, ``max_steps``, ``lr``, ...; see :class:`~sevenprune.tasks.run.RunConfig`).

``variants`` names a method with its own options, so that one sweep can compare, say, SEVEN with and
without its noise discount: ``{"seven_nd": {"method": "seven", "method_options": {"noise_discount":
false}}}``; ``methods`` may then list ``"seven_nd"``. A variant's ``method_options`` are merged over
the sweep's; any other key of a variant (a run option such as ``exclude``) replaces the sweep's. A
variant of ``dense`` (say, another optimizer) runs once per seed, like ``dense``.

>>> [name for name, _ in expand({"methods": ["dense", "seven"], "sparsities": [0.5, 0.8], "seeds": [1]})]
['dense-seed1', 'seven-s0.5-seed1', 'seven-s0.8-seed1']
>>> spec = {"methods": ["seven_nd"], "sparsities": [0.8], "seeds": [1], "method_options": {"beta1": 0.8},
...         "variants": {"seven_nd": {"method": "seven", "method_options": {"noise_discount": False}}}}
>>> expand(spec)
[('seven_nd-s0.8-seed1', {'method_options': {'beta1': 0.8, 'noise_discount': False}, 'method': 'seven', 'seed': 1, 'sparsity': 0.8})]
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

from .._fsutil import SWEEP_MARKER, atomic_write_text, check_output_parent, has_marker, write_marker
from .._readers import read_json
from .config import RunConfig, config_differences, resolve_config
from .run import run
from .run_dir import check_run_dir, is_finished

__all__ = ["SWEEP_KEYS", "SWEEP_FILES", "check_types", "is_sweep_dir", "load_sweep_file", "resolve_input_paths",
           "expand", "run_name", "sweep"]

SWEEP_KEYS = ("methods", "sparsities", "seeds", "out", "metric", "layers_run", "variants")


def load_sweep_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A sweep configuration from a ``.json`` or ``.toml`` file (a table of keys; types checked)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"sweep config {str(path)!r} does not exist" if not path.exists()
                         else f"sweep config {str(path)!r} is not a file")
    if path.suffix not in (".toml", ".json"):
        raise ValueError(f"sweep config {str(path)!r}: unknown format; use a .json or .toml file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"sweep config {str(path)!r} is not UTF-8 text") from None
    if path.suffix == ".toml":
        try:
            spec: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"sweep config {str(path)!r} is not valid TOML ({exc})") from None
    else:
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"sweep config {str(path)!r} is not valid JSON ({exc.msg}: line {exc.lineno} "
                             f"column {exc.colno})") from None
        if not isinstance(spec, dict):
            raise ValueError(f"sweep config {str(path)!r}: expected a table of keys {{\"methods\": [...], ...}} at "
                             f"the top level, got a {type(spec).__name__}")
    check_types(spec, f"sweep config {str(path)!r}")
    return resolve_input_paths(dict(spec), path)


#: the run options that name something to read: in a sweep file, relative to the file's folder
INPUT_PATH_KEYS = ("data_dir", "cache_dir", "model", "layer_sparsity")


def resolve_input_paths(spec: dict[str, Any], config_file: str | os.PathLike[str]) -> dict[str, Any]:
    """``spec`` with its relative input paths (``data_dir``, ``cache_dir``, a ``model`` folder; also in
    ``variants``) taken relative to the folder of ``config_file``, as a configuration file's own
    references are, not to wherever the command runs. ``out`` stays relative to the current folder,
    like every ``--out``. A ``model`` that is a name (``minilm``, a hub name) is kept unless a model
    folder of that name lies beside the file or it starts with ``./`` or ``../``.

    >>> resolve_input_paths({"data_dir": "data", "model": "minilm", "out": "runs/x"}, "exp/sweep.json")
    {'data_dir': 'exp/data', 'model': 'minilm', 'out': 'runs/x'}
    """
    base = Path(config_file).parent

    def resolve(table: dict[str, Any]) -> dict[str, Any]:
        out = dict(table)
        for key in INPUT_PATH_KEYS:
            value = out.get(key)
            if not isinstance(value, str) or not value.strip() or os.path.isabs(value) or value.startswith("~"):
                continue
            if key == "model" and not (value.startswith(("./", "../")) or (base / value / "config.json").is_file()):
                continue
            out[key] = os.path.normpath(base / value)
        return out

    resolved = resolve(spec)
    if isinstance(spec.get("variants"), dict):
        resolved["variants"] = {k: resolve(v) if isinstance(v, dict) else v for k, v in spec["variants"].items()}
    return resolved


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


#: the sweep keys that are lists, and what each entry must be
_LIST_KEYS: dict[str, tuple[str, Any]] = {
    "methods": ("method names (strings)", lambda x: isinstance(x, str)),
    "sparsities": ("numbers in (0, 1)", lambda x: _is_number(x) and 0 < x < 1),
    "seeds": ("integers", lambda x: isinstance(x, int) and not isinstance(x, bool)),
}


def check_types(spec: dict[str, Any], where: str) -> None:
    """Refuse wrong types for the sweep's own keys, naming ``where``, the key and the value."""
    for key, (what, ok) in _LIST_KEYS.items():
        value = spec.get(key)
        if value is None:
            continue
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: {key!r} must be a list of {what}, got {value!r}")
        if not value:  # an empty list would silently become the default (seed 42) or nothing
            raise ValueError(f"{where}: {key!r} is an empty list; give at least one of {what}, or leave the key out")
        bad = [x for x in value if not ok(x)]
        if bad:
            raise ValueError(f"{where}: {key!r} must be a list of {what}; {bad[0]!r} is not")
    for key in ("out", "metric", "layers_run"):
        if spec.get(key) is not None and (not isinstance(spec[key], str) or not spec[key].strip()):
            raise ValueError(f"{where}: {key!r} must be a non-empty string, got {spec[key]!r}")


#: what a sweep writes into its folder
SWEEP_FILES = (SWEEP_MARKER, "sweep.json", "runs", "results.csv", "report.md", "curve.png", "layers.png")


def is_sweep_dir(out: str | os.PathLike[str]) -> bool:
    """Whether ``out`` is a sweep folder: its marker, or (a sweep from before markers) a ``sweep.json``
    object among only the names a sweep writes."""
    out = Path(out)
    if not out.is_dir():
        return False
    if has_marker(out, SWEEP_MARKER):
        return True
    names = {p.name for p in out.iterdir()}
    if "sweep.json" not in names or not names <= set(SWEEP_FILES):
        return False
    try:
        return isinstance(json.loads((out / "sweep.json").read_text(encoding="utf-8")), dict)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False


def _check_sweep_dir(out: Path) -> None:
    """A sweep writes into a new or empty folder, or one of its own (to resume); like ``run``, it refuses
    any other non-empty folder."""
    check_output_parent(out, "sweep --out")
    if out.is_dir() and any(out.iterdir()) and not is_sweep_dir(out):
        raise FileExistsError(f"sweep --out {out} is not empty and is not a sevenprune sweep folder (no "
                              f"{SWEEP_MARKER} inside); choose another --out")


def run_name(method: str, sparsity: float, seed: int) -> str:
    """``dense-seed1``, ``seven-s0.5-seed1``."""
    return f"dense-seed{seed}" if method == "dense" else f"{method}-s{sparsity:g}-seed{seed}"


def expand(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """``[(run name, run options)]`` for every method x sparsity x seed (dense once per seed)."""
    methods = list(spec.get("methods") or [])
    sparsities = [float(s) for s in spec.get("sparsities") or []]
    seeds = [int(s) for s in spec.get("seeds") or [42]]
    if not methods:
        raise ValueError("a sweep needs at least one method (--methods / \"methods\")")
    variant_methods = {k: v.get("method") for k, v in (spec.get("variants") or {}).items() if isinstance(v, dict)}
    if any(variant_methods.get(m, m) != "dense" for m in methods) and not sparsities:
        raise ValueError("a sweep with pruning methods needs sparsities (--sparsities / \"sparsities\")")
    base = {k: v for k, v in spec.items() if k not in SWEEP_KEYS}
    variants = _variants(spec.get("variants"))
    runs: list[tuple[str, dict[str, Any]]] = []
    for seed in seeds:
        for m in methods:
            method_opts = dict(base)
            if m in variants:
                variant = variants[m]
                merged = {**(base.get("method_options") or {}), **(variant.get("method_options") or {})}
                method_opts.update({k: v for k, v in variant.items() if k != "method_options"})
                if merged:
                    method_opts["method_options"] = merged
            dense = (variants[m]["method"] if m in variants else m) == "dense"
            for s in ([0.0] if dense else sparsities):
                opts = {**method_opts, "method": method_opts.get("method", m) if m in variants else m,
                        "seed": seed, "sparsity": None if dense else s}
                runs.append((f"{m}-seed{seed}" if dense else run_name(m, s, seed), opts))
    names = [name for name, _ in runs]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice is not None:  # one folder for two runs: the second would be skipped as "finished"
        raise ValueError(f"the sweep has two runs named {twice!r} (a method, sparsity or seed given twice, or "
                         "two sparsities that print alike); give each once")
    return runs


def _variants(value: Any) -> dict[str, dict[str, Any]]:
    """Check the ``variants`` table: ``{name: {"method": ..., other run options}}``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"sweep key 'variants' must be a table of named method variants, got {value!r}")
    for name, variant in value.items():
        if not isinstance(variant, dict) or not isinstance(variant.get("method"), str):
            raise ValueError(f"sweep variant {name!r} must be a table with a 'method' string, got {variant!r}")
        if name == "dense":
            raise ValueError("sweep variant name 'dense' is reserved for the unpruned model")
    return value


def sweep(spec: dict[str, Any], *, log: Any = print, stop_after: int | None = None) -> dict[str, Any]:
    """Run (or resume) the sweep ``spec`` and build its report; returns :func:`build_report`'s dict.

    ``stop_after`` (tests) stops after that many new runs, as an interruption would.
    """
    from .report import build_report

    unknown = sorted(set(spec) - set(SWEEP_KEYS) - set(RunConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown sweep key(s) {unknown}; valid keys are {list(SWEEP_KEYS)} and the run "
                         f"options {sorted(RunConfig.__dataclass_fields__)}")
    check_types(spec, "the sweep")
    out = Path(spec.get("out") or "runs/sweep")
    plan = [(name, resolve_config(opts)) for name, opts in expand(spec)]  # validates every run first
    _check_sweep_dir(out)
    for name, cfg in plan:  # every existing run folder checked before anything is written
        run_dir = out / "runs" / name
        if is_finished(run_dir):
            diff = config_differences(read_json(run_dir / "config.json"), cfg.to_dict())
            if diff:
                raise ValueError(f"{run_dir} is a finished run with another configuration (differs in {diff}); "
                                 f"use another sweep output directory (--out) or delete that run")
        else:
            check_run_dir(run_dir, overwrite=False)
    out.mkdir(parents=True, exist_ok=True)
    if not has_marker(out, SWEEP_MARKER):
        write_marker(out, SWEEP_MARKER)
    record = {k: v for k, v in spec.items()}
    record["out"] = str(out)
    atomic_write_text(out / "sweep.json", json.dumps(record, indent=2) + "\n")
    done = skipped = 0
    for i, (name, cfg) in enumerate(plan, 1):
        run_dir = out / "runs" / name
        if is_finished(run_dir):
            log(f"[{i}/{len(plan)}] {name}: finished earlier, skipped")
            skipped += 1
            continue
        if stop_after is not None and done >= stop_after:
            log(f"stopping after {done} new runs (stop_after)")
            return {"stopped": True, "done": done, "skipped": skipped}
        log(f"[{i}/{len(plan)}] {name} ...")
        result = run(cfg, run_dir, log=log)
        done += 1
        log(f"[{i}/{len(plan)}] {name}: {result['metric']} {result['metrics'][result['metric']]:.4f}, "
            f"sparsity {result['sparsity']:.3f}, {result['seconds']:.0f} s")
    report = build_report(out)
    report.update(done=done, skipped=skipped, stopped=False)
    return report
