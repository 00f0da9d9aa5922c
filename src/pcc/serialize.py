"""Conversion between front-end node vectors and the C++ IR (`_C.Circuit`), and `.pcir` files.

The file format itself is implemented once, in C++ (docs/ir.md); this module only maps the Python
DAG onto the `_C.Circuit` builder and back. Ties survive both ways: parameter groups are keyed by the
identity of the front-end `ParamGroup` object, and a group read back becomes one shared object.
Parameters are copied as float32 and never renormalized on the way back, so a round trip is bit-exact.
"""
import os

import numpy as np

from . import dists
from .errors import Error
from .nodes import (InputVector, ParamGroup, ProductVector, SumVector, _sum_structure, multiply,
                    topological_order)

__all__ = ["to_ir", "from_ir", "save", "load"]


def _ext():
    try:
        from . import _C
    except ImportError as e:
        raise Error(f"the pcc._C extension is not built ({e}); install pcc to read or write IR") \
            from None
    return _C


def to_ir(root, group_ids=None):
    """The `_C.Circuit` of the DAG reachable from `root` (children before parents, ties kept).

    If `group_ids` is a dict, it receives {id(ParamGroup): IR parameter group index}.
    """
    _C = _ext()
    circuit = _C.Circuit()
    ids = {}
    groups = {} if group_ids is None else group_ids

    def group_id(group):
        g = groups.get(id(group))
        if g is None:
            g = groups[id(group)] = circuit.add_params(group.values.reshape(-1))
        return g

    for v in topological_order(root):
        ch = [ids[id(c)] for c in v.children]
        if isinstance(v, InputVector):
            i = circuit.add_input(v.var, v.num_nodes, v.dist.name, v.dist.num_cats,
                                  group_id(v.param_group))
        elif isinstance(v, ProductVector):
            i = circuit.add_product(ch, v.num_nodes, v.edges)
        elif isinstance(v, SumVector):
            i = circuit.add_sum(ch, v.num_nodes, v.form, v.block_size, v.edges,
                                group_id(v.param_group))
        else:
            raise Error(f"to_ir: unknown node vector type {type(v).__name__}")
        ids[id(v)] = i
    circuit.root = ids[id(root)]
    return circuit


def from_ir(circuit):
    """Front-end node vectors of a `_C.Circuit`; returns the root vector (unreachable ones dropped)."""
    circuit.verify()
    n, root = circuit.num_vectors, circuit.root
    if not 0 <= root < n:
        raise Error(f"from_ir: root {root} is not a vector id (0..{n - 1})")
    info = [circuit.vector(i) for i in range(n)]
    # Children ids are smaller than their parent's, so one backward sweep marks what the root reaches.
    used = [False] * n
    used[root] = True
    for i in range(root, -1, -1):
        if used[i]:
            for c in info[i]["children"]:
                used[c] = True

    groups = {}

    def group(g, shape):
        pg = groups.get(g)
        if pg is None:
            values = np.asarray(circuit.param_group(g), dtype=np.float32)
            if values.size != int(np.prod(shape)):
                raise Error(f"from_ir: parameter group {g} has {values.size} values, expected "
                            f"{int(np.prod(shape))} for shape {list(shape)}")
            pg = groups[g] = ParamGroup(values.reshape(shape))
        elif pg.values.shape != tuple(shape):
            raise Error(f"from_ir: parameter group {g} is tied between vectors of different shapes")
        return pg

    vectors = [None] * n
    for i in range(root + 1):
        if not used[i]:
            continue
        d = info[i]
        children = [vectors[c] for c in d["children"]]
        if d["kind"] == "input":
            dist = dists.from_ir(d["dist"], d["num_cats"])
            vectors[i] = InputVector(d["var"], d["num_nodes"], dist,
                                     group(d["params"], dist.param_shape(d["num_nodes"])))
        elif d["kind"] == "product":
            vectors[i] = multiply(*children, edges=d["edges"])
            if vectors[i].num_nodes != d["num_nodes"]:
                raise Error(f"from_ir: product vector {i} has num_nodes {d['num_nodes']} but its "
                            f"children give {vectors[i].num_nodes}")
        elif d["kind"] == "sum":
            form = d["form"]
            edges = None if form == "dense" else d["edges"]
            block = d["block_size"] if form == "block" else None
            ch, num_nodes, form2, b, e, shape = _sum_structure(children, d["num_nodes"], edges, block)
            vectors[i] = SumVector(ch, num_nodes, form2, b, e, group(d["params"], shape))
        else:
            raise Error(f"from_ir: vector {i} has unknown kind {d['kind']!r}")
    return vectors[root]


def save(root, path):
    """Write `root` (a node vector, or anything with `to_circuit()`, e.g. a TensorCircuit) to a
    `.pcir` file; float32 parameters are stored bit-exact."""
    if hasattr(root, "to_circuit"):
        root = root.to_circuit()
    to_ir(root).save(os.fspath(path))


def load(path):
    """Read a `.pcir` file written by `save` (or `pcc-compile`'s tools); returns the root vector."""
    return from_ir(_ext().Circuit.load(os.fspath(path)))
