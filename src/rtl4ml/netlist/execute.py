"""Vectorized execution of a Netlist over a batch of input codes.

Arithmetic is int64 modulo 2**64. Every wire's exact value fits its own width (at most
63 bits, checked), so a modular result is the exact one even where an operand, shifted to
the output's scale, would not fit: the same argument that lets the hardware compute each
adder at its output width.
"""

from __future__ import annotations

import numpy as np

from ..fixed import WidthError, requantize
from .ir import Add, Const, Input, Netlist, Quant, Reg, Relu, Scale


def _last_uses(nl: Netlist) -> list[list[int]]:
    """For each primitive k, the wires whose last reader is k (to free them early)."""
    last = {}
    for k, p in enumerate(nl.prims):
        for a in p.args:
            last[a] = k
    keep = set(nl.outputs)
    frees: list[list[int]] = [[] for _ in nl.prims]
    for a, k in last.items():
        if a not in keep:
            frees[k].append(a)
    return frees


def _shift(q: np.ndarray, up: int) -> np.ndarray:
    return q << up if up >= 0 else q >> -up


def execute(nl: Netlist, xq: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Codes of the output bus slots for input codes ``xq`` of shape (N, n_inputs)."""
    xq = np.asarray(xq, dtype=np.int64)
    if xq.ndim != 2 or xq.shape[1] != len(nl.input_types):
        raise ValueError(f"expected input codes of shape (N, {len(nl.input_types)}), got {xq.shape}")
    widest = max((p.wire.width for p in nl.prims), default=0)
    if widest > 63:
        raise WidthError(f"a netlist wire needs {widest} bits; the int64 executor handles at most 63")
    frees = _last_uses(nl)
    outs = [_run(nl, xq[s:s + chunk], frees) for s in range(0, len(xq), chunk)]
    return np.concatenate(outs) if outs else np.zeros((0, len(nl.outputs)), dtype=np.int64)


def _run(nl: Netlist, xq: np.ndarray, frees: list[list[int]]) -> np.ndarray:
    n = len(xq)
    v: list = [None] * len(nl.prims)
    for k, p in enumerate(nl.prims):
        f = p.wire.fraction
        if isinstance(p, Input):
            r = xq[:, p.index]
        elif isinstance(p, Const):
            r = np.full(n, p.wire.lo, dtype=np.int64)
        elif isinstance(p, Add):
            a, b = nl.prims[p.a].wire, nl.prims[p.b].wire
            ta = _shift(v[p.a], f - a.fraction)
            tb = _shift(v[p.b], f - b.fraction + p.shift)
            r = ta - tb if p.sub else ta + tb
        elif isinstance(p, Scale):
            r = -v[p.a] if p.negate else v[p.a]
        elif isinstance(p, Relu):
            r = np.maximum(v[p.a], 0)
        elif isinstance(p, Quant):
            r = requantize(v[p.a], nl.prims[p.a].wire.fraction, p.target)
        elif isinstance(p, Reg):
            r = v[p.a]
        else:  # pragma: no cover - the primitive set is closed
            raise TypeError(f"unknown primitive {type(p).__name__}")
        v[k] = r
        for a in frees[k]:
            v[a] = None
    cols = [_shift(v[o], t.fraction - nl.prims[o].wire.fraction) for o, t in zip(nl.outputs, nl.output_types)]
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0), dtype=np.int64)
