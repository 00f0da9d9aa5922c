"""The float64 learning oracle: flows, EM updates, and a torch log-likelihood for exact gradients.

Re-exported by `pcc.reference`; the compiled model's backward, `em_step` and `.grad`s are tested
against it (issue 3), so its definitions below are the contract the C++ and CUDA backends reproduce.
Like the forward oracle it works one node vector at a time in float64 and reuses that forward
(`_forward`). The NumPy parts use the stored float32 parameters as they are (rows sum to 1 within
~1e-7); `log_likelihood_torch` renormalizes them in float64, so the two agree to about 1e-7 relative.

Definitions. For a batch x_1..x_B and a root vector of R nodes, L = sum_b sum_r log v_r(x_b) (the
summed log-likelihood of every root node; samples where a root node's log-likelihood is -inf contribute
nothing to that node's flows, since d log 0 is undefined).
- Node flow F(n) = dL / d log v(n), summed over the batch. Computed top-down per sample: a root node
  has flow 1; a product passes its flow unchanged to the child nodes it multiplies; a sum node i passes
  f(i) * exp(log w_ic + log v(c) - log v(i)) to child c (log space, never a ratio of raw
  probabilities, so hundreds of layers do not underflow). A child's flow adds up over its parents.
- Parameter flows (expected counts) in the constructor's layout:
  sums: per edge, the sum of the above edge terms over the batch: dense [n, C], sparse [E], block
  [E, b, b]; per sum node they add up to the node's flow.
  Categorical [n, K] / Bernoulli [n, 2] (column 1 is x = 1): count[i, k] = sum_b f_b(i) [x_b = k],
  where a missing x_b counts f_b(i) * p_i(k) instead (the E-step marginalizes it under the node's own
  current distribution).
  Gaussian [3, n]: rows sum_b f_b, sum_b f_b x_b, sum_b f_b x_b^2, where a missing x_b contributes
  f_b * mean and f_b * (mean^2 + std^2) (the moments under the node's own distribution).
- EM (`em_from_flows`, `em_step`), step size s in [0, 1], pseudocount a >= 0; vectors sharing one
  `ParamGroup` (tied) pool (add) their parameter flows first and all receive the same result:
  sums, Categorical, Bernoulli: theta <- (1 - s) theta + s (F + a/K) / (sum F + a) per node, F its
  edge / category counts, K its number of edges (dense: C) or categories (Bernoulli: 2); a node whose
  sum F + a is 0 keeps theta.
  Gaussian (the pseudocount is not used): with N = sum F, m = (sum F x) / N and
  v = (sum F x^2) / N - m^2 (clamped at 0), the step mixes the expected sufficient statistics (x, x^2)
  as the categorical step mixes probabilities:
      mean' = (1 - s) mean + s m
      var'  = (1 - s) (std^2 + mean^2) + s (v + m^2) - mean'^2
            = (1 - s) std^2 + s v + s (1 - s) (m - mean)^2      (the form computed: no cancellation)
      std'  = max(sqrt(var'), GAUSSIAN_MIN_STD)
  var' is the variance of the s-mixture of the old and the fitted Gaussian, so never negative; s = 1
  gives the flow-weighted mean and standard deviation. A Gaussian with N = 0 keeps its parameters.
- Gradients: `log_params` gives log-parameters (log weights, log category probabilities with Bernoulli
  as log [1 - p, p], Gaussian mean and log-std) which `log_likelihood_torch` normalizes in its forward
  (log-softmax per sum node over its edges, per categorical node over categories). Their gradients
  follow from the flows: dL/dlog w_e = F_e - w_e F(i), dL/dlog p_ik = count_ik - p_ik F(i),
  dL/dmean = (sum F x - mean N) / std^2,
  dL/dlog std = (sum F x^2 - 2 mean sum F x + mean^2 N) / std^2 - N
  (summed over tied vectors); tests/python/test_reference_em.py checks these identities with autograd.
"""
import math

import numpy as np
import torch

from .errors import Error
from .nodes import InputVector, ProductVector, SumVector, topological_order
from .reference import _CHUNK_ELEMENTS, _check_data, _forward, _layout_edges, _observed

__all__ = ["GAUSSIAN_MIN_STD", "Flows", "flows", "em_from_flows", "em_step", "log_params",
           "log_likelihood_torch"]

GAUSSIAN_MIN_STD = 1e-3
"""Smallest standard deviation an EM step gives a Gaussian (a node fitted to one repeated value
would otherwise collapse to a zero std and an infinite density)."""


