"""pcc.from_pyjuice: PyJuice circuits (its structures and hand-built ones) converted to pcc give the same
log-likelihoods (pcc's CPU backend vs a float64 evaluation of PyJuice's node graph written here from its
edges and parameters, independent of pcc.reference) and the same node and edge counts.

PyJuice is optional: without it every test here is skipped. PyJuice compiles and runs only on CUDA
(Triton), so the graph is evaluated here instead of by PyJuice itself; the GPU comparison against
PyJuice's own kernels is benchmarks/vs_pyjuice.py.
"""
import math

import numpy as np
import pytest
import torch

import pcc

juice = pytest.importorskip("pyjuice")
from pyjuice.nodes import InputNodes, ProdNodes, SumNodes  # noqa: E402
from pyjuice.nodes.distributions import Bernoulli, Categorical, Gaussian  # noqa: E402


# ---- a float64 evaluator of a PyJuice node graph ---------------------------------------------------

def _postorder(root):
    order, seen, stack = [], {id(root)}, [(root, 0)]
    while stack:
        n, i = stack[-1]
        if i < len(n.chs):
            stack[-1] = (n, i + 1)
            if id(n.chs[i]) not in seen:
                seen.add(id(n.chs[i]))
                stack.append((n.chs[i], 0))
        else:
            stack.pop()
            order.append(n)
    return order


def _params(n):
    return n.get_source_ns()._params.detach().double().numpy()


def pj_log_likelihood(root, x):
    """log p(x) [B, root.num_nodes] of PyJuice circuit `root`, float64, straight from its graph."""
    x = np.asarray(x)
    val = {}
    for n in _postorder(root):
        if isinstance(n, InputNodes):
            (v,) = list(n.scope)
            col, p = x[:, v], _params(n)
            if isinstance(n.dist, Categorical):
                out = np.log(p.reshape(n.num_nodes, -1))[:, col.astype(int)].T
            elif isinstance(n.dist, Bernoulli):
                out = np.where(col[:, None] > 0, np.log(p)[None], np.log1p(-p)[None])
            elif isinstance(n.dist, Gaussian):
                mu, sd = p.reshape(-1, 2).T
                z = (col[:, None] - mu[None]) / sd[None]
                out = -0.5 * z * z - np.log(sd)[None] - 0.5 * math.log(2 * math.pi)
            else:
                raise AssertionError(type(n.dist))
        elif isinstance(n, ProdNodes):
            e = n.edge_ids.numpy()
            if e.shape[0] == n.num_node_blocks:  # block-level edges
                B = n.block_size
                e = (e[:, None, :] * B + np.arange(B)[None, :, None]).reshape(n.num_nodes, -1)
            out = sum(val[id(c)][:, e[:, j]] for j, c in enumerate(n.chs))
        else:
            assert isinstance(n, SumNodes)
            ch = np.concatenate([val[id(c)] for c in n.chs], axis=1)
            m = ch.max(axis=1, keepdims=True)
            ech = np.exp(ch - m)
            Bs, Bc = n.block_size, n.ch_block_size
            w = _params(n).reshape(-1, Bs, Bc)
            e = n.get_source_ns().edge_ids.numpy()
            acc = np.zeros((x.shape[0], n.num_nodes))
            for k in range(e.shape[1]):
                s, c = e[0, k], e[1, k]
                acc[:, s * Bs:(s + 1) * Bs] += ech[:, c * Bc:(c + 1) * Bc] @ w[k].T
            with np.errstate(divide="ignore"):
                out = np.log(acc) + m
        val[id(n)] = out
    return val[id(root)]


def pj_counts(root):
    nodes = _postorder(root)
    return {"input_nodes": sum(n.num_nodes for n in nodes if isinstance(n, InputNodes)),
            "sum_nodes": sum(n.num_nodes for n in nodes if isinstance(n, SumNodes)),
            "sum_edges": sum(n.num_edges for n in nodes if isinstance(n, SumNodes))}


