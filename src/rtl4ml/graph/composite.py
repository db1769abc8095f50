"""Functions built from several ops: softmax, leaky ReLU, clamp, mean, squared error.

They only add nodes with a :class:`~rtl4ml.graph.graph.GraphBuilder`, so they need no
lowering or emulation of their own, and every frontend (PyTorch modules, rtl4ml.nn layers,
ONNX) shares them.

Softmax, for ``n`` values along an axis (every step is a table or exact arithmetic):

1. ``v = max(x) - x`` (exact, and ``v >= 0``, which a ReLU tells the interval analysis at
   the cost of a few gates: the table then covers half the codes), quantized to the unsigned
   ``input_type`` (rounds to nearest and saturates: values above its maximum ``R`` become ``R``);
2. ``e = exp(-v)`` by a table with entries in ``exp_type`` (``e = 1`` exactly for the maximum);
3. ``s = sum(e)`` (exact), quantized to ``sum_type``;
4. ``r = 1 / s`` by a table in ``recip_type``;
5. ``y = e * r`` quantized to ``out_type``.

:func:`softmax_error_bound` gives a bound on ``|y - softmax(x)|`` that holds for every input;
its derivation is in ``docs/layers.md``.
"""

from __future__ import annotations

import math

import numpy as np

from ..fixed import FixedType, parse_type


def _t(t):
    """A type string as a FixedType; FixedTypes and per-element FixedTypeArrays as they are."""
    return parse_type(t) if isinstance(t, str) else t


def softmax_types(n: int, input_type=None, exp_type=None, sum_type=None, recip_type=None, out_type=None
                  ) -> dict[str, FixedType]:
    """The default types of a softmax over ``n`` values, with any given ones in their place."""
    int_bits = max(1, math.ceil(math.log2(n + 1)))
    return {
        "input_type": _t(input_type or "ufixed<9,3,RND,SAT>"),       # [0, 8) in steps of 2^-6: 512 entries
        "exp_type": _t(exp_type or "ufixed<10,1,RND,SAT>"),          # [0, 1] in steps of 2^-9
        "sum_type": _t(sum_type or f"ufixed<{min(int_bits + 7, 12)},{int_bits},RND,SAT>"),   # a 12-bit table at most
        "recip_type": _t(recip_type or "ufixed<10,1,RND,SAT>"),
        "out_type": _t(out_type or "ufixed<8,0,RND,SAT>"),
    }


def _half_step(t: FixedType) -> float:
    """Largest rounding error of ``t`` (a full step for truncation)."""
    step = 2.0 ** -t.fraction
    return step / 2 if t.rounding != "TRN" else step


def softmax_error_bound(n: int, **types) -> float:
    """A bound on ``|y_i - softmax(x)_i|`` for the softmax of :func:`softmax_types`.

    With ``E_i = exp(d_i)`` and ``S = sum E_i >= 1`` (the maximum contributes 1): the table
    input's rounding changes ``E_i`` by a factor within ``1 ± a``, ``a = exp(h_d) - 1``; each
    entry adds at most ``h_e``, and saturation at ``R`` at most ``exp(-R)``, so ``e_i`` is within
    ``a E_i + c`` of ``E_i`` (``c = h_e + exp(-R)``) and ``s`` within ``a S + n c + h_s`` of ``S``.
    Then ``|e_i / s - E_i / S| <= (2 a S + (n + 1) c + h_s) / (S (1 - a) - n c - h_s)``, largest at
    ``S = 1``; the reciprocal's entry adds ``e_i h_r`` and the output rounding ``h_o`` (``h_x``:
    the largest rounding error of each type, doubled where a saturating type's top is reached).
    """
    t = softmax_types(n, **types)
    h_d, h_e, h_s, h_r = (_half_step(t[k]) for k in ("input_type", "exp_type", "sum_type", "recip_type"))
    h_o = 2.0 ** -t["out_type"].fraction    # rounding, or saturation just below 1
    R = float(t["input_type"].max_value)
    a = math.expm1(h_d)
    c = h_e + math.exp(-R)
    denom = 1 - a - n * c - h_s
    if denom <= 0:
        return 1.0
    return (2 * a + (n + 1) * c + h_s) / denom + (1 + a + c) * h_r + h_o


