"""Where PyJuice's flows leave the float64 oracle's: node by node, on one of vs_pyjuice's circuits.

vs_pyjuice.py's agreement check compares the parameters after one EM step and names the worst
elements; this script goes one step back, to the node flows the step is computed from. PyJuice's
circuit is compiled and converted as in vs_pyjuice.py (so pass-through sums included), one batch runs
forward and backward in PyJuice (float32 kernels, `force_use_fp32`, unless --pj-tf32), and each
PyJuice sum and input node's flow, summed over the batch, is compared with the flow
`pcc.reference_em.flows` gives its pcc vector (float64, the definitions pcc's backends are tested
against). Printed: per node kind, the largest relative error |pj - ref| / max(ref, --floor); the
worst nodes with their depth (PyJuice layer), kind and flows; and how many nodes have a zero flow in
one system and not in the other. Each twice: PyJuice's backward as it is, and with the element flows
of products no sum reads cleared (vs_pyjuice.pj_stale_flows_cleared).

    PYTHONPATH=.site python benchmarks/pj_flow_check.py --only pd-64,rat-128 [--quick] [--rows 64]
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pcc  # noqa: E402
import pcc.reference_em  # noqa: E402
from vs_pyjuice import NAMES, build, pj_stale_flows_cleared  # noqa: E402


def is_pass_through(n):
    """A sum PyJuice's compiler inserted: one child, identity edges, identity weights."""
    from pyjuice.nodes import SumNodes
    if not isinstance(n, SumNodes) or len(n.chs) != 1 or n.block_size != n.ch_block_size:
        return False
    p = n.get_source_ns()._params
    if p is None:
        return False
    p = p.detach().cpu().reshape(-1, n.block_size, n.block_size)
    eye = torch.eye(n.block_size).expand_as(p)
    return bool(torch.equal(n.edge_ids[0], n.edge_ids[1])) and bool(torch.allclose(p, eye))


def kind_of(n, pass_through):
    from pyjuice.nodes import InputNodes
    if isinstance(n, InputNodes):
        return "input"
    if id(n) in pass_through:
        return "pass-through sum"
    return f"sum Bs={n.block_size} Bc={n.ch_block_size}"


def check(name, args):
    import pyjuice as juice

    torch.manual_seed(args.seed)
    ns, data = build(name, torch.device("cuda"), args.quick)
    pc = juice.compile(ns, verbose=False)
    # Pass-through sums are recognized by their identity weights before anything changes them.
    pass_through = {id(n) for n in pc.root_ns if is_pass_through(n)}
    root, mapping = pcc.from_pyjuice(pc, return_map=True)
    pc.to("cuda")
    x = data(args.rows)
    fp32 = {} if args.pj_tf32 else {"force_use_fp32": True}
    log_flows = {}
    for cleared in (False, True):
        clear = {"sum_layer_pre_backward_callback": pj_stale_flows_cleared(pc)} if cleared else {}
        with torch.no_grad():
            pc(x, **fp32)
            pc.backward(inputs=x, flows_memory=0.0, **fp32, **clear)
        log_flows[cleared] = pc.node_flows.detach().double().cpu()  # PyJuice keeps log flows
    t = time.perf_counter()
    ref = pcc.reference_em.flows(root, x.cpu())
    print(f"{name}: {args.rows} rows; float64 flows in {time.perf_counter() - t:.1f} s", flush=True)
    for cleared in (False, True):
        print(f"  PyJuice's backward {'with stale element flows cleared' if cleared else 'as it is'}:")
        report(log_flows[cleared], ref, mapping, pc, pass_through, args)


def report(log_flows, ref, mapping, pc, pass_through, args):
    from pyjuice.nodes import InputNodes, SumNodes

    depth = {}
    for i, group in enumerate(pc.inner_layer_groups):
        for layer in group.layers:
            for n in layer.nodes:
                depth[id(n)] = i + 1
    rows = []  # (err, kind, layer, node index, pj flow, ref flow, pj zero & ref not, ref zero & pj not)
    for n, v in mapping.items():
        if not isinstance(n, (SumNodes, InputNodes)) or v not in ref.node:
            continue
        s, e = n._output_ind_range
        pj = torch.logsumexp(log_flows[s:e], dim=1).exp().numpy()
        r = np.asarray(ref.node[v], np.float64)
        if pj.shape != r.shape:
            print(f"  {kind_of(n, pass_through)}: {pj.shape} PyJuice nodes vs {r.shape} pcc nodes: skipped")
            continue
        err = np.abs(pj - r) / np.maximum(r, args.floor)
        i = int(np.argmax(err))
        rows.append((float(err[i]), kind_of(n, pass_through), depth.get(id(n), 0), i, float(pj[i]),
                     float(r[i]), int(np.sum((pj == 0) & (r > 0))), int(np.sum((r == 0) & (pj > 0))),
                     len(r)))
    by_kind = {}
    for row in rows:
        k = by_kind.setdefault(row[1], [0.0, 0, 0, 0, 0])
        k[0] = max(k[0], row[0])
        k[1] += 1
        k[2] += row[8]
        k[3] += row[6]
        k[4] += row[7]
    print(f"  {'node kind':<22} {'vectors':>7} {'nodes':>8} {'max rel err':>12} {'pj 0, ref>0':>12} "
          f"{'ref 0, pj>0':>12}")
    for kind, (m, nv, nn, a, b) in sorted(by_kind.items()):
        print(f"  {kind:<22} {nv:>7} {nn:>8} {m:>12.3e} {a:>12} {b:>12}")
    print(f"  worst {args.top} vectors (relative error at their worst node, floor {args.floor:g}):")
    for err, kind, layer, i, pj, r, *_ in sorted(rows, key=lambda t: -t[0])[:args.top]:
        print(f"    {err:.3e}  {kind:<22} layer {layer:>3} node {i:>5}: PyJuice {pj:.6e}  float64 {r:.6e}")
    sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="pd-64", help=f"comma-separated, from {NAMES}")
    ap.add_argument("--quick", action="store_true", help="tiny versions of the circuits")
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--floor", type=float, default=1e-3, help="relative errors divide by max(flow, floor)")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pj-tf32", action="store_true", help="PyJuice's default kernels, not force_use_fp32")
    args = ap.parse_args()
    for name in args.only.split(","):
        check(name, args)


if __name__ == "__main__":
    main()
