"""The CUDA backend against the CPU backend (the oracle), on the GPU machine; skipped without a GPU.

Random circuits (tests/python/circuits.py) and the benchmark structures at small sizes, fresh random
inputs and missing masks every run, the GPU's plan compiled with and without fused products (the CPU
oracle's without). Output buffers are poisoned with NaN before each call, so an
element a kernel fails to write shows up. Tolerances: TF32 log-likelihoods within
1e-3 * max(1, |ref|), BF16 within 1e-2 * max(1, |ref|), FP32 (float32 SIMT sum kernels, the CPU's
arithmetic in another order) within 2e-5 * max(1, |ref|); flows and EM parameters within the same
bound (relative to the largest flow of the circuit for flows).
"""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pcc

from circuits import random_circuits, random_inputs

pytestmark = pytest.mark.skipif(not pcc.cuda_available(), reason="no CUDA device")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TOL = {"tf32": 1e-3, "bf16": 1e-2, "fp32": 2e-5}


def poisoned(shape, device):
    return torch.full(shape, float("nan"), device=device)


def forward_poisoned(model, x, missing):
    """Run the backend directly on NaN-filled buffers: every value row (but those of fused input groups,
    which their product readers compute where they read them, and the x rows, which hold integers)
    and every output must be written."""
    b = model._backend()
    values = poisoned((model.plan.num_rows, x.shape[0]), x.device)
    out = poisoned((x.shape[0], model.num_root_nodes), x.device)
    b.forward(model._normalized(), x.contiguous(), missing, values, out, model.precision)
    torch.cuda.synchronize()
    written = torch.ones(model.plan.num_rows, dtype=torch.bool, device=x.device)
    for start, n in model.plan.fused_input_rows():
        written[start:start + n] = False
    if model.plan.x_rows >= 0:  # x's categories, staged as int32 (-1, missing, reads as NaN)
        written[model.plan.x_rows:] = False
    assert not torch.isnan(values[written]).any(), "a value row was not written"
    assert not torch.isnan(out).any(), "an output was not written"
    return out, values


def assert_close(got, ref, tol):
    got, ref = got.double().cpu().numpy(), ref.double().cpu().numpy()
    assert np.array_equal(np.isfinite(got), np.isfinite(ref))
    fin = np.isfinite(ref)
    err = np.abs(got[fin] - ref[fin]) / np.maximum(1.0, np.abs(ref[fin]))
    assert err.size == 0 or err.max() <= tol, f"max relative error {err.max():.3g}"


def check_model(root, x, missing, precision, category_major_cats=512, fuse=False, fuse_inputs=True,
                block_size=None):
    # Both in the same parameter layout (fusion moves no parameter): flows and parameters are compared
    # slot by slot.
    cpu = pcc.compile(root, category_major_cats=category_major_cats, block_size=block_size)
    gpu = pcc.compile(root, device="cuda", precision=precision, category_major_cats=category_major_cats,
                      fuse_products=fuse, fuse_inputs=fuse_inputs, block_size=block_size)
    xg = x.cuda()
    mg = missing.cuda() if missing is not None else None
    out, _ = forward_poisoned(gpu, xg, mg)
    with torch.no_grad():
        ref = cpu(x, missing)
    assert_close(out.reshape(ref.shape), ref, TOL[precision])
    # flows and one EM step
    for m, xx, mm in ((cpu, x, missing), (gpu, xg, mg)):
        m.zero_flows()
        m(xx, mm).sum().backward()
    scale = max(1.0, float(cpu.param_flows.abs().max()))
    err = float((gpu.param_flows.cpu() - cpu.param_flows).abs().max()) / scale
    assert err <= TOL[precision], f"parameter flows differ by {err:.3g} (relative to {scale:.3g})"
    cpu.em_step(0.5, 0.1)
    gpu.em_step(0.5, 0.1)
    a, b = cpu._normalized(), gpu._normalized().cpu()
    assert not torch.isnan(b).any()
    assert float((a - b).abs().max()) <= TOL[precision]


@SETTINGS
@given(data=st.data())
def test_random_circuits_tf32(data):
    root = data.draw(random_circuits())
    x, missing = data.draw(random_inputs(root, max_batch=70))
    check_model(root, x, missing, "tf32", data.draw(st.sampled_from([512, 0])), data.draw(st.booleans()))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_circuits_bf16(data):
    root = data.draw(random_circuits())
    x, missing = data.draw(random_inputs(root, max_batch=70))
    check_model(root, x, missing, "bf16", fuse=data.draw(st.booleans()))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_circuits_fp32(data):
    root = data.draw(random_circuits())
    x, missing = data.draw(random_inputs(root, max_batch=70))
    check_model(root, x, missing, "fp32", data.draw(st.sampled_from([512, 0])), data.draw(st.booleans()))


