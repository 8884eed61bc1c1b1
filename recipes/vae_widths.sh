#!/usr/bin/env bash
# Train whole VAEs (encoder and decoder, from nothing) of several presets side by side on one GPU, on the
# same procedural clips, and score each on the same held-out clips: which latent width reaches the
# default model's reconstruction aim (28 dB at 256²) in a given time. A study, not a shipped stage.
#
#   recipes/vae_widths.sh WORK [--smoke] PRESET...        e.g. WORK medium medium-c64 medium-c128
#
# Writes WORK/<preset>/vae (the trained VAE), WORK/<preset>.log, WORK/vae-eval-<preset>.json (PSNR / SSIM
# on held-out clips, seeds 900000..), WORK/widths.json (all of them) and WORK/return/<preset>/ (the VAE in
# bf16, as a pipeline ships it, with its evaluation and metrics: what comes back from the GPU machine).
# Time box per run: VAE_MINUTES (default 20); the cosine schedule spans VAE_STEPS (default 20000, so a
# short study stays near the peak rate); all runs train at once, each with batch VAE_BATCH (default 8) and
# VAE_WORKERS (default 3) data workers.
# Seeds: training clips 0.. (SCENES, default 640 clips of 3 s), held-out 900000...
set -euo pipefail

WORK=${1:?usage: recipes/vae_widths.sh WORK [--smoke] PRESET...}
shift
MODE=full; PRESETS=()
while (( $# )); do
    case $1 in
        --smoke) MODE=--smoke ;;
        -*) echo "unknown argument $1" >&2; exit 2 ;;
        *) PRESETS+=("$1") ;;
    esac
    shift
done
(( ${#PRESETS[@]} )) || { echo "name at least one VAE preset" >&2; exit 2; }
HERE=$(dirname "$(realpath "$0")")
source "$HERE/lib.sh"
mkdir -p "$WORK"

if [[ $MODE == --smoke ]]; then
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    SIZE=64; WORKERS=2; SCENES=2; SECONDS_=1; HELD=1
    TRAIN=(--steps 2 --batch-size 1 --workers 0 --log-every 1 --stats-samples 2 --no-progress)
else
    SIZE=256; WORKERS=12; SCENES=${SCENES:-640}; SECONDS_=3; HELD=16
    TRAIN=(--steps "${VAE_STEPS:-20000}" --batch-size "${VAE_BATCH:-8}" --lr 5e-4 --warmup-steps 100 --schedule cosine
           --time-limit-minutes "${VAE_MINUTES:-20}" --workers "${VAE_WORKERS:-3}" --log-every 50
           --ckpt-every 1000 --precision bf16 --no-progress)
fi

log "worlds: $SCENES training clips, $HELD held out"
render worlds 0 "$SCENES"
render worlds-heldout 900000 "$HELD"

train() {  # train PRESET: from nothing, or resumed from its checkpoints
    local p=$1
    [[ -f $WORK/$p/vae/config.json ]] && return
    local resume=(); has_checkpoint "$WORK/$p" && resume=(--resume)
    "${SANAWM[@]}" vae train "$WORK/worlds" --preset "$p" --frames 17 --size "$SIZE,$SIZE" --out "$WORK/$p" \
        "${TRAIN[@]}" "${resume[@]}" > "$WORK/$p.json" 2> "$WORK/$p.log"
}
log "training ${PRESETS[*]} side by side"
pids=()
for p in "${PRESETS[@]}"; do train "$p" & pids+=($!); done
status=0
for i in "${!pids[@]}"; do wait "${pids[$i]}" || { log "${PRESETS[$i]} failed (see $WORK/${PRESETS[$i]}.log)"; status=1; }; done

for p in "${PRESETS[@]}"; do
    [[ -f $WORK/$p/vae/config.json ]] || continue
    [[ -f $WORK/vae-eval-$p.json ]] || "${SANAWM[@]}" vae eval "$WORK/$p/vae" "$WORK/worlds-heldout" --frames 17 \
        --size "$SIZE,$SIZE" --out "$WORK/vae-eval-$p.json" > /dev/null
done
python3 - "$WORK" "${PRESETS[@]}" <<'PY'
import json, pathlib, sys
work = pathlib.Path(sys.argv[1])
rows = {}
for p in sys.argv[2:]:
    ev = work / f"vae-eval-{p}.json"
    metrics = [json.loads(line) for line in (work / p / "metrics.jsonl").read_text().splitlines() if line.strip()] \
        if (work / p / "metrics.jsonl").exists() else []
    rows[p] = {"eval": json.loads(ev.read_text()) if ev.exists() else None,
               "steps": metrics[-1].get("step") if metrics else 0, "last": metrics[-1] if metrics else None}
(work / "widths.json").write_text(json.dumps(rows, indent=1))
for p, r in rows.items():
    e = r["eval"]
    print(f"{p}: {r['steps']} steps, held-out " + (f"{e['psnr']:.2f} dB / SSIM {e['ssim']:.3f}" if e else "not evaluated"))
PY
for p in "${PRESETS[@]}"; do  # the bf16 copy (what a pipeline ships) and its record, for the trip back
    [[ -f $WORK/$p/vae/config.json ]] || continue
    python3 -c "import sys, torch; from sanawm.vae.small import SmallVideoVAE as V
V.from_pretrained(sys.argv[1]).to(torch.bfloat16).save_pretrained(sys.argv[2])" "$WORK/$p/vae" "$WORK/return/$p/vae"
    cp "$WORK/$p/metrics.jsonl" "$WORK/$p.json" "$WORK/return/$p/" 2> /dev/null || true
    cp "$WORK/vae-eval-$p.json" "$WORK/return/$p/" 2> /dev/null || true
done
cp "$WORK/widths.json" "$WORK/return/" 2> /dev/null || true
log "done"
exit $status
