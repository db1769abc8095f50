"""Instant, synthesis-free resource figures of a Netlist.

On FPGAs a shift-and-add design's LUT count tracks its total adder bits closely, so these
numbers are good enough to use inside a training loop or a design-space sweep.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..netlist.ir import Add, Netlist, Quant, Reg, Scale


@dataclass(frozen=True)
class AdderStats:
    adders: int        # two-operand adders/subtractors (negations and rounding adders included)
    adder_bits: int    # sum of adder widths, minus low bits that are passed through as wires
    adder_depth: int   # most adders on any input-to-output path
    register_bits: int


def add_cost(nl: Netlist, p: Add) -> int:
    """Bits of carry logic of ``p``: its width, less the low bits only one operand drives."""
    wa, wb = nl.prims[p.a].wire, nl.prims[p.b].wire
    za = p.wire.fraction - wa.fraction            # low zero bits of the aligned a
    zb = p.wire.fraction - wb.fraction + p.shift  # low zero bits of the aligned b
    if zb > za:
        return max(p.wire.width - zb, 0)
    if za > zb and not p.sub:
        return max(p.wire.width - za, 0)
    return p.wire.width


def rounding_cost(nl: Netlist, p: Quant) -> int:
    """Bits of the rounding adder of a RND/RND_CONV quantizer that drops bits (else 0)."""
    src = nl.prims[p.a].wire
    if p.target.rounding == "TRN" or src.fraction <= p.target.fraction:
        return 0
    return src.width + 1


def adder_stats(nl: Netlist) -> AdderStats:
    depth = [0] * len(nl.prims)
    adders = bits = regbits = 0
    for k, p in enumerate(nl.prims):
        d = max((depth[a] for a in p.args), default=0)
        if isinstance(p, Add):
            adders += 1
            bits += add_cost(nl, p)
            d += 1
        elif isinstance(p, Scale) and p.negate:
            adders += 1
            bits += p.wire.width
            d += 1
        elif isinstance(p, Quant) and rounding_cost(nl, p):
            adders += 1
            bits += rounding_cost(nl, p)
            d += 1
        elif isinstance(p, Reg):
            regbits += p.wire.width
        depth[k] = d
    return AdderStats(adders, bits, max((depth[o] for o in nl.outputs), default=0), regbits)
