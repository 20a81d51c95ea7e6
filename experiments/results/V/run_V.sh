#!/usr/bin/env bash
# Protocol V (docs/results.md, section V): the ViT on Fashion-MNIST at protocol R's proportions, resumably.
#
# First the dense ViT trained from scratch (V_pretrain, 1,000 steps, the model both other sweeps start
# from), then two workers of one thread each (about 1.2x the throughput of one 2-thread worker on a
# 2-core machine), seeds staged so that an interrupted set has every method at the first seeds: pruning
# during fine-tuning (V_dyn) on one, pruning early (V_pre) on the other. From the repository root:
#
#     bash experiments/results/V/run_V.sh            # pretraining, then both workers
#     python experiments/results/collect.py          # copy the finished runs' summaries into docs/results/V
#     python experiments/results/make_results.py     # every table and plot of docs/results.md
set -uo pipefail  # no -e: one failed sweep must not stop the others
cd "$(dirname "$0")/../../.."
SP=${SP:-sevenprune}
CFG=experiments/results/V
mkdir -p runs/results/logs
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
git rev-parse HEAD > runs/results/V_commit.txt 2>/dev/null || true

sweep() { $SP sweep --config "$CFG/$1.json" "${@:2}"; }
worker() {  # worker CONFIG: at seed 1, then 1 2, then 1 2 3
  for seeds in "1" "1 2" "1 2 3"; do sweep "$1" --seeds $seeds; done
}
pretrain() {  # the dense ViT that V_dyn and V_pre fine-tune (their "model": runs/results/V_pretrain/...)
  sweep V_pretrain || { echo "V_pretrain failed: nothing to fine-tune" >&2; exit 1; }
}

case "${1:-both}" in
  pretrain) pretrain 2>&1 | tee -a runs/results/logs/V_pretrain.log ;;
  a) worker V_dyn 2>&1 | tee -a runs/results/logs/V_a.log ;;
  b) worker V_pre 2>&1 | tee -a runs/results/logs/V_b.log ;;
  both)
    pretrain >> runs/results/logs/V_pretrain.log 2>&1
    worker V_dyn >> runs/results/logs/V_a.log 2>&1 &
    worker V_pre >> runs/results/logs/V_b.log 2>&1 &
    wait ;;
  *) echo "usage: bash experiments/results/V/run_V.sh [pretrain|a|b|both]" >&2; exit 2 ;;
esac
