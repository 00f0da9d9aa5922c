"""The float64 learning oracle (pcc.reference flows / em_step / log_likelihood_torch) against torch
autograd, brute-force enumeration over missing values, hand computations, and EM's monotonicity."""
import itertools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import pcc
from pcc import dists, reference
from pcc.nodes import InputVector, SumVector, topological_order
from pcc.reference import (GAUSSIAN_MIN_STD, em_from_flows, em_step, flows, log_likelihood,
                           log_likelihood_torch, log_params)
from pcc.reference_em import _torch_values

from circuits import random_circuits, random_inputs, variable_kinds

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))


def param_vectors(root):
    return [v for v in topological_order(root) if isinstance(v, (InputVector, SumVector))]


def sum_owner(v):
    """Sum node of each entry of v's params, flattened in C order (the layout's node index)."""
    if v.form == "dense":
        return np.repeat(np.arange(v.num_nodes), v.params.shape[1])
    if v.form == "sparse":
        return v.edges[0]
    b = v.block_size
    return np.broadcast_to(v.edges[0][:, None, None] * b + np.arange(b)[None, :, None],
                           v.params.shape).ravel()


def rebuild(root, new):
    """root's DAG with parameters `new` ({vector: em_step layout}), ties kept, via the constructors."""
    made, first_of_group = {}, {}
    for v in topological_order(root):
        children = [made[c] for c in v.children]
        tied = first_of_group.get(id(getattr(v, "param_group", None)))
        if isinstance(v, InputVector):
            if tied is not None:
                made[v] = tied.duplicate(v.var, tie_params=True)
            else:
                p, name = new[v], v.dist.name
                dist = (dists.Categorical(v.dist.num_cats, probs=p["probs"]) if name == "categorical"
                        else dists.Bernoulli(np.clip(p["probs"], 0, 1)) if name == "bernoulli"
                        else dists.Gaussian(mean=p["mean"], std=p["std"]))
                made[v] = pcc.inputs(v.var, v.num_nodes, dist)
        elif isinstance(v, SumVector):
            if tied is not None:
                made[v] = tied.duplicate(*children, tie_params=True)
            else:
                made[v] = pcc.summate(*children, num_nodes=v.num_nodes,
                                      edges=None if v.form == "dense" else v.edges, params=new[v],
                                      block_size=v.block_size if v.form == "block" else None)
        else:
            made[v] = pcc.multiply(*children, edges=v.edges)
        if hasattr(v, "param_group"):
            first_of_group.setdefault(id(v.param_group), made[v])
    return made[root]


def total_ll(root, x, missing=None):
    return float(np.sum(log_likelihood(root, x, missing)))


# ---------------------------------------------------------------------------------------------------
# Flows against autograd and their conservation laws


@SETTINGS
@given(st.data())
def test_flows_equal_autograd_of_the_torch_log_likelihood(data):
    root = data.draw(random_circuits())
    x, missing = data.draw(random_inputs(root))
    fl = flows(root, x, missing)
    assume(np.isfinite(fl.log_likelihood).all())
    params = log_params(root)
    values = _torch_values(root, x, missing, params)
    for t in values.values():
        t.retain_grad()
    values[root].sum().backward()

    # The torch forward renormalizes the float32-stored parameters in float64 (NumPy's uses them
    # as stored, rows summing to 1 within ~1e-7), which bounds the agreement.
    tol = dict(rtol=1e-6, atol=1e-6 * x.shape[0])
    np.testing.assert_allclose(values[root].detach().numpy(),
                               log_likelihood(root, x, missing).reshape(values[root].shape), **tol)
    # Node flows are d L / d log v(n).
    for v in topological_order(root):
        np.testing.assert_allclose(fl.node[v], values[v].grad.sum(0).numpy(), **tol)

    # Gradients of the normalized log-parameters follow from the parameter flows (pooled over ties).
    expect = {}
    for v in param_vectors(root):
        fv, p = fl.params[v], v.params.astype(np.float64)
        if isinstance(v, SumVector):
            g = {"log_weights": fv - p * fl.node[v][sum_owner(v)].reshape(p.shape)}
        elif v.dist.name == "gaussian":
            (n, sx, sxx), (mean, std) = fv, p
            g = {"mean": (sx - mean * n) / std**2,
                 "log_std": (sxx - 2 * mean * sx + mean**2 * n) / std**2 - n}
        else:
            probs = p if v.dist.name == "categorical" else np.stack([1 - p, p], 1)
            g = {"log_probs": fv - probs * fl.node[v][:, None]}
        acc = expect.setdefault(id(params[v]), {})  # tied vectors share one dict of tensors
        for k, a in g.items():
            acc[k] = acc.get(k, 0) + a
    for v in param_vectors(root):
        for k, t in params[v].items():
            np.testing.assert_allclose(t.grad.numpy(), expect[id(params[v])][k], **tol)


