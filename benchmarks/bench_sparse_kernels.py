"""CPU latency of unstructured sparsity with a sparse kernel (torch.sparse CSR) against dense, per Linear layer.

    .venv/bin/python benchmarks/bench_sparse_kernels.py [--threads 1] [--trials 7]
    .venv/bin/python benchmarks/bench_sparse_kernels.py --quick     # a smoke test: runs, measures nothing

For the three BERT-base Linear shapes (out x in: 768x768 attention, 3072x768 FFN in, 768x3072 FFN out),
``tokens`` rows of input (64 = batch 1 x length 64, 2048 = batch 32 x length 64) and sparsity 50, 80,
90 and 95% (unstructured, random positions: what a global threshold leaves inside a layer), it
times

* dense: ``F.linear(x, W)`` (MKL GEMM), with the zeros in place;
* CSR: ``torch.sparse.mm(W_csr, x.T).T`` (``W.to_sparse_csr()``; MKL sparse BLAS in this torch build),

checks that both give the same result, and prints the medians of interleaved trials and the ratio
dense / CSR (> 1: the sparse kernel pays). The CPU of the development machine is shared with other
developers, so absolute times are noisy: dense and CSR run alternately in each trial and only their
ratio should be read. The last lines say from which sparsity CSR starts to pay, per shape and token
count, or that it never does.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import torch
import torch.nn.functional as F

SHAPES = [(768, 768), (3072, 768), (768, 3072)]
SPARSITIES = [0.5, 0.8, 0.9, 0.95]
TOKENS = [64, 2048]


def timed(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the CPU is shared)")
    parser.add_argument("--trials", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="smoke test: one small shape, 1 trial")
    args = parser.parse_args(argv)
    shapes, tokens_list, sparsities = SHAPES, TOKENS, SPARSITIES
    if args.quick:
        shapes, tokens_list, sparsities, args.trials = [(64, 32)], [8], [0.5, 0.9], 1
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
    gen = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), MKL {torch.backends.mkl.is_available()}; "
          f"fp32; medians of {args.trials} interleaved trials")
    print(f"{'out x in':>11} {'tokens':>6} {'sparsity':>8} {'dense ms':>9} {'CSR ms':>9} {'dense/CSR':>9} {'max |diff|':>10}")
    pays: dict[tuple[tuple[int, int], int], float | None] = {}
    with torch.inference_mode():
        for shape in shapes:
            out_f, in_f = shape
            for tokens in tokens_list:
                x = torch.randn(tokens, in_f, generator=gen)
                pays[(shape, tokens)] = None
                flops = 2 * tokens * in_f * out_f
                calls = max(1, int(2e8 // flops)) if not args.quick else 1
                for sparsity in sparsities:
                    w = torch.randn(out_f, in_f, generator=gen)
                    w[torch.rand(out_f, in_f, generator=gen) < sparsity] = 0.0
                    w_csr = w.to_sparse_csr()

                    def dense() -> torch.Tensor:
                        return F.linear(x, w)

                    def csr() -> torch.Tensor:
                        return torch.sparse.mm(w_csr, x.t()).t()

                    diff = float((dense() - csr()).abs().max())
                    timed(dense, 1)
                    timed(csr, 1)
                    d_t, s_t = [], []
                    for _ in range(args.trials):
                        d_t.append(timed(dense, calls))
                        s_t.append(timed(csr, calls))
                    d, s = statistics.median(d_t), statistics.median(s_t)
                    if d / s > 1 and pays[(shape, tokens)] is None:
                        pays[(shape, tokens)] = sparsity
                    print(f"{out_f:>5}x{in_f:<5} {tokens:>6} {sparsity:>8.2f} {1000 * d:9.3f} {1000 * s:9.3f} "
                          f"{d / s:9.2f} {diff:10.1e}", flush=True)
    print("\nwhere CSR starts to pay (first sparsity with dense/CSR > 1):")
    for (shape, tokens), at in pays.items():
        where = f"from {at:.0%}" if at is not None else f"never up to {sparsities[-1]:.0%}"
        print(f"  {shape[0]}x{shape[1]}, {tokens} tokens: {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
