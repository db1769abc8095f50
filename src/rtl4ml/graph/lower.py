"""Lowering: Graph (layer level) to Netlist (scalar primitives).

Each op lowers itself; this function only walks the graph in order, tells the builder which
node it is lowering (every primitive remembers it) and wires the results to the buses.
"""

from __future__ import annotations

from .. import progress
from ..netlist.builder import NetlistBuilder
from ..netlist.ir import Bus, Netlist
from .graph import Graph, node_error
from .ops import GraphError


def lower_graph(graph: Graph, cmvm: str = "plain", **cmvm_options) -> Netlist:
    """Lower ``graph`` to an (unpipelined) Netlist; ``cmvm`` names the constant-matrix solver."""
    types = graph.types
    nl = NetlistBuilder(cmvm_options={"method": cmvm, **cmvm_options})
    wires: dict = {}
    with progress.task("lowering (CMVM solving per layer)", total=len(graph.nodes)) as t:
        for n in graph.nodes:
            t.update(status=f"{n.name} ({n.op.kind})")
            nl.origin = n.name
            try:
                wires[n.name] = n.op.lower(nl, [wires[i] for i in n.inputs], [types[i] for i in n.inputs],
                                           types[n.name])
            except (GraphError, ValueError) as e:
                raise GraphError(node_error(n, e)) from None
            t.advance()
    in_buses = [Bus(n.name, types[n.name].shape, tuple(types[n.name].wires())) for n in graph.inputs]
    out_buses = [Bus(o, types[o].shape, tuple(types[o].wires())) for o in graph.outputs]
    outputs = [int(w) for o in graph.outputs for w in wires[o].flat]
    return nl.finish(outputs, out_buses, in_buses)
