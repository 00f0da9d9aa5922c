"""Node vectors: the circuit DAG a user builds with `inputs`, `multiply` and `summate`.

Semantics follow csrc/include/pcc/ir.h. Everything is checked when a vector is built (so an error
points at the call that caused it) and nothing changes afterwards: attributes are read-only and arrays
are frozen, which also means no cycle can be built from Python. Parameters live in `ParamGroup`
objects; vectors holding the same group object are tied (`duplicate(..., tie_params=True)`), which is
how serialization recognises ties. Checks and normalization are vectorized with NumPy because large
structures (HCLT, PD) call these functions thousands of times with tens of thousands of edges each.
"""
import numpy as np
import torch

from .dists import Distribution
from .errors import Error, check_shape, float_array, int_arg, int_array

__all__ = ["NodeVector", "InputVector", "ProductVector", "SumVector", "ParamGroup",
           "inputs", "multiply", "summate", "topological_order"]


def _frozen(arr):
    arr.flags.writeable = False
    return arr


class ParamGroup:
    """One set of parameters (a frozen float32 array in IR layout); shared object = tied vectors."""

    __slots__ = ("values",)

    def __init__(self, values):
        # Callers pass arrays they own (fresh or copied), so freezing them in place is safe.
        self.values = _frozen(np.ascontiguousarray(values, dtype=np.float32))

    def copy(self):
        return ParamGroup(self.values.copy())


class NodeVector:
    """Base of all node vectors: `num_nodes`, `scope` (sorted tuple of variables), `children` (tuple)."""

    __slots__ = ("_num_nodes", "_scope", "_children")

    def __init__(self, num_nodes, scope, children):
        object.__setattr__(self, "_num_nodes", num_nodes)
        object.__setattr__(self, "_scope", scope)
        object.__setattr__(self, "_children", children)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable (tried to set {name!r})")

    @property
    def num_nodes(self):
        return self._num_nodes

    @property
    def scope(self):
        return self._scope

    @property
    def children(self):
        return self._children

    @property
    def num_vars(self):
        """Largest variable in the scope + 1 (the width of `x` this vector reads)."""
        return self._scope[-1] + 1

    def __repr__(self):
        sc = self._scope
        sc = str(sc) if len(sc) <= 6 else f"({sc[0]}, {sc[1]}, ..., {sc[-1]}; {len(sc)} vars)"
        return f"{type(self).__name__}(num_nodes={self._num_nodes}, scope={sc})"


class InputVector(NodeVector):
    """`num_nodes` univariate distributions on variable `var`; `params` in the dist's IR layout."""

    __slots__ = ("_var", "_dist", "_group")

    def __init__(self, var, num_nodes, dist, group):
        super().__init__(num_nodes, (var,), ())
        object.__setattr__(self, "_var", var)
        object.__setattr__(self, "_dist", dist)
        object.__setattr__(self, "_group", group)

    var = property(lambda self: self._var)
    dist = property(lambda self: self._dist, doc="The distribution family (parameters: `params`).")
    params = property(lambda self: self._group.values, doc="Frozen float32 parameters.")
    param_group = property(lambda self: self._group)

    def duplicate(self, var, tie_params=True):
        """The same distributions on variable `var`; parameters shared (tie_params) or copied."""
        var = int_arg(var, "duplicate: var")
        return InputVector(var, self._num_nodes, self._dist,
                           self._group if tie_params else self._group.copy())

    def __repr__(self):
        return f"InputVector(var={self._var}, num_nodes={self._num_nodes}, dist={self._dist!r})"


class ProductVector(NodeVector):
    """Node i multiplies node edges[i, j] of child j; `edges` None means elementwise."""

    __slots__ = ("_edges",)

    def __init__(self, children, num_nodes, scope, edges):
        super().__init__(num_nodes, scope, children)
        object.__setattr__(self, "_edges", edges)

    edges = property(lambda self: self._edges, doc="int64 [num_nodes, len(children)] or None.")


class SumVector(NodeVector):
    """Weighted mixtures of the concatenated child nodes; `form` is "dense", "sparse" or "block"."""

    __slots__ = ("_form", "_block_size", "_edges", "_group", "_num_child_nodes")

    def __init__(self, children, num_nodes, form, block_size, edges, group):
        super().__init__(num_nodes, children[0].scope, children)
        for k, v in (("_form", form), ("_block_size", block_size), ("_edges", edges),
                     ("_group", group), ("_num_child_nodes", sum(c.num_nodes for c in children))):
            object.__setattr__(self, k, v)

    form = property(lambda self: self._form)
    block_size = property(lambda self: self._block_size, doc="Block size of the block form, else 1.")
    edges = property(lambda self: self._edges,
                     doc="int64 [2, E] (node pairs, or block pairs in the block form), None if dense.")
    params = property(lambda self: self._group.values,
                      doc="Frozen float32 weights: [num_nodes, C] dense, [E] sparse, [E, b, b] block.")
    param_group = property(lambda self: self._group)
    num_child_nodes = property(lambda self: self._num_child_nodes, doc="C, the concatenated child size.")

    def duplicate(self, *children, tie_params=True):
        """Same connectivity over new `children` (sizes as the originals', one common scope);
        parameters shared (tie_params) or copied."""
        children = _check_children(children, "duplicate")
        if len(children) != len(self._children):
            raise Error(f"duplicate: {repr(self)} has {len(self._children)} children, "
                        f"got {len(children)}")
        for j, (new, old) in enumerate(zip(children, self._children)):
            if new.num_nodes != old.num_nodes:
                raise Error(f"duplicate: child {j} has {new.num_nodes} nodes, the original child "
                            f"has {old.num_nodes}")
        _check_smooth(children, "duplicate")
        return SumVector(children, self._num_nodes, self._form, self._block_size, self._edges,
                         self._group if tie_params else self._group.copy())

    def __repr__(self):
        return NodeVector.__repr__(self)[:-1] + f", form={self._form!r})"


