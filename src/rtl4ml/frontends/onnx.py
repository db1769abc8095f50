"""ONNX and QONNX frontend: an ``onnx.ModelProto`` (or a ``.onnx`` file) to a Graph.

Each node of the ONNX graph is translated by the table :data:`OPS` (one handler per
``op_type``). Tensors are batch-first in ONNX and channels-first for convolutions, as in
rtl4ml; Graph shapes exclude the batch. A node whose inputs are all constants
(initializers, ``Constant`` nodes, or other constant nodes, e.g. a weight through a
``Quant``) is evaluated in numpy at conversion time with float64 arithmetic.

QONNX quantizers (Brevitas, FINN):

- ``Quant(x, scale, zeropt, bitwidth; signed, narrow, rounding_mode)`` with a power-of-two
  ``scale`` (per tensor or per channel) is a fixed-point ``Quantize`` with ``2**-f = scale``,
  saturating to ``[min_int - zeropt, max_int - zeropt]`` (an integer zero-point only shifts
  the clamp range, since ``round(x/s + z) - z = round(x/s)`` for integer ``z``; a range that is
  not a two's-complement range gets exact ``Maximum`` / ``Minimum`` clamps). ``rounding_mode``
  ``ROUND`` / ``HALF_EVEN`` is RND_CONV (half to even), ``FLOOR`` is TRN, ``CEIL`` is
  ``-floor(-x)``; other modes are refused. A signed 1-bit ``Quant`` and ``BipolarQuant`` are
  the sign (``+scale`` for ``x >= 0``, else ``-scale``).
- A non-power-of-two ``scale`` on a variable tensor is folded exactly into a lookup table
  when the tensor has at most 2**12 codes (the table holds the exact ``round(x/s) * s``);
  otherwise it is refused naming the node and the value. On constants (weights) it is
  evaluated; the weights are then taken exactly when they are short binary fractions, else
  rounded to ``weight_type``, else refused.
- ``Trunc`` (versions 1 and 2 of the QONNX spec) rounds to the coarser power-of-two scale.
- A ``Sigmoid`` / ``Tanh`` read only by a ``Quant`` of constant power-of-two parameters
  (Brevitas' ``QuantSigmoid`` / ``QuantTanh``) is one table holding the ``Quant`` of the exact
  function: rounded once, as QONNX does, not first to ``activation_type``.
- ``QuantizeLinear`` / ``DequantizeLinear`` with power-of-two scales and integer zero points.

Model inputs: ``input_type`` (a type string, a FixedTypeArray, or a dict by input name); when
it is not given and the first node reading an input is a ``Quant`` or a ``QuantizeLinear``
whose range is a plain fixed-point type, that type is the input type (and the quantizer is
the input quantization).
Weights that are not short binary fractions take ``weight_type`` / ``bias_type`` (a type
string or a dict by ONNX node name), as for the PyTorch frontend.

Model files are read with ``onnx.load`` (protobuf, never pickle).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np

from ..fixed import FixedPointError, FixedType, FixedTypeArray, as_type_array, parse_type
from ..graph import Graph, GraphBuilder
from ..graph.composite import softmax as softmax_nodes
from ..graph.graph import Node
from ..graph.ops.base import GraphError
from ..graph.ops.lookup import FUNCTIONS, MAX_TABLE_BITS
from ..passes.graph_passes import run_passes
from ..torch_common import ConversionError
from .params import exact_or_typed, first_bad, option_type, refuse_unused_entries

try:  # onnx is an optional extra
    import onnx
    from onnx import numpy_helper
except ImportError:  # pragma: no cover - exercised only without the extra
    onnx = numpy_helper = None

TYPE_OPTIONS = ("weight_type", "bias_type", "result_type", "activation_type", "table_input_type")
QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas", "finn")
DEFAULT_ACTIVATION_TYPES = {"sigmoid": "ufixed<8,0,RND,SAT>", "tanh": "fixed<8,1,RND,SAT>"}
ROUNDING = {"ROUND": "RND_CONV", "HALF_EVEN": "RND_CONV", "FLOOR": "TRN", "CEIL": "CEIL"}


def _require_onnx() -> None:
    if onnx is None:
        raise ImportError("the ONNX frontend needs onnx: pip install 'rtl4ml[onnx]'")


class Var:
    """A tensor of the Graph (its node); ``pending`` for a model input not created yet."""

    def __init__(self, node: str | None, input_name: str | None = None, shape=None) -> None:
        self.node = node
        self.input_name = input_name
        self.shape = shape   # sample shape of a pending input


def _pow2_exponent(s: np.ndarray):
    """``e`` with ``s == 2**e`` element-wise (int64 array), or None if some element is not a positive power of two."""
    s = np.asarray(s, dtype=np.float64)
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        return None
    m, e = np.frexp(s)
    if np.any(m != 0.5):
        return None
    return (e - 1).astype(np.int64)


def _sanitize(name: str) -> str:
    s = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_")
    if not s or s[0].isdigit():
        s = "n_" + s
    return s


class _Context:
    def __init__(self, model, options: dict) -> None:
        self.model = model
        self.options = options
        self.builder = GraphBuilder()
        self.values: dict[str, object] = {}   # ONNX tensor name -> Var or np.ndarray
        self.used: dict[str, set[str]] = {o: set() for o in TYPE_OPTIONS}
        self.used_options: set[str] = set()
        self.input_types: dict = {}
        self.inputs: list[Var] = []
        self.qdq: dict[str, tuple] = {}       # QuantizeLinear output -> (value node, scale, zero point)
        self.readers: dict[str, list] = {}    # ONNX tensor name -> the nodes reading it (None: a graph output)
        self.fused: set[str] = set()           # outputs of Quant nodes already folded into the table before them
        self.node = None                       # the ONNX node being translated
        self.what = ""
        self.name = ""

    # ------------------------------------------------------------------ messages

    def error(self, message: str) -> ConversionError:
        return ConversionError(f"{self.what}: {message}" if self.what else message)

    # ------------------------------------------------------------------ options

    def type_for(self, option: str, required: bool = False):
        self.used_options.add(option)
        spec = self.options.get(option)
        if required and isinstance(spec, dict) and self.node.name not in spec and self.name not in spec:
            raise self.error(f"{option} has no entry for this node (its keys: {sorted(spec)})")
        return option_type(self.options, option, (self.node.name, self.name), self.used, self.error)

    # ------------------------------------------------------------------ values

    def tensor(self, v, what: str = "its input") -> str:
        """The Graph node of a variable value (creating a pending model input)."""
        if isinstance(v, np.ndarray):
            raise self.error(f"{what} is a constant where rtl4ml needs a tensor computed from the model's inputs")
        if v.node is None:
            self._create_input(v, None)
        return v.node

    def _create_input(self, v: Var, types) -> None:
        if types is None:
            spec = self.input_types.get(v.input_name)
            if spec is None:
                raise ConversionError(
                    f"input {v.input_name!r}: input_type is required (e.g. input_type='fixed<16,6>'), unless the first "
                    f"node reading it is a QONNX Quant or a QuantizeLinear whose range is a fixed-point type "
                    f"(here: {self.what})")
            try:
                types = as_type_array(spec if isinstance(spec, FixedTypeArray) else parse_type(spec), v.shape)
            except FixedPointError as e:
                raise ConversionError(f"input_type for input {v.input_name!r}: {e}") from None
        v.node = self.builder.input(types, name=_sanitize(v.input_name))

    def shape(self, v) -> tuple[int, ...]:
        if isinstance(v, np.ndarray):
            return v.shape
        if v.node is None:
            return v.shape
        return self.builder.shape(v.node)

    def const_operand(self, c: np.ndarray, rank: int) -> np.ndarray:
        """A constant broadcast against a batch-first tensor of ``rank`` dims, without the batch axis."""
        c = np.asarray(c, dtype=np.float64)
        if c.ndim == rank:
            if c.shape[0] != 1:
                raise self.error(f"a constant of shape {c.shape} varies along the batch axis")
            c = c[0]
        elif c.ndim > rank:
            raise self.error(f"a constant of shape {c.shape} has more dimensions than the tensor it meets ({rank})")
        return c.reshape((1,) * (rank - 1 - c.ndim) + c.shape) if rank > 1 else c

    def exact(self, values: np.ndarray, what: str, option: str = "weight_type"):
        """``(values, None)`` when every value is a short binary fraction, else ``(values, type)``
        with the node's ``option``; refuses (naming the value) when there is none."""
        return exact_or_typed(values, what, option, self.type_for, self.error, self.node.name,
                              "quantize it in the model (a QONNX Quant with a power-of-two scale)")

    def constant_node(self, c: np.ndarray, rank: int, name: str) -> str:
        c = self.const_operand(c, rank)
        v, t = self.exact(c, "a constant operand")
        return self.builder.constant(v, type=t, name=name)


