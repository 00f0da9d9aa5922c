"""Bad input to a compiled model or to the file readers: a pcc.Error naming what is wrong, never a
crash or a silent wrong answer; failed writes leave existing files intact."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import pcc
from pcc import dists


@pytest.fixture
def model_and_root():
    torch.manual_seed(1)
    a = pcc.inputs(0, num_nodes=4, dist=dists.Categorical(num_cats=3))
    b = pcc.inputs(1, num_nodes=4, dist=dists.Bernoulli())
    g = pcc.inputs(2, num_nodes=4, dist=dists.Gaussian())
    root = pcc.summate(pcc.multiply(a, b, g), num_nodes=1)
    return pcc.compile(root), root


def test_error_is_a_value_error():
    assert issubclass(pcc.Error, ValueError)


@pytest.mark.parametrize("x, missing, words", [
    (torch.zeros(3, 2), None, ["shape", "3"]),
    (torch.zeros(3), None, ["shape"]),
    (torch.tensor([[3, 1, 0.5]]), None, ["variable 0", "3"]),
    (torch.tensor([[1.5, 1, 0.5]]), None, ["variable 0", "1.5"]),
    (torch.tensor([[-1, 1, 0.5]]), None, ["variable 0"]),
    (torch.tensor([[0, 2, 0.5]]), None, ["variable 1"]),
    (torch.tensor([[0, 1, float("nan")]]), None, ["NaN"]),
    (torch.tensor([[float("nan"), 1, 0.5]]), None, ["NaN"]),
    (torch.tensor([[0, 1, 0.5]]), torch.tensor([[1, 0, 0]]), ["missing", "bool"]),
    (torch.tensor([[0, 1, 0.5]]), torch.tensor([[True, False]]), ["missing", "shape"]),
    ([[0, 1, 0.5]], None, ["torch.Tensor"]),
])
def test_bad_inputs(model_and_root, x, missing, words):
    model, _ = model_and_root
    with pytest.raises(pcc.Error) as e:
        model(x, missing)
    for w in words:
        assert w in str(e.value), str(e.value)


def test_missing_entries_are_not_read(model_and_root):
    model, root = model_and_root
    x = torch.tensor([[7.0, float("nan"), 0.25]])
    missing = torch.tensor([[True, True, False]])
    got = model(x, missing)
    ref = pcc.reference.log_likelihood(root, x, missing)
    assert abs(float(got[0]) - float(ref[0])) < 1e-4


def test_wrong_device_is_refused(model_and_root):
    model, _ = model_and_root
    with pytest.raises(pcc.Error, match="device"):
        model(torch.zeros(2, 3, device="meta"))


def test_compile_options(model_and_root):
    _, root = model_and_root
    with pytest.raises(pcc.Error, match="block_size"):
        pcc.compile(root, block_size=3)
    with pytest.raises(pcc.Error, match="device"):
        pcc.compile(root, device="tpu")
    for bad in (0, -5, 2.5, True, "64"):
        with pytest.raises(pcc.Error, match="chunk_input_rows"):
            pcc.compile(root, chunk_input_rows=bad)
    if not pcc.cuda_available():
        with pytest.raises(pcc.Error, match="CUDA"):
            pcc.compile(root, device="cuda")


def test_precision_is_checked_when_compiled_and_when_set(model_and_root):
    model, root = model_and_root
    with pytest.raises(pcc.Error, match="precision.*fp16"):
        pcc.compile(root, precision="fp16")
    x = torch.tensor([[0, 1, 0.5], [2, 0, -1.0]])
    with torch.no_grad():
        ref = model(x)
    for p in ("fp32", "bf16", "tf32"):  # the CPU backend is float32 whatever it says
        model.precision = p
        with torch.no_grad():
            assert torch.equal(model(x), ref)
    with pytest.raises(pcc.Error, match="precision.*'TF32'"):
        model.precision = "TF32"
    assert model.precision == "tf32"  # a refused value leaves the model as it was


def test_truncated_and_corrupt_files(model_and_root, tmp_path):
    _, root = model_and_root
    path = tmp_path / "c.pcir"
    pcc.save(root, path)
    blob = path.read_bytes()
    for cut in sorted({0, 1, 7, 8, 16, len(blob) // 2, len(blob) - 1}):
        (tmp_path / "t.pcir").write_bytes(blob[:cut])
        with pytest.raises(pcc.Error):
            pcc.load(tmp_path / "t.pcir")
    rng = np.random.default_rng()
    for _ in range(20):
        b = bytearray(blob)
        i = int(rng.integers(len(b)))
        b[i] ^= 1 << int(rng.integers(8))
        (tmp_path / "f.pcir").write_bytes(bytes(b))
        with pytest.raises(pcc.Error):
            pcc.load(tmp_path / "f.pcir")
    with pytest.raises(pcc.Error):
        pcc.load(tmp_path / "does-not-exist.pcir")


def test_failed_save_keeps_the_old_file(model_and_root, tmp_path):
    # A write that fails half-way (file size limit in a child process) must raise and leave the
    # previous file byte-for-byte intact.
    _, root = model_and_root
    path = tmp_path / "c.pcir"
    pcc.save(root, path)
    before = path.read_bytes()
    script = f"""
import resource, signal, sys, torch, pcc
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
torch.manual_seed(2)
a = pcc.inputs(0, num_nodes=64, dist=pcc.dists.Categorical(num_cats=50))
root = pcc.summate(a, num_nodes=64)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    pcc.save(root, {str(path)!r})
except pcc.Error as e:
    print("ERROR", e)
    sys.exit(0)
sys.exit(1)
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert r.returncode == 0 and "ERROR" in r.stdout, r.stdout + r.stderr
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["c.pcir"]  # no temporary left behind


def test_plan_file_round_trip(model_and_root, tmp_path):
    model, _ = model_and_root
    p = tmp_path / "m.pcplan"
    model.plan.save(str(p))
    back = pcc._C.Plan.load(str(p))
    assert back.to_bytes() == model.plan.to_bytes()
    with pytest.raises(pcc.Error, match="plan|circuit|magic"):
        pcc._C.Circuit.load(str(p))
