"""Rebuilding correlated columns from each other: ``y_j = y_p * ±2**s + x @ (W_j - ±2**s W_p)``.

Trained layers have correlated columns: the difference of two columns (after the best
sign and power-of-two scaling) often has far fewer signed digits than either. A spanning
tree over the columns, rooted at a virtual all-zero column, picks for every column the
parent that makes its difference sparsest (Prim's algorithm on signed-digit distances,
depth-limited because every tree level is one more adder on the path to that output).
The differences are then solved together by the ``cse`` solver, and each column is one
adder away from its parent. The caller keeps this only if it has fewer adder bits than
solving the columns directly and stays within the depth bound.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..fixed import Wire
from .core import weight_terms
from .cse import _solve_once

SHIFTS = (-2, -1, 0, 1, 2)   # power-of-two scalings of a parent column that are tried
MAX_HEIGHT = 3               # tree levels: each is one adder on the outputs' critical path
MIN_GAIN = 0.06              # try it only if the tree saves this share of signed digits


def csd_weight(m: np.ndarray) -> np.ndarray:
    """Number of non-zero canonical signed digits of each integer (as uint8; ``1.5 |m|`` must fit the dtype)."""
    m = np.abs(m)
    h = m >> 1
    return np.bitwise_count((m + h) ^ h)


def _integer_columns(W: np.ndarray) -> np.ndarray | None:
    """``W * 2**e`` as int64 with room for the parent shifts, or None if too wide."""
    nz = W[W != 0]
    if len(nz) == 0:
        return None
    e = 0
    while not np.all(np.ldexp(nz, e) == np.round(np.ldexp(nz, e))):
        e += 1
        if e > 60:
            return None
    M = np.ldexp(W, e + max(-min(SHIFTS), 0))
    if np.abs(M).max() >= 2.0 ** 50:
        return None
    return M.astype(np.int64)


def spanning_tree(M: np.ndarray, height: int = MAX_HEIGHT) -> list[tuple[int, int, int]] | None:
    """Parent of each column: ``(parent, shift, sign)``; parent ``-1`` is the zero column.

    Distances are signed-digit counts of ``M_j - sign * 2**shift * M_p``. Returns None when
    no column gains from a parent.
    """
    n = M.shape[1]
    base = csd_weight(M).sum(axis=0)
    combos = [(s, g) for s in SHIFTS for g in (1, -1)]
    dist = _distances(M, combos)
    for j in range(n):
        dist[j, j, :] = 1 << 40
    best_c = dist.argmin(axis=2)
    best = np.take_along_axis(dist, best_c[..., None], axis=2)[..., 0] + 1   # +1: the adder joining them
    cost = base.astype(np.int64).copy()
    parent = [-1] * n
    depth = [0] * n
    done = np.zeros(n, dtype=bool)
    for _ in range(n):   # Prim's from the zero column, depth-limited
        cand = np.where(done, 1 << 62, cost)
        j = int(cand.argmin())
        done[j] = True
        if parent[j] >= 0:
            depth[j] = depth[parent[j]] + 1
        if depth[j] >= height:
            continue
        better = (~done) & (best[:, j] < cost)
        cost[better] = best[better, j]
        for k in np.flatnonzero(better):
            parent[k] = j
    if all(p < 0 for p in parent):
        return None
    return [(-1, 0, 1) if p < 0 else (p, combos[best_c[j, p]][0], combos[best_c[j, p]][1]) for j, p in enumerate(parent)]


def _distances(M: np.ndarray, combos: list[tuple[int, int]]) -> np.ndarray:
    """``dist[j, p, c]``: signed digits of column ``j`` given parent ``p`` under ``c = (shift, sign)``.

    Digit counts do not change under negation and powers of two, so a right shift is the
    transpose of the left shift (where it drops no set bits), and the differences are
    computed in the narrowest integer type that holds them: about a sixth of the work of
    computing every combination in int64 (a 256x256 matrix: ``n**3`` differences each).
    """
    n = M.shape[1]
    top = int(np.abs(M).max(initial=0)) << (max(s for s, _ in combos) + 3)
    Mt = M.astype(next(t for t in (np.int16, np.int32, np.int64) if top < np.iinfo(t).max))
    left = {(s, g): csd_weight(Mt[:, :, None] - g * (Mt << s)[:, None, :]).sum(axis=0, dtype=np.int64)
            for s, g in combos if s >= 0}   # [j, p]
    dist = np.empty((n, n, len(combos)), dtype=np.int64)
    for c, (s, g) in enumerate(combos):
        if s >= 0:
            dist[:, :, c] = left[s, g]
            continue
        dist[:, :, c] = left[-s, g].T
        exact = np.all(((M >> -s) << -s) == M, axis=0)
        dist[:, ~exact, c] = 1 << 40      # a right shift that drops set bits is not exact
    return dist


def solve_decomposed(W: np.ndarray, inputs: Sequence[Wire], levels: int | None, to_beat: int,
                     window: int | None = None):
    """``(bits, vars, roots)`` of the decomposed solution if it beats ``to_beat`` bits, else None."""
    M = _integer_columns(W)
    if M is None:
        return None
    best = None
    for height in range(MAX_HEIGHT, 0, -1):   # tallest tree whose chains still fit the bound
        tree = spanning_tree(M, height)
        if tree is None:
            return None
        if height == MAX_HEIGHT and _digits(M, tree) > (1 - MIN_GAIN) * csd_weight(M).sum():
            return None   # columns too unrelated to pay for a second solve (random matrices)
        D = W.copy()
        for j, (p, s, g) in enumerate(tree):
            if p >= 0:
                D[:, j] = W[:, j] - g * np.ldexp(W[:, p], s)
        terms = weight_terms(D)
        budget = None if levels is None else _budgets(tree, levels)
        need = [max(len(t) - 1, 0).bit_length() for t in terms]
        if budget is None or all(n <= b for n, b in zip(need, budget)):
            best = _build(tree, terms, inputs, levels, budget, window)
            break
    if best is None:
        return None
    vs, roots = best
    if levels is not None and max(vs.depth[r[0]] for r in roots) > levels:
        return None
    bits = vs.cost
    return (bits, vs, roots) if bits < to_beat else None


def _build(tree, terms, inputs, levels, out_levels, window):
    """Solve the difference columns, then join every column to its parent with one adder."""
    vs, z = _solve_once(terms, inputs, levels, out_levels=out_levels, window=window)
    roots: list[tuple[int, int, bool] | None] = [None] * len(tree)
    for j in _parents_first(tree):
        p, s, g = tree[j]
        if p < 0:
            roots[j] = z[j]
            continue
        node_p, sp, gp = roots[p]
        if z[j] is None:   # identical up to sign and shift: pure wiring
            roots[j] = (node_p, sp + s, gp ^ (g < 0))
            continue
        node_z, sz, gz = z[j]
        gq = bool(gp ^ (g < 0))   # sign of the scaled parent in this column
        if gz and not gq:         # the positive operand first: p - z, not -(z - p) (no negation later)
            v = vs.add(node_p, node_z, sz - sp - s, True)
            roots[j] = (v, sp + s, False)
            continue
        v = vs.add(node_z, node_p, sp + s - sz, bool(gz ^ gq))
        roots[j] = (v, sz, gz)
    return vs, roots


def _digits(M: np.ndarray, tree: list[tuple[int, int, int]]) -> int:
    """Signed digits of the difference columns plus one adder per joined column."""
    total = 0
    for j, (p, s, g) in enumerate(tree):
        col = M[:, j]
        if p >= 0:
            col = col - g * ((M[:, p] << s) if s >= 0 else (M[:, p] >> -s))
        total += int(csd_weight(col).sum()) + (p >= 0)
    return total


def _budgets(tree: list[tuple[int, int, int]], levels: int) -> list[int]:
    """Adder levels each difference column may use so that every column fits ``levels``.

    A column with descendants ``h`` joins deep must finish ``h`` levels early; a joined
    column spends one level on its own join: ``levels - h - (1 if it has a parent)``.
    """
    below = [0] * len(tree)
    for j in range(len(tree)):   # walk up from every column, raising its ancestors' heights
        h, p = 0, tree[j][0]
        while p >= 0:
            h += 1
            below[p] = max(below[p], h)
            p = tree[p][0]
    return [levels - below[j] - (tree[j][0] >= 0) for j in range(len(tree))]


def _parents_first(tree: list[tuple[int, int, int]]) -> list[int]:
    order, seen = [], set()

    def visit(j: int) -> None:
        if j in seen:
            return
        if tree[j][0] >= 0:
            visit(tree[j][0])
        seen.add(j)
        order.append(j)
    for j in range(len(tree)):
        visit(j)
    return order