def _attrs(node) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _s(v):
    return v.decode() if isinstance(v, bytes) else v


# --------------------------------------------------------------------------- constants in numpy

def _qonnx_round(mode: str) -> Callable:
    m = mode.upper()
    table = {"ROUND": np.round, "HALF_EVEN": np.round, "CEIL": np.ceil, "FLOOR": np.floor, "DOWN": np.fix,
             "UP": lambda x: np.sign(x) * np.ceil(np.abs(x)),
             "HALF_UP": lambda x: np.sign(x) * np.floor(np.abs(x) + 0.5),
             "HALF_DOWN": lambda x: np.sign(x) * np.ceil(np.abs(x) - 0.5)}
    if m not in table:
        raise ValueError(f"unknown rounding_mode {mode!r}")
    return table[m]


def int_range(signed: bool, narrow: bool, bits: int) -> tuple[int, int]:
    """QONNX's ``min_int`` / ``max_int``."""
    if signed:
        return -(2 ** (bits - 1)) + (1 if narrow else 0), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - (2 if narrow else 1)


def quant_numpy(x, scale, zeropt, bits, signed, narrow, mode):
    """The QONNX ``Quant`` (IntQuant) semantics in float64."""
    y = np.asarray(x, np.float64) / scale + zeropt
    if bits == 1 and signed:
        y = np.where(y >= 0, 1.0, -1.0)
    else:
        lo, hi = int_range(signed, narrow, int(bits))
        y = _qonnx_round(mode)(np.clip(y, lo, hi))
    return (y - zeropt) * scale


# --------------------------------------------------------------------------- the translation


def _get(ctx: _Context, name: str):
    if name == "":
        return None
    if name not in ctx.values:
        raise ctx.error(f"reads {name!r}, which no node, input or initializer defines")
    return ctx.values[name]


def _const(ctx: _Context, v, what: str) -> np.ndarray:
    if not isinstance(v, np.ndarray):
        raise ctx.error(f"{what} must be a constant (an initializer), not a tensor computed from the inputs "
                        "(dynamic parameters are not supported)")
    return v


def _scalar_int(ctx, v, what: str) -> int:
    a = _const(ctx, v, what)
    if a.size != 1 or float(a.flat[0]) != int(a.flat[0]) or int(a.flat[0]) < 1:
        raise ctx.error(f"{what} must be one positive integer, got {a.tolist()!r}")
    return int(a.flat[0])


def _rank(ctx, v) -> int:
    return len(ctx.shape(v)) + 1


def _per_element(ctx, c: np.ndarray, x_shape: tuple[int, ...], what: str) -> np.ndarray:
    """A scale or zero point broadcast to the sample shape of ``x``."""
    a = ctx.const_operand(c, len(x_shape) + 1)
    try:
        return np.broadcast_to(a, x_shape).copy()
    except ValueError:
        raise ctx.error(f"{what} of shape {np.shape(c)} does not broadcast to the tensor (N, "
                        f"{', '.join(map(str, x_shape))})") from None


def _type_for_range(lo: np.ndarray, hi: np.ndarray, f: np.ndarray, rounding: str, overflow: str = "SAT"):
    """Per-element types of fraction ``f`` whose codes cover ``[lo, hi]`` (int arrays)."""
    signed = lo < 0
    mag = np.maximum(np.where(lo < 0, -lo - 1, 0), hi)
    bits = np.array([int(m).bit_length() for m in mag.flat], dtype=np.int64).reshape(mag.shape)
    return FixedTypeArray(signed, bits - f, f, rounding, overflow)


def _natural(t: FixedTypeArray) -> tuple[np.ndarray, np.ndarray]:
    m = (t.integer + t.fraction).astype(object)
    hi = np.array([(1 << int(k)) - 1 for k in m.flat], dtype=object).reshape(m.shape)
    lo = np.where(t.signed, -hi - 1, 0)
    return lo, hi


def _quantize_pow2(ctx, x: str, f: np.ndarray, lo: np.ndarray, hi: np.ndarray, mode: str, name: str) -> str:
    """``clamp(round_mode(x * 2**f), lo, hi) * 2**-f`` (per element, exact)."""
    b = ctx.builder
    if mode == "CEIL":   # ceil(v) = -floor(-v)
        neg = b.affine(x, np.array(-1.0), np.array(0.0), name=f"{name}_neg")
        q = _quantize_pow2(ctx, neg, f, -hi, -lo, "TRN", f"{name}_floor")
        return b.affine(q, np.array(-1.0), np.array(0.0), name=name)
    t = _type_for_range(lo, hi, f, mode)
    nlo, nhi = _natural(t)
    clamp_lo, clamp_hi = np.any(nlo != lo), np.any(nhi != hi)
    if clamp_lo and t.signed.all() and np.all(nlo + 1 == lo) and np.all(nhi == hi) and np.all(-lo == hi):
        t = FixedTypeArray(t.signed, t.integer, t.fraction, mode, "SAT_SYM")   # narrow signed range
        clamp_lo = False
    q = b.quantize(x, t, name=name if not (clamp_lo or clamp_hi) else f"{name}_q")
    scale = np.ldexp(1.0, -f)
    if clamp_lo:
        q = b.maximum(q, b.constant(lo.astype(np.float64) * scale, name=f"{name}_lo"),
                      name=name if not clamp_hi else f"{name}_max")
    if clamp_hi:
        q = b.minimum(q, b.constant(hi.astype(np.float64) * scale, name=f"{name}_hi"), name=name)
    return q


