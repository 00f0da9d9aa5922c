// The scaffolding of the discrete (Categorical / Bernoulli) input kernels. Validation has run
// (validate.cu), so discrete entries are in-range integers.
//
// Runs (the backward): a CTA takes runs of up to kMaxRun consecutive nodes over tiles of batch
// columns (Shape). For each run and tile it stages, once per variable segment of the run, the tile's
// column of x as slot indices (-1 = missing) in shared memory (x is [batch, num_vars] row-major, so
// a variable's column is a strided read: a sector per entry), and hands the segment's nodes to its
// warps, one node per warp. Warps sync among themselves between nodes (the caller's business); the
// CTA syncs only when its variable changes.
//
// Warp items (the forward): see below. In the backward they measured 1.4x slower on HCLT-256
// (2026-11-23: a warp item's tile is narrower, so a node's histogram is flushed more often), so the
// backward keeps runs.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "cuda/x_category.cuh"

namespace pcc {
namespace cuda {
namespace input_runs {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxRun = 32;           // nodes per CTA at most (one per lane of the run's metadata)
constexpr int kCols = 1024;           // batch columns per CTA at most (the staged column of x)
constexpr int64_t kFillCtas = 2048;   // CTAs a grid should have (a few waves of an H100)
constexpr int64_t kGatherCtas = 512;  // the same where a group gathers from global memory (HMM vocabularies):
                                      // fewer, wider CTAs, so each lane has several gathers in flight
constexpr int64_t kMaxGrid = int64_t(1) << 20;
constexpr unsigned kAll = 0xffffffffu;

// One CTA's work: run consecutive nodes x tile batch columns.
struct Shape {
  int run, tile;
};

// Long runs reuse a staged column of x over more nodes, wide tiles spread a node's per-node work (a
// table, a histogram flush) over more columns; both shrink, runs first and tiles down to min_tile,
// until the grid has enough CTAs, so that small groups still spread over the device.
inline Shape shape(int64_t num_nodes, int64_t batch, bool gather, int min_tile) {
  const int64_t fill = gather ? kGatherCtas : kFillCtas;
  Shape sh{kMaxRun, kCols};
  const auto ctas = [&] { return (num_nodes + sh.run - 1) / sh.run * ((batch + sh.tile - 1) / sh.tile); };
  while (sh.run > kWarps && ctas() < fill) sh.run /= 2;
  while (sh.tile > min_tile && ctas() < fill) sh.tile /= 2;
  return sh;
}

inline dim3 grid(const Shape& sh, int64_t num_nodes, int64_t batch) {
  const int64_t runs = (num_nodes + sh.run - 1) / sh.run, tiles = (batch + sh.tile - 1) / sh.tile;
  return dim3(static_cast<unsigned>(runs < kMaxGrid ? runs : kMaxGrid),
              static_cast<unsigned>(tiles < 65535 ? tiles : 65535));
}

// Calls node(i, off, cats, c0, cols) warp-uniformly for every node i of the group this CTA takes and
// every tile [c0, c0 + cols) of the batch, with xs[0 .. cols) holding the tile's slot indices of node
// i's variable; off is its first parameter, cats its slot count. xs: kCols ints of shared memory.
template <class T, class Node>
__device__ __forceinline__ void for_each_node(int64_t num_nodes, Shape sh, const int32_t* __restrict__ var,
                                              const int64_t* __restrict__ param_offset,
                                              const int32_t* __restrict__ num_cats, bool bernoulli,
                                              const T* __restrict__ x, const uint8_t* __restrict__ missing,
                                              int64_t num_vars, int64_t batch, int32_t* xs, Node&& node) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int64_t i0 = static_cast<int64_t>(blockIdx.x) * sh.run; i0 < num_nodes;
       i0 += static_cast<int64_t>(gridDim.x) * sh.run) {  // block-uniform
    // The run's metadata, one node per lane; bit j of starts: node i0 + j begins a variable segment.
    const int n = num_nodes - i0 < sh.run ? static_cast<int>(num_nodes - i0) : sh.run;
    const bool mine = lane < n;
    const int32_t my_var = mine ? var[i0 + lane] : -1;
    const int64_t my_off = mine ? param_offset[i0 + lane] : 0;
    const int32_t my_cats = !mine ? 0 : bernoulli ? 2 : num_cats[i0 + lane];
    const int32_t prev_var = __shfl_up_sync(kAll, my_var, 1);
    const unsigned starts = __ballot_sync(kAll, mine && (lane == 0 || my_var != prev_var));
    for (int64_t c0 = static_cast<int64_t>(blockIdx.y) * sh.tile; c0 < batch;
         c0 += static_cast<int64_t>(gridDim.y) * sh.tile) {
      const int cols = batch - c0 < sh.tile ? static_cast<int>(batch - c0) : sh.tile;
      for (unsigned rest = starts; rest != 0;) {
        const int s = __ffs(rest) - 1;
        rest &= rest - 1;
        const int e = rest != 0 ? __ffs(rest) - 1 : n;
        const int64_t v = __shfl_sync(kAll, my_var, s);
        __syncthreads();  // every warp is done with the previous variable's xs
#pragma unroll 1
        for (int c = threadIdx.x; c < cols; c += kThreads) {
          xs[c] = x_category(x, missing, (c0 + c) * num_vars + v);
        }
        __syncthreads();
        for (int j = s + warp; j < e; j += kWarps)  // warp-uniform
          node(i0 + j, __shfl_sync(kAll, my_off, j), __shfl_sync(kAll, my_cats, j), c0, cols);
      }
    }
  }
}

// Warp items (the forward). One warp per item of `run` consecutive nodes x 32 J batch columns,
// lane l holding columns c0 + l + 32 u (u < J). The item's node metadata sits one node per lane; the
// slot indices of the current variable stay in registers while the warp walks its nodes (a
// variable's nodes are consecutive), so x's strided column is read once per variable and item. No
// shared memory and no CTA barrier: a launch's cost is its chain of dependent loads (metadata, x,
// parameters), so items are sized to fill the device once and no more.
constexpr int64_t kFillWarps = 8192;  // items a grid should have (one resident wave of an H100)
constexpr int kMinRun = 4;            // nodes per item at least (each item reads x once per variable)

// An item shape: J columns per lane (the batch in as few tiles as max_j registers a lane allow), runs
// shrinking from 32 nodes until the grid has kFillWarps items, so a small group still spreads over
// the device.
struct WarpShape {
  int j, run;
  unsigned grid;
};

inline WarpShape warp_shape(int64_t num_nodes, int64_t batch, int max_j) {
  WarpShape sh{max_j, kMaxRun, 1};
  while (sh.j > 2 && 32 * (sh.j / 2) >= batch) sh.j /= 2;
  const int64_t tiles = (batch + 32 * sh.j - 1) / (32 * sh.j);
  while (sh.run > kMinRun && (num_nodes + sh.run - 1) / sh.run * tiles < kFillWarps) sh.run /= 2;
  const int64_t items = (num_nodes + sh.run - 1) / sh.run * tiles;
  sh.grid = static_cast<unsigned>(std::min<int64_t>((items + kWarps - 1) / kWarps, kMaxGrid));
  return sh;
}

// Calls item(i0, n, c0, my_var, my_off) warp-uniformly for each item of this warp: nodes
// [i0, i0 + n), columns from c0; lane j < n holds node i0 + j's variable and first parameter, read
// with __shfl_sync.
template <int J, class Item>
__device__ __forceinline__ void for_each_item(int64_t num_nodes, int run, int64_t batch,
                                              const int32_t* __restrict__ var,
                                              const int64_t* __restrict__ param_offset, Item&& item) {
  const int lane = threadIdx.x & 31;
  const int64_t tiles = (batch + 32 * J - 1) / (32 * J), items = (num_nodes + run - 1) / run * tiles;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kWarps;
  for (int64_t it = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5); it < items;
       it += warps) {  // warp-uniform
    const int64_t i0 = it / tiles * run, c0 = it % tiles * (32 * J);
    const int n = num_nodes - i0 < run ? static_cast<int>(num_nodes - i0) : run;
    const bool mine = lane < n;
    item(i0, n, c0, mine ? var[i0 + lane] : -1, mine ? param_offset[i0 + lane] : int64_t(0));
  }
}

