"""CMVM solvers: a constant matrix to an :class:`~rtl4ml.cmvm.core.AdderGraph`, by name.

``plain`` builds one balanced adder tree per output and shares nothing; ``cse`` (the
default, :mod:`rtl4ml.cmvm.cse`) shares partial sums between outputs. New solvers plug in
through :data:`SOLVERS`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..fixed import Wire
from .core import AdderGraph, weight_terms
from .cse import _OFF, _solve_once, _unique_columns
from .decompose import solve_decomposed


def solve_plain(W: np.ndarray, inputs: Sequence[Wire], depth_slack: int | None = None) -> AdderGraph:
    """One balanced tree of CSD terms per output, positive terms first (fewer negations).

    Shares nothing; every output is at its minimum adder depth, so ``depth_slack`` (accepted
    for a uniform solver interface) has nothing to trade.
    """
    n_in = W.shape[0]
    ops: list[tuple[int, int, int, bool]] = []
    outputs: list[tuple[int, int, bool] | None] = []
    for terms in weight_terms(W):
        if not terms:
            outputs.append(None)
            continue
        level = sorted(terms, key=lambda t: (t[2], t[0], t[1]))
        while len(level) > 1:
            nxt = []
            for k in range(0, len(level) - 1, 2):
                (na, sa, ga), (nb, sb, gb) = level[k], level[k + 1]
                ops.append((na, nb, sb - sa, ga != gb))
                nxt.append((n_in + len(ops) - 1, sa, ga))
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        outputs.append(level[0])
    return AdderGraph(n_in, tuple(ops), tuple(outputs))


#: Work budget of the portfolio: about this many CSD terms times tries are solved.
TRY_BUDGET = 1500
MAX_TRIES = 8
#: Matrices with more non-zero weights than this are solved in rounds: every pattern within
#: ``WINDOW`` of the best weight that shares no variable with a better one of the round is
#: substituted at once (:func:`rtl4ml.cmvm.cse._solve_once`), which halves the time of a
#: 256x256 layer for 0.07 % more adder bits. At 4096 no 64x64 or smaller matrix (the jet
#: MLP's largest layers have 2048 weights) is affected: they keep the greedy's exact choices.
EXACT_WEIGHTS = 4096
WINDOW = 3


def solve_cse(W: np.ndarray, inputs: Sequence[Wire], depth_slack: int | None = 1,
              tries: int | None = None, decompose: bool = True) -> AdderGraph:
    """Shift-and-add adder graph of ``x @ W`` with shared subexpressions (see module docstring).

    ``depth_slack``: adder levels allowed beyond the fewest that any output needs without
    sharing (``0`` keeps the CMVM as shallow as a plain balanced tree; more slack lets
    more subexpressions be shared for fewer adder bits; ``None``: no depth bound).
    ``tries``: greedy runs with different (seeded, so deterministic) tie-breaking among
    equally good patterns; the one with the fewest estimated adder bits is kept. By default
    small matrices get up to :data:`MAX_TRIES` and large ones one (``TRY_BUDGET`` terms).
    ``decompose``: also try rebuilding correlated columns from each other
    (:mod:`rtl4ml.cmvm.decompose`) and keep it where it is cheaper within the depth bound.
    Above :data:`EXACT_WEIGHTS` non-zero weights, patterns are substituted in rounds.
    """
    W = np.asarray(W, dtype=np.float64)
    n_in = W.shape[0]
    if len(inputs) != n_in:
        raise ValueError(f"{n_in} matrix rows but {len(inputs)} input wires")
    if depth_slack is not None and depth_slack < 0:
        raise ValueError(f"depth_slack must be >= 0 or None, got {depth_slack}")
    rep_cols, alias = _unique_columns(W)
    terms = weight_terms(W[:, rep_cols]) if rep_cols else []
    for ts in terms:
        if any(not -_OFF <= s < _OFF for _, s, _ in ts):
            raise ValueError("weight exponents out of the supported range (|shift| < 512)")
    total = sum(len(t) for t in terms)
    if tries is None:
        tries = max(1, min(MAX_TRIES, TRY_BUDGET // max(total, 1)))
    levels = None if depth_slack is None else max((max(len(t) - 1, 0).bit_length() for t in terms), default=0) + depth_slack
    window = WINDOW if np.count_nonzero(W) > EXACT_WEIGHTS else None
    best = None
    for k in range(max(int(tries), 1)):
        vs, roots = _solve_once(terms, inputs, levels, jitter=k, window=window)
        bits = vs.cost
        if best is None or bits < best[0]:
            best = (bits, vs, roots)
    if decompose and len(rep_cols) >= 3:
        found = solve_decomposed(W[:, rep_cols], inputs, levels, best[0], window)
        if found is not None:
            best = found
    _, vs, roots = best
    outputs: list[tuple[int, int, bool] | None] = []
    for al in alias:
        if al is None:
            outputs.append(None)
            continue
        node, shift, neg = roots[al[0]]
        outputs.append((node, shift + al[1], neg ^ al[2]))
    return AdderGraph(n_in, tuple(vs.ops), tuple(outputs))


#: Registered CMVM solvers: ``name -> solver(W, input_wires, **options) -> AdderGraph``.
SOLVERS: dict[str, Callable[..., AdderGraph]] = {"plain": solve_plain, "cse": solve_cse}



def solve_cmvm(W: np.ndarray, inputs: Sequence[Wire], method: str = "cse", **options) -> AdderGraph:
    """Solve ``x @ W`` for inputs with wire types ``inputs`` with the named method."""
    try:
        solver = SOLVERS[method]
    except KeyError:
        raise ValueError(f"unknown CMVM method {method!r}; available: {sorted(SOLVERS)}") from None
    return solver(np.asarray(W, dtype=np.float64), inputs, **options)
