"""Compile time and CPU forward throughput of the benchmark structures (issue: foundation).

For HCLT(784 variables, 256 latents, on torch.randint data), PD(28x28, 128 latents, split 4x4),
RAT-SPN(784 variables, 128 latents, depth 5, 4 repetitions) and HMM(32 steps, 512 latents):
`pcc.compile` wall time (median of 3; building the structure, including Chow-Liu learning, is not
timed) and forward throughput on the CPU backend (median of 5 calls, batch --batch, no_grad).

    python benchmarks/cpu_compile_forward.py [--batch 64] [--threads 0] [--out benchmarks/results/...]
"""
import argparse
import os
import platform
import statistics
import sys
import time

import torch

import pcc

from machine import machine


def structures(args):
    torch.manual_seed(0)
    hclt_data = torch.randint(0, 256, (2048, 784))
    yield "HCLT(784 vars, 256 latents)", lambda: pcc.structures.HCLT(
        hclt_data, num_latents=256, input_dist=pcc.dists.Categorical(num_cats=256)), \
        lambda b: torch.randint(0, 256, (b, 784))
    yield "PD(28x28, 128 latents, 4x4)", lambda: pcc.structures.PD(
        (28, 28), num_latents=128, split_intervals=(4, 4), input_dist=pcc.dists.Categorical(num_cats=256)), \
        lambda b: torch.randint(0, 256, (b, 784))
    yield "RAT-SPN(784, 128, depth 5, 4 reps)", lambda: pcc.structures.RAT_SPN(
        784, num_latents=128, depth=5, num_repetitions=4, input_dist=pcc.dists.Categorical(num_cats=256)), \
        lambda b: torch.randint(0, 256, (b, 784))
    yield "HMM(32 steps, 512 latents, 33279)", lambda: pcc.structures.HMM(32, num_latents=512, num_emits=33279), \
        lambda b: torch.randint(0, 33279, (b, 32))



def median_time(fn, reps):
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the markdown table here too")
    args = ap.parse_args()
    pcc.set_num_threads(args.threads)
    rows = []
    for name, build, data in structures(args):
        t = time.perf_counter()
        root = build()
        t_build = time.perf_counter() - t
        t_compile = median_time(lambda: pcc.compile(root), 3)
        model = pcc.compile(root)
        x = data(args.batch)
        with torch.no_grad():
            model(x)  # warm-up
            t_fwd = median_time(lambda: model(x), 5)
        s = model.stats()
        summ = model.plan.summary()
        rows.append((name, s["sum_edges"], summ["sum_edges_padded"], t_build, t_compile,
                     args.batch / t_fwd, 2 * summ["sum_edges_padded"] * args.batch / t_fwd / 1e9))
        print(f"{name}: build {t_build:.2f} s, compile {t_compile:.2f} s, "
              f"forward {args.batch / t_fwd:,.0f} samples/s", flush=True)
    head = ("| structure | sum edges | padded sum edges | build s (not timed in compile) | compile s (median of 3) "
            f"| forward samples/s (batch {args.batch}) | sum GFLOP/s |\n|---|---|---|---|---|---|---|\n")
    body = "".join(f"| {r[0]} | {r[1]:,} | {r[2]:,} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:,.0f} | {r[6]:.1f} |\n"
                   for r in rows)
    env = (f"machine: {machine()}, {os.cpu_count()} cores, {pcc.get_num_threads()} pcc threads; "
           f"python {platform.python_version()}, torch {torch.__version__}; "
           f"{time.strftime('%Y-%m-%d %H:%M %Z')}\n")
    cmd = "command: `python " + " ".join(sys.argv) + "`\n\n"
    hclt = [r for r in rows if r[0].startswith("HCLT")]
    note = "".join(f"\nHCLT(784 vars, 256 latents, {r[1]:,} sum edges) compile time: {r[4]:.2f} s (median of 3); "
                   f"the issue asks for under 5 s on this 2-core machine: {'met' if r[4] < 5 else 'NOT met'}.\n"
                   for r in hclt)
    table = cmd + env + "\n" + head + body + note
    print(table)
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            f.write(table)
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
