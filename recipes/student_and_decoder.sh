#!/usr/bin/env bash
# The shipped model's next version on one GPU, two jobs at once (the 13.7 M network leaves the GPU mostly
# idle): the 4-step student (recipes/distill_default.sh) and a sharper VAE decoder (recipes/vae_decoder.sh,
# latent space unchanged). Then WORK/pipeline = the teacher + student/ + the new decoder, evaluated on the
# 20 held-out scenes over 10 s: the student, and the teacher at its own 8 steps and at 24 (>= 5x the
# student's network evaluations). WORK/return/ holds what a device call brings back.
#
#   recipes/student_and_decoder.sh WORK [--smoke]
set -euo pipefail
WORK=${1:?usage: recipes/student_and_decoder.sh WORK [--smoke]}
SMOKE=(); [[ ${2:-} == --smoke ]] && SMOKE=(--smoke)
HERE=$(dirname "$(realpath "$0")")
source "$HERE/lib.sh"
mkdir -p "$WORK"

log "decoder (background) and distillation"
bash "$HERE/vae_decoder.sh" "$WORK/decoder" "${SMOKE[@]}" > "$WORK/decoder.log" 2>&1 &
DECODER=$!
bash "$HERE/distill_default.sh" "$WORK/distill" "${SMOKE[@]}" > "$WORK/distill.log" 2>&1 \
    || { log "distillation failed: see $WORK/distill.log"; kill $DECODER; exit 1; }
log "distillation done"
wait $DECODER || { log "decoder fine-tuning failed: see $WORK/decoder.log"; exit 1; }
log "decoder done: $(tail -1 "$WORK/decoder/recipe.log")"

rm -rf "$WORK/pipeline"
cp -r "$WORK/decoder/pipeline" "$WORK/pipeline.partial"
cp -r "$WORK/distill/pipeline/student" "$WORK/pipeline.partial/student"
mv "$WORK/pipeline.partial" "$WORK/pipeline"

if [[ ${#SMOKE[@]} -eq 1 ]]; then EVAL=(--scenes 1 --seconds 1 --size 64 --horizons 1); STEPS=2
else EVAL=(--scenes 20 --seconds 10 --horizons 1,5,10); STEPS=24; fi
evaluate() {  # evaluate NAME ARGS...
    [[ -f $WORK/eval10_$1.json ]] || "${SANAWM[@]}" eval worlds --model "$WORK/pipeline" "${EVAL[@]}" \
        --dtype fp32 --out "$WORK/eval10_$1.json" --plot "$WORK/eval10_$1.png" "${@:2}" > "$WORK/eval10_$1.log" 2>&1
    log "eval $1: $(python3 -c "import json; r = json.load(open('$WORK/eval10_$1.json')); \
print(r['settings'].get('network'), {k: round(v['psnr'], 2) for k, v in r['horizons']['model'].items()})")"
}
evaluate student
evaluate teacher8 --teacher
evaluate teacher$STEPS --teacher --steps $STEPS

rm -rf "$WORK/return"; mkdir -p "$WORK/return"
cp -r "$WORK/pipeline/vae" "$WORK/pipeline/student" "$WORK/return/"
cp "$WORK"/eval10_*.json "$WORK"/eval10_*.png "$WORK"/*.log "$WORK/decoder"/vae-eval-*.json "$WORK/return/"
cp "$WORK/decoder/vae/metrics.jsonl" "$WORK/return/decoder_metrics.jsonl"
for s in ode dmd; do cp "$WORK/distill/$s/metrics.jsonl" "$WORK/return/${s}_metrics.jsonl" 2> /dev/null || true; done
cp "$WORK/distill/recipe.log" "$WORK/return/distill_recipe.log"
cp "$WORK/decoder/recipe.log" "$WORK/return/decoder_recipe.log"
touch "$WORK/return.done"
log "done"
