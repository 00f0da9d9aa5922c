"""pcc.Error and the argument conversions that raise it.

`Error` is the C++ core's `pcc::Error` (exported by the extension as `_C.Error`) so that Python and C++
checks raise one class. Before the extension is built, a plain `ValueError` subclass stands in, so the
pure-Python front-end and its tests work on their own.

The helpers turn user arrays (NumPy, torch, nested lists; any int or float dtype) into NumPy arrays
and reject anything else with an error that names the argument.
"""
import numbers

import numpy as np

try:
    from ._C import Error
except ImportError:  # extension not built yet: same contract (a ValueError), Python-only

    class Error(ValueError):
        """Invalid circuit, argument, data or file (a `ValueError`)."""


class StateDictError(Error, RuntimeError):
    """`load_state_dict` refused a state dict (wrong parameter layout, shapes, keys): a `pcc.Error`,
    and the `RuntimeError` that `torch.nn.Module.load_state_dict` raises, so code written for
    either catches it."""


__all__ = ["Error"]


def to_numpy(a, name):
    """`a` (NumPy, torch tensor, list or scalar) as a NumPy array of a real numeric or bool dtype.

    Torch tensors are detached and copied to the CPU; dtypes NumPy lacks (bfloat16) go through float64.
    """
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, but the core needs none of it
        torch = None
    if torch is not None and isinstance(a, torch.Tensor):
        t = a.detach().cpu()
        if t.is_floating_point() and t.dtype not in (torch.float16, torch.float32, torch.float64):
            t = t.to(torch.float64)
        if t.is_complex():
            raise Error(f"{name}: complex tensors are not supported")
        return t.numpy()
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as e:
        raise Error(f"{name}: cannot be read as an array ({e})") from None
    if arr.dtype.kind not in "biuf":
        raise Error(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    return arr


def float_array(a, name):
    """`a` as float64 (ints and floats of any width accepted; bool is not a number here)."""
    arr = to_numpy(a, name)
    if arr.dtype.kind == "b":
        raise Error(f"{name}: expected a float or int array, got bool")
    return arr.astype(np.float64, copy=False)


def int_array(a, name):
    """`a` as a fresh int64 array; float or bool dtypes are refused (an empty array of any dtype is fine)."""
    arr = to_numpy(a, name)
    if arr.dtype.kind not in "iu" and arr.size > 0:
        raise Error(f"{name}: expected an integer array, got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise Error(f"{name}: values exceed the int64 range")
    # A copy: the caller freezes the result, which must not touch the user's array.
    return np.array(arr, dtype=np.int64, copy=True)


def check_shape(arr, shape, name, what=""):
    """Raise unless `arr.shape == shape`; `what` explains where the expected shape comes from."""
    if tuple(arr.shape) != tuple(shape):
        expect = "[" + ", ".join(str(s) for s in shape) + "]"
        got = "[" + ", ".join(str(s) for s in arr.shape) + "]"
        raise Error(f"{name}: expected shape {expect}{' ' + what if what else ''}, got {got}")


def int_arg(v, name, minimum=0):
    """A Python int >= minimum from an int-like scalar (NumPy or 0-d torch ints too; bool refused)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        try:
            import torch

            if isinstance(v, torch.Tensor) and v.numel() == 1 and not v.is_floating_point() \
                    and v.dtype != torch.bool:
                v = int(v.item())
        except ImportError:  # pragma: no cover
            pass
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise Error(f"{name}: expected an integer, got {type(v).__name__} {v!r}")
    v = int(v)
    if v < minimum:
        raise Error(f"{name}: must be >= {minimum}, got {v}")
    return v