@pytest.mark.parametrize("fuse", [False, True])
def test_fp32_large_blocks(fuse):
    # FP32 sends every block to the SIMT kernels; the parameter-flow kernel cuts blocks of more than
    # 128 x 128 weights into tiles (HMM-2048's 1024 x 1024 needed 64 KiB of shared memory whole).
    hmm = pcc.structures.HMM(4, num_latents=1024, num_emits=20)
    x = torch.randint(0, 20, (48, 4))
    check_model(hmm, x, torch.rand(x.shape) < 0.1, "fp32", fuse=fuse, block_size=1024)


def small_structures():
    torch.manual_seed(0)
    img = torch.randint(0, 16, (256, 64))
    yield "hclt", pcc.structures.HCLT(img, num_latents=32, input_dist=pcc.dists.Categorical(num_cats=16)), img
    yield "pd", pcc.structures.PD((8, 8), num_latents=32, split_intervals=(4, 4),
                                  input_dist=pcc.dists.Categorical(num_cats=16)), img
    yield "rat", pcc.structures.RAT_SPN(64, num_latents=32, depth=3, num_repetitions=2,
                                        input_dist=pcc.dists.Categorical(num_cats=16)), img
    yield "hmm", pcc.structures.HMM(16, num_latents=64, num_emits=50), torch.randint(0, 50, (256, 16))
    # A vocabulary above category_major_cats: emission parameters category-major.
    yield "hmm-vocab", pcc.structures.HMM(8, num_latents=40, num_emits=700), torch.randint(0, 700, (256, 8))


@pytest.mark.parametrize("fuse", [False, True])
@pytest.mark.parametrize("precision", ["tf32", "bf16", "fp32"])
def test_benchmark_structures_small(precision, fuse):
    for name, root, data in small_structures():
        x = data[torch.randperm(len(data))[:200]]
        missing = torch.rand(x.shape) < 0.2
        check_model(root, x, None, precision, fuse=fuse)
        check_model(root, x, missing, precision, fuse=fuse)


@pytest.mark.parametrize("batch", [1, 45, 800])
def test_discrete_inputs_across_kernel_shapes(batch):
    # The discrete input kernels' item shapes (input_runs.cuh): 2 and 8 columns per lane, one to four
    # batch tiles, runs of 4 to 8 nodes whose variable changes inside a run (100 latents), the
    # histogram backward (16 categories, Bernoulli) and the direct one (700 categories, node-major),
    # with missing entries.
    cats = torch.randint(0, 16, (max(batch, 64), 256))
    for dist in (pcc.dists.Categorical(num_cats=16), pcc.dists.Bernoulli()):
        data = cats % 2 if isinstance(dist, pcc.dists.Bernoulli) else cats
        root = pcc.structures.HCLT(data, num_latents=100, input_dist=dist)
        x = data[torch.randperm(len(data))[:batch]]
        check_model(root, x, torch.rand(x.shape) < 0.1, "tf32", category_major_cats=-1)
    hmm = pcc.structures.HMM(8, num_latents=6, num_emits=700)
    x = torch.randint(0, 700, (batch, 8))
    check_model(hmm, x, torch.rand(x.shape) < 0.1, "tf32", category_major_cats=-1)


@pytest.mark.parametrize("fuse_inputs", [False, True])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.float32])
def test_fused_inputs_on_the_gpu(fuse_inputs, dtype):
    # Inputs computed inside the products that read them (fuse_inputs, product_forward.cu) or in their
    # own layers, against the CPU oracle: x of several dtypes (the product kernel reads x itself),
    # batches on the float4 path (128) and the scalar one (45), missing entries, fused products or not.
    fused = 0
    for name, root, data in small_structures():
        for batch, fuse in ((45, False), (128, True)):
            x = data[torch.randperm(len(data))[:batch]].to(dtype)
            check_model(root, x, torch.rand(x.shape) < 0.2, "tf32", fuse=fuse, fuse_inputs=fuse_inputs)
        model = pcc.compile(root, device="cuda", fuse_inputs=fuse_inputs)
        fused += model.plan.summary()["fused_input_groups"]
        assert (model.plan.x_rows >= 0) == (model.plan.summary()["fused_input_groups"] > 0)
        if model.plan.x_rows >= 0:  # the staged categories (stage_x.cu): x transposed, -1 where missing
            x = data[:77].to(dtype).cuda()
            missing = torch.rand(x.shape, device="cuda") < 0.3
            _, values = forward_poisoned(model, x, missing)
            staged = values[model.plan.x_rows:].contiguous().view(torch.int32)
            assert torch.equal(staged, torch.where(missing, -1, x.to(torch.int32)).T), name
    assert (fused > 0) == fuse_inputs