# ----------------------------------------------------------------------------------------------------
# Constructors


def inputs(var, num_nodes, dist):
    """An input vector: `num_nodes` distributions of family `dist` (a `pcc.dists` object) on `var`."""
    var = int_arg(var, "inputs: var")
    num_nodes = int_arg(num_nodes, "inputs: num_nodes", minimum=1)
    if not isinstance(dist, Distribution):
        raise Error(f"inputs: dist must be a pcc.dists distribution, got {type(dist).__name__}")
    return InputVector(var, num_nodes, dist, ParamGroup(dist.init_params(num_nodes)))


def multiply(*children, edges=None):
    """A product vector. Node i multiplies node edges[i, j] of child j (`edges` int [num_nodes,
    len(children)]); without edges, node i of every child (children of equal size)."""
    children = _check_children(children, "multiply")
    scope = _disjoint_union(children)
    if edges is None:
        sizes = {c.num_nodes for c in children}
        if len(sizes) > 1:
            raise Error(f"multiply: elementwise product needs children of equal size, got sizes "
                        f"{[c.num_nodes for c in children]}; pass edges to connect them")
        return ProductVector(children, children[0].num_nodes, scope, None)
    e = int_array(edges, "multiply: edges")
    if e.ndim != 2 or e.shape[1] != len(children) or e.shape[0] < 1:
        raise Error(f"multiply: edges must have shape [num_nodes, {len(children)}] with num_nodes "
                    f">= 1, got {list(e.shape)}")
    sizes = np.array([c.num_nodes for c in children], dtype=np.int64)
    bad = np.argwhere((e < 0) | (e >= sizes[None, :]))
    if bad.size:
        i, j = bad[0]
        raise Error(f"multiply: edges[{i}, {j}] = {e[i, j]} is out of range for child {j} "
                    f"({children[j].num_nodes} nodes)")
    return ProductVector(children, e.shape[0], scope, _frozen(e))


def summate(*children, num_nodes, edges=None, params=None, block_size=None):
    """A sum vector of `num_nodes` mixtures over the concatenated nodes of `children` (C in all).

    Dense when `edges` is None (params [num_nodes, C]). Otherwise `edges` int [2, E] lists
    (sum node, child node) pairs with params [E]; with `block_size` b it lists (sum block, child
    block) pairs of whole b-node blocks with params [E, b, b] (edge, node in sum block, node in child
    block). Weights are normalized per sum node and drawn at random (torch's generator) when omitted.
    `block_size` without edges only checks the sizes: the sum is dense.
    """
    children, num_nodes, form, b, e, shape = _sum_structure(children, num_nodes, edges, block_size)
    if params is None:
        # In (0, 1]: a drawn zero could empty a single-edge node. Normalization below also checks
        # that every sum node has an edge.
        w = torch.rand(shape).numpy()
        np.subtract(1.0, w, out=w)  # in NumPy: small torch ops pay thread start-up costs
    else:
        w = float_array(params, "summate: params")
        check_shape(w, shape, "summate: params", f"for the {form} form")
        if np.isnan(w).any():
            raise Error("summate: params contain NaN")
        if np.isinf(w).any():
            raise Error("summate: params contain an infinite value")
        if (w < 0).any():
            raise Error(f"summate: params contain a negative weight ({w.min()})")
    w = _normalize_sum(w, form, None if e is None else e[0], num_nodes, b)
    return SumVector(children, num_nodes, form, b, e, ParamGroup(w))


# ----------------------------------------------------------------------------------------------------
# Checks shared by the constructors, duplicate and pcc.load


