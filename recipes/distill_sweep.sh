#!/usr/bin/env bash
# Several 4-step students of one teacher at once, one ODE learning rate each, from one shared preparation;
# then each student, and the teacher's own network under the same 4-step sampler (teacher4: what an
# untrained student does), evaluated on the 20 held-out scenes x 10 s with the camera-removed baseline.
#
#   recipes/distill_sweep.sh WORK [--smoke] [--teacher PIPELINE] [--ode-minutes N] [--dmd-minutes N]
#                            [--dmd-lr LR] [--ode-batch N] ODE_LR [ODE_LR ...]
#
# Student k (recipes/distill_default.sh WORK/lr-ODE_LR --shared WORK/data --ode-lr ODE_LR ...) runs on GPU
# k mod N: the first to start renders the clips, caches their latents and builds the teacher's trajectories
# under a lock; the others wait for it, so the CPUs render once and the ODE and DMD stages run on a quiet
# host (beside renders and evaluation workers, two students of v3 got a quarter of their ODE speed:
# docs/benchmarks.md). The evaluations (`sanawm eval worlds --scenes 20 --seconds 10 --horizons 1,5,10
# --dtype fp32`, EVAL_THREADS [4] CPU threads each) then run as a queue over the GPUs. WORK/summary.md:
# PSNR at 1 / 5 / 10 s, the camera-removed PSNR at 10 s and the camera gap (what a student must keep: a
# student whose gap is no larger than teacher4's has not learned to use the camera from 4 steps).
# --smoke: two students and 2-scene, 1 s evaluations at toy scale on a CPU.
set -uo pipefail
USAGE="usage: recipes/distill_sweep.sh WORK [--smoke] [--teacher PIPELINE] [--ode-minutes N] [--dmd-minutes N] \
[--dmd-lr LR] [--ode-batch N] ODE_LR [ODE_LR ...]"
WORK=${1:?$USAGE}; shift
SMOKE=(); PASS=(); LRS=(); TEACHER=""
while (( $# )); do
    case $1 in
        --smoke) SMOKE=(--smoke) ;;
        --teacher) TEACHER=$(realpath "${2:?--teacher needs a pipeline folder}"); shift ;;
        --ode-minutes|--dmd-minutes|--dmd-lr|--ode-batch) PASS+=("$1" "${2:?$1 needs a value}"); shift ;;
        -*) echo "unknown argument $1; $USAGE" >&2; exit 2 ;;
        *) [[ $1 =~ ^[0-9.]+([eE]-?[0-9]+)?$ ]] || { echo "$1 is not a learning rate; $USAGE" >&2; exit 2; }
           LRS+=("$1") ;;
    esac
    shift
done
(( ${#LRS[@]} )) || { echo "no ODE learning rate given; $USAGE" >&2; exit 2; }
HERE=$(dirname "$(realpath "$0")")
source "$HERE/lib.sh"
[[ -n $TEACHER ]] || TEACHER=$(default_pipeline)
[[ -f $TEACHER/transformer/config.json ]] || { echo "$TEACHER: not a pipeline folder" >&2; exit 2; }
if (( ${#SMOKE[@]} )); then
    N=1; DEVICE=(cpu); EVAL=(--scenes 2 --seconds 1 --horizons 1 --size 64)
else
    N=$(python3 -c "import torch; print(torch.cuda.device_count())")
    (( N >= 1 )) || { echo "distill_sweep.sh needs a GPU (or --smoke); torch sees none" >&2; exit 2; }
    DEVICE=(); for (( g = 0; g < N; g++ )); do DEVICE+=("cuda:$g"); done
    EVAL=(--scenes 20 --seconds 10 --horizons 1,5,10)
fi
mkdir -p "$WORK/eval"
log "teacher $TEACHER; ODE learning rates ${LRS[*]} on $N device(s)"

pids=()
for k in "${!LRS[@]}"; do
    lr=${LRS[$k]}
    gpu=(); (( ${#SMOKE[@]} )) || gpu=(env CUDA_VISIBLE_DEVICES=$(( k % N )))
    "${gpu[@]}" bash "$HERE/distill_default.sh" "$WORK/lr-$lr" --shared "$WORK/data" --teacher "$TEACHER" \
        --ode-lr "$lr" "${PASS[@]}" "${SMOKE[@]}" > "$WORK/lr-$lr.log" 2>&1 &
    pids+=($!)
done
FAILED=0
for k in "${!pids[@]}"; do
    wait "${pids[$k]}" || { log "student lr ${LRS[$k]} failed: see $WORK/lr-${LRS[$k]}.log"; FAILED=1; }
done

# teacher4: the teacher's network as the "student" (the students' sampler: their generation.json)
names=(); models=()
for lr in "${LRS[@]}"; do
    [[ -d $WORK/lr-$lr/pipeline ]] && { names+=("lr-$lr"); models+=("$WORK/lr-$lr/pipeline"); }
done
(( ${#names[@]} )) || { log "no student finished"; exit 1; }
T4=$WORK/teacher4
rm -rf "$T4"; mkdir -p "$T4/student"
cp -r "$TEACHER/transformer" "$TEACHER/vae" "$TEACHER/scheduler" "$TEACHER/generation.json" "$T4/"
cp -r "$TEACHER/transformer" "${models[0]}/student/generation.json" "$T4/student/"
names+=(teacher4); models+=("$T4")

log "evaluations: ${names[*]}"
worker() {  # worker DEVICE: take evaluations from the queue (a claim folder each)
    local i
    for i in "${!names[@]}"; do
        mkdir "$WORK/eval/claim.$i" 2> /dev/null || continue
        [[ -f $WORK/eval/${names[$i]}.json ]] && continue
        OMP_NUM_THREADS=${EVAL_THREADS:-4} "${SANAWM[@]}" eval worlds --model "${models[$i]}" "${EVAL[@]}" \
            --dtype fp32 --device "$1" --out "$WORK/eval/${names[$i]}.json" > "$WORK/eval/${names[$i]}.md" \
            2> "$WORK/eval/${names[$i]}.log" || log "evaluation of ${names[$i]} failed"
    done
}
rm -rf "$WORK"/eval/claim.*
wpids=(); for d in "${DEVICE[@]}"; do worker "$d" & wpids+=($!); done
for p in "${wpids[@]}"; do wait "$p"; done
rm -rf "$WORK"/eval/claim.*

python3 - "$WORK" "${names[@]}" > "$WORK/summary.md" << 'PY'
import json, sys
from pathlib import Path

work, names = Path(sys.argv[1]), sys.argv[2:]
print("| run | 1 s | 5 s | 10 s | no_camera (last horizon) | camera gap |")
print("| --- | --- | --- | --- | --- | --- |")
for name in names:
    path = work / "eval" / f"{name}.json"
    if not path.is_file():
        print(f"| {name} | evaluation missing | | | | |")
        continue
    h = json.loads(path.read_text())["horizons"]
    last = sorted(h["model"], key=float)[-1]
    cells = [f"{h['model'][k]['psnr']:.2f}" if k in h["model"] else "" for k in ("1", "5", "10")]
    gap = h["model"][last]["psnr"] - h["no_camera"][last]["psnr"]
    print(f"| {name} | " + " | ".join(cells) + f" | {h['no_camera'][last]['psnr']:.2f} | {gap:+.2f} |")
PY
log "summary:"; cat "$WORK/summary.md" | tee -a "$WORK/recipe.log"
exit $FAILED
