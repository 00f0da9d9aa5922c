#!/usr/bin/env bash
# Nsight Compute on the sum-layer kernels alone, layer-sized cases of the standalone benches (GPU
# machine, one call): SOL, occupancy, warp stalls, pipes and memory of one launch of each.
#   bash benchmarks/ncu_sum_kernels.sh        (reports under $OUT, short summary on stdout)
set -uo pipefail
OUT=${OUT:-/tmp/pcc-out}; mkdir -p "$OUT"
nvcc -std=c++17 -O3 -arch=sm_90 -lineinfo -I csrc/include -I csrc benchmarks/cuda_sum_forward_bench.cu \
  csrc/cuda/sum_forward.cu -o /tmp/sf_bench || exit 1
nvcc -std=c++17 -O3 -arch=sm_90 -lineinfo -I csrc/include -I csrc benchmarks/cuda_sum_backward_check.cu \
  csrc/cuda/sum_backward.cu -o /tmp/sb_check || exit 1
SECTIONS="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
 --section SchedulerStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section SourceCounters"
prof() {  # name kernel-regex skip command...
  local name=$1 k=$2 skip=$3; shift 3
  ncu --clock-control none -k "regex:$k" --launch-skip "$skip" --launch-count 1 $SECTIONS "$@" \
    > "$OUT/ncu_$name.txt" 2>&1
  echo "== $name (rc=$?)"
  grep -E "Duration|Compute \(SM\) Throughput|Memory Throughput|DRAM Throughput|Achieved Occupancy|Registers Per|Issue Slots Busy|No Eligible|Warp Cycles Per Issued|Executed Ipc Active|L1/TEX Hit|L2 Hit|Theoretical Occupancy|Block Limit" \
    "$OUT/ncu_$name.txt" | head -20
  grep -B1 -A3 -E "^ +(OPT|WRN) +" "$OUT/ncu_$name.txt" | grep -E "stall|Stall|cycles|bank|uncoalesced|Uncoalesced" | head -6
}
prof fwd_hmm2048 sum_forward_tc 1 /tmp/sf_bench --only HMM-2048-like
prof fwd_pd256 sum_forward_tc 1 /tmp/sf_bench --only PD-256-like
prof bwd_hmm2048 sum_backward_tc 1 /tmp/sb_check --only hmm2048
prof bwd_pd256 sum_backward_tc 1 /tmp/sb_check --only pd256
