#!/usr/bin/env bash
# Distil the shipped default model into a 4-step autoregressive student (README, Distillation):
# procedural world clips -> latent caches (conditions: first frame, cameras) -> the teacher's ODE
# trajectories -> ODE regression -> self-forcing DMD -> a pipeline folder WORK/pipeline (the teacher's,
# plus student/).
#
#   recipes/distill_default.sh WORK [--smoke] [--teacher PIPELINE] [--ode-minutes N] [--dmd-minutes N]
#                              [--ode-lr LR] [--dmd-lr LR] [--ode-batch N] [--shared DATA]
#
# Every stage writes under WORK and is skipped when its output is complete; the two training stages are
# time-boxed (run.time_limit_minutes) and resume from their checkpoints, so a rerun continues. --smoke
# runs the same chain at toy scale (two 64-pixel clips, a few steps) to check it end to end on a CPU.
# --teacher PIPELINE distils another pipeline folder (default: the model shipped in the package).
# --ode-minutes / --dmd-minutes box the two trainings (defaults 20 and 8); --ode-lr / --dmd-lr override the
# student's learning rate of each stage (the presets' 1e-4 and 1e-5; the critic's follows at twice the
# student's). --ode-batch N sets the ODE stage's batch (the preset's 16; a step of the small model is
# bound by kernel launches, not arithmetic, so a larger batch sees more trajectories a second). --shared
# DATA keeps the clips, latent caches and trajectories in DATA instead of WORK, made under a lock by
# whichever run gets there first: several students of one teacher (other rates, other
# lengths) then share one preparation (recipes/distill_sweep.sh). The first run (5 minutes of ODE, 138
# steps) moved the weights 1% from the teacher: its student sampled like the teacher with a 4-step sampler,
# camera gain included (docs/model-card.md). Both stages log the camera probe (camera_gap_{student,teacher}
# in metrics.jsonl); its first and last rows go to WORK/recipe.log.
#
# Seeds: condition clips 20000..; `sanawm eval worlds` uses 1000000.., so nothing evaluated was seen.
set -euo pipefail

USAGE="usage: recipes/distill_default.sh WORK [--smoke] [--teacher PIPELINE] [--ode-minutes N] [--dmd-minutes N] \
[--ode-lr LR] [--dmd-lr LR] [--ode-batch N] [--shared DATA]"
WORK=${1:?$USAGE}
shift
MODE=full; TEACHER=""; ODE_MINUTES=20; DMD_MINUTES=8; ODE_OPT=(); LR_DMD=(); DATA=""
while (( $# )); do
    case $1 in
        --smoke) MODE=--smoke ;;
        --teacher) TEACHER=$(realpath "${2:?--teacher needs a pipeline folder}"); shift ;;
        --ode-minutes) ODE_MINUTES=${2:?--ode-minutes needs a number}; shift ;;
        --dmd-minutes) DMD_MINUTES=${2:?--dmd-minutes needs a number}; shift ;;
        --ode-lr) ODE_OPT=(--optim.lr="${2:?--ode-lr needs a learning rate}"); shift ;;
        --dmd-lr) lr=${2:?--dmd-lr needs a learning rate}; shift
                  LR_DMD=(--optim.lr="$lr" --dmd.critic_optim.lr="$(python3 -c "print(2 * float('$lr'))")") ;;
        --ode-batch) ODE_OPT+=(--data.batch_size="${2:?--ode-batch needs a number}"); shift ;;
        --shared) DATA=${2:?--shared needs a folder}; shift ;;
        *) echo "unknown argument $1; $USAGE" >&2; exit 2 ;;
    esac
    shift
done
HERE=$(dirname "$(realpath "$0")")
source "$HERE/lib.sh"
[[ -n $TEACHER ]] || TEACHER=$(default_pipeline)
mkdir -p "$WORK"
[[ -n $DATA ]] || DATA=$WORK
mkdir -p "$DATA"; DATA=$(realpath "$DATA")
camera_log() {  # camera_log RUN: the camera probe's first and last rows (does the student keep the camera?)
    log "$(basename "$1") camera probe: $(python3 -m sanawm.distill.diagnostics "$1/metrics.jsonl")"
}

if [[ $MODE == --smoke ]]; then
    # toy tensors: one thread each is fastest on a small, shared CPU
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    SIZE=64; WORKERS=2; SCENES=2; SECONDS_=2; WINDOWS=1
    ODE_FRAMES=33; DMD_FRAMES=33           # 5 latent frames each
    COMMON=(--data.batch_size=1 --data.workers=0 --run.steps=2 --run.log_every=1 --run.progress=false)
    ODE_ARGS=(--data.latent_frames=5 --teacher.steps=2 --ode.samples=2 --ode.shard_size=2 --ode.batch_size=2)
    DMD_ARGS=(--data.latent_frames=5 '--dmd.curriculum=[[0,4],[1,5]]' --dmd.critic_steps=1)
    ODE_LIMIT=1; DMD_LIMIT=1; CHECK_SECONDS=1
