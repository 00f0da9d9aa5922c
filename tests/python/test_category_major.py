"""Category-major Categorical parameters (`pcc.compile(..., category_major_cats=N)`) on the CPU backend.

Random circuits (tests/python/circuits.py) whose Categorical inputs have 2 to 600 categories, compiled
with every Categorical group category-major (0), none (-1) and the default (512: the 600-category
groups only): log-likelihoods against the float64 reference with test_compile_vs_reference's
tolerance; EM steps (against pcc.reference.em_step with test_learning's tolerance), gradients,
parameters and plan files the same in every layout; a checkpoint of a category-major model round-trips;
bad option values raise pcc.Error. Random circuits and inputs are fresh every run.
"""
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pcc
from pcc import checkpoint as ckpt
from pcc.nodes import InputVector, SumVector, topological_order

from circuits import random_circuits, random_inputs
from test_compile_vs_reference import assert_close
from test_learning import assert_params_close, expected_em_step, learnable

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

KINDS = (("categorical", 2), ("categorical", 5), ("categorical", 37), ("categorical", 600),
         ("bernoulli", 0), ("gaussian", 0))
LAYOUTS = (0, -1, 512)  # all category-major, none, the default


def compile_all(root):
    return {cm: pcc.compile(root, category_major_cats=cm) for cm in LAYOUTS}


def strided_groups(root, cm):
    """Parameter groups the compiler should store category-major under category_major_cats=cm."""
    return {id(v.param_group) for v in topological_order(root)
            if isinstance(v, InputVector) and v.dist.name == "categorical" and v.num_nodes > 1
            and 0 <= cm < v.dist.num_cats}


def params_of(model, root):
    return {v: model.get_params(v) for v in learnable(root)}


def assert_same_params(a, b):
    for v, pa in a.items():
        pb = b[v]
        for key in (pa if isinstance(pa, dict) else [None]):
            x, y = (pa[key], pb[key]) if key else (pa, pb)
            np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-6, atol=1e-7, err_msg=f"{v!r} {key}")


@SETTINGS
@given(data=st.data())
def test_every_layout_matches_the_reference(data):
    root = data.draw(random_circuits(kinds=KINDS))
    x, missing = data.draw(random_inputs(root))
    models = compile_all(root)
    node_major = models[-1].plan.params()
    for cm, model in models.items():
        # The layout took effect exactly where asked: the buffer differs from node-major iff a group moved.
        assert (not np.array_equal(model.plan.params(), node_major)) == bool(strided_groups(root, cm)), cm
        assert_params_close(model, params_of(models[-1], root), atol=0)
    ref = pcc.reference.log_likelihood(root, x, missing)
    with torch.no_grad():
        outs = {cm: model(x, missing) for cm, model in models.items()}
    for cm, out in outs.items():
        assert_close(out, ref)
        np.testing.assert_allclose(out.numpy(), outs[-1].numpy(), rtol=1e-6, atol=1e-6, err_msg=str(cm))


@SETTINGS
@given(data=st.data())
def test_em_step_is_the_same_in_every_layout(data):
    root = data.draw(random_circuits(kinds=KINDS))
    x, missing = data.draw(random_inputs(root, max_batch=12))
    step = data.draw(st.sampled_from([1.0, 0.5]))
    a = data.draw(st.sampled_from([0.1, 2.0]))  # > 0: no float32-unresolvable jumps (test_learning)
    models = compile_all(root)
    after = {}
    for cm, model in models.items():
        model.zero_flows()
        model(x, missing).sum().backward()
        model.em_step(step_size=step, pseudocount=a)
        after[cm] = params_of(model, root)
    assert_params_close(models[0], expected_em_step(root, x, missing, step, a, before=None))
    for cm in LAYOUTS:
        assert_same_params(after[cm], after[-1])
    # state_dict: the same keys and shapes; its log_params is the plan-layout buffer, so a model
    # compiled with the same options takes it back exactly, and one whose layout differs refuses it.
    keys = {cm: {k: tuple(v.shape) for k, v in m.state_dict().items()} for cm, m in models.items()}
    assert keys[0] == keys[-1] == keys[512]
    fresh = pcc.compile(root, category_major_cats=0)
    fresh.load_state_dict(models[0].state_dict())
    assert_same_params(params_of(fresh, root), after[0])
    if models[0].plan.param_layout_id != models[-1].plan.param_layout_id:
        other = pcc.compile(root, category_major_cats=-1)
        before = other.params.clone()
        with pytest.raises(pcc.Error, match="parameter layout is not this model's"):
            other.load_state_dict(models[0].state_dict())
        assert torch.equal(other.params, before)  # nothing loaded


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_gradients_are_the_same_in_every_layout(data):
    root = data.draw(random_circuits(kinds=KINDS))
    x, missing = data.draw(random_inputs(root, max_batch=10))
    grads = {}
    for cm, model in compile_all(root).items():
        model.requires_grad_(True)
        (-model(x, missing).mean()).backward()
        g, plan = model.log_params.grad, model.plan
        grads[cm] = {v: (pcc._C.read_group(plan, g.data_ptr(), model._group(v)) if isinstance(v, SumVector)
                         else pcc._C.input_slots(plan, g.data_ptr(), model._group(v)))  # [n, width], node order
                     for v in learnable(root)}
    for cm in LAYOUTS:
        for v, want in grads[-1].items():
            np.testing.assert_allclose(grads[cm][v], want, rtol=1e-5, atol=1e-6, err_msg=f"{cm} {v!r}")


