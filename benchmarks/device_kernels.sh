#!/usr/bin/env bash
# The Triton GDN kernels on the GPU machine: parity tests, then benchmarks, in under 10 minutes.
#
#     OUT=/some/dir bash benchmarks/device_kernels.sh      (repo root as cwd; $OUT defaults to ./out)
#     OUT=/some/dir BUDGET=280 PARTS="scan tests" bash benchmarks/device_kernels.sh  (those parts, in that order)
#
# Parts, each under its own time limit (CAP_<part>=SECONDS overrides it; cut to what is left of a
# $BUDGET-second budget, 570 by default)
# and run even when an earlier one failed; every part writes its log and JSON under $OUT:
#   1. tests      pytest tests/gpu -k 'not compiled' (the kernels' parity, the dispatch, the network on each
#                 GDN path; 112 s on an H200); compiled_tests: the two compiled-block tests (compiles: slow)
#   2. scan       bench_gdn.py: row kernel vs differentiable kernels vs PyTorch scan, forward (both modes,
#                 bf16/fp32), and forward+backward (differentiable kernels vs PyTorch scan)
#   3. layer      bench_gdn.py: one GDN attention layer of the 2.6 B preset at 60 s, eager, on each GDN path
#   4. net720p    bench_720p.py: one bidirectional 60 s evaluation of sana-wm-2.6b, default path and PyTorch
#                 scan (--skip reference: no diffusers needed)
#   net720p_compiled (not in the default PARTS): the same evaluation with every block under torch.compile,
#                 GDN on the PyTorch scan (inside the graph) and on the row kernel (a graph break)
#   5. compiled   bench_gdn.py: the same layer under torch.compile on each path (slow: the PyTorch-scan
#                 layer's first compile took 97 s)
#   6. interp     the interpreter tests (tests/model/test_gdn_triton_interpret.py; they skip where this
#                 Triton's interpreter cannot loop to a runtime bound)
#   graphs (not in the default PARTS): the CUDA-graph tests of the streaming step (tests/gpu/test_cuda_graphs.py)
#   stream720p (not in the default PARTS): bench_720p.py's 4-step 60 s streaming rollout, eager, compiled, and
#                 replayed as CUDA graphs with the blocks eager and compiled (slow: compiles), and the LTX-2 VAE
#                 decode of the minute (end to end = the fastest rollout + the decode)
#   profile_stream (not in the default PARTS): the kernels of a warm 10 s eager streaming rollout by GPU time,
#                 the GPU's busy time against the wall time, and the network's parts (each block's attention,
#                 MLP, cross-attention, norms, camera projection) by their kernels' GPU time (profile_stream.txt)
#   profile_stream_compiled (not in the default PARTS): the kernels of the same rollout with the blocks
#                 compiled (compiles first; profile_stream_compiled.txt)
# Then a short summary table (also in $OUT/summary.txt).
set -u
OUT="${OUT:-$PWD/out}"
mkdir -p "$OUT"
rm -f "$OUT/parts.txt"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
BUDGET="${BUDGET:-570}"
START=$(date +%s)
PARTS="${PARTS:-tests scan layer net720p compiled compiled_tests interp}"

part() {  # part NAME CAP_SECONDS COMMAND... (CAP_<NAME>=SECONDS in the environment overrides the cap)
  local name=$1 cap=$2 override="CAP_$1"
  cap=${!override:-$cap}
  shift 2
  local left=$((BUDGET - ($(date +%s) - START)))
  local limit=$((cap < left ? cap : left))
  if [ "$limit" -lt 20 ]; then
    echo "=== $name: skipped (${left}s of the budget left)" | tee -a "$OUT/parts.txt"
    return
  fi
  echo "=== $name (limit ${limit}s): $*"
  local t0=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" > >(tee "$OUT/$name.log") 2>&1
  local rc=$?
  echo "=== $name: exit $rc after $(($(date +%s) - t0))s" | tee -a "$OUT/parts.txt"
}

{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
  python3 -c "import triton; print('triton', triton.__version__)"
  git rev-parse --short HEAD 2>/dev/null
} 2>&1 | tee "$OUT/env.txt"

