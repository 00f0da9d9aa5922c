"""`pcc.compile` and `pcc.TensorCircuit`: a compiled circuit as a `torch.nn.Module`.

The module owns the plan (the C++ compiler's output) and every parameter in the plan's layout, in
one of two forms, so that training never holds more parameter-sized tensors than it needs:

* EM form (the default): `params`, a buffer of normalized parameters (mixture weights, category
  probabilities, Gaussian mean and std), which the kernels read and `em_step` updates in place, and
  `param_flows`, the accumulated EM statistics: two parameter-sized tensors, as PyJuice keeps.
  `zero_flows()`, `model(x).sum().backward()` (flows accumulate over calls, always those of the
  batch's summed log-likelihood, whatever the loss's scale), `em_step(step_size, pseudocount)`.
  `model.parameters()` is empty; `model.log_params` returns a computed copy.
* Gradient form, after `requires_grad_(True)`: `log_params`, an `nn.Parameter` of log-parameters
  (log weights, log probabilities, mean and log-std) that the forward normalizes; backward also
  fills `log_params.grad` exactly, so any torch optimizer trains the model. `requires_grad_(False)`
  goes back to the EM form (optimizers built before hold the old parameter).

`state_dict()` holds `log_params` in both forms, so either form loads the other's.

A forward pass allocates the node-value workspace with torch and hands raw pointers to the backend;
under `torch.no_grad()` it is freed on return, otherwise it is kept for the backward pass, which
overwrites parts of it (rows are shared over time): a graph runs backward once (`retain_graph=True`
and a second backward raise torch's in-place modification error).
"""
import numpy as np
import torch
from torch import nn
from torch.autograd.graph import increment_version

from . import _C, dists
from .errors import Error, StateDictError
from .nodes import InputVector, SumVector, summate
from .backends import DTYPE_NAMES, PRECISIONS, backend_for
from .serialize import from_ir, to_ir

__all__ = ["TensorCircuit", "compile"]

class _CircuitFunction(torch.autograd.Function):
    """log p(x) of every root node; the backward accumulates EM flows and, when asked, gradients."""

    @staticmethod
    def forward(ctx, model, x, missing, log_params, anchor):
        params = model._normalized()
        batch = x.shape[0]
        out = torch.empty(batch, model.num_root_nodes, dtype=torch.float32, device=x.device)
        backend = model._backend()
        values = torch.empty(backend.plan.num_rows, batch, dtype=torch.float32, device=x.device)
        backend.forward(params, x, missing, values, out, model.precision)
        ctx.model = model
        ctx.save_for_backward(x, missing, values, params)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        model = ctx.model
        x, missing, values, params = ctx.saved_tensors
        # EM statistics are the flows of the summed log-likelihood (root flow 1 per sample), whatever
        # the loss's scale; the backend adds them straight into the model's accumulator.
        # A flow pass overwrites workspace rows the forward left (reuse_rows shares them), so a second
        # pass over the same values needs its own copy, and a later backward over them must refuse.
        ones = torch.ones(grad_out.shape, dtype=torch.float32, device=grad_out.device)
        grads = ctx.needs_input_grad[3]
        model._backward(x, missing, values.clone() if grads else values, params, ones, model.param_flows)
        grad = None
        if grads:
            # Gradients: flows with each sample weighted by d loss / d log p(x).
            gstats = torch.zeros_like(params)
            model._backward(x, missing, values, params, grad_out.contiguous().float(), gstats)
            grad = torch.zeros_like(params)
            model._backend().param_grads(params, gstats, grad)
        increment_version(values)
        return None, None, None, grad, None


def _layout_tensor(layout_id):
    """The plan's 64-bit parameter layout id (16 hex digits) as an int64 scalar tensor."""
    v = int(layout_id, 16)
    return torch.tensor(v - (1 << 64) if v >= 1 << 63 else v, dtype=torch.int64)


