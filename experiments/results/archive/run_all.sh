#!/usr/bin/env bash
# Runs every sweep of docs/results/archive.md (the superseded 32-step protocols) on a 2-core machine, resumably (finished runs are skipped).
#
# Two workers of one thread each: on this machine that gives about 1.2x the throughput of one
# 2-thread worker. Seeds are staged (1, then 1 2, then 1 2 3) so that an interrupted set still has
# every method at the first seeds. From the repository root:
#
#     bash experiments/results/archive/run_all.sh        # both workers
#     bash experiments/results/archive/run_all.sh a      # worker A only (or b)
# then copy each sweep's runs/results/<sweep>/results.csv (sevenprune report) to docs/results/archive/ and
#     python experiments/results/make_results.py         # tables and plots into docs/results/archive.md
set -uo pipefail  # no -e: one failed sweep must not stop the others
cd "$(dirname "$0")/../../.."
SP=${SP:-sevenprune}
CFG=experiments/results/archive
mkdir -p runs/results/logs
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1

sweep() { $SP sweep --config "$CFG/$1.json" "${@:2}"; }
staged() {  # staged CONFIG...: every config at seed 1, then 1 2, then 1 2 3
  for seeds in "1" "1 2" "1 2 3"; do
    for c in "$@"; do sweep "$c" --seeds $seeds; done
  done
}
wait_for() { until [ -f "$1" ]; do sleep 20; done; }

worker_a() {
  sweep mr_warmup  # the task-adapted MiniLM that mr_dyn and the moments grid start from
  for seeds in "1" "1 2" "1 2 3"; do
    sweep mr_dyn --seeds $seeds
    wait_for runs/results/vit_pretrain/runs/dense-seed1/result.json  # written by worker B
    for c in vit_dyn vit_pre mr_moments_abs_b0.5_0.7 mr_moments_abs_b0.9_0.999; do
      sweep "$c" --seeds $seeds
    done
  done
  sweep mr_pre_long --seeds 2  # protocol 2 with 3x the fine-tuning (seed 1: worker B)
  sweep mr_dyn_nopooler        # control: protocol 1 with the pooler left dense
}
worker_b() {
  sweep vit_pretrain
  wait_for runs/results/mr_warmup/runs/dense-seed1/result.json  # written by worker A
  staged mr_pre mr_moments_signed_b0.8_0.9 mr_moments_signed_b0.9_0.999
  sweep mr_pre_long --seeds 1  # protocol 2 with 3x the fine-tuning (seed 2: worker A)
}

case "${1:-both}" in
  a) worker_a 2>&1 | tee -a runs/results/logs/worker_a.log ;;
  b) worker_b 2>&1 | tee -a runs/results/logs/worker_b.log ;;
  both)
    worker_a >> runs/results/logs/worker_a.log 2>&1 &
    worker_b >> runs/results/logs/worker_b.log 2>&1 &
    wait ;;
  *) echo "usage: bash experiments/results/archive/run_all.sh [a|b|both]" >&2; exit 2 ;;
esac
