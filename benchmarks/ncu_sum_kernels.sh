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
 --section SchedulerStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
 --metrics dram__bytes.sum,lts__t_bytes.sum"
prof() {  # name kernel-regex skip command...
  local name=$1 k=$2 skip=$3; shift 3
  ncu --clock-control none -k "regex:$k" --launch-skip "$skip" --launch-count 1 $SECTIONS "$@" \
    > "$OUT/ncu_$name.txt" 2>&1
  echo "== $name (rc=$?)"
  grep -E "Duration|Compute \(SM\) Throughput|DRAM Throughput|Achieved Occupancy|Registers Per|Issue Slots Busy|Warp Cycles Per Issued|L2 Hit|Theoretical Occupancy|Dynamic Shared|Grid Size|dram__bytes|lts__t_bytes|highest-utilized" \
    "$OUT/ncu_$name.txt" | head -20
}
prof fwd_hclt256 sum_forward_tc 1 /tmp/sf_bench --only HCLT-256-like
prof fwd_pd256 sum_forward_tc 1 /tmp/sf_bench --only PD-256-like
prof fwd_hmm2048 sum_forward_tc 1 /tmp/sf_bench --only HMM-2048-like
prof bwd_hclt256 sum_backward_tc 1 /tmp/sb_check --only hclt256
prof bwd_pd256 sum_backward_tc 1 /tmp/sb_check --only pd256
prof bwd_hmm2048 sum_backward_tc 1 /tmp/sb_check --only hmm2048