def _table_quant(ctx, x: str, scale: float, lo: int, hi: int, mode: str, name: str) -> str:
    """``rnd(clamp(x / scale, lo, hi)) * scale`` by a lookup table over ``x``'s codes, computed
    exactly in rationals: how a non-power-of-two scale folds exactly."""
    b = ctx.builder
    tt = b.types[x]
    n_codes = max(int(h) - int(lo_) + 1 for lo_, h in zip(tt.lo.flat, tt.hi.flat))
    if n_codes > 2 ** MAX_TABLE_BITS:
        raise ctx.error(f"scale {scale!r} is not a power of two; rtl4ml folds such a scale exactly only into a table "
                        f"over an input of at most 2**{MAX_TABLE_BITS} codes, and this input has {n_codes}; use a "
                        "power-of-two scale (e.g. Brevitas' *FixedPoint quantizers)")
    S = Fraction(scale)   # a float is a dyadic rational: the entries k * S are exact at S's fraction bits
    f = int(S.denominator).bit_length() - 1
    rnd = {"RND_CONV": round, "TRN": math.floor, "CEIL": math.ceil}[mode]
    m = S * (1 << f)      # an integer
    out_t = _type_for_range(np.array([int(min(lo * m, hi * m))], dtype=object),
                            np.array([int(max(lo * m, hi * m))], dtype=object), np.array([f]), "TRN")
    out_t = FixedType(bool(out_t.signed[0]), int(out_t.integer[0]), f, "TRN", "WRAP")

    def one(a: float) -> float:
        return float(S * rnd(min(max(Fraction(a) / S, lo), hi)))

    try:
        return b.lookup(x, np.vectorize(one, otypes=[np.float64]), out_t, name=name)
    except GraphError as e:
        raise ctx.error(str(e)) from None


def _quant(ctx: _Context, node, x, scale, zeropt, bitwidth, attrs):
    signed = bool(attrs.get("signed", 1))
    narrow = bool(attrs.get("narrow", 0))
    mode = _s(attrs.get("rounding_mode", "ROUND")).upper()
    scale = _const(ctx, scale, "the scale")
    zeropt = _const(ctx, zeropt, "the zero point")
    bits = _scalar_int(ctx, bitwidth, "the bit width")
    if isinstance(x, np.ndarray):
        try:
            return quant_numpy(x, scale, zeropt, bits, signed, narrow, mode)
        except ValueError as e:
            raise ctx.error(str(e)) from None
    if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
        raise ctx.error(f"scale {first_bad(scale, scale > 0)!r} is not positive")
    if np.any(zeropt != np.round(zeropt)):
        raise ctx.error(f"zero point {first_bad(zeropt, zeropt == np.round(zeropt))!r} is not an integer; only "
                        "integer zero points fold exactly into the clamp range")
    shape = ctx.shape(x)
    s = _per_element(ctx, scale, shape, "the scale")
    z = _per_element(ctx, zeropt, shape, "the zero point").astype(np.int64).astype(object)
    if bits == 1 and signed:
        return _bipolar(ctx, x, s, z)
    lo_i, hi_i = int_range(signed, narrow, bits)
    lo, hi = lo_i - z, hi_i - z
    if mode not in ROUNDING:
        raise ctx.error(f"rounding_mode {mode!r} is not supported; rtl4ml maps ROUND/HALF_EVEN (half to even), "
                        "FLOOR and CEIL")
    mode = ROUNDING[mode]
    e = _pow2_exponent(s)
    name = ctx.name
    if e is None:
        if np.unique(s).size != 1 or len({int(v) for v in np.ravel(z)}) != 1:
            raise ctx.error(f"scale {first_bad(s, _pow2_exponent_mask(s))!r} is not a power of two, and per-channel "
                            "non-power-of-two scales are not folded; use power-of-two scales")
        return Var(_table_quant(ctx, ctx.tensor(x), float(s.flat[0]), int(lo.flat[0]), int(hi.flat[0]),
                                mode, name))
    f = -e
    if _defines_input(ctx, x, f, lo, hi, mode):
        return x
    return Var(_quantize_pow2(ctx, ctx.tensor(x), f, lo, hi, mode, name))


def _defines_input(ctx, x, f: np.ndarray, lo: np.ndarray, hi: np.ndarray, mode: str) -> bool:
    """Make a model input that no ``input_type`` covers of the type of the quantizer reading it
    (codes ``[lo, hi]`` at fraction ``f``), when that range is a fixed-point type; then the
    quantizer is the input quantization itself. False when it is not such an input or range."""
    if not (isinstance(x, Var) and x.node is None and ctx.input_types.get(x.input_name) is None
            and mode != "CEIL"):
        return False
    t = _type_for_range(lo, hi, f, mode)
    nlo, nhi = _natural(t)
    if np.all(nlo == lo) and np.all(nhi == hi):
        ctx._create_input(x, t)
        return True
    if t.signed.all() and np.all(nlo + 1 == lo) and np.all(nhi == hi):
        ctx._create_input(x, FixedTypeArray(t.signed, t.integer, t.fraction, mode, "SAT_SYM"))
        return True
    return False


def _pow2_exponent_mask(s: np.ndarray) -> np.ndarray:
    m, _ = np.frexp(np.asarray(s, np.float64))
    return (m == 0.5) & (np.asarray(s) > 0)


def _bipolar(ctx, x, s: np.ndarray, z) -> Var:
    """``+s`` where ``x >= 0``, else ``-s``: floor-and-saturate to {-1, 0}, then ``2 s q + s``."""
    if np.any(np.asarray(z, dtype=np.int64) != 0):
        raise ctx.error("a bipolar (1-bit signed) quantizer with a non-zero zero point is not supported")
    b = ctx.builder
    xs = ctx.tensor(x)
    shape = b.shape(xs)
    q = b.quantize(xs, "fixed<1,1,TRN,SAT>", shape, name=f"{ctx.name}_sign")
    scale, shift = 2 * s, s
    _, t = ctx.exact(scale, "the scale")
    if t is not None:
        raise ctx.error(f"scale {first_bad(s, _pow2_exponent_mask(s))!r} of the bipolar quantizer is not a short "
                        "binary fraction")
    return Var(b.affine(q, scale, shift, name=ctx.name))


def _bipolar_quant(ctx, node, x, scale, attrs):
    scale = _const(ctx, scale, "the scale")
    if isinstance(x, np.ndarray):
        return np.where(x / scale >= 0, 1.0, -1.0) * scale
    if np.any(scale <= 0):
        raise ctx.error(f"scale {first_bad(scale, scale > 0)!r} is not positive")
    s = _per_element(ctx, scale, ctx.shape(x), "the scale")
    return _bipolar(ctx, x, s, np.zeros(s.shape, dtype=np.int64))