@pytest.mark.parametrize("fuse", [False, True])
def test_gradients_match_cpu(fuse):
    for name, root, data in small_structures():
        x = data[:128]
        grads = []
        for device in ("cpu", "cuda"):
            m = pcc.compile(root, device=device, fuse_products=fuse and device == "cuda").requires_grad_(True)
            w = torch.linspace(-1, 1, len(x), device=device)
            (m(x.to(device)) * w).sum().backward()
            grads.append(m.log_params.grad.cpu())
        scale = max(1.0, float(grads[0].abs().max()))
        assert float((grads[0] - grads[1]).abs().max()) / scale <= 1e-3, name


def test_bad_inputs_raise_on_the_gpu():
    torch.manual_seed(0)
    a = pcc.inputs(0, 4, pcc.dists.Categorical(num_cats=3))
    g = pcc.inputs(1, 4, pcc.dists.Gaussian())
    m = pcc.compile(pcc.summate(pcc.multiply(a, g), num_nodes=1), device="cuda")
    for bad, word in ((torch.tensor([[3.0, 0.0]]), "variable 0"), (torch.tensor([[1.5, 0.0]]), "variable 0"),
                      (torch.tensor([[1.0, float("nan")]]), "NaN")):
        with pytest.raises(pcc.Error, match=word):
            m(bad.cuda())
    with pytest.raises(pcc.Error, match="device"):
        m(torch.tensor([[1.0, 0.0]]))  # CPU tensor, CUDA model
    ok = m(torch.tensor([[7.0, float("nan")]]).cuda(), torch.tensor([[True, True]]).cuda())
    assert float(ok) == 0.0  # everything marginalized: log 1


