"""2:4 semi-structured sparsity on a GPU against dense, at BERT-base Linear shapes; and the Pruner on CUDA.

Run on a machine with an NVIDIA GPU of compute capability >= 8.0 (Ampere or later)::

    PYTHONPATH=src python benchmarks/bench_gpu_24.py

Without a CUDA GPU it prints that it is skipped and exits 0. ``--quick``: one shape, one token count,
few repeats (a smoke test: it runs, it measures nothing).

Part 1 times ``F.linear(x, W)`` in fp16 with ``W`` dense against ``W`` converted by
``torch.sparse.to_sparse_semi_structured`` (after applying a 2:4 mask), for the three BERT-base Linear
shapes (out x in: 768x768 attention, 3072x768 FFN in, 768x3072 FFN out) and 8*128 and 32*128 tokens.
Timing: CUDA events around ``REPEAT`` calls, dense and sparse interleaved, ``TRIALS`` trials, the median
per call reported; the speed-up is dense time / sparse time (> 1: sparse is faster). Every backend
available in this torch (cuSPARSELt, CUTLASS) is measured.

Part 2 checks the Pruner on CUDA: a tiny BERT on the GPU trained with AdamW through a SEVEN pruning
window (unstructured, then 2:4, then heads+neurons): masks live on the GPU, the pruned count is
exactly round(s_t * N) at every step, pruned weights are exactly zero, the 2:4 masks hold in every
group and the model's weights convert to the semi-structured format and give the same output.
"""

from __future__ import annotations

import statistics
import sys

import torch
import torch.nn.functional as F

SHAPES = [(768, 768), (3072, 768), (768, 3072)]
TOKENS = [8 * 128, 32 * 128]
REPEAT = 50
TRIALS = 15


def two_four_mask(w: torch.Tensor) -> torch.Tensor:
    groups = w.abs().reshape(w.shape[0], -1, 4)
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, groups.topk(2, dim=2).indices, True)
    return keep.reshape(w.shape)


def time_calls(fn, repeat: int) -> float:
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeat):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeat * 1000.0  # microseconds per call


def bench_24() -> None:
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    backends = []
    for name, force_cutlass in (("cusparselt", False), ("cutlass", True)):
        SparseSemiStructuredTensor._FORCE_CUTLASS = force_cutlass
        try:
            w = torch.randn(128, 128, device="cuda", dtype=torch.float16)
            w = w * two_four_mask(w)
            ws = to_sparse_semi_structured(w)
            F.linear(torch.randn(64, 128, device="cuda", dtype=torch.float16), ws)
            backends.append((name, force_cutlass))
        except Exception as exc:  # a backend missing from this build
            print(f"backend {name}: unavailable ({type(exc).__name__}: {str(exc)[:120]})")
    print(f"\n== Part 1: 2:4 semi-structured vs dense, fp16, F.linear(x[tokens, in], W[out, in]); median of "
          f"{TRIALS} interleaved trials of {REPEAT} calls, microseconds per call ==")
    print(f"{'backend':<11} {'out x in':>11} {'tokens':>7} {'dense us':>9} {'2:4 us':>9} {'speed-up':>9} "
          f"{'dense TFLOP/s':>14} {'max |diff|':>10}")
    torch.manual_seed(0)
    for name, force_cutlass in backends:
        SparseSemiStructuredTensor._FORCE_CUTLASS = force_cutlass
        for out_f, in_f in SHAPES:
            w = torch.randn(out_f, in_f, device="cuda", dtype=torch.float16) * 0.02
            w = w * two_four_mask(w)
            ws = to_sparse_semi_structured(w)
            for tokens in TOKENS:
                x = torch.randn(tokens, in_f, device="cuda", dtype=torch.float16)
                ref = F.linear(x, w)
                diff = float((F.linear(x, ws) - ref).abs().max())
                for _ in range(3):  # warm-up
                    F.linear(x, w)
                    F.linear(x, ws)
                torch.cuda.synchronize()
                dense_t, sparse_t = [], []
                for _ in range(TRIALS):
                    dense_t.append(time_calls(lambda: F.linear(x, w), REPEAT))
                    sparse_t.append(time_calls(lambda: F.linear(x, ws), REPEAT))
                d, s = statistics.median(dense_t), statistics.median(sparse_t)
                tflops = 2 * tokens * in_f * out_f / (d * 1e-6) / 1e12
                print(f"{name:<11} {out_f:>5}x{in_f:<5} {tokens:>7} {d:9.1f} {s:9.1f} {d / s:9.2f} "
                      f"{tflops:14.1f} {diff:10.2e}")
    SparseSemiStructuredTensor._FORCE_CUTLASS = False


