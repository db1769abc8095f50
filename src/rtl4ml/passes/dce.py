"""Constant folding and dead-code removal on a Netlist.

The builder already folds constants as it goes, but a Netlist can still carry work that
no output needs (a hash-consed wire whose readers were folded away, a neuron whose every
outgoing weight was pruned, a zero column's adders) or primitives whose operands turned
out constant. These passes remove both; inputs are kept because they are the bus.
"""

from __future__ import annotations

from dataclasses import replace

from ..fixed import quantized_range, requantize_code
from ..netlist.builder import add_wire, const_wire
from ..netlist.ir import Add, Const, Input, Netlist, Prim, Quant, Reg, Relu, Scale, Wire


def fold_constants(nl: Netlist) -> Netlist:
    """Replace primitives whose operands are constant by constants; drop additions of zero."""
    prims: list[Prim] = []
    new_id: list[int] = []
    consts: dict[tuple[int, int], int] = {}

    def const(q: int, fraction: int) -> int:
        w = const_wire(q, fraction)
        key = (w.lo, w.fraction)
        if key not in consts:
            prims.append(Const(w))
            consts[key] = len(prims) - 1
        return consts[key]

    def cval(i: int) -> tuple[int, int] | None:
        p = prims[i]
        return (p.wire.lo, p.wire.fraction) if isinstance(p, Const) else None

    for p in nl.prims:
        args = [new_id[a] for a in p.args]
        cs = [cval(a) for a in args]
        k: int | None = None
        if isinstance(p, Const):
            k = const(p.wire.lo, p.wire.fraction)
        elif isinstance(p, Input):
            pass
        elif all(c is not None for c in cs) and args:
            k = const(*_evaluate(p, cs))
        elif isinstance(p, Add) and cs[1] is not None and cs[1][0] == 0:
            k = args[0]
        elif isinstance(p, Add) and cs[0] is not None and cs[0][0] == 0 and not p.sub and p.shift == 0:
            k = args[1]
        if k is None:
            prims.append(p.with_args(args))
            k = len(prims) - 1
        new_id.append(k)
    return _renumbered(nl, prims, new_id)


def _evaluate(p: Prim, cs: list[tuple[int, int]]) -> tuple[int, int]:
    """``(code, fraction)`` of a primitive whose operands are all constants."""
    if isinstance(p, Add):
        (qa, fa), (qb, fb) = cs
        w = add_wire(Wire(qa, qa, fa), Wire(qb, qb, fb), p.shift, p.sub)
        return w.lo, w.fraction
    (q, f), = cs
    if isinstance(p, Scale):
        return (-q if p.negate else q), f - p.shift
    if isinstance(p, Relu):
        return max(q, 0), f
    if isinstance(p, Quant):
        return requantize_code(q, f, p.target), p.target.fraction
    if isinstance(p, Reg):
        return q, f
    raise TypeError(f"cannot fold {type(p).__name__}")  # pragma: no cover - closed primitive set


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
    prims: list[Prim] = []
    new_id: dict[int, int] = {}
    for k, p in enumerate(nl.prims):
        if live[k]:
            prims.append(p.with_args([new_id[a] for a in p.args]))
            new_id[k] = len(prims) - 1
    return _renumbered(nl, prims, new_id)


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
    biased neuron (the rounding adder is as wide as the sum). Done only where the addition's
    sole reader is the quantizer, so no other reader sees the shifted constant.
    """
    readers = reader_counts(nl)
    fused: dict[int, tuple[int, int, int]] = {}   # Add id -> (new constant code, its fraction, code bump)
    for p in nl.prims:
        if not (isinstance(p, Quant) and p.target.rounding == "RND"):
            continue
        src = nl.prims[p.a]
        if not isinstance(src, Add) or readers[p.a] != 1 or src.shift != 0 or src.sub:
            continue
        if src.wire.fraction <= p.target.fraction or not isinstance(nl.prims[src.a], Const):
            continue
        c = nl.prims[src.a].wire
        f = max(c.fraction, p.target.fraction + 1)
        fused[p.a] = ((c.lo << (f - c.fraction)) + (1 << (f - p.target.fraction - 1)), f,
                      1 << (src.wire.fraction - p.target.fraction - 1))
    if not fused:
        return nl
    prims: list[Prim] = []
    new_id: list[int] = []
    for k, p in enumerate(nl.prims):
        args = [new_id[a] for a in p.args]
        if k in fused:
            q, f, bump = fused[k]
            prims.append(Const(const_wire(q, f)))
            p = replace(p, wire=Wire(p.wire.lo + bump, p.wire.hi + bump, p.wire.fraction))
            args[0] = len(prims) - 1
        elif isinstance(p, Quant) and p.a in fused:
            p = replace(p, target=replace(p.target, rounding="TRN"))
        prims.append(p.with_args(args))
        new_id.append(len(prims) - 1)
    return _renumbered(nl, prims, new_id)


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
    if not twins:
        return nl
    prims: list[Prim] = []
    new_id: list[int] = []
    for k, p in enumerate(nl.prims):
        args = [new_id[a] for a in p.args]
        if isinstance(p, Relu) and p.a in twins:
            new_id.append(args[0])   # the unsigned quantizer already is the ReLU
            continue
        prims.append(twins.get(k, p).with_args(args))
        new_id.append(len(prims) - 1)
    return _renumbered(nl, prims, new_id)


def simplify(nl: Netlist) -> Netlist:
    """Constant folding, rounding and ReLU fusion, then dead-code removal."""
    return remove_dead(fuse_relu(fuse_rounding(fold_constants(nl))))


def _renumbered(nl: Netlist, prims: list[Prim], new_id) -> Netlist:
    """``nl`` with primitives ``prims``; ``new_id[k]`` is the new id of old wire ``k``."""
    return Netlist(tuple(prims), nl.input_types, tuple(new_id[o] for o in nl.outputs), nl.output_types, nl.latency)