else
    SIZE=256; WORKERS=12; SCENES=192; SECONDS_=20; WINDOWS=3
    ODE_FRAMES=161; DMD_FRAMES=321         # 21 and 41 latent frames (10 s, 20 s)
    COMMON=(--run.progress=false)
    ODE_ARGS=(--ode.samples=1024)       # 4 min of trajectories on the H100 (2 min per 512)
    DMD_ARGS=()
    ODE_LIMIT=$ODE_MINUTES; DMD_LIMIT=$DMD_MINUTES; CHECK_SECONDS=60
fi
# the ODE stage's data and trajectory settings, for `distill trajectories` and the stage alike (with the
# teacher, size and COMMON, they identify the trajectories: the same for every run sharing DATA)
ODE_DATA=(--data.path="$DATA/latents-$ODE_FRAMES" --ode.dataset="$DATA/trajectories" "${ODE_ARGS[@]}")

log "teacher: $TEACHER"
[[ $DATA != "$(realpath "$WORK")" ]] && log "clips, latent caches and trajectories: $DATA (shared)"
cache() {  # cache FRAMES: latents of the teacher's VAE (only frame 0 is read) with camera inputs
    [[ -f $DATA/latents-$1/index.json ]] && return
    "${SANAWM[@]}" cache-latents "$DATA/worlds" --vae "$TEACHER/vae" --frames "$1" --size "$SIZE,$SIZE" \
        --windows-per-clip "$WINDOWS" --workers 8 --batch-size 8 --out "$DATA/latents-$1" --no-progress \
        > "$DATA/latents-$1.json"
}
prepare() {  # clips, caches and trajectories into DATA, each skipped once complete
    log "condition clips"
    (WORK=$DATA; render worlds 20000 "$SCENES")
    log "latent caches"
    cache "$ODE_FRAMES"
    cache "$DMD_FRAMES"
    log "teacher trajectories"
    [[ -f $DATA/trajectories.done ]] || {
        "${SANAWM[@]}" distill trajectories distill-ode-default --teacher.path="$TEACHER" --data.size="$SIZE,$SIZE" \
            --run.out_dir="$WORK/ode" "${COMMON[@]}" "${ODE_DATA[@]}" > "$DATA/trajectories.json"
        touch "$DATA/trajectories.done"
    }
}
if command -v flock > /dev/null; then  # one run prepares; the others wait, then find it done
    exec 9> "$DATA/.prepare.lock"
    flock 9
    prepare
    flock -u 9
else
    prepare
fi

stage() {  # stage ode|dmd PRESET LIMIT ARGS...: run or resume a time-boxed distillation stage
    local name=$1 preset=$2 limit=$3; shift 3
    [[ -f $WORK/$name.done ]] && return
    local resume=(); has_checkpoint "$WORK/$name" && resume=(--resume)
    "${SANAWM[@]}" distill "$name" "$preset" "${resume[@]}" --teacher.path="$TEACHER" \
        --data.size="$SIZE,$SIZE" --run.out_dir="$WORK/$name" --run.time_limit_minutes="$limit" \
        "${COMMON[@]}" "$@" > "$WORK/$name.json"
    touch "$WORK/$name.done"
}
log "ODE regression"
stage ode distill-ode-default "$ODE_LIMIT" "${ODE_DATA[@]}" "${ODE_OPT[@]}"
camera_log "$WORK/ode"
log "self-forcing DMD"
stage dmd distill-dmd-default "$DMD_LIMIT" --data.path="$DATA/latents-$DMD_FRAMES" \
    --student.init_from="$WORK/ode" "${DMD_ARGS[@]}" "${LR_DMD[@]}"
camera_log "$WORK/dmd"

# WORK/pipeline appears last, once the student has generated from it (recipes/device_watch.sh waits for it)
log "export"
rm -rf "$WORK/pipeline.partial"
"${SANAWM[@]}" distill export "$WORK/dmd" --pipeline "$TEACHER" --out "$WORK/pipeline.partial" --int8 \
    > "$WORK/export.json"
log "check: the student generates ${CHECK_SECONDS} s"
"${SANAWM[@]}" generate --model "$WORK/pipeline.partial" --seconds "$CHECK_SECONDS" --height "$SIZE" \
    --width "$SIZE" --out "$WORK/check.mp4" > "$WORK/check.json" 2> "$WORK/check.log"
rm -rf "$WORK/pipeline"; mv "$WORK/pipeline.partial" "$WORK/pipeline"
log "done: $WORK/pipeline ($(python3 -c "import json; r = json.load(open('$WORK/check.json')); \
print(f\"{r['network']}: {r['frames']} frames in {r['seconds_taken']} s\")"))"