// k[u] = the slot index of variable v in column c0 + lane + 32 u: -1 where missing, -2 past the batch.
template <int J, class T>
__device__ __forceinline__ void load_slots(int32_t (&k)[J], const T* __restrict__ x,
                                           const uint8_t* __restrict__ missing, int64_t num_vars, int64_t batch,
                                           int64_t c0, int64_t v) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int u = 0; u < J; ++u) {
    const int64_t c = c0 + lane + 32 * u;
    k[u] = c >= batch ? -2 : x_category(x, missing, c * num_vars + v);
  }
}

// Category-major Categorical groups (plan.h): slot k of node i at param_offset[i] + k * stride, so
// consecutive nodes reading one category read consecutive floats. A CTA takes runs of 32 nodes, one
// per lane, over tiles of Tile columns; for each variable segment of the run it stages the tile's
// slot indices in xs and each warp takes a column at a time, its lanes the segment's nodes:
//   begin(i0, n, c0, cols)  every thread, before the tile's segments (after a CTA sync),
//   column(j, off, k, c)     lane j of a segment (node i0 + j, first slot off, slot index k of column
//                            c, -1 = missing), warps over the columns,
//   end(i0, n, c0, cols)     every thread, after all columns (after a CTA sync).
constexpr int kCmTile = 128;