class Flows:
    """Flows of a batch, keyed by node vector (object identity; every vector reachable from the root).

    `log_likelihood`: float64 [B] ([B, R] for a root of R nodes), as `log_likelihood` returns it.
    `node`: {vector: float64 [n]} node flows summed over the batch.
    `params`: {sum or input vector: float64 array} parameter flows: sums in their params layout
    (dense [n, C], sparse [E], block [E, b, b]); Categorical [n, K]; Bernoulli [n, 2] (column 1 is
    x = 1); Gaussian [3, n] (sum F, sum F x, sum F x^2). Tied vectors keep separate entries here;
    EM pools them. `a + b` adds the flows of two batches of one circuit (log-likelihoods concatenate),
    as the compiled model accumulates flows across backward calls.
    """

    __slots__ = ("log_likelihood", "node", "params")

    def __init__(self, log_likelihood, node, params):
        self.log_likelihood, self.node, self.params = log_likelihood, node, params

    def __add__(self, other):
        if self.node.keys() != other.node.keys():
            raise Error("Flows: cannot add the flows of two different circuits")
        return Flows(np.concatenate([self.log_likelihood, other.log_likelihood]),
                     {v: f + other.node[v] for v, f in self.node.items()},
                     {v: f + other.params[v] for v, f in self.params.items()})


def flows(root, x, missing=None):
    """`Flows` of the summed log-likelihood of `x` [B, V] (`missing` as in `log_likelihood`)."""
    order, values, x, missing = _forward(root, x, missing)
    batch = x.shape[0]
    # Per-sample flows [B, n]; a root node whose sample is impossible passes no flow.
    f = {id(v): np.zeros((batch, v.num_nodes)) for v in order}
    f[id(root)] = np.isfinite(values[id(root)]).astype(np.float64)
    node, params = {}, {}
    for v in reversed(order):  # every parent before its children
        fv = f.pop(id(v))
        node[v] = fv.sum(axis=0)
        if isinstance(v, InputVector):
            params[v] = _input_stats(v, fv, x[:, v.var], missing[:, v.var])
        elif isinstance(v, ProductVector):
            for j, c in enumerate(v.children):
                f[id(c)] += fv if v.edges is None else _scatter_columns(fv, v.edges[:, j],
                                                                       c.num_nodes)
        else:
            edge_flows, child_flows = _sum_flows(v, fv, values)
            params[v] = edge_flows.reshape(v.params.shape)
            lo = 0
            for c in v.children:
                f[id(c)] += child_flows[:, lo:lo + c.num_nodes]
                lo += c.num_nodes
    ll = values[id(root)]
    return Flows(ll[:, 0] if root.num_nodes == 1 else ll, node, params)


def _scatter_columns(vals, idx, size):
    """[B, size] whose column c sums the columns of vals [B, P] with idx == c."""
    out = np.zeros((vals.shape[0], size))
    perm = np.argsort(idx, kind="stable")
    sorted_idx = idx[perm]
    starts = np.flatnonzero(np.r_[True, sorted_idx[1:] != sorted_idx[:-1]])
    out[:, sorted_idx[starts]] = np.add.reduceat(vals[:, perm], starts, axis=1)
    return out


