"""Hidden Markov models as circuits, built as PyJuice 2.6.3's ``HMM`` builds them.

Variables 0..T-1 are the observed symbols. Built from the last step backwards: z_{T-1} is the emission
input vector of x_{T-1}; for t = T-2..0, a dense transition sum over z_{t+1} times the emission vector of
x_t gives z_t; the root is a dense one-node sum (initial distribution) over z_0. Homogeneous (the
default): every emission vector and every transition sum share one parameter set (``duplicate`` with
``tie_params=True``), as PyJuice's ``homogeneous=True``.
"""

from __future__ import annotations

from .. import dists
from ..nodes import inputs, multiply, summate
from ._common import positive_int

__all__ = ["HMM"]


def HMM(seq_length: int, num_latents: int, num_emits: int, *, homogeneous: bool = True):
    """Build an HMM over ``seq_length`` categorical variables with ``num_emits`` symbols; returns the root.

    num_latents: hidden states (nodes per vector). Emissions are ``Categorical(num_cats=num_emits)``.
    homogeneous: tie the emission and transition parameters across time steps (PyJuice's default); when
        False every step draws its own random parameters.
    Random parameters come from torch's global generator.
    """
    seq_length = positive_int(seq_length, "HMM: seq_length")
    num_latents = positive_int(num_latents, "HMM: num_latents")
    num_emits = positive_int(num_emits, "HMM: num_emits")
    last = inputs(seq_length - 1, num_nodes=num_latents, dist=dists.Categorical(num_cats=num_emits))
    z = last
    trans = None
    for t in range(seq_length - 2, -1, -1):
        if homogeneous:
            emit = last.duplicate(t, tie_params=True)
        else:
            emit = inputs(t, num_nodes=num_latents, dist=dists.Categorical(num_cats=num_emits))
        if trans is None or not homogeneous:
            trans = summate(z, num_nodes=num_latents)
            step = trans
        else:
            step = trans.duplicate(z, tie_params=True)
        z = multiply(emit, step)
    return summate(z, num_nodes=1)
