"""The `pcc` console script (and `pcc-compile`, which runs the C++ compiler binary shipped in the
package).

    pcc demo [--latents K] [--threads N]   HCLT on scikit-learn's digits: compile, report, evaluate
    pcc train [--structure hclt|pd|rat|hmm|factorized] [--dataset digits|mnist5k|debd:NAME] [--data-root DIR]
              [--latents K] [--epochs N] [--batch-size B] [--optimizer em|adam] [--step-size S]
              [--pseudocount A] [--lr LR] [--seed N] [--device cpu|cuda] [--threads N] [--out DIR]
              [--resume]                   train (no arguments: HCLT on digits, 5 epochs, runs/hclt-digits)
    pcc eval CHECKPOINT [--dataset ...]    test log-likelihood and bits/dim of a checkpoint or .pcir
    pcc compile IN.pcir -o OUT.pcplan      same as pcc-compile

Bad input (arguments, data, checkpoints) prints one line `pcc: error: ...` on stderr and exits with
code 2, leaving existing files as they were.
"""
import argparse
import os
import sys
import time
from pathlib import Path

__all__ = ["main", "compile_main"]


def _binary():
    exe = Path(__file__).parent / "bin" / "pcc-compile"
    if not exe.exists():
        sys.exit(f"pcc-compile: the compiler binary is missing ({exe}); reinstall pcc")
    return str(exe)


def compile_main(argv=None):
    """Entry point of `pcc-compile`: replaces this process with the C++ binary."""
    argv = sys.argv[1:] if argv is None else argv
    exe = _binary()
    os.execv(exe, [exe, *argv])


def _demo(args):
    import torch

    import pcc

    pcc.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = pcc.datasets.digits()
    print(f"data      digits: {data.num_vars} variables x {data.num_cats} levels; "
          f"{len(data.train)} train / {len(data.valid)} valid / {len(data.test)} test rows")
    t0 = time.perf_counter()
    root = pcc.structures.HCLT(data.train, num_latents=args.latents,
                               input_dist=pcc.dists.Categorical(num_cats=data.num_cats))
    t1 = time.perf_counter()
    model = pcc.compile(root)
    t2 = time.perf_counter()
    print(f"structure HCLT, {args.latents} latents: built in {t1 - t0:.2f} s, compiled in {t2 - t1:.2f} s")
    print(model.report(), end="")
    with torch.no_grad():
        model(data.test[:8])  # warm-up
        t3 = time.perf_counter()
        lls = model(data.test)
        t4 = time.perf_counter()
    ref = pcc.reference.log_likelihood(root, data.test[:64])
    err = float((lls[:64].double() - torch.from_numpy(ref)).abs().max())
    ll = float(lls.mean())
    bpd = -ll / (data.num_vars * torch.log(torch.tensor(2.0)).item())
    print(f"test      log-likelihood {ll:.3f} nats/image ({bpd:.3f} bits/dim), untrained parameters; "
          f"max |pcc - float64 reference| = {err:.1e}")
    print(f"speed     {len(data.test) / (t4 - t3):,.0f} images/s forward on {pcc.get_num_threads()} CPU threads")


def _train(args):
    from .train import DEFAULTS, format_table, train

    cfg = {k: getattr(args, k) for k in DEFAULTS if hasattr(args, k)}
    result = train(cfg)
    metrics = result["metrics"]
    out = result["out"]
    print()
    print(f"{result['args']['structure'].upper()} on {result['data'].name}: log-likelihood per sample in "
          f"nats, bits per dimension = -LL / ({result['data'].num_vars} ln 2)")
    print(format_table(metrics))
    if metrics:
        last = metrics[-1]
        print(f"final     test {last['test_ll']:.3f} nats/sample = {last['test_bpd']:.4f} bits/dim after "
              f"epoch {last['epoch']}")
    files = [out / "metrics.json", out / "checkpoint.json"]
    if result["data"].image_shape:
        files.append(out / "test-likelihoods.png")
    print("wrote     " + ", ".join(str(f) for f in files if f.exists()))
    return 0


def _eval(args):
    from .train import evaluate

    r = evaluate(args.checkpoint, dataset=args.dataset, data_root=args.data_root,
                 batch_size=args.batch_size, device=args.device, threads=args.threads, split=args.split)
    epoch = f" (epoch {r['epoch']})" if r["epoch"] else ""
    print(f"{args.checkpoint}{epoch} on {r['dataset']} {args.split}: {r['rows']} rows")
    print(f"{args.split} log-likelihood {r['ll']:.4f} nats/sample, {r['bpd']:.4f} bits/dim")
    return 0


