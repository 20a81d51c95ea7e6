"""Short seeded pruning runs whose masks and weights are pinned in ``tests/data/golden.json``.

A restructuring must not change a number (see the developers' guide): ``tests/test_golden.py``
replays every run here and compares. The runs cover each selection path of the pruner: the sampled
band (more than 4 x 65,536 prunable entries), the sparse incremental path and the full path (a large
first jump), ``scope="local"``, ``mask_interval``, N:M, heads+neurons, and every method, including
the pruning-at-initialisation ones.

Models train in float64 so that the result does not hang on the CPU's float32 matmul kernels (masks
are compared exactly; weights by a float64 fingerprint to 1e-9, and exactly with
``SEVENPRUNE_GOLDEN_EXACT=1``). Regenerate (only when a change of numbers is intended, and say so in
the commit): ``python tests/golden_runs.py --write``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import sevenprune as sp

GOLDEN = Path(__file__).parent / "data" / "golden.json"


def medium_mlp(seed: int = 0) -> nn.Sequential:
    """About 590k prunable entries: above the threshold's 4 x 65,536 sampling limit."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(32, 1024), nn.ReLU(), nn.Linear(1024, 512), nn.ReLU(),
                         nn.Linear(512, 8)).double()


def small_mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4)).double()


def tiny_bert(seed: int = 0) -> nn.Module:
    import transformers

    torch.manual_seed(seed)
    config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=32, max_position_embeddings=32, num_labels=3)
    model = transformers.BertForSequenceClassification(config).double()
    model.eval()  # no dropout: the runs are deterministic
    return model


def _mlp_batches(in_dim: int, out: int, n: int, seed: int = 7) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, in_dim, generator=g, dtype=torch.float64), torch.randint(out, (16,), generator=g))
            for _ in range(n)]


def _bert_batches(n: int, seed: int = 7) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(64, (8, 12), generator=g), "labels": torch.randint(3, (8,), generator=g)}
            for _ in range(n)]


def _mlp_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch
    return nn.functional.cross_entropy(model(x), y)


def _bert_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    return model(**batch).loss


def _train(model: nn.Module, loss: Callable[[nn.Module, Any], torch.Tensor], batches: list[Any],
           pruner: sp.Pruner, lr: float = 0.05) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    pruner.attach(opt)
    for batch in batches:
        loss(model, batch).backward()
        opt.step()
        pruner.step()
        opt.zero_grad()


def _dyn(model_fn: Callable[[], nn.Module], method: str, sparsity: float, *, steps: int = 14, start: int = 2,
         window: int = 10, **kw: Any) -> Callable[[], tuple[nn.Module, sp.Pruner]]:
    def run() -> tuple[nn.Module, sp.Pruner]:
        model = model_fn()
        bert = not isinstance(model, nn.Sequential)
        pruner = sp.Pruner(model, method, sparsity, start, window, **kw)
        if bert:
            batches, loss = _bert_batches(steps), _bert_loss
        else:
            first = model[0]
            batches, loss = _mlp_batches(first.in_features, model[-1].out_features, steps), _mlp_loss
        _train(model, loss, batches, pruner)
        return model, pruner
    return run


def _init(model_fn: Callable[[], nn.Module], method: str, sparsity: float, **kw: Any
          ) -> Callable[[], tuple[nn.Module, sp.Pruner]]:
    def run() -> tuple[nn.Module, sp.Pruner]:
        model = model_fn()
        batches = _mlp_batches(model[0].in_features, model[-1].out_features, 4)
        pruner = sp.prune_at_init(model, method, sparsity, batches, _mlp_loss, steps=6, **kw)
        _train(model, _mlp_loss, _mlp_batches(model[0].in_features, model[-1].out_features, 3, seed=8), pruner)
        return model, pruner
    return run


