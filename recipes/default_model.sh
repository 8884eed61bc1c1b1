#!/usr/bin/env bash
# Train the shipped default model from nothing: procedural worlds -> VAE -> latents -> world model.
#
#   recipes/default_model.sh WORK [--smoke] [--continue PIPELINE [--keep-vae]] [--vae VAE_FOLDER]
#
# Every stage writes under WORK and is skipped when its output is complete, so a rerun resumes. --smoke
# runs the same chain at toy scale (a few 64-pixel clips, a few steps) to check it end to end on a CPU.
# --continue PIPELINE starts the VAE and phase 1 from a pipeline folder's weights (e.g. the shipped
# sanawm/assets/default-model) instead of from scratch, so training can span sessions; with --keep-vae the
# pipeline's VAE is used as it is (no VAE training: the latent space, and so the world model, carry over).
# --vae VAE_FOLDER uses a VAE trained elsewhere (e.g. by recipes/vae_widths.sh on another machine) as it is,
# and trains the world model from nothing in its latent space: a VAE and a world model on two machines.
# The full run was made on one H100 (see docs/model-card.md); its two world-model phases are time-boxed
# (run.time_limit_minutes), and the step each reached is logged in WORK/phase*/metrics.jsonl.
#
# NPROC [1]: the two world-model phases run under torchrun on NPROC GPUs of this host (FSDP2; with --smoke,
# NPROC gloo processes on the CPU) and the 10 s evaluation is split over them; the other stages are unchanged.
# Time boxes and batch sizes of the full run can be changed from the environment (defaults in brackets):
# VAE_MINUTES [5.5], VAE_STEPS [1400] (the cosine schedule's length), P1_MINUTES [7], P2_MINUTES [7],
# P1_BATCH [16], P2_BATCH [8] (global batches, split over the NPROC ranks: multiples of NPROC),
# A_SCENES [800] / B_SCENES [300] (phase-1 10 s / phase-2 20 s clips), LR [4e-4] (phase 1; phase 2 takes half),
# P3_MINUTES [0: no phase 3] / P3_BATCH [8] / C_SCENES [160]: an optional third phase on minute-long clips
# (121 latent frames, the length `sanawm generate` streams by default; a quarter of LR), from phase 2's EMA,
# WORKERS [12] (render processes), VAE_PRESET [medium] (a SmallVideoVAE preset; the world model's latent
# channels follow the VAE's, e.g. medium-c128 for the v2 plan in the model card),
# VAE_SCENES [160] (3 s clips for the VAE), FIRST_CHUNK_P [unset: the preset's mix] (samples in the
# first_chunk pattern, taken from clean_context's 0.3). With --continue the VAE restarts its cosine at a
# lower peak (2e-4).
# The full run ends with `sanawm eval worlds` on the GPU: 20 held-out scenes x 10 s and 2 x 60 s (eval*);
# EVAL=0 leaves them out (e.g. to evaluate the int8 export on a CPU instead, as the shipped model is).
#
# Seeds: VAE clips 0.., phase-1 clips 1000.., phase-2 clips 5000.., held-out VAE clips 900000..;
# `sanawm eval worlds` uses 1000000.. so nothing evaluated was trained on.
set -euo pipefail

WORK=${1:?usage: recipes/default_model.sh WORK [--smoke] [--continue PIPELINE [--keep-vae]] [--vae VAE_FOLDER]}
shift
MODE=full; FROM=""; KEEP_VAE=""; GIVEN_VAE=""
while (( $# )); do
    case $1 in
        --smoke) MODE=--smoke ;;
        --continue) FROM=$(realpath "${2:?--continue needs a pipeline folder}"); shift ;;
        --keep-vae) KEEP_VAE=1 ;;
        --vae) GIVEN_VAE=$(realpath "${2:?--vae needs a VAE folder}"); shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
HERE=$(dirname "$(realpath "$0")")
source "$HERE/lib.sh"  # SANAWM, log, render (clip length SECONDS_, processes WORKERS), has_checkpoint
NPROC=${NPROC:-1}
if [[ ! $NPROC =~ ^[1-9][0-9]*$ ]]; then
    echo "NPROC=$NPROC: give the number of GPUs to train on, e.g. NPROC=8" >&2; exit 2
fi
mkdir -p "$WORK"