def _covering(ctx, x: str, f: np.ndarray, rounding: str) -> FixedTypeArray:
    """A WRAP type of fraction ``f`` wide enough for every value of ``x`` after rounding."""
    tt = ctx.builder.types[x]
    lo = np.empty(tt.shape, dtype=object)
    hi = np.empty(tt.shape, dtype=object)
    for k in np.ndindex(tt.shape):
        d = int(f[k]) - int(tt.fraction[k])
        lo[k] = (int(tt.lo[k]) << d) if d >= 0 else (int(tt.lo[k]) >> -d)
        hi[k] = (int(tt.hi[k]) << d) if d >= 0 else -((-int(tt.hi[k])) >> -d)
    return _type_for_range(lo, hi, f, rounding, "WRAP")


def _trunc(ctx, node, x, scale, zeropt, in_bits, *rest, attrs=None):
    attrs = attrs or {}
    mode = _s(attrs.get("rounding_mode", "FLOOR")).upper()
    scale = _const(ctx, scale, "the scale")
    zeropt = _const(ctx, zeropt, "the zero point")
    if np.any(zeropt != 0):
        raise ctx.error(f"zero point {first_bad(zeropt, zeropt == 0)!r}: Trunc with a non-zero zero point is not "
                        "supported")
    if mode not in ROUNDING:
        raise ctx.error(f"rounding_mode {mode!r} is not supported; rtl4ml maps ROUND/HALF_EVEN, FLOOR and CEIL")
    mode = ROUNDING[mode]
    v2 = len(rest) == 2
    if v2:
        out_scale, out_bits = _const(ctx, rest[0], "the output scale"), _scalar_int(ctx, rest[1], "the output bit width")
    else:
        out_bits = _scalar_int(ctx, rest[0], "the output bit width")
        k = _scalar_int(ctx, in_bits, "the input bit width") - out_bits
        out_scale = scale * 2.0 ** k
    if isinstance(x, np.ndarray):
        raise ctx.error("Trunc of a constant is not supported")
    shape = ctx.shape(x)
    s = _per_element(ctx, scale, shape, "the scale")
    so = _per_element(ctx, out_scale, shape, "the output scale")
    e, eo = _pow2_exponent(s), _pow2_exponent(so)
    if e is None or eo is None:
        bad = s if e is None else so
        raise ctx.error(f"scale {first_bad(bad, _pow2_exponent_mask(bad))!r} is not a power of two; Trunc needs "
                        "power-of-two scales")
    xs = ctx.tensor(x)
    b = ctx.builder
    r = b.quantize(xs, _covering(ctx, xs, -e, "RND_CONV"), name=f"{ctx.name}_in")   # round(x / scale)
    if v2:
        signed, narrow = bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
        lo, hi = int_range(signed, narrow, out_bits)
        lo_a = np.full(shape, lo, dtype=object)
        hi_a = np.full(shape, hi, dtype=object)
        return Var(_quantize_pow2(ctx, r, -eo, lo_a, hi_a, mode, ctx.name))
    if mode == "CEIL":
        raise ctx.error("rounding_mode 'CEIL' is not supported for Trunc version 1")
    q = b.quantize(r, _covering(ctx, r, -eo, mode), name=f"{ctx.name}_q")
    return Var(b.affine(q, np.ldexp(1.0, -(eo - e)), np.array(0.0), name=ctx.name))


def _qdq_params(ctx, scale, zp, what):
    scale = _const(ctx, scale, f"the {what} scale")
    z = np.zeros(1) if zp is None else _const(ctx, zp, f"the {what} zero point")
    return scale, z


_INT_RANGES = {np.dtype(t): (int(np.iinfo(t).min), int(np.iinfo(t).max))
               for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32)}


def _axis_shape(ctx, c: np.ndarray, axis: int, rank: int) -> np.ndarray:
    """A 1-D per-axis parameter (QuantizeLinear ``axis``) reshaped to broadcast along ``axis``."""
    if c.ndim != 1 or c.size == 1:
        return c.reshape(()) if c.size == 1 else c
    a = axis % rank
    return c.reshape((c.size,) + (1,) * (rank - 1 - a))


_QDQ_POW2 = ("scale {!r} is not a power of two; rtl4ml maps QuantizeLinear / DequantizeLinear of the model's "
             "tensors with power-of-two scales only (tools that choose float scales, such as "
             "onnxruntime.quantization, make such models; quantize with power-of-two scales, e.g. a Brevitas "
             "QONNX export with *FixedPoint quantizers)")


def _quantize_linear(ctx, node, x, scale, zp=None, attrs=None):
    attrs = attrs or {}
    dtype = zp.dtype if isinstance(zp, np.ndarray) else np.dtype(np.uint8)
    scale, z = _qdq_params(ctx, scale, zp, "QuantizeLinear")
    if dtype not in _INT_RANGES:
        raise ctx.error(f"output type {dtype} is not supported (int8/uint8/int16/uint16/int32/uint32)")
    tmin, tmax = _INT_RANGES[dtype]
    rank = len(np.shape(x)) if isinstance(x, np.ndarray) else _rank(ctx, x)
    scale = _axis_shape(ctx, scale, int(attrs.get("axis", 1)), rank)
    z = _axis_shape(ctx, z.astype(np.float64), int(attrs.get("axis", 1)), rank)
    if isinstance(x, np.ndarray):
        return np.clip(np.round(x / scale) + z, tmin, tmax)
    shape = ctx.shape(x)
    s = _per_element(ctx, scale, shape, "the scale")
    zz = _per_element(ctx, z, shape, "the zero point")
    e = _pow2_exponent(s)
    if e is None:
        raise ctx.error(_QDQ_POW2.format(first_bad(s, _pow2_exponent_mask(s))))
    zi = zz.astype(np.int64).astype(object)
    lo, hi = tmin - zi, tmax - zi
    if _defines_input(ctx, x, -e, lo, hi, "RND_CONV"):
        v = x.node
    else:
        v = _quantize_pow2(ctx, ctx.tensor(x), -e, lo, hi, "RND_CONV", f"{ctx.name}_value")
    q = ctx.builder.affine(v, np.ldexp(1.0, -e), zz, name=ctx.name)   # the integer q = v / s + zp
    out = Var(q)
    ctx.qdq[q] = (v, s, zz)
    return out


def _dequantize_linear(ctx, node, x, scale, zp=None, attrs=None):
    attrs = attrs or {}
    scale, z = _qdq_params(ctx, scale, zp, "DequantizeLinear")
    rank = len(np.shape(x)) if isinstance(x, np.ndarray) else _rank(ctx, x)
    scale = _axis_shape(ctx, scale, int(attrs.get("axis", 1)), rank)
    z = _axis_shape(ctx, z.astype(np.float64), int(attrs.get("axis", 1)), rank)
    if isinstance(x, np.ndarray):
        return (x.astype(np.float64) - z) * scale
    shape = ctx.shape(x)
    s = _per_element(ctx, scale, shape, "the scale")
    zz = _per_element(ctx, z, shape, "the zero point")
    xs = ctx.tensor(x)
    if xs in ctx.qdq:   # QuantizeLinear -> DequantizeLinear with the same parameters: its value node
        v, s0, z0 = ctx.qdq[xs]
        if np.array_equal(s0, s) and np.array_equal(z0, zz):
            return Var(v)
    if _pow2_exponent(s) is None:
        raise ctx.error(_QDQ_POW2.format(first_bad(s, _pow2_exponent_mask(s))))
    return Var(ctx.builder.affine(xs, s, -zz * s, name=ctx.name))