@SETTINGS
@given(st.data())
def test_parameter_flows_add_up_to_node_flows(data):
    root = data.draw(random_circuits())
    x, missing = data.draw(random_inputs(root))
    fl = flows(root, x, missing)
    assume(np.isfinite(fl.log_likelihood).all())
    for v in param_vectors(root):
        fv = fl.params[v]
        if isinstance(v, SumVector):  # the edge flows of a sum node give its flow to its children
            per_node = np.bincount(sum_owner(v), weights=fv.ravel(), minlength=v.num_nodes)
        elif v.dist.name == "gaussian":
            per_node = fv[0]
        else:
            per_node = fv.sum(1)
        # Not exact: a missing value counts flow * p, and float32 rows of p sum to 1 within ~1e-7.
        np.testing.assert_allclose(per_node, fl.node[v], rtol=1e-6, atol=1e-9)
        assert (fl.node[v] >= 0).all()


@SETTINGS
@given(st.data())
def test_input_flows_of_each_variable_add_up_to_the_batch(data):
    # Every induced tree of a smooth, decomposable circuit holds one input node per variable.
    root = data.draw(random_circuits())
    x, missing = data.draw(random_inputs(root))
    fl = flows(root, x, missing)
    assume(np.isfinite(fl.log_likelihood).all())
    per_var = {}
    for v in topological_order(root):
        if isinstance(v, InputVector):
            per_var[v.var] = per_var.get(v.var, 0.0) + fl.node[v].sum()
    expect = x.shape[0] * root.num_nodes
    for var in root.scope:
        assert abs(per_var[var] - expect) < 1e-9 * expect


@SETTINGS
@given(st.data())
def test_marginalized_e_step_equals_enumeration_over_missing_values(data):
    root = data.draw(random_circuits(discrete_only=True, max_vars=4, max_root_nodes=1))
    kinds = variable_kinds(root)
    x, _ = data.draw(random_inputs(root, max_batch=1, allow_missing=False))
    x = x.double().numpy()
    miss_vars = data.draw(st.lists(st.sampled_from(root.scope), min_size=1, max_size=2, unique=True))
    missing = np.zeros(x.shape, dtype=bool)
    missing[0, miss_vars] = True
    marg = flows(root, x, missing)

    sizes = [2 if kinds[v][0] == "bernoulli" else kinds[v][1] for v in miss_vars]
    completions = np.repeat(x, int(np.prod(sizes)), axis=0)
    completions[:, miss_vars] = np.array(list(itertools.product(*map(range, sizes))))
    # Expected flows of the complete data under the posterior of the missing values.
    posterior = np.exp(log_likelihood(root, completions) - marg.log_likelihood[0])
    # float32 category probabilities sum to 1 within ~1e-7, which bounds the agreement.
    assert abs(posterior.sum() - 1) < 1e-6
    complete = [flows(root, c[None]) for c in completions]
    for v in topological_order(root):
        node = sum(w * fc.node[v] for w, fc in zip(posterior, complete))
        np.testing.assert_allclose(marg.node[v], node, rtol=1e-6, atol=1e-9)
        if v in marg.params:
            par = sum(w * fc.params[v] for w, fc in zip(posterior, complete))
            np.testing.assert_allclose(marg.params[v], par, rtol=1e-6, atol=1e-9)