if [[ $MODE == --smoke ]]; then
    SIZE=64; WORKERS=2
    VAE_SCENES=3; VAE_SECONDS=1; HELD_SCENES=2
    A_SCENES=3; A_SECONDS=2; A_FRAMES=33; B_SCENES=2; B_SECONDS=3; B_FRAMES=49; C_SCENES=2; C_SECONDS=4; C_FRAMES=65
    VAE_ARGS=(--preset tiny --steps 3 --batch-size 2 --workers 0 --stats-samples 2 --no-progress)
    PHASE_ARGS=(--model.preset=sana-wm-micro --data.workers=0 --run.steps=2 --run.log_every=1 --run.progress=false)
    P1_BATCH=$(( NPROC > 2 ? NPROC : 2 )); P2_BATCH=$P1_BATCH; P3_BATCH=$P1_BATCH
    P1_LIMIT=1; P2_LIMIT=1
    # continuing a real pipeline: its own architecture (the micro preset would not fit its weights)
    [[ -n $FROM ]] && PHASE_ARGS[0]=--model.preset=null
else
    SIZE=256; WORKERS=${WORKERS:-12}
    VAE_SCENES=${VAE_SCENES:-160}; VAE_SECONDS=3; HELD_SCENES=16
    VAE_PRESET=${VAE_PRESET:-medium}
    A_SCENES=${A_SCENES:-800}; A_SECONDS=10; A_FRAMES=161; B_SCENES=${B_SCENES:-300}; B_SECONDS=20; B_FRAMES=321
    C_SCENES=${C_SCENES:-160}; C_SECONDS=60; C_FRAMES=961
    VAE_LR=5e-4; [[ -n $FROM ]] && VAE_LR=2e-4
    VAE_ARGS=(--preset "$VAE_PRESET" --steps "${VAE_STEPS:-1400}" --batch-size 8 --lr "$VAE_LR" --warmup-steps 100
              --schedule cosine --time-limit-minutes "${VAE_MINUTES:-5.5}" --workers 4 --log-every 25
              --ckpt-every 500 --no-progress)
    PHASE_ARGS=(--run.progress=false)
    P1_BATCH=${P1_BATCH:-16}; P2_BATCH=${P2_BATCH:-8}; P3_BATCH=${P3_BATCH:-8}
    P1_LIMIT=${P1_MINUTES:-7}; P2_LIMIT=${P2_MINUTES:-7}
fi
if [[ -n $KEEP_VAE && -z $FROM ]]; then echo "--keep-vae needs --continue PIPELINE" >&2; exit 2; fi
if [[ -n $GIVEN_VAE && -n $FROM ]]; then echo "--vae and --continue exclude each other" >&2; exit 2; fi
if [[ -n $GIVEN_VAE && ! -f $GIVEN_VAE/config.json ]]; then
    echo "--vae $GIVEN_VAE: no config.json there; pass a SmallVideoVAE folder (e.g. WORK/<preset>/vae)" >&2; exit 2
fi
P3_LIMIT=${P3_MINUTES:-0}
PHASE3=$(python3 -c "print(int(float('$P3_LIMIT') > 0))")  # 1: phase 3 runs
batches=(P1_BATCH P2_BATCH); (( PHASE3 )) && batches+=(P3_BATCH)
for batch in "${batches[@]}"; do
    if (( ${!batch} % NPROC )); then
        echo "$batch=${!batch} is the global batch, split over NPROC=$NPROC ranks;" \
             "set $batch to a multiple of $NPROC" >&2
        exit 2
    fi
done
# The world-model phases: one process, or torchrun (run as `python3 -m torch.distributed.run`, the interpreter
# of the other stages) with one rank per GPU; each rank gets its share of the CPU threads.
TRAIN=("${SANAWM[@]}" train)
if (( NPROC > 1 )); then
    if [[ $MODE != --smoke ]]; then
        GPUS=$(python3 -c "import torch; print(torch.cuda.device_count())")
        if (( GPUS < NPROC )); then
            echo "NPROC=$NPROC but torch sees $GPUS GPU(s) here; lower NPROC (on a CPU, NPROC > 1 is for --smoke)" >&2
            exit 2
        fi
    fi
    export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
    THREADS=${OMP_NUM_THREADS:-$(( $(nproc) / NPROC ))}; (( THREADS > 0 )) || THREADS=1
    TRAIN=(env OMP_NUM_THREADS="$THREADS" python3 -m torch.distributed.run --standalone --nproc-per-node "$NPROC"
           -m sanawm.cli.main train)
fi
LATENT_A=$(( (A_FRAMES - 1) / 8 + 1 )); LATENT_B=$(( (B_FRAMES - 1) / 8 + 1 )); LATENT_C=$(( (C_FRAMES - 1) / 8 + 1 ))