# --------------------------------------------------------------------------- layers


def _dense(ctx, x, w: np.ndarray, bias: np.ndarray | None) -> Var:
    xs = ctx.tensor(x)
    n_in, n_out = w.shape
    s = ctx.builder.shape(xs)
    if not s or s[-1] != n_in:
        raise ctx.error(f"expects {n_in} features on the last axis but receives a tensor of shape "
                        f"(N, {', '.join(map(str, s))})")
    b = np.zeros(n_out) if bias is None else np.broadcast_to(np.asarray(bias, np.float64).reshape(-1)
                                                             if np.size(bias) == n_out else bias, (n_out,))
    w, wt = ctx.exact(w, "the weight")
    b, bt = ctx.exact(b, "the bias", "bias_type")
    if wt is not None and bt is None and not np.all(b == 0):
        bt = ctx.type_for("bias_type") or wt
    try:
        out = ctx.builder.dense(xs, w, b, name=ctx.name, weight_type=wt, bias_type=bt)
    except GraphError as e:
        raise ctx.error(str(e)) from None
    return _result(ctx, out)


def _result(ctx, out: str) -> Var:
    rt = ctx.type_for("result_type")
    return Var(out if rt is None else ctx.builder.quantize(out, rt, name=f"{ctx.name}_result"))


def _gemm(ctx, node, a, b, c=None, attrs=None):
    attrs = attrs or {}
    if attrs.get("transA", 0):
        raise ctx.error("transA=1 is not supported (it would transpose the batch axis)")
    w = _const(ctx, b, "B (the weight)")
    if w.ndim != 2:
        raise ctx.error(f"expects a 2-D weight B, got shape {w.shape}")
    if attrs.get("transB", 0):
        w = w.T
    w = w * float(attrs.get("alpha", 1.0))
    bias = None
    if c is not None:
        bias = _const(ctx, c, "C (the bias)") * float(attrs.get("beta", 1.0))
        bias = np.broadcast_to(bias.reshape(-1) if bias.size == w.shape[1] else bias, (w.shape[1],))
    return _dense(ctx, a, w, bias)


def _matmul(ctx, node, a, b, attrs=None):
    if not isinstance(b, np.ndarray) or isinstance(a, np.ndarray):
        raise ctx.error("only x @ W with a constant 2-D W is supported (a product of two tensors is Mul)")
    if b.ndim != 2:
        raise ctx.error(f"x @ W needs a 2-D constant W, got shape {b.shape}")
    return _dense(ctx, a, b, None)


def _spatial_attrs(ctx, attrs, n: int):
    if _s(attrs.get("auto_pad", "NOTSET")) not in ("NOTSET", "VALID"):
        raise ctx.error(f"auto_pad={_s(attrs['auto_pad'])!r} is not supported; export with explicit pads")
    pads = list(attrs.get("pads", [0] * (2 * n)))
    if pads[:n] != pads[n:]:
        raise ctx.error(f"asymmetric pads {pads} are not supported")
    return (tuple(attrs.get("strides", [1] * n)), tuple(pads[:n]), tuple(attrs.get("dilations", [1] * n)))


def _conv(ctx, node, x, w, bias=None, attrs=None):
    attrs = attrs or {}
    w = _const(ctx, w, "the weight")
    n = w.ndim - 2
    stride, pad, dil = _spatial_attrs(ctx, attrs, n)
    b = np.zeros(w.shape[0]) if bias is None else _const(ctx, bias, "the bias")
    xs = ctx.tensor(x)
    w, wt = ctx.exact(w, "the weight")
    b, bt = ctx.exact(b, "the bias", "bias_type")
    if wt is not None and bt is None and not np.all(b == 0):
        bt = ctx.type_for("bias_type") or wt
    try:
        out = ctx.builder.conv(xs, w, b, stride, pad, dil, int(attrs.get("group", 1)), name=ctx.name,
                               weight_type=wt, bias_type=bt)
    except GraphError as e:
        raise ctx.error(str(e)) from None
    return _result(ctx, out)


def _pool(reduction: str):
    def handler(ctx, node, x, attrs=None):
        attrs = attrs or {}
        if attrs.get("ceil_mode", 0):
            raise ctx.error("ceil_mode=1 is not supported")
        kernel = tuple(attrs["kernel_shape"])
        stride, pad, dil = _spatial_attrs(ctx, attrs, len(kernel))
        xs = ctx.tensor(x)
        if reduction == "avg" and any(pad) and not attrs.get("count_include_pad", 0):
            raise ctx.error("AveragePool with pads and count_include_pad=0 is not supported (border windows "
                            "would divide by fewer elements)")
        try:
            out = ctx.builder.pool(xs, "max" if reduction == "max" else "sum", kernel, stride, pad, dil,
                                   name=ctx.name if reduction == "max" else f"{ctx.name}_sum")
        except GraphError as e:
            raise ctx.error(str(e)) from None
        if reduction == "max":
            return Var(out)
        return _scaled(ctx, out, int(np.prod(kernel)))
    return handler


def _scaled(ctx, x: str, count: int) -> Var:
    """``x / count``: exact for a power of two, else ``1/count`` rounded to ``weight_type``."""
    c = 1.0 / count
    _, t = ctx.exact(np.array(c), f"1/{count} (the average over {count} elements)")
    return Var(ctx.builder.affine(x, np.array(c), np.array(0.0), name=ctx.name, scale_type=t))


def _global_pool(reduction: str):
    def handler(ctx, node, x, attrs=None):
        xs = ctx.tensor(x)
        shape = ctx.builder.shape(xs)
        axes = tuple(range(1, len(shape)))
        if reduction == "max":
            return Var(ctx.builder.reduce(xs, "max", axes, keepdims=True, name=ctx.name))
        s = ctx.builder.reduce(xs, "sum", axes, keepdims=True, name=f"{ctx.name}_sum")
        return _scaled(ctx, s, int(np.prod(shape[1:])))
    return handler


def _batchnorm(ctx, node, x, scale, b, mean, var, attrs=None):
    attrs = attrs or {}
    gamma, beta = _const(ctx, scale, "the scale"), _const(ctx, b, "the bias")
    mu, v = _const(ctx, mean, "the mean"), _const(ctx, var, "the variance")
    s = gamma / np.sqrt(v + float(attrs.get("epsilon", 1e-5)))
    t = beta - mu * s
    xs = ctx.tensor(x)
    shape = ctx.builder.shape(xs)
    ps = (shape[0],) + (1,) * (len(shape) - 1)
    src = ctx.builder.nodes[-1] if ctx.builder.nodes else None
    foldable = (src is not None and src.name == xs and getattr(src.op, "weight_type", None) is not None)
    if foldable:   # the graph pass folds it into the layer before its weights are rounded
        return Var(ctx.builder.affine(xs, s.reshape(ps), t.reshape(ps), name=ctx.name))
    s, st = ctx.exact(s, "the BatchNorm scale")
    t, tt = ctx.exact(t, "the BatchNorm shift", "bias_type")
    if st is not None and tt is None:
        tt = ctx.type_for("bias_type") or st
    return Var(ctx.builder.affine(xs, s.reshape(ps), t.reshape(ps), name=ctx.name, scale_type=st, shift_type=tt))


