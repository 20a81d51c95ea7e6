"""Two-process CPU (gloo) runs for the distributed tests.

Run directly by ``torchrun`` it is the worker::

    torchrun --standalone --nproc_per_node 2 tests/_ddp_worker.py OUT_DIR ddp,mismatch,...

and writes ``OUT_DIR/rank<r>.json`` with one result per scenario. Imported (by the tests, as ``from _ddp_worker import scenario``), its
:func:`results` launches that command once per test session for every scenario (one launch costs
seconds of process start-up on this machine; the scenarios themselves take well under a second) and
returns ``{scenario: [result of rank 0, result of rank 1]}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCENARIOS = ["ddp", "mismatch", "unsynced", "threshold", "threshold_errors", "fsdp2", "fsdp2_pruner",
             "fsdp2_pruner_local", "accelerate", "trainer", "ddp_optimizer_moments", "fsdp2_optimizer_moments"]
TIMEOUT_S = 150
_CACHE: dict[str, Any] = {}


def results() -> dict[str, list[dict[str, Any]]]:
    """Launch the 2-process run once (per session) and return every scenario's per-rank results."""
    if "results" not in _CACHE:
        out = Path(tempfile.mkdtemp(prefix="sevenprune-ddp-"))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(Path(__file__).resolve()), str(out), ",".join(SCENARIOS)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
            log = proc.stdout[-4000:] + proc.stderr[-4000:]
            ok = proc.returncode == 0
        except subprocess.TimeoutExpired as exc:
            log, ok = f"timed out after {TIMEOUT_S} s: {exc}", False
        ranks = [out / f"rank{r}.json" for r in range(2)]
        if not ok or not all(p.is_file() for p in ranks):
            _CACHE["results"] = RuntimeError(f"torchrun failed:\n{log}")
        else:
            per_rank = [json.loads(p.read_text()) for p in ranks]
            _CACHE["results"] = {name: [r[name] for r in per_rank] for name in SCENARIOS}
    value = _CACHE["results"]
    if isinstance(value, Exception):
        raise value
    return value  # type: ignore[no-any-return]


def scenario(name: str) -> list[dict[str, Any]]:
    """One scenario's per-rank results; fails the test with the rank's traceback if it crashed."""
    per_rank = results()[name]
    for r, result in enumerate(per_rank):
        assert "crashed" not in result, f"rank {r}:\n{result['crashed']}"
    return per_rank


# ---------------------------------------------------------------------------------------------------
# worker side (runs under torchrun)
# ---------------------------------------------------------------------------------------------------
def _mlp(seed: int = 0) -> Any:
    import torch
    from torch import nn

    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def _train(model: Any, forward: Any, pruner: Any, optimizer: Any, steps: int, rank: int) -> list[float]:
    """A plain loop where every rank reads different data (so unsynchronised gradients differ)."""
    import torch

    g = torch.Generator().manual_seed(100 + rank)
    losses = []
    for _ in range(steps):
        x = torch.randn(8, 12, generator=g)
        y = torch.randint(0, 3, (8,), generator=g)
        loss = torch.nn.functional.cross_entropy(forward(x), y)
        loss.backward()
        optimizer.step()
        pruner.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    return losses


def _same_on_all_ranks(t: Any) -> bool:
    """Gathers the full tensor (test only) and compares it across ranks."""
    import torch
    import torch.distributed as dist

    t = t.detach().to(torch.float64) if t.dtype != torch.bool else t.to(torch.uint8)
    out = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(out, t.contiguous())
    return all(torch.equal(out[0], o) for o in out[1:])


def scenario_ddp_optimizer_moments(rank: int) -> dict[str, Any]:
    """SEVEN reading AdamW's moments (``moments="optimizer"``, bf16 score) under DDP: the optimizer's
    moments are those of the all-reduced gradients, so every rank scores and prunes alike."""
    return scenario_ddp(rank, moments="optimizer", state_dtype="bfloat16")