def hmm_like(num_cats=700, hidden=8, length=3):
    """A small HMM-shaped circuit: a chain of hidden states, each emitting one of num_cats tokens."""
    emit = [pcc.inputs(t, hidden, pcc.dists.Categorical(num_cats=num_cats)) for t in range(length)]
    node = emit[-1]
    for t in range(length - 2, -1, -1):
        node = pcc.multiply(emit[t], pcc.summate(node, num_nodes=hidden))
    return pcc.summate(node, num_nodes=1), num_cats


def test_checkpoint_of_a_category_major_model_round_trips(tmp_path):
    root, k = hmm_like()
    model = pcc.compile(root)  # the default stores the 700-category emissions category-major
    assert model.plan.params().shape == pcc.compile(root, category_major_cats=-1).plan.params().shape
    assert not np.array_equal(model.plan.params(), pcc.compile(root, category_major_cats=-1).plan.params())
    x = torch.randint(0, k, (64, 3))
    model.zero_flows()
    model(x).sum().backward()
    model.em_step(0.5, 0.1)
    state = {"epoch": 1, "args": {}, "metrics": [], "fingerprint": ckpt.fingerprint(root)}
    ckpt.save_checkpoint(tmp_path, model, state)
    back = ckpt.load_checkpoint(tmp_path).root
    want = params_of(model, root)
    with torch.no_grad():
        ll = model(x)
    for cm in LAYOUTS:
        loaded = pcc.compile(back, category_major_cats=cm)
        assert_same_params({v: loaded.get_params(w) for v, w in zip(want, learnable(back))}, want)
        with torch.no_grad():
            np.testing.assert_allclose(loaded(x).numpy(), ll.numpy(), rtol=1e-6, atol=1e-6)


def test_plan_file_keeps_the_layout(tmp_path):
    root, k = hmm_like(num_cats=40)
    plan = pcc.compile(root, category_major_cats=0).plan
    plan.save(str(tmp_path / "p.pcplan"))
    back = pcc._C.Plan.load(str(tmp_path / "p.pcplan"))
    assert back.to_bytes() == plan.to_bytes()
    assert "category-major" in back.report()
    assert "category-major" not in pcc.compile(root, category_major_cats=-1).plan.report()
    # pcc-compile --category-major-cats makes the same plan.
    pcc.save(root, tmp_path / "c.pcir")
    exe = Path(pcc.__file__).parent / "bin" / "pcc-compile"

    def cli(*args):
        return subprocess.run([str(exe), str(tmp_path / "c.pcir"), *args], capture_output=True, text=True)

    done = cli("--category-major-cats=0", "-o", str(tmp_path / "cli.pcplan"))
    assert done.returncode == 0 and "category-major" in done.stdout, done.stderr
    assert pcc._C.Plan.load(str(tmp_path / "cli.pcplan")).to_bytes() == plan.to_bytes()
    assert "category-major" not in cli("--category-major-cats", "-1").stdout
    bad = cli("--category-major-cats=-2")
    assert bad.returncode == 2 and "bad value '-2' for --category-major-cats" in bad.stderr
    # --report reads a compiled plan: a compile option beside it is an error, not silently ignored.
    for opt in ("--category-major-cats=0", "--max-partitions=2"):
        ignored = subprocess.run([str(exe), "--report", str(tmp_path / "cli.pcplan"), opt], capture_output=True,
                                 text=True)
        assert ignored.returncode == 2 and "--report takes only a .pcplan file" in ignored.stderr, opt


@pytest.mark.parametrize("bad", [-2, 1.5, True, "x", None])
def test_bad_category_major_cats_raise(bad):
    root, _ = hmm_like(num_cats=4)
    with pytest.raises(pcc.Error, match="category_major_cats"):
        pcc.compile(root, category_major_cats=bad)
