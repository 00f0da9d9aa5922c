"""CompileOptions::fuse_inputs on the CPU backend: discrete input groups that only product partitions
read are computed inside those products (plan.h, InputGroup::fused; compiler pass fuse_inputs).

The benchmark structures at small sizes (their inputs are read by products: HCLT's at every tree level,
PD's and HMM's where their products are not fused into sums; RAT-SPN's twice each, so they stay), fresh random inputs and missing
masks every run: compiled with and without fused inputs they give the same log-likelihoods, parameter
flows, gradients and EM step bit for bit (the product adds the same floats in the same order), and the
fused model matches the float64 reference (log-likelihoods within 1e-4 x max(1, |ref|), as
test_compile_vs_reference).
"""
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import pcc

from test_compile_vs_reference import assert_close


def structures():
    img = torch.randint(0, 5, (300, 36))
    cat = pcc.dists.Categorical(num_cats=5)
    yield "hclt", pcc.structures.HCLT(img, num_latents=8, input_dist=cat), img
    yield "hclt-bernoulli", pcc.structures.HCLT(img % 2, num_latents=8, input_dist=pcc.dists.Bernoulli()), img % 2
    yield "pd", pcc.structures.PD((6, 6), num_latents=6, split_intervals=(3, 3), input_dist=cat), img
    yield "rat", pcc.structures.RAT_SPN(36, num_latents=6, depth=2, num_repetitions=2, input_dist=cat), img
    yield "hmm", pcc.structures.HMM(12, num_latents=6, num_emits=5), img[:, :12]


def run(model, x, missing):
    """Log-likelihoods, parameter flows and log-parameter gradients of one backward, then one EM step."""
    model.requires_grad_(True)
    model.zero_flows()
    ll = model(x, missing)
    (ll * torch.linspace(-1, 1, len(x))[:, None]).sum().backward()
    flows, grad = model.param_flows.clone(), model.log_params.grad.clone()
    model.log_params.grad = None
    model.requires_grad_(False)
    model.zero_flows()
    model(x, missing).sum().backward()
    model.em_step(step_size=0.5, pseudocount=0.1)
    return ll.detach(), flows, grad, model._normalized().clone()


@pytest.mark.parametrize("fuse_products", [False, "binary"])
@pytest.mark.parametrize("reuse_rows", [True, False])
def test_fused_inputs_change_nothing_but_the_launches(fuse_products, reuse_rows):
    for name, root, data in structures():
        x = data[torch.randperm(len(data))[:97]]
        missing = torch.rand(x.shape) < 0.2
        fused = pcc.compile(root, fuse_products=fuse_products, reuse_rows=reuse_rows)
        plain = pcc.compile(root, fuse_products=fuse_products, reuse_rows=reuse_rows, fuse_inputs=False)
        sf, sp = fused.plan.summary(), plain.plan.summary()
        assert sp["fused_input_groups"] == 0
        # With products fused into sums, inputs that sums read stay (all of HMM's). Where rows are kept,
        # one input group holds every input, and HCLT's and HMM's sums read some of them: it stays.
        # RAT-SPN's repetitions read each input twice: computing it twice would cost more than its row.
        if not fuse_products and name != "rat" and (reuse_rows or name == "pd"):
            assert sf["fused_input_groups"] > 0, name
        if name == "rat":
            assert sf["fused_input_groups"] == 0
        assert sf["input_groups"] == sp["input_groups"]
        assert sf["bytes_per_sample"] < sp["bytes_per_sample"] or sf["fused_input_groups"] == 0
        assert fused.plan.param_layout_id == plain.plan.param_layout_id
        with torch.no_grad():
            assert_close(fused(x, missing), pcc.reference.log_likelihood(root, x, missing))
        for got, want in zip(run(fused, x, missing), run(plain, x, missing)):
            assert torch.equal(got, want), name


