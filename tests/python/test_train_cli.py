"""`pcc train` / `pcc eval` in-process: metrics, picture, checkpoints (atomic, resumable, verified) and
the one-line errors for bad checkpoints and bad data. Tiny settings (digits, few latents, 1-2 epochs)."""
import hashlib
import json
import math

import numpy as np
import pytest
import torch

import pcc
from pcc import checkpoint as ckpt
from pcc.cli import main

TINY = ["--latents", "4", "--batch-size", "256", "--threads", "1", "--no-progress"]
EPOCH_KEYS = {"epoch", "train_ll", "valid_ll", "test_ll", "train_bpd", "valid_bpd", "test_bpd",
              "samples_per_sec", "seconds"}


def _train(out, *extra, epochs=1):
    return main(["train", "--out", str(out), "--epochs", str(epochs), *TINY, *extra])


def _files(folder):
    """{name: sha256} of every file in `folder` (to show that nothing changed)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pcc: error: "), err
    for n in needles:
        assert n in err[0], (n, err[0])
    assert "Traceback" not in err[0]
    return err[0]


@pytest.fixture(scope="module")
def run2(tmp_path_factory):
    """One 2-epoch EM run on digits shared by the read-only tests."""
    out = tmp_path_factory.mktemp("run2")
    assert _train(out, epochs=2) == 0
    return out


def test_train_writes_metrics_table_png_and_checkpoint(run2, capsys):
    m = json.loads((run2 / "metrics.json").read_text())
    assert m["args"]["structure"] == "hclt" and m["args"]["dataset"] == "digits"
    assert m["args"]["latents"] == 4 and m["args"]["epochs"] == 2
    assert [e["epoch"] for e in m["epochs"]] == [1, 2]
    for e in m["epochs"]:
        assert set(e) == EPOCH_KEYS
        for split in ("train", "valid", "test"):
            ll = e[f"{split}_ll"]
            assert math.isfinite(ll) and ll < 0
            assert e[f"{split}_bpd"] == pytest.approx(-ll / (64 * math.log(2)))
        assert e["samples_per_sec"] > 0 and e["seconds"] > 0
    assert m["epochs"][1]["valid_ll"] > m["epochs"][0]["valid_ll"]  # EM learns
    # The PNG is a real PNG a person can look at.
    from PIL import Image
    png = run2 / "test-likelihoods.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as im:
        im.verify()
    with Image.open(png) as im:
        assert im.format == "PNG" and im.width >= 500 and im.height >= 300
    # The checkpoint: a manifest, one .pcir, no pickle anywhere, no temporary files left.
    names = sorted(p.name for p in run2.iterdir())
    assert [n for n in names if n.endswith(".pcir")] and not [n for n in names if n.startswith(".")]
    assert not [n for n in names if n.endswith((".pt", ".pth", ".pkl", ".npz"))]
    state = json.loads((run2 / "checkpoint.json").read_text())
    assert state["epoch"] == 2 and state["metrics"] == m["epochs"]
    assert isinstance(state["rng"]["torch"], list) and isinstance(state["rng"]["shuffle"], list)
    ck = ckpt.load_checkpoint(run2)
    assert ck.epoch == 2 and ckpt.fingerprint(ck.root) == state["fingerprint"]


def test_train_prints_the_result_table(tmp_path, capsys):
    assert _train(tmp_path / "r") == 0
    out = capsys.readouterr().out
    assert "epoch   train LL   valid LL    test LL  test bpd  samples/s  seconds" in out
    assert "final     test " in out and "bits/dim" in out


def test_eval_reports_the_test_likelihood(run2, capsys):
    last = json.loads((run2 / "metrics.json").read_text())["epochs"][-1]
    capsys.readouterr()
    assert main(["eval", str(run2), "--threads", "1"]) == 0  # dataset taken from the checkpoint
    out = capsys.readouterr().out
    assert f"{last['test_ll']:.4f} nats/sample" in out and f"{last['test_bpd']:.4f} bits/dim" in out
    pcir = next(run2.glob("*.pcir"))
    assert main(["eval", str(pcir), "--dataset", "digits", "--threads", "1"]) == 0
    assert f"{last['test_ll']:.4f} nats/sample" in capsys.readouterr().out


def test_resume_continues_and_matches_an_uninterrupted_run(run2, tmp_path):
    out = tmp_path / "r"
    assert _train(out, epochs=1) == 0
    assert _train(out, "--resume", epochs=2) == 0
    got = json.loads((out / "metrics.json").read_text())["epochs"]
    ref = json.loads((run2 / "metrics.json").read_text())["epochs"]
    assert [e["epoch"] for e in got] == [1, 2]
    for g, r in zip(got, ref):  # same seed and thread count: the resumed run is the same run
        for k in ("train_ll", "valid_ll", "test_ll"):
            assert g[k] == pytest.approx(r[k], abs=1e-4)
    assert ckpt.load_checkpoint(out).epoch == 2


def test_adam_checkpoint_resumes_exactly(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _train(a, "--optimizer", "adam", "--lr", "0.05", epochs=2) == 0
    assert _train(b, "--optimizer", "adam", "--lr", "0.05", epochs=1) == 0
    npz = next(b.glob("optim-*.npz"))
    with np.load(npz, allow_pickle=False) as z:  # plain arrays, readable without pickle
        assert "log_params" in z.files and any(k.endswith("exp_avg") for k in z.files)
    assert _train(b, "--optimizer", "adam", "--lr", "0.05", "--resume", epochs=2) == 0
    ea = json.loads((a / "metrics.json").read_text())["epochs"]
    eb = json.loads((b / "metrics.json").read_text())["epochs"]
    assert [e["epoch"] for e in eb] == [1, 2]
    assert eb[1]["test_ll"] == pytest.approx(ea[1]["test_ll"], abs=1e-4)
    assert len(list(b.glob("optim-*.npz"))) == 1  # the previous epoch's state was cleaned up


def test_adam_state_of_another_parameter_layout_is_refused():
    from pcc import train
    root = pcc.summate(pcc.multiply(pcc.inputs(0, 4, pcc.dists.Categorical(num_cats=3)),
                                    pcc.inputs(1, 4, pcc.dists.Categorical(num_cats=5))), num_nodes=1)
    model = pcc.compile(root).requires_grad_(True)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    model(torch.tensor([[0, 1], [2, 4]])).sum().backward()
    opt.step()
    arrays, groups = train._adam_arrays(model, opt)
    assert str(arrays["param_layout_id"]) == model.plan.param_layout_id
    train._restore_adam(model, opt, arrays, groups, 0.1)  # its own state: fine
    arrays["param_layout_id"] = np.array("0123456789abcdef")
    before = model.log_params.detach().clone()
    with pytest.raises(pcc.Error, match="parameter layout 0123456789abcdef"):
        train._restore_adam(model, opt, arrays, groups, 0.1)
    assert torch.equal(model.log_params.detach(), before)


@pytest.mark.parametrize("args,needle", [
    (["--latents", "8"], "latents=4 (asked: 8)"),
    (["--structure", "pd"], "structure='hclt' (asked: 'pd')"),
    (["--optimizer", "adam"], "optimizer='em' (asked: 'adam')"),
])
def test_resume_refuses_another_runs_checkpoint(run2, capsys, args, needle):
    before = _files(run2)
    capsys.readouterr()
    assert main(["train", "--out", str(run2), "--epochs", "3", "--resume", *TINY, *args]) == 2
    _one_line_error(capsys, "--resume", needle)
    assert _files(run2) == before


def test_resume_refuses_other_data_and_missing_checkpoint(tmp_path, capsys):
    out = tmp_path / "nltcs"
    _debd(tmp_path / "data")
    assert _train(out, "--dataset", "debd:nltcs", "--data-root", str(tmp_path / "data")) == 0
    before = _files(out)
    _debd(tmp_path / "data", seed=5)  # same name, different rows
    capsys.readouterr()
    assert _train(out, "--dataset", "debd:nltcs", "--data-root", str(tmp_path / "data"), "--resume",
                  epochs=2) == 2
    _one_line_error(capsys, "different data", "train_sha256")
    assert _files(out) == before
    assert _train(tmp_path / "empty", "--resume") == 2
    _one_line_error(capsys, "no checkpoint")


def test_truncated_checkpoint_is_refused_and_left_alone(run2, tmp_path, capsys):
    import shutil

    # A truncated .pcir inside a checkpoint folder: the manifest's checksum catches it.
    bad = tmp_path / "bad"
    shutil.copytree(run2, bad)
    pcir = next(bad.glob("*.pcir"))
    pcir.write_bytes(pcir.read_bytes()[:1000])
    before = _files(bad)
    capsys.readouterr()
    assert main(["eval", str(bad)]) == 2
    _one_line_error(capsys, pcir.name, "truncated")
    assert main(["train", "--out", str(bad), "--epochs", "3", "--resume", *TINY]) == 2
    _one_line_error(capsys, "truncated")
    assert _files(bad) == before
    # A bare truncated .pcir: the file's own format check.
    assert main(["eval", str(pcir), "--dataset", "digits"]) == 2
    _one_line_error(capsys, "not a loadable circuit")
    # A truncated manifest.
    bad2 = tmp_path / "bad2"
    shutil.copytree(run2, bad2)
    (bad2 / "checkpoint.json").write_text((run2 / "checkpoint.json").read_text()[:200])
    before = _files(bad2)
    assert main(["eval", str(bad2)]) == 2
    _one_line_error(capsys, "checkpoint.json", "corrupt or truncated")
    assert main(["train", "--out", str(bad2), "--epochs", "3", "--resume", *TINY]) == 2
    _one_line_error(capsys, "corrupt or truncated")
    assert _files(bad2) == before


def test_eval_refuses_a_circuit_of_other_data(tmp_path, capsys):
    torch.manual_seed(0)
    x16 = torch.randint(0, 2, (50, 16))
    p16 = tmp_path / "binary16.pcir"
    pcc.save(pcc.structures.HCLT(x16, 4, input_dist=pcc.dists.Categorical(num_cats=2)), p16)
    assert main(["eval", str(p16), "--dataset", "digits"]) == 2
    _one_line_error(capsys, "16 variables", "64 columns")
    x64 = torch.randint(0, 2, (50, 64))
    p64 = tmp_path / "binary64.pcir"
    pcc.save(pcc.structures.HCLT(x64, 4, input_dist=pcc.dists.Categorical(num_cats=2)), p64)
    assert main(["eval", str(p64), "--dataset", "digits"]) == 2
    _one_line_error(capsys, "categorical with 2 categories", "17 levels")
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    _one_line_error(capsys, "no such checkpoint")


def _debd(root, seed=0, bad=None):
    """A tiny nltcs-shaped DEBD fixture (16 binary columns); `bad(rows)` may corrupt the train split."""
    rng = np.random.default_rng(seed)
    folder = root / "nltcs"
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", 40), ("valid", 10), ("test", 10)):
        rows = [",".join(map(str, r)) for r in rng.integers(0, 2, (n, 16))]
        if split == "train" and bad is not None:
            rows = bad(rows)
        (folder / f"nltcs.{split}.data").write_text("\n".join(rows) + "\n")


def _with_a_two(rows):
    rows[3] = "2" + rows[3][1:]
    return rows


def _one_column_short(rows):
    return [r[:-2] for r in rows]


@pytest.mark.parametrize("bad,needle", [(_with_a_two, "not 0 or 1"),
                                        (_one_column_short, "wrong number of columns")])
def test_bad_dataset_is_refused(tmp_path, capsys, bad, needle):
    _debd(tmp_path / "data", bad=bad)
    out = tmp_path / "out"
    assert _train(out, "--dataset", "debd:nltcs", "--data-root", str(tmp_path / "data")) == 2
    _one_line_error(capsys, "nltcs.train.data", needle)
    assert not out.exists()


def test_non_image_data_trains_without_a_picture(tmp_path):
    _debd(tmp_path / "data")
    out = tmp_path / "out"
    assert _train(out, "--dataset", "debd:nltcs", "--data-root", str(tmp_path / "data")) == 0
    assert (out / "metrics.json").exists() and not (out / "test-likelihoods.png").exists()


def test_failed_checkpoint_write_leaves_the_previous_one_intact(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r"
    assert _train(out) == 0
    before = _files(out)

    def broken_circuit_writer(model, path):
        with open(path, "wb") as f:
            f.write(b"PCIR half a file")
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(ckpt, "_save_circuit", broken_circuit_writer)
    capsys.readouterr()
    assert _train(out, "--resume", epochs=2) == 2
    _one_line_error(capsys, "No space left on device")
    assert _files(out) == before
    assert ckpt.load_checkpoint(out).epoch == 1
    monkeypatch.undo()

    # Failing while the manifest (the commit point) is written: the new .pcir exists, but the old
    # manifest still names the old one, and the stray new file is swept by the next checkpoint.
    real_write_json = ckpt.write_json

    def broken_manifest(path, obj):
        if path.name == ckpt.MANIFEST:
            path.with_name(f".{path.name}.tmp-1").write_text(json.dumps(obj)[:100])
            raise OSError(5, "Input/output error", str(path))
        real_write_json(path, obj)

    monkeypatch.setattr(ckpt, "write_json", broken_manifest)
    assert _train(out, "--resume", epochs=2) == 2
    _one_line_error(capsys, "Input/output error")
    assert _files(out)["checkpoint.json"] == before["checkpoint.json"]
    ck = ckpt.load_checkpoint(out)
    assert ck.epoch == 1
    monkeypatch.undo()
    assert _train(out, "--resume", epochs=2) == 0  # and training goes on from there
    assert ckpt.load_checkpoint(out).epoch == 2
    assert len(list(out.glob("*.pcir"))) == 1 and not list(out.glob(".*"))


@pytest.mark.parametrize("structure", ["pd", "rat", "hmm"])
def test_other_structures_train(tmp_path, structure):
    out = tmp_path / structure
    assert _train(out, "--structure", structure, "--latents", "2") == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["args"]["structure"] == structure and math.isfinite(m["epochs"][0]["test_ll"])
    if structure == "pd":
        assert m["args"]["pd_interval"] == [2, 2]
    if structure == "rat":
        assert m["args"]["rat_depth"] == 4 and m["args"]["rat_repetitions"] == 8


def test_defaults_are_the_readme_main_job():
    import argparse

    from pcc.cli import _add_train_args
    from pcc.train import _config, default_out

    p = argparse.ArgumentParser()
    _add_train_args(p)
    a = vars(p.parse_args([]))
    assert (a["structure"], a["dataset"], a["latents"], a["epochs"], a["batch_size"], a["optimizer"]) == \
        ("hclt", "digits", 32, 5, 256, "em")
    assert _config({k: v for k, v in a.items()})["out"] == default_out("hclt", "digits") == "runs/hclt-digits"


def test_bad_arguments_are_one_line_errors(tmp_path, capsys):
    assert _train(tmp_path / "r", "--step-size", "1.5") == 2
    _one_line_error(capsys, "--step-size")
    assert _train(tmp_path / "r", "--dataset", "nltcs") == 2
    _one_line_error(capsys, "debd:nltcs")


def test_factorized_baseline_is_per_variable_em(tmp_path):
    """`--structure factorized`: one 1-node categorical per variable under a 1-node product root; one
    full-batch EM step (step size 1) gives the smoothed frequencies (count + a/K) / (n + a)."""
    out = tmp_path / "fact"
    assert _train(out, "--structure", "factorized", "--batch-size", "100000", "--step-size", "1",
                  "--pseudocount", "1") == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["args"]["structure"] == "factorized"
    assert m["circuit"]["sum_nodes"] == 0 and m["circuit"]["input_nodes"] == 64
    data = pcc.datasets.digits()
    train, test = data.train.numpy().astype(np.int64), data.test.numpy().astype(np.int64)
    k, n = data.num_cats, len(train)
    counts = np.stack([np.bincount(train[:, v], minlength=k) for v in range(data.num_vars)])
    probs = (counts + 1.0 / k) / (n + 1.0)
    want = np.log(probs[np.arange(data.num_vars)[None, :], test]).sum(1).mean()
    assert abs(m["epochs"][0]["test_ll"] - want) < 1e-3 * max(1.0, abs(want))
    ck = ckpt.load_checkpoint(out)
    assert ck.root.num_nodes == 1 and len(ck.root.children) == data.num_vars


def test_precision_is_passed_on_and_checked(tmp_path, capsys):
    # The CPU backend is float32 whatever the precision says (it selects the CUDA sum kernels), so an
    # fp32 run on the CPU learns exactly what the default run learns; a bad value writes nothing.
    assert _train(tmp_path / "tf32") == 0
    assert _train(tmp_path / "fp32", "--precision", "fp32") == 0
    read = lambda d: json.loads((tmp_path / d / "metrics.json").read_text())["epochs"]  # noqa: E731
    assert [e["test_ll"] for e in read("fp32")] == [e["test_ll"] for e in read("tf32")]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        _train(tmp_path / "bad", "--precision", "fp16")
    assert "fp16" in capsys.readouterr().err
    from pcc.train import train
    with pytest.raises(pcc.Error, match="precision"):
        train({"precision": "fp16", "out": str(tmp_path / "bad2"), "epochs": 1, "latents": 4,
               "progress": False})
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad2").exists()
