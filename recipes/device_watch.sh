#!/usr/bin/env bash
# On the GPU machine: start a recipe detached (first call) or keep watching it (later calls), for at
# most SECONDS; then pack its small outputs (logs, metrics, VAE, latest EMA weights, the exported
# pipeline; of a distillation, the student) into OUT as 15 MiB parts:  cat pack.tar.part-* | tar x
#
#   recipes/device_watch.sh WORK OUT SECONDS [--recipe recipes/distill_default.sh] [RECIPE ARGUMENTS]
# The recipe defaults to recipes/default_model.sh (arguments: --smoke, --continue PIPELINE). WATCH_DONE=FILE
# names the file (under WORK) whose appearance ends the watch; a recipe that fills WORK/return/ sends that.
set -uo pipefail
WORK=$1; OUT=$2; LIMIT=$3
RECIPE=recipes/default_model.sh; DONE=eval60.json  # the file the recipe writes last
if [[ ${4:-} == --recipe ]]; then  # recipes/distill_default.sh: its WORK/pipeline appears last
    RECIPE=${5:?--recipe needs a script}; DONE=pipeline/generation.json; set -- "${@:1:3}" "${@:6}"
fi
DONE=${WATCH_DONE:-$DONE}  # or the file the caller names
start=$(date +%s)
if [[ ! -f $WORK/driver.pid ]] || ! kill -0 "$(cat "$WORK/driver.pid")" 2> /dev/null; then
    if [[ ! -f $WORK/$DONE ]]; then
        mkdir -p "$WORK"; rm -rf "$WORK/src" "$WORK/driver.pid"; mkdir "$WORK/src"
        cp -r sanawm recipes pyproject.toml "$WORK/src/"  # the code the recipe runs stays fixed
        # setsid may fork, so $! would name a process that exits at once: the recipe writes its own pid.
        (cd "$WORK/src" && PYTHONPATH="$WORK/src:${PYTHONPATH:-}" setsid nohup bash -c \
            'echo $$ > "$0/driver.pid"; exec bash "$1" "$0" "${@:2}"' "$WORK" "$RECIPE" "${@:4}" \
            > "$WORK/driver.log" 2>&1 < /dev/null &)
        for _ in 1 2 3 4 5 6 7 8 9 10; do [[ -s $WORK/driver.pid ]] && break; sleep 0.5; done
        echo "started the recipe (pid $(cat "$WORK/driver.pid"))"
    fi
fi
while (( $(date +%s) - start < LIMIT )); do
    [[ -f $WORK/$DONE ]] && break
    kill -0 "$(cat "$WORK/driver.pid")" 2> /dev/null || break
    sleep 10
done
echo "== recipe.log"; cat "$WORK/recipe.log" 2> /dev/null
echo "== driver.log (tail)"; tail -5 "$WORK/driver.log" 2> /dev/null | cut -c1-400
for m in vae/metrics.jsonl phase1/metrics.jsonl phase2/metrics.jsonl phase3/metrics.jsonl ode/metrics.jsonl dmd/metrics.jsonl; do
    [[ -f $WORK/$m ]] && { echo "== $m"; sed -n '1p;$p' "$WORK/$m"; wc -l < "$WORK/$m"; }
done
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
cd "$WORK" || exit 1
if [[ -d return ]]; then  # a recipe that gathers what comes back into WORK/return/ (and its log)
    tar cf - return recipe.log | split -b 15M - "$OUT/pack.tar.part-"; ls -la "$OUT"; exit 0
fi
items=()
for p in *.json *.log vae/metrics.jsonl vae/config.json vae/vae phase1/metrics.jsonl phase2/metrics.jsonl phase3/metrics.jsonl \
         phase1/config.yaml phase2/config.yaml phase3/config.yaml pipeline worlds-*/manifest.jsonl latents-*/config.json \
         eval*.png sheets60 ode/metrics.jsonl dmd/metrics.jsonl ode/config.yaml dmd/config.yaml check.mp4 \
         refiner/metrics.jsonl refiner/config.yaml; do
    [[ -e $p ]] && items+=("$p")
done
# At most 64 MiB come back from a call: once the (bf16) pipeline exists, leave the fp32 weights behind.
[[ -e pipeline ]] && items=("${items[@]/vae\/vae/}")
# A refiner's export (recipes/refiner_default.sh) is the pipeline it refines (which the caller has) plus
# refiner/: bring back the latter. A distilled pipeline is the teacher's folder plus student/: the latter.
if [[ -e pipeline/refiner ]]; then
    items=("${items[@]/#pipeline/pipeline/refiner}")
elif [[ -e pipeline/student ]]; then
    items=("${items[@]/#pipeline/pipeline/student}")
fi
for run in phase3 phase2 phase1; do  # before the export: the latest phase's EMA only (fp32, ~55 MB)
    [[ -e pipeline ]] && break
    ckpt=$(ls -d $run/checkpoints/step_* 2> /dev/null | sort -V | tail -1)
    [[ -n $ckpt ]] || continue
    for f in ema.safetensors config.yaml model_config.json; do
        [[ -f $ckpt/$f ]] && items+=("$ckpt/$f")
    done
    break
done
tar cf - ${items[@]} | split -b 15M - "$OUT/pack.tar.part-"
ls -la "$OUT"