def softmax(g, x: str, axis: int = -1, name: str = "softmax", argmax_only: bool = False, **types) -> str:
    """Nodes computing the softmax of ``x`` along ``axis`` (see the module docstring); with
    ``argmax_only`` the index of the largest element instead (softmax is monotonic)."""
    shape = g.shape(x)
    ax = axis % len(shape)
    if argmax_only:
        return g.argmax(x, ax, name=f"{name}_argmax")
    t = softmax_types(shape[ax], **types)
    m = g.reduce(x, "max", ax, keepdims=True, name=f"{name}_max")
    v = g.relu(g.sub(m, x, name=f"{name}_shift"), name=f"{name}_nonneg")
    e = g.lookup(g.quantize(v, t["input_type"], shape, name=f"{name}_v"), "exp_neg", t["exp_type"], name=f"{name}_exp")
    s = g.quantize(g.reduce(e, "sum", ax, keepdims=True, name=f"{name}_sum"), t["sum_type"],
                   shape[:ax] + (1,) + shape[ax + 1:], name=f"{name}_sum_q")
    r = g.lookup(s, "reciprocal", t["recip_type"], name=f"{name}_recip")
    return g.quantize(g.mul(e, r, name=f"{name}_mul"), t["out_type"], shape, name=name)


def leaky_relu(g, x: str, slope: float, slope_type="ufixed<10,0,RND,SAT>", name: str = "leaky_relu") -> str:
    """``max(x, slope * x)`` for ``0 <= slope < 1`` (slope quantized to ``slope_type``;
    exact when it is a power of two)."""
    if not 0 <= slope < 1:
        raise ValueError(f"{name}: leaky ReLU slope must be in [0, 1), got {slope}")
    scaled = g.affine(x, np.array(slope), np.array(0.0), name=f"{name}_scale", scale_type=_t(slope_type))
    return g.maximum(x, scaled, name=name)


def clamp(g, x: str, lo: float | None, hi: float | None, name: str = "clamp") -> str:
    """``min(max(x, lo), hi)`` with exact constants (Hardtanh, ReLU6); bounds must be
    representable exactly (dyadic), which the constant node checks."""
    if lo is not None:
        x = g.maximum(x, g.constant(np.array([lo]), name=f"{name}_lo"), name=f"{name}_max" if hi is not None else name)
    if hi is not None:
        x = g.minimum(x, g.constant(np.array([hi]), name=f"{name}_hi"), name=name)
    return x


def mean(g, x: str, axes, keepdims: bool = False, scale_type="fixed<16,1,RND,SAT>", name: str = "mean") -> str:
    """Sum over ``axes`` then times ``1/count`` (exact for a power-of-two count; otherwise
    ``1/count`` quantized to ``scale_type``)."""
    axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
    shape = g.shape(x)
    count = int(np.prod([shape[a] for a in axes]))
    s = g.reduce(x, "sum", axes, keepdims=keepdims, name=f"{name}_sum")
    return scale(g, s, 1.0 / count, scale_type, name)


def scale(g, x: str, factor: float, scale_type="fixed<16,1,RND,SAT>", name: str = "scale") -> str:
    """``x * factor`` for a constant ``factor``: exact when it is a power of two, otherwise
    quantized to ``scale_type``."""
    m, e = math.frexp(factor)
    if m == 0.5 or m == -0.5:   # a power of two: the shift is free and exact
        scale_type = None
    return g.affine(x, np.array(factor), np.array(0.0), name=name,
                    scale_type=None if scale_type is None else _t(scale_type))


def squared_error(g, x: str, y: str, axes=None, name: str = "squared_error") -> str:
    """``sum((x - y)**2)`` over ``axes`` (all axes by default): an autoencoder's anomaly score."""
    d = g.square(g.sub(x, y, name=f"{name}_diff"), name=f"{name}_sq")
    axes = tuple(range(len(g.shape(d)))) if axes is None else axes
    return g.reduce(d, "sum", axes, name=name)
