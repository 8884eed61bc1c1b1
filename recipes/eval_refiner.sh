#!/usr/bin/env bash
# The refiner's acceptance evaluation: stage 1 (the pipeline's multi-step model, its own sampler settings)
# against stage 1 + the pipeline's refiner, same seeds, on held-out procedural scenes along 60 s paths.
#
#   recipes/eval_refiner.sh WORK [--smoke] [--pipeline PIPELINE]
#
# Writes WORK/return/eval.json (per scene, per frame, per horizon; drift and revisit per method),
# WORK/return/psnr.png and WORK/return/sheets/ (contact sheets). EVAL_SCENES (default 20), EVAL_SECONDS (default 60),
# EVAL_OFFSET (first scene seed, default 1000000; keep it even so that walk and revisit paths alternate as in
# one run: several processes over consecutive seed ranges add up to the same scenes).
set -euo pipefail
WORK=${1:?usage: recipes/eval_refiner.sh WORK [--smoke] [--pipeline PIPELINE]}
shift
MODE=full; PIPE=()
while (( $# )); do
    case $1 in
        --smoke) MODE=--smoke ;;
        --pipeline) PIPE=(--model "$(realpath "${2:?--pipeline needs a folder}")"); shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
HERE=$(dirname "$(realpath "$0")")
source "$HERE/lib.sh"
mkdir -p "$WORK/return"
if [[ $MODE == --smoke ]]; then
    ARGS=(--scenes 1 --seconds 2 --size 64 --horizons 1,2 --steps 2)
else
    ARGS=(--scenes "${EVAL_SCENES:-20}" --seed-offset "${EVAL_OFFSET:-1000000}" --seconds "${EVAL_SECONDS:-60}"
          --horizons 1,5,10,30,60)
fi
log "stage 1 vs stage 1 + refiner: ${ARGS[*]}"
"${SANAWM[@]}" eval worlds "${PIPE[@]}" --teacher --refine --no-ablation --dtype fp32 "${ARGS[@]}" \
    --sheets "$WORK/return/sheets" --plot "$WORK/return/psnr.png" --out "$WORK/return/eval.json" \
    > "$WORK/return/eval.stdout" 2> "$WORK/eval.log"
log "done"
