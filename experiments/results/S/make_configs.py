"""Write the sweep configurations of the fine-tuning-strategy study (docs/results.md, section S).

Protocol R at 80 % sparsity, 3 seeds, methods SEVEN, its noise_discount=False control, PLATON and
gradual magnitude, across one factor at a time (everything else as protocol R):

* ``S_lr_dense``: dense runs that find a learning rate that trains the dense model well for SGD with
  momentum and for Adafactor (seed 1); run first, then pass the chosen rates to this script;
* ``S_batch80``: batch 8 and 128 at the same number of training examples seen (the gradient-noise axis;
  batch 32 is protocol R itself), the pruning window scaled with the steps;
* ``S_lr80``: AdamW at x0.3 and x3 of protocol R's learning rate (x1 is protocol R);
* ``S_sched80``: linear decay with 10 % warm-up (constant is protocol R);
* ``S_optim80``: SGD with momentum and Adafactor at the rates found by ``S_lr_dense`` (needs
  ``--sgd-lr`` and ``--adafactor-lr``).

    python experiments/results/S/make_configs.py [--sgd-lr 0.03 --adafactor-lr 0.001]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
R_BASE = json.loads((HERE.parent / "R" / "R_dyn80.json").read_text(encoding="utf-8"))
BASE = {k: v for k, v in R_BASE.items() if k not in ("methods", "sparsities", "variants", "out")}
METHODS = {"seven": {"method": "seven"}, "seven_nd": {"method": "seven", "method_options": {"noise_discount": False}},
           "platon": {"method": "platon"}, "magnitude": {"method": "magnitude", "scope": "local"}}
STEPS, START, WINDOW, BATCH, LR = 268, 30, 180, 32, 1e-4


def variants(suffix: str, **options: object) -> dict[str, dict[str, object]]:
    return {f"{m}_{suffix}": {**v, **options} for m, v in METHODS.items()}


def write(name: str, variant_table: dict[str, dict[str, object]], **extra: object) -> None:
    cfg = {**BASE, **extra, "methods": list(variant_table), "sparsities": [0.8], "variants": variant_table,
           "out": f"runs/results/{name}"}
    (HERE / f"{name}.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {name}.json: {len(variant_table)} methods x {len(cfg['seeds'])} seeds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sgd-lr", type=float, help="SGD's learning rate chosen from S_lr_dense")
    parser.add_argument("--adafactor-lr", type=float, help="Adafactor's learning rate chosen from S_lr_dense")
    args = parser.parse_args()

    # the rates that ran (2026-11-29): each optimizer's best rate has a worse one on either side. The
    # search began with 0.1 for SGD and 1e-4 for Adafactor too; they were dropped unrun once 0.03
    # (SGD) had failed to train and 3e-4 (Adafactor) had scored below 1e-3.
    dense = {f"sgd_lr{lr:g}": {"method": "dense", "optimizer": "sgd", "lr": lr} for lr in (3e-3, 1e-2, 3e-2)}
    dense |= {f"adafactor_lr{lr:g}": {"method": "dense", "optimizer": "adafactor", "lr": lr}
              for lr in (3e-4, 1e-3, 3e-3)}
    cfg = {**BASE, "methods": list(dense), "seeds": [1], "variants": dense, "out": "runs/results/S_lr_dense"}
    (HERE / "S_lr_dense.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    print(f"wrote S_lr_dense.json: {len(dense)} dense runs")

    table: dict[str, dict[str, object]] = {}
    for batch in (8, 128):
        scale = BATCH / batch  # the same examples seen: steps, start and window scale with 32 / batch
        table |= {f"dense_b{batch}": {"method": "dense", "batch_size": batch, "max_steps": round(STEPS * scale)}}
        table |= variants(f"b{batch}", batch_size=batch, max_steps=round(STEPS * scale),
                          start_step=round(START * scale), prune_steps=round(WINDOW * scale))
    write("S_batch80", table)
    table = {}
    for factor in (0.3, 3.0):
        table |= {f"dense_lr{factor:g}x": {"method": "dense", "lr": LR * factor}}
        table |= variants(f"lr{factor:g}x", lr=LR * factor)
    write("S_lr80", table)
    warmup = round(0.1 * STEPS)
    write("S_sched80", {"dense_linear": {"method": "dense", "lr_schedule": "linear", "warmup_steps": warmup},
                        **variants("linear", lr_schedule="linear", warmup_steps=warmup)})
    if args.sgd_lr and args.adafactor_lr:
        table = {}
        for opt, lr in (("sgd", args.sgd_lr), ("adafactor", args.adafactor_lr)):
            table |= {f"dense_{opt}": {"method": "dense", "optimizer": opt, "lr": lr}}
            table |= variants(opt, optimizer=opt, lr=lr)
        write("S_optim80", table)
    else:
        print("S_optim80.json not written: run S_lr_dense first, then pass --sgd-lr and --adafactor-lr")


if __name__ == "__main__":
    main()