# --------------------------------------------------------------------------- element-wise


def _binary(method: str, np_fn):
    def handler(ctx, node, a, b, attrs=None):
        if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
            return np_fn(a, b)
        rank = max(_rank(ctx, v) for v in (a, b) if not isinstance(v, np.ndarray))
        args = []
        for k, v in enumerate((a, b)):
            if isinstance(v, np.ndarray):
                args.append(ctx.constant_node(v, rank, f"{ctx.name}_c{k}"))
            else:
                if _rank(ctx, v) != rank:
                    raise ctx.error("operands with different numbers of dimensions would broadcast the batch axis "
                                    "against another axis")
                args.append(ctx.tensor(v))
        try:
            return Var(getattr(ctx.builder, method)(*args, name=ctx.name))
        except GraphError as e:
            raise ctx.error(str(e)) from None
    return handler


def _div(ctx, node, a, b, attrs=None):
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a / b
    if not isinstance(b, np.ndarray):
        raise ctx.error("divides by a tensor; only division by a constant is supported")
    if np.any(b == 0):
        raise ctx.error("divides by zero")
    return _binary("mul", np.multiply)(ctx, node, a, 1.0 / b)


def _relu(ctx, node, x, attrs=None):
    if isinstance(x, np.ndarray):
        return np.maximum(x, 0)
    return Var(ctx.builder.relu(ctx.tensor(x), name=ctx.name))


def _clip(ctx, node, x, lo=None, hi=None, attrs=None):
    attrs = attrs or {}
    lo = attrs.get("min") if lo is None else float(_const(ctx, lo, "min"))
    hi = attrs.get("max") if hi is None else float(_const(ctx, hi, "max"))
    v = x
    if lo is not None:
        v = _binary("maximum", np.maximum)(ctx, node, v, np.array(lo))
    if hi is not None:
        if lo is not None:
            ctx.name = f"{ctx.name}_hi"
        v = _binary("minimum", np.minimum)(ctx, node, v, np.array(hi))
    return v


def _leaky_relu(ctx, node, x, attrs=None):
    a = float((attrs or {}).get("alpha", 0.01))
    if not 0 <= a <= 1:
        raise ctx.error(f"alpha={a} outside [0, 1] is not supported")
    base = ctx.name
    ctx.name = f"{base}_slope"
    ax = _binary("mul", np.multiply)(ctx, node, x, np.array(a))
    ctx.name = base
    return _binary("maximum", np.maximum)(ctx, node, x, ax)


def _quant_reading(ctx, node):
    """The QONNX ``Quant`` that alone reads ``node``'s output, when its parameters are constants
    of one power-of-two scale, an integer zero point and 2+ bits: ``(node, scale, zeropt, bits,
    attrs)``, else None."""
    readers = ctx.readers.get(node.output[0], [])
    if len(readers) != 1 or readers[0] is None:
        return None
    q = readers[0]
    if q.op_type not in ("Quant", "IntQuant") or q.domain not in QONNX_DOMAINS or list(q.input[:1]) != [node.output[0]]:
        return None
    params = [ctx.values.get(i) for i in q.input[1:]]
    if len(params) != 3 or not all(isinstance(p, np.ndarray) and p.size == 1 for p in params):
        return None
    scale, zeropt, bits = (float(p.reshape(())) for p in params)
    attrs = _attrs(q)
    if (_s(attrs.get("rounding_mode", "ROUND")).upper() not in ROUNDING or _pow2_exponent(np.array(scale)) is None
            or zeropt != round(zeropt) or bits != round(bits) or bits < 2):
        return None
    return q, scale, zeropt, int(bits), attrs


def _table(function: str):
    def handler(ctx, node, x, attrs=None):
        xs = ctx.tensor(x)
        t_in = ctx.type_for("table_input_type")
        if t_in is not None:
            xs = ctx.builder.quantize(xs, t_in, name=f"{ctx.name}_in")
        t = ctx.type_for("activation_type")
        then = _quant_reading(ctx, node) if t is None else None
        if then is not None:   # f then Quant (Brevitas' QuantSigmoid, QuantTanh): one table, rounded once
            q, scale, zeropt, bits, qa = then
            signed, narrow = bool(qa.get("signed", 1)), bool(qa.get("narrow", 0))
            mode = _s(qa.get("rounding_mode", "ROUND"))
            lo, hi = (v - int(zeropt) for v in int_range(signed, narrow, bits))
            rt = _type_for_range(np.array([lo]), np.array([hi]), -_pow2_exponent(np.array([scale])), "TRN")
            t = FixedType(bool(rt.signed[0]), int(rt.integer[0]), int(rt.fraction[0]), "TRN", "SAT")
            fn = FUNCTIONS[function]

            def table(v):
                return quant_numpy(fn(v), scale, zeropt, bits, signed, narrow, mode)
            ctx.fused.add(q.output[0])
        else:
            table, t = function, t or DEFAULT_ACTIVATION_TYPES[function]
        try:
            out = Var(ctx.builder.lookup(xs, table, t, name=ctx.name))
            if then is not None:
                ctx.values[then[0].output[0]] = out
            return out
        except GraphError as e:
            raise ctx.error(f"{e}; pass table_input_type='fixed<...>' (or {{{ctx.node.name!r}: ...}}) to quantize "
                            "the table's input") from None
    return handler


def _softmax(ctx, node, x, attrs=None):
    xs = ctx.tensor(x)
    rank = _rank(ctx, x)
    axis = int((attrs or {}).get("axis", -1))
    a = axis % rank
    if a == 0:
        raise ctx.error("softmax over the batch axis is not supported")
    if ctx.model.opset < 13 and a != rank - 1:
        raise ctx.error(f"softmax of opset {ctx.model.opset} with axis={axis} flattens the trailing axes; only the "
                        "last axis is supported")
    try:
        return Var(softmax_nodes(ctx.builder, xs, a - 1, name=ctx.name, out_type=ctx.type_for("activation_type")))
    except GraphError as e:
        raise ctx.error(str(e)) from None


# --------------------------------------------------------------------------- shapes


def _batch_axis(ctx, axis: int, rank: int) -> int:
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank:
        raise ctx.error(f"axis {axis} is out of range for a tensor of {rank} dimensions")
    if a == 0:
        raise ctx.error("operates along the batch axis (axis 0); rtl4ml converts one sample at a time")
    return a - 1


def _reshape(ctx, node, x, shape, attrs=None):
    target = [int(d) for d in _const(ctx, shape, "the shape").reshape(-1)]
    if (attrs or {}).get("allowzero", 0) and 0 in target:
        raise ctx.error(f"shape {target} with allowzero=1 makes an empty axis")
    if isinstance(x, np.ndarray):
        return x.reshape([x.shape[i] if d == 0 else d for i, d in enumerate(target)])
    s = ctx.shape(x)
    size = int(np.prod(s))
    first, rest = target[0], target[1:]
    rest = [s[i] if d == 0 and i < len(s) else d for i, d in enumerate(rest)]
    if rest.count(-1) > 1:
        raise ctx.error(f"shape {target} has more than one -1")
    known = int(np.prod([d for d in rest if d != -1]))
    if -1 in rest:
        if first == -1 or known == 0 or size % known:
            raise ctx.error(f"cannot reshape a sample of shape {s} to {target} (the first size must be the batch)")
        rest[rest.index(-1)] = size // known
    if first not in (0, -1, 1, ctx.model.batch) or int(np.prod(rest)) != size:
        raise ctx.error(f"reshape to {target} does not keep the batch axis first and a sample's {size} elements")
    return Var(ctx.builder.reshape(ctx.tensor(x), tuple(rest), name=ctx.name))