for name in $PARTS; do
  case $name in
    tests) part tests 240 python3 -m pytest -q -rs --durations=10 --junitxml="$OUT/tests.xml" -k "not compiled" tests/gpu ;;
    compiled_tests) part compiled_tests 300 python3 -m pytest -q -rs -k compiled tests/gpu ;;
    scan) part scan 120 python3 benchmarks/bench_gdn.py --skip layer_eager layer_compiled \
      --out "$OUT/bench_gdn_scan.json" ;;
    layer) part layer 90 python3 benchmarks/bench_gdn.py --skip scan train layer_compiled \
      --out "$OUT/bench_gdn_layer.json" ;;
    net720p) part net720p 150 python3 benchmarks/bench_720p.py --skip reference softmax streaming vae \
      --gdn-baseline --repeats 3 --out "$OUT/bench_720p.json" ;;
    net720p_compiled) part net720p_compiled 500 python3 benchmarks/bench_720p.py --skip reference softmax \
      streaming vae --compile-bidirectional pytorch auto --repeats 3 --out "$OUT/bench_720p_compiled.json" ;;
    compiled) part compiled 400 python3 benchmarks/bench_gdn.py --skip scan train layer_eager \
      --out "$OUT/bench_gdn_compiled.json" ;;
    graphs) part graphs 300 python3 -m pytest -q -rs --junitxml="$OUT/graphs.xml" tests/gpu/test_cuda_graphs.py ;;
    stream720p) part stream720p 600 python3 benchmarks/bench_720p.py --skip reference softmax \
      --compile default --stream-graphs eager default --repeats 2 --out "$OUT/bench_720p_stream.json" ;;
    profile_stream) part profile_stream 300 python3 benchmarks/bench_720p.py --skip bidirectional reference \
      softmax streaming vae --repeats 1 --profile-stream "$OUT/profile_stream.txt" --out "$OUT/bench_720p_profile.json" ;;
    profile_stream_compiled) part profile_stream_compiled 400 python3 benchmarks/bench_720p.py --skip bidirectional \
      reference softmax streaming vae --repeats 1 --profile-stream-compiled "$OUT/profile_stream_compiled.txt" \
      --out "$OUT/bench_720p_profile_compiled.json" ;;
    interp) part interp 120 python3 -m pytest -q -rs --junitxml="$OUT/interp.xml" \
      tests/model/test_gdn_triton_interpret.py ;;
    *) echo "unknown part $name (parts: tests scan layer net720p net720p_compiled compiled compiled_tests graphs stream720p profile_stream profile_stream_compiled interp)" | tee -a "$OUT/parts.txt" ;;
  esac
done

python3 - "$OUT" <<'EOF' 2>&1 | tee "$OUT/summary.txt"
import json, os, sys, re
out = sys.argv[1]
print("\n===== summary =====")
parts = os.path.join(out, "parts.txt")
print(open(parts).read().strip() if os.path.exists(parts) else "no parts ran")
for part in ("tests", "compiled_tests", "graphs", "interp"):
    log = os.path.join(out, f"{part}.log")
    if os.path.exists(log):
        lines = [l for l in open(log).read().splitlines() if re.search(r"passed|failed|error|skipped", l)]
        print(f"{part}:", lines[-1] if lines else "no result line")

def load(name):
    p = os.path.join(out, name)
    if not os.path.exists(p):
        return None
    try:
        return json.load(open(p))
    except Exception as e:  # noqa: BLE001
        print(f"{name}: {type(e).__name__}")
        return None

d = load("bench_gdn_scan.json")
if d:
    print(f"\nGDN scan at 60 s 720p on {d.get('device')}")
print("| case | rows ms | memory ms | PyTorch ms | fastest | max rel. err |")
print("| --- | --- | --- | --- | --- | --- |")
for r in (d or {}).get("rows", []):
    if "error" in r:
        print(f"| {r['case']} | {r['error']} | | | | |")
        continue
    err = max(v for k, v in r.items() if k.startswith("rel_"))
    ms = {p: f"{1e3*r[p + '_s']:.1f}" if p + "_s" in r else "-" for p in ("rows", "memory", "pytorch")}
    print(f"| {r['case']} | {ms['rows']} | {ms['memory']} | {ms['pytorch']} | {r['fastest']} | {err:.1e} |")
    if "memory_peak_gib" in r:
        print(f"|   peak GiB | | {r['memory_peak_gib']:.1f} | {r['pytorch_peak_gib']:.1f} | | |")
print("\n| GDN layer at 60 s | ms | first call s | peak GiB |")
print("| --- | --- | --- | --- |")
for name in ("bench_gdn_layer.json", "bench_gdn_compiled.json"):
    d = load(name)
    for r in (d or {}).get("rows", []):
        if "error" in r:
            print(f"| {r['case']} | {r['error']} | | |")
        else:
            print(f"| {r['case']} | {1e3*r['seconds']:.1f} | {r['first_call_s']:.1f} | {r['peak_gib']:.1f} |")
for name in ("bench_720p.json", "bench_720p_compiled.json", "bench_720p_stream.json"):
    d = load(name)
    if not d:
        continue
    print(f"\n{name}, 720p 60 s on {d.get('device')}:")
    for r in d.get("cases", []):
        print(" ", r["case"], r.get("error") or f"{r['seconds']:.3f} s, peak {r.get('peak_gib', float('nan')):.1f} GiB")
    if "gdn_kernel_speedup" in d:
        print(f"  default GDN path's speed-up of the whole evaluation: {d['gdn_kernel_speedup']:.2f}x")
EOF
echo "total $(($(date +%s) - START))s; results in $OUT"
