"""benchmarks/vs_pyjuice.py's EM-agreement report, on the CPU and without PyJuice: the float64 oracle's
EM step mapped to `pcc_params`' layout (pcc's own step agrees with it), the worst-element search, and the
node / child / category `describe_elem` names for an element (it must point at the right edge, since the
report is there to locate a conversion-mapping bug)."""
import importlib.util
import pathlib
import re
import types

import numpy as np
import torch

import pcc
from pcc import dists
from pcc.nodes import SumVector
from pcc.reference import _layout_edges

_PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "vs_pyjuice.py"
_spec = importlib.util.spec_from_file_location("vs_pyjuice", _PATH)
vp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vp)

ARGS = types.SimpleNamespace(step_size=0.3, pseudocount=0.1)


def _circuit():
    """Block, sparse and dense sums; Categorical, Bernoulli, Gaussian inputs; a tied input."""
    torch.manual_seed(0)
    a = pcc.inputs(0, 4, dists.Categorical(3))
    b = pcc.inputs(1, 4, dists.Bernoulli())
    c = pcc.inputs(2, 4, dists.Gaussian())
    a2 = a.duplicate(3, tie_params=True)
    s1 = pcc.summate(pcc.multiply(a, b), num_nodes=4, edges=[[0, 0, 1], [0, 1, 1]], block_size=2)
    s2 = pcc.summate(pcc.multiply(c, a2), num_nodes=4, edges=[[0, 1, 2, 3, 3], [1, 0, 2, 3, 0]])
    p3 = pcc.multiply(s1, s2)
    p4 = pcc.multiply(s1, s2, edges=[[0, 1], [1, 0], [2, 3], [3, 2], [1, 1]])
    return pcc.summate(p3, p4, num_nodes=1)


def _data(rows=16):
    g = np.random.default_rng(0)
    x = np.stack([g.integers(0, 3, rows), g.integers(0, 2, rows), g.normal(size=rows),
                  g.integers(0, 3, rows)], axis=1)
    return torch.from_numpy(x)


def test_reference_em_in_pcc_layout_matches_pcc():
    root, x = _circuit(), _data()
    vectors = vp.param_owners(root)
    assert len(vectors) == 6  # the tied input counts once
    pre = {g: v.params for g, v in vectors.items()}
    model = pcc.compile(root, device="cpu")
    model.zero_flows()
    model(x).sum().backward()
    model.em_step(ARGS.step_size, ARGS.pseudocount)
    after = {g: vp.pcc_params(model, v) for g, v in vectors.items()}
    ref, flow = vp.ref_em_params(root, x, ARGS)
    for g, v in vectors.items():
        assert np.shape(ref[g]) == np.shape(after[g]) == np.shape(pre[g]), v
        assert flow[g].shape == (v.num_nodes,)
    errs, lines = vp.em_report(vectors, pre, ref, after, None, flow)
    assert set(errs) == {"pcc_em_err"} and errs["pcc_em_err"] < 1e-4, lines
    # the oracle did not change the circuit: pre still holds the values before the step
    assert max(vp.param_err(after[g], pre[g]) for g in vectors) > 1e-2


def test_describe_elem_names_the_layout_edge():
    for v in vp.param_owners(_circuit()).values():
        if not isinstance(v, SumVector):
            continue
        owner, child = _layout_edges(v)
        for i in range(v.params.size):
            _, where, node = vp.describe_elem(v, i)
            assert node == owner[i]
            assert int(re.search(r"<- child (\d+)", where).group(1)) == child[i], (v, i, where)


def test_report_finds_a_perturbed_element():
    root, x = _circuit(), _data()
    vectors = vp.param_owners(root)
    ref, flow = vp.ref_em_params(root, x, ARGS)
    g = next(g for g, v in vectors.items() if isinstance(v, SumVector) and v.form == "block")
    fake_pj = {k: np.array(p, copy=True) for k, p in ref.items()}
    fake_pj[g].reshape(-1)[5] *= 1.5
    pre = {k: v.params for k, v in vectors.items()}
    errs, lines = vp.em_report(vectors, pre, ref, ref, fake_pj, flow)
    assert abs(errs["pj_em_err"] - 0.5) < 1e-9 and errs["pcc_em_err"] == 0.0
    assert abs(errs["param_agree"] - 1 / 3) < 1e-9
    text = "\n".join(lines)
    assert "sum (block b=2)" in text and "elem 5: node 0 <- child 3" in text, text


def test_stale_flows_are_cleared_once_per_sum_group():
    # pj_stale_flows_cleared's callback runs for every layer of a group; clearing before a group's
    # second layer would erase flows its first layer just wrote, so only first sum layers clear.
    class Group:
        def __init__(self, kind, n):
            self.kind, self.layers = kind, [object() for _ in range(n)]

        def is_sum(self):
            return self.kind == "sum"

    pc = types.SimpleNamespace(inner_layer_groups=[Group("prod", 1), Group("sum", 2), Group("prod", 1),
                                                   Group("sum", 1)])
    for log_flows, zero in ((True, float("-inf")), (False, 0.0)):
        clear = vp.pj_stale_flows_cleared(pc, log_flows)
        flows = torch.rand(5, 3)  # fresh every run, never zero
        for g in pc.inner_layer_groups:
            for i, layer in enumerate(g.layers):
                flows.uniform_(0.5, 1.0)
                clear(layer, element_flows=flows, node_flows=None)
                cleared = bool((flows == zero).all())
                assert cleared == (g.is_sum() and i == 0), (g.kind, i, log_flows)
