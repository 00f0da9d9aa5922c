"""Real data sets that ship with packages, with fixed, documented splits.

`digits()`: scikit-learn's 1797 handwritten digits, 8x8 pixels with 17 intensity levels (0..16).
Split by a fixed permutation (NumPy seed 0): 1257 train, 180 valid, 360 test rows.
"""
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Dataset", "digits"]


@dataclass
class Dataset:
    """Train/valid/test splits as int64 tensors `[N, num_vars]`, plus what the values mean."""

    name: str
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    num_cats: int
    image_shape: tuple = None

    @property
    def num_vars(self):
        return self.train.shape[1]


def _split(x, n_valid, n_test, seed=0):
    perm = np.random.default_rng(seed).permutation(len(x))
    test, valid, train = perm[:n_test], perm[n_test:n_test + n_valid], perm[n_test + n_valid:]
    t = lambda idx: torch.from_numpy(np.ascontiguousarray(x[idx], dtype=np.int64))  # noqa: E731
    return t(train), t(valid), t(test)


def digits():
    """scikit-learn's 8x8 digits (17 levels): 1257 / 180 / 360 rows."""
    from sklearn.datasets import load_digits

    x = load_digits().data.astype(np.int64)
    train, valid, test = _split(x, n_valid=180, n_test=360)
    return Dataset("digits", train, valid, test, num_cats=17, image_shape=(8, 8))
