"""pcc beside PyJuice 2.6.3 on one GPU, on the very same circuits (../shared/BENCHMARKS.md, issue 5).

Each configuration is built ONCE by PyJuice, compiled by PyJuice, and converted with
`pcc.from_pyjuice` (the compiled TensorCircuit's parameters, pass-through nodes included), so both
systems run one circuit with one set of parameters. Per configuration, in one process:

1. agreement: log-likelihoods of one batch (PyJuice vs pcc within 1e-3 x max(1, |ll|)), and the
   parameters after one mini-batch EM step on the first `--em-rows` rows of that batch (PyJuice
   `mini_batch_em` read back with `update_parameters`, pcc `em_step` read with `get_params`; within
   1e-3 relative for parameters above 1e-3, 1e-6 absolute below), each compared with the other and
   with the float64 oracle `pcc.reference_em.em_step` on the same rows (`pj EM err`, `pcc EM err`,
   `params agree`; the three worst vectors of each comparison are printed, with the values at their
   worst element and its parameter before the step, to tell which system is off and where); and each
   system's log-likelihood error against the float64 oracle `pcc.reference.log_likelihood` on the
   first `--ref-rows` rows (before the EM step). For these checks only: `--pj-fp32` runs PyJuice's
   float32 kernels, `--pj-clear-stale-flows` clears the element flows PyJuice 2.6.3 leaves in products
   no sum reads (PD; see pj_stale_flows_cleared), `--agree-precision fp32` runs pcc without TF32;
2. timing, median of `--reps` calls after warm-up (CUDA events): `fwd` (log-likelihood, no grad),
   `fwd+bwd` (forward + flow backward), `step` (fwd+bwd + mini-batch EM update);
3. peak training memory: `torch.cuda.max_memory_allocated`, reset before each system's EM loop,
   minus what was allocated just before that system was put on the GPU. The two systems take turns:
   PyJuice's TensorCircuit is deleted before pcc's model is created, so neither peak holds the other.

A configuration that fails prints its error in its row and the run goes on. The markdown table comes
last (also written atomically to `--out`), with geometric means of the ratios.

`--jobs N` runs the configurations in N worker processes of this script at once: their CPU work
(building and compiling the circuits, PyJuice's compile takes minutes, and the float64 oracles)
overlaps, while everything that runs on the GPU (moving a circuit there, agreement, timing, memory)
happens under one file lock, one configuration at a time, so no timing shares the GPU. When the run
holds every configuration at once the workers also meet before their GPU turns and again before
their oracles (phase()), so nothing else uses the CPU while a configuration is timed (PyJuice
launches its kernels from Python). `--pj-cuda-graphs` times PyJuice with its own CUDA graphs
(`record_cudagraph`; off as pip installs it). Each worker
writes its result as JSON (`--json-out`); `--merge A.json B.json ...` makes the table from results of
several runs on the same machine.

    PYTHONPATH=.site python benchmarks/vs_pyjuice.py [--only hclt-256,hmm-512] [--quick] \
        [--out benchmarks/results/vs_pyjuice.md] [--precision tf32] [--ref-rows 8] [--em-rows 64]
    PYTHONPATH=.site python benchmarks/vs_pyjuice.py --jobs 5 --only hclt-128,hclt-256 --json-dir DIR
    python benchmarks/vs_pyjuice.py --merge DIR/*.json --out benchmarks/results/vs_pyjuice.md
    python benchmarks/vs_pyjuice.py --device cpu --quick   # pcc half only (PyJuice needs CUDA)

Where the minutes go is in each result (`pj_compile_s`: PyJuice's compile on the CPU; `pj_first_s`:
its first calls on the GPU, which JIT-compile its Triton kernels; `ref_em_s`: the float64 oracle).
Triton keeps compiled kernels in TRITON_CACHE_DIR, so a device call can start from the kernels of an
earlier one: end the call with `tar czf $OUT/triton-cache.tgz -C $TRITON_CACHE_DIR .`, copy the file
into the carried `.whl/`, and begin the next with `mkdir -p $TRITON_CACHE_DIR && tar xzf
.whl/triton-cache.tgz -C $TRITON_CACHE_DIR`.
"""
import argparse
import contextlib
import fcntl
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np
import torch

import pcc
import pcc.reference_em
from pcc.interop.pyjuice import sum_params_as_pcc
from pcc.nodes import InputVector, SumVector, topological_order

NAMES = ["hclt-128", "hclt-256", "hclt-512", "pd-64", "pd-128", "pd-256", "rat-128", "rat-256",
         "hmm-512", "hmm-2048"]


