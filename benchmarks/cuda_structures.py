"""pcc alone on the GPU: forward, forward+backward and EM-step time and peak training memory of the
benchmark structures of ../shared/BENCHMARKS.md (batch 512, random categorical data), median of 20
timed calls after warm-up (CUDA events). Side-by-side with PyJuice is benchmarks/vs_pyjuice.py.

    python benchmarks/cuda_structures.py [--only hclt-256,pd-64] [--batch 512] [--precision tf32]
        [--profile N]   # also print the N kernels taking most GPU time per EM step (torch.profiler)
        [--fuse-products auto|off|binary|on|compare]   # pcc.compile's fuse_products (compare: a row
                                                       # for each of off, binary and on)
        [--cuda-graphs on|off|compare]                 # pcc.set_cuda_graphs (compare: a row each)
        [--fuse-inputs on|off|compare]                 # pcc.compile's fuse_inputs (compare: a row each)
"""
import argparse
import torch

import pcc
from vs_pyjuice import kernel_profile, pcc_calls, timed  # the same calls and timer as the side-by-side run


def configs():
    torch.manual_seed(0)
    cat = pcc.dists.Categorical(num_cats=256)
    data = torch.randint(0, 256, (2048, 784))
    img = lambda b: torch.randint(0, 256, (b, 784))  # noqa: E731
    for k in (128, 256, 512):
        yield f"hclt-{k}", lambda k=k: pcc.structures.HCLT(data, k, input_dist=cat), img
    for k in (64, 128, 256):
        yield f"pd-{k}", lambda k=k: pcc.structures.PD((28, 28), k, (4, 4), input_dist=cat), img
    for k in (128, 256):
        yield f"rat-{k}", lambda k=k: pcc.structures.RAT_SPN(784, k, 5, 4, input_dist=cat), img
    for k in (512, 2048):
        yield f"hmm-{k}", lambda k=k: pcc.structures.HMM(32, k, 33279), lambda b: torch.randint(0, 33279, (b, 32))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--precision", default="tf32")
    ap.add_argument("--profile", type=int, default=0)
    ap.add_argument("--fuse-products", choices=["auto", "off", "binary", "on", "compare"], default="auto")
    ap.add_argument("--cuda-graphs", choices=["on", "off", "compare"], default="on",
                    help="pcc.set_cuda_graphs (compare: a row with each)")
    ap.add_argument("--fuse-inputs", choices=["on", "off", "compare"], default="on",
                    help="pcc.compile's fuse_inputs (compare: a row with each)")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    print(f"| config | nodes | sum edges | layers | fwd ms | fwd+bwd ms | step ms | train GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, build, data in configs():
        if only and name not in only:
            continue
        root = build()
        x = data(args.batch).cuda()
        modes = {"off": [False], "on": [True], "compare": [False, "binary", True]}
        for fuse in modes.get(args.fuse_products, [args.fuse_products]):
            label = {False: " unfused", True: " fused", "binary": " fused binary"}.get(fuse, "")
            for graphs in {"on": [True], "off": [False], "compare": [False, True]}[args.cuda_graphs]:
                pcc.set_cuda_graphs(graphs)
                glabel = (" graphs" if graphs else " no graphs") if args.cuda_graphs == "compare" else ""
                for fi in {"on": [True], "off": [False], "compare": [False, True]}[args.fuse_inputs]:
                    ilabel = (" inputs fused" if fi else " inputs apart") if args.fuse_inputs == "compare" else ""
                    run(name + (label if args.fuse_products == "compare" else "") + glabel + ilabel, root, x, args,
                        fuse, fi)
        del root


def run(name, root, x, args, fuse, fuse_inputs):
    """Times one compiled model of `root` and prints its table row."""
    model = pcc.compile(root, device="cuda", precision=args.precision, fuse_products=fuse, fuse_inputs=fuse_inputs)
    fwd, fwd_bwd, step = pcc_calls(model, x, 0.1, 0.1)
    dev = torch.device("cuda")
    t_f = timed(fwd, dev, 20)
    t_fb = timed(fwd_bwd, dev, 20)
    model.zero_flows()  # (fwd_bwd's flows)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t_s = timed(step, dev, 20)
    mem = torch.cuda.max_memory_allocated() / 2**30
    s = model.stats()
    print(f"| {name} | {model.num_nodes:,} | {s['sum_edges']:,} | {model.plan.summary()['layers']} | "
          f"{t_f:.2f} | {t_fb:.2f} | {t_s:.2f} | {mem:.2f} |", flush=True)
    if args.profile:
        kernel_profile(step, args.profile)


if __name__ == "__main__":
    main()