def test_missing_value_counts_flow_times_own_distribution():
    p = np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])
    c = pcc.inputs(0, 2, dists.Categorical(3, probs=p))
    g = pcc.inputs(1, 2, dists.Gaussian(mean=[1.0, -2.0], std=[0.5, 3.0]))
    b = pcc.inputs(2, 2, dists.Bernoulli([0.25, 0.5]))
    root = pcc.summate(pcc.multiply(c, g, b), num_nodes=1, params=[[0.25, 0.75]])
    x = np.array([[np.nan, np.nan, 1.0]])
    missing = np.array([[True, True, False]])
    fl = flows(root, x, missing)
    post = np.array([0.25 * 0.25, 0.75 * 0.5])
    post /= post.sum()
    np.testing.assert_allclose(fl.node[c], post, rtol=1e-7)
    np.testing.assert_allclose(fl.params[c], post[:, None] * p, rtol=1e-6)
    np.testing.assert_allclose(fl.params[b], np.stack([0 * post, post], 1), rtol=1e-7)
    np.testing.assert_allclose(fl.params[g], [post, post * [1.0, -2.0],
                                              post * np.array([1.0 + 0.25, 4.0 + 9.0])], rtol=1e-6)


def test_flows_of_batches_add():
    torch.manual_seed(0)
    a = pcc.inputs(0, 3, dists.Categorical(4))
    root = pcc.summate(pcc.multiply(a, pcc.inputs(1, 3, dists.Gaussian())), num_nodes=2)
    x = np.array([[0, 0.5], [3, -1.0], [1, 2.0]])
    both = flows(root, x[:2]) + flows(root, x[2:])
    whole = flows(root, x)
    np.testing.assert_allclose(both.log_likelihood, whole.log_likelihood)
    for v in topological_order(root):
        np.testing.assert_allclose(both.node[v], whole.node[v], rtol=1e-12)
        if v in whole.params:
            np.testing.assert_allclose(both.params[v], whole.params[v], rtol=1e-12)


def test_impossible_samples_pass_no_flow():
    a = pcc.inputs(0, 2, dists.Categorical(2, probs=[[1.0, 0.0], [0.5, 0.5]]))
    root = pcc.summate(a, num_nodes=1, params=[[1.0, 0.0]])
    fl = flows(root, np.array([[1], [0]]))
    assert fl.log_likelihood[0] == -np.inf
    np.testing.assert_allclose(fl.node[a], [1.0, 0.0])
    np.testing.assert_allclose(fl.params[root], [[1.0, 0.0]])


# ---------------------------------------------------------------------------------------------------
# EM


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
def test_full_batch_em_never_lowers_the_log_likelihood(data):
    root = data.draw(random_circuits(discrete_only=True))
    x, missing = data.draw(random_inputs(root, max_batch=16))
    ll = total_ll(root, x, missing)
    assume(np.isfinite(ll))
    for _ in range(4):
        root = rebuild(root, em_step(root, x, missing))
        new = total_ll(root, x, missing)
        # Parameters are stored as float32, so allow their rounding.
        assert new >= ll - 1e-6 * (1 + abs(ll)), (ll, new)
        ll = new


@SETTINGS
@given(st.data())
def test_tied_vectors_pool_their_flows_and_get_one_result(data):
    root = data.draw(random_circuits())
    x, missing = data.draw(random_inputs(root))
    fl = flows(root, x, missing)
    assume(np.isfinite(fl.log_likelihood).all())
    new = em_step(root, x, missing)
    groups = {}
    for v in param_vectors(root):
        groups.setdefault(id(v.param_group), []).append(v)
    for vs in groups.values():
        first = new[vs[0]]
        for v in vs[1:]:
            if isinstance(first, dict):
                for k in first:
                    np.testing.assert_array_equal(new[v][k], first[k])
            else:
                np.testing.assert_array_equal(new[v], first)
        if isinstance(vs[0], SumVector):  # step 1, no pseudocount: pooled counts, normalized
            counts = sum(fl.params[v] for v in vs).ravel()
            totals = np.bincount(sum_owner(vs[0]), weights=counts)[sum_owner(vs[0])]
            old = vs[0].params.ravel()  # kept by nodes without flow
            fitted = np.divide(counts, totals, out=old.astype(np.float64), where=totals > 0)
            np.testing.assert_allclose(first.ravel(), fitted, rtol=1e-10)


