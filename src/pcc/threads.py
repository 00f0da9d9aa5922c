"""Thread control of the CPU backend. Results are deterministic for a given thread count."""
from . import _C

__all__ = ["set_num_threads", "get_num_threads", "cuda_available"]


def set_num_threads(n):
    """Use `n` CPU threads for pcc's CPU backend (n <= 0: one per hardware thread)."""
    _C.set_num_threads(int(n))


def get_num_threads():
    """Number of CPU threads pcc's CPU backend uses."""
    return _C.get_num_threads()


def cuda_available():
    """True when this build has the CUDA backend and a CUDA device is present."""
    return bool(_C.cuda_available())