def check(ns, x, counts=True):
    root = pcc.from_pyjuice(ns)
    model = pcc.compile(root)
    ll = model(torch.as_tensor(x)).detach().double().numpy()
    ref = pj_log_likelihood(ns, x)
    ref = ref[:, 0] if ref.shape[1] == 1 else ref
    assert np.all(np.isfinite(ref))
    tol = 1e-4 * np.maximum(1.0, np.abs(ref))
    assert np.all(np.abs(ll - ref) <= tol), np.abs(ll - ref).max()
    if counts:
        s = model.stats()
        assert {k: s[k] for k in ("input_nodes", "sum_nodes", "sum_edges")} == pj_counts(ns)
    return root, model


def insert_passthrough(ns):
    """What pyjuice.compile does to the graph before it needs a GPU: pass-through sums (identity
    weights) between children and parents more than one layer apart."""
    stub = type("Stub", (), {})()
    stub.root_ns = ns
    juice.TensorCircuit._create_node_layers(stub)


# ---- the structures ----------------------------------------------------------------------------------

def test_hclt():
    torch.manual_seed(0)
    data = torch.randint(0, 5, (256, 7))
    ns = juice.structures.HCLT(data, num_latents=8, input_dist=Categorical(num_cats=5))
    ns.init_parameters()
    check(ns, data[:32].numpy())


def test_pd():
    torch.manual_seed(1)
    ns = juice.structures.PD(data_shape=(4, 4), num_latents=8, split_intervals=(2, 2),
                             input_dist=Categorical(num_cats=6))
    ns.init_parameters()
    check(ns, np.random.default_rng(0).integers(0, 6, (32, 16)))


def test_pd_tied():
    torch.manual_seed(2)
    ns = juice.structures.PD(data_shape=(4, 4), num_latents=4, split_intervals=(2, 2),
                             input_dist=Categorical(num_cats=3), tie_homogeneous_params=True)
    ns.init_parameters()
    assert any(n.is_tied() for n in _postorder(ns))
    check(ns, np.random.default_rng(1).integers(0, 3, (32, 16)))


def test_rat_spn():
    torch.manual_seed(3)
    ns = juice.structures.RAT_SPN(num_vars=12, num_latents=8, depth=2, num_repetitions=3, num_pieces=2,
                                  input_dist=Categorical(num_cats=4))
    ns.init_parameters()
    check(ns, np.random.default_rng(2).integers(0, 4, (32, 12)))


@pytest.mark.parametrize("homogeneous", [True, False])
def test_hmm(homogeneous):
    torch.manual_seed(4)
    ns = juice.structures.HMM(seq_length=6, num_latents=16, num_emits=9, homogeneous=homogeneous)
    ns.init_parameters()
    root, model = check(ns, np.random.default_rng(3).integers(0, 9, (32, 6)))
    if homogeneous:  # one transition matrix and one emission table, tied across time
        groups = {id(v.param_group) for v in pcc.nodes.topological_order(root)
                  if getattr(v, "param_group", None) is not None}
        assert len(groups) == 3  # emissions, transitions, initial distribution


def test_after_compile_passthrough():
    torch.manual_seed(5)
    with juice.set_block_size(2):
        i0, i1, i2 = (juice.inputs(v, num_node_blocks=2, dist=Categorical(num_cats=4)) for v in range(3))
        s01 = juice.summate(juice.multiply(i0, i1), num_node_blocks=2)
        deep = juice.multiply(s01, i2)           # depth 2
        shallow = juice.multiply(i0.duplicate(0, tie_params=True), i1, i2)  # depth 1: gets a pass-through
        root = juice.summate(deep, shallow, num_node_blocks=1, block_size=1)
    root.init_parameters()
    x = np.random.default_rng(6).integers(0, 4, (16, 3))
    before, counts = pj_log_likelihood(root, x), pj_counts(root)
    insert_passthrough(root)
    assert pj_counts(root)["sum_nodes"] > counts["sum_nodes"]
    np.testing.assert_allclose(pj_log_likelihood(root, x), before, rtol=1e-12)
    check(root, x)