def _flatten(ctx, node, x, attrs=None):
    axis = int((attrs or {}).get("axis", 1))
    if isinstance(x, np.ndarray):
        return x.reshape(int(np.prod(x.shape[:axis])), -1)
    s = ctx.shape(x)
    a = axis + len(s) + 1 if axis < 0 else axis
    if a == 0:
        raise ctx.error("Flatten with axis=0 merges the batch axis")
    out = s[:a - 1] + (int(np.prod(s[a - 1:])),) if a - 1 < len(s) else s + (1,)
    return Var(ctx.builder.reshape(ctx.tensor(x), tuple(out), name=ctx.name))


def _transpose(ctx, node, x, attrs=None):
    perm = list((attrs or {}).get("perm", []))
    if isinstance(x, np.ndarray):
        return np.transpose(x, perm or None)
    rank = _rank(ctx, x)
    perm = perm or list(reversed(range(rank)))
    if perm[0] != 0:
        raise ctx.error(f"permutation {perm} moves the batch axis")
    return Var(ctx.builder.transpose(ctx.tensor(x), tuple(p - 1 for p in perm[1:]), name=ctx.name))


def _axes_arg(ctx, attrs, axes):
    if axes is not None:
        return [int(a) for a in _const(ctx, axes, "the axes").reshape(-1)]
    return list(attrs.get("axes", []))


def _squeeze(ctx, node, x, axes=None, attrs=None):
    ax = _axes_arg(ctx, attrs or {}, axes)
    if isinstance(x, np.ndarray):
        return np.squeeze(x, tuple(ax) if ax else None)
    s = ctx.shape(x)
    drop = {_batch_axis(ctx, a, len(s) + 1) for a in ax} if ax else {i for i, d in enumerate(s) if d == 1}
    return Var(ctx.builder.reshape(ctx.tensor(x), tuple(d for i, d in enumerate(s) if i not in drop), name=ctx.name))


def _unsqueeze(ctx, node, x, axes=None, attrs=None):
    ax = _axes_arg(ctx, attrs or {}, axes)
    if isinstance(x, np.ndarray):
        return np.expand_dims(x, tuple(ax))
    out = list(ctx.shape(x))
    rank = len(out) + 1 + len(ax)
    for a in sorted(a + rank if a < 0 else a for a in ax):
        if a == 0:
            raise ctx.error("inserts an axis before the batch axis")
        out.insert(a - 1, 1)
    return Var(ctx.builder.reshape(ctx.tensor(x), tuple(out), name=ctx.name))


def _concat(ctx, node, *xs, attrs=None):
    axis = int((attrs or {}).get("axis", 0))
    if all(isinstance(v, np.ndarray) for v in xs):
        return np.concatenate(xs, axis=axis)
    if any(isinstance(v, np.ndarray) for v in xs):
        raise ctx.error("joins a constant with the model's tensors; a constant has no batch axis to join along")
    a = _batch_axis(ctx, axis, _rank(ctx, xs[0]))
    return Var(ctx.builder.concat([ctx.tensor(v) for v in xs], axis=a, name=ctx.name))


def _identity(ctx, node, x, *rest, attrs=None):
    return x


def _cast(ctx, node, x, attrs=None):
    to = int((attrs or {}).get("to", 1))
    if to not in (1, 10, 11):   # float, float16, double
        raise ctx.error(f"Cast to ONNX type {to} is not supported (only to floating point)")
    return x.astype(np.float64) if isinstance(x, np.ndarray) else x


def _constant(ctx, node, attrs=None):
    attrs = attrs or {}
    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"]).astype(np.float64)
    for k in ("value_float", "value_int"):
        if k in attrs:
            return np.array(attrs[k], dtype=np.float64)
    for k in ("value_floats", "value_ints"):
        if k in attrs:
            return np.array(list(attrs[k]), dtype=np.float64)
    raise ctx.error(f"Constant with attributes {sorted(attrs)} is not supported")


#: ``op_type -> handler(ctx, node, *inputs, attrs=dict)``; QONNX ops in any of QONNX_DOMAINS
OPS: dict[str, Callable] = {
    "Gemm": _gemm, "MatMul": _matmul, "Conv": _conv,
    "Relu": _relu, "Clip": _clip, "LeakyRelu": _leaky_relu,
    "Add": _binary("add", np.add), "Sub": _binary("sub", np.subtract), "Mul": _binary("mul", np.multiply),
    "Div": _div, "Max": _binary("maximum", np.maximum), "Min": _binary("minimum", np.minimum),
    "Sigmoid": _table("sigmoid"), "Tanh": _table("tanh"), "Softmax": _softmax,
    "MaxPool": _pool("max"), "AveragePool": _pool("avg"),
    "GlobalMaxPool": _global_pool("max"), "GlobalAveragePool": _global_pool("avg"),
    "BatchNormalization": _batchnorm,
    "Reshape": _reshape, "Flatten": _flatten, "Transpose": _transpose, "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze, "Concat": _concat, "Identity": _identity, "Dropout": _identity, "Cast": _cast,
    "Constant": _constant,
    "QuantizeLinear": _quantize_linear, "DequantizeLinear": _dequantize_linear,
    "Quant": lambda ctx, node, x, s, z, b, attrs=None: _quant(ctx, node, x, s, z, b, attrs or {}),
    "IntQuant": lambda ctx, node, x, s, z, b, attrs=None: _quant(ctx, node, x, s, z, b, attrs or {}),
    "BipolarQuant": lambda ctx, node, x, s, attrs=None: _bipolar_quant(ctx, node, x, s, attrs or {}),
    "Trunc": _trunc,
}
QONNX_OPS = ("Quant", "IntQuant", "BipolarQuant", "Trunc")


# --------------------------------------------------------------------------- driver


class _ModelInfo:
    def __init__(self, model) -> None:
        self.opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=13)
        self.batch = None


def _dims(vi) -> list:
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]


def load_onnx(path) -> "onnx.ModelProto":
    """Read an ONNX file (protobuf, never pickle); a clear error for anything else."""
    _require_onnx()
    path = Path(path)
    try:
        return onnx.load(str(path))
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - protobuf's DecodeError and friends
        raise ConversionError(f"{path}: cannot read it as an ONNX model ({type(e).__name__}: {e})") from None