def _oneshot(model_fn: Callable[[], nn.Module], method: str, sparsity: float | None, **kw: Any
             ) -> Callable[[], tuple[nn.Module, sp.Pruner]]:
    def run() -> tuple[nn.Module, sp.Pruner]:
        model = model_fn()
        calibration = [x for x, _ in _mlp_batches(model[0].in_features, model[-1].out_features, 4)]
        pruner = sp.prune_oneshot(model, method, sparsity, calibration, progress=False, **kw)
        _train(model, _mlp_loss, _mlp_batches(model[0].in_features, model[-1].out_features, 3, seed=8), pruner)
        return model, pruner
    return run


RUNS: dict[str, Callable[[], tuple[nn.Module, sp.Pruner]]] = {
    # the sampled band, the full path (first jump) and the sparse incremental path
    "seven-medium": _dyn(medium_mlp, "seven", 0.8),
    "seven_nd-medium": _dyn(medium_mlp, "seven", 0.8, noise_discount=False),
    "platon-medium": _dyn(medium_mlp, "platon", 0.8, delta_t=3),
    "seven-medium-local": _dyn(medium_mlp, "seven", 0.8, scope="local"),
    "seven-medium-interval3": _dyn(medium_mlp, "seven", 0.8, mask_interval=3),
    "seven-medium-bf16": _dyn(medium_mlp, "seven", 0.8, state_dtype=torch.bfloat16),
    "magnitude-medium": _dyn(medium_mlp, "magnitude", 0.9, window=4, steps=6),
    # every method on a small model (exact selection without sampling)
    "seven-small": _dyn(small_mlp, "seven", 0.7),
    "seven-small-signed": _dyn(small_mlp, "seven", 0.7, moments="signed"),
    "platon-small": _dyn(small_mlp, "platon", 0.7),
    "movement-small": _dyn(small_mlp, "movement", 0.7),
    "movement-adam-local-small": _dyn(small_mlp, "movement", 0.7, form="adam", scope="local"),
    "movement_instant-small": _dyn(small_mlp, "movement_instant", 0.7),
    "soft_movement-small": _dyn(small_mlp, "soft_movement", 0.7),
    # the same with plain SGD on the scores: no Adam normalisation, so no near-ties (portable exactly)
    "soft_movement-sgd-small": _dyn(small_mlp, "soft_movement", 0.7, score_optimizer="sgd"),
    "magnitude-local-small": _dyn(small_mlp, "magnitude", 0.7, scope="local"),
    "random-small": _dyn(small_mlp, "random", 0.7),
    "seven-small-2:4": _dyn(small_mlp, "seven", 0.5, pattern="2:4", exclude=r"^4\."),
    "seven-small-2:4-local": _dyn(small_mlp, "seven", 0.5, pattern="2:4", scope="local", exclude=r"^4\."),
    # heads and neurons
    "seven-bert-heads+neurons": _dyn(tiny_bert, "seven", 0.5, pattern="heads+neurons", steps=8, start=1, window=5),
    "seven-bert-neurons-local": _dyn(tiny_bert, "seven", 0.5, pattern="neurons", scope="local", steps=8, start=1,
                                     window=5),
    "platon-bert": _dyn(tiny_bert, "platon", 0.6, steps=8, start=1, window=5),
    # pruning at initialisation
    **{f"init-{m}": _init(small_mlp, m, 0.7) for m in ("snip", "grasp", "force", "seven", "magnitude", "random")},
    "init-force-iter_snip": _init(small_mlp, "force", 0.7, variant="iter_snip"),
    "seven_pre-small": _dyn(small_mlp, "seven", 0.7, start=0, window=6, steps=9),
    "init-snip-local": _init(small_mlp, "snip", 0.7, scope="local"),
    # one shot from calibration data (SparseGPT's weight updates are in the weights' fingerprint)
    "oneshot-wanda": _oneshot(small_mlp, "wanda", 0.5),
    "oneshot-sparsegpt": _oneshot(small_mlp, "sparsegpt", 0.5, blocksize=8),
    "oneshot-sparsegpt-2:4": _oneshot(small_mlp, "sparsegpt", None, pattern="2:4", blocksize=8),
}


