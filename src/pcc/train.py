"""The training loop behind `pcc train` and `pcc eval`: structures built from data, mini-batch EM or
Adam, per-epoch evaluation, metrics, checkpoints, resume, and the test-image picture.

Structures (built from the training split; `--latents K` nodes per latent/region vector, inputs are
`Categorical(num_cats)` of the data set):

- hclt: `HCLT`; the Chow-Liu tree is learned from at most the first `HCLT_ROWS` (2048) training rows,
  as PyJuice does.
- pd: `PD` on the image grid (`image_shape`), or on a 1 x num_vars grid for non-image data, with
  split interval `max(2, side // 7)` per axis unless `--pd-interval` is given: at most ~7 pieces per
  side, the PyJuice MNIST setting (interval 4 on 28x28) and interval 2 on 8x8 digits (2x2 leaf
  regions). An axis of length 1 is never split.
- rat: `RAT_SPN` with depth `min(4, floor(log2(num_vars)))` and 8 repetitions unless `--rat-depth` /
  `--rat-repetitions` are given (binary splits; depth 4 gives 16 leaf regions per repetition).
- hmm: `HMM` that reads each row as one sequence of length num_vars with num_emits = num_cats
  (homogeneous: emissions and transitions tied across steps).
- factorized: the fully factorized baseline: one input vector of 1 node per variable, multiplied into
  a 1-node root product (no sum nodes; `--latents` is ignored). EM updates its categoricals.

Learning: `em` (default) is PyJuice's mini-batch EM: per mini-batch `model(x).sum().backward()`,
`em_step(step_size, pseudocount)` (which zeroes the flows it used). `adam`: `requires_grad_(True)`,
`torch.optim.Adam(model.parameters(), lr)`, loss `-lls.mean()`.

Reported numbers are average log-likelihoods per sample in nats, and bits per dimension
`-ll / (num_vars * ln 2)`. `train_ll` is the mean over the epoch's mini-batches, each evaluated
before its own update (what the progress bar shows, as PyJuice reports it); valid and test are
evaluated after the epoch.

`--epochs N` is the total: `--resume` continues a run in `--out` from its last checkpoint up to epoch N
(restoring parameters, optimizer state and RNG states), and refuses a checkpoint whose circuit,
structure arguments or data differ from the ones asked for.
"""
import math
import time
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from .errors import Error

__all__ = ["DEFAULTS", "train", "evaluate", "build_structure", "log_likelihoods", "format_table",
           "HCLT_ROWS"]

HCLT_ROWS = 2048
PNG_NAME = "test-likelihoods.png"
METRICS_NAME = "metrics.json"

# `pcc train` with no arguments: HCLT on digits, a couple of minutes at most on a 2-core CPU.
DEFAULTS = {
    "structure": "hclt", "dataset": "digits", "data_root": None, "latents": 32, "epochs": 5,
    "batch_size": 256, "step_size": 0.5, "pseudocount": 0.1, "optimizer": "em", "lr": 0.05,
    "seed": 0, "device": "cpu", "precision": "tf32", "threads": 0, "out": None, "resume": False,
    "pd_interval": None, "rat_depth": None, "rat_repetitions": None, "progress": True,
}
STRUCTURES = ("hclt", "pd", "rat", "hmm", "factorized")
OPTIMIZERS = ("em", "adam")
# Arguments that define the circuit and the learning problem: a resumed run must agree on them.
MATCH_KEYS = ("structure", "dataset", "latents", "optimizer", "pd_interval", "rat_depth",
              "rat_repetitions")


def default_out(structure, dataset):
    return str(Path("runs") / f"{structure}-{dataset.replace(':', '-')}")


def _bpd(ll, num_vars):
    return -ll / (num_vars * math.log(2))


