"""Standard circuit structures (`pcc.structures`): HCLT, PD, RAT-SPN and HMM.

Each builder uses only `pcc.inputs`, `pcc.multiply`, `pcc.summate` and `duplicate`, and follows PyJuice
2.6.3's construction rules, so that a benchmark against PyJuice compares the same circuit (the same
input nodes, sum nodes and sum edges for the same arguments). `graph_stats(root)` counts them from the
graph, without compiling.
"""

from ._common import graph_stats
from .chow_liu import chow_liu_tree
from .hclt import HCLT
from .hmm import HMM
from .pd import PD
from .rat_spn import RAT_SPN

__all__ = ["HCLT", "PD", "RAT_SPN", "HMM", "chow_liu_tree", "graph_stats"]
