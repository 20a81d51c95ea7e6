#!/usr/bin/env bash
# Protocol R (docs/results.md): the main comparison, 268-step runs of MiniLM on mr, resumably.
#
# Two workers of one thread each (about 1.2x the throughput of one 2-thread worker on a 2-core
# machine), seeds staged so that an interrupted set has every method at the first seeds. The most
# informative cells run first: SEVEN, its noise_discount=False control and PLATON at 0.8 and 0.9.
# From the repository root (ideally a `git worktree` pinned at a commit, recorded with the results):
#
#     bash experiments/results/R/run_R.sh            # both workers
#     bash experiments/results/R/run_R.sh second     # the second pass: 70 %, pre at 90 %, seeds 4-5
#     bash experiments/results/R/run_R.sh pace       # movement at its authors' pace (R_movement_pace, ~1 h)
#     bash experiments/results/R/run_R.sh opt        # issue 40: moments="optimizer" at 80 and 90 %, seeds 1-3
#     python experiments/results/collect.py          # copy the finished runs' summaries into docs/results/R
set -uo pipefail  # no -e: one failed sweep must not stop the others
cd "$(dirname "$0")/../../.."
SP=${SP:-sevenprune}
CFG=experiments/results/R
mkdir -p runs/results/logs
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
git rev-parse HEAD > runs/results/R_commit.txt 2>/dev/null || true

sweep() { $SP sweep --config "$CFG/$1.json" "${@:2}"; }
worker() {  # worker CONFIG: at seed 1, then 1 2, then 1 2 3
  for seeds in "1" "1 2" "1 2 3"; do sweep "$1" --seeds $seeds; done
}

# priority order within each worker: the cells that answer the paper's question first
worker_a() { worker R_dyn80; worker R_base80; worker R_dyn50; sweep R_pooler80; worker R_base50; }
worker_b() { worker R_dyn90; worker R_pre80; worker R_base90; worker R_pre50; }

# the second pass (issue 12, "where time allows"): 70 %, 90 % pruning early, seeds 4-5 of the main cells
worker_c() { worker R_dyn70; sweep R_dyn80 --methods seven seven_nd platon dense --seeds 4 5; worker R_base70; }
worker_d() { worker R_pre90; sweep R_dyn90 --methods seven seven_nd platon --seeds 4 5; }

# movement at its authors' pace (R_movement_pace.json): two epochs (536 steps), scores learning from step 1,
# pruning over the second epoch (from step 268 over 210 steps, then protocol R's 58 steps with the masks
# fixed), 50 % and 90 %, seeds 1-3; dense at the same budget last, as the reference
worker_e() { for seeds in "1" "1 2" "1 2 3"; do sweep R_movement_pace --methods movement --sparsities 0.5 --seeds $seeds; done; }
worker_f() { for seeds in "1" "1 2" "1 2 3"; do sweep R_movement_pace --methods movement --sparsities 0.9 --seeds $seeds; done
             sweep R_movement_pace --methods dense; }
# issue 40: SEVEN reading AdamW's moments (seven_opt), paired with R_dyn80/R_dyn90's seven and seven_nd
# by seed; one worker per sparsity, seeds staged. seven_opt_bf16 (3 bytes per weight) where time allows:
# bash experiments/results/R/run_R.sh opt_bf16
worker_opt() { for seeds in "1" "1 2" "1 2 3"; do sweep R_opt --sparsities "$1" --methods "${2:-seven_opt}" --seeds $seeds; done; }

case "${1:-both}" in
  a) worker_a 2>&1 | tee -a runs/results/logs/R_a.log ;;
  b) worker_b 2>&1 | tee -a runs/results/logs/R_b.log ;;
  both)
    worker_a >> runs/results/logs/R_a.log 2>&1 &
    worker_b >> runs/results/logs/R_b.log 2>&1 &
    wait ;;
  second)
    worker_c >> runs/results/logs/R_c.log 2>&1 &
    worker_d >> runs/results/logs/R_d.log 2>&1 &
    wait ;;
  pace)
    worker_e >> runs/results/logs/R_e.log 2>&1 &
    worker_f >> runs/results/logs/R_f.log 2>&1 &
    wait ;;
  opt|opt_bf16)
    arm=seven_opt; [ "$1" = opt_bf16 ] && arm=seven_opt_bf16
    worker_opt 0.8 "$arm" >> runs/results/logs/R_opt.log 2>&1 &
    worker_opt 0.9 "$arm" >> runs/results/logs/R_opt.log 2>&1 &
    wait ;;
  *) echo "usage: bash experiments/results/R/run_R.sh [a|b|both|second|pace|opt|opt_bf16]" >&2; exit 2 ;;
esac
