#!/usr/bin/env bash
# The fine-tuning-strategy study (docs/results.md, section S), after protocol R's main cells.
# Two workers, one thread each, resumable, seeds staged; the batch-size axis (gradient noise) first.
#     bash experiments/results/S/run_S.sh        # then python experiments/results/S/make_configs.py --sgd-lr .. --adafactor-lr ..
set -uo pipefail
cd "$(dirname "$0")/../../.."
SP=${SP:-sevenprune}
CFG=experiments/results/S
mkdir -p runs/results/logs
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
sweep() { $SP sweep --config "$CFG/$1.json" "${@:2}"; }
worker() { for seeds in "1" "1 2" "1 2 3"; do sweep "$1" --seeds $seeds; done; }
worker_a() { sweep S_lr_dense; worker S_batch80; worker S_sched80; }
worker_b() { worker S_lr80; [ -f "$CFG/S_optim80.json" ] && worker S_optim80; }
case "${1:-both}" in
  a) worker_a 2>&1 | tee -a runs/results/logs/S_a.log ;;
  b) worker_b 2>&1 | tee -a runs/results/logs/S_b.log ;;
  both) worker_a >> runs/results/logs/S_a.log 2>&1 & worker_b >> runs/results/logs/S_b.log 2>&1 & wait ;;
  *) echo "usage: bash experiments/results/S/run_S.sh [a|b|both]" >&2; exit 2 ;;
esac