def test_memory_is_torch_allocated():
    torch.manual_seed(0)
    root = pcc.structures.HCLT(torch.randint(0, 16, (256, 64)), num_latents=32,
                               input_dist=pcc.dists.Categorical(num_cats=16))
    m = pcc.compile(root, device="cuda")
    x = torch.randint(0, 16, (512, 64), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    m(x).sum().backward()
    torch.cuda.synchronize()
    # The value and flow buffers ([rows, batch] float32 each) show up in torch's accounting.
    assert torch.cuda.max_memory_allocated() - base >= 2 * 4 * m.plan.num_rows * 512


def test_get_set_params_and_to_circuit_on_the_gpu():
    for name, root, data in small_structures():
        cpu, gpu = pcc.compile(root), pcc.compile(root, device="cuda")
        vs = [v for v in pcc.nodes.topological_order(root) if hasattr(v, "param_group")][:6]
        for v in vs:
            a, b = cpu.get_params(v), gpu.get_params(v)
            for k in (a if isinstance(a, dict) else [None]):
                x, y = (a, b) if k is None else (a[k], b[k])
                assert torch.allclose(x, y, atol=1e-6), (name, v)
        x = data[:64]
        back = gpu.to_circuit()
        with torch.no_grad():
            assert_close(pcc.compile(back)(x), cpu(x), 1e-5)


def test_get_params_follows_every_change_on_the_gpu():
    # get_params reads a host copy of a GPU model's parameters, kept until they change (_host_params):
    # EM steps, set_params and optimizer steps in the gradient form must all show.
    torch.manual_seed(0)
    root = pcc.structures.HMM(6, num_latents=16, num_emits=9)
    x = torch.randint(0, 9, (64, 6))
    cpu, gpu = pcc.compile(root), pcc.compile(root, device="cuda")
    v = next(u for u in pcc.nodes.topological_order(root) if isinstance(u, pcc.nodes.SumVector))
    before = gpu.get_params(v)
    assert torch.equal(before, gpu.get_params(v))
    for m, xx in ((cpu, x), (gpu, x.cuda())):
        m.zero_flows()
        m(xx).sum().backward()
        m.em_step(0.5, 0.1)
    after = gpu.get_params(v)
    assert not torch.allclose(before, after) and torch.allclose(after, cpu.get_params(v), atol=1e-4)
    w = torch.rand_like(after)
    gpu.set_params(v, w / w.sum(-1, keepdim=True))
    assert torch.allclose(gpu.get_params(v), w / w.sum(-1, keepdim=True), atol=1e-6)
    gpu.requires_grad_(True)
    opt = torch.optim.SGD(gpu.parameters(), lr=0.5)
    (-gpu(x.cuda()).sum()).backward()
    opt.step()
    stepped = gpu.get_params(v)
    assert not torch.allclose(stepped, w / w.sum(-1, keepdim=True), atol=1e-6)
    ref = pcc.compile(root)
    ref.load_state_dict({k: t.cpu() for k, t in gpu.state_dict().items()})
    assert torch.allclose(stepped, ref.get_params(v), atol=1e-5)


@pytest.mark.parametrize("name", ["hclt", "pd", "hmm"])
def test_cuda_graph_replays_follow_the_tensors_contents(name):
    # The second pass with the same buffers captures a CUDA graph and later ones replay it: replays
    # must read what the buffers hold now (new batches copied into the same x), match eager passes,
    # and x must still be validated before each replay. The backend is called on fixed buffers, so
    # the keys repeat whatever the allocator does.
    root, data = next((r, d) for n, r, d in small_structures() if n == name)
    model = pcc.compile(root, device="cuda")
    backend, params = model._backend(), model._normalized()
    cats, nv = int(data.max()) + 1, data.shape[1]
    x = torch.empty(64, nv, dtype=torch.long, device="cuda")
    values = torch.empty(model.plan.num_rows, 64, device="cuda")
    out = torch.empty(64, model.num_root_nodes, device="cuda")
    ones, flows, stats = torch.ones_like(out), torch.empty_like(values), torch.zeros_like(params)
    batches = [torch.randint(0, cats, (64, nv)) for _ in range(5)]  # fresh every run

    def run(b):
        x.copy_(b)
        backend.forward(params, x, None, values, out, "tf32")
        stats.zero_()
        backend.backward(params, x, None, values, ones, flows, stats, "tf32")
        return out.cpu(), stats.cpu()

    before = pcc.cuda_graphs()
    try:
        pcc.set_cuda_graphs(False)
        eager = [run(b) for b in batches]
        pcc.set_cuda_graphs(True)
        start = backend.cplan.graph_stats()
        graphed = [run(b) for b in batches]  # eager, captured, replayed x3
        end = backend.cplan.graph_stats()
        bad = batches[0].clone()
        bad[3, 1] = 99
        x.copy_(bad)
        with pytest.raises(pcc.Error, match=r"x\[3, 1\] = 99"):
            backend.forward(params, x, None, values, out, "tf32")
    finally:
        pcc.set_cuda_graphs(before)
    for pass_ in ("forward", "backward"):
        got = {k: end[pass_][k] - start[pass_][k] for k in end[pass_]}
        assert got == {"eager": 1, "captured": 1, "replayed": 4}, (pass_, got)
    for (l0, f0), (l1, f1) in zip(eager, graphed):
        assert torch.allclose(l1, l0, rtol=1e-6, atol=1e-6)  # the same kernels on the same data
        assert torch.allclose(f1, f0, rtol=1e-5, atol=1e-6 * float(f0.abs().max()))  # (atomics' order)
    assert not torch.allclose(eager[0][0], eager[1][0])  # the batches differ, so replays saw new data


def test_cuda_graphs_survive_new_batch_sizes_and_buffers():
    # Keys change with the batch size and the tensors: each new key runs eagerly, then is captured;
    # results match the CPU oracle throughout.
    _, root, data = next(iter(small_structures()))
    cpu, gpu = pcc.compile(root), pcc.compile(root, device="cuda")
    for b in (64, 32, 64, 17, 64, 32):
        x = data[torch.randint(0, len(data), (b,))]
        for _ in range(3):
            with torch.no_grad():
                assert_close(gpu(x.cuda()).cpu(), cpu(x), TOL["tf32"])


def test_precision_switches_between_calls_with_graphs():
    # `precision` is the model's attribute, read on every call: the forward's and the backward's graph
    # keys hold it, so a model switched from TF32 to FP32 never replays a TF32 graph (whose flows are
    # some 1e-4 off the CPU's, past FP32's bound).
    _, root, data = next(iter(small_structures()))
    cpu, gpu = pcc.compile(root), pcc.compile(root, device="cuda")
    x = data[torch.randint(0, len(data), (64,))]
    cpu.zero_flows()
    cpu(x).sum().backward()
    with torch.no_grad():
        ref = cpu(x)
    scale = max(1.0, float(cpu.param_flows.abs().max()))
    before = pcc.cuda_graphs()
    try:
        pcc.set_cuda_graphs(True)
        for precision in ("tf32", "tf32", "fp32", "fp32", "fp32", "tf32", "fp32"):
            gpu.precision = precision
            gpu.zero_flows()
            out = gpu(x.cuda())
            out.sum().backward()
            assert_close(out.detach().cpu(), ref, TOL[precision])
            err = float((gpu.param_flows.cpu() - cpu.param_flows).abs().max()) / scale
            assert err <= TOL[precision], (precision, err)
    finally:
        pcc.set_cuda_graphs(before)
