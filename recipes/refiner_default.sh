#!/usr/bin/env bash
# Train the small stage-2 refiner of the shipped default model (README, Refiner): procedural world clips ->
# a latent cache (ground truth + cameras) -> stage-1 rollouts of the pipeline (pairs) -> truncated-σ flow
# matching from the stage-1 weights -> WORK/pipeline (the pipeline folder plus refiner/, stored in int8 as it
# ships) -> a 60 s evaluation of stage 1 against stage 1 + refiner on held-out worlds (WORK/eval60_refine.json).
#
#   recipes/refiner_default.sh WORK [--smoke] [--pipeline PIPELINE]
#
# Every stage writes under WORK and is skipped when its output is complete; training is time-boxed
# (run.time_limit_minutes; REF_MINUTES, default 8) and resumes from its checkpoints, so a rerun continues;
# REF_SECONDS (default 20) sets the training rollouts' length and REF_BATCH the training batch (default: 16 at
# 20 s, fewer clips for longer rollouts, about 60 k latent tokens a step: 8 at 60 s, ~35 GiB on the GPU);
# REF_SCENES (default 256) the number of training worlds (each rendered, cached and rolled out once);
# REF_BIAS (default 0) the target blocks' weighting toward the late clip (refiner.target_bias), REF_UNIFORM
# (default 0) a share of uniform target draws beside it (refiner.target_uniform); REF_CONTEXT
# (default 0) the share of training clips whose history is the stage-1 rollout (refiner.stage1_context);
# REF_DATA=OTHER_WORK trains on another run's clips, latents and pairs (a variant on the same data). The
# evaluation (no camera-removed baseline, fp32) runs as five processes of 4 scenes, merged; REF_EVAL=0 stops
# after the export (recipes/continue_and_refine.sh evaluates on several GPUs instead). --smoke runs the same
# chain at toy scale (two 64-pixel clips, two steps, a 1 s evaluation) to check it end to end on a CPU.
# --pipeline PIPELINE refines another pipeline folder (default: the model shipped in the package; a
# folder with a distilled student/ is rolled out with the student, its own default sampler).
#
# On a GPU machine with no internet it needs PyAV, MuJoCo and MuJoCo's GL libraries installed (README, Training
# the default model: recipes/carry_parts.sh brings their wheels in over several calls).
# Seeds: training clips 30000..; `sanawm eval worlds` uses 1000000.., so nothing evaluated was seen.
set -euo pipefail

WORK=${1:?usage: recipes/refiner_default.sh WORK [--smoke] [--pipeline PIPELINE]}
shift
MODE=full; PIPE=""
while (( $# )); do
    case $1 in
        --smoke) MODE=--smoke ;;
        --pipeline) PIPE=$(realpath "${2:?--pipeline needs a pipeline folder}"); shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
HERE=$(dirname "$(realpath "$0")")
source "$HERE/lib.sh"
[[ -n $PIPE ]] || PIPE=$(default_pipeline)
mkdir -p "$WORK"
# the refiner's training settings, the same in both modes
KNOBS=(--refiner.target_bias="${REF_BIAS:-0}" --refiner.target_uniform="${REF_UNIFORM:-0}"
       --refiner.stage1_context="${REF_CONTEXT:-0}")

if [[ $MODE == --smoke ]]; then
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    SIZE=64; WORKERS=2; SCENES=2; SECONDS_=2; FRAMES=33   # 5 latent frames: sink + a block of 3 + 1
    TRAIN=(refiner-smoke --data.latent_frames=5 --pairs.samples=2 --run.steps=2 --run.time_limit_minutes=1
           "${KNOBS[@]}")
    EVAL=(--scenes 1 --seconds 1 --horizons 1 --size 64 --device cpu --dtype fp32)
else
    # REF_SECONDS: length of the training rollouts (20 s = 41 latent frames; 60 s shows the refiner how
    # stage 1 goes wrong late in a minute, which 20 s rollouts do not: docs/model-card.md)
    SIZE=256; WORKERS=${WORKERS:-12}; SCENES=${REF_SCENES:-256}; SECONDS_=${REF_SECONDS:-20}; FRAMES=$(( SECONDS_ * 16 + 1 ))
    LATENT=$(( SECONDS_ * 2 + 1 )); BATCH=${REF_BATCH:-$(( 16 * 41 * 3 / 2 / LATENT ))}
    (( BATCH > 16 )) && [[ -z ${REF_BATCH:-} ]] && BATCH=16
    (( BATCH >= 1 )) || { echo "REF_BATCH must be >= 1" >&2; exit 2; }
    TRAIN=(refiner-default --pairs.samples="$SCENES" --data.latent_frames="$LATENT" --data.batch_size="$BATCH"
           --run.time_limit_minutes="${REF_MINUTES:-8}" "${KNOBS[@]}")
    # 20 scenes (seeds 1000000..19, split below), fp32 as the model card's evaluations, no camera-removed
    # baseline (a refiner's question is refined against stage 1)
    EVAL=(--seconds 60 --horizons 1,5,10,30,60 --size 256 --dtype fp32 --no-ablation)
