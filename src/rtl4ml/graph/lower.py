"""Lowering: Graph (layer level) to Netlist (scalar primitives).

Each op lowers itself; this function only walks the graph in order and wires the results.
"""

from __future__ import annotations

from ..netlist.builder import NetlistBuilder
from ..netlist.ir import Netlist, Wire
from .graph import Graph
from .ops import GraphError


def lower_graph(graph: Graph, cmvm: str = "plain", **cmvm_options) -> Netlist:
    """Lower ``graph`` to an (unpipelined) Netlist; ``cmvm`` names the constant-matrix solver."""
    if len(graph.outputs) != 1:
        raise GraphError("lowering needs a graph with one output")
    types = graph.types
    nl = NetlistBuilder(cmvm_options={"method": cmvm, **cmvm_options})
    wires: dict[str, list[int]] = {}
    for n in graph.nodes:
        try:
            wires[n.name] = n.op.lower(nl, [wires[i] for i in n.inputs], [types[i] for i in n.inputs], types[n.name])
        except GraphError as e:
            raise GraphError(f"node {n.name!r} ({n.op.kind}): {e}") from None
    out = graph.outputs[0]
    t = types[out]
    slots = [Wire(int(lo), int(hi), int(f)) for lo, hi, f in zip(t.lo, t.hi, t.fraction)]
    return nl.finish(wires[out], slots)
