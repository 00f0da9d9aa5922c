"""Hypothesis strategies for random valid circuits and matching data, shared by the property tests.

`random_circuits()` draws a handful of knobs (number of variables, their distributions, a seed) and
builds the circuit from a seeded NumPy generator; torch's global generator is forked and seeded around
the build because omitted parameters are drawn from it. Everything is therefore reproducible from the
drawn values, which hypothesis needs to replay and shrink failures. The circuits cover: random DAGs with
shared sub-circuits, dense / sparse / block sums, elementwise products and products with `edges`,
tied and untied duplicates of inputs and sums, all three distributions, multi-node roots.

`random_inputs(root)` draws matching `(x, missing)` torch tensors; entries marked missing hold junk
(NaN or out-of-range values) because evaluators must not read them.
"""
import numpy as np
import torch
from hypothesis import strategies as st

import pcc
from pcc import dists
from pcc.nodes import InputVector, topological_order

SIZES = (1, 2, 4)

# (name, num_cats) of a variable's distribution; one per variable so `x` has one meaning per column.
DISCRETE_KINDS = (("categorical", 2), ("categorical", 3), ("categorical", 4), ("bernoulli", 0))
ALL_KINDS = DISCRETE_KINDS + (("gaussian", 0),)


@st.composite
def random_circuits(draw, max_vars=5, max_vectors=36, discrete_only=False, max_root_nodes=4, kinds=None):
    """A random valid circuit (its root vector) over variables 0..num_vars-1 (all in the scope).
    `kinds`: the (name, num_cats) to draw the variables' distributions from (default: DISCRETE_KINDS
    or ALL_KINDS)."""
    num_vars = draw(st.integers(1, max_vars))
    kinds = [draw(st.sampled_from(kinds or (DISCRETE_KINDS if discrete_only else ALL_KINDS)))
             for _ in range(num_vars)]
    root_nodes = draw(st.integers(1, max_root_nodes))
    seed = draw(st.integers(0, 2**32 - 1))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        builder = _Builder(np.random.default_rng(seed), kinds, max_vectors)
        return builder.node(tuple(range(num_vars)), root_nodes)


def variable_kinds(root):
    """{var: (dist name, num_cats)} over the input vectors reachable from root."""
    return {v.var: (v.dist.name, v.dist.num_cats)
            for v in topological_order(root) if isinstance(v, InputVector)}


@st.composite
def random_inputs(draw, root, max_batch=6, allow_missing=True):
    """`(x, missing)` for `root`: x [B, num_vars] torch tensor (int when every variable is
    discrete and the draw says so, else float32/float64), missing bool [B, num_vars] or None."""
    kinds = variable_kinds(root)
    num_vars = root.num_vars
    batch = draw(st.integers(1, max_batch))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = np.zeros((batch, num_vars))
    for var, (name, k) in kinds.items():
        if name == "gaussian":
            x[:, var] = rng.normal(scale=2.0, size=batch)
        else:
            x[:, var] = rng.integers(0, 2 if name == "bernoulli" else k, size=batch)
    discrete = all(name != "gaussian" for name, _ in kinds.values())
    dtype = draw(st.sampled_from(
        [torch.int64, torch.int32, torch.float32, torch.float64] if discrete
        else [torch.float32, torch.float64]))
    missing = None
    if allow_missing and draw(st.booleans()):
        rate = draw(st.sampled_from([0.2, 0.5, 1.0]))
        missing = rng.random((batch, num_vars)) < rate
        x[missing] = -1 if dtype in (torch.int64, torch.int32) else np.nan  # must not be read
        missing = torch.from_numpy(missing)
    return torch.from_numpy(x).to(dtype), missing


