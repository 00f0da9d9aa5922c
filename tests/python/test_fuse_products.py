"""CompileOptions::fuse_products on the CPU backend: element-wise products of sums computed inside the
sums that read them (plan.h, SumPartition::child_arity).

Random circuits (tests/python/circuits.py) and the benchmark structures, fresh every run: the fused
model against the float64 reference (log-likelihoods 1e-4 x max(1, |ref|), as
test_compile_vs_reference; EM parameters 1e-4, as test_learning) and against the same circuit
compiled unfused (log-likelihoods and EM step within 1e-5 relative, gradients 1e-4 relative or
1e-5 of the largest: float32, the same operations with some sums in another order). The benchmark structures (PD, HCLT, HMM, RAT-SPN) all have
element-wise products: compiled fused they have fewer product partitions and no more rows.
"""
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pcc
from pcc.nodes import InputVector, SumVector, topological_order

from circuits import random_circuits, random_inputs
from test_compile_vs_reference import assert_close
from test_learning import assert_params_close, expected_em_step

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def learnable(root):
    return [v for v in topological_order(root) if isinstance(v, (InputVector, SumVector))]


def params_of(model, root):
    return {v: model.get_params(v) for v in learnable(root)}


def assert_same_params(a, b, rtol=1e-5):
    for v, pa in a.items():
        pb = b[v]
        if isinstance(pa, dict):
            for k in pa:
                np.testing.assert_allclose(pa[k].numpy(), pb[k].numpy(), rtol=rtol, atol=1e-7, err_msg=f"{v!r} {k}")
        else:
            np.testing.assert_allclose(pa.numpy(), pb.numpy(), rtol=rtol, atol=1e-7, err_msg=repr(v))


def em_after(model, root, x, missing, step, a):
    model.zero_flows()
    model(x, missing).sum().backward()
    model.em_step(step_size=step, pseudocount=a)
    return params_of(model, root)


@SETTINGS
@given(data=st.data())
def test_fused_forward_and_em_match_reference_and_unfused(data):
    root = data.draw(random_circuits())
    x, missing = data.draw(random_inputs(root, max_batch=10))
    block_size = data.draw(st.sampled_from([None, 1, 4]))
    reuse = data.draw(st.booleans())
    chunk = data.draw(st.sampled_from([16384, 3]))  # 3: products of inputs mostly stay unfused
    fused = pcc.compile(root, block_size=block_size, reuse_rows=reuse, chunk_input_rows=chunk, fuse_products=True)
    plain = pcc.compile(root, block_size=block_size, reuse_rows=reuse, chunk_input_rows=chunk)
    with torch.no_grad():
        got, want = fused(x, missing), plain(x, missing)
    assert_close(got, pcc.reference.log_likelihood(root, x, missing))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)

    step = data.draw(st.sampled_from([1.0, 0.5]))
    a = data.draw(st.sampled_from([0.1, 2.0]))  # > 0: no float32-unresolvable jumps (test_learning)
    before = params_of(plain, root)
    pf = em_after(fused, root, x, missing, step, a)
    pp = em_after(plain, root, x, missing, step, a)
    assert_same_params(pf, pp)
    assert_params_close(fused, expected_em_step(root, x, missing, step, a, before))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fused_gradients_match_unfused(data):
    root = data.draw(random_circuits())
    x, missing = data.draw(random_inputs(root, max_batch=8))
    grads = []
    for fuse in (True, False):
        model = pcc.compile(root, fuse_products=fuse).requires_grad_(True)
        (-model(x, missing).mean()).backward()
        grads.append(model.log_params.grad.clone())
    scale = max(1.0, float(grads[1].abs().max()))  # sums of float32 flows in another order
    np.testing.assert_allclose(grads[0].numpy(), grads[1].numpy(), rtol=1e-4, atol=1e-5 * scale)


def structures():
    torch.manual_seed(0)
    cat = pcc.dists.Categorical(num_cats=6)
    data = torch.randint(0, 6, (200, 16))
    yield "pd", pcc.structures.PD((4, 4), 8, (2, 2), input_dist=cat), data[:16]
    yield "hclt", pcc.structures.HCLT(data, 8, input_dist=cat), data[:16]
    yield "hmm", pcc.structures.HMM(6, 8, 20), torch.randint(0, 20, (16, 6))
    yield "rat", pcc.structures.RAT_SPN(16, 8, 2, 2, input_dist=cat), data[:16]


