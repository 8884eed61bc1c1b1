#!/usr/bin/env bash
# Fine-tune a pipeline's VAE decoder alone (`sanawm vae train --decoder-only`): the encoder and the latent
# statistics stay frozen, so the world model trained in that latent space (and a student or refiner made
# from it) keeps working unchanged, while every decoded frame gets sharper.
#
#   recipes/vae_decoder.sh WORK [--smoke] [--pipeline PIPELINE]
#
# Writes WORK/pipeline: a copy of PIPELINE (default: the shipped model) with the new decoder (bf16), and
# WORK/vae-eval-{before,after}.json: reconstruction PSNR / SSIM on held-out clips (seeds 900000..).
# Stages are skipped when done; the training is time-boxed (DEC_MINUTES, default 12) and resumes.
# Seeds: training clips 0.. (the first 160 are the VAE's own training worlds), held-out 900000...
set -euo pipefail

WORK=${1:?usage: recipes/vae_decoder.sh WORK [--smoke] [--pipeline PIPELINE]}
shift
MODE=full; PIPE=""
while (( $# )); do
    case $1 in
        --smoke) MODE=--smoke ;;
        --pipeline) PIPE=$(realpath "${2:?--pipeline needs a folder}"); shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
HERE=$(dirname "$(realpath "$0")")
source "$HERE/lib.sh"
[[ -n $PIPE ]] || PIPE=$(default_pipeline)
mkdir -p "$WORK"

if [[ $MODE == --smoke ]]; then
    SIZE=64; WORKERS=2; SCENES=2; SECONDS_=1; HELD=1
    TRAIN=(--steps 2 --batch-size 1 --workers 0 --log-every 1 --no-progress)
else
    SIZE=256; WORKERS=12; SCENES=320; SECONDS_=3; HELD=16
    TRAIN=(--steps 6000 --batch-size 8 --lr 2e-4 --warmup-steps 50 --schedule cosine --workers 4
           --time-limit-minutes "${DEC_MINUTES:-12}" --log-every 50 --ckpt-every 500 --no-progress)
fi
PRESET=$(python3 -c "
import sys
from sanawm.vae import SMALL_VAE_PRESETS, SmallVideoVAE
cfg = SmallVideoVAE.from_pretrained('$PIPE/vae').config
names = [n for n, p in SMALL_VAE_PRESETS.items() if p == cfg]
print(names[0]) if names else sys.exit('the pipeline VAE matches no SmallVideoVAE preset')")

log "worlds (pipeline $PIPE, VAE preset $PRESET)"
render worlds 0 "$SCENES"
render worlds-heldout 900000 "$HELD"

evaluate() {  # evaluate VAE_FOLDER NAME
    [[ -f $WORK/vae-eval-$2.json ]] || "${SANAWM[@]}" vae eval "$1" "$WORK/worlds-heldout" --frames 17 \
        --size "$SIZE,$SIZE" --out "$WORK/vae-eval-$2.json" > /dev/null
}
evaluate "$PIPE/vae" before

log "decoder fine-tuning"
if [[ ! -f $WORK/vae/vae/config.json ]]; then
    resume=(); has_checkpoint "$WORK/vae" && resume=(--resume)
    "${SANAWM[@]}" vae train "$WORK/worlds" --preset "$PRESET" --frames 17 --size "$SIZE,$SIZE" \
        --init-from "$PIPE/vae" --decoder-only --out "$WORK/vae" "${TRAIN[@]}" "${resume[@]}" > "$WORK/vae.json"
fi
evaluate "$WORK/vae/vae" after

log "pipeline"
rm -rf "$WORK/pipeline.partial"
cp -r "$PIPE" "$WORK/pipeline.partial"
python3 - "$WORK/vae/vae" "$WORK/pipeline.partial/vae" <<'PY'
import shutil, sys
import torch
from sanawm.vae import SmallVideoVAE
vae = SmallVideoVAE.from_pretrained(sys.argv[1])
shutil.rmtree(sys.argv[2])
vae.to(torch.bfloat16).save_pretrained(sys.argv[2])
PY
rm -rf "$WORK/pipeline"; mv "$WORK/pipeline.partial" "$WORK/pipeline"
log "done: held-out PSNR $(python3 -c "import json; b, a = (json.load(open('$WORK/vae-eval-' + n + '.json')) for n in ('before', 'after')); \
print(f\"{b['psnr']:.2f} -> {a['psnr']:.2f} dB, SSIM {b['ssim']:.3f} -> {a['ssim']:.3f}\")")"
