#!/usr/bin/env bash
# Issue: multi-GPU training runs. On a machine of N >= 2 GPUs (one host), from the repo root:
#     bash benchmarks/multi_gpu_train.sh OUT_DIR [N]
# 1. Exactness: the same small config (sana-wm-small, 720p grid, fp32, TF32 off, 4 steps) on 1 GPU, then
#    FSDP2 over N GPUs, then FSDP2 + context parallel 2; the losses of every step must agree with 1 GPU.
# 2. Speed and memory of sana-wm-2.6b training steps (stage-3 config: hybrid blocks, camera on, bf16,
#    activation checkpointing, AdamW + EMA): 5 s clips on 1 GPU and FSDP2 on N GPUs (2 clips a GPU), and
#    60 s clips with FSDP2 + context parallel 2 (and without context parallelism, to show what it buys).
# Writes OUT_DIR/*.json and OUT_DIR/summary.md; a failed case is logged and the rest still run.
set -uo pipefail
OUT=${1:?usage: multi_gpu_train.sh OUT_DIR [GPUS]}
N=${2:-$(python3 -c 'import torch; print(torch.cuda.device_count())')}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 OMP_NUM_THREADS=4
B=benchmarks/bench_train.py
T=${CASE_TIMEOUT:-240}  # seconds a case may take
run1() { local name=$1; shift; echo "== $name (1 GPU)"; timeout "$T" python3 $B "$@" --out "$OUT/$name.json" >"$OUT/$name.log" 2>&1 || echo "   FAILED (see $name.log)"; tail -n 3 "$OUT/$name.log"; }
runN() { local name=$1; shift; echo "== $name ($N GPUs)"; timeout "$T" torchrun --standalone --nproc-per-node "$N" $B "$@" --out "$OUT/$name.json" >"$OUT/$name.log" 2>&1 || echo "   FAILED (see $name.log)"; tail -n 3 "$OUT/$name.log"; }

SMALL=(stage3-minute-camera --fp32 --latent-frames 24 --batch-size "$N" --steps 3 --warmup 0
       --model.preset=sana-wm-small --model.init_from=null --data.workers=2)
run1 exact_1gpu "${SMALL[@]}" --context-parallel 1
runN exact_fsdp "${SMALL[@]}" --context-parallel 1 --reference "$OUT/exact_1gpu.json"
runN exact_fsdp_cp2 "${SMALL[@]}" --context-parallel 2 --reference "$OUT/exact_1gpu.json"
run1 exact_1gpu_chunk "${SMALL[@]}" --context-parallel 1 --flow.mode=chunk_causal
runN exact_fsdp_cp2_chunk "${SMALL[@]}" --context-parallel 2 --flow.mode=chunk_causal \
     --reference "$OUT/exact_1gpu_chunk.json"

BIG=(stage3-minute-camera --model.init_from=null --data.workers=4)
run1 big_5s_1gpu "${BIG[@]}" --latent-frames 11 --batch-size 2 --context-parallel 1 --steps 4 --warmup 2
runN big_5s_fsdp "${BIG[@]}" --latent-frames 11 --batch-size $((2 * N)) --context-parallel 1 --steps 4 --warmup 2
runN big_60s_fsdp_cp2 "${BIG[@]}" --latent-frames 121 --batch-size $((N / 2)) --context-parallel 2 --steps 3 --warmup 1
runN big_60s_fsdp "${BIG[@]}" --latent-frames 121 --batch-size "$N" --context-parallel 1 --steps 2 --warmup 1

python3 benchmarks/summarise_train.py "$OUT" | tee "$OUT/summary.md"