@pytest.mark.parametrize("name,root,x", list(structures()), ids=lambda v: v if isinstance(v, str) else "")
def test_structures_fuse_their_products(name, root, x):
    fused = pcc.compile(root, fuse_products=True)
    plain = pcc.compile(root)
    sf, sp = fused.plan.summary(), plain.plan.summary()
    assert sf["product_partitions"] < sp["product_partitions"], (sf, sp)
    assert sf["layers"] < sp["layers"]
    assert fused.plan.num_rows <= plain.plan.num_rows
    assert fused.plan.param_layout_id == plain.plan.param_layout_id  # parameters are laid out alike
    with torch.no_grad():
        got, want = fused(x), plain(x)
    assert_close(got, pcc.reference.log_likelihood(root, x))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
    # The same EM step, and a state_dict moves between the two.
    pf, pp = em_after(fused, root, x, None, 0.5, 0.1), em_after(plain, root, x, None, 0.5, 0.1)
    assert_same_params(pf, pp)
    plain.load_state_dict(fused.state_dict())


def test_fused_plan_round_trips_and_the_cli_makes_it(tmp_path):
    root = pcc.structures.PD((4, 4), 8, (2, 2), input_dist=pcc.dists.Categorical(num_cats=3))
    plan = pcc.compile(root, fuse_products=True).plan
    plan.save(str(tmp_path / "pd.pcplan"))
    back = pcc._C.Plan.load(str(tmp_path / "pd.pcplan"))
    assert back.to_bytes() == plan.to_bytes()
    assert "fused products of 2" in back.report()
    assert "fused products" not in pcc.compile(root).plan.report()
    # pcc-compile --fuse-products makes the same plan; --dump-after fuse_products shows the arity.
    pcc.save(root, tmp_path / "c.pcir")
    exe = Path(pcc.__file__).parent / "bin" / "pcc-compile"

    def cli(*args):
        return subprocess.run([str(exe), *args], capture_output=True, text=True)

    done = cli(str(tmp_path / "c.pcir"), "--fuse-products", "-o", str(tmp_path / "cli.pcplan"))
    assert done.returncode == 0 and "fused products of 2" in done.stdout, done.stderr
    assert pcc._C.Plan.load(str(tmp_path / "cli.pcplan")).to_bytes() == plan.to_bytes()
    dump = cli(str(tmp_path / "c.pcir"), "--fuse-products", "--dump-after=fuse_products", "-o", str(tmp_path / "d"))
    assert dump.returncode == 0 and "arity=2" in dump.stdout, dump.stderr
    assert "arity=" not in cli(str(tmp_path / "c.pcir"), "--dump-after=fuse_products", "-o", str(tmp_path / "e")).stdout
    bad = cli("--report", str(tmp_path / "cli.pcplan"), "--fuse-products")
    assert bad.returncode == 2 and "--report takes only a .pcplan file" in bad.stderr
    taken = cli(str(tmp_path / "c.pcir"), "--fuse-products=1")
    assert taken.returncode == 2 and "takes no value" in taken.stderr
    # --chunk-input-rows is CompileOptions::chunk_input_rows, as in pcc.compile.
    runs = cli(str(tmp_path / "c.pcir"), "--chunk-input-rows=2", "-o", str(tmp_path / "runs.pcplan"))
    assert runs.returncode == 0, runs.stderr
    assert pcc._C.Plan.load(str(tmp_path / "runs.pcplan")).to_bytes() == \
        pcc.compile(root, chunk_input_rows=2).plan.to_bytes()
    zero = cli(str(tmp_path / "c.pcir"), "--chunk-input-rows=0")
    assert zero.returncode == 2 and "bad value '0' for --chunk-input-rows" in zero.stderr
    assert cli("--report", str(tmp_path / "cli.pcplan"), "--chunk-input-rows=2").returncode == 2
    # --fuse-max-arity is CompileOptions::fuse_max_arity (PD's products of regions have two children,
    # those of its 2x2 leaves four).
    one = cli(str(tmp_path / "c.pcir"), "--fuse-products", "--fuse-max-arity", "1", "-o", str(tmp_path / "one.pcplan"))
    assert one.returncode == 0 and "fused products" not in one.stdout, one.stderr
    two = cli(str(tmp_path / "c.pcir"), "--fuse-products", "--fuse-max-arity=2", "-o", str(tmp_path / "two.pcplan"))
    assert two.returncode == 0 and "fused products of 2" in two.stdout and "of 4" not in two.stdout
    assert pcc._C.Plan.load(str(tmp_path / "two.pcplan")).to_bytes() == \
        pcc._C.compile(pcc.serialize.to_ir(root, {}), fuse_products=True, fuse_max_arity=2).to_bytes()
    nought = cli(str(tmp_path / "c.pcir"), "--fuse-max-arity=0")
    assert nought.returncode == 2 and "bad value '0' for --fuse-max-arity" in nought.stderr
    assert cli("--report", str(tmp_path / "cli.pcplan"), "--fuse-max-arity=2").returncode == 2