def build(name, device, quick):
    """(PyJuice root node, data generator b -> LongTensor [b, num_vars] on device)."""
    import pyjuice as juice
    from pyjuice.nodes.distributions import Categorical

    kind, k = name.split("-")
    k = int(k)
    if quick:  # tiny versions of the same structures, for a CPU check of the script
        ncat, shape, nv = 16, (4, 4), 16
        k = {"hclt": 8, "pd": 8, "rat": 8, "hmm": 16}[kind]
    else:
        ncat, shape, nv = 256, (28, 28), 784
    img = lambda b: torch.randint(0, ncat, (b, nv), device=device)  # noqa: E731
    cat = Categorical(num_cats=ncat)
    if kind == "hclt":
        return juice.structures.HCLT(img(2048), num_latents=k, input_dist=cat), img
    if kind == "pd":
        return juice.structures.PD(data_shape=shape, num_latents=k, split_intervals=(4, 4) if not quick
                                   else (2, 2), input_dist=cat), img
    if kind == "rat":
        return juice.structures.RAT_SPN(num_vars=nv, num_latents=k, depth=5 if not quick else 2,
                                        num_repetitions=4, num_pieces=2, input_dist=cat), img
    if kind == "hmm":
        seq, emits = (32, 33279) if not quick else (8, 50)
        return (juice.structures.HMM(seq_length=seq, num_latents=k, num_emits=emits, homogeneous=True),
                lambda b: torch.randint(0, emits, (b, seq), device=device))
    raise ValueError(f"unknown configuration {name!r}")


def timed(fn, device, reps, warm=3):
    for _ in range(warm):
        fn()
    if device.type != "cuda":
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            ts.append((time.perf_counter() - t) * 1e3)
        return statistics.median(ts)
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b))
    return statistics.median(ts)


def kernel_profile(step, top, steps=3):
    """Per-kernel GPU time of one EM step (mean of `steps`), the `top` largest, as indented lines."""
    from torch.profiler import ProfilerActivity, profile
    step()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(steps):
            step()
        torch.cuda.synchronize()
    rows = [(e.device_time_total / steps / 1e3, e.count // steps, e.key) for e in prof.key_averages()
            if e.device_time_total > 0]
    total = sum(r[0] for r in rows)
    for ms, n, key in sorted(rows, reverse=True)[:top]:
        print(f"    {ms:8.3f} ms {100 * ms / total:5.1f}% x{n:<4d} {key[:110]}")
    print(f"    {total:8.3f} ms total GPU time per step", flush=True)


def pcc_calls(model, x, step_size, pseudocount):
    """The three timed pcc calls on batch x: log-likelihood, forward + flows, EM step."""
    def fwd():
        with torch.no_grad():
            model(x)

    def fwd_bwd():
        model(x).sum().backward()

    def step():  # as pcc.train's EM loop: em_step zeroes the flows it used
        model(x).sum().backward()
        model.em_step(step_size, pseudocount)

    return fwd, fwd_bwd, step


def rel_err(a, ref):
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(a - ref) / np.maximum(1.0, np.abs(ref))))


