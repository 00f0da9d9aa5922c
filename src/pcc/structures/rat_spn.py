"""Random and tensorized SPNs (RAT-SPN, Peharz et al. 2020), built as PyJuice 2.6.3's ``RAT_SPN`` builds them.

Rules copied from PyJuice so the circuits match:
- one input vector of ``num_latents`` nodes per variable, shared by all repetitions;
- each repetition splits the full scope recursively: a scope is shuffled and cut into ``num_pieces``
  near-equal parts (the first ``len % num_pieces`` parts one longer), to ``depth`` levels or until a scope
  has fewer than ``num_pieces`` variables; a leaf scope is the product of its variables' input vectors
  (increasing variable order); every product is followed by a dense sum of ``num_latents`` nodes;
- the root is a dense one-node sum over the top products of all repetitions (the top sum vectors PyJuice
  builds and then bypasses are not built here; they are not part of its circuit either).
Shuffles use torch's global generator (PyJuice uses Python's ``random``), so ``torch.manual_seed`` fixes
the whole circuit.
"""

from __future__ import annotations

import torch

from .. import dists
from ..errors import Error
from ..nodes import inputs, multiply, summate
from ._common import fresh_dist, positive_int

__all__ = ["RAT_SPN"]


def RAT_SPN(num_vars: int, num_latents: int, depth: int, num_repetitions: int, num_pieces: int = 2,
            input_dist=None):
    """Build a RAT-SPN over variables 0..num_vars-1; returns the root sum vector (one node).

    num_latents: nodes per input, product and sum vector.
    depth: levels of random splitting. num_repetitions: independent random split trees, mixed at the root.
    num_pieces: parts each scope is split into.
    input_dist: a ``pcc.dists`` template (kind and ``num_cats``; fresh random parameters per variable).
        Default ``Categorical(num_cats=256)``, PyJuice's default.
    """
    num_vars = positive_int(num_vars, "RAT_SPN: num_vars")
    num_latents = positive_int(num_latents, "RAT_SPN: num_latents")
    depth = int(depth)
    if depth < 0:
        raise Error(f"RAT_SPN: depth must be >= 0, got {depth}")
    num_repetitions = positive_int(num_repetitions, "RAT_SPN: num_repetitions")
    num_pieces = positive_int(num_pieces, "RAT_SPN: num_pieces")
    if num_pieces < 2:
        raise Error(f"RAT_SPN: num_pieces must be >= 2, got {num_pieces}")
    template = dists.Categorical(num_cats=256) if input_dist is None else input_dist
    leaves = [inputs(v, num_nodes=num_latents, dist=fresh_dist(template, "RAT_SPN")) for v in range(num_vars)]

    def product(scope, level):
        """The product vector of a (sorted) scope at split level `level`."""
        if level >= depth or len(scope) < num_pieces:
            return multiply(*[leaves[v] for v in scope])
        perm = torch.randperm(len(scope)).tolist()
        shuffled = [scope[i] for i in perm]
        q, r = divmod(len(scope), num_pieces)
        parts, start = [], 0
        for i in range(num_pieces):
            end = start + q + (i < r)
            parts.append(sorted(shuffled[start:end]))  # a scope is a set: PyJuice's BitSet is sorted
            start = end
        return multiply(*[summate(product(p, level + 1), num_nodes=num_latents) for p in parts])

    tops = [product(list(range(num_vars)), 0) for _ in range(num_repetitions)]
    return summate(*tops, num_nodes=1)
