#!/usr/bin/env bash
# One host with N >= 2 GPUs, two trainings at once and one evaluation spread over every GPU:
#   GPUs 0..N-2  the world model trains on (recipes/default_model.sh WORK/stage1 --continue FROM --keep-vae,
#                NPROC=N-1, EVAL=0: its export is evaluated in int8 on a CPU, as the shipped model is);
#   GPU N-1      a refiner for PIPELINE (recipes/refiner_default.sh WORK/refiner --pipeline PIPELINE, REF_EVAL=0;
#                the refiner is exported in int8, as it would ship), then its 60 s evaluation (stage 1 against
#                stage 1 + refiner, 20 held-out scenes) as a queue of 2-scene parts: EVAL_WORKERS [2] workers on
#                GPU N-1 at once, and one more on each other GPU once the world model's recipe is done; merged at
#                the end. Each worker runs with EVAL_THREADS [4] CPU threads: with torch's default (every core)
#                ten workers on 64 cores put the load average at 300.
#   PRE (a command, optional) runs on GPU N-1 beside the refiner's rendering (e.g. the kernel benchmarks).
#
#   recipes/continue_and_refine.sh WORK FROM PIPELINE [--smoke]
#
# --smoke runs the same chain at toy scale on a CPU (both recipes' --smoke, one 2-scene part of 1 s, as if
# on two GPUs) to check it end to end.
# FROM: the pipeline folder the world model continues from (bf16/fp32 transformer); PIPELINE: the stage 1 the
# refiner learns to correct (the shipped int8 folder). The refiner fits PIPELINE's stage 1, not the one trained
# beside it: v2's refiner, made by this recipe, hurt v3 (its continuation) from 5 s on (docs/model-card.md).
# To ship both, train the refiner on the new stage 1 afterwards (recipes/refiner_default.sh --pipeline NEW).
# Each recipe's environment settings pass through (P1_MINUTES, C_SCENES, REF_SECONDS, REF_MINUTES, ...);
# S1_WORKERS / REF_WORKERS set their render processes.
# WORK/return/ gathers what comes back: logs, metrics, the new transformer (bf16), the refiner (int8), the
# evaluation (eval60_refine.json, its plot and one scene pair's sheets).
set -uo pipefail
USAGE="usage: recipes/continue_and_refine.sh WORK FROM PIPELINE [--smoke]"
WORK=${1:?$USAGE}; FROM=${2:?$USAGE}; PIPE=${3:?$USAGE}; SMOKE=()
[[ ${4:-} == --smoke ]] && SMOKE=(--smoke)
[[ -n ${4:-} && ${4:-} != --smoke ]] && { echo "unknown argument $4; $USAGE" >&2; exit 2; }
for f in "$FROM" "$PIPE"; do
    [[ -f $f/transformer/config.json ]] || { echo "$f: not a pipeline folder (no transformer/config.json)" >&2; exit 2; }
