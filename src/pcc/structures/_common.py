"""Helpers shared by the structure builders: input-distribution templates, PyJuice's block-size rule,
and a graph walk that counts nodes and edges the way ``model.stats()`` does (for tests and reports)."""

from __future__ import annotations

from .. import dists
from ..errors import Error, int_arg
from ..nodes import InputVector, SumVector


def max_pow2_factor(n: int) -> int:
    """Largest power of two dividing ``n`` (PyJuice's ``max_cdf_power_of_2``, which picks block sizes)."""
    return n & -n if n > 0 else 1


def fresh_dist(template, what: str):
    """A parameterless copy of the distribution ``template``, so every input vector draws its own
    random parameters (a template's own parameter arrays are sized for one vector, not all of them)."""
    if isinstance(template, dists.Categorical):
        return dists.Categorical(num_cats=template.num_cats)
    if isinstance(template, dists.Bernoulli):
        return dists.Bernoulli()
    if isinstance(template, dists.Gaussian):
        return dists.Gaussian()
    raise Error(f"{what}: input_dist must be a pcc.dists distribution (Categorical, Bernoulli, "
                f"Gaussian), got {type(template).__name__}")


def positive_int(v, name: str) -> int:
    """``v`` as an int >= 1, else a pcc.Error naming the argument."""
    return int_arg(v, name, minimum=1)


def graph_stats(root) -> dict:
    """Counts of the circuit under ``root`` as built (each node vector once, tied copies included):
    ``input_nodes``, ``sum_nodes``, ``product_nodes``, ``sum_edges`` (node-level: a block edge counts
    b*b), ``num_vars``, ``root_nodes``. Same definitions as ``pcc.compile(root).stats()`` and as
    PyJuice's ``SumNodes.num_edges``, computed from the graph without compiling."""
    seen = set()
    stack = [root]
    out = dict(input_nodes=0, sum_nodes=0, product_nodes=0, sum_edges=0)
    while stack:
        ns = stack.pop()
        if id(ns) in seen:
            continue
        seen.add(id(ns))
        if isinstance(ns, InputVector):
            out["input_nodes"] += ns.num_nodes
        elif isinstance(ns, SumVector):
            out["sum_nodes"] += ns.num_nodes
            out["sum_edges"] += _sum_edges(ns)
        else:
            out["product_nodes"] += ns.num_nodes
        stack.extend(ns.children)
    out["num_vars"] = len(root.scope)
    out["root_nodes"] = root.num_nodes
    return out


def _sum_edges(ns) -> int:
    if ns.edges is None:  # dense
        return ns.num_nodes * ns.num_child_nodes
    return int(ns.edges.shape[1]) * ns.block_size * ns.block_size
