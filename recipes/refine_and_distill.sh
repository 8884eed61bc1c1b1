#!/usr/bin/env bash
# The refiner and the student's DMD stage on one GPU at once (the 13.7 M network leaves it mostly idle),
# then the held-out evaluations:
#   - recipes/refiner_default.sh (training worlds, latent cache, stage-1 rollouts, refiner, 60 s eval --refine)
#   - self-forcing DMD from an ODE-stage student (the refiner's latent cache gives its conditions), exported
#   - 10 s evaluation on the 20 held-out scenes: the ODE student, the DMD student, the teacher at 8 and 24 steps,
#     and the teacher's own network under the student's 4-step sampler (teacher4: what an untrained student
#     does; the first students matched it, camera gain included, docs/model-card.md)
# The DMD run logs the camera probe (camera_gap_{student,teacher} in metrics.jsonl; first and last rows in
# WORK/recipe.log).
# WORK/return/ holds what a device call brings back.
#
#   recipes/refine_and_distill.sh WORK --student PIPELINE [--smoke]
# PIPELINE: a pipeline folder whose student/ is the ODE-stage student (`sanawm distill export` of an ODE run).
# DMD_MINUTES (default 6) and REF_MINUTES (default 8) box the two trainings.
set -euo pipefail
WORK=${1:?usage: recipes/refine_and_distill.sh WORK --student PIPELINE [--smoke]}
shift
STUDENT=""; SMOKE=()
while (( $# )); do
    case $1 in
        --smoke) SMOKE=(--smoke) ;;
        --student) STUDENT=$(realpath "${2:?--student needs a pipeline folder}"); shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[[ -f $STUDENT/student/transformer/config.json ]] || { echo "--student PIPELINE must hold student/transformer/" >&2; exit 2; }
HERE=$(dirname "$(realpath "$0")")
source "$HERE/lib.sh"
PIPE=$(default_pipeline)
mkdir -p "$WORK"

if [[ ${#SMOKE[@]} -eq 1 ]]; then
    SIZE=64
    DMD_ARGS=(--data.batch_size=1 --data.workers=0 --run.steps=2 --run.log_every=1 --data.latent_frames=5
              '--dmd.curriculum=[[0,4],[1,5]]' --dmd.critic_steps=1 --run.time_limit_minutes=1)
    EVAL=(--scenes 1 --seconds 1 --size 64 --horizons 1); STEPS=2
else
    SIZE=256
    DMD_ARGS=(--run.time_limit_minutes="${DMD_MINUTES:-6}")
    EVAL=(--scenes 20 --seconds 10 --horizons 1,5,10); STEPS=24
fi

log "refiner (background), teacher $PIPE, ODE student $STUDENT"
bash "$HERE/refiner_default.sh" "$WORK/refiner" "${SMOKE[@]}" > "$WORK/refiner.log" 2>&1 &
REFINER=$!
while [[ ! -f $WORK/refiner/latents/index.json ]]; do
    kill -0 $REFINER 2> /dev/null || { log "refiner recipe failed: see $WORK/refiner.log"; exit 1; }
    sleep 5
done

log "DMD from the ODE student (conditions: the refiner's latent cache)"
if [[ ! -f $WORK/dmd.done ]]; then
    resume=(); has_checkpoint "$WORK/dmd" && resume=(--resume)
    "${SANAWM[@]}" distill dmd distill-dmd-default "${resume[@]}" --teacher.path="$PIPE" \
        --student.init_from="$STUDENT/student" --data.path="$WORK/refiner/latents" --data.size="$SIZE,$SIZE" \
        --run.out_dir="$WORK/dmd" --run.progress=false "${DMD_ARGS[@]}" > "$WORK/dmd.json" 2> "$WORK/dmd.log"
    touch "$WORK/dmd.done"
fi
log "dmd camera probe: $(python3 -m sanawm.distill.diagnostics "$WORK/dmd/metrics.jsonl")"
"${SANAWM[@]}" distill export "$WORK/dmd" --pipeline "$PIPE" --out "$WORK/pipeline_dmd" --overwrite > /dev/null
# teacher4: the teacher's network as the "student" (its sampler: the DMD student's generation.json)
rm -rf "$WORK/pipeline_teacher4"; mkdir -p "$WORK/pipeline_teacher4/student"
cp -r "$PIPE/transformer" "$PIPE/vae" "$PIPE/scheduler" "$PIPE/generation.json" "$WORK/pipeline_teacher4/"
cp -r "$PIPE/transformer" "$WORK/pipeline_dmd/student/generation.json" "$WORK/pipeline_teacher4/student/"

log "10 s evaluations (in parallel)"
evaluate() {  # evaluate NAME PIPELINE ARGS...
    [[ -f $WORK/eval10_$1.json ]] || "${SANAWM[@]}" eval worlds --model "$2" "${EVAL[@]}" --dtype fp32 \
        --out "$WORK/eval10_$1.json" --plot "$WORK/eval10_$1.png" "${@:3}" > "$WORK/eval10_$1.log" 2>&1
}
evaluate student_ode "$STUDENT" & a=$!
evaluate student_dmd "$WORK/pipeline_dmd" & b=$!
evaluate teacher8 "$PIPE" & c=$!
evaluate teacher$STEPS "$PIPE" --steps $STEPS & d=$!
evaluate teacher4 "$WORK/pipeline_teacher4" & e=$!
for p in $a $b $c $d $e; do wait $p || { log "an evaluation failed: see $WORK/eval10_*.log"; exit 1; }; done
for n in student_ode student_dmd teacher8 teacher$STEPS teacher4; do
    log "eval $n: $(python3 -c "import json; r = json.load(open('$WORK/eval10_$n.json')); \
print({m: {h: round(s['psnr'], 2) for h, s in r['horizons'][m].items()} for m in ('model', 'no_camera', 'repeat_first')})")"
done

wait $REFINER || { log "refiner recipe failed: see $WORK/refiner.log"; exit 1; }
log "refiner done: $(tail -1 "$WORK/refiner/recipe.log")"

rm -rf "$WORK/return"; mkdir -p "$WORK/return"
cp -r "$WORK/pipeline_dmd/student" "$WORK/return/student_dmd"
cp -r "$WORK/refiner/pipeline/refiner" "$WORK/return/refiner"
cp "$WORK"/eval10_*.png "$WORK"/*.log "$WORK"/*.json "$WORK/return/"
cp "$WORK/refiner"/eval60_refine.* "$WORK/refiner"/*.log "$WORK/return/" 2> /dev/null || true
for f in dmd/metrics.jsonl refiner/refiner/metrics.jsonl; do cp "$WORK/$f" "$WORK/return/${f//\//_}"; done
touch "$WORK/return.done"
log "done"
