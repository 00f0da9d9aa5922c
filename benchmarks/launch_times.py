"""Per-launch GPU times of the kernels of one pcc EM step (torch.profiler), for the kernels whose name
matches a pattern: how a kernel's time splits between a few long launches and many short ones.

    python benchmarks/launch_times.py --only hclt-256 [--match discrete_forward,product_forward]
"""
import argparse
import re
import statistics

import torch
from torch.profiler import ProfilerActivity, profile

import pcc
from cuda_structures import configs
from vs_pyjuice import pcc_calls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="hclt-256")
    ap.add_argument("--match", default="discrete_forward,discrete_backward,product_forward,product_backward")
    ap.add_argument("--batch", type=int, default=512)
    args = ap.parse_args()
    pats = [re.compile(p) for p in args.match.split(",") if p]
    only = set(args.only.split(","))
    for name, build, data in configs():
        if name not in only:
            continue
        model = pcc.compile(build(), device="cuda")
        x = data(args.batch).cuda()
        _, _, step = pcc_calls(model, x, 0.1, 0.1)
        for _ in range(3):
            step()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            step()
            torch.cuda.synchronize()
        times = {}
        for e in prof.events():
            if e.device_time > 0:
                for p in pats:
                    if p.search(e.name):
                        times.setdefault(p.pattern, []).append(e.device_time)
        print(f"{name}: per-launch us of one EM step")
        for p, ts in times.items():
            ts.sort(reverse=True)
            print(f"  {p}: {len(ts)} launches, {sum(ts):.0f} us, median {statistics.median(ts):.1f}, "
                  f"longest {', '.join(f'{t:.0f}' for t in ts[:8])}; shortest {min(ts):.1f}")


if __name__ == "__main__":
    main()