def _renamed(graph: Graph, mapping: dict[str, str]) -> Graph:
    if all(k == v for k, v in mapping.items()):
        return graph
    taken = set(mapping.values())
    names = {n.name for n in graph.nodes} | taken
    full = dict(mapping)
    for n in graph.nodes:
        if n.name not in full and n.name in taken:
            k = 1
            while f"{n.name}_{k}" in names:
                k += 1
            full[n.name] = f"{n.name}_{k}"
            names.add(full[n.name])
    nodes = tuple(Node(full.get(n.name, n.name), n.op, tuple(full.get(i, i) for i in n.inputs)) for n in graph.nodes)
    return Graph(nodes, tuple(full.get(o, o) for o in graph.outputs))


def from_onnx(model, input_type=None, weight_type=None, bias_type=None, result_type=None, activation_type=None,
              table_input_type=None) -> Graph:
    """Convert an ONNX / QONNX model (an ``onnx.ModelProto``, or a path to a ``.onnx`` file) to a Graph.

    See the module docstring for the mapping of quantizers. ``input_type``: a type string or
    FixedTypeArray for all inputs, or a dict by ONNX input name (not needed for an input that
    a QONNX ``Quant`` reads first). ``weight_type`` / ``bias_type`` / ``result_type`` /
    ``activation_type`` / ``table_input_type``: a type string, or a dict by ONNX node name, as
    for :func:`rtl4ml.frontends.torch.from_torch`; an option no node uses is an error.
    """
    _require_onnx()
    source = None
    if isinstance(model, (str, Path)):
        source = Path(model)
        model = load_onnx(source)
    if not isinstance(model, onnx.ModelProto):
        raise ConversionError(f"expected an onnx.ModelProto or a path to a .onnx file, got {type(model).__name__}")
    where = f"{source}: " if source else ""
    try:
        return _convert(model, dict(input_type=input_type, weight_type=weight_type, bias_type=bias_type,
                                    result_type=result_type, activation_type=activation_type,
                                    table_input_type=table_input_type))
    except ConversionError as e:
        raise ConversionError(f"{where}{e}") from None


def _convert(model, options: dict) -> Graph:
    g = model.graph
    info = _ModelInfo(model)
    ctx = _Context(info, options)
    for init in g.initializer:
        a = numpy_helper.to_array(init)
        ctx.values[init.name] = a.astype(np.float64) if a.dtype.kind == "f" else a
    real_inputs = [vi for vi in g.input if vi.name not in ctx.values]
    names = [vi.name for vi in real_inputs]
    spec = options.get("input_type")
    if isinstance(spec, dict):
        unknown = sorted(set(spec) - set(names))
        if unknown:
            raise ConversionError(f"input_type names inputs the model does not have: {unknown} (its inputs: {names})")
        ctx.input_types = dict(spec)
    elif spec is not None:
        ctx.input_types = {n: spec for n in names}
    pending = []
    for vi in real_inputs:
        dims = _dims(vi)
        if dims is None or len(dims) < 2:
            raise ConversionError(f"input {vi.name!r} has shape {dims}: rtl4ml needs a static shape with the batch "
                                  "axis first, e.g. [N, 16]")
        if any(not isinstance(d, int) or d <= 0 for d in dims[1:]):
            raise ConversionError(f"input {vi.name!r} has a dynamic shape {dims}: only the first (batch) axis may be "
                                  "dynamic; export with a fixed sample shape")
        if isinstance(dims[0], int):
            info.batch = dims[0]
        v = Var(None, vi.name, tuple(dims[1:]))
        ctx.values[vi.name] = v
        pending.append(v)
        if vi.name in ctx.input_types and not _read_first_by_quant(g, vi.name):
            ctx._create_input(v, None)
    for node in g.node:
        for i in node.input:
            ctx.readers.setdefault(i, []).append(node)
    for vi in g.output:
        ctx.readers.setdefault(vi.name, []).append(None)
    for k, node in enumerate(g.node):
        if node.output and node.output[0] in ctx.fused:
            continue
        name = _sanitize(node.name or f"{node.op_type.lower()}_{k}")
        ctx.node, ctx.name = node, name
        ctx.what = f"node {node.name or name!r} ({node.op_type})"
        handler = OPS.get(node.op_type)
        known_domain = node.domain in ("", "ai.onnx") or (node.op_type in QONNX_OPS and node.domain in QONNX_DOMAINS)
        if handler is None or not known_domain:
            dom = f" of domain {node.domain!r}" if node.domain not in ("", "ai.onnx") else ""
            raise ConversionError(f"{ctx.what}: the op {node.op_type!r}{dom} is not supported; supported ops: "
                                  f"{', '.join(sorted(OPS))}")
        args = [_get(ctx, i) for i in node.input]
        while args and args[-1] is None:
            args.pop()
        if any(a is None for a in args):
            raise ctx.error("has an omitted optional input before a given one, which is not supported")
        attrs = _attrs(node)
        try:
            out = handler(ctx, node, *args, attrs=attrs)
        except TypeError as e:
            if "positional argument" in str(e):
                raise ctx.error(f"has {len(args)} inputs, which this op's translation does not take") from None
            raise
        except ConversionError:
            raise
        except (GraphError, FixedPointError) as e:
            raise ctx.error(str(e)) from None
        outs = [o for o in node.output if o]
        if node.op_type == "Dropout":
            outs = outs[:1]
        if len(outs) != 1:
            raise ctx.error(f"has {len(outs)} outputs; rtl4ml translates single-output nodes")
        ctx.values[outs[0]] = out
    ctx.node = None
    ctx.what = ""
    outputs = []
    for vi in g.output:
        v = _get(ctx, vi.name)
        if isinstance(v, np.ndarray):
            raise ConversionError(f"output {vi.name!r} is a constant, not computed from the inputs")
        if v.node is None:
            raise ConversionError(f"output {vi.name!r} is the model input {v.input_name!r} itself")
        outputs.append((vi.name, v.node))
    for v in pending:
        if v.node is None:
            raise ConversionError(f"the model's input {v.input_name!r} is not used")
    unused = [o for o in TYPE_OPTIONS if options.get(o) is not None and o not in ctx.used_options]
    if unused:
        raise ConversionError(f"{', '.join(unused)} given, but no node of this model uses it; remove the argument")
    refuse_unused_entries(options, ctx.used, TYPE_OPTIONS, "nodes")
    seen = set()
    for oname, n in outputs:
        if n in seen:
            raise ConversionError(f"output {oname!r} is the same tensor as an earlier output")
        seen.add(n)
    built = ctx.builder.build([n for _, n in outputs])
    order = {v.node: k for k, v in enumerate(pending)}
    from ..graph.ops import Input
    inputs = sorted((n for n in built.nodes if isinstance(n.op, Input)), key=lambda n: order[n.name])
    graph = run_passes(Graph(tuple(inputs) + tuple(n for n in built.nodes if not isinstance(n.op, Input)),
                             built.outputs))
    mapping = {}
    for oname, n in outputs:
        s = _sanitize(oname)
        mapping[n] = s if s not in mapping.values() else n
    return _renamed(graph, mapping)


def _read_first_by_quant(g, name: str) -> bool:
    for node in g.node:
        if name in node.input:
            return node.op_type in ("Quant", "IntQuant", "QuantizeLinear") and node.input[0] == name
    return False


__all__ = ["from_onnx", "load_onnx", "quant_numpy", "int_range", "OPS"]
