#!/usr/bin/env bash
# Protocol L (docs/results.md): SmolLM2-135M on the Shakespeare plays, one-shot pruning (Wanda, SparseGPT)
# against pruning during fine-tuning (SEVEN_dyn, its noise_discount=False control, PLATON, gradual
# magnitude), at 50 % unstructured and 2:4, resumably (finished runs are skipped).
#
#   L_oneshot: the starting model pruned one shot from 128 calibration windows, no fine-tuning (dense:
#              the starting model itself); the seed draws the calibration windows.
#   L_ft50, L_ft24 (50 % unstructured, 2:4; at 50 % also SEVEN_dyn with scope local, and SparseGPT at
#              SEVEN_dyn's per-matrix sparsities of the same seed): 268 fine-tuning steps (batch 8 x 128 tokens, AdamW 1e-4 constant), protocol R's proportions:
#              pruning from step 30 over 180 steps (cubic), masks updated every 10 steps; the one-shot
#              methods prune at step 0 and keep their masks fixed through the same 268 steps.
#   L_ft70:    the same at 70 % unstructured (the one-shot and during-fine-tuning arms; dense is L_ft50's),
#              queued by `missing` after every 50 % and 2:4 run.
#   Every run: perplexity on 256 windows of 128 tokens of the held-out plays and of PTB's test split.
#
# Two workers of one thread each, seeds staged (1, then 1 2, then 1 2 3). A 268-step run takes about
# 40-50 minutes of one core here; the whole protocol about a day of two workers. From the repository
# root (ideally a `git worktree` pinned at a commit, recorded with the results):
#
#     bash experiments/results/L/run_L.sh            # both workers
#     bash experiments/results/L/run_L.sh more       # the one-shot rows at 4:8 and 70 % (a third, short job)
#     bash experiments/results/L/run_L.sh missing    # a fresh machine: only the runs not committed yet
#     python experiments/results/collect.py          # copy the finished runs' summaries into docs/results/L
#
# The fine-tuning runs write a checkpoint every 50 steps (--checkpoint-every; about 3 GB each, deleted
# when the run finishes): a run stopped by the end of a session goes on from it when the script is started
# again. RUNS (default runs/results) is where the sweeps live, so that a newer checkout can go on with the
# runs of an older one (each run's config.json records the commit that made it).
set -uo pipefail  # no -e: one failed sweep must not stop the others
cd "$(dirname "$0")/../../.."
SP=${SP:-sevenprune}
CFG=${CFG:-experiments/results/L}  # another folder of the same configurations: a newer one beside a pinned checkout
RUNS=${RUNS:-runs/results}
mkdir -p "$RUNS/logs"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1
echo "$(git rev-parse HEAD 2>/dev/null) $(date -u +%FT%TZ)" >> "$RUNS/L_commit.txt"

sweep() { $SP sweep --config "$CFG/$1.json" --out "$RUNS/$1" "${@:2}"; }

# worker A: the one-shot models without fine-tuning first (minutes each), then the 50 % arms; worker B: the
# 2:4 arms (each sweep its own folder). The arms that answer the issue's question (SparseGPT then fine-tuned
# against pruning during fine-tuning) get their three seeds first, so that the answer rests on seeds early;
# then every arm, seeds staged. Runs finished earlier are skipped, so the order only decides what comes first.
HEAD50=(sparsegpt seven seven_local)
HEAD24=(sparsegpt24 seven_nd24 seven24)
ALL50=(dense sparsegpt seven wanda seven_nd platon magnitude seven_local)
# SparseGPT at the per-matrix sparsities SEVEN_dyn reached on the same seed (L.2c): it reads that run's
# result.json from docs/results/L, so a seed runs once its SEVEN_dyn run is collected and committed
alloc() {
  for seed in 1 2 3; do
    [ -f "docs/results/L/L_ft50/seven-s0.5-seed$seed/result.json" ] && sweep L_ft50 --methods sparsegpt_seven_alloc --seeds $seed
  done
}
worker_a() {
  sweep L_oneshot --seeds 1
  for seed in 1 2 3; do sweep L_ft50 --methods "${HEAD50[@]}" --seeds $seed; done
  alloc
  for seeds in "1" "1 2" "1 2 3"; do
    sweep L_ft50 --methods "${ALL50[@]}" --seeds $seeds
    [ "$seeds" = "1" ] && sweep L_oneshot --seeds 1 2 3
  done
  alloc  # seeds whose SEVEN_dyn run was committed meanwhile
}
# beyond the fine-tuned protocol, one shot only (no fine-tuning; minutes a run): 4:8 (Wanda, SparseGPT), 70 %
# (magnitude, Wanda, SparseGPT) and one-shot magnitude per matrix at 50 % (`magnitude_init`, the SparseGPT paper's baseline),
# and at 2:4 and 4:8 (`L_oneshot_magnm`, seed 1 only: magnitude reads no calibration data, so the seeds agree)
oneshot_more() {
  sweep L_oneshot_more --seeds 1 2 3
  sweep L_oneshot70 --seeds 1 2 3
  sweep L_oneshot_magnm --seeds 1  # magnitude reads no calibration data: every seed gives the same model
}
worker_b() {
  for seed in 1 2 3; do sweep L_ft24 --methods "${HEAD24[@]}" --seeds $seed; done
  for seeds in "1" "1 2" "1 2 3"; do sweep L_ft24 --seeds $seeds; done
}

