"""Univariate distributions of input vectors (`pcc.dists`).

A distribution object describes a family and, optionally, its parameters; `pcc.inputs` turns it into
the float32 parameter array of an input vector (IR layout, see csrc/include/pcc/ir.h):
    Categorical [num_nodes, num_cats] (rows normalized), Bernoulli [num_nodes] = P(x = 1),
    Gaussian [2, num_nodes] = means, then standard deviations.
Omitted parameters are drawn with torch's global generator so `torch.manual_seed` reproduces them.
The float64 log-densities used by `pcc.reference` live here too, next to the parameter layout.
"""
import abc
import math

import numpy as np
import torch

from .errors import Error, check_shape, float_array, int_arg

__all__ = ["Distribution", "Categorical", "Bernoulli", "Gaussian"]


class Distribution(abc.ABC):
    """Base class (abstract). `name` is the IR name; `num_cats` is 0 except for Categorical."""

    name = ""
    num_cats = 0
    discrete = True

    @abc.abstractmethod
    def param_shape(self, num_nodes):
        """Shape of the parameter array of an input vector of `num_nodes` nodes."""

    @abc.abstractmethod
    def init_params(self, num_nodes):
        """Parameters for `num_nodes` nodes as a fresh float32 array (given ones, or random)."""

    @abc.abstractmethod
    def log_prob(self, params, x):
        """float64 log-densities [B, num_nodes] of observed values `x` (float64 [B], already checked)."""

    def check_values(self, x, rows, where):
        """Raise unless every observed value `x` (float64; from batch rows `rows`) is in the support."""
        bad = np.flatnonzero(~np.isfinite(x))
        if bad.size:
            raise Error(f"{where}: row {rows[bad[0]]} holds {x[bad[0]]} (NaN or infinite) in an "
                        f"observed entry; mark it missing instead")
        if self.discrete:
            bad = np.flatnonzero((x != np.round(x)) | (x < 0) | (x >= self._support_size()))
            if bad.size:
                raise Error(f"{where}: row {rows[bad[0]]} holds {x[bad[0]]}, but the variable is "
                            f"{self.name} with values 0..{self._support_size() - 1}")

    def _support_size(self):
        """Number of values a discrete variable takes (0..size-1); continuous distributions: 0."""
        return 0

    def _given(self, arr, num_nodes, name, shape):
        """A given parameter array checked against num_nodes (its values were checked at construction)."""
        check_shape(arr, shape, f"{type(self).__name__}.{name}", f"for num_nodes={num_nodes}")
        return arr.astype(np.float32)

    def __repr__(self):
        return f"{type(self).__name__}()"


def _normalize_rows(p, name):
    """p (float64 [n, k], non-negative) with rows divided by their sums; an all-zero row raises."""
    sums = p.sum(axis=1)
    zero = np.flatnonzero(sums <= 0)
    if zero.size:
        raise Error(f"{name}: row {zero[0]} sums to zero")
    return p / sums[:, None]


def _check_finite_nonneg(p, name):
    if np.isnan(p).any():
        raise Error(f"{name}: contains NaN")
    if np.isinf(p).any():
        raise Error(f"{name}: contains an infinite value")
    if (p < 0).any():
        raise Error(f"{name}: contains a negative value ({p.min()})")


class Categorical(Distribution):
    """Categorical over 0..num_cats-1; `probs` [num_nodes, num_cats] (normalized per row) or None."""

    name = "categorical"

    def __init__(self, num_cats, probs=None):
        self.num_cats = int_arg(num_cats, "Categorical.num_cats", minimum=1)
        self.probs = None
        if probs is not None:
            p = float_array(probs, "Categorical.probs")
            if p.ndim != 2 or p.shape[1] != self.num_cats:
                raise Error(f"Categorical.probs: expected shape [num_nodes, {self.num_cats}], "
                            f"got {list(p.shape)}")
            _check_finite_nonneg(p, "Categorical.probs")
            self.probs = _normalize_rows(p, "Categorical.probs").astype(np.float32)

    def param_shape(self, num_nodes):
        return (num_nodes, self.num_cats)

    def init_params(self, num_nodes):
        if self.probs is not None:
            return self._given(self.probs, num_nodes, "probs", self.param_shape(num_nodes))
        p = 1.0 - torch.rand(num_nodes, self.num_cats, dtype=torch.float64).numpy()  # in (0, 1]
        return _normalize_rows(p, "Categorical.probs").astype(np.float32)

    def log_prob(self, params, x):
        with np.errstate(divide="ignore"):
            return np.log(params.astype(np.float64))[:, x.astype(np.int64)].T

    def _support_size(self):
        return self.num_cats

    def __repr__(self):
        return f"Categorical(num_cats={self.num_cats})"


