"""Property tests: the compiled circuit on the CPU backend against the float64 reference evaluator.

Random valid circuits (tests/python/circuits.py: random DAGs, dense / sparse / block sums, products
with edges, ties, all three distributions, multi-node roots) and random inputs with random missing
masks, fresh every run. Tolerance: |pcc - ref| <= 1e-4 * max(1, |ref|) (float32 against float64).
"""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pcc
from pcc.serialize import to_ir

from circuits import random_circuits, random_inputs

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_close(got, ref):
    got = got.double().numpy()
    assert got.shape == ref.shape
    assert np.all(np.isfinite(got) == np.isfinite(ref)), (got, ref)
    fin = np.isfinite(ref)
    err = np.abs(got[fin] - ref[fin]) / np.maximum(1.0, np.abs(ref[fin]))
    assert err.size == 0 or err.max() <= 1e-4, f"max relative error {err.max():.3g}\n{got}\n{ref}"


@SETTINGS
@given(data=st.data())
def test_forward_matches_reference(data):
    root = data.draw(random_circuits())
    x, missing = data.draw(random_inputs(root))
    block_size = data.draw(st.sampled_from([None, 1, 2, 4, 8]))
    model = pcc.compile(root, block_size=block_size)
    ref = pcc.reference.log_likelihood(root, x, missing)
    with torch.no_grad():
        got = model(x, missing)
    assert got.dtype == torch.float32
    assert_close(got, ref)


@SETTINGS
@given(data=st.data())
def test_ir_round_trip_is_exact(data, tmp_path_factory):
    root = data.draw(random_circuits())
    path = tmp_path_factory.mktemp("ir") / "c.pcir"
    pcc.save(root, path)
    back = pcc.load(path)
    # Same bytes when written again: structure, ties and float32 parameters all survived.
    assert to_ir(back).to_bytes() == to_ir(root).to_bytes()
    x, missing = data.draw(random_inputs(root))
    np.testing.assert_array_equal(pcc.reference.log_likelihood(back, x, missing),
                                  pcc.reference.log_likelihood(root, x, missing))


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_deterministic_for_a_thread_count(data):
    root = data.draw(random_circuits())
    x, missing = data.draw(random_inputs(root, max_batch=40))
    model = pcc.compile(root)
    before = pcc.get_num_threads()
    try:
        for n in (1, 2):
            pcc.set_num_threads(n)
            a, b = model(x, missing), model(x, missing)
            assert torch.equal(a, b)
    finally:
        pcc.set_num_threads(before)


def test_cuda_graphs_switch():
    # Process-wide, on by default, and harmless to set in a build or on a machine without CUDA (the
    # graphs themselves are tested in test_cuda.py).
    before = pcc.cuda_graphs()
    try:
        pcc.set_cuda_graphs(False)
        assert pcc.cuda_graphs() is False
        pcc.set_cuda_graphs(True)
        assert pcc.cuda_graphs() is True
    finally:
        pcc.set_cuda_graphs(before)


def test_one_model_serves_any_batch_size():
    torch.manual_seed(0)
    a = pcc.inputs(0, num_nodes=4, dist=pcc.dists.Categorical(num_cats=5))
    b = pcc.inputs(1, num_nodes=4, dist=pcc.dists.Gaussian())
    root = pcc.summate(pcc.multiply(a, b), num_nodes=1)
    model = pcc.compile(root)
    torch.set_grad_enabled(False)
    for batch in (1, 3, 64, 257):
        x = torch.stack([torch.randint(0, 5, (batch,)).double(), torch.randn(batch, dtype=torch.float64)], 1)
        assert_close(model(x), pcc.reference.log_likelihood(root, x))
    assert model(torch.zeros(0, 2)).shape == (0,)
    torch.set_grad_enabled(True)
