"""pcc.reference against brute force: enumeration of all assignments, hand-computed mixtures,
numeric integration of Gaussians; plus the random-circuit strategy of circuits.py checked with it."""
import itertools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pcc
from pcc import dists
from pcc.reference import log_likelihood

from circuits import random_circuits, random_inputs, variable_kinds

trapezoid = getattr(np, "trapezoid", None) or np.trapz  # renamed in NumPy 2

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


def all_assignments(root):
    """Every assignment of the discrete variables of root, as a float [S, num_vars] array
    (Gaussian and unused variables held at 0)."""
    sizes = {"bernoulli": lambda k: 2, "categorical": lambda k: k, "gaussian": lambda k: 1}
    kinds = variable_kinds(root)
    ranges = [range(sizes[kinds[v][0]](kinds[v][1]) if v in kinds else 1)
              for v in range(root.num_vars)]
    return np.array(list(itertools.product(*ranges)), dtype=np.float64)


def logsumexp(a, axis=0):
    m = a.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.exp(a - m).sum(axis=axis))


def as_2d(ll):
    return ll[:, None] if ll.ndim == 1 else ll


# ---------------------------------------------------------------------------------------------------
# Hand-computed circuits


def test_mixture_matches_hand_computation():
    pa = np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])
    pb = np.array([0.9, 0.4])
    a = pcc.inputs(0, 2, dists.Categorical(3, probs=pa))
    b = pcc.inputs(1, 2, dists.Bernoulli(pb))
    s = pcc.summate(pcc.multiply(a, b), num_nodes=1, params=[[0.25, 0.75]])
    x = all_assignments(s)
    expect = [0.25 * pa[0, int(i)] * (pb[0] if j else 1 - pb[0])
              + 0.75 * pa[1, int(i)] * (pb[1] if j else 1 - pb[1]) for i, j in x]
    # float32 storage of the parameters bounds the agreement
    np.testing.assert_allclose(np.exp(log_likelihood(s, x)), expect, rtol=1e-6)
    assert abs(np.exp(log_likelihood(s, x)).sum() - 1) < 1e-6


def test_gaussian_log_density():
    g = pcc.inputs(0, 2, dists.Gaussian(mean=[0.0, 1.0], std=[1.0, 2.0]))
    x = np.array([[0.5], [-1.0]])
    ll = log_likelihood(g, x)
    z = (x - np.array([0.0, 1.0])) / np.array([1.0, 2.0])
    expect = -0.5 * z**2 - np.log([1.0, 2.0]) - 0.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(ll, expect, rtol=1e-12)


def dense_equivalent(children, s):
    """A dense sum over `children` with the same weights as the sparse/block sum s."""
    w = np.zeros((s.num_nodes, s.num_child_nodes))
    if s.form == "sparse":
        w[s.edges[0], s.edges[1]] = s.params
    else:
        b = s.block_size
        for e, (i, j) in enumerate(s.edges.T):
            w[i * b:(i + 1) * b, j * b:(j + 1) * b] = s.params[e]
    return pcc.summate(*children, num_nodes=s.num_nodes, params=w)


@pytest.mark.parametrize("block_size", [None, 1, 2, 4])
def test_sparse_and_block_sums_match_dense(block_size):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    kids = [pcc.inputs(0, 4, dists.Categorical(3)), pcc.inputs(0, 8, dists.Bernoulli())]
    b = block_size or 1
    rows, cols = 8 // b, 12 // b
    mask = rng.random((rows, cols)) < 0.5
    mask[:, 0] = True
    s = pcc.summate(*kids, num_nodes=8, edges=np.stack(np.nonzero(mask)), block_size=block_size)
    x = np.array([[0], [1]])
    np.testing.assert_allclose(log_likelihood(s, x), log_likelihood(dense_equivalent(kids, s), x),
                               rtol=1e-6)


def test_product_edges_match_elementwise():
    a = pcc.inputs(0, 3, dists.Categorical(2))
    b = pcc.inputs(1, 2, dists.Bernoulli())
    p = pcc.multiply(a, b, edges=[[0, 1], [2, 0], [2, 1]])
    x = all_assignments(p)
    la, lb = log_likelihood(a, x), log_likelihood(b, x)
    expect = np.stack([la[:, 0] + lb[:, 1], la[:, 2] + lb[:, 0], la[:, 2] + lb[:, 1]], axis=1)
    np.testing.assert_allclose(log_likelihood(p, x), expect, rtol=1e-12)


def test_stable_for_tiny_probabilities():
    # 400 Bernoullis of p=1e-3 each: p(x) ~ 1e-1200, far below float64's range.
    leaves = [pcc.inputs(v, 2, dists.Bernoulli(np.full(2, 1e-3))) for v in range(400)]
    s = pcc.summate(pcc.multiply(*leaves), num_nodes=1)
    ll = log_likelihood(s, np.ones((1, 400)))
    np.testing.assert_allclose(ll, 400 * np.log(np.float64(np.float32(1e-3))), rtol=1e-9)


def test_gaussian_marginal_integrates_numerically():
    torch.manual_seed(1)
    g = pcc.inputs(0, 3, dists.Gaussian())
    c = pcc.inputs(1, 3, dists.Bernoulli())
    s = pcc.summate(pcc.multiply(g, c), num_nodes=1)
    grid = np.linspace(-15, 15, 30001)
    for value in (0, 1):
        x = np.stack([grid, np.full_like(grid, value)], axis=1)
        integral = trapezoid(np.exp(log_likelihood(s, x)), grid)
        marginal = log_likelihood(s, np.array([[np.nan, value]]),
                                  missing=np.array([[True, False]]))
        np.testing.assert_allclose(integral, np.exp(marginal[0]), rtol=1e-6)


