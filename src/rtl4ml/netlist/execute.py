"""Vectorized execution of a Netlist over a batch of input codes.

Each primitive evaluates itself (:meth:`~rtl4ml.netlist.ir.Prim.evaluate`); this module only
walks the primitives in order, in chunks of samples, freeing every wire after its last
reader.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..fixed import WidthError
from .ir import ExecContext, Netlist
from .prims import shift_codes


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


def flat_inputs(nl: Netlist, xq) -> np.ndarray:
    """Input codes as one (N, elements) array: one array per input bus (a sequence when
    there are several), each of shape (N, elements of the bus) or (N, *bus shape)."""
    arrays = list(xq) if isinstance(xq, (list, tuple)) else [xq]
    if len(arrays) != len(nl.input_buses):
        raise ValueError(f"expected {len(nl.input_buses)} input arrays, got {len(arrays)}")
    cols = []
    for a, bus in zip(arrays, nl.input_buses):
        cols.append(batch_matrix(np.asarray(a, dtype=np.int64), len(bus.slots), bus.shape, f"input {bus.name!r}"))
    n = {len(c) for c in cols}
    if len(n) > 1:
        raise ValueError(f"input arrays have different numbers of samples: {sorted(n)}")
    return np.concatenate(cols, axis=1) if len(cols) != 1 else cols[0]


def batch_matrix(a: np.ndarray, n_el: int, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``a`` of shape (N, n_el) or (N, *shape) as an (N, n_el) matrix, or a clear error."""
    if a.ndim >= 1 and (a.shape[1:] == tuple(shape) or a.shape[1:] == (n_el,)):
        return a.reshape(len(a), n_el)
    want = f"(N, {n_el})" if len(shape) <= 1 else f"(N, {n_el}) or (N, {', '.join(map(str, shape))})"
    raise ValueError(f"{what}: expected an array of shape {want}, got {a.shape}")


def execute(nl: Netlist, xq, chunk: int = 1 << 16) -> np.ndarray:
    """Codes of the output bus slots, (N, all output elements), for input codes ``xq``.

    ``xq``: an (N, elements) array for a single input bus, or one array per bus.
    """
    x = flat_inputs(nl, xq)
    widest = max((p.wire.width for p in nl.prims), default=0)
    if widest > 63:
        raise WidthError(f"a netlist wire needs {widest} bits; the int64 executor handles at most 63")
    frees = _last_uses(nl)
    outs = [_run(nl, x[s:s + chunk], frees) for s in range(0, len(x), chunk)]
    return np.concatenate(outs) if outs else np.zeros((0, len(nl.outputs)), dtype=np.int64)


def split_outputs(nl: Netlist, codes: np.ndarray) -> list[np.ndarray]:
    """(N, all output elements) codes to one (N, *shape) array per output bus."""
    out, off = [], 0
    for bus in nl.output_buses:
        n_el = len(bus.slots)
        out.append(codes[:, off:off + n_el].reshape((len(codes),) + tuple(bus.shape)))
        off += n_el
    return out


def _run(nl: Netlist, xq: np.ndarray, frees: list[list[int]]) -> np.ndarray:
    ctx = ExecContext(xq, len(xq))
    v: list = [None] * len(nl.prims)
    operand_wires = nl.operand_wires
    for k, p in enumerate(nl.prims):
        v[k] = p.evaluate([v[a] for a in p.args], operand_wires[k], ctx)
        for a in frees[k]:
            v[a] = None
    cols: Sequence[np.ndarray] = [shift_codes(v[o], t.fraction - nl.prims[o].wire.fraction)
                                  for o, t in zip(nl.outputs, nl.output_types)]
    return np.stack(cols, axis=1) if cols else np.zeros((len(xq), 0), dtype=np.int64)
