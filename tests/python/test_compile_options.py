"""Every compile option at once: random circuits compiled with a random combination of block_size,
max_partitions, reuse_rows, chunk_input_rows, category_major_cats and fuse_products, at batches that
cross the CPU kernels' tiles (63, 64, 65, 129) or small ones, give the float64 reference's log-likelihoods (1e-4 x max(1, |ref|)), EM step (1e-4) and gradients (1e-4 x max(1, |g|)).
The options change only how the plan lays the circuit out, never what it computes; each has its own
tests, and this one looks for the combinations no other test draws (it found the reuse_rows bug of
split product layers whose runs different layers read).
"""
import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pcc

from circuits import random_circuits, random_inputs
from test_compile_vs_reference import assert_close
from test_learning import assert_params_close, expected_em_step, learnable

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def options(draw):
    return dict(block_size=draw(st.sampled_from([None, 1, 2, 4, 16])),
                max_partitions=draw(st.integers(1, 6)),
                reuse_rows=draw(st.booleans()),
                chunk_input_rows=draw(st.sampled_from([1, 2, 5, 16384])),
                category_major_cats=draw(st.sampled_from([-1, 0, 3, 512])),
                fuse_products=draw(st.booleans()))


def widen(data, x, missing):
    """x and missing with rows repeated in a random order up to a batch that crosses the CPU
    kernels' 64-column tiles and 8-column vectors (or as drawn)."""
    batch = data.draw(st.sampled_from([None, 63, 64, 65, 129]))
    if batch is None:
        return x, missing
    rows = torch.from_numpy(np.random.default_rng(data.draw(st.integers(0, 2**31))).integers(0, x.shape[0], batch))
    return x[rows], (None if missing is None else missing[rows])


@SETTINGS
@given(data=st.data())
def test_any_options_compute_the_reference(data):
    root = data.draw(random_circuits())
    x, missing = widen(data, *data.draw(random_inputs(root, max_batch=8)))
    opts = data.draw(options())
    model = pcc.compile(root, **opts)
    with torch.no_grad():
        assert_close(model(x, missing), pcc.reference.log_likelihood(root, x, missing))

    a = data.draw(st.sampled_from([0.1, 2.0]))
    before = {v: model.get_params(v) for v in learnable(root)}
    model.zero_flows()
    model(x, missing).sum().backward()
    model.em_step(step_size=1.0, pseudocount=a)
    assert_params_close(model, expected_em_step(root, x, missing, 1.0, a, before))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_options_give_the_same_gradients(data):
    root = data.draw(random_circuits())
    x, missing = data.draw(random_inputs(root, max_batch=8))
    # Gradients in the IR's order (read_group), so the two layouts compare element by element;
    # Gaussians' log-std slots are not an IR group element, so they are left out here.
    vectors = [v for v in learnable(root) if not (isinstance(v, pcc.InputVector) and v.dist.name == "gaussian")]
    grads = {}
    for name, opts in (("default", {}), ("drawn", data.draw(options()))):
        model = pcc.compile(root, **opts).requires_grad_(True)
        (-model(x, missing).mean()).backward()
        g = model.log_params.grad
        grads[name] = {id(v): pcc._C.read_group(model.plan, g.data_ptr(), model._group(v)).copy() for v in vectors}
    for k, want in grads["default"].items():
        got = grads["drawn"][k]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(want).max(initial=0))))