// Tile columns: kCmTile, or narrower (64, 32) where the grid would have fewer than kCmFillCtas CTAs
// (an HMM step's 512 emission nodes: 16 runs x 4 tiles of 128 left most SMs idle, and each warp
// walked 16 columns of dependent gathers).
constexpr int64_t kCmFillCtas = 512;

inline int cm_tile(int64_t num_nodes, int64_t batch) {
  int tile = kCmTile;
  while (tile > 32 && (num_nodes + 31) / 32 * ((batch + tile - 1) / tile) < kCmFillCtas) tile /= 2;
  return tile;
}

inline dim3 cm_grid(int64_t num_nodes, int64_t batch, int tile = kCmTile) {
  const int64_t runs = (num_nodes + 31) / 32, tiles = (batch + tile - 1) / tile;
  return dim3(static_cast<unsigned>(runs < kMaxGrid ? runs : kMaxGrid),
              static_cast<unsigned>(tiles < 65535 ? tiles : 65535));
}

template <int Tile = kCmTile, class T, class Begin, class Column, class End>
__device__ __forceinline__ void for_each_cm_tile(int64_t num_nodes, const int32_t* __restrict__ var,
                                                 const int64_t* __restrict__ param_offset, const T* __restrict__ x,
                                                 const uint8_t* __restrict__ missing, int64_t num_vars,
                                                 int64_t batch, int32_t* xs, Begin&& begin, Column&& column,
                                                 End&& end) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int64_t i0 = static_cast<int64_t>(blockIdx.x) * 32; i0 < num_nodes;
       i0 += static_cast<int64_t>(gridDim.x) * 32) {  // block-uniform
    const int n = num_nodes - i0 < 32 ? static_cast<int>(num_nodes - i0) : 32;
    const bool mine = lane < n;
    const int32_t my_var = mine ? var[i0 + lane] : -1;
    const int64_t my_off = mine ? param_offset[i0 + lane] : 0;
    const int32_t prev_var = __shfl_up_sync(kAll, my_var, 1);
    const unsigned starts = __ballot_sync(kAll, mine && (lane == 0 || my_var != prev_var));
    for (int64_t c0 = static_cast<int64_t>(blockIdx.y) * Tile; c0 < batch;
         c0 += static_cast<int64_t>(gridDim.y) * Tile) {
      const int cols = batch - c0 < Tile ? static_cast<int>(batch - c0) : Tile;
      __syncthreads();  // the previous tile's end() is done with shared memory
      begin(i0, n, c0, cols);
      for (unsigned rest = starts; rest != 0;) {
        const int s = __ffs(rest) - 1;
        rest &= rest - 1;
        const int e = rest != 0 ? __ffs(rest) - 1 : n;
        const int64_t v = __shfl_sync(kAll, my_var, s);
        __syncthreads();  // begin() is done, and every warp with the previous segment's xs
        for (int c = threadIdx.x; c < cols; c += kThreads) {
          xs[c] = x_category(x, missing, (c0 + c) * num_vars + v);
        }
        __syncthreads();
        if (lane >= s && lane < e) {
#pragma unroll 4
          for (int c = warp; c < cols; c += kWarps) column(lane, my_off, xs[c], c);
        }
      }
      __syncthreads();
      end(i0, n, c0, cols);
    }
  }
}

}  // namespace input_runs
}  // namespace cuda
}  // namespace pcc
