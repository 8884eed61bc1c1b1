# What the recipes share. Each recipe sources it from its own folder, so it runs the same from the repo
# root and from a copy of the code (recipes/device_watch.sh runs WORK/src/recipes/NAME.sh):
#
#   HERE=$(dirname "$(realpath "$0")")
#   source "$HERE/lib.sh"

# The command line of the package beside the recipes (`python3 -m` finds it from the working directory
# or PYTHONPATH, as the recipes have always run it).
SANAWM=(python3 -m sanawm.cli.main)

# log MESSAGE...: a timestamped line on stdout and in WORK/recipe.log (WORK: the recipe's work folder).
log() { echo "[$(date +%H:%M:%S)] $*" | tee -a "$WORK/recipe.log"; }

# default_pipeline: the folder of the model shipped in the package.
default_pipeline() { python3 -c "from sanawm.pipelines.world_model import DEFAULT_MODEL as m; print(m)"; }

# render NAME SEED SCENES: SCENES procedural clips from scene seed SEED into WORK/NAME, SECONDS_ s each at
# SIZE x SIZE with WORKERS processes (set by the recipe); skipped once WORK/NAME.done exists.
render() {
    [[ -f $WORK/$1.done ]] && return
    "${SANAWM[@]}" world render --out "$WORK/$1" --seed "$2" --scenes "$3" --seconds "$SECONDS_" --size "$SIZE" \
        --workers "$WORKERS" > "$WORK/$1.render.json"
    touch "$WORK/$1.done"
}

# has_checkpoint RUN_DIR: true when RUN_DIR/checkpoints holds a complete checkpoint (step_*: every trainer writes
# a checkpoint to a hidden folder and renames it into place whole). Recipes pass --resume only then, so a run
# that died before its first checkpoint starts afresh on the rerun instead of being refused.
has_checkpoint() { compgen -G "$1/checkpoints/step_*" > /dev/null; }
