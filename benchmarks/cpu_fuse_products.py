"""CompileOptions::fuse_products on the CPU backend: rows, value memory, forward and EM-step time of
the benchmark structure families at CPU-sized widths, compiled with and without fused products
(median of --reps calls after one warm-up, batch --batch), and the largest log-likelihood difference
between the two (float32; the same operations, some in another order).

    python benchmarks/cpu_fuse_products.py [--batch 64] [--reps 3] [--out benchmarks/results/cpu_fuse_products.md]
"""
import argparse
import os
import tempfile

import torch

import pcc
from cpu_compile_forward import median_time  # the same timer


def structures():
    torch.manual_seed(0)
    cat = pcc.dists.Categorical(num_cats=256)
    data = torch.randint(0, 256, (1024, 784))
    img = lambda b: torch.randint(0, 256, (b, 784))  # noqa: E731
    yield "PD(28x28, 64 latents, 4x4)", lambda: pcc.structures.PD((28, 28), 64, (4, 4), input_dist=cat), img
    yield "HCLT(784 vars, 64 latents)", lambda: pcc.structures.HCLT(data, 64, input_dist=cat), img
    yield "RAT-SPN(784, 64, depth 5, 4 reps)", lambda: pcc.structures.RAT_SPN(784, 64, 5, 4, input_dist=cat), img
    yield "HMM(32 steps, 256 latents, 1000)", lambda: pcc.structures.HMM(32, 256, 1000), \
        lambda b: torch.randint(0, 1000, (b, 32))


def median_s(fn, reps):
    fn()  # warm-up
    return median_time(fn, reps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    lines = [f"CPU backend, {pcc.get_num_threads()} threads, batch {args.batch}, median of {args.reps}.", "",
             "| structure | fused | layers | rows | values MiB | fwd ms | EM step ms | max LL diff |",
             "|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name, build, data in structures():
        root = build()
        x = data(args.batch)
        lls = {}
        for fuse in (False, True):
            model = pcc.compile(root, fuse_products=fuse)

            def fwd():
                with torch.no_grad():
                    return model(x)

            def step():
                model.zero_flows()
                model(x).sum().backward()
                model.em_step(0.1, 0.1)

            lls[fuse] = fwd()
            t_f, t_s = median_s(fwd, args.reps), median_s(step, args.reps)
            s = model.plan.summary()
            line = (f"| {name} | {'yes' if fuse else 'no'} | {s['layers']} | {model.plan.num_rows:,} | "
                    f"{model.plan.num_rows * args.batch * 4 / 2**20:.1f} | {1e3 * t_f:.1f} | {1e3 * t_s:.1f} | "
                    + (f"{(lls[True] - lls[False]).abs().max().item():.1e} |" if fuse else "- |"))
            lines.append(line)
            print(line, flush=True)
            del model
    text = "\n".join(lines) + "\n"
    if args.out:  # atomic: a reader never sees half a table
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.out)) or ".", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(f"Command: python benchmarks/cpu_fuse_products.py --batch {args.batch} --reps {args.reps}\n\n"
                    + text)
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
