#!/usr/bin/env bash
# One call on the GPU machine: build pcc from source, run the CUDA test suite against the CPU backend,
# compute-sanitizer (memcheck, racecheck) on a short run, the kernel checks, and print a short table.
# Usage (device tool): bash benchmarks/gpu_check.sh   [STAGES="build tests sanitize kernels train structures pyjuice"]
#   pyjuice stage: PYJUICE_ONLY=a,b PYJUICE_JOBS=N PYJUICE_TIMEOUT=s PYJUICE_ARGS="--pj-cuda-graphs ..."
set -uo pipefail
OUT=${OUT:-/tmp/pcc-out}; mkdir -p "$OUT"
STAGES=${STAGES:-"build tests sanitize kernels"}
export PYTHONUNBUFFERED=1 CMAKE_BUILD_PARALLEL_LEVEL=16
declare -A RESULT
have() { [[ " $STAGES " == *" $1 "* ]]; }
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site
fi
if have build; then
  t=$(date +%s)
  PCC_CUDA=ON python3 -m pip install --no-build-isolation --no-deps -e . > "$OUT/build.log" 2>&1
  RESULT[build]="rc=$? $(( $(date +%s) - t ))s"
  grep -E "spill|registers" build/py*/CMakeFiles/pcc_cuda.dir/*.log 2>/dev/null | head -5
  tail -3 "$OUT/build.log"
fi
if have tests; then
  python3 -m pytest -q -p no:cacheprovider tests/python/test_cuda.py -x 2>&1 | tee "$OUT/test_cuda.log" | tail -25
  RESULT[test_cuda]=$(tail -1 "$OUT/test_cuda.log")
  # Python's GPU tests outside test_cuda.py (fused models on CUDA against the CPU).
  # (appended to test_cuda.log: at most 8 files come back from a device call)
  python3 -m pytest -q -p no:cacheprovider tests/python/test_fuse_products.py -k cuda > /tmp/test_fuse_cuda.log 2>&1
  RESULT[test_fuse_cuda]=$(tail -1 /tmp/test_fuse_cuda.log)
  cat /tmp/test_fuse_cuda.log >> "$OUT/test_cuda.log"
  ctest --test-dir build/py312 -R cuda --output-on-failure > "$OUT/ctest_cuda.log" 2>&1
  RESULT[ctest_cuda]=$(grep -E "tests passed|tests failed" "$OUT/ctest_cuda.log" | tail -1)
fi
if have sanitize; then
  for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool --error-exitcode 9 python3 -m pytest -q -p no:cacheprovider \
      tests/python/test_cuda.py -k "small and (tf32 or fp32)" > "$OUT/sanitize_$tool.log" 2>&1
    RESULT[$tool]="rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$OUT/sanitize_$tool.log" | tail -1)"
  done
fi
if have kernels; then
  for f in benchmarks/cuda_sum_forward_bench.cu benchmarks/cuda_sum_backward_check.cu; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .cu)
    nvcc -std=c++17 -O3 -arch=sm_90 -I csrc/include -I csrc "$f" csrc/cuda/sum_*.cu -o "/tmp/$n" > "$OUT/$n.build.log" 2>&1 \
      && "/tmp/$n" > "$OUT/$n.log" 2>&1
    RESULT[$n]="rc=$? $(tail -1 "$OUT/$n.log" 2>/dev/null)"
  done
fi
if have train; then
  for dev in cpu cuda; do
    pcc train --structure hclt --dataset mnist5k --latents 32 --epochs ${TRAIN_EPOCHS:-3} --device $dev --seed 1 \
      --no-progress --out "/tmp/train-$dev" > "$OUT/train_$dev.log" 2>&1
    RESULT[train_$dev]="rc=$?"
    cp "/tmp/train-$dev/metrics.json" "$OUT/metrics_$dev.json" 2>/dev/null
  done
  python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
a, b = (json.load(open(f"{out}/metrics_{d}.json")) for d in ("cpu", "cuda"))
for ea, eb in zip(a["epochs"], b["epochs"]):
    rel = abs(ea["test_ll"] - eb["test_ll"]) / abs(ea["test_ll"])
    print(f"epoch {ea['epoch']}: test ll cpu {ea['test_ll']:.4f} cuda {eb['test_ll']:.4f} rel diff {rel:.2e}")
PY
fi
if have structures; then
  (cd benchmarks && python3 cuda_structures.py ${STRUCTURES_ARGS:-}) > "$OUT/structures.md" 2>&1
  RESULT[structures]="rc=$? (table in structures.md)"
  grep "^|" "$OUT/structures.md"
fi
if have pyjuice; then
  # Side by side with PyJuice (needs .whl carried): every configuration (or PYJUICE_ONLY), one worker
  # each, the GPU parts under a lock; Triton's kernels cached between calls in .whl/triton-cache.tgz.
  # The JSON results come back as one archive (a call returns at most 8 files).
  export TRITON_CACHE_DIR=/tmp/tcache
  mkdir -p "$TRITON_CACHE_DIR" && { [ -f .whl/triton-cache.tgz ] && tar xzf .whl/triton-cache.tgz -C "$TRITON_CACHE_DIR"; }
  only=${PYJUICE_ONLY:+--only $PYJUICE_ONLY}
  timeout "${PYJUICE_TIMEOUT:-520}" python3 benchmarks/vs_pyjuice.py --jobs "${PYJUICE_JOBS:-10}" $only ${PYJUICE_ARGS:-} \
    --json-dir /tmp/vs --out "$OUT/vs_pyjuice.md" > "$OUT/vs_pyjuice.log" 2>&1
  RESULT[pyjuice]="rc=$? (table in vs_pyjuice.md, JSON in vs_json.tgz)"
  tar czf "$OUT/vs_json.tgz" -C /tmp/vs . 2>/dev/null
  tar czf "$OUT/triton-cache.tgz" -C "$TRITON_CACHE_DIR" .
  grep -E "^\||geometric|min step" "$OUT/vs_pyjuice.md" 2>/dev/null
fi
echo "==== summary ===="
for k in "${!RESULT[@]}"; do printf '%-28s %s\n' "$k" "${RESULT[$k]}"; done | sort