def _config(cfg):
    """Defaults filled in and values checked; raises pcc.Error naming a bad argument."""
    unknown = set(cfg) - set(DEFAULTS)
    if unknown:
        raise Error(f"train: unknown arguments {sorted(unknown)}")
    c = {**DEFAULTS, **{k: v for k, v in cfg.items() if v is not None}}
    if c["structure"] not in STRUCTURES:
        raise Error(f"--structure: expected one of {', '.join(STRUCTURES)}, got {c['structure']!r}")
    if c["optimizer"] not in OPTIMIZERS:
        raise Error(f"--optimizer: expected em or adam, got {c['optimizer']!r}")
    for k in ("latents", "epochs", "batch_size"):
        if int(c[k]) < 1:
            raise Error(f"--{k.replace('_', '-')}: must be >= 1, got {c[k]}")
    if not 0.0 < float(c["step_size"]) <= 1.0:
        raise Error(f"--step-size: must be in (0, 1], got {c['step_size']}")
    if not (float(c["pseudocount"]) >= 0.0 and math.isfinite(float(c["pseudocount"]))):
        raise Error(f"--pseudocount: must be a finite number >= 0, got {c['pseudocount']}")
    if not (float(c["lr"]) > 0.0 and math.isfinite(float(c["lr"]))):
        raise Error(f"--lr: must be a positive number, got {c['lr']}")
    for k in ("pd_interval", "rat_depth", "rat_repetitions"):
        if c[k] is not None and int(c[k]) < (0 if k == "rat_depth" else 1):
            raise Error(f"--{k.replace('_', '-')}: got {c[k]}")
    if c["out"] is None:
        c["out"] = default_out(c["structure"], c["dataset"])
    c["out"] = str(c["out"])
    return c