def _add_train_args(t):
    from .backends import PRECISIONS
    from .train import DEFAULTS as D

    t.add_argument("--structure", choices=("hclt", "pd", "rat", "hmm", "factorized"), default=D["structure"],
                   help="factorized: the fully factorized baseline (one categorical per variable)")
    t.add_argument("--dataset", default=D["dataset"], help="digits, mnist5k or debd:NAME (default digits)")
    t.add_argument("--data-root", default=None, help="folder of the DEBD files (default $PCC_DATA_ROOT or ./data)")
    t.add_argument("--latents", type=int, default=D["latents"], help="nodes per latent/region vector")
    t.add_argument("--epochs", type=int, default=D["epochs"], help="total epochs (also with --resume)")
    t.add_argument("--batch-size", type=int, default=D["batch_size"])
    t.add_argument("--optimizer", choices=("em", "adam"), default=D["optimizer"])
    t.add_argument("--step-size", type=float, default=D["step_size"], help="mini-batch EM step size")
    t.add_argument("--pseudocount", type=float, default=D["pseudocount"], help="EM pseudocount")
    t.add_argument("--lr", type=float, default=D["lr"], help="Adam learning rate")
    t.add_argument("--seed", type=int, default=D["seed"])
    t.add_argument("--device", choices=("cpu", "cuda"), default=D["device"])
    t.add_argument("--precision", choices=PRECISIONS, default=D["precision"],
                   help="CUDA sum layers: tf32 / bf16 tensor cores, or fp32 (no rounding, slower)")
    t.add_argument("--threads", type=int, default=D["threads"], help="CPU threads (0: all)")
    t.add_argument("--out", default=None, help="output folder (default runs/STRUCTURE-DATASET)")
    t.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    t.add_argument("--pd-interval", type=int, default=None, help="PD split interval (default max(2, side // 7))")
    t.add_argument("--rat-depth", type=int, default=None, help="RAT-SPN depth (default min(4, log2 vars))")
    t.add_argument("--rat-repetitions", type=int, default=None, help="RAT-SPN repetitions (default 8)")
    t.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def main(argv=None):
    """The `pcc` console script; returns the exit code (0, or 2 after a one-line error)."""
    p = argparse.ArgumentParser(prog="pcc", description="probabilistic circuit compiler and runtime")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="HCLT on scikit-learn's digits: compile, report, evaluate")
    d.add_argument("--latents", type=int, default=16)
    d.add_argument("--threads", type=int, default=0, help="CPU threads (0: all)")
    d.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("train", help="train a structure with mini-batch EM or Adam (no arguments: "
                                     "HCLT on digits)")
    _add_train_args(t)
    e = sub.add_parser("eval", help="test log-likelihood and bits/dim of a checkpoint")
    e.add_argument("checkpoint", help="a checkpoint folder (pcc train --out), its checkpoint.json, or a .pcir")
    e.add_argument("--dataset", default=None, help="digits, mnist5k or debd:NAME (default: the checkpoint's)")
    e.add_argument("--data-root", default=None)
    e.add_argument("--split", choices=("train", "valid", "test"), default="test")
    e.add_argument("--batch-size", type=int, default=1024)
    e.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    e.add_argument("--threads", type=int, default=0)
    c = sub.add_parser("compile", help="compile a .pcir into a .pcplan (runs pcc-compile)")
    c.add_argument("rest", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.cmd == "compile":
        compile_main(args.rest)
        return 0
    try:
        from .errors import Error
    except ImportError as ex:  # pragma: no cover - a broken install
        print(f"pcc: error: {ex}", file=sys.stderr)
        return 2
    try:
        if args.cmd == "demo":
            _demo(args)
            return 0
        if args.cmd == "train":
            return _train(args)
        return _eval(args)
    except Error as ex:
        print(f"pcc: error: {_one_line(ex)}", file=sys.stderr)
        return 2
    except OSError as ex:  # unwritable --out, disk full, ...: the files written before are intact
        where = f" ({ex.filename})" if getattr(ex, "filename", None) else ""
        print(f"pcc: error: {ex.strerror or ex}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pcc: interrupted (the last checkpoint is intact)", file=sys.stderr)
        return 130


def _one_line(ex):
    return " ".join(str(ex).split())


if __name__ == "__main__":
    sys.exit(main())
