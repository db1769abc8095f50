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
    if w == 0:
        return 0, 0
    mant, e = np.frexp(w)
    m = int(mant * (1 << 53))
    e = int(e) - 53
    tz = (m & -m).bit_length() - 1
    return m >> tz, e + tz


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
    """Per output column, the CSD terms ``(input, shift, negative)`` of ``x @ W``."""
    n_in, n_out = W.shape
    cols: list[list[tuple[int, int, bool]]] = [[] for _ in range(n_out)]
    for i, j in zip(*np.nonzero(W)):
        m, e = dyadic(float(W[i, j]))
        for k, d in csd(m):
            cols[j].append((int(i), e + k, d < 0))
    return cols
