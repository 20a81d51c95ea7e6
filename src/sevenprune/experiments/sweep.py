"""Sweeps: methods x sparsities x seeds, each run in ``OUT/runs/<name>``, resumable.

A sweep that is interrupted and started again skips every finished run (one with ``result.json``)
whose configuration matches, restarts the run that was cut off, and loses none. A finished run whose
configuration differs from the sweep's is an error (use another output directory), never silently
reused or overwritten.

A sweep configuration (JSON or TOML file, or flags) holds ``methods``, ``sparsities``, ``seeds``,
``out``, optionally ``metric``, ``layers_run`` and ``variants``, and any run option (``task``,
``model``, ``max_steps``, ``lr``, ...; see :class:`~sevenprune.experiments.run.RunConfig`).

``variants`` names a method with its own options, so that one sweep can compare, say, SEVEN with and
without its noise discount: ``{"seven_nd": {"method": "seven", "method_options": {"noise_discount":
false}}}``; ``methods`` may then list ``"seven_nd"``. A variant's ``method_options`` are merged over
the sweep's; any other key of a variant (a run option such as ``exclude``) replaces the sweep's.

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

from .run import COSMETIC, RunConfig, is_finished, resolve_config, run

__all__ = ["SWEEP_KEYS", "load_sweep_file", "expand", "run_name", "sweep"]

SWEEP_KEYS = ("methods", "sparsities", "seeds", "out", "metric", "layers_run", "variants")


def load_sweep_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A sweep configuration from a ``.json`` or ``.toml`` file."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"sweep config {str(path)!r} does not exist")
    if path.suffix == ".toml":
        return tomllib.loads(path.read_text(encoding="utf-8"))
    if path.suffix == ".json":
        return dict(json.loads(path.read_text(encoding="utf-8")))
    raise ValueError(f"sweep config {str(path)!r}: unknown format; use a .json or .toml file")


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
    if any(m != "dense" for m in methods) and not sparsities:
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
            for s in ([0.0] if m == "dense" else sparsities):
                opts = {**method_opts, "method": method_opts.get("method", m) if m in variants else m,
                        "seed": seed, "sparsity": None if m == "dense" else s}
                runs.append((run_name(m, s, seed), opts))
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


def _differences(saved: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    keys = (set(saved) | set(wanted)) - set(COSMETIC) - {"resolved", "task_info", "code"}
    return sorted(k for k in keys if saved.get(k) != wanted.get(k))


def sweep(spec: dict[str, Any], *, log: Any = print, stop_after: int | None = None) -> dict[str, Any]:
    """Run (or resume) the sweep ``spec`` and build its report; returns :func:`build_report`'s dict.

    ``stop_after`` (tests) stops after that many new runs, as an interruption would.
    """
    from .report import build_report

    unknown = sorted(set(spec) - set(SWEEP_KEYS) - set(RunConfig.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown sweep key(s) {unknown}; valid keys are {list(SWEEP_KEYS)} and the run "
                         f"options {sorted(RunConfig.__dataclass_fields__)}")
    out = Path(spec.get("out") or "runs/sweep")
    plan = [(name, resolve_config(opts)) for name, opts in expand(spec)]  # validates every run first
    out.mkdir(parents=True, exist_ok=True)
    record = {k: v for k, v in spec.items()}
    record["out"] = str(out)
    (out / "sweep.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    done = skipped = 0
    for i, (name, cfg) in enumerate(plan, 1):
        run_dir = out / "runs" / name
        if is_finished(run_dir):
            saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
            diff = _differences(saved, cfg.to_dict())
            if diff:
                raise ValueError(f"{run_dir} is a finished run with another configuration (differs in {diff}); "
                                 f"use another sweep output directory (--out) or delete that run")
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