def test_tied_inputs_pool_counts_by_hand():
    a = pcc.inputs(0, 1, dists.Categorical(3, probs=[[0.2, 0.3, 0.5]]))
    b = a.duplicate(1, tie_params=True)
    root = pcc.multiply(a, b)
    x = np.array([[0, 2], [2, 2], [1, 0]])
    new = em_step(root, x)
    np.testing.assert_allclose(new[a]["probs"], [[2 / 6, 1 / 6, 3 / 6]])
    np.testing.assert_allclose(new[b]["probs"], [[2 / 6, 1 / 6, 3 / 6]])
    untied = pcc.multiply(a, a.duplicate(1, tie_params=False))
    np.testing.assert_allclose(em_step(untied, x)[untied.children[1]]["probs"], [[1 / 3, 0, 2 / 3]])


def test_step_size_and_pseudocount_follow_the_formula():
    torch.manual_seed(1)
    c = pcc.inputs(0, 4, dists.Categorical(3))
    bern = pcc.inputs(1, 4, dists.Bernoulli())
    prod = pcc.multiply(c, bern)
    # A sparse sum whose nodes have 1 and 3 edges (different K), and a dense root that gives
    # sparse node 1 no weight, so that node has zero flow.
    sparse = pcc.summate(prod, num_nodes=2, edges=[[0, 1, 1, 1], [2, 0, 1, 3]])
    root = pcc.summate(sparse, num_nodes=1, params=[[1.0, 0.0]])
    x = np.array([[0, 1], [2, 0], [2, 1], [1, 1]])
    fl = flows(root, x)
    assert fl.node[sparse][1] == 0
    s, a = 0.3, 0.5
    new = em_step(root, x, step_size=s, pseudocount=a)

    def formula(theta, counts, k):
        return (1 - s) * theta + s * (counts + a / k) / (counts.sum() + a)

    w, e = sparse.params.astype(np.float64), fl.params[sparse]
    expect = np.empty(4)
    expect[0] = formula(w[:1], e[:1], 1)[0]
    expect[1:] = formula(w[1:], e[1:], 3)
    np.testing.assert_allclose(new[sparse], expect, rtol=1e-12)
    np.testing.assert_allclose(new[root], formula(root.params[0].astype(np.float64),
                                                  fl.params[root][0], 2)[None], rtol=1e-12)
    for i in range(4):
        np.testing.assert_allclose(new[c]["probs"][i], formula(
            c.params[i].astype(np.float64), fl.params[c][i], 3), rtol=1e-12)
        p = float(bern.params[i])
        np.testing.assert_allclose(new[bern]["probs"][i], formula(
            np.array([1 - p, p]), fl.params[bern][i], 2)[1], rtol=1e-12)

    # Without a pseudocount a zero-flow node keeps its weights, whatever the step.
    keep = em_step(root, x, step_size=0.7)
    np.testing.assert_allclose(keep[sparse][1:], w[1:], rtol=1e-12)
    np.testing.assert_allclose(keep[sparse][0], 1.0)  # a single edge stays 1


def test_gaussian_update_matches_hand_computation():
    mean, std = np.array([0.0, 3.0]), np.array([1.0, 2.0])
    g = pcc.inputs(0, 2, dists.Gaussian(mean=mean, std=std))
    root = pcc.summate(g, num_nodes=1, params=[[0.4, 0.6]])
    x = np.array([[-0.5], [1.0], [4.0], [np.nan]])
    missing = np.isnan(x)
    dens = np.exp(-0.5 * ((x[:3] - mean) / std) ** 2) / std * np.array([0.4, 0.6])
    resp = dens / dens.sum(1, keepdims=True)                  # [3, 2] observed samples
    resp = np.vstack([resp, [[0.4, 0.6]]])                     # the missing one: the prior
    n = resp.sum(0)
    sx = resp[:3].T @ x[:3, 0] + resp[3] * mean
    sxx = resp[:3].T @ x[:3, 0] ** 2 + resp[3] * (mean**2 + std**2)
    m_hat, v_hat = sx / n, sxx / n - (sx / n) ** 2

    new = em_step(root, x, missing)
    np.testing.assert_allclose(new[g]["mean"], m_hat, rtol=1e-6)
    np.testing.assert_allclose(new[g]["std"], np.sqrt(v_hat), rtol=1e-6)
    np.testing.assert_allclose(new[root], n[None] / 4, rtol=1e-6)

    s = 0.25
    new = em_step(root, x, missing, step_size=s, pseudocount=3.0)  # no pseudocount for Gaussians
    mean2 = (1 - s) * mean + s * m_hat
    second = (1 - s) * (std**2 + mean**2) + s * (v_hat + m_hat**2)  # mixed second moments
    np.testing.assert_allclose(new[g]["mean"], mean2, rtol=1e-6)
    np.testing.assert_allclose(new[g]["std"], np.sqrt(second - mean2**2), rtol=1e-6)


