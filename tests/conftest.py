"""Shared test helpers: random graphs with random types, and inputs at type boundaries."""

from __future__ import annotations

import numpy as np
import pytest

from rtl4ml.fixed import FixedType, FixedTypeArray, quantize
from rtl4ml.graph import Graph, GraphBuilder

ROUNDINGS = ("TRN", "RND", "RND_CONV")
OVERFLOWS = ("WRAP", "SAT", "SAT_SYM")


def random_type(rng: np.random.Generator, max_width: int = 16, allow_unsigned: bool = True,
                rounding: str = "TRN", overflow: str = "WRAP") -> FixedType:
    """A type of width 1..max_width with a fraction that may be negative or exceed the width."""
    signed = bool(rng.integers(2)) if allow_unsigned else True
    width = int(rng.integers(1, max_width + 1))
    fraction = int(rng.integers(-3, width + 4))
    return FixedType(signed, width - int(signed) - fraction, fraction, rounding, overflow)


def random_types(rng, n: int, max_width: int = 16, per_element: bool = True, **kw) -> FixedTypeArray:
    if not per_element:
        return FixedTypeArray.full(random_type(rng, max_width, **kw), (n,))
    ts = [random_type(rng, max_width, **kw) for _ in range(n)]
    return FixedTypeArray(np.array([t.signed for t in ts]), np.array([t.integer for t in ts]),
                          np.array([t.fraction for t in ts]), ts[0].rounding, ts[0].overflow)


def random_mlp(rng: np.random.Generator, max_in: int = 8, max_layers: int = 3, max_input_width: int = 16,
               max_weight_width: int = 8) -> Graph:
    """A random dense network: random sizes, per-element input types, random quantizers.

    Weights include exact zeros (pruning) and powers of two; quantizers use every
    rounding and overflow mode and may have negative fraction bits.
    """
    g = GraphBuilder()
    n = int(rng.integers(1, max_in + 1))
    x = g.input(random_types(rng, n, max_input_width, per_element=bool(rng.integers(2))))
    for _ in range(int(rng.integers(1, max_layers + 1))):
        m = int(rng.integers(1, 9))
        wt = random_type(rng, max_weight_width, rounding="RND", overflow="SAT")
        w = quantize(rng.normal(scale=2.0 ** wt.integer, size=(n, m)), wt)
        w[rng.random((n, m)) < 0.15] = 0.0
        b = quantize(rng.normal(scale=4, size=m), wt) if rng.integers(2) else np.zeros(m)
        x = g.dense(x, w, b)
        n = m
        if rng.integers(2):
            x = g.relu(x)
        if rng.integers(3):
            qt = random_types(rng, n, 14, per_element=bool(rng.integers(2)), rounding=str(rng.choice(ROUNDINGS)),
                              overflow=str(rng.choice(OVERFLOWS)))
            x = g.quantize(x, qt)
    return g.build(x)


def boundary_inputs(types: FixedTypeArray, n: int, rng: np.random.Generator, overshoot: bool = False) -> np.ndarray:
    """Float inputs mixing each element's min, max, 0, one step inside the ends, and random values.

    With ``overshoot``, some values lie outside the type so input quantization wraps/saturates.
    Returns shape (n, *types.shape).
    """
    shape = types.shape
    lo = np.ldexp(types.min_q.astype(np.float64), -types.fraction).reshape(-1)
    hi = np.ldexp(types.max_q.astype(np.float64), -types.fraction).reshape(-1)
    step = np.ldexp(1.0, -types.fraction).reshape(-1)
    choices = np.stack([lo, hi, np.zeros_like(lo), np.minimum(lo + step, hi), np.maximum(hi - step, lo),
                        rng.uniform(lo, hi + step, size=lo.shape)])
    pick = rng.integers(0, len(choices), size=(n, len(lo)))
    x = np.take_along_axis(choices.T, pick.T, axis=1).T.copy()
    x += rng.uniform(0, 1, size=x.shape) * step * (rng.random(x.shape) < 0.3)  # off-grid values too
    if overshoot:
        span = hi - lo + step
        x += np.where(rng.random(x.shape) < 0.1, rng.choice([-1.0, 1.0], size=x.shape) * span, 0.0)
    return x.reshape((n,) + tuple(shape))


def near_quantization_steps(rng: np.random.Generator, x: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Each value of ``x`` kept, or moved to its grid point (``f`` fractional bits), the half-LSB tie
    above it, or one float64 ulp either side of that tie (chosen at random per element)."""
    grid = np.ldexp(np.round(np.ldexp(x, f)), -f)
    tie = grid + np.ldexp(0.5, -f)
    k = rng.integers(0, 5, x.shape)
    return np.select([k == 0, k == 1, k == 2, k == 3], [x, grid, tie, np.nextafter(tie, np.inf)],
                     np.nextafter(tie, -np.inf))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