# ---- hand-built circuits --------------------------------------------------------------------------

def test_hand_built_ties_bernoulli_gaussian_and_block_mismatch():
    torch.manual_seed(6)
    with juice.set_block_size(4):
        b0 = juice.inputs(0, num_node_blocks=2, dist=Bernoulli())
        b1 = b0.duplicate(1, tie_params=True)
        g2 = juice.inputs(2, num_node_blocks=2, dist=Gaussian(mu=0.0, sigma=1.0))
        g3 = juice.inputs(3, num_node_blocks=2, dist=Gaussian(mu=0.5, sigma=2.0))
        # block-level product edges that are not elementwise
        p01 = juice.multiply(b0, b1, edge_ids=torch.tensor([[0, 1], [1, 0], [1, 1]]))
        s01 = juice.summate(p01, num_node_blocks=2)
        p23 = juice.multiply(g2, g3)
        s23 = juice.summate(p23, num_node_blocks=2, edge_ids=torch.tensor([[0, 1, 1], [0, 0, 1]]))
        s23t = s23.duplicate(juice.multiply(g3, g2), tie_params=True)
        top = juice.multiply(s01, s23)
        top2 = juice.multiply(s01, s23t)
    # sum blocks of 2 over child blocks of 4, sparse (split into squares) ...
    mid = juice.summate(top, top2, num_node_blocks=3, block_size=2,
                        edge_ids=torch.tensor([[0, 1, 1, 2], [0, 1, 3, 2]]))
    # ... and sums whose blocks are larger than their children's
    with juice.set_block_size(2):
        mid2 = juice.summate(juice.multiply(mid), num_node_blocks=2, block_size=4,
                             edge_ids=torch.tensor([[0, 0, 1], [0, 2, 1]]))
    root = juice.summate(juice.multiply(mid2), num_node_blocks=1, block_size=1)
    root.init_parameters()
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.integers(0, 2, (32, 2)), rng.normal(0, 1.5, (32, 2))], axis=1)
    pc_root = pcc.from_pyjuice(root)
    check(root, x)
    vecs = pcc.nodes.topological_order(pc_root)
    ins = [v for v in vecs if isinstance(v, pcc.InputVector)]
    assert ins[0].param_group is ins[1].param_group  # b0 / b1 tied
    assert {v.dist.name for v in ins} == {"bernoulli", "gaussian"}


def test_node_level_product_edges_and_return_map():
    torch.manual_seed(7)
    a = juice.inputs(0, num_nodes=6, dist=Categorical(num_cats=3))
    b = juice.inputs(1, num_nodes=4, dist=Categorical(num_cats=3))
    p = juice.multiply(a, b, edge_ids=torch.tensor([[0, 3], [5, 0], [2, 2]]), sparse_edges=True)
    s = juice.summate(p, num_nodes=1)
    s.init_parameters()
    root, m = pcc.from_pyjuice(s, return_map=True)
    assert m[s] is root and m[a].num_nodes == 6
    from pcc.interop.pyjuice import sum_params_as_pcc
    np.testing.assert_allclose(sum_params_as_pcc(s), root.params, rtol=1e-6)
    check(s, np.random.default_rng(5).integers(0, 3, (16, 2)))


def test_errors():
    n = juice.inputs(0, num_nodes=2, dist=Categorical(num_cats=3))
    s = juice.summate(n, num_nodes=1)
    with pytest.raises(pcc.Error, match="init_parameters"):
        pcc.from_pyjuice(s)
    with pytest.raises(pcc.Error, match="CircuitNodes"):
        pcc.from_pyjuice(42)
