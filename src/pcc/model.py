"""`pcc.compile` and `pcc.TensorCircuit`: a compiled circuit as a `torch.nn.Module`.

The module owns the plan (the C++ compiler's output) and the parameter buffer in the plan's layout
(a registered buffer, so it moves with `.to()` and lives in `state_dict`). A forward pass allocates
the node-value workspace with torch, hands raw pointers to the backend and frees the workspace on
return: nothing is kept between calls.
"""
import torch
from torch import nn

from . import _C
from .errors import Error
from .serialize import to_ir

__all__ = ["TensorCircuit", "compile"]

_DTYPE_NAMES = {
    torch.bool: "bool", torch.uint8: "uint8", torch.int8: "int8", torch.int16: "int16",
    torch.int32: "int32", torch.int64: "int64", torch.float32: "float32", torch.float64: "float64",
}


class TensorCircuit(nn.Module):
    """A compiled probabilistic circuit. Call it on `x` `[B, num_vars]` to get log p(x).

    Build one with `pcc.compile(root)`. The parameters live in the buffer `params` (plan layout);
    `stats()` describes the circuit as built, `report()` the compiled plan.
    """

    def __init__(self, root, plan, device="cpu"):
        super().__init__()
        self.root = root
        self._plan = plan
        self.register_buffer("params", torch.from_numpy(plan.params()))
        self.to(device)

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
        return self.params.device

    # ---- running it ----
    def forward(self, x, missing=None):
        """log p(x) as float32 `[B]` (one root node) or `[B, R]` (R root nodes).

        `x`: integer or float tensor `[B, num_vars]`; discrete variables hold integer values.
        `missing`: optional bool tensor `[B, num_vars]`; marked entries are marginalized (not read).
        """
        x = self._check_x(x)
        missing = self._check_missing(missing, x)
        batch = x.shape[0]
        out = torch.empty(batch, self.num_root_nodes, dtype=torch.float32, device=self.device)
        if batch > 0:
            if self.device.type != "cpu":
                raise Error(f"no backend for device {self.device} in this build")
            values = torch.empty(self._plan.num_rows, batch, dtype=torch.float32)
            _C.cpu_forward(self._plan, self.params.data_ptr(), x.data_ptr(), _DTYPE_NAMES[x.dtype], batch,
                           missing.data_ptr() if missing is not None else 0, values.data_ptr(),
                           out.data_ptr())
            del values
        return out[:, 0] if self.num_root_nodes == 1 else out

    def _check_x(self, x):
        if not isinstance(x, torch.Tensor):
            raise Error(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.num_vars:
            raise Error(f"x: expected shape [batch, {self.num_vars}], got {list(x.shape)}")
        if x.device != self.device:
            raise Error(f"x is on device {x.device} but the model is on device {self.device}; move one of them")
        if x.is_complex():
            raise Error(f"x: complex dtype {x.dtype} is not supported")
        if x.dtype not in _DTYPE_NAMES:
            x = x.to(torch.float32 if x.is_floating_point() else torch.int64)
        return x.contiguous()

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
            raise Error(f"missing is on {missing.device} but x is on {x.device}")
        return missing.contiguous()

    def extra_repr(self):
        s = self._plan.stats
        return (f"num_vars={self.num_vars}, nodes={self.num_nodes}, sum_edges={s['sum_edges']}, "
                f"root_nodes={self.num_root_nodes}")


def compile(root, block_size=None, device="cpu", max_partitions=4):
    """Compile the circuit rooted at node vector `root` into a `TensorCircuit` on `device`.

    `block_size`: power-of-two upper bound for the node blocks of sum layers (None: chosen per layer
    from its shape). Raises `pcc.Error` if the circuit is invalid.
    """
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise Error(f"device: expected 'cpu' or 'cuda', got {device!r} ({e})") from None
    if device.type not in ("cpu", "cuda"):
        raise Error(f"device: expected 'cpu' or 'cuda', got {device}")
    if device.type == "cuda" and not _C.cuda_available():
        raise Error("device 'cuda' was requested but no CUDA device is available to pcc")
    if block_size is not None:
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1 \
                or block_size & (block_size - 1):
            raise Error(f"block_size: expected a power of two, got {block_size!r}")
    plan = _C.compile(to_ir(root), block_size=block_size or 0, max_partitions=max_partitions)
    return TensorCircuit(root, plan, device)