def _sum_flows(v, fv, values):
    """(edge flows [P] in layout order, per-sample flows [B, C] of the concatenated children)."""
    s, ch = _layout_edges(v)
    with np.errstate(divide="ignore"):
        logw = np.log(v.params.astype(np.float64).ravel())
    child = np.concatenate([values[id(c)] for c in v.children], axis=1)
    parent = values[id(v)]
    batch = parent.shape[0]
    edge_flows = np.zeros(len(s))
    child_flows = np.empty((batch, v.num_child_nodes))
    step = max(1, _CHUNK_ELEMENTS // max(1, len(s)))
    for lo in range(0, batch, step):
        hi = lo + step
        fp, lp = fv[lo:hi][:, s], parent[lo:hi][:, s]
        # A parent of value 0 (log -inf) gets no flow (see flows), but its terms would be NaN.
        live = (fp != 0) & np.isfinite(lp)
        with np.errstate(invalid="ignore", over="ignore"):
            ratio = np.exp(logw[None, :] + child[lo:hi][:, ch] - lp)
        ef = np.where(live, fp * ratio, 0.0)
        edge_flows += ef.sum(axis=0)
        child_flows[lo:hi] = _scatter_columns(ef, ch, v.num_child_nodes)
    return edge_flows, child_flows


def _category_probs(v):
    """float64 [n, K] probabilities of a Categorical or Bernoulli vector (Bernoulli: [1-p, p])."""
    p = v.params.astype(np.float64)
    return np.stack([1.0 - p, p], axis=1) if v.dist.name == "bernoulli" else p


def _input_stats(v, fv, col, miss):
    """E-step statistics of input vector v from its per-sample flows fv [B, n] (layouts: Flows)."""
    obs = ~miss  # values were checked by the forward
    f_obs, f_miss = fv[obs], fv[miss].sum(axis=0)
    xo = col[obs]
    if v.dist.name == "gaussian":
        mean, std = v.params.astype(np.float64)
        return np.stack([fv.sum(axis=0),
                         xo @ f_obs + f_miss * mean,
                         (xo * xo) @ f_obs + f_miss * (mean * mean + std * std)])
    if v.dist.name in ("categorical", "bernoulli"):
        probs = _category_probs(v)
        onehot = np.eye(probs.shape[1])[xo.astype(np.int64)]  # [B_obs, K]
        return f_obs.T @ onehot + f_miss[:, None] * probs
    raise Error(f"flows: no E-step for distribution {v.dist.name!r}")


# ----------------------------------------------------------------------------------------------------
# EM


def em_step(root, x, missing=None, step_size=1.0, pseudocount=0.0):
    """One EM step on batch `x`: {vector: new parameters} for every sum and input vector of `root`.

    Layouts are the constructors': sums normalized weights (dense [n, C], sparse [E], block
    [E, b, b]); Categorical {"probs": [n, K]}; Bernoulli {"probs": [n]} (P(x = 1)); Gaussian
    {"mean": [n], "std": [n]}; all float64. The update is defined in this module's docstring.
    """
    return em_from_flows(root, flows(root, x, missing), step_size, pseudocount)


def em_from_flows(root, fl, step_size=1.0, pseudocount=0.0):
    """`em_step` from given `Flows` `fl` of `root` (e.g. several batches added: full-batch EM)."""
    s, a = float(step_size), float(pseudocount)
    if not 0.0 <= s <= 1.0:
        raise Error(f"em_step: step_size must lie in [0, 1], got {step_size}")
    if not (a >= 0.0 and math.isfinite(a)):
        raise Error(f"em_step: pseudocount must be finite and >= 0, got {pseudocount}")
    groups = {}  # id(ParamGroup) -> its vectors, in topological order
    for v in topological_order(root):
        if isinstance(v, (InputVector, SumVector)):
            if v not in fl.params:
                raise Error(f"em_step: the flows hold nothing for {v!r}; they belong to another "
                            f"circuit")
            groups.setdefault(id(v.param_group), []).append(v)
    out = {}
    for vs in groups.values():
        stats = sum(fl.params[u] for u in vs)  # tied vectors pool their flows
        new = _em_update(vs[0], stats, s, a)
        for u in vs:
            out[u] = {k: t.copy() for k, t in new.items()} if isinstance(new, dict) else new.copy()
    return out


def _mix(theta, counts, totals, k, s, a):
    """(1 - s) theta + s (counts + a/k) / (totals + a), keeping theta where totals + a is 0."""
    denom = totals + a
    keep = denom <= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        fitted = (counts + a / k) / np.where(keep, 1.0, denom)
    return np.where(keep, theta, (1.0 - s) * theta + s * fitted)


def _em_update(v, stats, s, a):
    """New parameters (constructor layout) of v (or its tie group) from pooled statistics."""
    if isinstance(v, SumVector):
        owner, _ = _layout_edges(v)
        counts = stats.ravel()
        totals = np.bincount(owner, weights=counts, minlength=v.num_nodes)[owner]
        k = np.bincount(owner, minlength=v.num_nodes)[owner]
        theta = v.params.astype(np.float64).ravel()
        return _mix(theta, counts, totals, k, s, a).reshape(v.params.shape)
    if v.dist.name == "gaussian":
        return _em_gaussian(v, stats, s)
    probs = _mix(_category_probs(v), stats, stats.sum(axis=1, keepdims=True), stats.shape[1], s, a)
    return {"probs": probs[:, 1] if v.dist.name == "bernoulli" else probs}


def _em_gaussian(v, stats, s):
    mean, std = v.params.astype(np.float64)
    total, sx, sxx = stats
    keep = total <= 0
    n = np.where(keep, 1.0, total)
    m_hat = sx / n
    v_hat = np.maximum(sxx / n - m_hat * m_hat, 0.0)
    new_mean = (1.0 - s) * mean + s * m_hat
    new_var = (1.0 - s) * std * std + s * v_hat + s * (1.0 - s) * (m_hat - mean) ** 2
    new_std = np.maximum(np.sqrt(new_var), GAUSSIAN_MIN_STD)
    return {"mean": np.where(keep, mean, new_mean), "std": np.where(keep, std, new_std)}


# ----------------------------------------------------------------------------------------------------
# Gradients: the same circuit in torch float64 from log-parameters


def log_params(root):
    """{vector: {name: float64 torch tensor, requires_grad}} log-parameters of every sum and input
    vector: sums {"log_weights"} in the params layout (-inf where a weight is 0); Categorical
    {"log_probs": [n, K]}; Bernoulli {"log_probs": [n, 2]} (log [1 - p, p]); Gaussian {"mean": [n],
    "log_std": [n]}. Tied vectors map to the same dict of tensors, so their gradients pool as the
    compiled model's shared parameters do."""
    out, by_group = {}, {}
    for v in topological_order(root):
        if isinstance(v, (InputVector, SumVector)):
            key = id(v.param_group)
            if key not in by_group:
                by_group[key] = {k: torch.from_numpy(a).requires_grad_(True)
                                 for k, a in _log_param_arrays(v).items()}
            out[v] = by_group[key]
    return out


def _log_param_arrays(v):
    p = v.params.astype(np.float64)
    with np.errstate(divide="ignore"):
        if isinstance(v, SumVector):
            return {"log_weights": np.log(p)}
        if v.dist.name == "gaussian":
            return {"mean": p[0].copy(), "log_std": np.log(p[1])}
        return {"log_probs": np.log(_category_probs(v))}


def log_likelihood_torch(root, x, missing=None, params=None):
    """log p(x) as a float64 torch tensor [B] ([B, R] for R root nodes) from log-parameters `params`
    (as `log_params` returns them; None: the circuit's own), normalized in the forward so that
    autograd gives exact gradients with respect to them. Data rules are `log_likelihood`'s."""
    values = _torch_values(root, x, missing, params)
    out = values[root]
    return out[:, 0] if root.num_nodes == 1 else out


def _torch_values(root, x, missing, params):
    """{vector: float64 tensor [B, n] log-values} of every vector reachable from root."""
    order = topological_order(root)
    x, missing = _check_data(x, missing, root.num_vars)
    if params is None:
        params = log_params(root)
    values = {}
    for v in order:
        if isinstance(v, InputVector):
            out = _torch_input(v, _params_of(params, v), x[:, v.var], missing[:, v.var])
        elif isinstance(v, ProductVector):
            out = 0
            for j, c in enumerate(v.children):
                cv = values[c]
                out = out + (cv if v.edges is None else cv[:, torch.tensor(v.edges[:, j])])
        elif isinstance(v, SumVector):
            s, ch = (torch.tensor(a) for a in _layout_edges(v))
            logw = _params_of(params, v)["log_weights"].reshape(1, -1)
            logw = logw - _segment_logsumexp(logw, s, v.num_nodes)[:, s]  # normalize per sum node
            child = torch.cat([values[c] for c in v.children], dim=1)
            out = _segment_logsumexp(logw + child[:, ch], s, v.num_nodes)
        else:
            raise Error(f"log_likelihood_torch: unknown node vector type {type(v).__name__}")
        values[v] = out
    return values


def _params_of(params, v):
    """params[v], checked against v's log-parameter names and shapes."""
    p = params.get(v)
    if p is None:
        raise Error(f"log_likelihood_torch: params hold nothing for {v!r}")
    for k, a in _log_param_arrays(v).items():
        t = p.get(k)
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != a.shape:
            raise Error(f"log_likelihood_torch: params[{v!r}][{k!r}] must be a tensor of shape "
                        f"{list(a.shape)}")
    return p


def _segment_logsumexp(vals, seg, size):
    """[B, size]: log-sum-exp of the columns of vals [B, P] with seg == c (-inf if none finite)."""
    batch = vals.shape[0]
    idx = seg.expand(batch, -1)
    # The shift cancels out of the value, so it is a constant for autograd (no amax subgradient).
    top = torch.full((batch, size), -math.inf, dtype=vals.dtype).scatter_reduce(
        1, idx, vals.detach(), reduce="amax")
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    total = torch.zeros((batch, size), dtype=vals.dtype).index_add(1, seg,
                                                                   torch.exp(vals - top[:, seg]))
    return top + torch.log(total)


def _torch_input(v, p, col, miss):
    """[B, n] log-densities from log-parameters p; missing rows give 0."""
    obs = _observed(v, col, miss)
    # Missing entries may hold junk (NaN): keep them out of the graph, where NaN would poison grads.
    xs = torch.from_numpy(np.where(obs, col, 0.0))
    if v.dist.name == "gaussian":
        z = (xs[:, None] - p["mean"][None, :]) * torch.exp(-p["log_std"])[None, :]
        lp = -0.5 * z * z - p["log_std"][None, :] - 0.5 * math.log(2 * math.pi)
    elif v.dist.name in ("categorical", "bernoulli"):
        lp = torch.log_softmax(p["log_probs"], dim=1)[:, xs.long()].T
    else:
        raise Error(f"log_likelihood_torch: unsupported distribution {v.dist.name!r}")
    return torch.where(torch.from_numpy(obs)[:, None], lp, torch.zeros_like(lp))