def test_gaussian_std_floor_and_zero_flow():
    g = pcc.inputs(0, 2, dists.Gaussian(mean=[0.0, 1.0], std=[1.0, 1.0]))
    root = pcc.summate(g, num_nodes=1, params=[[1.0, 0.0]])
    new = em_step(root, np.array([[2.5], [2.5]]))
    np.testing.assert_allclose(new[g]["mean"], [2.5, 1.0])
    np.testing.assert_allclose(new[g]["std"], [GAUSSIAN_MIN_STD, 1.0])  # node 1 has no flow


def test_em_arguments_and_foreign_flows_are_checked():
    a = pcc.inputs(0, 2, dists.Bernoulli())
    root = pcc.summate(a, num_nodes=1)
    x = np.array([[0], [1]])
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(pcc.Error, match="step_size"):
            em_step(root, x, step_size=bad)
    for bad in (-1.0, float("inf")):
        with pytest.raises(pcc.Error, match="pseudocount"):
            em_step(root, x, pseudocount=bad)
    other = pcc.summate(pcc.inputs(0, 2, dists.Bernoulli()), num_nodes=1)
    with pytest.raises(pcc.Error, match="another circuit"):
        em_from_flows(root, flows(other, x))
    with pytest.raises(pcc.Error, match="params hold nothing"):
        log_likelihood_torch(root, x, params={})
    with pytest.raises(pcc.Error, match="shape"):
        log_likelihood_torch(root, x, params={a: {"log_probs": torch.zeros(3, 2)},
                                              root: {"log_weights": torch.zeros(1, 2)}})


def test_deep_circuit_flows_and_em_stay_finite():
    # 200 layers over 100 variables of 256 categories: p(x) ~ exp(-600) and below, where raw
    # probabilities would underflow float64 on the way down.
    torch.manual_seed(2)
    num_vars, k = 100, 4
    node = pcc.inputs(0, k, dists.Categorical(256))
    for var in range(1, num_vars):
        node = pcc.summate(pcc.multiply(node, pcc.inputs(var, k, dists.Categorical(256))),
                           num_nodes=k if var < num_vars - 1 else 1)
    x = np.random.default_rng(0).integers(0, 256, (8, num_vars))
    ll = total_ll(node, x)
    assert ll / 8 < -500
    fl = flows(node, x)
    for f in fl.node.values():
        assert np.isfinite(f).all()
    per_var = {}
    for v in topological_order(node):
        if isinstance(v, InputVector):
            per_var[v.var] = fl.node[v].sum()
    np.testing.assert_allclose(list(per_var.values()), 8.0, rtol=1e-9)
    new_root = rebuild(node, em_step(node, x, pseudocount=0.1))
    assert total_ll(new_root, x) > ll


def test_log_params_share_tensors_between_tied_vectors():
    a = pcc.inputs(0, 2, dists.Bernoulli([0.25, 0.0]))
    b = a.duplicate(1, tie_params=True)
    c = a.duplicate(2, tie_params=False)
    p = log_params(pcc.multiply(a, b, c))
    assert p[a] is p[b] and p[a] is not p[c]
    np.testing.assert_allclose(p[a]["log_probs"].detach().numpy(),
                               np.log([[0.75, 0.25], [1.0, 0.0]]))
    assert all(t.requires_grad and t.dtype == torch.float64 for t in p[a].values())
    assert reference.log_params is log_params