cache() {  # cache NAME FRAMES
    [[ -f $WORK/latents-$1/index.json ]] && return
    "${SANAWM[@]}" cache-latents "$WORK/$1" --vae "$WORK/vae/vae" --frames "$2" --size "$SIZE,$SIZE" \
        --windows-per-clip 1 --workers 8 --batch-size 8 --out "$WORK/latents-$1" --no-progress > "$WORK/latents-$1.json"
}

eval10() {  # the 20 held-out 10 s scenes: one process, or one per GPU (NPROC) over seed ranges, merged
    local args=(--model "$WORK/pipeline" --seconds 10 --horizons 1,5,10 --dtype fp32) parts=$WORK/eval10-parts
    if (( NPROC == 1 )); then
        "${SANAWM[@]}" eval worlds "${args[@]}" --scenes 20 --out "$WORK/eval10.json" --plot "$WORK/eval10.png" \
            > "$WORK/eval10.log" 2>&1
        return
    fi
    # A scene's path kind (walk, revisit, walk, ...) follows its place in its run: each part takes whole
    # pairs of scenes from an even offset, so every scene gets the path it gets in one process.
    local g first end pids=() reports=() failed=0
    rm -rf "$parts"; mkdir -p "$parts"
    for (( g = 0; g < NPROC; g++ )); do
        first=$(( 2 * (10 * g / NPROC) )); end=$(( 2 * (10 * (g + 1) / NPROC) ))
        (( end > first )) || continue
        "${SANAWM[@]}" eval worlds "${args[@]}" --device "cuda:$g" --seed-offset $(( 1000000 + first )) \
            --scenes $(( end - first )) --out "$parts/$g.json" > "$parts/$g.log" 2>&1 &
        pids+=($!); reports+=("$parts/$g.json")
    done
    for g in "${pids[@]}"; do wait "$g" || failed=1; done
    (( ! failed )) || { log "eval worlds failed: see $parts/*.log"; exit 1; }
    "${SANAWM[@]}" eval merge "${reports[@]}" --out "$WORK/eval10.json" --plot "$WORK/eval10.png" \
        > "$WORK/eval10.log" 2>&1
}

wait_for() {  # wait for WORK/NAME.done, which the background job writes; fail if that job died
    while [[ ! -f $WORK/$1.done ]]; do
        kill -0 "$BACKGROUND" 2> /dev/null || { log "background job failed: see $WORK/background.log"; exit 1; }
        sleep 5
    done
}

log "worlds for the VAE"
[[ -n $GIVEN_VAE ]] || SECONDS_=$VAE_SECONDS render worlds-vae 0 "$VAE_SCENES"
SECONDS_=$VAE_SECONDS render worlds-heldout 900000 "$HELD_SCENES"

# The world-model clips render on the CPUs while the VAE trains on the GPU; their latents cache as
# soon as the VAE exists, phase 2's while phase 1 trains.
(
    SECONDS_=$A_SECONDS WORKERS=$((WORKERS * 5 / 6)) render worlds-a 1000 "$A_SCENES"
    SECONDS_=$B_SECONDS WORKERS=$((WORKERS * 5 / 6)) render worlds-b 5000 "$B_SCENES"
    while [[ ! -f $WORK/vae/vae/config.json || ! -f $WORK/latents-worlds-a/index.json ]]; do sleep 5; done
    cache worlds-b "$B_FRAMES"
    touch "$WORK/latents-b.done"
    if (( PHASE3 )); then
        SECONDS_=$C_SECONDS WORKERS=$((WORKERS * 5 / 6)) render worlds-c 8000 "$C_SCENES"
        cache worlds-c "$C_FRAMES"
        touch "$WORK/latents-c.done"
    fi
) >> "$WORK/background.log" 2>&1 &
BACKGROUND=$!
trap 'kill $BACKGROUND 2> /dev/null || true' EXIT

log "VAE"
if [[ -n $GIVEN_VAE && ! -f $WORK/vae/vae/config.json ]]; then
    mkdir -p "$WORK/vae" && cp -r "$GIVEN_VAE" "$WORK/vae/vae"
    log "VAE given: $GIVEN_VAE"
fi
if [[ -n $KEEP_VAE && ! -f $WORK/vae/vae/config.json ]]; then
    mkdir -p "$WORK/vae" && cp -r "$FROM/vae" "$WORK/vae/vae"
    log "VAE kept from $FROM/vae"
fi
if [[ ! -f $WORK/vae/vae/config.json ]]; then
    resume=(); [[ -n $FROM ]] && resume=(--init-from "$FROM/vae")
    has_checkpoint "$WORK/vae" && resume=(--resume)
    "${SANAWM[@]}" vae train "$WORK/worlds-vae" --frames 17 --size "$SIZE,$SIZE" --out "$WORK/vae" \
        "${VAE_ARGS[@]}" "${resume[@]}" > "$WORK/vae.json"