def test_fused_inputs_read_x_of_any_dtype():
    name, root, data = next(structures())
    x = data[:40]
    missing = torch.rand(x.shape) < 0.1
    model = pcc.compile(root)
    with torch.no_grad():
        want = model(x, missing)
        for dtype in (torch.uint8, torch.int8, torch.int16, torch.int32, torch.float32, torch.float64, torch.bool):
            xx = (x % 2 if dtype == torch.bool else x).to(dtype)
            ref = model(xx.to(torch.int64), missing) if dtype == torch.bool else want
            assert torch.equal(model(xx, missing), ref), dtype


def test_fused_inputs_still_refuse_bad_values():
    name, root, data = next(structures())
    model = pcc.compile(root)
    x = data[:5].clone()
    x[3, 7] = 5  # 5 categories: 0..4
    with pytest.raises(pcc.Error, match=r"x\[3, 7\] = 5"):
        model(x)
    with pytest.raises(pcc.Error, match="fuse_inputs: expected True or False"):
        pcc.compile(root, fuse_inputs="yes")


def test_fused_plan_files_and_the_cli(tmp_path):
    name, root, data = next(structures())
    plan = pcc.compile(root).plan
    assert plan.summary()["fused_input_groups"] > 0
    assert "fused)" in plan.report()
    plan.save(str(tmp_path / "h.pcplan"))
    assert pcc._C.Plan.load(str(tmp_path / "h.pcplan")).to_bytes() == plan.to_bytes()
    assert len(plan.fused_input_rows()) == plan.summary()["fused_input_groups"]
    pcc.save(root, tmp_path / "c.pcir")
    exe = Path(pcc.__file__).parent / "bin" / "pcc-compile"

    def cli(*args):
        return subprocess.run([str(exe), *args], capture_output=True, text=True)

    # pcc-compile fuses by default, as pcc.compile; --no-fuse-inputs keeps every input in its layer.
    done = cli(str(tmp_path / "c.pcir"), "-o", str(tmp_path / "cli.pcplan"))
    assert done.returncode == 0, done.stderr
    assert pcc._C.Plan.load(str(tmp_path / "cli.pcplan")).to_bytes() == plan.to_bytes()
    done = cli(str(tmp_path / "c.pcir"), "--no-fuse-inputs", "-o", str(tmp_path / "plain.pcplan"))
    assert done.returncode == 0 and "fused)" not in done.stdout, done.stderr
    plain = pcc._C.Plan.load(str(tmp_path / "plain.pcplan"))
    assert plain.to_bytes() == pcc.compile(root, fuse_inputs=False).plan.to_bytes()
    dump = cli(str(tmp_path / "c.pcir"), "--dump-after=fuse_inputs", "-o", str(tmp_path / "d"))
    assert dump.returncode == 0 and " fused\n" in dump.stdout and "fused_inputs: " in dump.stdout
    bad = cli("--report", str(tmp_path / "cli.pcplan"), "--no-fuse-inputs")
    assert bad.returncode == 2 and "--report takes only a .pcplan file" in bad.stderr
    # A truncated fused plan is refused with the field it stopped in, not read.
    data = (tmp_path / "cli.pcplan").read_bytes()
    (tmp_path / "cut.pcplan").write_bytes(data[: len(data) // 2])
    with pytest.raises(pcc.Error, match="truncated"):
        pcc._C.Plan.load(str(tmp_path / "cut.pcplan"))


def test_state_dict_moves_between_fused_and_unfused_models():
    name, root, data = next(structures())
    a = pcc.compile(root)
    b = pcc.compile(root, fuse_inputs=False)
    x = data[:50]
    a.zero_flows()
    a(x).sum().backward()
    a.em_step(step_size=1.0, pseudocount=0.1)
    b.load_state_dict(a.state_dict())
    with torch.no_grad():  # the parameters go through the log domain and back: float32 rounding
        np.testing.assert_allclose(a(x).numpy(), b(x).numpy(), rtol=1e-6)