class TensorCircuit(nn.Module):
    """A compiled probabilistic circuit. Call it on `x` `[B, num_vars]` to get log p(x).

    Build one with `pcc.compile(root)`. `stats()` describes the circuit as built, `report()` the
    compiled plan; `get_params(ns)` / `set_params(ns, ...)` read and write the parameters of a node
    vector of the circuit, `to_circuit()` returns the circuit with the current parameters.
    """

    def __init__(self, root, plan, group_ids, device="cpu", precision="tf32"):
        super().__init__()
        self.root = root
        self._plan = plan
        self._group_ids = group_ids
        self.precision = precision
        self._backends = {}
        self.register_buffer("params", torch.from_numpy(plan.params()), persistent=False)
        self.register_buffer("param_flows", torch.zeros_like(self.params), persistent=False)
        # state_dict's log_params is the compiled buffer, whose order depends on the compile (block
        # sizes, category-major inputs); its layout id travels with it as a tensor, so a buffer is
        # never loaded into a model that reads it in another order (checked in _load_from_state_dict).
        self.register_buffer("param_layout", _layout_tensor(plan.param_layout_id))
        # Gives outputs a graph in EM mode (no parameter requires grad); never receives a gradient.
        self._anchor = torch.zeros((), requires_grad=True)
        self._cache = (None, None)  # gradient form: (log_params version key, normalized params)
        self.to(device)

    @property
    def precision(self):
        """Arithmetic of the CUDA sum layers, read by every pass (see `compile`); settable between
        calls, e.g. "fp32" for one exact EM step of a model trained in "tf32"."""
        return self._precision

    @precision.setter
    def precision(self, precision):
        if precision not in PRECISIONS:
            raise Error(f"precision: expected one of {PRECISIONS}, got {precision!r}")
        self._precision = precision

    # ---- the two forms of the parameters ----
    @property
    def _grad_form(self):
        return "log_params" in self._parameters

    def __getattr__(self, name):
        if name == "log_params" and "log_params" not in self._parameters:
            return self._log_of(self.params)  # EM form: a computed copy
        if name == "params" and "log_params" in self._parameters:
            return self._normalized()  # gradient form: the cache the forward reads
        return super().__getattr__(name)

    def _log_of(self, params):
        lp = torch.empty_like(params)
        self._backend().log_params(params, lp)
        return lp

    def requires_grad_(self, requires_grad=True):
        """`True`: gradient form (`log_params` becomes an `nn.Parameter` that requires grad);
        `False`: back to the EM form (normalized `params`, one parameter-sized tensor fewer)."""
        if requires_grad and not self._grad_form:
            lp = self._log_of(self.params)
            del self._buffers["params"]
            self.log_params = nn.Parameter(lp, requires_grad=True)
            self._cache = (None, None)
        elif not requires_grad and self._grad_form:
            params = self._normalized()
            del self._parameters["log_params"]
            self.register_buffer("params", params, persistent=False)
            self._cache = (None, None)
        return self

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if not self._grad_form:
            destination[prefix + "log_params"] = self._log_of(self.params)

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """As `nn.Module.load_state_dict`; a refused state dict raises `pcc.StateDictError` (a
        `pcc.Error` and a `RuntimeError`) naming every problem, with the model left as it was where
        the layout or shapes do not match."""
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as e:
            if isinstance(e, StateDictError) or not str(e).startswith("Error(s) in loading state_dict"):
                raise
            raise StateDictError(str(e)) from None

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs):
        extra = prefix + "param_layout"
        if extra in state_dict:
            theirs = state_dict[extra]
            if not isinstance(theirs, torch.Tensor) or theirs.numel() != 1 or int(theirs) != int(self.param_layout):
                error_msgs.append(f"{prefix}log_params: the state dict's parameter layout is not this model's: it "
                                  "was saved from a model compiled differently (block_size, category_major_cats, "
                                  "another circuit or pcc version); load the circuit (.pcir) or compile with the "
                                  "same options")
                return
        n_missing = len(missing_keys)
        self._load_params_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                          unexpected_keys, error_msgs)
        if extra not in state_dict and extra in missing_keys[n_missing:]:
            missing_keys.remove(extra)  # saved before layout ids existed: accepted as it was

    def _load_params_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                                     unexpected_keys, error_msgs):
        key = prefix + "log_params"
        if self._grad_form or key not in state_dict:
            return super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                                 unexpected_keys, error_msgs)
        lp = state_dict[key]
        if not isinstance(lp, torch.Tensor) or lp.shape != self.params.shape:
            error_msgs.append(f"size mismatch for {key}: copying a param with shape "
                              f"{tuple(getattr(lp, 'shape', ()))}, the model has {tuple(self.params.shape)}")
            return
        with torch.no_grad():
            params = torch.empty_like(self.params)
            self._backend().normalize(lp.detach().to(self.params), params)
            self.params.copy_(params)
        rest = {k: v for k, v in state_dict.items() if k != key}
        super()._load_from_state_dict(rest, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)

    # ---- what the circuit is ----
    @property
    def num_vars(self):
        return self._plan.num_vars

    @property
    def num_root_nodes(self):
        return self._plan.num_root_nodes

    def stats(self):
        """Counts of the circuit as built: input/sum/product nodes, sum/product edges, parameters."""
        return dict(self._plan.stats)

    @property
    def num_nodes(self):
        s = self._plan.stats
        return s["input_nodes"] + s["sum_nodes"] + s["product_nodes"]

    @property
    def num_edges(self):
        s = self._plan.stats
        return s["sum_edges"] + s["product_edges"]

    @property
    def num_params(self):
        s = self._plan.stats
        return s["sum_params"] + s["input_params"]

    @property
    def plan(self):
        """The compiled plan (`pcc._C.Plan`): `report()`, `summary()`, `save(path)`."""
        return self._plan

    def report(self):
        """The compile report (layers, partitions, padding, work and memory per sample)."""
        return self._plan.report()

    @property
    def device(self):
        return self.param_flows.device

    # ---- running it ----
    def forward(self, x, missing=None):
        """log p(x) as float32 `[B]` (one root node) or `[B, R]` (R root nodes).

        `x`: integer or float tensor `[B, num_vars]`; discrete variables hold integer values.
        `missing`: optional bool tensor `[B, num_vars]`; marked entries are marginalized (not read).
        """
        x = self._check_x(x)
        missing = self._check_missing(missing, x)
        if x.shape[0] == 0:
            out = torch.empty(0, self.num_root_nodes, device=self.device)
        elif torch.is_grad_enabled():
            lp = self._parameters["log_params"] if self._grad_form else None
            out = _CircuitFunction.apply(self, x, missing, lp, self._anchor)
        else:
            with torch.no_grad():
                out = _CircuitFunction.forward(_NoCtx(), self, x, missing, None, None)
        return out[:, 0] if self.num_root_nodes == 1 else out

    def _backend(self):
        """The runtime for the device the parameters are on (created once per device)."""
        dev = self.param_flows.device
        b = self._backends.get(dev)
        if b is None:
            b = self._backends[dev] = backend_for(self._plan, dev)
        return b

    def _normalized(self):
        """The normalized parameters the kernels read: `params` in the EM form; in the gradient form
        computed from log_params, again only after log_params changed."""
        if not self._grad_form:
            return self.params
        key = (self.log_params.data_ptr(), self.log_params._version)
        if self._cache[0] != key:
            lp = self.log_params.detach()
            params = torch.empty_like(lp)
            self._backend().normalize(lp, params)
            self._cache = (key, params)
        return self._cache[1]

    def _backward(self, x, missing, values, params, root_flow, stats):
        """One flow pass; its parameter statistics are added into `stats`."""
        flows = torch.empty_like(values)
        self._backend().backward(params, x, missing, values, root_flow, flows, stats, self.precision)

    # ---- learning ----
    def zero_flows(self):
        """Forget the flows accumulated by backward passes since the last `em_step`."""
        self.param_flows.zero_()

    @torch.no_grad()
    def em_step(self, step_size=1.0, pseudocount=0.0):
        """One EM update of every sum node and input distribution from the accumulated flows, then
        zero the flows. theta <- (1 - s) theta + s (F + a/K) / (sum F + a) (DESIGN.md); Gaussians take
        the flow-weighted mean and variance mixed with step s, std floored at
        `pcc.GAUSSIAN_MIN_STD`. step_size 1 over one full pass is exact full-batch EM."""
        step_size, pseudocount = float(step_size), float(pseudocount)
        if not 0.0 <= step_size <= 1.0:
            raise Error(f"em_step: step_size must be in [0, 1], got {step_size}")
        if not pseudocount >= 0.0 or not np.isfinite(pseudocount):
            raise Error(f"em_step: pseudocount must be a finite number >= 0, got {pseudocount}")
        # In place on the normalized parameters; in the gradient form the log-parameters are then
        # written straight into the parameter (two passes, no copies: they reach hundreds of millions).
        params = self._normalized()
        backend = self._backend()
        backend.em_update(params, self.param_flows, step_size, pseudocount)
        increment_version(params)  # a pending backward that saved them would now refuse to run
        if self._grad_form:
            backend.log_params(params, self.log_params.detach())
            increment_version(self.log_params)
            self._cache = ((self.log_params.data_ptr(), self.log_params._version), params)
        self.zero_flows()

    def _set_params(self, params):
        """The parameters <- `params` (normalized) in place (optimizers keep their state)."""
        params = params.to(self.device)
        if not self._grad_form:
            self.params.copy_(params)  # bumps its version: a pending backward that saved it refuses
            return
        self.log_params.copy_(self._log_of(params))
        self._cache = (None, None)

    # ---- parameters in the circuit's own layouts ----
    def _group(self, ns):
        g = self._group_ids.get(id(getattr(ns, "param_group", None)))
        if g is None:
            raise Error(f"{ns!r} has no parameters in this model (not an input or sum vector of its circuit)")
        return g

    @torch.no_grad()
    def get_params(self, ns):
        """Current parameters of node vector `ns`, normalized, in its constructor's layout: sums
        `[num_nodes, C]`, `[E]` or `[E, b, b]`; inputs a dict: {"probs"} (Categorical `[n, K]`,
        Bernoulli `[n]` = P(x=1)) or {"mean", "std"} (Gaussian)."""
        g = self._group(ns)
        params = self._normalized()
        if params.device.type == "cpu":
            flat = torch.from_numpy(_C.read_group(self._plan, params.data_ptr(), g))
        else:
            flat = gather_group(self._plan, params, g)
        shape = ns.param_group.values.shape
        if isinstance(ns, SumVector):
            return flat.reshape(shape)
        if ns.dist.name == "gaussian":
            return {"mean": flat[:ns.num_nodes].clone(), "std": flat[ns.num_nodes:].clone()}
        return {"probs": flat.reshape(shape)}

    @torch.no_grad()
    def set_params(self, ns, params=None, **dist_params):
        """Set the parameters of `ns` in the layout `get_params` returns: sums `set_params(ns, w)`
        (normalized per sum node), inputs `set_params(ns, probs=...)` or `(ns, mean=..., std=...)`.
        Tied vectors share the new values. Validated like the constructors."""
        g = self._group(ns)
        if isinstance(ns, SumVector):
            if params is None or dist_params:
                raise Error("set_params: a sum vector takes one array of weights")
            block = ns.block_size if ns.form == "block" else None
            edges = None if ns.form == "dense" else ns.edges
            values = summate(*ns.children, num_nodes=ns.num_nodes, edges=edges, params=params,
                             block_size=block).param_group.values
        else:
            if params is not None:
                raise Error("set_params: pass input parameters by name (probs=..., mean=..., std=...)")
            current = self.get_params(ns)
            unknown = set(dist_params) - set(current)
            if unknown:
                raise Error(f"set_params: {ns.dist.name} has parameters {sorted(current)}, got {sorted(unknown)}")
            merged = {**current, **dist_params}
            if ns.dist.name == "categorical":
                dist = dists.Categorical(ns.dist.num_cats, **merged)
            else:
                dist = dists.Bernoulli(**merged) if ns.dist.name == "bernoulli" else dists.Gaussian(**merged)
            values = dist.init_params(ns.num_nodes)
        params_now = self._normalized().cpu().clone()
        _C.write_group(self._plan, params_now.data_ptr(), g, np.ascontiguousarray(values, np.float32).ravel())
        self._set_params(params_now)

    @torch.no_grad()
    def to_circuit(self):
        """The circuit (a new root node vector) with this model's current parameters; ties kept."""
        ids = {}
        circuit = to_ir(self.root, ids)
        params = self._normalized().cpu()
        for g in set(ids.values()):
            circuit.set_param_group(g, _C.read_group(self._plan, params.data_ptr(), g))
        return from_ir(circuit)

    # ---- checks ----
    def _check_x(self, x):
        if not isinstance(x, torch.Tensor):
            raise Error(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.num_vars:
            raise Error(f"x: expected shape [batch, {self.num_vars}], got {list(x.shape)}")
        if x.device != self.device:
            raise Error(f"x is on device {x.device} but the model is on device {self.device}; move one of them")
        if x.is_complex():
            raise Error(f"x: complex dtype {x.dtype} is not supported")
        if x.dtype not in DTYPE_NAMES:
            x = x.to(torch.float32 if x.is_floating_point() else torch.int64)
        return x.detach().contiguous()

    def _check_missing(self, missing, x):
        if missing is None:
            return None
        if not isinstance(missing, torch.Tensor):
            raise Error(f"missing: expected a bool torch.Tensor, got {type(missing).__name__}")
        if missing.dtype != torch.bool:
            raise Error(f"missing: expected dtype torch.bool, got {missing.dtype}")
        if tuple(missing.shape) != tuple(x.shape):
            raise Error(f"missing: expected shape {list(x.shape)} (same as x), got {list(missing.shape)}")
        if missing.device != x.device:
            raise Error(f"missing is on device {missing.device} but x is on device {x.device}")
        return missing.detach().contiguous()

    def extra_repr(self):
        s = self._plan.stats
        return (f"num_vars={self.num_vars}, nodes={self.num_nodes}, sum_edges={s['sum_edges']}, "
                f"root_nodes={self.num_root_nodes}")


class _NoCtx:
    """Stands in for autograd's ctx when the forward runs without building a graph."""

    def save_for_backward(self, *tensors):
        pass


def gather_group(plan, params, g):
    """IR parameter group `g` out of plan-layout `params` on any device, as `_C.read_group` reads it
    from host memory: gathered where the buffer is, so only the group's values cross to the host
    (get_params over every vector of a GPU model would otherwise copy the whole buffer each time)."""
    slots = torch.from_numpy(_C.group_slots(plan, g))
    stored = slots >= 0
    flat = torch.zeros(len(slots), dtype=torch.float32)
    flat[stored] = params[slots[stored].to(params.device)].cpu()
    return flat


FUSE_MODES = ("auto", "binary")  # besides True and False


def compile(root, block_size=None, device="cpu", precision="tf32", max_partitions=4, reuse_rows=True,
            chunk_input_rows=16384, category_major_cats=512, fuse_products="auto", fuse_inputs=True):
    """Compile the circuit rooted at node vector `root` into a `TensorCircuit` on `device`.

    `block_size`: power-of-two upper bound for the node blocks of sum layers (None: chosen per layer
    from its shape). `precision`: arithmetic of the CUDA sum layers. "tf32" (default) and "bf16" round
    the inputs of their tensor-core products (the forward's; the backward's are TF32 for both), "fp32"
    rounds nothing and runs them on float32 SIMT kernels (the CPU backend's arithmetic, for results
    compared element by element with a float32 reference; several times slower). Accumulation is
    float32 always; the CPU backend is float32 throughout and ignores it.
    `chunk_input_rows` (with reuse_rows): a product layer reading more input rows than this runs in
    pieces, each right after its own inputs, which share rows (less memory, a few more launches).
    `reuse_rows`: let vectors share workspace rows over the pass, inputs and products recomputed in
    the backward (far less memory; a forward then serves one backward); False keeps every node's rows.
    `category_major_cats`: Categorical inputs with more categories than this (vocabularies) store
    their parameters category-major, so the nodes of a variable read one category's probabilities
    from contiguous memory; 0 makes every Categorical group category-major, -1 none. `get_params`,
    `set_params`, `to_circuit` and `.pcir` files keep the circuit's order; `state_dict` holds the
    compiled buffer, like the block layout of sum weights, so load it into a model compiled with the
    same options (one compiled into another layout refuses it).
    `fuse_products`: element-wise products (PD's, HCLT's, HMM's) are computed inside the sums that
    read them and take no workspace rows (less memory, fewer launches). True fuses every such product,
    "binary" those of two children (the CUDA kernels read those at full speed: PD-64's EM step 20%
    faster, 20% less memory), False none; "auto" (default) is "binary" when compiling for CUDA and
    False for the CPU (a model keeps its plan when moved). The parameter layout does not change, so a
    `state_dict` moves between fused and unfused models of one circuit.
    `fuse_inputs`: Categorical and Bernoulli inputs that only product layers read (HCLT's; PD's,
    RAT-SPN's and HMM's where their products are not fused) are computed inside those products: no
    launch of their own, no write and read back of their values. The results are the same bit for bit
    on the CPU; the parameter layout does not change.
    Raises `pcc.Error` if the circuit is invalid.
    """
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise Error(f"device: expected 'cpu' or 'cuda', got {device!r} ({e})") from None
    if device.type not in ("cpu", "cuda"):
        raise Error(f"device: expected 'cpu' or 'cuda', got {device}")
    if device.type == "cuda" and not _C.cuda_available():
        raise Error("device 'cuda' was requested but no CUDA device is available to pcc")
    if precision not in PRECISIONS:
        raise Error(f"precision: expected one of {PRECISIONS}, got {precision!r}")
    if isinstance(chunk_input_rows, bool) or not isinstance(chunk_input_rows, int) or chunk_input_rows < 1:
        raise Error(f"chunk_input_rows: expected an integer >= 1, got {chunk_input_rows!r}")
    if isinstance(category_major_cats, bool) or not isinstance(category_major_cats, int) \
            or category_major_cats < -1:
        raise Error(f"category_major_cats: expected an integer >= -1, got {category_major_cats!r}")
    if not (isinstance(fuse_products, bool) or (isinstance(fuse_products, str) and fuse_products in FUSE_MODES)):
        raise Error(f"fuse_products: expected True, False, 'binary' or 'auto', got {fuse_products!r}")
    if fuse_products == "auto":
        fuse_products = "binary" if device.type == "cuda" else False
    fuse = {"fuse_products": True, "fuse_max_arity": 2} if fuse_products == "binary" else \
        {"fuse_products": fuse_products}
    if not isinstance(fuse_inputs, bool):
        raise Error(f"fuse_inputs: expected True or False, got {fuse_inputs!r}")
    if block_size is not None:
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1 \
                or block_size & (block_size - 1):
            raise Error(f"block_size: expected a power of two, got {block_size!r}")
    group_ids = {}
    plan = _C.compile(to_ir(root, group_ids), block_size=block_size or 0, max_partitions=max_partitions,
                      reuse_rows=bool(reuse_rows), chunk_input_rows=chunk_input_rows,
                      category_major_cats=category_major_cats, fuse_inputs=fuse_inputs, **fuse)
    return TensorCircuit(root, plan, group_ids, device, precision)