def scenario_ddp(rank: int, **options: Any) -> dict[str, Any]:
    import torch
    from torch.nn.parallel import DistributedDataParallel as DDP

    import sevenprune as sp
    from sevenprune import distributed

    calls = []
    original = distributed.check_masks_consistent

    def counting(masks: Any, **kw: Any) -> None:
        calls.append(1)
        original(masks, **kw)

    distributed.check_masks_consistent = counting  # the pruner imports it at call time
    try:
        model = _mlp()
        ddp = DDP(model)
        opt = torch.optim.AdamW(ddp.parameters(), lr=1e-2)
        pruner = sp.Pruner(ddp.module, "seven", sparsity=0.75, start_step=1, prune_steps=4, optimizer=opt,
                           **options)
        losses = _train(ddp, ddp, pruner, opt, steps=7, rank=rank)
    finally:
        distributed.check_masks_consistent = original
    if not options:
        _CACHE["ddp_pruner"] = pruner
    return {
        "names": list(pruner.masks),
        "sparsity": pruner.sparsity(),
        "numel": pruner.numel,
        "losses": losses,
        "checks": len(calls),
        "masks_equal": all(_same_on_all_ranks(m) for m in pruner.masks.values()),
        "weights_equal": all(_same_on_all_ranks(p) for p in model.parameters()),
        "zeros_where_pruned": all(bool((p[~pruner.masks[n]] == 0).all()) for n, p in pruner.params.items()),
    }


def _expect_error(fn: Callable[[], Any]) -> dict[str, Any]:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - reported to the test
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"error": None}


def scenario_mismatch(rank: int) -> dict[str, Any]:
    import torch

    from sevenprune.distributed import check_masks_consistent

    pruner = _CACHE["ddp_pruner"]
    masks = {n: m.clone() for n, m in pruner.masks.items()}
    out: dict[str, Any] = {"equal": _expect_error(lambda: check_masks_consistent(masks))}
    # same number of kept entries, one kept and one pruned entry swapped on rank 1 only
    swapped = {n: m.clone() for n, m in masks.items()}
    if rank == 1:
        flat = swapped["2.weight"].view(-1)
        i, j = int(torch.nonzero(flat)[0]), int(torch.nonzero(~flat)[0])
        flat[i], flat[j] = False, True
    out["swapped"] = _expect_error(lambda: check_masks_consistent(swapped))
    flipped = {n: m.clone() for n, m in masks.items()}
    if rank == 0:
        flipped["4.weight"].view(-1)[0] ^= True
    out["flipped"] = _expect_error(lambda: check_masks_consistent(flipped))
    fewer = dict(masks) if rank == 0 else {n: m for n, m in masks.items() if n != "4.weight"}
    out["layout"] = _expect_error(lambda: check_masks_consistent(fewer))
    return out


def scenario_unsynced(rank: int) -> dict[str, Any]:
    """No DDP: gradients are not all-reduced, so the ranks' masks diverge at the first mask update."""
    import torch

    import sevenprune as sp

    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    pruner = sp.Pruner(model, "seven", sparsity=0.5, start_step=0, prune_steps=3, optimizer=opt)
    result = _expect_error(lambda: _train(model, model, pruner, opt, steps=3, rank=rank))
    result["step"] = pruner.step_count
    return result


def _threshold_cases() -> list[dict[str, Any]]:
    """Score sets (identical on every rank: fixed seeds) and ways of sharding them over 2 ranks."""
    import torch

    g = torch.Generator().manual_seed(5)
    normal = [torch.randn(7, 5, generator=g), torch.randn(40, generator=g), torch.randn(3, 11, generator=g)]
    ties = [torch.randint(0, 3, (6, 6), generator=g).float(), torch.randint(0, 3, (50,), generator=g).float()]
    pinned = [t.clone() for t in normal]
    for t in pinned:
        t.view(-1)[::3] = float("-inf")  # already pruned entries, as the pruner's scores hold them
        t.view(-1)[1::4] = 0.5  # and a block of ties
    big = [torch.randn(3000, generator=g), torch.randint(0, 20, (2000,), generator=g).float()]
    return [
        {"name": "normal", "scores": normal, "ks": [1, 30, 61, 107]},
        {"name": "ties", "scores": ties, "ks": [1, 20, 43, 44, 85]},
        {"name": "pinned", "scores": pinned, "ks": [30, 40, 70, 100]},
        {"name": "narrowing", "scores": big, "ks": [1, 999, 2500, 4321],
         "options": {"gather_limit": 64, "sample_size": 256}},
        {"name": "all_or_none", "scores": ties, "ks": [0, 86]},
    ]