def param_err(a, b):
    """max |a - b| / max(|b|, 1e-3): <= 1e-3 means 1e-3 relative above 1e-3 and 1e-6 absolute below."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-3))) if a.size else 0.0


def mem_now(device):
    return torch.cuda.memory_allocated() if device.type == "cuda" else 0


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib(device, base):
    if device.type != "cuda":
        return float("nan")
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**30


def pj_stale_flows_cleared(pc, log_flows=True):
    """A `sum_layer_pre_backward_callback` for PyJuice's backward that sets its element flows to zero
    (-inf where they are log flows, PyJuice's default) before each sum layer group writes them.

    PyJuice 2.6.3 keeps one element-flow buffer for every product layer and clears it once per
    backward. A sum layer writes the flows of the product nodes it reads, and the product layer under
    it passes every row on to its children, so the rows of product nodes that no sum reads (PD's
    products that no sum block picks, under `max_prod_block_conns`) still hold the flows the layer
    above left there. Those flows reach pass-through sums, inputs and the EM step (PD-64: 5,248
    pass-through nodes whose float64 flow is 0 get flows near 0.35; benchmarks/pj_flow_check.py).
    Cleared, PyJuice's flows are the gradient again; the timed runs never use this."""
    firsts = {id(g.layers[0]) for g in pc.inner_layer_groups if g.is_sum()}
    zero = -math.inf if log_flows else 0.0

    def clear(layer, element_flows=None, **_):
        if id(layer) in firsts:  # a group's layers write disjoint rows: clear before the first only
            element_flows.fill_(zero)
    return clear


def pj_params_after(mapping):
    """{id(pcc vector): PyJuice's parameters in pcc's layout} for the parameter owners (not tied)."""
    from pyjuice.nodes import InputNodes, SumNodes
    out = {}
    for n, v in mapping.items():
        if n.is_tied() or getattr(v, "param_group", None) is None:
            continue
        if isinstance(n, SumNodes):
            out[id(v)] = (v, sum_params_as_pcc(n))
        elif isinstance(n, InputNodes):
            p = n._params.detach().cpu().numpy().reshape(n.num_nodes, -1)
            out[id(v)] = (v, p if v.dist.name != "gaussian" else p.T)  # gaussian: [2, n]
    return out


def pcc_params(model, v):
    p = model.get_params(v)
    if isinstance(p, dict):
        p = torch.stack([p["mean"], p["std"]]) if "mean" in p else p["probs"]
    return p.cpu().numpy()


def param_owners(root):
    """{id(param group): vector}: the first sum or input vector of each parameter group of `root`."""
    out = {}
    for v in topological_order(root):
        if isinstance(v, (SumVector, InputVector)):
            out.setdefault(id(v.param_group), v)
    return out


def ref_em_params(root, x, args):
    """The float64 oracle's EM step on rows x: ({id(group): new params in pcc_params' layout},
    {id(group): float64 [n] node flows, summed over the group's tied vectors})."""
    fl = pcc.reference_em.flows(root, x)
    new = pcc.reference_em.em_from_flows(root, fl, args.step_size, args.pseudocount)
    params, flow = {}, {}
    for v, p in new.items():  # every sum / input vector; tied ones all hold their group's result
        g = id(v.param_group)
        flow[g] = flow.get(g, 0.0) + fl.node[v]
        if isinstance(p, dict):
            p = np.stack([p["mean"], p["std"]]) if "mean" in p else p["probs"]
        params.setdefault(g, p)
    return params, flow


def ref_em_estimate_s(root, rows):
    """Rough seconds of `ref_em_params` on `rows` rows (fitted on a CPU: PD-64 at 64 rows ~20 s):
    ~2e7 edge-rows/s for the sums' flows, and ~3.5e8/s for the K x K one-hot table that the oracle's
    categorical E-step builds per input vector (dominant for the HMMs' 33,279 categories)."""
    edge_rows = table = 0
    for v in topological_order(root):
        if isinstance(v, SumVector):
            edge_rows += rows * v.params.size
        elif isinstance(v, InputVector) and v.dist.name == "categorical":
            table += v.params.shape[1] ** 2
    return edge_rows / 2e7 + table / 3.5e8


def worst_elem(a, b):
    """(param_err(a, b), flat index where it is reached)."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if not a.size:
        return 0.0, 0
    e = np.abs(a - b) / np.maximum(np.abs(b), 1e-3)
    i = int(np.argmax(e))
    return float(e[i]), i


def describe_elem(v, idx):
    """(vector kind and size, which node / edge / category flat element idx of its parameters is, node)."""
    if isinstance(v, SumVector):
        C = v.num_child_nodes
        if v.form == "dense":
            node, ch = divmod(idx, C)
            k = C
        elif v.form == "sparse":
            node, ch = int(v.edges[0, idx]), int(v.edges[1, idx])
            k = int(np.count_nonzero(v.edges[0] == node))
        else:
            b = v.block_size
            e, r, c = np.unravel_index(idx, v.params.shape)
            node, ch = int(v.edges[0, e]) * b + int(r), int(v.edges[1, e]) * b + int(c)
            k = b * int(np.count_nonzero(v.edges[0] == v.edges[0, e]))
        starts = np.cumsum([0] + [c.num_nodes for c in v.children])
        j = int(np.searchsorted(starts, ch, side="right") - 1)
        form = f"block b={v.block_size}" if v.form == "block" else v.form
        head = (f"sum ({form}) n={v.num_nodes} C={C} in {len(v.children)} child vectors, "
                f"{v.params.size} params")
        where = (f"elem {idx}: node {node} <- child {ch} (child vector {j}, node {ch - starts[j]}); "
                 f"node has {k} children")
        return head, where, node
    name = v.dist.name
    if name == "gaussian":
        which, node = divmod(idx, v.num_nodes)
        where, k = f"elem {idx}: node {node} {'std' if which else 'mean'}", 2
    elif name == "bernoulli":
        node, where, k = idx, f"elem {idx}: node {idx} P(x=1)", 2
    else:
        k = v.params.shape[1]
        node, cat = divmod(idx, k)
        where = f"elem {idx}: node {node} category {cat}"
    return f"input {name} var={v.var} n={v.num_nodes} K={k}", where, node


def em_report(vectors, pre, ref, pcc_p, pj_p, flow, top=3):
    """Errors of the EM-step comparisons ({label: max param_err}) and lines naming the `top` worst
    vectors of each, with the PyJuice / pcc / float64 values at the worst element and its value
    before the step. Dicts are keyed by id(param group); pj_p (and ref) may be None."""
    def val(d, g, i):
        return "-" if d is None else f"{float(np.ravel(d[g])[i]):.6e}"

    comps = [("pj_em_err", "PyJuice vs float64", pj_p, ref), ("pcc_em_err", "pcc vs float64", pcc_p, ref),
             ("param_agree", "pcc vs PyJuice", pcc_p, pj_p)]
    errs, lines = {}, []
    for key, label, a, b in comps:
        if a is None or b is None:
            continue
        per = sorted(((*worst_elem(a[g], b[g]), g) for g in vectors), key=lambda t: -t[0])
        errs[key] = per[0][0] if per else 0.0
        lines.append(f"  {label}: max err {errs[key]:.3e}; worst vectors:")
        for e, i, g in per[:top]:
            head, where, node = describe_elem(vectors[g], i)
            f = "-" if flow is None else f"{float(flow[g][node]):.4e}"
            lines.append(f"    err {e:.3e}  {head}\n      {where}: pj {val(pj_p, g, i)}  pcc {val(pcc_p, g, i)}  "
                         f"ref {val(ref, g, i)}  before {val(pre, g, i)}  node flow (f64) {f}")
    return errs, lines


@contextlib.contextmanager
def gpu_turn(args):
    """Hold the GPU alone (the --lock file, shared by the workers of --jobs) for the body."""
    if not args.lock:
        yield
        return
    with open(args.lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            fcntl.flock(f, fcntl.LOCK_UN)


def phase(args, stage, name):
    """Workers of one --jobs run that holds every configuration at once meet here: each marks that it
    reached `stage` ("ready": its CPU preparation is done; "timed": its GPU turn is done) and waits for
    the others, so while any configuration is timed no other worker is compiling or running a float64
    oracle on the CPU (PyJuice launches its kernels from Python, and a busy CPU slowed it by up to 25%
    between runs). True when all arrived, False after --barrier-timeout seconds or without a barrier."""
    if not args.barrier_dir:
        return False
    open(os.path.join(args.barrier_dir, f"{stage}.{name}"), "w").close()
    t = time.perf_counter()
    while time.perf_counter() - t < args.barrier_timeout:
        if sum(f.startswith(stage + ".") for f in os.listdir(args.barrier_dir)) >= args.barrier_n:
            return True
        time.sleep(0.5)
    return False


def run_config(name, args, device):
    r = {"config": name, "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
         "fuse_products": args.fuse_products, "cuda_graphs": args.cuda_graphs, "precision": args.precision,
         "agree_precision": args.agree_precision or args.precision}
    t0 = time.perf_counter()
    torch.manual_seed(0)
    if name.startswith("hclt") and device.type == "cuda":
        with gpu_turn(args):  # PyJuice's Chow-Liu tree on the GPU (minutes on the CPU), in turn
            ns, data = build(name, device, args.quick)
            x_cpu = data(args.batch).cpu()
    else:
        ns, data = build(name, "cpu", args.quick)  # the GPU is touched under gpu_turn only
        x_cpu = data(args.batch)
    xr = x_cpu[:args.ref_rows]
    r["build_s"] = time.perf_counter() - t0
    have_pj = device.type == "cuda" and not args.pcc_only

    # ---- CPU work first: PyJuice's compile, the conversion, pcc's compile ----
    import pyjuice as juice
    if have_pj:
        t = time.perf_counter()
        pc = juice.compile(ns, verbose=False)
        r["pj_compile_s"] = time.perf_counter() - t
        t = time.perf_counter()
        root, mapping = pcc.from_pyjuice(pc, return_map=True)  # the compiled circuit, its parameters
        r["convert_s"] = time.perf_counter() - t
    else:  # no PyJuice run: convert the un-compiled graph
        ns.init_parameters()
        t = time.perf_counter()
        root, mapping = pcc.from_pyjuice(ns, return_map=True)
        r["convert_s"] = time.perf_counter() - t
    t = time.perf_counter()
    # on the CPU; moved to the GPU in its turn
    fuse = {"on": True, "off": False}.get(args.fuse_products, args.fuse_products)
    model = pcc.compile(root, precision=args.precision, fuse_products=fuse)
    r["pcc_compile_s"] = time.perf_counter() - t
    r["edges"] = model.stats()["sum_edges"]

    r["quiet_timing"] = phase(args, "ready", name)
    with gpu_turn(args):
        r["gpu_wait_s"] = time.perf_counter() - t0 - r["build_s"] - r.get("pj_compile_s", 0) \
            - r["convert_s"] - r["pcc_compile_s"]
        x = x_cpu.to(device)
        xe = x[:args.em_rows]  # the agreement EM step's rows (timing uses the whole batch)
        ll_pj, after_pj = None, None
        # ---- PyJuice: agreement data, timing; then it leaves the GPU ----
        if have_pj:
            t = time.perf_counter()
            base = mem_now(device)
            pc.to(device)
            # --pj-fp32: PyJuice's float32 kernels for the agreement data, in its backward only or in
            # both passes (by default its sm_90 parameter flows use fp16 / TF32 products, which alone
            # can move small parameters by more than 1e-3; its float32 forward is the less accurate
            # of its two, 7e-6 relative on RAT-SPN against 7e-7).
            fp32 = {"force_use_fp32": True}
            fwd32 = fp32 if args.pj_fp32 == "all" else {}
            bwd32 = fp32 if args.pj_fp32 in ("all", "backward") else {}
            bwd = ({"sum_layer_pre_backward_callback": pj_stale_flows_cleared(pc, not args.pj_linear_flows)}
                   if args.pj_clear_stale_flows else {})
            if args.pj_linear_flows:
                bwd["logspace_flows"] = False
            with torch.no_grad():
                ll_pj = pc(x, **fwd32)[:, 0].double().cpu().numpy()
                pc(xe, **fwd32)  # the backward reads the forward it follows
                pc.backward(inputs=xe, flows_memory=0.0, **bwd32, **bwd)
                pc.mini_batch_em(step_size=args.step_size, pseudocount=args.pseudocount)
            pc.update_parameters()
            after_pj = pj_params_after(mapping)
            # PyJuice's first calls JIT-compile its Triton kernels (TRITON_CACHE_DIR keeps them).
            r["pj_first_s"] = time.perf_counter() - t

            # --pj-cuda-graphs: PyJuice records its passes as CUDA graphs on the first timed call and
            # replays them after (its record_cudagraph; off by default, as pip installs it).
            graphs = {"record_cudagraph": True} if args.pj_cuda_graphs else {}
            r["pj_cuda_graphs"] = bool(args.pj_cuda_graphs)
            r["pj_fp32"], r["pj_clear_stale_flows"] = args.pj_fp32, bool(args.pj_clear_stale_flows)
            r["pj_linear_flows"] = bool(args.pj_linear_flows)

            def pj_fwd():
                with torch.no_grad():
                    pc(x, **graphs)

            def pj_fwd_bwd():
                with torch.no_grad():
                    pc(x, **graphs)
                    pc.backward(inputs=x, flows_memory=0.0, **graphs)

            def pj_step():
                pj_fwd_bwd()
                pc.mini_batch_em(step_size=args.step_size, pseudocount=args.pseudocount)

            t = time.perf_counter()
            r["pj_fwd"] = timed(pj_fwd, device, args.reps)
            r["pj_fb"] = timed(pj_fwd_bwd, device, args.reps)
            reset_peak(device)
            r["pj_step"] = timed(pj_step, device, args.reps)
            r["pj_gib"] = peak_gib(device, base)
            r["pj_timing_s"] = time.perf_counter() - t
            del pc, pj_fwd, pj_fwd_bwd, pj_step
            if device.type == "cuda":
                torch.cuda.empty_cache()
        mapping = None  # PyJuice nodes are not needed past this point
        # One vector per parameter group, keyed by id(group) (pcc's em_step never changes `root`: its
        # parameter arrays are frozen, so `pre` and the oracle below read the circuit before the step).
        if after_pj is not None:
            after_pj = {id(v.param_group): p for v, p in after_pj.values()}
        vectors = {g: v for g, v in param_owners(root).items() if after_pj is None or g in after_pj}
        pre = {g: v.params for g, v in vectors.items()}

        # ---- pcc: same circuit, same parameters ----
        t = time.perf_counter()
        base = mem_now(device)
        model.to(device)
        model.precision = args.agree_precision or args.precision
        with torch.no_grad():
            ll_pcc = model(x).double().cpu().numpy()
        model.zero_flows()
        model(xe).sum().backward()
        model.em_step(args.step_size, args.pseudocount)
        model.precision = args.precision  # the timings'
        # Read on the CPU, one host copy for all vectors (get_params of a CUDA model copied the whole
        # buffer per call before it gathered per group, and held the GPU for minutes on PD).
        model.to("cpu")
        after_pcc = {g: pcc_params(model, v) for g, v in vectors.items()}
        model.to(device)
        if ll_pj is not None:
            r["ll_agree"] = rel_err(ll_pcc, ll_pj)

        fwd, fwd_bwd, step = pcc_calls(model, x, args.step_size, args.pseudocount)
        r["pcc_fwd"] = timed(fwd, device, args.reps)
        r["pcc_fb"] = timed(fwd_bwd, device, args.reps)
        model.zero_flows()  # (fwd_bwd's flows)
        reset_peak(device)
        r["pcc_step"] = timed(step, device, args.reps)
        r["pcc_gib"] = peak_gib(device, base)
        r["pcc_gpu_s"] = time.perf_counter() - t
        if args.profile and device.type == "cuda":
            print(f"{name}: pcc kernels per EM step", flush=True)
            kernel_profile(step, args.profile)
        del model, fwd, fwd_bwd, step, x, xe
        if device.type == "cuda":
            torch.cuda.empty_cache()
    xe = x_cpu[:args.em_rows]
    phase(args, "timed", name)  # the oracles' CPU work waits for every timing

    # ---- float64 oracle: the EM step on the same rows, then the log-likelihood of a few rows ----
    ref_em, ref_flow = None, None
    est = ref_em_estimate_s(root, len(xe))
    if est <= args.ref_em_max_s:
        t = time.perf_counter()
        ref_em, ref_flow = ref_em_params(root, xe, args)
        r["ref_em_s"] = time.perf_counter() - t
    errs, lines = em_report(vectors, pre, ref_em, after_pcc, after_pj, ref_flow)
    r.update(errs)
    print(f"{name}: EM step on {len(xe)} rows, {len(vectors)} parameter groups; float64 oracle "
          + (f"ref_em_s {r['ref_em_s']:.1f} (estimated {est:.0f})" if ref_em is not None else
             f"skipped: estimated {est:.0f} s > --ref-em-max-s {args.ref_em_max_s:g}"),
          flush=True)
    print("\n".join(lines), flush=True)
    after_pj = after_pcc = ref_em = ref_flow = None
    t = time.perf_counter()
    ref = pcc.reference.log_likelihood(root, xr)
    r["ref_s"] = time.perf_counter() - t
    r["pcc_err"] = rel_err(ll_pcc[:args.ref_rows], ref)
    if ll_pj is not None:
        r["pj_err"] = rel_err(ll_pj[:args.ref_rows], ref)
    r["total_s"] = time.perf_counter() - t0
    return r


def fmt(r, key, spec):
    v = r.get(key)
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def ratio(r, a, b):
    """r[a] / r[b], or None."""
    if r.get(a) is None or r.get(b) is None or not r[b] or math.isnan(r[a]) or math.isnan(r[b]):
        return None
    return r[a] / r[b]


HEADER = ("| config | sum edges | PyJuice fwd / fwd+bwd / step ms | pcc fwd / fwd+bwd / step ms | "
          "speedup fwd / fwd+bwd / step | PyJuice GiB | pcc GiB | mem ratio | PyJuice LL err | "
          "pcc LL err | LL agree | PyJuice EM err | pcc EM err | params agree |")


def row(r):
    if "error" in r:
        return f"| {r['config']} | FAILED: {r['error']} |" + " |" * 12
    sp = [ratio(r, f"pj_{k}", f"pcc_{k}") for k in ("fwd", "fb", "step")]
    r["sp_fwd"], r["sp_fb"], r["sp_step"] = sp
    r["mem_ratio"] = ratio(r, "pcc_gib", "pj_gib")
    f = lambda k, s: fmt(r, k, s)  # noqa: E731
    return (f"| {r['config']} | {r.get('edges', 0):,} | {f('pj_fwd', '.2f')} / {f('pj_fb', '.2f')} / "
            f"{f('pj_step', '.2f')} | {f('pcc_fwd', '.2f')} / {f('pcc_fb', '.2f')} / {f('pcc_step', '.2f')} | "
            f"{f('sp_fwd', '.2f')}x / {f('sp_fb', '.2f')}x / {f('sp_step', '.2f')}x | {f('pj_gib', '.2f')} | "
            f"{f('pcc_gib', '.2f')} | {f('mem_ratio', '.2f')} | {f('pj_err', '.1e')} | {f('pcc_err', '.1e')} | "
            f"{f('ll_agree', '.1e')} | {f('pj_em_err', '.1e')} | {f('pcc_em_err', '.1e')} | "
            f"{f('param_agree', '.1e')} |")


def geomean(xs):
    xs = [x for x in xs if x is not None and x > 0 and not math.isnan(x)]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def summary(results, args, device):
    if args.merge:  # what the runs recorded (results of older runs lack some)
        where = ", ".join(sorted({r.get("device", "not recorded") for r in results}))
        fuse = ", ".join(sorted({r.get("fuse_products", "not recorded") for r in results}))
        graphs = ", ".join(sorted({r.get("cuda_graphs", "not recorded (off)") for r in results}))
        prec = ", ".join(sorted({r.get("precision", "tf32") for r in results}))
        agree = ", ".join(sorted({r.get("agree_precision", r.get("precision", "tf32")) for r in results}))
    else:
        where = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
        fuse, graphs = args.fuse_products, args.cuda_graphs
        prec, agree = args.precision, args.agree_precision or args.precision
    agree = f" (agreement checks {agree})" if agree != prec else ""
    lines = [f"device: {where}; batch {args.batch}; "
             f"median of {args.reps}; pcc precision {prec}{agree}"
             f", fuse_products {fuse}, CUDA graphs {graphs}; EM step_size {args.step_size}, "
             f"pseudocount {args.pseudocount}; LL errors: max |ll - ref| / max(1, |ref|) on {args.ref_rows} "
             f"rows vs pcc.reference (float64); after one EM step on {args.em_rows} rows, max |a-b| / "
             f"max(|b|, 1e-3) over the parameters: EM err of each system vs pcc.reference_em (float64), "
             f"params agree pcc vs PyJuice" + (" (QUICK: tiny circuits)" if args.quick else ""), "", HEADER,
             "|" + "---|" * 14]
    lines += [row(r) for r in results]
    ok = [r for r in results if "error" not in r]
    g = {k: geomean([r.get(k) for r in ok]) for k in ("sp_fwd", "sp_fb", "sp_step", "mem_ratio")}
    gs = lambda k, s="x": "-" if g[k] is None else f"{g[k]:.2f}{s}"  # noqa: E731
    lines += ["", f"geometric mean speedup (PyJuice ms / pcc ms): fwd {gs('sp_fwd')}, fwd+bwd {gs('sp_fb')}, "
              f"step {gs('sp_step')}; memory pcc / PyJuice: {gs('mem_ratio', '')}"]
    steps = [r["sp_step"] for r in ok if r.get("sp_step") is not None]
    mems = [r["mem_ratio"] for r in ok if r.get("mem_ratio") is not None]
    if steps:
        lines.append(f"min step speedup {min(steps):.2f}x; max memory ratio {max(mems) if mems else float('nan'):.2f}")
    if any("quiet_timing" in r for r in ok):
        lines.append(f"timed while no other worker used the CPU: {sum(bool(r.get('quiet_timing')) for r in ok)} "
                     f"of {len(ok)} configurations; PyJuice with its CUDA graphs: "
                     + ", ".join(sorted({str(r.get("pj_cuda_graphs", False)).lower() for r in ok})))
    if any("pj_fp32" in r for r in ok):  # how PyJuice ran the agreement step (not its timings)
        lines.append("PyJuice's agreement step: float32 kernels (force_use_fp32) in "
                     + ", ".join(sorted({str(r.get("pj_fp32")).lower() for r in ok if "pj_fp32" in r}))
                     + "; stale element flows cleared "
                     + ", ".join(sorted({str(r.get("pj_clear_stale_flows")).lower() for r in ok if "pj_fp32" in r})))
    checked = [r for r in ok if "ll_agree" in r]
    bad = [r["config"] for r in checked if not (r["ll_agree"] <= 1e-3 and r["param_agree"] <= 1e-3)]
    lines.append("agreement with PyJuice (LL 1e-3, params 1e-3): " + (
        "not checked (no PyJuice run)" if not checked else "FAIL: " + ", ".join(bad) if bad else
        f"all {len(checked)} pass") + (f"; failed configurations: {len(results) - len(ok)}"
                                       if len(ok) < len(results) else ""))
    for key, who in (("pj_em_err", "PyJuice"), ("pcc_em_err", "pcc")):
        had = [r for r in ok if key in r]
        if had:
            bad = [f"{r['config']} ({r[key]:.1e})" for r in had if not r[key] <= 1e-3]
            lines.append(f"{who} EM step vs float64 (1e-3): " + ("FAIL: " + ", ".join(bad) if bad else
                                                                  f"all {len(had)} pass"))
    return "\n".join(lines)


def write_atomic(path, text):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".vs_pyjuice.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", default="", help="comma-separated configuration names: " + ",".join(NAMES))
    ap.add_argument("--quick", action="store_true", help="tiny circuits, 3 reps, 2 reference rows")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--reps", type=int, default=None, help="timed calls (default 20, quick 3)")
    ap.add_argument("--profile", type=int, default=0,
                    help="also print the N kernels taking most of pcc's GPU time per EM step")
    ap.add_argument("--ref-rows", type=int, default=None, help="rows for the float64 reference (default 8)")
    ap.add_argument("--em-rows", type=int, default=64,
                    help="rows of the batch for the agreement EM step and its float64 oracle (default 64)")
    ap.add_argument("--ref-em-max-s", type=float, default=60,
                    help="skip the float64 EM oracle where its estimated CPU time exceeds this many "
                         "seconds (default 60: PD-64, HCLT-128, RAT-128/256 run; HMMs, PD-128+ do not)")
    ap.add_argument("--precision", default="tf32", help="pcc's precision for the timings (and the agreement)")
    ap.add_argument("--agree-precision", default=None,
                    help="pcc's precision for the LL / EM agreement checks (default --precision); fp32 runs "
                         "them on its float32 SIMT sum kernels")
    ap.add_argument("--fuse-products", choices=["binary", "on", "off"], default="binary",
                    help="pcc.compile's fuse_products (products computed inside the sums that read them): "
                         "binary (what it picks for CUDA), on (all), off")
    ap.add_argument("--cuda-graphs", choices=["on", "off"], default="on",
                    help="pcc.set_cuda_graphs: pcc's passes replayed as CUDA graphs (its default, on)")
    ap.add_argument("--step-size", type=float, default=0.1)
    ap.add_argument("--pseudocount", type=float, default=0.1)
    ap.add_argument("--pcc-only", action="store_true", help="skip PyJuice's compile/run (graph still built)")
    ap.add_argument("--pj-fp32", nargs="?", choices=["none", "backward", "all"], default="none", const="all",
                    help="PyJuice's float32 kernels (force_use_fp32) for the LL / EM agreement checks: in "
                         "its backward only, or in both passes (all, what the bare flag means); timings "
                         "unchanged")
    ap.add_argument("--pj-clear-stale-flows", action="store_true",
                    help="PyJuice's agreement EM step with the element flows of products no sum reads "
                         "cleared (see pj_stale_flows_cleared; timings unchanged)")
    ap.add_argument("--pj-linear-flows", action="store_true",
                    help="PyJuice's agreement backward with logspace_flows=False (its default keeps log flows)")
    ap.add_argument("--pj-cuda-graphs", action="store_true",
                    help="time PyJuice with its own CUDA graphs (record_cudagraph; off as pip installs it)")
    ap.add_argument("--out", default=None, help="write the final table here (atomically)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="worker processes; their GPU parts take turns under one lock (default 1)")
    ap.add_argument("--json-dir", default=None,
                    help="where each configuration's NAME.json goes as it ends (--jobs: and the workers' NAME.log)")
    ap.add_argument("--json-out", default=None, help="write this run's results as JSON (a worker of --jobs)")
    ap.add_argument("--lock", default=None, help="file lock that GPU work takes turns under (--jobs)")
    ap.add_argument("--barrier-dir", default=None,
                    help="(a worker of --jobs) where the workers mark their phases: see phase()")
    ap.add_argument("--barrier-n", type=int, default=0, help="(a worker of --jobs) workers that meet there")
    ap.add_argument("--barrier-timeout", type=float, default=1200.0,
                    help="seconds a worker waits for the others at a phase (default 1200)")
    ap.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                    help="print the table of results saved by earlier runs (--json-out / --json-dir)")
    args = ap.parse_args()
    args.reps = args.reps or (3 if args.quick else 20)
    args.ref_rows = min(args.ref_rows or (2 if args.quick else 8), args.batch)
    args.em_rows = min(args.em_rows, args.batch)
    if args.em_rows < 1:
        ap.error("--em-rows must be >= 1")
    device = torch.device(args.device)
    pcc.set_cuda_graphs(args.cuda_graphs == "on")
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(NAMES)
    if unknown:
        ap.error(f"unknown configurations {sorted(unknown)}; choose from {NAMES}")
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error("CUDA is not available; use --device cpu (pcc half only)")

    if args.lock and os.environ.get("OMP_NUM_THREADS"):  # a worker: its share of the cores
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
        pcc.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    if args.merge:
        results = []
        for path in args.merge:
            with open(path) as f:
                results += json.load(f)["results"]
        return finish(results, args, device, print_rows=True)
    if args.jobs > 1:
        return run_workers(only or NAMES, args, device)

    results = []
    print(HEADER, flush=True)
    for name in only or NAMES:
        try:
            r = run_config(name, args, device)
        except Exception as e:  # one configuration failing must not end the run
            traceback.print_exc()
            msg = f"{type(e).__name__}: {e}".replace("|", "/").replace("\n", " ")[:300]
            r = {"config": name, "error": msg}
        if device.type == "cuda":
            torch.cuda.empty_cache()
        results.append(r)
        print(row(r), f"  (build {r.get('build_s', 0):.0f}s, PyJuice compile {r.get('pj_compile_s', 0):.0f}s, "
              f"first PyJuice calls {r.get('pj_first_s', 0):.0f}s, PyJuice timing {r.get('pj_timing_s', 0):.0f}s, "
              f"convert {r.get('convert_s', 0):.1f}s, pcc compile {r.get('pcc_compile_s', 0):.1f}s, "
              f"pcc on the device {r.get('pcc_gpu_s', 0):.0f}s, reference {r.get('ref_s', 0):.0f}s, "
              f"EM reference {r.get('ref_em_s', 0):.1f}s, total {r.get('total_s', 0):.0f}s)", flush=True)
        # Saved as each configuration ends, so a run cut short (a device call's limit) keeps them.
        if args.json_dir:
            os.makedirs(args.json_dir, exist_ok=True)
            write_atomic(os.path.join(args.json_dir, f"{name}.json"), json.dumps({"results": [r]}, default=float))
        if args.json_out:
            write_atomic(args.json_out, json.dumps({"results": results}, default=float))
    return finish(results, args, device)


def finish(results, args, device, print_rows=False):
    if print_rows:
        print(HEADER)
        for r in results:
            print(row(r))
    text = summary(results, args, device)
    print("\n" + text, flush=True)
    if args.out:
        write_atomic(args.out, text)
    return 0


def run_workers(names, args, device):
    """One worker process of this script per configuration, at most --jobs at once; the GPU parts take
    turns under one file lock. Each worker's output goes to NAME.log, its result to NAME.json."""
    out_dir = args.json_dir or tempfile.mkdtemp(prefix="vs_pyjuice.")
    os.makedirs(out_dir, exist_ok=True)
    lock = os.path.join(out_dir, "gpu.lock")
    drop = {"--jobs", "--only", "--out", "--json-dir", "--json-out", "--lock", "--barrier-dir", "--barrier-n"}
    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        key = a.split("=", 1)[0]
        if key in drop:
            skip = "=" not in a
            continue
        argv.append(a)
    # Two cores stay free for the worker holding the GPU: its kernel launches must not wait for a core.
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, ((os.cpu_count() or 4) - 2) // args.jobs)))
    pending, running, results = list(names), {}, {}
    # With every configuration running at once, all timings happen while the CPU is quiet (phase()).
    barrier = []
    if args.jobs >= len(names):
        barrier_dir = os.path.join(out_dir, "phases")
        os.makedirs(barrier_dir, exist_ok=True)
        for f in os.listdir(barrier_dir):
            os.remove(os.path.join(barrier_dir, f))
        barrier = ["--barrier-dir", barrier_dir, "--barrier-n", str(len(names))]
    print(f"{len(names)} configurations, {args.jobs} workers at once; logs in {out_dir}"
          + ("; timings while the CPU is quiet" if barrier else
             "; timings overlap other workers' CPU work (--jobs below the configurations)"), flush=True)
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            cmd = [sys.executable, os.path.abspath(__file__), *argv, "--only", name, "--lock", lock,
                   "--json-out", os.path.join(out_dir, f"{name}.json"), *barrier]
            log = open(os.path.join(out_dir, f"{name}.log"), "w")
            running[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), log)
        for name, (proc, log) in list(running.items()):
            if proc.poll() is None:
                continue
            log.close()
            del running[name]
            for stage in ("ready", "timed"):  # a worker that ended early must not hold the others
                if barrier:
                    open(os.path.join(barrier[1], f"{stage}.{name}"), "a").close()
            try:
                with open(os.path.join(out_dir, f"{name}.json")) as f:
                    results[name] = json.load(f)["results"][0]
            except (OSError, ValueError, IndexError, KeyError) as e:
                results[name] = {"config": name, "error": f"worker exited {proc.returncode} ({e})"}
            with open(os.path.join(out_dir, f"{name}.log")) as f:
                print(f"---- {name} (worker exit {proc.returncode}) ----\n" + f.read().strip(), flush=True)
        time.sleep(1)
    return finish([results[n] for n in names], args, device, print_rows=True)


if __name__ == "__main__":
    sys.exit(main())
