"""Training checkpoints without pickle: the circuit as a `.pcir`, the training state as JSON.

A checkpoint folder (`pcc train --out DIR`) holds

    checkpoint.json        the manifest and training state (the commit point, see below)
    model-eNNNN-TAG.pcir   the circuit with its parameters after epoch NNNN (`pcc.save`, checksummed)
    optim-eNNNN-TAG.npz    Adam only: the optimizer's state tensors and the exact log-parameters
                           (`np.savez`, read back with `allow_pickle=False`)

`checkpoint.json` records the epoch, the run's arguments, the RNG states (as lists of ints), the
metrics so far, a fingerprint of the circuit's structure (`fingerprint`), one of the data set
(`data_fingerprint`), and the names and SHA-256 of the files above.

Atomicity: every file is written to a temporary file in the same folder and moved into place with
`os.replace` (atomic on POSIX and Windows). The data files carry the epoch and a random tag in their
name, so a new checkpoint never overwrites the files the current manifest points at; `checkpoint.json` is replaced
last, and only then are the previous epoch's files deleted. A write that fails at any point (disk
full, killed process, an exception) therefore leaves the previous checkpoint whole and loadable.

Reading verifies everything (JSON syntax and fields, file checksums, the `.pcir`'s own checksum, the
structure fingerprint) and raises `pcc.Error` naming what is wrong, so a truncated or mismatched
checkpoint stops with a clear message instead of training on garbage.
"""
import hashlib
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import Error
from .nodes import InputVector, ProductVector, SumVector, topological_order

__all__ = ["MANIFEST", "Checkpoint", "fingerprint", "data_fingerprint", "atomic_write", "save_checkpoint",
           "load_checkpoint", "check_circuit_fits"]

MANIFEST = "checkpoint.json"
FORMAT = "pcc-checkpoint"
VERSION = 1
_DATA_FILE = re.compile(r"^(model-e\d+-[0-9a-f]{8}\.pcir|optim-e\d+-[0-9a-f]{8}\.npz)$")
_TMP_FILE = re.compile(r"^\..+\.tmp-\d+$")


# ---------------------------------------------------------------------------------------------------
# fingerprints


def fingerprint(root):
    """SHA-256 (hex) of the circuit's structure: vectors, scopes, connectivity, distribution families
    and the tying pattern; not the parameter values. Survives `pcc.save` / `pcc.load`."""
    h = hashlib.sha256()
    index, groups = {}, {}
    for i, v in enumerate(topological_order(root)):
        index[id(v)] = i
        ch = [index[id(c)] for c in v.children]
        if isinstance(v, InputVector):
            g = groups.setdefault(id(v.param_group), len(groups))
            item = ["in", v.var, v.num_nodes, v.dist.name, int(v.dist.num_cats), g]
        elif isinstance(v, ProductVector):
            item = ["prod", v.num_nodes, ch, _digest(v.edges)]
        elif isinstance(v, SumVector):
            g = groups.setdefault(id(v.param_group), len(groups))
            item = ["sum", v.num_nodes, ch, v.form, int(v.block_size), _digest(v.edges), g]
        else:
            raise Error(f"fingerprint: unknown node vector type {type(v).__name__}")
        h.update(json.dumps(item).encode())
    return h.hexdigest()


def _digest(edges):
    if edges is None:
        return None
    a = np.ascontiguousarray(edges, dtype=np.int64)
    return [list(a.shape), hashlib.sha256(a.tobytes()).hexdigest()[:32]]


def data_fingerprint(data):
    """Identity of a `pcc.datasets.Dataset`: name, shape, levels and a hash of the training rows."""
    train = np.ascontiguousarray(data.train.cpu().numpy(), dtype=np.int64)
    return {"name": data.name, "num_vars": int(data.num_vars), "num_cats": int(data.num_cats),
            "image_shape": list(data.image_shape) if data.image_shape else None,
            "train_rows": int(len(data.train)),
            "train_sha256": hashlib.sha256(train.tobytes()).hexdigest()}


def check_circuit_fits(root, data, what="the circuit"):
    """Raise `pcc.Error` unless circuit `root` models exactly `data`'s variables and categories."""
    scope = root.scope
    if len(scope) != data.num_vars or scope[-1] != data.num_vars - 1:
        raise Error(f"{what} has {len(scope)} variables (0..{scope[-1]}) but data set {data.name!r} has "
                    f"{data.num_vars} columns: it was trained on another data set")
    for v in topological_order(root):
        if not isinstance(v, InputVector):
            continue
        d = v.dist
        ok = (d.name == "categorical" and d.num_cats == data.num_cats) or \
             (d.name == "bernoulli" and data.num_cats == 2)
        if not ok:
            has = f"{d.name} with {d.num_cats} categories" if d.name == "categorical" else d.name
            raise Error(f"{what} models variable {v.var} as {has}, but data set {data.name!r} has "
                        f"{data.num_cats} levels per variable: it was trained on another data set")


# ---------------------------------------------------------------------------------------------------
# writing