fi
[[ -f $WORK/vae-eval.json ]] || "${SANAWM[@]}" vae eval "$WORK/vae/vae" "$WORK/worlds-heldout" --frames 17 \
    --size "$SIZE,$SIZE" --out "$WORK/vae-eval.json" > /dev/null
log "VAE done: $(python3 -c "import json; r = json.load(open('$WORK/vae-eval.json')); print(f\"held-out PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.3f}\")")"

# The world model reads the VAE's latents: its input/output width is the VAE's latent channels.
CHANNELS=$(python3 -c "import json; print(json.load(open('$WORK/vae/vae/config.json'))['latent_channels'])")
PHASE_ARGS+=(--model.overrides.in_channels="$CHANNELS")
# FIRST_CHUNK_P: the share of samples in the first_chunk pattern (sanawm.training.timesteps), taken from
# clean_context's; the first chunk at high σ gets 1.4-2.6% of the loss without it (docs/model-card.md)
if [[ -n ${FIRST_CHUNK_P:-} ]]; then
    PHASE_ARGS+=(--flow.timesteps.p_first_chunk="$FIRST_CHUNK_P"
                 --flow.timesteps.p_clean_context="$(python3 -c "print(round(max(0.0, 0.3 - $FIRST_CHUNK_P), 6))")")
fi

log "latents, phase 1"
wait_for worlds-a
cache worlds-a "$A_FRAMES"

# train_phase N CACHE LATENT_FRAMES BATCH LR_DIVISOR MINUTES WARMUP [INIT...]: WORK/phaseN on WORK/CACHE at
# LR / LR_DIVISOR, from INIT (e.g. the previous phase's EMA), or resumed from its own latest checkpoint.
train_phase() {
    local n=$1 cache=$2 frames=$3 batch=$4 divisor=$5 minutes=$6 warmup=$7
    shift 7
    [[ -f $WORK/phase$n.done ]] && return
    local init=("$@")
    has_checkpoint "$WORK/phase$n" && init=(--resume)
    "${TRAIN[@]}" default-world "${init[@]}" --data.path="$WORK/$cache" --data.latent_frames="$frames" \
        --data.size="$SIZE,$SIZE" --data.batch_size="$batch" \
        --optim.lr="$(python3 -c "print(${LR:-4e-4} / $divisor)")" --optim.warmup_steps="$warmup" \
        --run.out_dir="$WORK/phase$n" --run.time_limit_minutes="$minutes" "${PHASE_ARGS[@]}" > "$WORK/phase$n.json"
    touch "$WORK/phase$n.done"
}

log "phase 1: ${LATENT_A} latent frames"
init=(); [[ -n $FROM ]] && init=(--model.init_from="$FROM/transformer")
train_phase 1 latents-worlds-a "$LATENT_A" "$P1_BATCH" 1 "$P1_LIMIT" 200 "${init[@]}"

log "phase 2: ${LATENT_B} latent frames"
wait_for latents-b
train_phase 2 latents-worlds-b "$LATENT_B" "$P2_BATCH" 2 "$P2_LIMIT" 50 \
    --model.init_from="$WORK/phase1" --model.init_weights=ema
LAST=phase2
if (( PHASE3 )); then
    log "phase 3: ${LATENT_C} latent frames"
    wait_for latents-c
    train_phase 3 latents-worlds-c "$LATENT_C" "$P3_BATCH" 4 "$P3_LIMIT" 50 \
        --model.init_from="$WORK/phase2" --model.init_weights=ema
    LAST=phase3
fi
wait "$BACKGROUND"

log "export"
"${SANAWM[@]}" export "$WORK/$LAST" --vae "$WORK/vae/vae" --out "$WORK/pipeline" --overwrite > "$WORK/export.json"
log "exported: $WORK/pipeline"

if [[ $MODE != --smoke && ${EVAL:-1} != 0 ]]; then  # held-out evaluation on the GPU (fp32, as the CPU evaluations)
    log "eval worlds"
    if [[ ! -f $WORK/eval10.json ]]; then eval10; fi  # not `||`: set -e would not reach into eval10
    [[ -f $WORK/eval60.json ]] || "${SANAWM[@]}" eval worlds --model "$WORK/pipeline" --scenes 2 --seconds 60 \
        --dtype fp32 --out "$WORK/eval60.json" --sheets "$WORK/sheets60" --plot "$WORK/eval60.png" \
        > "$WORK/eval60.log" 2>&1
fi
log "done: $WORK/pipeline"