class Bernoulli(Distribution):
    """Bernoulli over {0, 1}; `probs` [num_nodes] = P(x = 1), each in [0, 1], or None."""

    name = "bernoulli"

    def __init__(self, probs=None):
        self.probs = None
        if probs is not None:
            p = float_array(probs, "Bernoulli.probs")
            if p.ndim != 1:
                raise Error(f"Bernoulli.probs: expected shape [num_nodes], got {list(p.shape)}")
            _check_finite_nonneg(p, "Bernoulli.probs")
            if (p > 1).any():
                raise Error(f"Bernoulli.probs: P(x=1) must lie in [0, 1], got {p.max()}")
            self.probs = p.astype(np.float32)

    def param_shape(self, num_nodes):
        return (num_nodes,)

    def init_params(self, num_nodes):
        if self.probs is not None:
            return self._given(self.probs, num_nodes, "probs", self.param_shape(num_nodes))
        return torch.rand(num_nodes, dtype=torch.float64).numpy().astype(np.float32)

    def log_prob(self, params, x):
        p = params.astype(np.float64)
        with np.errstate(divide="ignore"):
            return np.where(x[:, None] == 1, np.log(p)[None, :], np.log1p(-p)[None, :])

    def _support_size(self):
        return 2


class Gaussian(Distribution):
    """Normal distribution; `mean` and `std` [num_nodes] (std > 0), each random when None."""

    name = "gaussian"
    discrete = False

    def __init__(self, mean=None, std=None):
        self.mean = self.std = None
        if mean is not None:
            m = float_array(mean, "Gaussian.mean")
            if m.ndim != 1:
                raise Error(f"Gaussian.mean: expected shape [num_nodes], got {list(m.shape)}")
            if not np.isfinite(m).all():
                raise Error("Gaussian.mean: contains NaN or an infinite value")
            self.mean = m.astype(np.float32)
        if std is not None:
            s = float_array(std, "Gaussian.std")
            if s.ndim != 1:
                raise Error(f"Gaussian.std: expected shape [num_nodes], got {list(s.shape)}")
            bad = s[~(s > 0)]  # `not > 0` also catches NaN
            if bad.size:
                raise Error(f"Gaussian.std: every std must be > 0, got {bad[0]}")
            if np.isinf(s).any():
                raise Error("Gaussian.std: contains an infinite value")
            self.std = s.astype(np.float32)
            if (self.std <= 0).any():  # a positive float64 can underflow to 0 in float32
                raise Error("Gaussian.std: a std underflows to 0 in float32")
        if self.mean is not None and self.std is not None and self.mean.shape != self.std.shape:
            raise Error(f"Gaussian: mean has {self.mean.shape[0]} entries but std has "
                        f"{self.std.shape[0]}")

    def param_shape(self, num_nodes):
        return (2, num_nodes)

    def init_params(self, num_nodes):
        out = np.empty((2, num_nodes), dtype=np.float32)
        if self.mean is not None:
            out[0] = self._given(self.mean, num_nodes, "mean", (num_nodes,))
        else:
            out[0] = torch.randn(num_nodes, dtype=torch.float64).numpy()
        if self.std is not None:
            out[1] = self._given(self.std, num_nodes, "std", (num_nodes,))
        else:
            out[1] = 0.5 + torch.rand(num_nodes, dtype=torch.float64).numpy()
        return out

    def log_prob(self, params, x):
        mean, std = params.astype(np.float64)
        z = (x[:, None] - mean[None, :]) / std[None, :]
        return -0.5 * z * z - np.log(std)[None, :] - 0.5 * math.log(2 * math.pi)


def from_ir(name, num_cats):
    """The parameterless distribution object for an IR input vector (its parameters live in the vector)."""
    if name == "categorical":
        return Categorical(num_cats)
    if name == "bernoulli":
        return Bernoulli()
    if name == "gaussian":
        return Gaussian()
    raise Error(f"unknown distribution {name!r}")