def atomic_write(path, write):
    """Call `write(tmp_path)` on a temporary file next to `path`, then move it over `path` atomically.

    If `write` raises (or the process dies), `path` keeps its previous content and the temporary file
    is removed (or, after a crash, swept by the next `save_checkpoint`)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path, obj):
    """`obj` as indented JSON at `path`, atomically."""
    text = json.dumps(obj, indent=1, allow_nan=True) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _save_circuit(model, path):
    # One function so that tests can make it fail half-way.
    from .serialize import save
    save(model, path)


def _save_arrays(path, arrays):
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a path
        np.savez(f, **arrays)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(folder, model, state, arrays=None):
    """Write a checkpoint of `model` (a TensorCircuit) after epoch `state["epoch"]` into `folder`.

    `state`: JSON-serializable training state (epoch, args, rng, metrics, ...); `fingerprint` and the
    file entries are added here. `arrays`: optional dict of NumPy arrays (the Adam state), stored as
    an `.npz`. Returns the manifest written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _sweep_tmp(folder)
    epoch = int(state["epoch"])
    manifest = {"format": FORMAT, "version": VERSION, **state}
    tag = os.urandom(4).hex()  # never the name of a file the current manifest points at
    model_name = f"model-e{epoch:04d}-{tag}.pcir"
    atomic_write(folder / model_name, lambda tmp: _save_circuit(model, tmp))
    manifest["model"] = {"file": model_name, "sha256": _sha256(folder / model_name)}
    if arrays is not None:
        optim_name = f"optim-e{epoch:04d}-{tag}.npz"
        atomic_write(folder / optim_name, lambda tmp: _save_arrays(tmp, arrays))
        manifest["optimizer_state"] = {"file": optim_name, "sha256": _sha256(folder / optim_name)}
    write_json(folder / MANIFEST, manifest)  # the commit point
    keep = {manifest["model"]["file"], manifest.get("optimizer_state", {}).get("file")}
    for p in folder.iterdir():
        if _DATA_FILE.match(p.name) and p.name not in keep:
            try:
                p.unlink()
            except OSError:
                pass
    return manifest


def _sweep_tmp(folder):
    for p in folder.iterdir():
        if _TMP_FILE.match(p.name):
            try:
                p.unlink()
            except OSError:
                pass


# ---------------------------------------------------------------------------------------------------
# reading


@dataclass
class Checkpoint:
    """A loaded checkpoint: `root` (the circuit with its parameters), `state` (the manifest; empty
    for a bare `.pcir`), `arrays` (the optimizer state, or None), `path` (what was loaded)."""

    root: object
    path: Path
    state: dict = field(default_factory=dict)
    arrays: dict = None

    @property
    def epoch(self):
        return int(self.state.get("epoch", 0))

    @property
    def args(self):
        return self.state.get("args", {})


def has_checkpoint(folder):
    return (Path(folder) / MANIFEST).is_file()


def load_checkpoint(path):
    """Load a checkpoint folder (or its `checkpoint.json`), or a bare `.pcir` file; verify it."""
    path = Path(os.path.expanduser(str(path)))
    if path.is_dir():
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise Error(f"{path}: no checkpoint here ({MANIFEST} not found)")
    elif path.is_file():
        if path.suffix != ".json":
            return Checkpoint(root=_load_pcir(path), path=path)
        manifest_path = path
    else:
        raise Error(f"{path}: no such checkpoint file or folder")
    folder = manifest_path.parent
    state = _read_manifest(manifest_path)
    model_file = _checked_file(folder, state, "model", manifest_path)
    root = _load_pcir(model_file)
    if fingerprint(root) != state["fingerprint"]:
        raise Error(f"{model_file}: the circuit's structure does not match the fingerprint in "
                    f"{manifest_path} (the file was replaced by another circuit's)")
    arrays = None
    if "optimizer_state" in state:
        npz = _checked_file(folder, state, "optimizer_state", manifest_path)
        try:
            with np.load(npz, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
            raise Error(f"{npz}: unreadable optimizer state ({e})") from None
    return Checkpoint(root=root, path=folder, state=state, arrays=arrays)


def _load_pcir(path):
    from .serialize import load
    try:
        return load(path)
    except Error as e:
        raise Error(f"{path}: not a loadable circuit: {e}") from None
    except OSError as e:
        raise Error(f"{path}: cannot read: {e.strerror or e}") from None


def _read_manifest(path):
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise Error(f"{path}: cannot read ({e})") from None
    try:
        state = json.loads(text)
    except json.JSONDecodeError as e:
        raise Error(f"{path}: corrupt or truncated checkpoint ({e.msg} at line {e.lineno} column "
                    f"{e.colno})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise Error(f"{path}: not a pcc checkpoint (no \"format\": \"{FORMAT}\")")
    if state.get("version") != VERSION:
        raise Error(f"{path}: checkpoint version {state.get('version')!r}, this pcc reads version {VERSION}")
    for key, kind in (("epoch", int), ("args", dict), ("fingerprint", str), ("model", dict),
                      ("metrics", list)):
        if not isinstance(state.get(key), kind):
            raise Error(f"{path}: checkpoint field {key!r} is missing or not a {kind.__name__}")
    return state


def _checked_file(folder, state, key, manifest_path):
    entry = state[key]
    name = entry.get("file") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not _DATA_FILE.match(name):
        raise Error(f"{manifest_path}: checkpoint field {key!r} names no valid file")
    p = folder / name
    if not p.is_file():
        raise Error(f"{manifest_path}: refers to {name}, which is missing")
    if _sha256(p) != entry.get("sha256"):
        raise Error(f"{p}: contents do not match the SHA-256 in {manifest_path} (truncated or modified)")
    return p
