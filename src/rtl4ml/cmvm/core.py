"""Constant matrix-vector multiplication (CMVM) as shift-and-add adder graphs.

``y = x @ W`` with constant dyadic ``W`` costs no multipliers in hardware: each weight is
written in canonical signed digits (CSD, no two adjacent non-zero digits, so the fewest
terms) and every output is a sum of shifted, signed inputs. This module turns the matrix
into an :class:`AdderGraph`, a hardware-free description that the Netlist builder emits
with exact wire widths.

The solvers (:mod:`rtl4ml.cmvm.solvers`) turn a matrix into such a graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np



@dataclass(frozen=True)
class AdderGraph:
    """Adders over ``n_inputs`` input nodes.

    Node ``n_inputs + k`` is ``ops[k] = (a, b, shift, sub)``: ``v[a] ± v[b] * 2**shift``.
    Output ``j`` is ``(-1)**negate * v[node] * 2**shift`` for ``outputs[j] = (node, shift,
    negate)``, or zero when ``outputs[j] is None``.
    """

    n_inputs: int
    ops: tuple[tuple[int, int, int, bool], ...]
    outputs: tuple[tuple[int, int, bool] | None, ...]

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """Reference evaluation in float64 (exact for small dyadic values); for tests."""
        v = [x[..., i] for i in range(self.n_inputs)]
        for a, b, s, sub in self.ops:
            v.append(v[a] - v[b] * 2.0 ** s if sub else v[a] + v[b] * 2.0 ** s)
        zero = np.zeros(x.shape[:-1])
        return np.stack([zero if o is None else (-1) ** o[2] * v[o[0]] * 2.0 ** o[1] for o in self.outputs], -1)


def dyadic(w: float) -> tuple[int, int]:
    """``w == m * 2**e`` with ``m`` odd (or ``(0, 0)``): exact, from the float's bits."""
    m, e = dyadic_parts(np.array([w], dtype=np.float64))
    return int(m[0]), int(e[0])


def dyadic_parts(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`dyadic` of every element of a float array: odd mantissas and exponents (int64)."""
    mant, e = np.frexp(w)
    m = (mant * float(1 << 53)).astype(np.int64)                  # exact: 53-bit mantissas
    tz = np.where(m == 0, 0, np.frexp((m & -m).astype(np.float64))[1] - 1)   # trailing zero bits
    return m >> tz, np.where(m == 0, 0, e - 53 + tz)


def csd(m: int) -> list[tuple[int, int]]:
    """Canonical signed digits of an integer: ``[(position, ±1), ...]``, least significant first."""
    digits = []
    k = 0
    while m != 0:
        if m & 1:
            d = 2 - (m & 3)  # +1 if m % 4 == 1, -1 if m % 4 == 3
            digits.append((k, d))
            m -= d
        m >>= 1
        k += 1
    return digits


def weight_terms(W: np.ndarray) -> list[list[tuple[int, int, bool]]]:
    """Per output column, the CSD terms ``(input, shift, negative)`` of ``x @ W``, by input and shift."""
    i, j = np.nonzero(W)
    m, e = dyadic_parts(W[i, j])
    found = []   # digit arrays (column, input, shift, negative), one position k at a time
    k = 0
    while len(m):
        odd = (m & 1) == 1
        d = 2 - (m & 3)                    # +1 if m % 4 == 1, -1 if m % 4 == 3 (odd m only)
        found.append((j[odd], i[odd], e[odd] + k, d[odd] < 0))
        m = np.where(odd, m - d, m) >> 1
        k += 1
        left = m != 0
        i, j, e, m = i[left], j[left], e[left], m[left]
    cj, ci, cs, cn = (np.concatenate([f[c] for f in found] + [np.zeros(0, dtype=int)]) for c in range(4))
    order = np.lexsort((cs, ci, cj))
    cj, terms = cj[order], list(zip(ci[order].tolist(), cs[order].tolist(), cn[order].astype(bool).tolist()))
    ends = np.searchsorted(cj, np.arange(W.shape[1] + 1))
    return [terms[a:b] for a, b in zip(ends[:-1].tolist(), ends[1:].tolist())]
