"""How much one-shot magnitude N:M on SmolLM2 depends on how equal magnitudes are broken.

SmolLM2 ships as a Q4_1 GGUF file: each block of 32 weights takes one of 16 levels, so many weights of a
group of m inputs have exactly the same magnitude. Magnitude N:M then has no single answer for those
groups. sevenprune breaks ties by input index (a stable sort: the lower index is pruned first, as the
Pruner's N:M); locuslab/wanda's ``prune_magnitude`` (``lib/prune.py``) prunes
``torch.topk(W[:, i:i+m], m - n, largest=False)``, whose order among equal values PyTorch does not specify.

    python experiments/results/L/nm_ties.py count          # groups tied at the n-th/(n+1)-th largest, masks that
                                                           # differ; unstructured: weights at a tied threshold
    python experiments/results/L/nm_ties.py run 2:4 OUT    # protocol L's one-shot magnitude run, topk's tie-break
    python experiments/results/L/nm_ties.py pair OUT RUN   # OUT − RUN (a committed run) per test window, both test sets

``run`` is the protocol's command (L_oneshot_magnm.json's settings) with one private function replaced, so
that nothing but the tie-break differs: this is an experiment on the library, not a way to use it.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

from sevenprune import patterns

ROOT = Path(__file__).resolve().parents[3]
PATTERNS = ((2, 4), (4, 8))


def topk_keep_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep-mask of ``prune_magnitude`` in locuslab/wanda: per block of m columns, the m - n smallest by topk."""
    metric = weight.detach().abs().float()
    pruned = torch.zeros_like(metric, dtype=torch.bool)
    for i in range(0, metric.shape[1], m):
        pruned.scatter_(1, i + torch.topk(metric[:, i:i + m], m - n, dim=1, largest=False)[1], True)
    return ~pruned


def stable_keep_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Ours, from the library's own N:M selection at init: its candidates (finite scores) are the pruned."""
    metric = weight.detach().abs().float()
    keep_all = torch.ones_like(metric, dtype=torch.bool)
    return ~torch.isfinite(patterns._nm_candidate_scores(metric, keep_all, "matrix", n, m, "weight"))


def count() -> None:
    from sevenprune.tasks.lm_models import load_causal_lm  # noqa: PLC0415 (the model only for this command)

    torch.set_num_threads(1)
    model = load_causal_lm("smollm2")[0]
    linears = [mod for mod in model.model.layers.modules() if isinstance(mod, torch.nn.Linear)]
    for n, m in PATTERNS:
        groups = tied = differ = 0
        for lin in linears:
            w = lin.weight.detach()
            ordered = torch.sort(w.abs().reshape(w.shape[0], -1, m), dim=2).values
            tied += int((ordered[..., m - n - 1] == ordered[..., m - n]).sum())
            groups += ordered.shape[0] * ordered.shape[1]
            diff = (topk_keep_mask(w, n, m) != stable_keep_mask(w, n, m)).reshape(w.shape[0], -1, m)
            differ += int(diff.any(dim=2).sum())
        print(f"{n}:{m}: {groups} groups in {len(linears)} matrices; tied at the boundary {tied} ({tied / groups:.2%}); "
              f"topk's mask differs from ours in {differ} ({differ / groups:.2%})")
    for sparsity in (0.5, 0.7):  # unstructured, each matrix alike: the entries equal to a threshold that splits them
        at = total = 0
        for lin in linears:
            ordered = torch.sort(lin.weight.detach().abs().flatten()).values
            k = int(ordered.numel() * sparsity)
            if ordered[k] == ordered[k - 1]:
                at += int((ordered == ordered[k - 1]).sum())
            total += ordered.numel()
        print(f"unstructured {sparsity:.0%}: {at} of {total} weights ({at / total:.3%}) sit at a tied threshold")


# protocol L's one-shot magnitude N:M settings (L_oneshot_magnm.json; checked against it before a run)
CONFIG = ROOT / "experiments" / "results" / "L" / "L_oneshot_magnm.json"
SETTINGS = {"task": "causal-lm", "model": "smollm2", "batch_size": 8, "eval_batch_size": 8, "max_length": 128,
            "eval_limit": 256, "lr": 0.0001, "threads": 1, "calibration_samples": 128}


def settings_differ() -> list[str]:
    """The keys where SETTINGS no longer says what the protocol's configuration says."""
    import json  # noqa: PLC0415

    spec = json.loads(CONFIG.read_text(encoding="utf-8"))
    return [k for k, v in SETTINGS.items() if spec.get(k) != v]


def run(pattern: str, out: str) -> int:
    from sevenprune.cli import main  # noqa: PLC0415

    if stale := settings_differ():
        raise SystemExit(f"nm_ties: {CONFIG} changed ({', '.join(stale)}): update SETTINGS first")

    def topk_candidates(score: torch.Tensor, mask: torch.Tensor, kind: str, n: int, m: int, name: str) -> torch.Tensor:
        if kind != "matrix":
            raise SystemExit(f"nm_ties: {name!r} is a {kind}; this experiment covers nn.Linear weights only")
        metric = score.float()
        return torch.where(~topk_keep_mask(metric, n, m), metric.clamp(max=torch.finfo(metric.dtype).max), math.inf)

    patterns._nm_candidate_scores = topk_candidates  # the one change: candidates (the pruned) chosen by topk
    args = [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()]
    return main(["run", *args, "--method", "magnitude_init", "--pattern", pattern, "--sparsity", "0.5",
                 "--no-fine-tune", "--seed", "1", "--no-save-model", "--no-progress", "--out", out])


def pair(a: str, b: str) -> None:
    sys.path.insert(0, str(ROOT / "experiments" / "results"))
    from results_common import nats_text, paired_window_bootstrap, ratio_text  # noqa: PLC0415

    with np.load(Path(a) / "predictions.npz") as pa, np.load(Path(b) / "predictions.npz") as pb:
        for split, label in (("test", "held-out plays"), ("ptb", "PTB")):
            la, lb = pa[f"{split}.window_loss"], pb[f"{split}.window_loss"]
            r = paired_window_bootstrap([la], [lb])
            print(f"{label}: perplexity {math.exp(la.mean()):.1f} against {math.exp(lb.mean()):.1f}; "
                  f"difference {nats_text(r)} nats, {ratio_text(r)}, {r['verdict']} ({r['windows']} windows)")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["count"] and len(args) == 1:
        count()
    elif args[:1] == ["run"] and len(args) == 3:
        sys.exit(run(args[1], args[2]))
    elif args[:1] == ["pair"] and len(args) == 3:
        pair(args[1], args[2])
    else:
        sys.exit(__doc__)