def _sum_structure(children, num_nodes, edges, block_size):
    """Checked (children, num_nodes, form, block_size, frozen edges or None, params shape) of a sum;
    shared by summate and pcc.load."""
    children = _check_children(children, "summate")
    _check_smooth(children, "summate")
    num_nodes = int_arg(num_nodes, "summate: num_nodes", minimum=1)
    num_child = sum(c.num_nodes for c in children)
    b = 1
    if block_size is not None:
        b = int_arg(block_size, "summate: block_size", minimum=1)
        if b & (b - 1):
            raise Error(f"summate: block_size must be a power of two, got {b}")
        if num_nodes % b:
            raise Error(f"summate: num_nodes={num_nodes} is not a multiple of block_size={b}")
        for j, c in enumerate(children):
            if c.num_nodes % b:
                raise Error(f"summate: child {j} has {c.num_nodes} nodes, not a multiple of "
                            f"block_size={b}")

    if edges is None:  # a dense sum has no block structure in the IR
        return children, num_nodes, "dense", 1, None, (num_nodes, num_child)
    form = "sparse" if block_size is None else "block"
    e = _check_sum_edges(edges, num_nodes // b, num_child // b, form)
    shape = (e.shape[1],) if form == "sparse" else (e.shape[1], b, b)
    return children, num_nodes, form, b, e, shape


def _check_children(children, fn):
    if not children:
        raise Error(f"{fn}: needs at least one child")
    for j, c in enumerate(children):
        if not isinstance(c, NodeVector):
            hint = "; pass children as separate arguments (use *list)" \
                if isinstance(c, (list, tuple)) else ""
            raise Error(f"{fn}: child {j} is a {type(c).__name__}, not a node vector{hint}")
    return tuple(children)


def _check_smooth(children, fn):
    first = children[0].scope
    for j, c in enumerate(children[1:], 1):
        if c.scope != first:
            raise Error(f"{fn}: children must share one scope (smoothness), but child 0 {children[0]!r} "
                        f"and child {j} {c!r} differ")


def _disjoint_union(children):
    """Sorted union of the children's scopes; raises on a shared variable (decomposability)."""
    owner = {}
    for j, c in enumerate(children):
        for v in c.scope:
            k = owner.setdefault(v, j)
            if k != j:
                raise Error(f"multiply: children {k} {children[k]!r} and {j} {c!r} share variable "
                            f"{v} (a product needs disjoint scopes: decomposability)")
    return tuple(sorted(owner))


def _check_sum_edges(edges, num_rows, num_cols, form):
    """edges as a frozen int64 [2, E] with pairs in range and unique (units are blocks for 'block')."""
    unit = "block" if form == "block" else "node"
    e = int_array(edges, "summate: edges")
    if e.ndim != 2 or e.shape[0] != 2:
        raise Error(f"summate: edges must have shape [2, E], got {list(e.shape)}")
    for row, limit, what in ((0, num_rows, f"sum {unit}"), (1, num_cols, f"child {unit}")):
        bad = np.flatnonzero((e[row] < 0) | (e[row] >= limit))
        if bad.size:
            raise Error(f"summate: edges[{row}, {bad[0]}] = {e[row, bad[0]]} is not a valid {what} "
                        f"(0..{limit - 1})")
    key = np.sort(e[0] * num_cols + e[1])
    dup = np.flatnonzero(key[1:] == key[:-1])
    if dup.size:
        k = key[dup[0]]
        raise Error(f"summate: edges repeat the pair ({unit} {k // num_cols}, child {unit} "
                    f"{k % num_cols})")
    return _frozen(e)


def _normalize_sum(w, form, owner, num_nodes, b):
    """Weights (float32 or float64) divided by their sum node's total (a dense row, or all edges or
    block rows of the node) as float32; a sum node with no edge or only zero weights raises."""
    if form == "dense":
        totals = w.sum(axis=1, dtype=np.float64)
        node_of = None
    elif form == "sparse":
        node_of = owner
        totals = np.bincount(node_of, weights=w, minlength=num_nodes)
    else:  # block: row i of block edge e belongs to sum node owner[e] * b + i
        node_of = owner[:, None] * b + np.arange(b)
        row_totals = w.sum(axis=2, dtype=np.float64).ravel()
        totals = np.bincount(node_of.ravel(), weights=row_totals, minlength=num_nodes)
    if form != "dense":
        has_edge = np.zeros(num_nodes, dtype=bool)
        has_edge[node_of.ravel()] = True
        lonely = np.flatnonzero(~has_edge)
        if lonely.size:
            raise Error(f"summate: sum node {lonely[0]} has no edge")
    zero = np.flatnonzero(totals <= 0)
    if zero.size:
        raise Error(f"summate: the weights of sum node {zero[0]} are all zero")
    # Divide straight into the float32 result: these arrays reach tens of millions of weights.
    denom = totals[:, None] if form == "dense" else totals[node_of]
    if form == "block":
        denom = denom[:, :, None]
    return np.divide(w, denom, out=np.empty(w.shape, dtype=np.float32), casting="unsafe")


def topological_order(root):
    """Vectors reachable from `root`, each after its children (iterative: circuits can be very deep)."""
    if not isinstance(root, NodeVector):
        raise Error(f"expected a node vector, got {type(root).__name__}")
    order, seen = [], {id(root)}
    stack = [(root, 0)]
    while stack:
        v, i = stack[-1]
        if i < len(v.children):
            stack[-1] = (v, i + 1)
            c = v.children[i]
            if id(c) not in seen:
                seen.add(id(c))
                stack.append((c, 0))
        else:
            stack.pop()
            order.append(v)
    return order