@pytest.mark.parametrize("bad", [1, "yes", None, 0.0, "AUTO"])
def test_fuse_products_wants_a_bool_or_auto(bad):
    with pytest.raises(pcc.Error, match="fuse_products"):
        pcc.compile(pcc.structures.HMM(3, 4, 5), fuse_products=bad)


def test_auto_fuses_nothing_on_the_cpu_and_max_arity_bounds_the_products():
    torch.manual_seed(0)
    img = torch.randint(0, 3, (200, 12))
    root = pcc.structures.HCLT(img, num_latents=8, input_dist=pcc.dists.Categorical(num_cats=3))
    assert pcc.compile(root).plan.to_bytes() == pcc.compile(root, fuse_products=False).plan.to_bytes()
    ir = pcc.serialize.to_ir(root, {})
    edges = {a: pcc._C.compile(ir, fuse_products=True, fuse_max_arity=a).summary()["fused_product_edges"]
             for a in (1, 2, 64)}
    # HCLT has products of two children (a leaf's latent and its input) and of more (inner nodes).
    assert 0 == edges[1] < edges[2] < edges[64]
    binary = pcc._C.compile(ir, fuse_products=True, fuse_max_arity=2)
    assert "fused products of 2" in binary.report() and "fused products of 3" not in binary.report()
    assert pcc.compile(root, fuse_products="binary").plan.to_bytes() == binary.to_bytes()
    with pytest.raises(pcc.Error, match="fuse_max_arity must be >= 1"):
        pcc._C.compile(ir, fuse_products=True, fuse_max_arity=0)


def test_fused_and_unfused_models_share_the_parameter_layout():
    # Fusion moves no parameter: a state_dict of one loads into the other, with the same results.
    root = pcc.structures.HMM(5, 8, 7)
    fused = pcc.compile(root, fuse_products=True, block_size=4)
    plain = pcc.compile(root, block_size=4)
    assert fused.plan.summary()["fused_product_edges"] > 0 and plain.plan.summary()["fused_product_edges"] == 0
    assert fused.plan.param_layout_id == plain.plan.param_layout_id
    x = torch.randint(0, 7, (9, 5))
    em_after(fused, root, x, None, 0.5, 0.1)
    plain.load_state_dict(fused.state_dict())
    with torch.no_grad():
        np.testing.assert_allclose(plain(x).numpy(), fused(x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not pcc.cuda_available(), reason="no CUDA device")
def test_fused_models_on_cuda_match_the_cpu():
    # The CUDA kernels read fused child blocks (fused_child.cuh); the CPU backend, unfused, is the
    # oracle (test_cuda.py draws random circuits fused too). PD: binary products of two regions'
    # sums; HCLT: products of up to a node's children in the tree.
    torch.manual_seed(0)
    img = torch.randint(0, 3, (256, 16))
    roots = [pcc.structures.PD((4, 4), 16, (2, 2), input_dist=pcc.dists.Categorical(num_cats=3)),
             pcc.structures.HCLT(img, num_latents=16, input_dist=pcc.dists.Categorical(num_cats=3))]
    x = img[:40]
    # "auto" fuses PD's binary products on CUDA.
    assert pcc.compile(roots[0], device="cuda").plan.summary()["fused_product_edges"] > 0
    for root in roots:
        out = {}
        for dev, fuse in (("cuda", True), ("cpu", False)):
            model = pcc.compile(root, fuse_products=fuse).to(dev)
            assert (model.plan.summary()["fused_product_edges"] > 0) == fuse
            with torch.no_grad():
                out[dev, "ll"] = model(x.to(dev)).cpu()
            out[dev] = {v: {k: t.cpu() for k, t in p.items()} if isinstance(p, dict) else p.cpu()
                        for v, p in em_after(model, root, x.to(dev), None, 0.5, 0.1).items()}
        np.testing.assert_allclose(out["cuda", "ll"].numpy(), out["cpu", "ll"].numpy(), rtol=1e-3, atol=1e-3)
        assert_same_params(out["cuda"], out["cpu"], rtol=1e-3)
