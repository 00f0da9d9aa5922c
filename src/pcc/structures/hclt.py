"""Hidden Chow-Liu Trees (HCLT, Liu & Van den Broeck 2021), built as PyJuice 2.6.3 builds them.

A Chow-Liu tree over the variables becomes a tree of latent variables: every tree node v gets an input
vector on x_v (``num_latents`` nodes) and, unless v is a leaf, a product of its children's vectors and its
own input vector followed by a dense sum of ``num_latents`` nodes (one node at the root). Leaves are just
their input vector. Same rules as ``pyjuice.structures.compilation.BayesianTreeToHiddenRegionGraph``:
children in tree-adjacency order then the node's own input, built in post-order.
"""

from __future__ import annotations

from typing import List

import numpy as np
import torch

from .. import dists
from ..errors import Error
from ..nodes import inputs, multiply, summate
from ._common import fresh_dist, positive_int
from .chow_liu import chow_liu_tree, root_tree, tree_center

__all__ = ["HCLT"]


def HCLT(data, num_latents: int, input_dist=None, num_bins: int = 32, tree=None, *,
         sigma: float = 0.5 / 32, chunk_size: int = 64):
    """Build a hidden Chow-Liu tree circuit; returns its root sum vector (one node).

    data: [num_samples, num_vars] NumPy array or torch tensor. The tree is learned from it as PyJuice
        learns it (see :mod:`pcc.structures.chow_liu`: soft-binned pairwise mutual information with
        ``num_bins`` bins of width ``sigma``, computed ``chunk_size`` variables at a time; maximum
        spanning tree; rooted at its centre). May be None when ``tree`` and ``input_dist`` are given.
    num_latents: nodes per latent vector (the hidden variable's number of states).
    input_dist: a ``pcc.dists`` distribution used as a template (its kind and ``num_cats``; every input
        vector draws fresh random parameters). Default: ``Categorical(num_cats=max(data) + 1)``.
        (PyJuice's default is a fixed ``Categorical(num_cats=256)``; the node and edge counts do not
        depend on it. With ``data=None`` the default is that: 256 categories.)
    tree: skip structure learning and use this tree over variables 0..num_vars-1, either
        - a parent array, int [num_vars], ``tree[v]`` = parent of v and -1 at the root (rooted there;
          children in increasing variable order), or
        - an edge list, int [num_vars - 1, 2] of undirected edges (rooted at the centre as PyJuice does;
          children in the order their edges are listed, like networkx's adjacency order).
    sigma, chunk_size: PyJuice's mutual-information estimator settings (its defaults).

    Random parameters come from torch's global generator (reproducible under ``torch.manual_seed``).
    """
    num_latents = positive_int(num_latents, "HCLT: num_latents")
    x = None
    if data is not None:
        x = data if isinstance(data, torch.Tensor) else torch.as_tensor(np.asarray(data))
        if x.dim() != 2 or x.shape[0] < 1 or x.shape[1] < 1:
            raise Error(f"HCLT: data must be a non-empty [num_samples, num_vars] array, got shape "
                        f"{tuple(x.shape)}")
        if torch.is_floating_point(x) and not torch.isfinite(x).all():
            raise Error("HCLT: data contains NaN or an infinite value")

    if tree is None:
        if x is None:
            raise Error("HCLT: give data (to learn the tree from) or a tree")
        num_bins = positive_int(num_bins, "HCLT: num_bins")
        edges, root = chow_liu_tree(x, num_bins=num_bins, sigma=sigma,
                                    chunk_size=positive_int(chunk_size, "HCLT: chunk_size"))
        num_vars = x.shape[1]
        _, children = root_tree(num_vars, edges, root)
    else:
        num_vars, root, children = _given_tree(tree)
        if x is not None and x.shape[1] != num_vars:
            raise Error(f"HCLT: tree covers {num_vars} variables but data has {x.shape[1]} columns")

    template = _default_dist(x) if input_dist is None else input_dist

    # Post-order (children before parents), in the order PyJuice's dfs_postorder_nodes visits them.
    order: List[int] = []
    stack = [(root, False)]
    while stack:
        v, done = stack.pop()
        if done:
            order.append(v)
            continue
        stack.append((v, True))
        stack.extend((c, False) for c in reversed(children[v]))

    region = [None] * num_vars
    for v in order:
        leaf = inputs(v, num_nodes=num_latents, dist=fresh_dist(template, "HCLT"))
        if not children[v]:
            region[v] = leaf
            if v != root:
                continue
            # A one-variable tree: PyJuice would return the input vector itself; a one-node root keeps
            # "the root is one distribution" true for every size.
            return summate(leaf, num_nodes=1)
        prod = multiply(*[region[c] for c in children[v]], leaf)
        region[v] = summate(prod, num_nodes=1 if v == root else num_latents)
        for c in children[v]:
            region[c] = None  # each region has one parent; drop the reference early
    return region[root]


def _default_dist(x):
    if x is None:
        return dists.Categorical(num_cats=256)
    if torch.is_floating_point(x) and not torch.equal(x, torch.round(x)):
        raise Error("HCLT: data has non-integer values; pass input_dist (e.g. pcc.dists.Gaussian()) "
                    "or integer category data")
    if x.min() < 0:
        raise Error(f"HCLT: data has a negative value ({x.min().item()}); categories start at 0")
    return dists.Categorical(num_cats=int(x.max().item()) + 1)


def _given_tree(tree):
    """(num_vars, root, children lists) of a parent array or an edge list (see HCLT's docstring)."""
    t = tree.detach().cpu().numpy() if isinstance(tree, torch.Tensor) else np.asarray(tree)
    if t.dtype.kind not in "iu" and t.size > 0:
        raise Error(f"HCLT: tree must be an integer array, got dtype {t.dtype}")
    t = t.astype(np.int64)
    if t.ndim == 1:  # parent array
        num_vars = t.shape[0]
        if num_vars < 1:
            raise Error("HCLT: tree (parent array) is empty")
        roots = np.flatnonzero(t == -1)
        if roots.size != 1:
            raise Error(f"HCLT: tree (parent array) must have exactly one root (-1), found {roots.size}")
        bad = np.flatnonzero(((t < 0) | (t >= num_vars) | (t == np.arange(num_vars))) & (t != -1))
        if bad.size:
            raise Error(f"HCLT: tree (parent array) entry {bad[0]} is {t[bad[0]]}, not a variable")
        root = int(roots[0])
        kids = np.flatnonzero(t != -1)
        edges = list(zip(t[kids].tolist(), kids.tolist()))  # kids ascending: children in variable order
        try:
            _, children = root_tree(num_vars, edges, root)  # rejects cycles and disconnected parts
        except ValueError as e:
            raise Error(f"HCLT: {e}") from None
        return num_vars, root, children
    if t.ndim == 2 and t.shape[1] == 2:  # edge list
        num_vars = t.shape[0] + 1
        if t.size and (t.min() < 0 or t.max() >= num_vars):
            raise Error(f"HCLT: tree (edge list) of {t.shape[0]} edges must use variables "
                        f"0..{num_vars - 1}")
        edges = [tuple(e) for e in t.tolist()]
        try:
            root = tree_center(num_vars, edges)
            _, children = root_tree(num_vars, edges, root)
        except ValueError as e:
            raise Error(f"HCLT: {e}") from None
        return num_vars, root, children
    raise Error(f"HCLT: tree must be a parent array [num_vars] or an edge list [num_vars - 1, 2], got "
                f"shape {list(t.shape)}")
