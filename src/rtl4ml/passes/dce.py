"""Constant folding, fusions and dead-code removal on a Netlist.

The builder already folds constants as it goes, but a Netlist can still carry work that
no output needs (a hash-consed wire whose readers were folded away, a neuron whose every
outgoing weight was pruned, a zero column's adders) or primitives whose operands turned
out constant. These passes remove both; inputs are kept because they are the bus.
Each pass is a pure function of the Netlist, written with :func:`~rtl4ml.netlist.rewrite.rewrite`.
"""

from __future__ import annotations

from dataclasses import replace

from ..fixed import Wire, quantized_range
from ..netlist.ir import Netlist, Prim
from ..netlist.prims import Add, Const, Input, Quant, Relu, const_wire
from ..netlist.rewrite import Rewriter, rewrite


def fold_constants(nl: Netlist) -> Netlist:
    """Replace primitives whose operands are constant by constants; forward pass-through operands."""

    def visit(r: Rewriter, k: int, p: Prim):
        if isinstance(p, Const):
            return r.const(p.wire.lo, p.wire.fraction, p.origin)
        wires = [r.prims[a].wire for a in p.args]
        if p.args and all(w.is_const for w in wires):
            return r.const(p.fold([w.lo for w in wires], wires), p.wire.fraction, p.origin)
        j = p.identity(wires)
        return p if j is None else p.args[j]

    return rewrite(nl, visit)


def remove_dead(nl: Netlist) -> Netlist:
    """Keep only primitives some output depends on (and every input)."""
    live = [False] * len(nl.prims)
    for o in nl.outputs:
        live[o] = True
    for k in range(len(nl.prims) - 1, -1, -1):
        if live[k]:
            for a in nl.prims[k].args:
                live[a] = True
        elif isinstance(nl.prims[k], Input):
            live[k] = True
    if all(live):
        return nl
    return rewrite(nl, lambda r, k, p: p if live[k] else None)


def reader_counts(nl: Netlist) -> list[int]:
    """How many primitives (and output slots) read each wire."""
    readers = [0] * len(nl.prims)
    for p in nl.prims:
        for a in p.args:
            readers[a] += 1
    for o in nl.outputs:
        readers[o] += 1
    return readers


def fuse_rounding(nl: Netlist) -> Netlist:
    """Merge a round-half-up quantizer into the constant addition (bias) that feeds it.

    ``RND(y + c) = TRN(y + (c + half an output LSB))``: bit-exact, and one adder fewer per
    biased neuron (the rounding adder is as wide as the sum). A ReLU between the two is no
    obstacle: ``RND(relu(s)) = TRN(relu(s + h))`` (for ``s < 0``, ``s + h < h`` truncates to
    at most 0), the form of every Dense -> ReLU -> quantizer (QReLU, HGQ2's activations).
    Done only where the addition's (and the ReLU's) sole reader is the next step, so no other
    reader sees the shifted value.
    """
    readers = reader_counts(nl)
    fused: dict[int, tuple[int, int, int]] = {}   # Add id -> (new constant code, its fraction, code bump)
    relus: dict[int, int] = {}                     # ReLU id between -> its Add's id
    for p in nl.prims:
        if not (isinstance(p, Quant) and p.target.rounding == "RND"):
            continue
        a, relu = p.a, None
        if isinstance(nl.prims[a], Relu) and readers[a] == 1:
            relu, a = a, nl.prims[a].a
        src = nl.prims[a]
        if not isinstance(src, Add) or readers[a] != 1 or src.shift != 0 or src.sub:
            continue
        if src.wire.fraction <= p.target.fraction or not isinstance(nl.prims[src.args[0]], Const):
            continue
        c = nl.prims[src.args[0]].wire
        f = max(c.fraction, p.target.fraction + 1)
        fused[a] = ((c.lo << (f - c.fraction)) + (1 << (f - p.target.fraction - 1)), f,
                    1 << (src.wire.fraction - p.target.fraction - 1))
        if relu is not None:
            relus[relu] = a
    if not fused:
        return nl

    def visit(r: Rewriter, k: int, p: Prim):
        if k in fused:
            q, f, bump = fused[k]
            c = r.emit(Const(const_wire(q, f), (), origin=p.origin))
            return replace(p, wire=Wire(p.wire.lo + bump, p.wire.hi + bump, p.wire.fraction), args=(c, p.args[1]))
        if k in relus:
            bump = fused[relus[k]][2]
            w = nl.prims[relus[k]].wire
            return replace(p, wire=Wire(max(w.lo + bump, 0), max(w.hi + bump, 0), w.fraction))
        if isinstance(p, Quant) and (nl.prims[k].args[0] in fused or nl.prims[k].args[0] in relus):
            return replace(p, target=replace(p.target, rounding="TRN"))   # the sole reader of a fused sum
        return p

    return rewrite(nl, visit)


def fuse_relu(nl: Netlist) -> Netlist:
    """``ReLU(saturate to a signed type)`` is saturation to its unsigned twin: one clamp, not two.

    For SAT and SAT_SYM a signed type clamps to ``[-M, M]`` (or ``[-M-1, M]``) and the ReLU then
    to ``[0, M]``; the unsigned type with the same integer and fraction bits clamps straight
    to ``[0, M]`` after the same rounding. Done where the quantizer's only reader is the ReLU.
    """
    readers = reader_counts(nl)
    twins: dict[int, Quant] = {}
    for p in nl.prims:
        if not isinstance(p, Relu) or readers[p.a] != 1:
            continue
        q = nl.prims[p.a]
        if not (isinstance(q, Quant) and q.target.signed and q.target.overflow in ("SAT", "SAT_SYM")):
            continue
        t = replace(q.target, signed=False)
        if t.width < 1:
            continue
        src = nl.prims[q.a].wire
        lo, hi = quantized_range(src.lo, src.hi, src.fraction, t)
        twins[p.a] = replace(q, wire=Wire(lo, hi, t.fraction), target=t)

    def visit(r: Rewriter, k: int, p: Prim):
        if isinstance(p, Relu) and nl.prims[k].args[0] in twins:
            return p.args[0]   # the unsigned quantizer already is the ReLU
        return twins[k].with_args(p.args) if k in twins else p

    return rewrite(nl, visit) if twins else nl


def simplify(nl: Netlist) -> Netlist:
    """Constant folding, rounding and ReLU fusion, then dead-code removal."""
    return remove_dead(fuse_relu(fuse_rounding(fold_constants(nl))))