fi

log "pipeline: $PIPE"
if [[ -n ${REF_DATA:-} ]]; then  # another run's clips, latents and pairs: train a variant on the same data
    DATA=$(realpath "$REF_DATA")
    [[ -f $DATA/pairs/index.json && -f $DATA/latents/index.json ]] \
        || { echo "REF_DATA=$REF_DATA holds no finished pairs/ and latents/ of this recipe" >&2; exit 2; }
    [[ $DATA != "$(realpath "$WORK")" ]] || { echo "REF_DATA must be another run's WORK" >&2; exit 2; }
    for d in worlds latents pairs; do [[ -e $WORK/$d ]] || ln -s "$DATA/$d" "$WORK/$d"; done
    touch "$WORK/worlds.done"
    log "training data of $DATA (its pipeline, clip length and scene count)"
fi
log "training clips"
render worlds 30000 "$SCENES"

log "latent cache (the pipeline's VAE)"
if [[ ! -f $WORK/latents/index.json ]]; then
    "${SANAWM[@]}" cache-latents "$WORK/worlds" --vae "$PIPE/vae" --frames "$FRAMES" --size "$SIZE,$SIZE" \
        --workers 8 --batch-size 8 --out "$WORK/latents" --no-progress > "$WORK/latents.json"
fi

ARGS=(--stage1.path="$PIPE" --data.path="$WORK/latents" --data.size="$SIZE,$SIZE" \
      --pairs.dir="$WORK/pairs" --run.out_dir="$WORK/refiner")
log "pairs (stage-1 rollouts)"
[[ -f $WORK/pairs/index.json ]] || "${SANAWM[@]}" refine pairs "${TRAIN[@]}" "${ARGS[@]}" > "$WORK/pairs.json"

log "train"
if [[ ! -f $WORK/train.done ]]; then
    resume=(); has_checkpoint "$WORK/refiner" && resume=(--resume)
    "${SANAWM[@]}" refine train "${TRAIN[@]}" "${resume[@]}" "${ARGS[@]}" --run.progress=false \
        > "$WORK/train.json"
    touch "$WORK/train.done"
fi

log "export"
if [[ ! -d $WORK/pipeline ]]; then
    rm -rf "$WORK/pipeline.partial"
    "${SANAWM[@]}" refine export "$WORK/refiner" --pipeline "$PIPE" --out "$WORK/pipeline.partial" --int8 \
        > "$WORK/export.json"
    mv "$WORK/pipeline.partial" "$WORK/pipeline"
fi

[[ ${REF_EVAL:-1} == 0 ]] && { log "done: $WORK/pipeline (REF_EVAL=0: no evaluation)"; exit 0; }
log "eval: stage 1 vs stage 1 + refiner on held-out worlds"
if [[ ! -f $WORK/eval60_refine.json ]]; then
    if [[ $MODE == --smoke ]]; then
        "${SANAWM[@]}" eval worlds --model "$WORK/pipeline" --refine "${EVAL[@]}" \
            --out "$WORK/eval60_refine.json.partial.json" > "$WORK/eval60_refine.md" 2> "$WORK/eval.log"
        mv "$WORK/eval60_refine.json.partial.json" "$WORK/eval60_refine.json"
    else  # five processes of 4 scenes (even offsets: walk and revisit paths alternate as in one run), merged;
        # on one H100 the 20 minute-long scenes, stage 1 and refined, take about 3.5 minutes (docs/benchmarks.md)
        pids=(); parts=()
        for offset in 1000000 1000004 1000008 1000012 1000016; do
            OMP_NUM_THREADS=3 "${SANAWM[@]}" eval worlds --model "$WORK/pipeline" --refine "${EVAL[@]}" \
                --seed-offset "$offset" --scenes 4 --out "$WORK/eval60_refine.$offset.json" \
                > /dev/null 2> "$WORK/eval.$offset.log" & pids+=($!); parts+=("$WORK/eval60_refine.$offset.json")
        done
        for p in "${pids[@]}"; do wait "$p"; done
        "${SANAWM[@]}" eval merge "${parts[@]}" --out "$WORK/eval60_refine.json.partial.json" \
            > "$WORK/eval60_refine.md"
        mv "$WORK/eval60_refine.json.partial.json" "$WORK/eval60_refine.json"
    fi
fi
log "done: $WORK/pipeline, $WORK/eval60_refine.md"