# ---------------------------------------------------------------------------------------------------
# Data handling


def test_missing_entries_are_not_read_and_give_log_one():
    a = pcc.inputs(0, 2, dists.Categorical(3))
    g = pcc.inputs(1, 2, dists.Gaussian())
    s = pcc.summate(pcc.multiply(a, g), num_nodes=2)
    x = np.array([[7.5, np.nan], [1, 0.3]])  # junk only where missing
    missing = np.array([[True, True], [False, False]])
    ll = log_likelihood(s, x, missing)
    np.testing.assert_allclose(ll[0], 0.0, atol=1e-6)  # full marginal of normalized sums: log 1
    assert np.isfinite(ll[1]).all()
    ll_torch = log_likelihood(s, torch.tensor(x, dtype=torch.float32), torch.tensor(missing))
    np.testing.assert_allclose(ll_torch, ll, rtol=1e-6)


def test_returns_batch_shape_and_float64():
    s = pcc.summate(pcc.inputs(0, 2, dists.Bernoulli()), num_nodes=1)
    out = log_likelihood(s, torch.tensor([[0], [1], [1]]))
    assert out.shape == (3,) and out.dtype == np.float64
    r = pcc.summate(pcc.inputs(0, 2, dists.Bernoulli()), num_nodes=3)
    assert log_likelihood(r, np.array([[0], [1]])).shape == (2, 3)


@pytest.mark.parametrize("x, missing, match", [
    ([[0.5, 0.0]], None, "variable 0"),                       # non-integer discrete value
    ([[3, 0.0]], None, "values 0..2"),                        # out of range
    ([[-1, 0.0]], None, "values 0..2"),
    ([[0, np.nan]], None, "NaN"),                             # NaN observed (Gaussian)
    ([[np.nan, 0.0]], None, "NaN"),                           # NaN observed (categorical)
    ([[0]], None, "x: expected shape"),                       # too few columns
    ([0, 0.0], None, "x: expected shape"),                    # 1-D
    ([[0, 0.0]], [[True]], "missing: expected the shape"),
    ([[0, 0.0]], [[0.5, 0.0]], "missing: expected a bool"),
])
def test_bad_data_raises(x, missing, match):
    a = pcc.inputs(0, 1, dists.Categorical(3))
    g = pcc.inputs(1, 1, dists.Gaussian())
    p = pcc.multiply(a, g)
    with pytest.raises(pcc.Error, match=match):
        log_likelihood(p, np.array(x), None if missing is None else np.array(missing))


def test_bernoulli_rejects_two():
    b = pcc.inputs(0, 1, dists.Bernoulli())
    with pytest.raises(pcc.Error, match="bernoulli with values 0..1"):
        log_likelihood(b, torch.tensor([[2]]))


# ---------------------------------------------------------------------------------------------------
# Properties over random circuits (also the test of the strategy in circuits.py)


@SETTINGS
@given(random_circuits(discrete_only=True, max_vars=4))
def test_discrete_circuits_sum_to_one(root):
    x = all_assignments(root)
    total = logsumexp(as_2d(log_likelihood(root, x)), axis=0)
    np.testing.assert_allclose(total, 0.0, atol=1e-5)


@SETTINGS
@given(random_circuits(max_vars=4))
def test_circuits_with_gaussians_marginalize_to_one(root):
    # With every Gaussian variable missing, the discrete ones must still sum to 1.
    kinds = variable_kinds(root)
    x = all_assignments(root)
    missing = np.zeros(x.shape, dtype=bool)
    for v, (name, _) in kinds.items():
        missing[:, v] = name == "gaussian"
    total = logsumexp(as_2d(log_likelihood(root, x, missing)), axis=0)
    np.testing.assert_allclose(total, 0.0, atol=1e-5)


@SETTINGS
@given(random_circuits(discrete_only=True, max_vars=4), st.data())
def test_marginal_equals_sum_over_missing_variable(root, data):
    var = data.draw(st.integers(0, root.num_vars - 1))
    x = all_assignments(root)
    missing = np.zeros(x.shape, dtype=bool)
    missing[:, var] = True
    marg = as_2d(log_likelihood(root, x, missing))
    full = as_2d(log_likelihood(root, x))
    # group assignments that agree outside `var`, sum over var
    others = np.delete(x, var, axis=1)
    keys, inverse = np.unique(others, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    for k in range(len(keys)):
        rows = np.flatnonzero(inverse == k)
        np.testing.assert_allclose(marg[rows], np.broadcast_to(
            logsumexp(full[rows], axis=0), marg[rows].shape), atol=1e-6, rtol=1e-6)


@SETTINGS
@given(st.data())
def test_random_inputs_give_finite_values(data):
    root = data.draw(random_circuits(max_vars=8))
    x, missing = data.draw(random_inputs(root))
    ll = log_likelihood(root, x, missing)
    assert ll.shape == ((x.shape[0],) if root.num_nodes == 1 else (x.shape[0], root.num_nodes))
    assert np.isfinite(ll).all()
    if missing is not None and bool(missing.all()):
        np.testing.assert_allclose(ll, 0.0, atol=1e-5)


@SETTINGS
@given(random_circuits(max_vars=6))
def test_strategy_circuits_are_valid_and_small(root):
    from pcc.nodes import topological_order
    order = topological_order(root)
    assert len(order) <= 80
    assert root.scope == tuple(range(root.num_vars))
    for v in order:  # the invariants the constructors promise
        if isinstance(v, pcc.SumVector):
            assert all(c.scope == v.scope for c in v.children)
        if isinstance(v, pcc.ProductVector):
            assert sum(len(c.scope) for c in v.children) == len(v.scope)
