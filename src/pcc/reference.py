"""The float64 oracle: evaluates a circuit one node vector at a time with NumPy, no compiler involved.

Every other evaluator (the C++ CPU backend, the CUDA kernels) is tested against this module, so it
favours the obvious over the fast: every sum form is expanded to node-level (sum node, child node,
weight) triples and reduced with one log-sum-exp routine; the only concession to size is that sums are
evaluated in batch chunks to bound memory.

The learning oracle (flows, EM, torch log-likelihoods for gradients) lives in `reference_em.py` and is
re-exported here, so `pcc.reference` is the one namespace of float64 oracles; it reuses this file's
forward pass (`_forward`) rather than a copy of it.
"""
import numpy as np

from .errors import Error, to_numpy
from .nodes import InputVector, ProductVector, SumVector, topological_order

__all__ = ["log_likelihood", "Flows", "flows", "em_from_flows", "em_step", "log_params",
           "log_likelihood_torch", "GAUSSIAN_MIN_STD"]

# Elements of the [batch chunk, edges] temporary of a sum vector.
_CHUNK_ELEMENTS = 1 << 22


def log_likelihood(root, x, missing=None):
    """log p(x) of every sample under `root`, as float64 [B] (or [B, R] when root has R > 1 nodes).

    `x` [B, V] (NumPy or torch, int or float) with V >= root.num_vars; discrete variables must hold
    integer values in range. `missing` bool [B, V] marks entries to marginalize (input nodes give
    log 1); those entries of `x` are not read, so they may hold anything, NaN included.
    """
    order, values, _, _ = _forward(root, x, missing)
    out = values[id(root)]
    return out[:, 0] if root.num_nodes == 1 else out


def _forward(root, x, missing):
    """(order, {id(vector): float64 [B, n] log-values}, x float64 [B, V], missing bool [B, V]) of
    every vector reachable from root, children before parents; shared by log_likelihood and flows."""
    order = topological_order(root)
    x, missing = _check_data(x, missing, root.num_vars)
    values = {}
    for v in order:
        if isinstance(v, InputVector):
            out = _input_values(v, x[:, v.var], missing[:, v.var])
        elif isinstance(v, ProductVector):
            out = _product_values(v, [values[id(c)] for c in v.children])
        elif isinstance(v, SumVector):
            out = _sum_values(v, np.concatenate([values[id(c)] for c in v.children], axis=1))
        else:
            raise Error(f"log_likelihood: unknown node vector type {type(v).__name__}")
        values[id(v)] = out
    return order, values, x, missing


def _check_data(x, missing, num_vars):
    x = to_numpy(x, "x")
    if x.ndim != 2 or x.shape[1] < num_vars:
        raise Error(f"x: expected shape [batch, {num_vars}] (num_vars = largest variable + 1), "
                    f"got {list(x.shape)}")
    if missing is None:
        missing = np.zeros(x.shape, dtype=bool)
    else:
        m = to_numpy(missing, "missing")
        if m.shape != x.shape:
            raise Error(f"missing: expected the shape of x {list(x.shape)}, got {list(m.shape)}")
        if m.dtype.kind != "b":
            if m.dtype.kind not in "iu" or ((m != 0) & (m != 1)).any():
                raise Error(f"missing: expected a bool array, got dtype {m.dtype}")
        missing = m.astype(bool)
    return x.astype(np.float64), missing


def _observed(v, col, miss):
    """Mask of observed rows of column `col` for input vector v, after checking their values."""
    obs = ~miss
    v.dist.check_values(col[obs], np.flatnonzero(obs), f"x[:, {v.var}] (variable {v.var})")
    return obs


def _input_values(v, col, miss):
    """[B, n] log-densities; missing rows are log 1 = 0 and their x entries are never looked at."""
    obs = _observed(v, col, miss)
    out = np.zeros((col.shape[0], v.num_nodes))
    if obs.any():
        out[obs] = v.dist.log_prob(v.params, col[obs])
    return out


def _product_values(v, child_values):
    if v.edges is None:
        return np.sum(child_values, axis=0)
    out = np.zeros((child_values[0].shape[0], v.num_nodes))
    for j, cv in enumerate(child_values):
        out += cv[:, v.edges[:, j]]
    return out


def _layout_edges(v):
    """(sum node, concatenated child node) int arrays [P] of a sum vector, one per entry of its
    parameter array flattened in C order (dense [n, C], sparse [E], block [E, b, b])."""
    if v.form == "dense":
        n, c = v.params.shape
        return np.repeat(np.arange(n), c), np.tile(np.arange(c), n)
    if v.form == "sparse":
        return v.edges[0], v.edges[1]
    # block edge e pairs sum node s_blk*b + i with child node c_blk*b + j, weight w[e, i, j]
    b = v.block_size
    r = np.arange(b)
    shape = (v.edges.shape[1], b, b)
    s = np.broadcast_to(v.edges[0][:, None, None] * b + r[None, :, None], shape)
    ch = np.broadcast_to(v.edges[1][:, None, None] * b + r[None, None, :], shape)
    return s.ravel(), ch.ravel()


def _node_edges(v):
    """(sum node, concatenated child node, weight) triples of a sum vector, sorted by sum node."""
    s, ch = _layout_edges(v)
    w = v.params.astype(np.float64).ravel()
    perm = np.argsort(s, kind="stable")
    return s[perm], ch[perm], w[perm]


def _sum_values(v, child_values):
    """[B, n] = log sum_c w[i, c] exp(child[c]), shifted per (sample, sum node) by its largest term."""
    s, ch, w = _node_edges(v)
    with np.errstate(divide="ignore"):
        logw = np.log(w)
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    assert len(starts) == v.num_nodes  # construction guarantees every sum node an edge
    batch = child_values.shape[0]
    out = np.empty((batch, v.num_nodes))
    step = max(1, _CHUNK_ELEMENTS // max(1, len(s)))
    for lo in range(0, batch, step):
        terms = logw[None, :] + child_values[lo:lo + step][:, ch]
        top = np.maximum.reduceat(terms, starts, axis=1)
        top = np.where(np.isfinite(top), top, 0.0)  # all terms -inf: any shift works, result -inf
        with np.errstate(divide="ignore"):
            out[lo:lo + step] = top + np.log(
                np.add.reduceat(np.exp(terms - top[:, s]), starts, axis=1))
    return out


# At the end: reference_em imports the helpers above from this (then partially initialized) module.
from .reference_em import (GAUSSIAN_MIN_STD, Flows, em_from_flows, em_step, flows,  # noqa: E402
                           log_likelihood_torch, log_params)