def _pieces(scores: list[Any], scheme: str, rank: int) -> list[tuple[int, Any]]:
    """(global offset, local tensor) pieces of this rank."""
    offsets, base = [], 0
    for s in scores:
        offsets.append(base)
        base += s.numel()
    flat = [s.reshape(-1) for s in scores]
    if scheme == "rows":  # FSDP-like: each weight split by rows (torch.chunk), rank 0 first
        out = []
        for s, off in zip(scores, offsets):
            chunks = list(s.chunk(2, dim=0))
            row = s[0].numel() if s.dim() > 1 else 1
            start = 0 if rank == 0 else chunks[0].shape[0]
            if rank < len(chunks):
                out.append((off + start * row, chunks[rank]))
        return out
    if scheme == "interleaved":  # ragged slices of the global order, alternating between ranks
        whole = torch_cat(flat)
        cuts = [0, 5, 6, 29, 30, 31, whole.numel() // 2, whole.numel() - 3, whole.numel()]
        return [(a, whole[a:b].clone()) for i, (a, b) in enumerate(zip(cuts, cuts[1:])) if i % 2 == rank]
    if scheme == "one_rank":  # rank 1 holds nothing
        return [(o, s) for o, s in zip(offsets, scores)] if rank == 0 else []
    raise ValueError(scheme)


def torch_cat(parts: list[Any]) -> Any:
    import torch

    return torch.cat(parts)


def scenario_threshold(rank: int) -> dict[str, Any]:
    import torch

    from sevenprune.distributed import sharded_smallest_k_keep_masks
    from sevenprune.threshold import smallest_k_keep_masks

    checked: list[str] = []
    wrong: list[str] = []
    for case in _threshold_cases():
        scores = case["scores"]
        for k in case["ks"]:
            reference = torch.cat([m.reshape(-1) for m in smallest_k_keep_masks(scores, k)])
            for scheme in ("rows", "interleaved", "one_rank"):
                pieces = _pieces(scores, scheme, rank)
                masks = sharded_smallest_k_keep_masks(
                    [p for _, p in pieces], k, global_offsets=[o for o, _ in pieces],
                    total=reference.numel(), **case.get("options", {}))
                label = f"{case['name']}/k={k}/{scheme}"
                checked.append(label)
                for (offset, piece), mask in zip(pieces, masks):
                    if mask.shape != piece.shape or not torch.equal(
                            mask.reshape(-1), reference[offset:offset + piece.numel()]):
                        wrong.append(label)
    return {"checked": checked, "wrong": sorted(set(wrong))}


def scenario_threshold_errors(rank: int) -> dict[str, Any]:
    import torch

    from sevenprune.distributed import sharded_smallest_k_keep_masks

    a = torch.arange(10.0)
    piece = a[:5] if rank == 0 else a[5:]
    return {
        "total": _expect_error(lambda: sharded_smallest_k_keep_masks([piece], 3, global_offsets=[5 * rank],
                                                                     total=11)),
        "overlap": _expect_error(lambda: sharded_smallest_k_keep_masks([piece], 3, global_offsets=[0])),
        "k": _expect_error(lambda: sharded_smallest_k_keep_masks([piece], 11, global_offsets=[5 * rank])),
    }


def _fully_shard_mlp(model: Any) -> Any:
    """FSDP2 on a 2-rank CPU mesh: each Linear of the 3-layer test MLP, then the whole (in place)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (2,))
    for layer in (model[0], model[2], model[4]):
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def scenario_fsdp2(rank: int) -> dict[str, Any]:
    """FSDP2 ``fully_shard`` on CPU: magnitude scores of the local shards, the sharded threshold, masks
    applied to the local shards; compared with the single-process threshold on the full weights."""
    import torch
    from torch import nn

    from sevenprune.distributed import dtensor_shard_offsets, sharded_smallest_k_keep_masks
    from sevenprune.threshold import smallest_k_keep_masks

    try:
        torch.manual_seed(0)
        model = _fully_shard_mlp(nn.Sequential(nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 7), nn.ReLU(),
                                               nn.Linear(7, 3)))
    except Exception as exc:  # noqa: BLE001 - reported to the test as "unsupported here"
        return {"supported": False, "why": f"{type(exc).__name__}: {exc}"}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    weights = [model[0].weight, model[2].weight, model[4].weight]
    g = torch.Generator().manual_seed(100 + rank)
    for _ in range(2):
        x = torch.randn(8, 12, generator=g)
        model(x).square().mean().backward()
        opt.step()
        opt.zero_grad()
    local, offsets = dtensor_shard_offsets(weights)
    scores = [t.abs() for t in local]
    total = sum(w.numel() for w in weights)
    k = round(0.6 * total)
    masks = sharded_smallest_k_keep_masks(scores, k, global_offsets=offsets)
    with torch.no_grad():
        for t, m in zip(local, masks):
            t.mul_(m)  # prune the local shard in place
    full = [w.full_tensor().detach() for w in weights]  # test only: the single-process view
    reference = smallest_k_keep_masks([f.abs() for f in full], k)  # zeros: now the smallest scores
    return {
        "supported": True,
        "local_rows": [t.shape[0] for t in local],
        "offsets": offsets,
        "zeros": sum(int((f == 0).sum()) for f in full),
        "k": k,
        "local_match": all(
            torch.equal(m, r.reshape(-1)[o - base: o - base + m.numel()].reshape(m.shape))
            for m, r, o, base in zip(masks, reference, offsets, _bases(weights))),
    }


def scenario_fsdp2_pruner_local(rank: int) -> dict[str, Any]:
    """As ``fsdp2_pruner`` with ``scope="local"``: one sharded selection per matrix."""
    return scenario_fsdp2_pruner(rank, scope="local")


def scenario_fsdp2_optimizer_moments(rank: int) -> dict[str, Any]:
    """As ``fsdp2_pruner`` with ``moments="optimizer"``: each rank reads its shard of AdamW's sharded
    (DTensor) moments; bf16 scores, selection every 2 steps."""
    return scenario_fsdp2_pruner(rank, moments="optimizer", state_dtype="bfloat16", mask_interval=2)


def scenario_fsdp2_pruner(rank: int, scope: str = "global", **options: Any) -> dict[str, Any]:
    """``sp.Pruner`` on an FSDP2-sharded model: each rank scores only its shard, the threshold is the
    sharded one; compared with a plain pruner on an unsharded copy fed the same data (so the
    gradients are the same), masks and weights must agree exactly."""
    import copy

    import torch
    from torch import nn

    import sevenprune as sp

    try:
        torch.manual_seed(0)
        reference = nn.Sequential(nn.Linear(12, 9), nn.ReLU(), nn.Linear(9, 7), nn.ReLU(), nn.Linear(7, 3))
        model = _fully_shard_mlp(copy.deepcopy(reference))
    except Exception as exc:  # noqa: BLE001 - reported to the test as "unsupported here"
        return {"supported": False, "why": f"{type(exc).__name__}: {exc}"}
    runs = {}
    for label, net in (("sharded", model), ("reference", reference)):
        opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.01)
        pruner = sp.Pruner(net, "seven", sparsity=0.7, start_step=1, prune_steps=4, optimizer=opt, scope=scope,
                           **options)
        g = torch.Generator().manual_seed(7)  # the same data on both ranks
        for _ in range(7):
            x = torch.randn(8, 12, generator=g)
            net(x).square().mean().backward()
            opt.step()
            pruner.step()
            opt.zero_grad()
        runs[label] = (net, pruner)
    net, pruner = runs["sharded"]
    ref_net, ref_pruner = runs["reference"]
    names = list(ref_pruner.masks)
    full_weights = [net.get_parameter(n).full_tensor() for n in names]
    ref_weights = [ref_net.get_parameter(n).detach() for n in names]
    local_rows = [pruner.masks[n].shape[0] for n in names]
    # this rank's mask rows against the same rows of the reference mask (torch.chunk layout)
    local_match = []
    for n, rows in zip(names, local_rows):
        full_rows = ref_pruner.masks[n].shape[0]
        start = min(rank * -(-full_rows // 2), full_rows)
        local_match.append(torch.equal(pruner.masks[n], ref_pruner.masks[n][start:start + rows]))
    return {
        "supported": True,
        "sparsity": pruner.sparsity(),
        "reference_sparsity": ref_pruner.sparsity(),
        "numel": pruner.numel,
        "local_rows": local_rows,
        "masks_match": all(local_match),
        "weights_match": all(torch.equal(a, b) for a, b in zip(full_weights, ref_weights)),
        "zeros": sum(int((w == 0).sum()) for w in full_weights),
        "report_pruned": pruner.report()["pruned"],
        "pruned_per_matrix": [int((w == 0).sum()) for w in full_weights],
    }


def _bases(weights: list[Any]) -> list[int]:
    out, base = [], 0
    for w in weights:
        out.append(base)
        base += w.numel()
    return out


def scenario_accelerate(rank: int) -> dict[str, Any]:
    import torch
    from accelerate import Accelerator

    from sevenprune.integrations.accelerate import build_pruner

    accelerator = Accelerator(cpu=True)
    model = _mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    prepared, opt = accelerator.prepare(model, opt)
    pruner = build_pruner(accelerator, prepared, opt, method="seven", sparsity=0.5, start_step=1,
                          prune_steps=3)
    g = torch.Generator().manual_seed(100 + rank)
    for _ in range(5):
        x = torch.randn(8, 12, generator=g)
        y = torch.randint(0, 3, (8,), generator=g)
        accelerator.backward(torch.nn.functional.cross_entropy(prepared(x), y))
        opt.step()
        pruner.step()
        opt.zero_grad()
    return {
        "distributed_type": str(accelerator.distributed_type),
        "wrapped": type(prepared).__name__,
        "names": list(pruner.masks),
        "sparsity": pruner.sparsity(),
        "masks_equal": all(_same_on_all_ranks(m) for m in pruner.masks.values()),
    }


def scenario_trainer(rank: int) -> dict[str, Any]:
    """The HF Trainer under torchrun (DDP over gloo): PruningCallback on every rank, a checkpoint."""
    import torch
    import transformers

    from sevenprune.integrations.hf import PruningCallback

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=32, num_labels=2)
    model = transformers.BertForSequenceClassification(config)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 64, (64, 8), generator=g)
    rows = [{"input_ids": ids[i], "labels": int(i % 2)} for i in range(64)]
    out = Path(sys.argv[1]) / "trainer"
    args = transformers.TrainingArguments(
        output_dir=str(out), max_steps=4, per_device_train_batch_size=4, gradient_accumulation_steps=2,
        learning_rate=1e-3, logging_steps=1, save_strategy="steps", save_steps=2, report_to=[],
        use_cpu=True, disable_tqdm=True, seed=3, ddp_backend="gloo")
    callback = PruningCallback(method="seven", sparsity=0.5, start_step=0, prune_steps=3)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows, callbacks=[callback])
    trainer.train()
    pruner = callback.pruner
    assert pruner is not None
    return {
        "world_size": args.world_size,
        "step": pruner.step_count,
        "sparsity": pruner.sparsity(),
        "numel": pruner.numel,
        "masks_equal": all(_same_on_all_ranks(m) for m in pruner.masks.values()),
        "saved": sorted(str(p.relative_to(out)) for p in out.glob("checkpoint-*/pruner/*")),
        "logged": [h["sparsity"] for h in trainer.state.log_history if "loss" in h],
    }


def main() -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    out, names = Path(sys.argv[1]), sys.argv[2].split(",")
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    found: dict[str, Any] = {}
    for name in names:
        try:
            found[name] = globals()[f"scenario_{name}"](rank)
        except Exception:  # noqa: BLE001 - one broken scenario must not hide the others' results
            found[name] = {"crashed": traceback.format_exc()}
        dist.barrier()
    (out / f"rank{rank}.json").write_text(json.dumps(found))
    dist.barrier()
    sys.stdout.flush()
    sys.stderr.flush()
    # skip interpreter teardown: a process-group thread sometimes aborts there ("terminate called
    # without an active exception", 1 launch in 3 on this machine) after the results are on disk
    os._exit(0)


if __name__ == "__main__":
    main()