def _resolve_structure_args(c, data):
    """Fill the structure options that depend on the data (recorded in metrics and checkpoints)."""
    s = c["structure"]
    shape = data.image_shape or (1, data.num_vars)
    if s == "pd":
        if c["pd_interval"] is None:
            c["pd_interval"] = [1 if side == 1 else max(2, side // 7) for side in shape]
        elif not isinstance(c["pd_interval"], list):
            c["pd_interval"] = [int(c["pd_interval"])] * len(shape)
    else:
        c["pd_interval"] = None
    if s == "rat":
        if c["rat_depth"] is None:
            c["rat_depth"] = min(4, int(math.floor(math.log2(max(data.num_vars, 1)))))
        if c["rat_repetitions"] is None:
            c["rat_repetitions"] = 8
    else:
        c["rat_depth"] = c["rat_repetitions"] = None


def build_structure(c, data):
    """The circuit (one root node) that config `c` asks for, built from `data`'s training split."""
    from . import dists, structures
    from .nodes import inputs, multiply, summate

    torch.manual_seed(int(c["seed"]))
    k, dist = int(c["latents"]), dists.Categorical(num_cats=data.num_cats)
    s = c["structure"]
    if s == "hclt":
        root = structures.HCLT(data.train[:HCLT_ROWS], num_latents=k, input_dist=dist)
    elif s == "pd":
        shape = data.image_shape or (1, data.num_vars)
        root = structures.PD(shape, num_latents=k, split_intervals=c["pd_interval"], input_dist=dist)
    elif s == "rat":
        root = structures.RAT_SPN(data.num_vars, num_latents=k, depth=c["rat_depth"],
                                  num_repetitions=c["rat_repetitions"], input_dist=dist)
    elif s == "hmm":
        root = structures.HMM(data.num_vars, num_latents=k, num_emits=data.num_cats)
    else:  # factorized
        root = multiply(*[inputs(v, num_nodes=1, dist=dist) for v in range(data.num_vars)])
    if root.num_nodes != 1:
        root = summate(root, num_nodes=1)
    return root


@torch.no_grad()
def log_likelihoods(model, x, batch_size=1024):
    """log p(x) per row of `x`, float32 `[N]`, in batches."""
    out = [model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.empty(0)


def _rng_state(gen):
    return {"torch": torch.get_rng_state().tolist(), "shuffle": gen.get_state().tolist()}


def _set_rng_state(state, gen):
    try:
        torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
        gen.set_state(torch.tensor(state["shuffle"], dtype=torch.uint8))
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise Error(f"checkpoint: invalid RNG state ({e})") from None


def _adam_arrays(model, opt):
    arrays = {"log_params": model.log_params.detach().cpu().numpy(),
              "param_layout_id": np.array(model.plan.param_layout_id)}
    sd = opt.state_dict()
    for pid, st in sd["state"].items():
        for key, v in st.items():
            arrays[f"state.{pid}.{key}"] = torch.as_tensor(v).detach().cpu().numpy()
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return arrays, groups


def _restore_adam(model, opt, arrays, groups, lr):
    try:
        lp = torch.from_numpy(np.asarray(arrays["log_params"], dtype=np.float32))
        if lp.shape != model.log_params.shape:
            raise Error(f"checkpoint: optimizer state holds {tuple(lp.shape)} log-parameters, the "
                        f"circuit has {tuple(model.log_params.shape)}")
        if "param_layout_id" in arrays and str(arrays["param_layout_id"]) != model.plan.param_layout_id:
            raise Error(f"checkpoint: optimizer state was saved in parameter layout "
                        f"{str(arrays['param_layout_id'])}, this compile has {model.plan.param_layout_id} "
                        "(another pcc version or compile options); resume is not possible, start a new run")
        state = {}
        for key, arr in arrays.items():
            if key.startswith("state."):
                _, pid, name = key.split(".", 2)
                state.setdefault(int(pid), {})[name] = torch.from_numpy(np.array(arr))
        groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in groups]
        with torch.no_grad():
            model.log_params.copy_(lp.to(model.device))
        opt.load_state_dict({"state": state, "param_groups": groups})
    except Error:
        raise
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        raise Error(f"checkpoint: invalid optimizer state ({e})") from None
    for g in opt.param_groups:
        g["lr"] = lr


def _match_resume(ck, c, data, out):
    """Refuse a checkpoint that belongs to another run (circuit, structure arguments or data)."""
    got = ck.args
    keys = MATCH_KEYS if got.get("structure") == c["structure"] else MATCH_KEYS[:4]
    diffs = [f"{k}={got.get(k)!r} (asked: {c[k]!r})" for k in keys if got.get(k) != c[k]]
    if diffs:
        raise Error(f"--resume: the checkpoint in {out} is from another run: {', '.join(diffs)}; "
                    f"pass matching arguments or another --out (nothing was changed)")
    want = ckpt.data_fingerprint(data)
    have = ck.state.get("data", {})
    if have != want:
        what = [k for k in want if have.get(k) != want[k]]
        raise Error(f"--resume: the checkpoint in {out} was trained on different data ({', '.join(what)} "
                    f"differ); nothing was changed")
    ckpt.check_circuit_fits(ck.root, data, f"the checkpoint's circuit ({out})")


def format_table(metrics, num_vars=None):
    """The per-epoch result table as text."""
    head = f"{'epoch':>5}  {'train LL':>9}  {'valid LL':>9}  {'test LL':>9}  {'test bpd':>8}  " \
           f"{'samples/s':>9}  {'seconds':>7}"
    lines = [head, "-" * len(head)]
    for m in metrics:
        lines.append(f"{m['epoch']:>5}  {m['train_ll']:>9.3f}  {m['valid_ll']:>9.3f}  {m['test_ll']:>9.3f}  "
                     f"{m['test_bpd']:>8.4f}  {m['samples_per_sec']:>9,.0f}  {m['seconds']:>7.1f}")
    return "\n".join(lines)


def _write_png(path, data, test_lls, c, epoch):
    from .images import ll_grid

    h, w = data.image_shape
    imgs = data.test.cpu().numpy().reshape(-1, h, w)
    title = (f"{c['structure'].upper()} on {data.name}, {c['latents']} latents, epoch {epoch}: "
             f"test log-likelihood per image")
    ll_grid(path, imgs, test_lls.cpu().numpy(), data.num_cats, title=title,
            write=lambda p, save: ckpt.atomic_write(p, save))


def train(cfg=None, log=print):
    """Run `pcc train` with config dict `cfg` (keys of `DEFAULTS`; missing keys take the defaults).

    Returns {"metrics": [...per epoch...], "out": Path, "args": resolved config, "model": model}.
    Raises pcc.Error for bad arguments, data, or checkpoints (before changing any file)."""
    import pcc
    from . import datasets

    c = _config(dict(cfg or {}))
    pcc.set_num_threads(int(c["threads"]))
    out = Path(c["out"])
    data = datasets.load(c["dataset"], c["data_root"])
    _resolve_structure_args(c, data)
    device = torch.device(c["device"]) if c["device"] in ("cpu", "cuda") else None
    if device is None:
        raise Error(f"--device: expected cpu or cuda, got {c['device']!r}")
    gen = torch.Generator()
    gen.manual_seed(int(c["seed"]))

    ck = None
    if c["resume"]:
        if not ckpt.has_checkpoint(out):
            raise Error(f"--resume: no checkpoint in {out} ({ckpt.MANIFEST} not found); "
                        f"run without --resume to start")
        ck = ckpt.load_checkpoint(out)
        _match_resume(ck, c, data, out)
        root = ck.root
    else:
        root = build_structure(c, data)
    model = pcc.compile(root, device=device, precision=c["precision"], fuse_products=_fuses(device))
    fp = ckpt.fingerprint(root)

    opt = None
    if c["optimizer"] == "adam":
        model.requires_grad_(True)
        opt = torch.optim.Adam(model.parameters(), lr=float(c["lr"]))
    metrics, start = [], 1
    if ck is not None:
        if opt is not None:
            if ck.arrays is None:
                raise Error(f"--resume: the checkpoint in {out} has no optimizer state")
            _restore_adam(model, opt, ck.arrays, ck.state.get("optimizer_param_groups", []), float(c["lr"]))
        _set_rng_state(ck.state.get("rng", {}), gen)
        metrics = [dict(m) for m in ck.state["metrics"]]
        start = ck.epoch + 1
        log(f"resuming {out} after epoch {ck.epoch}")
    elif ckpt.has_checkpoint(out):
        log(f"note: {out} holds a checkpoint from an earlier run; it is replaced when epoch 1 ends "
            f"(use --resume to continue it instead)")

    x_train = data.train.to(device)
    x_valid, x_test = data.valid.to(device), data.test.to(device)
    n, nv, bs = len(x_train), data.num_vars, int(c["batch_size"])
    eval_bs = max(bs, 512)
    s = model.stats()
    log(f"data      {data.describe()}")
    latents = "" if c["structure"] == "factorized" else f", {c['latents']} latents"
    log(f"model     {c['structure']}{latents}: {model.num_nodes:,} nodes, "
        f"{s['sum_edges']:,} sum edges, {model.num_params:,} parameters; "
        f"{c['optimizer']}" + (f" (step size {c['step_size']}, pseudocount {c['pseudocount']})"
                               if c["optimizer"] == "em" else f" (lr {c['lr']})")
        + f", batch {bs}, {pcc.get_num_threads()} CPU threads")
    log("compiled  " + model.report().rstrip().replace("\n", "\n          "))
    out.mkdir(parents=True, exist_ok=True)
    stored_args = {k: v for k, v in c.items() if k not in ("resume", "progress")}

    model.zero_flows()  # em_step zeroes them after each use, and every epoch ends zeroing them
    for epoch in range(start, int(c["epochs"]) + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=gen).to(device)
        total, seen = 0.0, 0
        bar = _progress(c, n, epoch)
        for i in range(0, n, bs):
            x = x_train[perm[i:i + bs]]
            if opt is None:
                lls = model(x)
                lls.sum().backward()
                model.em_step(float(c["step_size"]), float(c["pseudocount"]))
            else:
                model.zero_flows()  # the backward adds EM statistics too; Adam does not use them
                opt.zero_grad(set_to_none=True)
                lls = model(x)
                (-lls.mean()).backward()
                opt.step()
            batch_sum = float(lls.detach().sum())
            if not math.isfinite(batch_sum):
                raise Error(f"epoch {epoch}: the log-likelihood became {batch_sum} (diverged); lower "
                            f"{'--step-size' if opt is None else '--lr'}; the last checkpoint in {out} "
                            f"is left as it was")
            total += batch_sum
            seen += len(x)
            if bar is not None:
                bar.update(len(x))
                bar.set_postfix_str(f"ll {total / seen:.3f}")
        if bar is not None:
            bar.close()
        model.zero_flows()
        t_train = time.perf_counter() - t0
        valid_lls = log_likelihoods(model, x_valid, eval_bs)
        test_lls = log_likelihoods(model, x_test, eval_bs)
        train_ll = total / max(seen, 1)
        valid_ll, test_ll = float(valid_lls.mean()), float(test_lls.mean())
        m = {"epoch": epoch, "train_ll": train_ll, "valid_ll": valid_ll, "test_ll": test_ll,
             "train_bpd": _bpd(train_ll, nv), "valid_bpd": _bpd(valid_ll, nv), "test_bpd": _bpd(test_ll, nv),
             "samples_per_sec": seen / max(t_train, 1e-9), "seconds": 0.0}
        m["seconds"] = time.perf_counter() - t0
        metrics.append(m)
        state = {"epoch": epoch, "args": stored_args, "fingerprint": fp, "data": ckpt.data_fingerprint(data),
                 "rng": _rng_state(gen), "metrics": metrics}
        arrays = None
        if opt is not None:
            arrays, state["optimizer_param_groups"] = _adam_arrays(model, opt)
        ckpt.save_checkpoint(out, model, state, arrays)
        ckpt.write_json(out / METRICS_NAME, {"args": stored_args, "data": data.describe(),
                                             "circuit": dict(s), "epochs": metrics})
        if data.image_shape:  # after the checkpoint: a failed write leaves all files of one epoch
            _write_png(out / PNG_NAME, data, test_lls, c, epoch)
        log(f"epoch {epoch}/{c['epochs']}  train {train_ll:.3f}  valid {valid_ll:.3f}  test {test_ll:.3f} "
            f"nats ({m['test_bpd']:.4f} bpd)  {m['samples_per_sec']:,.0f} samples/s  {m['seconds']:.1f} s")

    if start > int(c["epochs"]):
        log(f"the checkpoint in {out} is already at epoch {start - 1} >= --epochs {c['epochs']}; "
            f"nothing to train")
    return {"metrics": metrics, "out": out, "args": c, "model": model, "data": data}


def _progress(c, n, epoch):
    if not c.get("progress", True):
        return None
    from tqdm import tqdm
    return tqdm(total=n, desc=f"epoch {epoch}/{c['epochs']}", unit="sample", leave=False,
                dynamic_ncols=True, mininterval=0.5)


def _fuses(device):
    """fuse_products for the model: all products on the CPU (less memory, a faster forward), and on
    CUDA what pcc.compile picks there ("auto": those of two children, which its kernels read at full
    speed). A bad device is left for pcc.compile to report."""
    return True if str(device).split(":")[0] == "cpu" else "auto"


def evaluate(path, dataset=None, data_root=None, batch_size=1024, device="cpu", threads=0,
             split="test"):
    """Load a checkpoint (folder, its checkpoint.json, or a .pcir) and evaluate it on a data set split.

    `dataset` defaults to the one recorded in the checkpoint. Returns {"ll", "bpd", "rows", "dataset",
    "epoch", "lls"}."""
    import pcc
    from . import datasets

    pcc.set_num_threads(int(threads))
    ck = ckpt.load_checkpoint(path)
    if dataset is None:
        dataset = ck.args.get("dataset")
        if dataset is None:
            raise Error(f"{path}: a bare circuit file records no data set; pass --dataset")
        if data_root is None:
            data_root = ck.args.get("data_root")
    data = datasets.load(dataset, data_root)
    ckpt.check_circuit_fits(ck.root, data, f"the checkpoint's circuit ({path})")
    model = pcc.compile(ck.root, device=device, fuse_products=_fuses(device))
    x = data.split(split).to(model.device)
    lls = log_likelihoods(model, x, int(batch_size))
    ll = float(lls.mean()) if len(lls) else float("nan")
    return {"ll": ll, "bpd": _bpd(ll, data.num_vars), "rows": len(lls), "dataset": data.name,
            "epoch": ck.epoch if ck.state else None, "lls": lls, "num_vars": data.num_vars}
