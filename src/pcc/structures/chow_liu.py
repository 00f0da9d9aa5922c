"""Chow-Liu trees as PyJuice 2.6.3 learns them, for HCLT.

PyJuice's recipe, reproduced step by step so that ``pcc.structures.HCLT`` and ``pyjuice.structures.HCLT``
build the same tree from the same data (benchmarks must compare the same circuit):

1. Pairwise mutual information from *soft* binning: the columns of a chunk of ``chunk_size`` variables
   are min-max scaled together (one min and max over the whole chunk, not per column, as PyJuice does),
   each value is spread over ``num_bins`` equally spaced bin centres in [0, 1] with a Gaussian kernel of
   width ``sigma``, and entropies use ``log(p + 1e-4)``. The same torch ops in the same order, so the
   float32 values agree bit for bit on the same machine.
2. A maximum spanning tree by Kruskal's algorithm, ties broken the way networkx's stable sort breaks them
   (edge ``(u, v)``, ``u < v``, in row-major order, weight ``mi[u, v]`` from the upper triangle).
3. The root is the tree's centre (the smallest-numbered one when there are two), like ``nx.center(T)[0]``.
4. A node's children are its tree neighbours in the order Kruskal accepted the edges (networkx's
   adjacency order, which ``nx.bfs_tree`` follows).

No networkx dependency: the tree is a few hundred nodes, plain Python and numpy suffice.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import torch

__all__ = ["mutual_information", "pairwise_mutual_information", "maximum_spanning_tree", "tree_center",
           "root_tree", "chow_liu_tree"]


def mutual_information(x1: torch.Tensor, x2: torch.Tensor, num_bins: int, sigma: float) -> torch.Tensor:
    """Soft-binned mutual information between every column of ``x1`` [B, K1] and of ``x2`` [B, K2].

    Returns a [K1, K2] float tensor. Exactly PyJuice's estimator (``pyjuice.structures.hclt``), op for op.
    """
    return _pair_mi(_soft_bins(x1, num_bins, sigma), _soft_bins(x2, num_bins, sigma))


def _soft_bins(x: torch.Tensor, num_bins: int, sigma: float) -> torch.Tensor:
    """[B, K, num_bins] Gaussian bin memberships of one chunk of columns."""
    # One min/max per chunk, deliberately: it is what PyJuice does, and it changes the values.
    x = (x - torch.min(x)) / (torch.max(x) - torch.min(x) + 1e-8)
    bins = torch.linspace(0, 1, num_bins, device=x.device)
    return torch.exp(-0.5 * (x.unsqueeze(2) - bins.view(1, 1, -1)).pow(2) / sigma ** 2)


def _pair_mi(x1p: torch.Tensor, x2p: torch.Tensor) -> torch.Tensor:
    B, K1, num_bins = x1p.shape
    K2 = x2p.shape[1]
    x12p = torch.einsum("bia,baj->ij", x1p.reshape(B, K1 * num_bins, 1),
                        x2p.reshape(B, 1, K2 * num_bins)).reshape(K1, num_bins, K2, num_bins) / B
    x1p_norm = (x1p / x1p.sum(dim=2, keepdim=True)).mean(dim=0)
    x2p_norm = (x2p / x2p.sum(dim=2, keepdim=True)).mean(dim=0)
    x12p_norm = x12p / x12p.sum(dim=(1, 3), keepdim=True)
    m1 = -(x1p_norm * torch.log(x1p_norm + 1e-4)).sum(dim=1)
    m2 = -(x2p_norm * torch.log(x2p_norm + 1e-4)).sum(dim=1)
    m12 = -(x12p_norm * torch.log(x12p_norm + 1e-4)).sum(dim=(1, 3))
    return m1.unsqueeze(1) + m2.unsqueeze(0) - m12


def pairwise_mutual_information(x: torch.Tensor, num_bins: int = 32, sigma: float = 0.5 / 32,
                                chunk_size: int = 64) -> np.ndarray:
    """[K, K] float32 mutual information matrix of the columns of ``x`` [B, K], chunked like PyJuice.

    Only the upper triangle (``u < v``) is filled, which is all the tree needs: PyJuice computes the
    blocks below the diagonal too, but never reads them, so skipping them halves the work without
    changing any value that matters. A row chunk's bin memberships are computed once and reused (the
    same values PyJuice recomputes per block). The diagonal and lower triangle are left at zero.
    """
    x = _as_float_tensor(x)
    K = x.shape[1]
    mi = torch.zeros(K, K)
    with torch.no_grad():
        for xs in range(0, K, chunk_size):
            xe = min(xs + chunk_size, K)
            x1p = _soft_bins(x[:, xs:xe], num_bins, sigma)
            for ys in range(xs, K, chunk_size):
                ye = min(ys + chunk_size, K)
                x2p = x1p if ys == xs else _soft_bins(x[:, ys:ye], num_bins, sigma)
                mi[xs:xe, ys:ye] = _pair_mi(x1p, x2p).cpu()
    return np.triu(mi.numpy(), k=1)


def maximum_spanning_tree(mi: np.ndarray) -> List[Tuple[int, int]]:
    """Kruskal's maximum spanning tree over the upper triangle of ``mi``; edges in acceptance order.

    Ties go to the earlier edge in row-major ``(u, v)`` order, as in networkx's stable sort over the
    complete graph PyJuice builds (node by node, ``add_edge(u, v)`` for ``u < v``).
    """
    K = mi.shape[0]
    if K < 2:
        return []
    iu, iv = np.triu_indices(K, k=1)  # row-major, the order networkx lists the edges in
    w = np.asarray(mi, dtype=np.float32)[iu, iv]
    order = np.argsort(-w, kind="stable")  # PyJuice minimises -mi; negation is exact in float32
    us, vs = iu[order].tolist(), iv[order].tolist()
    parent = list(range(K))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    edges: List[Tuple[int, int]] = []
    for u, v in zip(us, vs):
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[ru] = rv
            edges.append((u, v))
            if len(edges) == K - 1:
                break
    return edges


def _adjacency(num_vars: int, edges: Sequence[Tuple[int, int]]) -> List[List[int]]:
    adj: List[List[int]] = [[] for _ in range(num_vars)]
    for u, v in edges:
        adj[u].append(v)
        adj[v].append(u)
    return adj


def _bfs_dist(adj: List[List[int]], src: int) -> np.ndarray:
    dist = np.full(len(adj), -1, dtype=np.int64)
    dist[src] = 0
    frontier = [src]
    while frontier:
        nxt = []
        for a in frontier:
            for b in adj[a]:
                if dist[b] < 0:
                    dist[b] = dist[a] + 1
                    nxt.append(b)
        frontier = nxt
    return dist


def tree_center(num_vars: int, edges: Sequence[Tuple[int, int]]) -> int:
    """The centre of a tree (minimum eccentricity); the smaller-numbered one if there are two.

    Same answer as ``nx.center(T)[0]``, in linear time: the centre is the middle of any longest path.
    """
    adj = _adjacency(num_vars, edges)
    d0 = _bfs_dist(adj, 0)
    if np.any(d0 < 0):
        raise ValueError("tree: the edges do not connect all variables")
    a = int(np.argmax(d0))
    da = _bfs_dist(adj, a)
    b = int(np.argmax(da))
    db = _bfs_dist(adj, b)
    diam = int(da[b])
    # Nodes on the a-b path have da + db == diam; the centre(s) sit at distance floor/ceil(diam/2) from a.
    on_path = (da + db) == diam
    cands = np.nonzero(on_path & ((da == diam // 2) | (da == (diam + 1) // 2)))[0]
    return int(cands.min())


def root_tree(num_vars: int, edges: Sequence[Tuple[int, int]],
              root: int) -> Tuple[np.ndarray, List[List[int]]]:
    """Orient an undirected tree at ``root``: (parent array with -1 at the root, children lists).

    Children keep the adjacency order (the order their edges appear in ``edges``), as ``nx.bfs_tree`` does.
    """
    adj = _adjacency(num_vars, edges)
    parent = np.full(num_vars, -2, dtype=np.int64)
    parent[root] = -1
    children: List[List[int]] = [[] for _ in range(num_vars)]
    stack = [root]
    while stack:
        a = stack.pop()
        for b in adj[a]:
            if parent[b] == -2:
                parent[b] = a
                children[a].append(b)
                stack.append(b)
            elif b != parent[a]:
                raise ValueError("tree: the edges contain a cycle")
    if np.any(parent == -2):
        raise ValueError("tree: the edges do not connect all variables")
    return parent, children


def chow_liu_tree(data, num_bins: int = 32, sigma: float = 0.5 / 32, chunk_size: int = 64):
    """Learn PyJuice's Chow-Liu tree from ``data`` [num_samples, num_vars] (NumPy or torch).

    Returns ``(edges, root)``: the undirected edges in Kruskal acceptance order and the root (the centre).
    Feed them to :func:`root_tree` for a parent array and children lists.
    """
    mi = pairwise_mutual_information(data, num_bins, sigma, chunk_size)
    edges = maximum_spanning_tree(mi)
    return edges, tree_center(mi.shape[0], edges)


def _as_float_tensor(x) -> torch.Tensor:
    # Integer data behaves as in PyJuice: its arithmetic promotes integers to float32, and integers below
    # 2**24 convert exactly, so converting first gives the same values. Float data keeps its precision.
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    if x.dim() != 2:
        raise ValueError(f"data: expected a 2-D [num_samples, num_vars] array, got shape {tuple(x.shape)}")
    if not torch.is_floating_point(x):
        x = x.to(torch.float32)
    return x
