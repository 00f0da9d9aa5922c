"""`pcc.from_pyjuice`: a PyJuice 2.6.x circuit (its node graph with parameters) as a pcc circuit.

PyJuice is optional: it is imported inside the functions here, never at `import pcc`.

What is read from PyJuice's graph (pyjuice/nodes/*.py, 2.6.3):
* `InputNodes`: `scope` (one variable), `num_nodes`, `dist` (Categorical / Bernoulli / Gaussian) and the
  flat `_params` of the node's *source* (`get_source_ns()`): Categorical `[n * K]` row-major,
  Bernoulli `[n]` = P(x = 1), Gaussian `[n * 2]` interleaved (mu, sigma).
* `ProdNodes`: `chs` and `edge_ids`, block-level `[num_node_blocks, num_chs]` (node block k of the
  product multiplies node block edge_ids[k, j] of child j, node by node) or node-level
  `[num_nodes, num_chs]`. A one-child product with identity edges (what `summate` wraps input children
  in, and what PyJuice's compiler puts above its pass-through sums) is not a node of its own here: its
  child stands in for it.
* `SumNodes`: `chs` (concatenated in order), `edge_ids` `[2, E]` of (sum node block, child node block)
  pairs, `block_size` Bs, `ch_block_size` Bc, and the source's `_params` `[E, Bs, Bc]`.
  Bs == Bc gives a pcc block sum with the same edges and parameter array; Bs != Bc gives a dense sum when
  the edges connect every pair of blocks (roots of HMM / PD / RAT-SPN: one node over big blocks),
  otherwise a block sum of block size min(Bs, Bc) whose edges split PyJuice's rectangles into squares.
* Ties: nodes with `is_tied()` share their source's parameters; the first vector converted for a source
  is built with `pcc.inputs` / `summate`, the others with pcc's `duplicate(..., tie_params=True)`.

Parameters are those stored in the node objects. For a circuit compiled by PyJuice, pass the
`TensorCircuit` itself (or call `pc.update_parameters()` first): `from_pyjuice(pc)` copies the compiled
parameters back into the nodes with `pc.update_parameters()` and converts `pc.root_ns`, which then
includes the pass-through sums PyJuice's compiler inserted (identity weights), so both systems run
exactly the same circuit. Gaussians keep their mean and sigma; PyJuice's `min_sigma` is not carried
(pcc floors stds at `pcc.GAUSSIAN_MIN_STD` in its own EM).
"""
import numpy as np

from .. import dists
from ..errors import Error
from ..nodes import inputs, multiply, summate

__all__ = ["from_pyjuice", "sum_params_as_pcc"]


def _pyjuice():
    try:
        import pyjuice
    except ImportError as e:  # pragma: no cover - exercised only without pyjuice
        raise Error(f"from_pyjuice needs PyJuice (pip install pyjuice): {e}") from None
    return pyjuice


def _np(t, dtype=None):
    a = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
    return a if dtype is None else a.astype(dtype, copy=False)


def from_pyjuice(ns, return_map=False):
    """The pcc circuit (root node vector) equal to PyJuice circuit `ns`, with its parameters and ties.

    `ns`: the root `CircuitNodes` of a PyJuice 2.6.x circuit whose parameters are set (e.g. by
    `ns.init_parameters()`), or a compiled PyJuice `TensorCircuit` (its current parameters are copied
    back into its nodes with `update_parameters()` and `root_ns` is converted).
    `return_map`: also return a dict {PyJuice node: pcc vector} (input and sum nodes, and the products
    that became vectors) to compare parameters node by node (see `sum_params_as_pcc`).
    Raises `pcc.Error` for what pcc cannot represent (multivariate inputs, other distributions,
    nodes without parameters, non-smooth or non-decomposable circuits).
    """
    juice = _pyjuice()
    from pyjuice.nodes import CircuitNodes, InputNodes, ProdNodes, SumNodes

    if isinstance(ns, juice.TensorCircuit):
        ns.update_parameters()
        ns = ns.root_ns
    if not isinstance(ns, CircuitNodes):
        raise Error(f"from_pyjuice: expected a PyJuice CircuitNodes or TensorCircuit, got {type(ns).__name__}")

    converted = {}   # id(pyjuice node) -> pcc vector
    by_source = {}   # id(source node) -> first pcc vector converted for that parameter group
    keep = []        # PyJuice nodes referenced by id() above stay alive while converting
    for n in _postorder(ns):
        keep.append(n)
        if isinstance(n, InputNodes):
            v = _convert_input(n, by_source)
        elif isinstance(n, ProdNodes):
            v = _convert_prod(n, [converted[id(c)] for c in n.chs])
        elif isinstance(n, SumNodes):
            v = _convert_sum(n, [converted[id(c)] for c in n.chs], by_source)
        else:
            raise Error(f"from_pyjuice: unsupported node type {type(n).__name__}")
        converted[id(n)] = v
    root = converted[id(ns)]
    if return_map:
        return root, {n: converted[id(n)] for n in keep}
    return root


def sum_params_as_pcc(n):
    """PyJuice sum node `n`'s parameters (its source's `_params`) in the layout of the pcc vector
    `from_pyjuice` made of it (what `TensorCircuit.get_params` returns for that vector), float32."""
    return _sum_layout(n)[3]


