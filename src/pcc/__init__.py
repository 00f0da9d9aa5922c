"""pcc: a compiler and runtime for probabilistic circuits.

Describe a circuit with `inputs`, `multiply` and `summate` (or a structure from `pcc.structures`),
`compile` it into a `TensorCircuit` (a `torch.nn.Module`), and call it on data for log-likelihoods.
"""
from . import dists
from .errors import Error, StateDictError
from .nodes import NodeVector, InputVector, ProductVector, SumVector, inputs, multiply, summate
from .serialize import save, load
from . import reference
from . import _C
from .model import TensorCircuit, compile
from .threads import set_num_threads, get_num_threads, cuda_available, set_cuda_graphs, cuda_graphs
from . import structures, datasets
from .interop import from_pyjuice

GAUSSIAN_MIN_STD = _C.GAUSSIAN_MIN_STD  # Gaussian stds never go below this in em_step

__version__ = "0.1.0"

__all__ = [
    "Error", "StateDictError", "dists", "reference", "structures", "datasets",
    "NodeVector", "InputVector", "ProductVector", "SumVector", "inputs", "multiply", "summate",
    "save", "load", "TensorCircuit", "compile",
    "set_num_threads", "get_num_threads", "cuda_available", "set_cuda_graphs", "cuda_graphs", "GAUSSIAN_MIN_STD",
]