#: Runs whose scores cluster within float rounding of each other, so that another CPU's rounding may flip a
#: tie early and the rest of the run then follows another path. Soft movement with Adam-trained scores:
#: each Adam step moves every score by about ``lr * sign(g)``, so after a few steps most scores differ only
#: in their last bits (measured: with ``ATEN_CPU_CAPABILITY=default`` instead of avx512 on one machine, 46 of
#: 1,088 mask entries differ; with avx2, none; on an AMD EPYC, 76 with its own kernels or avx2 and 84 with
#: ``default``, 2026-12-07, against a bound of 108 at 10 %). Their masks are compared exactly only with
#: ``SEVENPRUNE_GOLDEN_EXACT=1``; elsewhere the count must be exact and at most ``NEAR_TIE_SHARE`` of the
#: entries may differ: 20 %, since the spread across CPUs came within a quarter of 10 %. A broken soft
#: movement still fails it (a mask unrelated to the golden one differs in about 42 % of the entries at 70 %),
#: and its SGD twin, ``soft_movement-sgd-small``, pins the same code path exactly on every machine.
NEAR_TIES = {"soft_movement-small"}
NEAR_TIE_SHARE = 0.20
#: Every other run: entries that may differ on another machine (scores that tie within rounding: a flip
#: exchanges a pruned and a kept entry), at least 2, else 0.1 % of the prunable entries.
TIE_SHARE = 0.001


class GoldenTieWarning(UserWarning):
    """A golden run whose masks differ within the allowed ties (listed in pytest's summary, not an error)."""


def allowed_differences(name: str, numel: int) -> int:
    """How many mask entries of run ``name`` may differ from the golden file on another machine."""
    share = NEAR_TIE_SHARE if name in NEAR_TIES else TIE_SHARE
    return max(2, int(share * numel))


def _ordered_masks(pruner: sp.Pruner) -> list[tuple[str, torch.Tensor]]:
    return [*pruner.masks.items(), *sorted(pruner.extra_masks.items())]


def pack_masks(pruner: sp.Pruner) -> dict[str, str]:
    """Every mask as base64 of its zlib-compressed packed bits, so that a differing run can say how many
    entries differ (a hash only says that something did)."""
    return {name: base64.b64encode(zlib.compress(np.packbits(mask.cpu().numpy().reshape(-1)).tobytes(), 9)).decode()
            for name, mask in _ordered_masks(pruner)}


def unpack_mask(packed: str, numel: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(zlib.decompress(base64.b64decode(packed)), dtype=np.uint8))[:numel].astype(bool)


def fingerprint(model: nn.Module, pruner: sp.Pruner) -> dict[str, Any]:
    """Masks exactly (sha256 of their packed bits, and the bits themselves), weights exactly and as float64
    projections."""
    masks = hashlib.sha256()
    for name, mask in _ordered_masks(pruner):
        masks.update(name.encode())
        masks.update(np.packbits(mask.cpu().numpy().reshape(-1)).tobytes())
    weights = hashlib.sha256()
    projections = {}
    g = torch.Generator().manual_seed(0)
    for name, p in model.state_dict().items():
        if not p.is_floating_point():
            continue
        weights.update(p.detach().cpu().numpy().tobytes())
        direction = torch.rand(p.numel(), generator=g, dtype=torch.float64)
        projections[name] = float(p.detach().double().reshape(-1) @ direction)
    return {"masks": masks.hexdigest(), "pruned": int(sum(pruner._pruned.values())),
            "weights": weights.hexdigest(), "projections": projections, "mask_bits": pack_masks(pruner),
            "_masks": {name: mask.cpu().numpy().reshape(-1).astype(bool) for name, mask in _ordered_masks(pruner)}}


def compute(name: str) -> dict[str, Any]:
    torch.manual_seed(1234)
    with torch.random.fork_rng():
        model, pruner = RUNS[name]()
    return fingerprint(model, pruner)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"write {GOLDEN}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = {name: {k: v for k, v in compute(name).items() if not k.startswith("_")} for name in RUNS}
    if args.write:
        GOLDEN.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN} ({len(out)} runs)")
    else:
        print(json.dumps({k: v["masks"][:12] for k, v in out.items()}, indent=1))


if __name__ == "__main__":
    main()