class _Builder:
    """Builds vectors top-down; `pool` keeps every vector by scope so later picks can share them."""

    def __init__(self, rng, kinds, max_vectors):
        self.rng, self.kinds, self.max_vectors = rng, kinds, max_vectors
        self.count = 0
        self.pool = {}    # scope -> [vector]
        self.inputs = {}  # (name, num_cats, num_nodes) -> [InputVector], for duplicate
        self.sums = {}    # (num_nodes, child sizes) -> [SumVector], for duplicate

    def _keep(self, v):
        self.count += 1
        self.pool.setdefault(v.scope, []).append(v)
        return v

    def _chance(self, p):
        return self.rng.random() < p

    def _size(self):
        return int(self.rng.choice(SIZES))

    def node(self, scope, n):
        """A vector of n nodes over scope: a shared one, an input, a product or a sum."""
        shared = [v for v in self.pool.get(scope, []) if v.num_nodes == n]
        full = self.count >= self.max_vectors
        if shared and (full or self._chance(0.3)):
            return shared[self.rng.integers(len(shared))]
        if len(scope) == 1:
            if full or self._chance(0.6):
                return self.leaf(scope[0], n)
            return self.sum(scope, n)
        if full or self._chance(0.5):
            return self.product(scope, n)
        return self.sum(scope, n)

    def leaf(self, var, n):
        name, k = self.kinds[var]
        key = (name, k, n)
        if self.inputs.get(key) and self._chance(0.3):
            orig = self.inputs[key][self.rng.integers(len(self.inputs[key]))]
            return self._keep(orig.duplicate(var, tie_params=self._chance(0.7)))
        v = self._keep(pcc.inputs(var, num_nodes=n, dist=self._dist(name, k, n)))
        self.inputs.setdefault(key, []).append(v)
        return v

    def _dist(self, name, k, n):
        rng, explicit = self.rng, self._chance(0.7)
        if name == "categorical":
            if not explicit:
                return dists.Categorical(k)
            # Small but non-zero probabilities: log-likelihoods stay finite, so tests can compare
            # them with a relative tolerance.
            probs = rng.random((n, k)) * (rng.random((n, k)) < 0.8) + 1e-3
            return dists.Categorical(k, probs=self._array(probs))
        if name == "bernoulli":
            return dists.Bernoulli(self._array(rng.uniform(0.05, 0.95, n)) if explicit else None)
        mean = self._array(rng.normal(size=n)) if explicit else None
        std = self._array(rng.uniform(0.3, 2.0, n)) if self._chance(0.7) else None
        return dists.Gaussian(mean=mean, std=std)

    def _array(self, a):
        """a as one of the accepted array types (NumPy float64/float32 or torch)."""
        choice = self.rng.integers(3)
        if choice == 0:
            return a
        if choice == 1:
            return a.astype(np.float32)
        return torch.from_numpy(a)

    def product(self, scope, n):
        vars_ = list(scope)
        self.rng.shuffle(vars_)
        k = int(self.rng.integers(2, min(3, len(vars_)) + 1))
        cuts = np.sort(self.rng.choice(np.arange(1, len(vars_)), k - 1, replace=False))
        parts = [tuple(sorted(int(v) for v in p)) for p in np.split(vars_, cuts)]
        if self._chance(0.5):  # elementwise
            children = [self.node(p, n) for p in parts]
            return self._keep(pcc.multiply(*children))
        children = [self.node(p, self._size()) for p in parts]
        edges = np.stack([self.rng.integers(0, c.num_nodes, n) for c in children], axis=1)
        return self._keep(pcc.multiply(*children, edges=edges))

    def sum(self, scope, n):
        children = []
        for _ in range(1 if self.count >= self.max_vectors else int(self.rng.integers(1, 4))):
            size = self._size()
            if len(scope) == 1:
                c = self.leaf(scope[0], size)
            else:
                shared = [v for v in self.pool.get(scope, []) if v not in children]
                c = shared[self.rng.integers(len(shared))] if shared and self._chance(0.3) \
                    else self.product(scope, size)
            if all(c is not d for d in children):
                children.append(c)
        key = (n, tuple(c.num_nodes for c in children))
        if self.sums.get(key) and self._chance(0.3):
            orig = self.sums[key][self.rng.integers(len(self.sums[key]))]
            return self._keep(orig.duplicate(*children, tie_params=self._chance(0.7)))
        v = self._keep(self._summate(children, n))
        self.sums.setdefault(key, []).append(v)
        return v

    def _summate(self, children, n):
        rng = self.rng
        total = sum(c.num_nodes for c in children)
        form = rng.choice(["dense", "sparse", "block"])
        if form == "dense":
            params = rng.random((n, total)) + 0.01 if self._chance(0.7) else None
            return pcc.summate(*children, num_nodes=n, params=params)
        b = 1
        if form == "block":
            g = np.gcd.reduce([n] + [c.num_nodes for c in children])
            b = int(rng.choice([s for s in SIZES if g % s == 0]))
        rows, cols = n // b, total // b
        mask = rng.random((rows, cols)) < rng.uniform(0.2, 0.9)
        mask[np.arange(rows), rng.integers(0, cols, rows)] = True  # every sum node gets an edge
        edges = np.stack(np.nonzero(mask))
        edges = edges[:, rng.permutation(edges.shape[1])]  # edge order must not matter
        shape = (edges.shape[1],) if form == "sparse" else (edges.shape[1], b, b)
        params = rng.random(shape) + 0.01 if self._chance(0.7) else None
        return pcc.summate(*children, num_nodes=n, edges=edges, params=params,
                           block_size=b if form == "block" else None)