def check_pruner_on_cuda() -> bool:
    import transformers

    import sevenprune as sp
    from sevenprune.patterns import nm_holds
    from sevenprune.structured import shrink

    print("\n== Part 2: the Pruner on CUDA (tiny BERT, AdamW, SEVEN) ==")
    ok = True
    for pattern, sparsity in (("unstructured", 0.8), ("2:4", 0.5), ("heads+neurons", 0.5)):
        torch.manual_seed(0)
        cfg = transformers.BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=128, vocab_size=100, num_labels=2)
        model = transformers.BertForSequenceClassification(cfg).cuda()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        pruner = sp.Pruner(model, "seven", sparsity, start_step=2, prune_steps=6, optimizer=opt,
                           pattern=pattern)
        x = torch.randint(0, 100, (8, 16), device="cuda")
        y = torch.randint(0, 2, (8,), device="cuda")
        counts_ok = True
        for step in range(1, 11):
            model.train()
            model(input_ids=x, labels=y).loss.backward()
            opt.step()
            pruner.step()
            opt.zero_grad()
            pruned = sum(int((~m).sum()) for m in pruner.masks.values())
            want = round(pruner.scheduled_sparsity(step) * pruner.numel)
            if pattern != "heads+neurons" and pruned != want:
                counts_ok = False
                print(f"  step {step}: pruned {pruned}, schedule wants {want}")
        on_cuda = all(m.device.type == "cuda" for m in pruner.masks.values())
        zeros = all(torch.equal(pruner.params[n] != 0, m) or bool((pruner.params[n][~m] == 0).all())
                    for n, m in pruner.masks.items())
        line = (f"  {pattern:<14} sparsity {pruner.sparsity():.4f} (target {sparsity}); masks on cuda: {on_cuda}; "
                f"exact count every step: {counts_ok}; pruned weights exactly zero: {zeros}")
        good = on_cuda and counts_ok and zeros
        model.eval()
        with torch.no_grad():
            ref = model(input_ids=x).logits
        if pattern == "2:4":
            holds = all(nm_holds(m, 2, 4) for m in pruner.masks.values())
            from torch.sparse import to_sparse_semi_structured

            lin = model.bert.encoder.layer[0].intermediate.dense
            w16 = lin.weight.detach().half()
            xs = torch.randn(256, 64, device="cuda", dtype=torch.float16)
            diff = float((F.linear(xs, to_sparse_semi_structured(w16)) - F.linear(xs, w16)).abs().max())
            line += f"; 2:4 in every group: {holds}; semi-structured vs dense max |diff| {diff:.1e}"
            good = good and holds and diff < 1e-2
        if pattern == "heads+neurons":
            small = shrink(model, pruner.masks)
            with torch.no_grad():
                diff = float((small(input_ids=x).logits - ref).abs().max())
            frac = sum(p.numel() for p in small.parameters()) / sum(p.numel() for p in model.parameters())
            line += f"; shrunken model on cuda: {frac:.2%} of the parameters, max |diff| {diff:.1e}"
            good = good and diff < 1e-4
        print(line + ("  OK" if good else "  FAILED"))
        ok = ok and good
    return ok


def main(argv: list[str] | None = None) -> int:
    import argparse

    global SHAPES, TOKENS, REPEAT, TRIALS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: one shape, one token count, 3 trials")
    args = parser.parse_args(argv)
    if args.quick:
        SHAPES, TOKENS, REPEAT, TRIALS = SHAPES[:1], TOKENS[:1], 5, 3
    print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")
    if not torch.cuda.is_available():
        print("skipped: no CUDA GPU on this machine (2:4 kernels need an NVIDIA GPU of compute capability >= 8.0)")
        return 0
    cap = torch.cuda.get_device_capability()
    print(f"device: {torch.cuda.get_device_name()}, compute capability {cap[0]}.{cap[1]}")
    if cap < (8, 0):
        print("skipped part 1: 2:4 semi-structured kernels need compute capability >= 8.0")
    else:
        bench_24()
    return 0 if check_pruner_on_cuda() else 1


if __name__ == "__main__":
    sys.exit(main())