# ----------------------------------------------------------------------------------------------------


def _postorder(root):
    """PyJuice nodes reachable from root, children first (iterative: HCLT chains are deep)."""
    order, seen, stack = [], {id(root)}, [(root, 0)]
    while stack:
        n, i = stack[-1]
        chs = n.chs
        if i < len(chs):
            stack[-1] = (n, i + 1)
            c = chs[i]
            if id(c) not in seen:
                seen.add(id(c))
                stack.append((c, 0))
        else:
            stack.pop()
            order.append(n)
    return order


def _source_params(n, what):
    src = n.get_source_ns()
    p = getattr(src, "_params", None)
    if p is None:
        raise Error(f"from_pyjuice: {what} {n!r} has no parameters; call root.init_parameters() "
                    f"(or pass the compiled TensorCircuit)")
    return src, p


def _convert_input(n, by_source):
    from pyjuice.nodes import distributions as jd

    scope = list(n.scope)
    if len(scope) != 1:
        raise Error(f"from_pyjuice: input node {n!r} has scope {scope}; pcc inputs are univariate")
    var, num = int(scope[0]), int(n.num_nodes)
    src, p = _source_params(n, "input node")
    first = by_source.get(id(src))
    if first is not None:
        if first.num_nodes != num:
            raise Error(f"from_pyjuice: tied input node {n!r} has {num} nodes, its source {first.num_nodes}")
        return first.duplicate(var, tie_params=True)
    d = n.dist
    p = _np(p, np.float64).reshape(-1)
    if type(d) is jd.Categorical:
        dist = dists.Categorical(d.num_cats, probs=p.reshape(num, d.num_cats))
    elif type(d) is jd.Bernoulli:
        dist = dists.Bernoulli(probs=p.reshape(num))
    elif type(d) is jd.Gaussian:
        p = p.reshape(num, 2)
        dist = dists.Gaussian(mean=p[:, 0], std=p[:, 1])
    else:
        raise Error(f"from_pyjuice: input distribution {type(d).__name__} of {n!r} is not supported "
                    f"(Categorical, Bernoulli, Gaussian)")
    v = inputs(var, num, dist)
    by_source[id(src)] = v
    return v


def _convert_prod(n, children):
    B = int(n.block_size)
    e = _np(n.edge_ids, np.int64)
    num = int(n.num_nodes)
    if e.shape[0] == n.num_node_blocks and B > 1:  # block-level: node k*B + r -> child node e[k, j]*B + r
        e = (e[:, None, :] * B + np.arange(B)[None, :, None]).reshape(num, len(children))
    sizes = [c.num_nodes for c in children]
    identity = all(s == num for s in sizes) and np.array_equal(e, np.broadcast_to(np.arange(num)[:, None], e.shape))
    if identity and len(children) == 1:
        return children[0]  # a pass-through product: the child stands in for it
    return multiply(*children, edges=None if identity else e)


def _sum_layout(n):
    """(form, block_size or None, edges or None, params) of pcc's vector for PyJuice sum node n."""
    _, p = _source_params(n, "sum node")
    src = n.get_source_ns()
    e = _np(src.edge_ids, np.int64)
    Bs, Bc = int(n.block_size), int(n.ch_block_size)
    nsb, ncb = int(n.num_node_blocks), int(n.num_ch_node_blocks)
    E = e.shape[1]
    w = _np(p, np.float32).reshape(E, Bs, Bc)
    if Bs == Bc:
        if Bs == 1:
            return "sparse", None, e, w.reshape(E)
        return "block", Bs, e, w
    if E == nsb * ncb:  # every pair of blocks: dense [num_nodes, num_child_nodes]
        m = np.zeros((nsb, ncb, Bs, Bc), dtype=np.float32)
        m[e[0], e[1]] = w
        return "dense", None, None, m.transpose(0, 2, 1, 3).reshape(nsb * Bs, ncb * Bc)
    b = min(Bs, Bc)
    rs, rc = Bs // b, Bc // b
    w = w.reshape(E, rs, b, rc, b).transpose(0, 1, 3, 2, 4).reshape(E * rs * rc, b, b)
    s = (e[0][:, None, None] * rs + np.arange(rs)[None, :, None])
    c = (e[1][:, None, None] * rc + np.arange(rc)[None, None, :])
    s, c = np.broadcast_arrays(s, c)
    edges = np.stack([s.reshape(-1), c.reshape(-1)])
    if b == 1:
        return "sparse", None, edges, w.reshape(-1)
    return "block", b, edges, w


def _convert_sum(n, children, by_source):
    src = n.get_source_ns()
    if src is not n and not np.array_equal(_np(src.edge_ids), _np(n.edge_ids)):
        raise Error(f"from_pyjuice: tied sum node {n!r} has edges different from its source's")
    first = by_source.get(id(src))
    if first is not None:
        return first.duplicate(*children, tie_params=True)
    form, b, edges, w = _sum_layout(n)
    v = summate(*children, num_nodes=int(n.num_nodes), edges=edges, params=w, block_size=b)
    by_source[id(src)] = v
    return v
