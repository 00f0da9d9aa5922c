"""Execution controls: the CPU backend's threads (results are deterministic for a given thread count)
and the CUDA backend's graphs."""
from . import _C

__all__ = ["set_num_threads", "get_num_threads", "cuda_available", "set_cuda_graphs", "cuda_graphs"]


def set_num_threads(n):
    """Use `n` CPU threads for pcc's CPU backend (n <= 0: one per hardware thread)."""
    _C.set_num_threads(int(n))


def get_num_threads():
    """Number of CPU threads pcc's CPU backend uses."""
    return _C.get_num_threads()


def cuda_available():
    """True when this build has the CUDA backend and a CUDA device is present."""
    return bool(_C.cuda_available())


def set_cuda_graphs(enabled):
    """Replay CUDA passes as captured CUDA graphs (default True). With graphs, the second forward (or
    backward) call with the same batch size, tensors and precision captures its kernel launches, and
    later such calls replay them with one launch: circuits of many small layers stop paying a host
    launch per layer. The same kernels run on the same data either way. Process-wide."""
    _C.cuda_set_graphs(bool(enabled))


def cuda_graphs():
    """Whether CUDA passes are replayed as CUDA graphs (`set_cuda_graphs`)."""
    return bool(_C.cuda_graphs())
