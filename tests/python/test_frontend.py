"""The circuit front-end: construction, validation messages, scopes, duplicate/tying, dtypes,
reproducibility, immutability, build speed, and the IR round trip (when the extension is built)."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings

import pcc
from pcc import dists
from pcc.nodes import topological_order

from circuits import random_circuits


def cat(var, n=2, k=3, **kw):
    return pcc.inputs(var, n, dists.Categorical(k, **kw))


def bern(var, n=2, **kw):
    return pcc.inputs(var, n, dists.Bernoulli(**kw))


# ---------------------------------------------------------------------------------------------------
# Construction


def test_issue_example_builds():
    a0 = pcc.inputs(0, num_nodes=4, dist=dists.Categorical(num_cats=3))
    a1 = pcc.inputs(1, num_nodes=4, dist=dists.Bernoulli())
    g2 = pcc.inputs(2, num_nodes=4, dist=dists.Gaussian(mean=np.zeros(4), std=np.ones(4)))
    p = pcc.multiply(a0, a1, g2)
    s = pcc.summate(p, num_nodes=1)
    assert isinstance(s, pcc.SumVector) and isinstance(p, pcc.ProductVector)
    assert isinstance(a0, pcc.InputVector) and isinstance(s, pcc.NodeVector)
    assert s.num_nodes == 1 and p.num_nodes == 4
    assert s.scope == (0, 1, 2) and a1.scope == (1,)
    assert s.children == (p,) and p.children == (a0, a1, g2) and a0.children == ()
    assert s.form == "dense" and s.params.shape == (1, 4)
    np.testing.assert_allclose(s.params.sum(axis=1), 1, rtol=1e-6)
    assert g2.params.shape == (2, 4) and g2.params.dtype == np.float32
    np.testing.assert_array_equal(g2.params, [[0] * 4, [1] * 4])


def test_scope_is_sorted_union():
    p = pcc.multiply(cat(5), cat(1), cat(3))
    assert p.scope == (1, 3, 5) and p.num_vars == 6
    s = pcc.summate(p, pcc.multiply(cat(3), cat(5), cat(1)), num_nodes=2)
    assert s.scope == (1, 3, 5)


def test_dense_sparse_block_forms():
    kids = (cat(0, n=4), cat(0, n=4))
    dense = pcc.summate(*kids, num_nodes=2)
    assert dense.form == "dense" and dense.edges is None and dense.params.shape == (2, 8)
    sparse = pcc.summate(*kids, num_nodes=2, edges=[[0, 0, 1], [0, 7, 3]], params=[1, 3, 2])
    assert sparse.form == "sparse" and sparse.block_size == 1
    np.testing.assert_allclose(sparse.params, [0.25, 0.75, 1.0])
    block = pcc.summate(*kids, num_nodes=4, edges=np.array([[0, 0, 1], [0, 3, 2]]),
                        block_size=2, params=np.ones((3, 2, 2)))
    assert block.form == "block" and block.block_size == 2 and block.params.shape == (3, 2, 2)
    # sum block 0 has two child blocks: each of its nodes spreads over 4 child nodes
    np.testing.assert_allclose(block.params[:2], 0.25)
    np.testing.assert_allclose(block.params[2], 0.5)
    assert block.edges.dtype == np.int64 and block.num_child_nodes == 8


def test_block_size_without_edges_is_dense():
    s = pcc.summate(cat(0, n=4), num_nodes=4, block_size=2)
    assert s.form == "dense" and s.block_size == 1


def test_product_edges():
    a, b = cat(0, n=3), bern(1, n=2)
    p = pcc.multiply(a, b, edges=torch.tensor([[0, 1], [2, 0]], dtype=torch.int32))
    assert p.num_nodes == 2 and p.edges.dtype == np.int64
    np.testing.assert_array_equal(p.edges, [[0, 1], [2, 0]])


def test_unused_child_nodes_are_valid():
    s = pcc.summate(cat(0, n=4), num_nodes=1, edges=[[0], [2]])
    np.testing.assert_array_equal(s.params, [1.0])


def test_shared_subcircuit_is_one_object():
    a = cat(0)
    s = pcc.summate(pcc.multiply(a, bern(1)), pcc.multiply(a, bern(1)), num_nodes=1)
    order = topological_order(s)
    assert sum(v is a for v in order) == 1 and order[-1] is s


def test_deep_chain_has_no_recursion_limit():
    v = cat(0, n=1)
    for _ in range(5000):
        v = pcc.summate(v, num_nodes=1)
    assert len(topological_order(v)) == 5001
    assert pcc.reference.log_likelihood(v, np.array([[1]])).shape == (1,)


# ---------------------------------------------------------------------------------------------------
# Distributions: dtypes, normalization, validation


@pytest.mark.parametrize("convert", [
    lambda a: a, lambda a: a.astype(np.float16), lambda a: a.astype(np.int32),
    lambda a: torch.tensor(a), lambda a: torch.tensor(a, dtype=torch.bfloat16),
    lambda a: torch.tensor(a, dtype=torch.int64), lambda a: a.tolist()])
def test_categorical_accepts_any_numeric_array_and_normalizes(convert):
    probs = np.array([[1.0, 3.0], [2.0, 2.0]])
    v = pcc.inputs(0, 2, dists.Categorical(2, probs=convert(probs)))
    assert v.params.dtype == np.float32
    np.testing.assert_allclose(v.params, [[0.25, 0.75], [0.5, 0.5]])


def test_bernoulli_and_gaussian_dtypes():
    b = pcc.inputs(0, 3, dists.Bernoulli(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)))
    np.testing.assert_array_equal(b.params, np.float32([0, 0.5, 1]))
    g = pcc.inputs(0, 2, dists.Gaussian(mean=torch.tensor([1, 2]), std=np.array([1, 3], np.int8)))
    np.testing.assert_array_equal(g.params, [[1, 2], [1, 3]])
    assert g.params.dtype == np.float32 and b.params.dtype == np.float32


def test_random_params_are_valid():
    torch.manual_seed(3)
    c = pcc.inputs(0, 5, dists.Categorical(4))
    np.testing.assert_allclose(c.params.sum(axis=1), 1, rtol=1e-6)
    b = pcc.inputs(0, 5, dists.Bernoulli())
    assert ((b.params >= 0) & (b.params <= 1)).all()
    g = pcc.inputs(0, 5, dists.Gaussian(mean=np.zeros(5)))
    assert (g.params[1] > 0).all() and (g.params[0] == 0).all()


@pytest.mark.parametrize("make, match", [
    (lambda: dists.Categorical(0), "num_cats: must be >= 1"),
    (lambda: dists.Categorical(2.5), "num_cats: expected an integer"),
    (lambda: dists.Categorical(3, probs=np.ones((2, 2))), r"probs: expected shape \[num_nodes, 3\]"),
    (lambda: dists.Categorical(2, probs=[[1, -1]]), "negative"),
    (lambda: dists.Categorical(2, probs=[[1, np.nan]]), "NaN"),
    (lambda: dists.Categorical(2, probs=[[0, 0]]), "row 0 sums to zero"),
    (lambda: dists.Categorical(2, probs=[["a", "b"]]), "numeric"),
    (lambda: dists.Bernoulli([1.5]), r"in \[0, 1\]"),
    (lambda: dists.Bernoulli([np.nan]), "NaN"),
    (lambda: dists.Bernoulli([[0.5]]), "Bernoulli.probs: expected shape"),
    (lambda: dists.Bernoulli([True]), "bool"),
    (lambda: dists.Gaussian(std=[1.0, 0.0]), "std must be > 0"),
    (lambda: dists.Gaussian(std=[-1.0]), "std must be > 0"),
    (lambda: dists.Gaussian(std=[np.nan]), "std must be > 0"),
    (lambda: dists.Gaussian(mean=[np.nan]), "Gaussian.mean"),
    (lambda: dists.Gaussian(mean=[0.0], std=[1.0, 1.0]), "mean has 1 entries but std has 2"),
])
def test_distribution_validation(make, match):
    with pytest.raises(pcc.Error, match=match):
        make()


@pytest.mark.parametrize("dist, match", [
    (dists.Categorical(2, probs=np.ones((3, 2))), r"Categorical.probs: expected shape \[4, 2\]"),
    (dists.Bernoulli(np.full(3, 0.5)), r"Bernoulli.probs: expected shape \[4\]"),
    (dists.Gaussian(mean=np.zeros(3)), r"Gaussian.mean: expected shape \[4\]"),
    (dists.Gaussian(std=np.ones(5)), r"Gaussian.std: expected shape \[4\]"),
])
def test_param_shape_must_match_num_nodes(dist, match):
    with pytest.raises(pcc.Error, match=match):
        pcc.inputs(0, 4, dist)


@pytest.mark.parametrize("args, match", [
    ((-1, 2, dists.Bernoulli()), "inputs: var: must be >= 0"),
    ((0, 0, dists.Bernoulli()), "inputs: num_nodes: must be >= 1"),
    ((0, 2.0, dists.Bernoulli()), "inputs: num_nodes: expected an integer"),
    ((0, 2, "bernoulli"), "dist must be a pcc.dists distribution"),
])
def test_inputs_validation(args, match):
    with pytest.raises(pcc.Error, match=match):
        pcc.inputs(*args)


def test_error_is_value_error():
    assert issubclass(pcc.Error, ValueError)


# ---------------------------------------------------------------------------------------------------
# Products and sums: validation


def test_product_must_be_decomposable():
    with pytest.raises(pcc.Error, match="share variable 1.*decomposability"):
        pcc.multiply(cat(0), pcc.multiply(cat(1), cat(2)), cat(1))


@pytest.mark.parametrize("edges, match", [
    ([[0, 0], [1, 5]], r"edges\[1, 1\] = 5 is out of range for child 1"),
    ([[0, -1]], r"edges\[0, 1\] = -1 is out of range"),
    ([[0, 0, 0]], r"edges must have shape \[num_nodes, 2\]"),
    ([0, 0], r"edges must have shape"),
    ([[0.0, 1.0]], "expected an integer array"),
    (np.zeros((0, 2), dtype=np.int64), "num_nodes >= 1"),
])
def test_product_edges_validation(edges, match):
    with pytest.raises(pcc.Error, match=match):
        pcc.multiply(cat(0, n=2), bern(1, n=2), edges=edges)


def test_product_elementwise_needs_equal_sizes():
    with pytest.raises(pcc.Error, match="equal size"):
        pcc.multiply(cat(0, n=2), bern(1, n=3))


def test_children_must_be_node_vectors():
    with pytest.raises(pcc.Error, match="separate arguments"):
        pcc.multiply([cat(0), cat(1)])
    with pytest.raises(pcc.Error, match="needs at least one child"):
        pcc.summate(num_nodes=1)


def test_sum_must_be_smooth():
    with pytest.raises(pcc.Error, match="smoothness"):
        pcc.summate(cat(0), cat(1), num_nodes=1)


@pytest.mark.parametrize("kw, match", [
    (dict(num_nodes=2, edges=[[0, 1, 2], [0, 1, 1]]), r"edges\[0, 2\] = 2 is not a valid sum node"),
    (dict(num_nodes=2, edges=[[0, 1], [0, 4]]), r"edges\[1, 1\] = 4 is not a valid child node"),
    (dict(num_nodes=2, edges=[[0, 1, 0], [0, 1, 0]]), r"repeat the pair \(node 0, child node 0\)"),
    (dict(num_nodes=2, edges=[[0, 1]]), r"edges must have shape \[2, E\]"),
    (dict(num_nodes=2, edges=[[0.0, 1.0], [0.0, 1.0]]), "expected an integer array"),
    (dict(num_nodes=2, edges=[[0, 0], [0, 1]]), "sum node 1 has no edge"),
    (dict(num_nodes=2, edges=np.zeros((2, 0), np.int64)), "sum node 0 has no edge"),
    (dict(num_nodes=2, edges=[[0, 1], [0, 1]], params=[1, 2, 3]), r"params: expected shape \[2\]"),
    (dict(num_nodes=2, edges=[[0, 1], [0, 1]], params=[1, 0]), "sum node 1 are all zero"),
    (dict(num_nodes=2, params=np.ones((2, 3))), r"params: expected shape \[2, 4\]"),
    (dict(num_nodes=2, params=[[1, 1, 1, 1], [0, 0, 0, 0]]), "sum node 1 are all zero"),
    (dict(num_nodes=2, params=[[1, 1, 1, -1], [1, 1, 1, 1]]), "negative"),
    (dict(num_nodes=2, params=[[1, 1, 1, np.nan], [1, 1, 1, 1]]), "NaN"),
    (dict(num_nodes=2, params=[[1, 1, 1, np.inf], [1, 1, 1, 1]]), "infinite"),
    (dict(num_nodes=0), "num_nodes: must be >= 1"),
    (dict(num_nodes=2, block_size=3, edges=[[0], [0]]), "power of two"),
    (dict(num_nodes=3, block_size=2, edges=[[0], [0]]), "num_nodes=3 is not a multiple"),
    (dict(num_nodes=4, block_size=4, edges=[[0], [0]]), "child 0 has 2 nodes, not a multiple"),
    (dict(num_nodes=4, block_size=2, edges=[[0, 1], [0, 2]]), "not a valid child block"),
    (dict(num_nodes=4, block_size=2, edges=[[0, 1], [0, 1]], params=np.ones((2, 2))),
     r"params: expected shape \[2, 2, 2\]"),
    (dict(num_nodes=4, block_size=2, edges=[[0], [0]]), "sum node 2 has no edge"),
])
def test_sum_validation(kw, match):
    with pytest.raises(pcc.Error, match=match):
        pcc.summate(cat(0, n=2), cat(0, n=2), **kw)


def test_block_zero_row_across_blocks():
    # sum node 1 (row 1 of sum block 0) is zero in one block but not the other: valid
    p = np.ones((2, 2, 2))
    p[0, 1] = 0
    s = pcc.summate(cat(0, n=2), cat(0, n=2), num_nodes=2, block_size=2,
                    edges=[[0, 0], [0, 1]], params=p)
    np.testing.assert_allclose(s.params[:, 1].sum(), 1, rtol=1e-6)
    np.testing.assert_allclose(s.params[1, 1], 0.5)
    p[1, 1] = 0
    with pytest.raises(pcc.Error, match="sum node 1 are all zero"):
        pcc.summate(cat(0, n=2), cat(0, n=2), num_nodes=2, block_size=2,
                    edges=[[0, 0], [0, 1]], params=p)


# ---------------------------------------------------------------------------------------------------
# duplicate and tying


def test_input_duplicate_ties_or_copies():
    a = cat(0, n=3)
    t = a.duplicate(4)
    assert t.var == 4 and t.scope == (4,) and t.num_nodes == 3 and t.dist is a.dist
    assert t.param_group is a.param_group
    u = a.duplicate(5, tie_params=False)
    assert u.param_group is not a.param_group
    np.testing.assert_array_equal(u.params, a.params)


def test_sum_duplicate_ties_or_copies():
    s = pcc.summate(cat(0, n=2), bern(0, n=4), num_nodes=2, edges=[[0, 1, 1], [0, 5, 2]])
    d = s.duplicate(cat(3, n=2), bern(3, n=4))
    assert d.scope == (3,) and d.form == "sparse" and d.param_group is s.param_group
    np.testing.assert_array_equal(d.edges, s.edges)
    e = s.duplicate(cat(3, n=2), bern(3, n=4), tie_params=False)
    assert e.param_group is not s.param_group
    np.testing.assert_array_equal(e.params, s.params)


def test_sum_duplicate_validation():
    s = pcc.summate(cat(0, n=2), bern(0, n=4), num_nodes=2)
    with pytest.raises(pcc.Error, match="has 2 children, got 1"):
        s.duplicate(cat(1, n=2))
    with pytest.raises(pcc.Error, match="child 1 has 2 nodes, the original child has 4"):
        s.duplicate(cat(1, n=2), bern(1, n=2))
    with pytest.raises(pcc.Error, match="smoothness"):
        s.duplicate(cat(1, n=2), bern(2, n=4))


# ---------------------------------------------------------------------------------------------------
# Reproducibility and immutability


def build_random():
    a = pcc.inputs(0, 4, dists.Categorical(3))
    b = pcc.inputs(1, 4, dists.Bernoulli())
    g = pcc.inputs(2, 4, dists.Gaussian())
    p = pcc.multiply(a, b, g)
    return [a, b, g, pcc.summate(p, num_nodes=2), pcc.summate(p, num_nodes=2, edges=[[0, 1, 1], [0, 3, 2]]),
            pcc.summate(p, num_nodes=4, edges=[[0, 1], [1, 0]], block_size=2)]


def test_reproducible_under_manual_seed():
    torch.manual_seed(42)
    first = build_random()
    torch.manual_seed(42)
    second = build_random()
    third = build_random()
    for u, v, w in zip(first, second, third):
        np.testing.assert_array_equal(u.params, v.params)
        assert not np.array_equal(u.params, w.params)


def test_vectors_are_immutable():
    s = pcc.summate(cat(0), num_nodes=1)
    with pytest.raises(AttributeError):
        s.num_nodes = 3
    with pytest.raises(AttributeError):
        s.children = ()
    with pytest.raises(ValueError):
        s.params[0, 0] = 1.0
    edges = np.array([[0, 1], [0, 1]])
    t = pcc.summate(cat(0), num_nodes=2, edges=edges)
    edges[0, 0] = 1  # the user's array stays writable and the vector keeps its own copy
    assert t.edges[0, 0] == 0 and not t.edges.flags.writeable


# ---------------------------------------------------------------------------------------------------
# Large layers: structures build these from vectorized calls (timed in benchmarks, not here)


def test_large_layers_build():
    leaves = [pcc.inputs(v, 256, dists.Categorical(2)) for v in range(200)]
    for leaf in leaves:  # 200 dense 256 x 256 sums: 13M weights
        pcc.summate(leaf, num_nodes=256)
    rng = np.random.default_rng(0)
    child = pcc.inputs(0, 1 << 14, dists.Bernoulli())
    pairs = rng.choice((1 << 12) ** 2, 100_000, replace=False)  # 100k blocks of 4 x 4
    block = pcc.summate(child, num_nodes=1 << 14, edges=np.stack([pairs >> 12, pairs & 4095]),
                        block_size=4)
    assert block.params.shape == (100_000, 4, 4)


# ---------------------------------------------------------------------------------------------------
# IR round trip (needs the extension)


def assert_same_circuit(a, b):
    oa, ob = topological_order(a), topological_order(b)
    assert len(oa) == len(ob)
    groups = {}
    for u, v in zip(oa, ob):
        assert type(u) is type(v) and u.num_nodes == v.num_nodes and u.scope == v.scope
        assert [oa.index(c) for c in u.children] == [ob.index(c) for c in v.children]
        if isinstance(u, pcc.ProductVector):
            assert (u.edges is None) == (v.edges is None)
            if u.edges is not None:
                np.testing.assert_array_equal(u.edges, v.edges)
        else:
            # bit-exact parameters, and the same tie structure
            assert u.params.dtype == v.params.dtype and u.params.shape == v.params.shape
            assert u.params.tobytes() == v.params.tobytes()
            assert groups.setdefault(id(u.param_group), v.param_group) is v.param_group
        if isinstance(u, pcc.InputVector):
            assert (u.var, u.dist.name, u.dist.num_cats) == (v.var, v.dist.name, v.dist.num_cats)
        if isinstance(u, pcc.SumVector):
            assert (u.form, u.block_size) == (v.form, v.block_size)
            if u.edges is not None:
                np.testing.assert_array_equal(u.edges, v.edges)
    assert len({id(g) for g in groups.values()}) == len(groups)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(random_circuits(max_vars=6))
def test_ir_round_trip_is_exact(root):
    pytest.importorskip("pcc._C")
    from pcc.serialize import from_ir, to_ir
    assert_same_circuit(root, from_ir(to_ir(root)))


def test_save_load_file(tmp_path):
    pytest.importorskip("pcc._C")
    a, b = cat(0, n=4), bern(1, n=4)
    p1 = pcc.multiply(a, b)
    p2 = pcc.multiply(a.duplicate(0), b.duplicate(1, tie_params=False))
    s = pcc.summate(p1, p2, num_nodes=2)
    s = pcc.summate(s, s.duplicate(p2, p1), num_nodes=1)
    path = tmp_path / "c.pcir"
    pcc.save(s, path)
    assert_same_circuit(s, pcc.load(str(path)))


def test_save_accepts_objects_with_to_circuit(tmp_path):
    pytest.importorskip("pcc._C")
    from pcc.serialize import to_ir
    s = pcc.summate(cat(0), num_nodes=1)

    class Wrapper:  # like a TensorCircuit: to_circuit() gives a front-end root
        def to_circuit(self):
            return s

    pcc.save(Wrapper(), tmp_path / "w.pcir")
    assert_same_circuit(s, pcc.load(tmp_path / "w.pcir"))


def test_load_missing_file_raises(tmp_path):
    pytest.importorskip("pcc._C")
    with pytest.raises(pcc.Error):
        pcc.load(tmp_path / "nope.pcir")