done
FROM=$(realpath "$FROM"); PIPE=$(realpath "$PIPE")
HERE=$(dirname "$(realpath "$0")")
source "$HERE/lib.sh"
ARGS=(--teacher --refine --no-ablation --dtype fp32 --seconds 60 --horizons 1,5,10,30,60 --scenes 2)
PARTS=$(( ${EVAL_SCENES:-20} / 2 ))
if (( ${#SMOKE[@]} )); then  # a CPU standing in for two GPUs
    N=2; S1_NPROC=1; DEVICE=(cpu cpu)
    ARGS=(--teacher --refine --no-ablation --dtype fp32 --seconds 1 --horizons 1 --scenes 2 --size 64 --steps 2)
    PARTS=1
else
    N=$(python3 -c "import torch; print(torch.cuda.device_count())")
    if (( N < 2 )); then echo "continue_and_refine.sh needs two or more GPUs; torch sees $N" >&2; exit 2; fi
    S1_NPROC=$(( N - 1 )); DEVICE=(); for (( g = 0; g < N; g++ )); do DEVICE+=("cuda:$g"); done
fi
LAST=$(( N - 1 )); S1_GPUS=$(seq -s, 0 $(( N - 2 )))
mkdir -p "$WORK/return" "$WORK/evalq"
log "GPUs 0..$(( N - 2 )): world model from $FROM; GPU $LAST: refiner of $PIPE"

CUDA_VISIBLE_DEVICES=$S1_GPUS NPROC=$S1_NPROC EVAL=0 WORKERS=${S1_WORKERS:-24} \
    bash "$HERE/default_model.sh" "$WORK/stage1" --continue "$FROM" --keep-vae "${SMOKE[@]}" > "$WORK/stage1.log" 2>&1 &
S1=$!
if [[ -n ${PRE:-} ]]; then
    (CUDA_VISIBLE_DEVICES=$LAST bash -c "$PRE") > "$WORK/pre.log" 2>&1 &
    PRE_PID=$!
fi
CUDA_VISIBLE_DEVICES=$LAST REF_EVAL=0 WORKERS=${REF_WORKERS:-20} \
    bash "$HERE/refiner_default.sh" "$WORK/refiner" --pipeline "$PIPE" "${SMOKE[@]}" > "$WORK/refiner.log" 2>&1
REF_RC=$?
log "refiner recipe exit $REF_RC"

worker() {  # worker GPU: take 2-scene parts (an even seed offset each, so paths alternate as in one run)
    local g=$1 i
    for i in $(seq 0 $(( PARTS - 1 ))); do
        mkdir "$WORK/evalq/claim.$i" 2> /dev/null || continue
        local extra=(); (( i == 0 )) && extra=(--sheets "$WORK/evalq/sheets")
        OMP_NUM_THREADS=${EVAL_THREADS:-4} "${SANAWM[@]}" eval worlds --model "$WORK/refiner/pipeline" "${ARGS[@]}" \
            --device "${DEVICE[$g]}" --seed-offset $(( 1000000 + 2 * i )) --out "$WORK/evalq/$i.json" "${extra[@]}" \
            > "$WORK/evalq/$i.md" 2> "$WORK/evalq/$i.log" || log "eval part $i failed (GPU $g)"
    done
}
if (( REF_RC == 0 )); then
    log "evaluation: ${EVAL_WORKERS:-2} workers on GPU $LAST"
    pids=()
    for _ in $(seq "${EVAL_WORKERS:-2}"); do worker "$LAST" & pids+=($!); done
    wait "$S1"; S1_RC=$?
    log "world model recipe exit $S1_RC; evaluation workers on GPUs 0..$(( N - 2 ))"
    for g in $(seq 0 $(( N - 2 ))); do worker "$g" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p"; done
    parts=(); for i in $(seq 0 $(( PARTS - 1 ))); do [[ -f $WORK/evalq/$i.json ]] && parts+=("$WORK/evalq/$i.json"); done
    "${SANAWM[@]}" eval merge "${parts[@]}" --out "$WORK/return/eval60_refine.json" --plot "$WORK/return/eval60_refine.png" \
        > "$WORK/return/eval60_refine.md" 2>> "$WORK/recipe.log"
    log "evaluation merged: ${#parts[@]} of $PARTS parts"
else
    wait "$S1"; S1_RC=$?
    log "world model recipe exit $S1_RC"
fi
[[ -n ${PRE_PID:-} ]] && wait "$PRE_PID"

# what comes back (small): logs, metrics, the transformer (bf16) and the refiner (int8)
R=$WORK/return
cp "$WORK"/*.log "$R/" 2> /dev/null
for run in stage1 refiner; do
    mkdir -p "$R/$run"
    cp "$WORK/$run"/*.json "$WORK/$run"/*.log "$R/$run/" 2> /dev/null
    for d in phase1 phase2 phase3 refiner; do
        [[ -f $WORK/$run/$d/metrics.jsonl ]] && cp "$WORK/$run/$d/metrics.jsonl" "$R/$run/$d-metrics.jsonl"
        [[ -f $WORK/$run/$d/config.yaml ]] && cp "$WORK/$run/$d/config.yaml" "$R/$run/$d-config.yaml"
    done
done
[[ -d $WORK/stage1/pipeline/transformer ]] && cp -r "$WORK/stage1/pipeline/transformer" "$R/stage1/transformer"
[[ -d $WORK/refiner/pipeline/refiner ]] && cp -r "$WORK/refiner/pipeline/refiner" "$R/refiner/refiner"
cp -r "$WORK/evalq" "$R/evalq" 2> /dev/null; rm -rf "$R"/evalq/claim.*
log "done"
(( S1_RC == 0 && REF_RC == 0 )) || { log "failed: world model recipe exit $S1_RC, refiner recipe exit $REF_RC"; exit 1; }