# on a machine whose RUNS folder lacks the earlier runs (their summaries are committed, the folders were
# elsewhere), `both` would make every run again: `missing` runs only the runs without a committed
# result.json (experiments/results/todo.py): one run per line in a queue ($RUNS/L_queue.tsv, made anew each
# time) that both workers take from in turn, so that neither idles while the other still has runs (a split by
# configuration left one worker three hour-long runs and the other one); the fine-tuned runs at 50 % and 2:4
# first, lowest seeds first, then those at 70 % (SparseGPT + fine-tuning and SEVEN_dyn of every seed first, so
# that their paired comparison has three seeds soonest, then the other arms; each lowest seed first), then the
# one-shot rows. The page's best-arm comparison at 70 % compares arms on the seeds they share: it settles only
# once every 70 % arm has its three seeds.
PY=${PY:-python}
FIRST_AT_70="sparsegpt seven"  # SEVEN_dyn − SparseGPT + fine-tuning on three seeds before other arms get a second
COMMITTED=${COMMITTED:-docs/results}  # where todo.py looks for the committed runs
queue_missing() {  # config<TAB>seed<TAB>method, one line per missing run, in the order they should start
  local tuned seventy oneshot
  tuned=$("$PY" experiments/results/todo.py --tsv --committed "$COMMITTED" L_ft50 L_ft24) || return 1
  seventy=$("$PY" experiments/results/todo.py --tsv --committed "$COMMITTED" L_ft70) || return 1
  oneshot=$("$PY" experiments/results/todo.py --tsv --committed "$COMMITTED" \
    L_oneshot L_oneshot_more L_oneshot70 L_oneshot_magnm) || return 1
  [ -z "$tuned" ] || sort -s -t $'\t' -k2,2n <<< "$tuned" | one_per_line
  if [ -n "$seventy" ]; then
    sort -s -t $'\t' -k2,2n <<< "$seventy" | one_per_line |
      awk -F'\t' -v first="$FIRST_AT_70" 'BEGIN { split(first, f, " "); for (i in f) pair[f[i]] = 1 }
        { if ($3 in pair) print; else rest[++n] = $0 } END { for (i = 1; i <= n; i++) print rest[i] }'
  fi
  [ -z "$oneshot" ] || one_per_line <<< "$oneshot"
}
one_per_line() {  # config<TAB>seed<TAB>methods... -> one line per method
  local config seed methods method
  while IFS=$'\t' read -r config seed methods; do
    for method in $methods; do printf '%s\t%s\t%s\n' "$config" "$seed" "$method"; done
  done
}
take() {  # the queue's first line, removed from it under a lock (the other worker waits for it)
  flock "$1.lock" sh -c 'head -n 1 "$1" && sed -i 1d "$1"' take "$1"
}
worker_queue() {
  local line config seed method
  while line=$(take "$1") && [ -n "$line" ]; do
    IFS=$'\t' read -r config seed method <<< "$line"
    $SP sweep --config "$config" --out "$RUNS/$(basename "$config" .json)" --methods "$method" --seeds "$seed"
  done
}

case "${1:-both}" in
  a) worker_a 2>&1 | tee -a "$RUNS/logs/L_a.log" ;;
  b) worker_b 2>&1 | tee -a "$RUNS/logs/L_b.log" ;;
  both)
    worker_a >> "$RUNS/logs/L_a.log" 2>&1 &
    worker_b >> "$RUNS/logs/L_b.log" 2>&1 &
    wait ;;
  more) oneshot_more 2>&1 | tee -a "$RUNS/logs/L_more.log" ;;
  missing)
    queue="$RUNS/L_queue.tsv"
    queue_missing > "$queue" || { echo "run_L.sh: experiments/results/todo.py failed, nothing started" >&2; exit 1; }
    echo "run_L.sh missing: $(wc -l < "$queue") runs queued in $queue"
    worker_queue "$queue" >> "$RUNS/logs/L_a.log" 2>&1 &
    worker_queue "$queue" >> "$RUNS/logs/L_b.log" 2>&1 &
    wait ;;
  *) echo "usage: bash experiments/results/L/run_L.sh [a|b|both|more|missing]" >&2; exit 2 ;;
esac
