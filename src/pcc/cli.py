"""The `pcc` console script (and `pcc-compile`, which runs the C++ compiler binary shipped in the
package).

    pcc demo [--latents K] [--threads N]   HCLT on scikit-learn's digits: compile, report, evaluate
    pcc compile IN.pcir -o OUT.pcplan      same as pcc-compile
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


def main(argv=None):
    p = argparse.ArgumentParser(prog="pcc", description="probabilistic circuit compiler and runtime")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="HCLT on scikit-learn's digits: compile, report, evaluate")
    d.add_argument("--latents", type=int, default=16)
    d.add_argument("--threads", type=int, default=0, help="CPU threads (0: all)")
    d.add_argument("--seed", type=int, default=0)
    c = sub.add_parser("compile", help="compile a .pcir into a .pcplan (runs pcc-compile)")
    c.add_argument("rest", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if args.cmd == "compile":
        compile_main(args.rest)
    elif args.cmd == "demo":
        _demo(args)


if __name__ == "__main__":
    main()
