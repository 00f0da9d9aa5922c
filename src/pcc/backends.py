"""The two runtimes a TensorCircuit calls: the C++ CPU backend and the CUDA backend.

Both take torch tensors, check nothing (model.py did), allocate every buffer with torch (so
`torch.cuda.max_memory_allocated` sees everything) and pass raw pointers to `pcc._C`. The CUDA one
runs on `torch.cuda.current_stream()` and keeps the plan's index arrays in a torch-allocated device
buffer, uploaded once per device.
"""
import torch

from . import _C
from .errors import Error

__all__ = ["backend_for"]

DTYPE_NAMES = {
    torch.bool: "bool", torch.uint8: "uint8", torch.int8: "int8", torch.int16: "int16",
    torch.int32: "int32", torch.int64: "int64", torch.float32: "float32", torch.float64: "float64",
}
PRECISIONS = ("tf32", "bf16", "fp32")


def _ptr(t):
    return t.data_ptr() if t is not None else 0


class CPUBackend:
    def __init__(self, plan):
        self.plan = plan

    def forward(self, params, x, missing, values, out, precision):
        _C.cpu_forward(self.plan, params.data_ptr(), x.data_ptr(), DTYPE_NAMES[x.dtype], x.shape[0],
                       _ptr(missing), values.data_ptr(), out.data_ptr())

    def backward(self, params, x, missing, values, root_flow, flows, stats, precision):
        _C.cpu_backward(self.plan, params.data_ptr(), x.data_ptr(), DTYPE_NAMES[x.dtype], x.shape[0],
                        _ptr(missing), values.data_ptr(), root_flow.data_ptr(), flows.data_ptr(),
                        stats.data_ptr())

    def normalize(self, log_params, params):
        _C.cpu_normalize(self.plan, log_params.data_ptr(), params.data_ptr())

    def log_params(self, params, log_params):
        _C.cpu_log_params(self.plan, params.data_ptr(), log_params.data_ptr())

    def em_update(self, params, stats, step_size, pseudocount):
        _C.cpu_em_update(self.plan, params.data_ptr(), stats.data_ptr(), step_size, pseudocount)

    def param_grads(self, params, stats, grad):
        _C.cpu_param_grads(self.plan, params.data_ptr(), stats.data_ptr(), grad.data_ptr())


class CUDABackend:
    def __init__(self, plan, device):
        if not _C.cuda_available():
            raise Error(f"device {device} was requested but this pcc build has no usable CUDA device")
        self.plan = plan
        self.device = device
        with torch.cuda.device(device):
            self.buffer = torch.empty(_C.cuda_plan_bytes(plan), dtype=torch.uint8, device=device)
            self.cplan = _C.cuda_upload_plan(plan, self.buffer.data_ptr(), device.index, self._stream())

    def _stream(self):
        return torch.cuda.current_stream(self.device).cuda_stream

    def forward(self, params, x, missing, values, out, precision):
        _C.cuda_forward(self.cplan, params.data_ptr(), x.data_ptr(), DTYPE_NAMES[x.dtype], x.shape[0],
                        _ptr(missing), values.data_ptr(), out.data_ptr(), precision, self._stream())

    def backward(self, params, x, missing, values, root_flow, flows, stats, precision):
        _C.cuda_backward(self.cplan, params.data_ptr(), x.data_ptr(), DTYPE_NAMES[x.dtype], x.shape[0],
                         _ptr(missing), values.data_ptr(), root_flow.data_ptr(), flows.data_ptr(),
                         stats.data_ptr(), precision, self._stream())

    def normalize(self, log_params, params):
        _C.cuda_normalize(self.cplan, log_params.data_ptr(), params.data_ptr(), self._stream())

    def log_params(self, params, log_params):
        _C.cuda_log_params(self.cplan, params.data_ptr(), log_params.data_ptr(), self._stream())

    def em_update(self, params, stats, step_size, pseudocount):
        _C.cuda_em_update(self.cplan, params.data_ptr(), stats.data_ptr(), step_size, pseudocount,
                          self._stream())

    def param_grads(self, params, stats, grad):
        _C.cuda_param_grads(self.cplan, params.data_ptr(), stats.data_ptr(), grad.data_ptr(), self._stream())


def backend_for(plan, device):
    """The backend that runs `plan` on torch device `device`."""
    if device.type == "cpu":
        return CPUBackend(plan)
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        return CUDABackend(plan, device)
    raise Error(f"no pcc backend for device {device}")
