"""Poon-Domingos (PD) circuits over a grid of variables, built as PyJuice 2.6.3's ``PD`` builds them
(``structure_type="sum_dominated"``, no parameter tying).

Regions are axis-aligned hypercubes of the data grid (variables numbered row-major). A hypercube is split
at every split point inside it, along every axis in turn; each split gives a product of the two halves'
sum vectors, and the hypercube's sum vector mixes all those products. Sub-hypercubes are shared (the
circuit is a DAG, one vector per hypercube). Rules copied from PyJuice so the circuits match:
- block size b = largest power of two dividing ``num_latents``, capped at 16 when num_latents <= 32 and
  at 32 otherwise; every region vector has ``num_latents`` nodes;
- a hypercube with no split point inside: one input vector per variable (increasing order), their
  elementwise product, and a block-diagonal sum (sum block i reads product block i only);
- an inner hypercube with at most ``max_prod_block_conns`` (4) products: a dense sum over them; with more:
  each sum block reads all blocks of ``max_prod_block_conns`` products picked at random (the top-k of
  uniform noise, torch's generator), as block-level edges;
- the whole grid: a dense sum of one node over all its products.
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np
import torch

from .. import dists
from ..errors import Error
from ..nodes import inputs, multiply, summate
from ._common import fresh_dist, max_pow2_factor, positive_int

__all__ = ["PD"]

Hypercube = Tuple[Tuple[int, ...], Tuple[int, ...]]


def PD(data_shape: Sequence[int], num_latents: int, split_intervals=None, input_dist=None, *,
       split_points=None, max_prod_block_conns: int = 4):
    """Build a PD circuit over a grid of ``prod(data_shape)`` variables; returns the root sum vector.

    data_shape: grid shape, e.g. (28, 28) for MNIST (variable of cell (i, j) is i * 28 + j).
    num_latents: nodes per region vector.
    split_intervals: int or one int per axis; split points at every multiple of the interval
        (PyJuice's rule). Alternatively ``split_points``: one list of split positions per axis.
    input_dist: a ``pcc.dists`` template (kind and ``num_cats``; fresh random parameters per vector).
        Default ``Categorical(num_cats=256)``, PyJuice's default.
    max_prod_block_conns: products a sum block reads when a region has more splits than this.

    Random choices and parameters use torch's global generator (reproducible under ``torch.manual_seed``).
    The root has one node unless the whole grid has no split point (then it is a region vector).
    """
    shape = _shape(data_shape)
    num_latents = positive_int(num_latents, "PD: num_latents")
    k_conn = positive_int(max_prod_block_conns, "PD: max_prod_block_conns")
    nd = len(shape)
    if split_intervals is not None:
        iv = (split_intervals,) * nd if np.ndim(split_intervals) == 0 else tuple(split_intervals)
        if len(iv) != nd:
            raise Error(f"PD: split_intervals has {len(iv)} entries for {nd} axes")
        iv = tuple(positive_int(i, "PD: split_intervals") for i in iv)
        points = [list(range(iv[a], shape[a], iv[a])) for a in range(nd)]
    elif split_points is not None:
        if len(split_points) != nd:
            raise Error(f"PD: split_points has {len(split_points)} lists for {nd} axes")
        points = [sorted(int(p) for p in sp) for sp in split_points]
        for a in range(nd):
            if any(not 0 < p < shape[a] for p in points[a]):
                raise Error(f"PD: split_points[{a}] must lie strictly inside 0..{shape[a]}")
    else:
        raise Error("PD: give split_intervals or split_points")

    template = dists.Categorical(num_cats=256) if input_dist is None else input_dist
    fresh_dist(template, "PD")  # validate early
    b = min(16 if num_latents <= 32 else 32, max_pow2_factor(num_latents))
    nb = num_latents // b
    strides = np.cumprod((1,) + shape[::-1])[:-1][::-1]  # row-major variable numbering
    root_cube: Hypercube = ((0,) * nd, shape)
    cache: Dict[Hypercube, object] = {}

    def input_region(cube):
        grids = np.meshgrid(*[np.arange(cube[0][a], cube[1][a]) * strides[a] for a in range(nd)],
                            indexing="ij")
        variables = np.sort(sum(grids).ravel())
        vecs = [inputs(int(v), num_nodes=num_latents, dist=fresh_dist(template, "PD")) for v in variables]
        diag = np.arange(nb)
        return summate(multiply(*vecs), num_nodes=num_latents, edges=np.stack([diag, diag]),
                       block_size=b)

    def build(cube):
        if cube in cache:
            return cache[cube]
        prods = []  # PyJuice's order: axis by axis, split points in increasing order
        for a in range(nd):
            s, e = cube[0][a], cube[1][a]
            for sp in points[a]:
                if s < sp < e:
                    lower = (cube[0], cube[1][:a] + (sp,) + cube[1][a + 1:])
                    upper = (cube[0][:a] + (sp,) + cube[0][a + 1:], cube[1])
                    prods.append(multiply(build(lower), build(upper)))
        if not prods:
            ns = input_region(cube)
        elif cube == root_cube:
            ns = summate(*prods, num_nodes=1)
        elif len(prods) <= k_conn:
            ns = summate(*prods, num_nodes=num_latents)
        else:
            picks = torch.topk(torch.rand(nb, len(prods)), k=k_conn, dim=1).indices.numpy()
            par = np.broadcast_to(np.arange(nb)[:, None, None], (nb, k_conn, nb))
            chs = picks[:, :, None] * nb + np.arange(nb)[None, None, :]
            ns = summate(*prods, num_nodes=num_latents, block_size=b,
                         edges=np.stack([par.reshape(-1), chs.reshape(-1)]))
        cache[cube] = ns
        return ns

    return build(root_cube)


def _shape(data_shape) -> Tuple[int, ...]:
    try:
        shape = tuple(int(s) for s in data_shape)
    except TypeError:
        raise Error(f"PD: data_shape must be a sequence of ints, got {data_shape!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise Error(f"PD: data_shape must be non-empty with positive sizes, got {data_shape!r}")
    return shape
