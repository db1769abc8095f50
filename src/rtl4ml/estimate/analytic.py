"""Instant, synthesis-free resource figures of a Netlist, in total and per layer.

On FPGAs a shift-and-add design's LUT count tracks its total adder bits closely, so these
numbers are good enough to use inside a training loop or a design-space sweep. Every figure
is the sum of the primitives' own :meth:`~rtl4ml.netlist.ir.Prim.cost`; the layer of a
primitive is the Graph node it was lowered from (pipeline registers belong to the layer of
the value they hold).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..netlist.ir import Cost, Netlist


@dataclass(frozen=True)
class LayerStats:
    """Analytic figures of one layer (Graph node)."""

    layer: str
    adders: int
    adder_bits: int
    luts: int            # LUT estimate
    register_bits: int
    multipliers: int
    adder_depth: int     # most adders on a path inside the layer

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AdderStats:
    adders: int        # two-operand adders/subtractors (negations and rounding adders included)
    adder_bits: int    # sum of adder widths, minus low bits that are passed through as wires
    adder_depth: int   # most adders on any input-to-output path
    register_bits: int
    luts: int = 0      # LUT estimate of the whole design
    multipliers: int = 0
    layers: tuple[LayerStats, ...] = ()


def adder_stats(nl: Netlist) -> AdderStats:
    depth = [0] * len(nl.prims)     # adders on the deepest path to each wire
    local = [0] * len(nl.prims)     # the same, counted from where the path entered the wire's layer
    total = Cost()
    per_layer: dict[str, Cost] = {}
    layer_depth: dict[str, int] = {}
    for k, p in enumerate(nl.prims):
        c = p.cost(nl.operand_wires[k])
        total = total + c
        per_layer[p.origin] = per_layer.get(p.origin, Cost()) + c
        depth[k] = max((depth[a] for a in p.args), default=0) + c.levels
        local[k] = max((local[a] for a in p.args if nl.prims[a].origin == p.origin), default=0) + c.levels
        layer_depth[p.origin] = max(layer_depth.get(p.origin, 0), local[k])
    layers = tuple(LayerStats(name, c.adders, c.adder_bits, c.luts, c.register_bits, c.multipliers, layer_depth[name])
                   for name, c in per_layer.items() if c != Cost())
    return AdderStats(total.adders, total.adder_bits, max((depth[o] for o in nl.outputs), default=0),
                      total.register_bits, total.luts, total.multipliers, layers)
