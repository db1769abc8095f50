"""The PyTorch frontend's translation table: torch layers, functions and methods -> Graph ops.

Each handler receives the conversion context, the :class:`Call` being translated (its layer
name, its node name, the place in the model's code) and the call's arguments, where graph
tensors are :class:`Tensor` (or :class:`PendingInput`) values and everything else (numbers,
shapes, constant tensors) is a plain Python or torch value. It appends nodes and returns
the call's result. Calls whose arguments are all constants never reach a handler: the
frontend evaluates them with torch.

Arrays always put the batch first in torch; Graph shapes exclude it. Every ``dim`` is
mapped accordingly, and an operation along or across the batch axis is refused, since the
hardware processes one sample at a time.

Modules are keyed by the class that defines their ``forward`` (a subclass that overrides
``forward`` is traced through instead), functions by the function object, methods by name.
"""

from __future__ import annotations

import operator
from collections import namedtuple
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..graph.composite import softmax as softmax_nodes
from ..graph.ops.base import GraphError
from ..torch_common import ConversionError, check_finite, to_numpy

# --------------------------------------------------------------------------- values


class _Batch:
    """The batch size ``x.size(0)``: only view/reshape may use it, as their first size."""

    def __repr__(self) -> str:
        return "N (the batch size)"

    def _refuse(self, *args):
        raise TypeError("arithmetic on the batch size")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __floordiv__ = __rfloordiv__ = _refuse
    __truediv__ = __rtruediv__ = __mod__ = __index__ = __int__ = __float__ = _refuse


BATCH = _Batch()


class _InputShape:
    """``x.shape`` of a model input whose shape is not known yet: only ``[0]``, the batch size, is."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getitem__(self, i):
        if i == 0:
            return BATCH
        raise TypeError(f"the shape of input {self.name!r} is not known here; pass input_shape=(...)")


@dataclass(eq=False)
class Tensor:
    """A graph tensor. ``rounding``: the ``result_type`` quantization (types, node name) of a
    dense layer, applied when the value is first read, so that a BatchNorm after the layer
    is folded into it before the rounding."""

    node: str
    rounding: tuple | None = None
    rounded: str | None = None


@dataclass(eq=False)
class PendingInput:
    """A model input whose Graph node is created when a layer first reads it (its shape may
    come from that layer: a Linear reads ``in_features`` values)."""

    name: str
    node: str | None = None


@dataclass(eq=False)
class Unsupported:
    """A value the frontend cannot represent (e.g. the indices of ``torch.max``); using it is an error."""

    message: str


def _unknown(ctx, v) -> bool:
    """Whether ``v`` is a model input of a shape not known yet (a later layer may fix it)."""
    return isinstance(v, PendingInput) and v.node is None and not ctx.shape_known(v)


def is_var(v) -> bool:
    return isinstance(v, (Tensor, PendingInput))


def contains(v, pred: Callable[[object], bool]) -> bool:
    """Whether ``v`` or anything inside its tuples, lists, dicts and slices satisfies ``pred``."""
    if pred(v):
        return True
    if isinstance(v, (tuple, list)):
        return any(contains(a, pred) for a in v)
    if isinstance(v, dict):
        return any(contains(a, pred) for a in v.values())
    if isinstance(v, slice):
        return any(contains(a, pred) for a in (v.start, v.stop, v.step))
    return False


@dataclass(frozen=True)
class Call:
    """One traced call: ``what`` names it in messages (``layer 'fc' (Linear)``, ``function
    torch.sin``), ``name`` is the base name of its graph nodes, ``layer`` the name its type
    options are looked up by, ``where`` the place in the model's code (or "")."""

    what: str
    name: str
    layer: str
    where: str = ""

    @property
    def at(self) -> str:
        return f" (at {self.where})" if self.where else ""

    def error(self, message: str) -> ConversionError:
        return ConversionError(f"{self.what}{self.at}: {message}")


#: What ``x.max(dim)`` returns: ``.values`` / ``[0]`` work, ``.indices`` / ``[1]`` are refused when used.
MaxResult = namedtuple("MaxResult", "values indices")

# --------------------------------------------------------------------------- helpers


def _shape(ctx, call: Call, x) -> tuple[int, ...]:
    return ctx.builder.shape(ctx.node(x, call.layer))


def _full_rank(ctx, call: Call, x) -> int:
    return len(_shape(ctx, call, x)) + 1


def batch_error(call: Call, what: str) -> ConversionError:
    return call.error(f"{what}; rtl4ml converts one sample at a time (the hardware has no batch), so operations "
                      "along or across the batch axis (dim 0) are not supported")


def _axis(call: Call, dim, rank: int) -> int:
    """The graph axis of torch dimension ``dim`` of a tensor of ``rank`` dimensions (batch included)."""
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise call.error(f"expects an integer dim, got {dim!r}")
    d = int(dim) + rank if dim < 0 else int(dim)
    if not 0 <= d < rank:
        raise call.error(f"dim {dim} is out of range for a tensor of {rank} dimensions")
    if d == 0:
        raise batch_error(call, f"dim {dim} is the batch axis")
    return d - 1


def _axes(call: Call, dim, rank: int) -> tuple[int, ...]:
    if dim is None or (isinstance(dim, (tuple, list)) and not dim):
        raise batch_error(call, "without dim= it reduces over the batch axis too; give the dims to reduce, "
                          "e.g. dim=1")
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    return tuple(sorted({_axis(call, d, rank) for d in dims}))


def _const_array(call: Call, v, rank: int) -> np.ndarray:
    """A constant operand as a float64 array aligned (torch broadcasting) with a tensor of ``rank`` dims."""
    if v is BATCH:
        raise batch_error(call, "computes with the batch size (only view/reshape(x.size(0), ...) may use it)")
    if isinstance(v, (bool, np.bool_)) or (isinstance(v, torch.Tensor) and v.dtype == torch.bool):
        raise call.error("boolean operands are not supported")
    try:
        a = to_numpy(v)
    except (TypeError, ValueError, RuntimeError):
        raise call.error(f"cannot use {type(v).__name__} {v!r} as an operand") from None
    if a.ndim == rank:
        if a.shape[0] != 1:
            raise batch_error(call, f"a constant of shape {a.shape} would vary along the batch axis")
        a = a[0]
    elif a.ndim > rank:
        raise call.error(f"a constant of shape {a.shape} has more dimensions than the tensor it meets ({rank})")
    return a


def elementwise(ctx, call: Call, method: str, vals, name: str | None = None, what: str | None = None) -> str:
    """``builder.<method>`` of the operands ``vals`` with torch broadcasting: tensors as they
    are (all of the same rank, as torch would otherwise broadcast the batch axis against
    another axis), constants as Constant nodes (see ``ctx.constant``); returns the node."""
    name = name or call.name
    nodes = {id(v): ctx.node(v, call.layer) for v in vals if is_var(v)}
    shapes = [ctx.builder.shape(n) for n in nodes.values()]
    if len({len(s) for s in shapes}) > 1:
        raise call.error(f"operands of shapes {', '.join('(N, ' + ', '.join(map(str, s)) + ')' for s in shapes)} "
                         "have different numbers of dimensions: torch would broadcast the batch axis against "
                         "another axis; reshape them to the same number of dimensions")
    rank = len(shapes[0]) + 1
    args, parts = [], list(shapes)
    for k, v in enumerate(vals):
        if is_var(v):
            args.append(nodes[id(v)])
            continue
        c = _const_array(call, v, rank)
        parts.append(c.shape)
        desc = what or (repr(float(c)) if c.ndim == 0 else None)
        c = c.reshape((1,) * (max(rank - 1, 1) - c.ndim) + c.shape)   # as many axes as the tensors (at least 1)
        args.append(ctx.constant(c, call, f"{name}_const" if len(vals) == 2 else f"{name}_c{k}", desc))
    try:
        shape = tuple(np.broadcast_shapes(*parts))
    except ValueError:
        raise call.error(f"cannot broadcast shapes {parts}") from None
    if shape or rank > 1 or len(nodes) == len(vals):
        return getattr(ctx.builder, method)(*args, name=name)
    out = getattr(ctx.builder, method)(*args, name=f"{name}_1d")   # scalar tensors met (1,)-shaped constants
    return ctx.builder.reshape(out, shape, name=name)


# --------------------------------------------------------------------------- dense layers


def dense(ctx, call: Call, x, weight, bias) -> Tensor:
    """``x @ weight.T + bias`` over the last axis with post-training quantization: weights
    (out, in) and bias to the layer's ``weight_type`` / ``bias_type`` (lazily, so that a
    BatchNorm after it folds into the float values first); its output to ``result_type``."""
    if is_var(weight) or is_var(bias):
        raise call.error("its weights are computed from the model's inputs; rtl4ml converts layers with constant "
                         "weights (a variable product is x * y)")
    w = to_numpy(weight)
    if w.ndim != 2:
        raise call.error(f"expects a 2-D weight, got shape {w.shape}")
    n_out, n_in = w.shape
    b = np.zeros(n_out) if bias is None else to_numpy(bias)
    node = ctx.node(x, call.layer, features=n_in)
    wt = ctx.type_for("weight_type", call.layer)
    bt = ctx.type_for("bias_type", call.layer, required=False) or wt
    check_finite(w, call.layer, "weight")
    check_finite(b, call.layer, "bias")
    out = ctx.builder.dense(node, w.T, b, name=call.name, weight_type=wt, bias_type=bt)
    ctx.quantized[out] = call.what
    rt = ctx.type_for("result_type", call.layer, required=False)
    return Tensor(out, rounding=None if rt is None else (rt, f"{call.name}_result"))


def _linear_module(ctx, call, m, x):
    return dense(ctx, call, x, m.weight, m.bias)


def _linear(ctx, call, input, weight, bias=None):
    return dense(ctx, call, input, weight, bias)


def _einsum_nodes(ctx, call, eq: str, a: str, b: str) -> Tensor:
    try:
        return Tensor(ctx.builder.einsum(eq, a, b, name=call.name))
    except GraphError as e:
        raise call.error(str(e)) from None


def _matmul_vars(ctx, call, input, other) -> Tensor:
    """``a @ b`` of two variables: an Einsum over the last axis of ``a`` and the second-to-last
    of ``b`` (leading axes must match; the batch axis is the first of both)."""
    a, b = ctx.node(input, call.layer), ctx.node(other, call.layer)
    sa, sb = ctx.builder.shape(a), ctx.builder.shape(b)
    if len(sa) != len(sb) or len(sa) < 2 or sa[:-2] != sb[:-2]:
        raise call.error(f"multiplies tensors of shapes (N, {', '.join(map(str, sa))}) and (N, "
                         f"{', '.join(map(str, sb))}); a product of two variables needs matrices per sample with "
                         "the same leading axes, (N, ..., m, k) @ (N, ..., k, n)")
    lead = "abcdefgh"[:len(sa) - 2]
    return _einsum_nodes(ctx, call, f"{lead}mk,{lead}kn->{lead}mn", a, b)


def _matmul(ctx, call, input, other):
    if is_var(other) and is_var(input):
        return _matmul_vars(ctx, call, input, other)
    if is_var(other) or not is_var(input):
        raise call.error("multiplies a constant by a matrix computed from the model's inputs; write it as x @ W "
                         "(a constant W), or use torch.einsum")
    w = to_numpy(other)
    if w.ndim != 2:
        raise call.error(f"x @ W needs a 2-D constant W, got shape {w.shape}")
    return dense(ctx, call, input, w.T, None)


def _einsum(ctx, call, equation, *operands):
    """``torch.einsum`` of two operands. The batch letter must lead every variable operand
    and the output; a constant operand (no batch) becomes a Constant node, and a constant
    matrix contracted against a variable a Dense (see :meth:`GraphBuilder.einsum`)."""
    if len(operands) == 1 and isinstance(operands[0], (tuple, list)):
        operands = tuple(operands[0])
    if len(operands) != 2:
        raise call.error(f"has {len(operands)} operands; only two-operand einsum is supported (nest the calls)")
    if not isinstance(equation, str) or "->" not in equation:
        raise call.error(f"needs an explicit output ('ij,jk->ik'), got {equation!r}")
    lhs, out = equation.replace(" ", "").split("->")
    subs = lhs.split(",")
    if len(subs) != 2 or "." in equation:
        raise call.error(f"equation {equation!r}: two operands named letter by letter are supported ('...' is not)")
    batch = out[:1]
    for s_, v in zip(subs, operands):
        if is_var(v) and (not s_ or s_[0] != batch):
            raise batch_error(call, f"equation {equation!r} must name the batch axis first in every variable "
                              "operand and in the output")
    if not any(is_var(v) for v in operands):
        raise call.error("has no variable operand")
    nodes, gsubs = [], []
    for k, (s_, v) in enumerate(zip(subs, operands)):
        if is_var(v):
            nodes.append(ctx.node(v, call.layer))
            gsubs.append(s_[1:])
        else:
            c = to_numpy(v)
            if batch in s_:
                raise batch_error(call, f"the constant operand {s_!r} uses the batch letter {batch!r}")
            nodes.append(ctx.constant(c, call, f"{call.name}_c{k}"))
            gsubs.append(s_)
    return _einsum_nodes(ctx, call, f"{gsubs[0]},{gsubs[1]}->{out[1:]}", *nodes)


def _batchnorm(ctx, call, m, x):
    """``y * scale + shift`` with the running statistics over the channel axis (axis 1 in
    torch); the graph pass folds it into a dense layer right before it."""
    if not m.track_running_stats or m.running_mean is None:
        raise call.error("has no running statistics to fold (track_running_stats=False)")
    raw = x
    if isinstance(x, Tensor) and x.rounding is not None and x.rounded is None:
        raw = Tensor(x.node)   # fold before the dense layer's result rounding
    node = ctx.node(raw, call.layer, shape=(m.num_features,) if isinstance(m, nn.BatchNorm1d) else None)
    shape = ctx.builder.shape(node)
    if not shape or shape[0] != m.num_features:
        raise call.error(f"has {m.num_features} features but receives a tensor of shape (N, "
                         f"{', '.join(map(str, shape))})")
    mean, var = to_numpy(m.running_mean), to_numpy(m.running_var)
    gamma = to_numpy(m.weight) if m.affine else np.ones_like(mean)
    beta = to_numpy(m.bias) if m.affine else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + m.eps)
    shift = beta - mean * scale
    check_finite(scale, call.layer, "BatchNorm scale")
    check_finite(shift, call.layer, "BatchNorm shift")
    ps = (m.num_features,) + (1,) * (len(shape) - 1)
    out = ctx.builder.affine(node, scale.reshape(ps), shift.reshape(ps), name=call.name)
    ctx.batchnorms[out] = call
    if node in ctx.quantized:   # folded into that dense layer, which may then take this node's name
        ctx.quantized[out] = f"{ctx.quantized[node]} with {call.what} folded in"
    return Tensor(out, rounding=x.rounding if raw is not x else None)


# --------------------------------------------------------------------------- element-wise


def _binary(method: str):
    def handler(ctx, call, input, other, *, alpha=1):
        if alpha != 1:
            raise call.error("alpha= is not supported; write x + alpha * y")
        return Tensor(elementwise(ctx, call, method, (input, other)))
    return handler


def _rbinary(method: str):
    def handler(ctx, call, input, other):  # Tensor.__r*__(self, other) computes other <op> self
        return Tensor(elementwise(ctx, call, method, (other, input)))
    return handler


def _div(ctx, call, input, other, *, rounding_mode=None):
    if rounding_mode is not None:
        raise call.error(f"rounding_mode={rounding_mode!r} is not supported")
    if is_var(other):
        raise call.error("divides by a variable; only division by a constant is supported")
    c = to_numpy(other)
    if np.any(c == 0):
        raise call.error("divides by zero")
    return Tensor(elementwise(ctx, call, "mul", (input, 1.0 / c), what=f"1/{other!r}" if c.ndim == 0 else None))


def _neg(ctx, call, input):
    return Tensor(elementwise(ctx, call, "mul", (input, -1.0)))


def _abs(ctx, call, input):
    neg = Tensor(elementwise(ctx, call, "mul", (input, -1.0), f"{call.name}_neg"))
    return Tensor(elementwise(ctx, call, "maximum", (input, neg)))


def _square(ctx, call, input):
    return Tensor(ctx.builder.square(ctx.node(input, call.layer), name=call.name))


def _pow(ctx, call, input, exponent):
    """``x ** k`` for a small positive integer ``k``: squares and products, exact."""
    if is_var(exponent) or not float(exponent).is_integer() or not 1 <= int(exponent) <= 8:
        raise call.error(f"x ** {exponent!r} is not supported; only integer powers 1..8 (x ** 0.5 is torch.sqrt)")
    k = int(exponent)
    node = ctx.node(input, call.layer)
    if k == 0:
        raise call.error("x ** 0 is the constant 1; write it as a constant")
    result, base = None, node
    while k:                      # square-and-multiply
        if k & 1:
            result = base if result is None else ctx.builder.mul(result, base, name=f"{call.name}_mul")
        k >>= 1
        if k:
            base = ctx.builder.square(base, name=f"{call.name}_sq")
    return Tensor(result)


def _relu(ctx, call, input, inplace=False):
    return Tensor(ctx.builder.relu(ctx.node(input, call.layer), name=call.name))


def _relu_module(ctx, call, m, x):
    return _relu(ctx, call, x)


def _clamp(ctx, call, input, min=None, max=None):
    if min is None and max is None:
        raise call.error("needs min= or max=")
    x = input
    if min is not None:
        x = Tensor(elementwise(ctx, call, "maximum", (x, min), call.name if max is None else f"{call.name}_lo"))
    if max is not None:
        x = Tensor(elementwise(ctx, call, "minimum", (x, max)))
    return x


def _hardtanh(ctx, call, input, min_val=-1.0, max_val=1.0, inplace=False):
    return _clamp(ctx, call, input, min_val, max_val)


def _relu6(ctx, call, input, inplace=False):
    return _clamp(ctx, call, input, 0.0, 6.0)


def _hardtanh_module(ctx, call, m, x):
    return _clamp(ctx, call, x, m.min_val, m.max_val)


def _leaky_relu(ctx, call, input, negative_slope=0.01, inplace=False):
    a = float(negative_slope)
    if a < 0:
        raise call.error(f"negative_slope={a} < 0 is not supported")
    ax = Tensor(elementwise(ctx, call, "mul", (input, a), f"{call.name}_slope", f"negative_slope={a}"))
    return Tensor(elementwise(ctx, call, "maximum" if a <= 1 else "minimum", (input, ax)))


def _leaky_relu_module(ctx, call, m, x):
    return _leaky_relu(ctx, call, x, m.negative_slope)


def _extremum(method: str):
    def handler(ctx, call, input, other):
        return Tensor(elementwise(ctx, call, method, (input, other)))
    return handler


# --------------------------------------------------------------------------- reductions


def _reduce(ctx, call, x, reduction: str, dim, keepdim: bool, name: str) -> str:
    node = ctx.node(x, call.layer)
    axes = _axes(call, dim, len(ctx.builder.shape(node)) + 1)
    return ctx.builder.reduce(node, reduction, axes, keepdims=bool(keepdim), name=name)


def _sum(ctx, call, input, dim=None, keepdim=False, *, dtype=None, axis=None):
    return Tensor(_reduce(ctx, call, input, "sum", dim if axis is None else axis, keepdim, call.name))


def _mean(ctx, call, input, dim=None, keepdim=False, *, dtype=None, axis=None):
    """The sum times the constant ``1/n`` (exact when ``n`` is a power of two)."""
    dim = dim if axis is None else axis
    node = ctx.node(input, call.layer)
    shape = ctx.builder.shape(node)
    n = int(np.prod([shape[a] for a in _axes(call, dim, len(shape) + 1)]))
    s = Tensor(_reduce(ctx, call, input, "sum", dim, keepdim, f"{call.name}_sum"))
    return Tensor(elementwise(ctx, call, "mul", (s, 1.0 / n), what=f"1/{n} (the mean over {n} elements)"))


def _amax(reduction: str):
    def handler(ctx, call, input, dim=(), keepdim=False):
        return Tensor(_reduce(ctx, call, input, reduction, dim, keepdim, call.name))
    return handler


def _max_or_min(reduction: str, method: str):
    """``x.max(dim)`` -> (values, indices); ``x.max(y)`` -> element-wise; ``x.max()`` is refused."""
    def handler(ctx, call, input, dim=None, keepdim=False, *, other=None):
        if other is not None or is_var(dim) or isinstance(dim, torch.Tensor):
            return _extremum(method)(ctx, call, input, other if other is not None else dim)
        values = Tensor(_reduce(ctx, call, input, reduction, dim, keepdim, call.name))
        indices = Unsupported(f"the indices of {call.what}{call.at} (arg{reduction}), which are not supported "
                              "(its values are)")
        return MaxResult(values, indices)
    return handler


# --------------------------------------------------------------------------- shapes


def _reshaped(ctx, call, x, shape) -> Tensor:
    node = ctx.node(x, call.layer)
    return Tensor(ctx.builder.reshape(node, tuple(shape), name=call.name))


def _view_shape(call: Call, sizes, size: int) -> tuple[int, ...]:
    dims = list(sizes)
    if not dims:
        raise batch_error(call, "reshapes to a scalar")
    first, rest = dims[0], dims[1:]
    if any(d is BATCH for d in rest):
        raise batch_error(call, "puts the batch size elsewhere than the first axis")
    if any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) for d in rest):
        raise call.error(f"sizes must be integers, got {tuple(sizes)}")
    rest = [int(d) for d in rest]
    if rest.count(-1) > 1:
        raise call.error("at most one size may be -1")
    known = int(np.prod([d for d in rest if d != -1]))
    if first is BATCH:
        if -1 in rest:
            if known == 0 or size % known:
                raise call.error(f"cannot reshape a sample of {size} elements to {tuple(sizes)}")
            rest[rest.index(-1)] = size // known
    elif first == -1:
        if -1 in rest or known != size:
            raise batch_error(call, f"view(-1, ...) to {tuple(rest)} would merge the batch axis with others (a sample "
                              f"has {size} elements)")
    else:
        raise batch_error(call, f"the first size must be the batch size: x.size(0), x.shape[0] or -1, got {first!r}")
    if int(np.prod(rest)) != size:
        raise call.error(f"cannot reshape a sample of {size} elements to {tuple(rest)}")
    return tuple(rest)


def _view(ctx, call, input, *shape, **kw):
    if "size" in kw or "shape" in kw:
        shape = (kw.pop("size", None) or kw.pop("shape"),)
    if kw:
        raise call.error(f"unsupported arguments {sorted(kw)}")
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)):
        shape = tuple(shape[0])
    if _unknown(ctx, input) and tuple(shape) == (BATCH, -1):
        return input   # flattening a sample: the identity on the 1-D input a Linear after it implies
    node = ctx.node(input, call.layer)
    size = int(np.prod(ctx.builder.shape(node)))
    return _reshaped(ctx, call, input, _view_shape(call, shape, size))


def _reshape_fn(ctx, call, input, shape):
    return _view(ctx, call, input, *shape)


def _flatten(ctx, call, input, start_dim=0, end_dim=-1):
    if start_dim == 0:
        raise batch_error(call, "flattens the batch axis too (start_dim=0); use torch.flatten(x, 1) or x.flatten(1)")
    if _unknown(ctx, input) and start_dim in (1, -1) and end_dim == -1:
        return input   # as in _view
    shape = _shape(ctx, call, input)
    rank = len(shape) + 1
    s, e = _axis(call, start_dim, rank), _axis(call, end_dim, rank)
    if s > e:
        raise call.error(f"start_dim {start_dim} comes after end_dim {end_dim}")
    return _reshaped(ctx, call, input, shape[:s] + (int(np.prod(shape[s:e + 1])),) + shape[e + 1:])


def _flatten_module(ctx, call, m, x):
    return _flatten(ctx, call, x, m.start_dim, m.end_dim)


def _unflatten(ctx, call, input, dim, sizes):
    shape = _shape(ctx, call, input)
    a = _axis(call, dim, len(shape) + 1)
    sizes = [int(s) for s in sizes]
    if sizes.count(-1) == 1:
        sizes[sizes.index(-1)] = shape[a] // int(np.prod([s for s in sizes if s != -1]))
    return _reshaped(ctx, call, input, shape[:a] + tuple(sizes) + shape[a + 1:])


def _unflatten_module(ctx, call, m, x):
    return _unflatten(ctx, call, x, m.dim, m.unflattened_size)


def _unsqueeze(ctx, call, input, dim):
    shape = _shape(ctx, call, input)
    rank = len(shape) + 1
    d = dim + rank + 1 if dim < 0 else dim
    if not 0 <= d <= rank:
        raise call.error(f"dim {dim} is out of range")
    if d == 0:
        raise batch_error(call, "inserts an axis before the batch axis")
    return _reshaped(ctx, call, input, shape[:d - 1] + (1,) + shape[d - 1:])


def _squeeze(ctx, call, input, dim=None):
    shape = _shape(ctx, call, input)
    if dim is None:
        axes = {a for a, s in enumerate(shape) if s == 1}
    else:
        axes = {a for a in (_axis(call, d, len(shape) + 1) for d in (dim if isinstance(dim, (tuple, list)) else (dim,)))
                if shape[a] == 1}
    return _reshaped(ctx, call, input, tuple(s for a, s in enumerate(shape) if a not in axes))


def _permuted(ctx, call, x, perm) -> Tensor:
    return Tensor(ctx.builder.transpose(ctx.node(x, call.layer), tuple(perm), name=call.name))


def _permute(ctx, call, input, *dims, **kw):
    if "dims" in kw:
        dims = (kw.pop("dims"),)
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    rank = _full_rank(ctx, call, input)
    if len(dims) != rank:
        raise call.error(f"permutation {dims} does not fit a tensor of {rank} dimensions")
    full = [d + rank if d < 0 else d for d in dims]
    if full[0] != 0:
        raise batch_error(call, f"permute{tuple(dims)} moves the batch axis")
    return _permuted(ctx, call, input, [d - 1 for d in full[1:]])


def _transpose(ctx, call, input, dim0, dim1):
    rank = _full_rank(ctx, call, input)
    a, b = _axis(call, dim0, rank), _axis(call, dim1, rank)
    perm = list(range(rank - 1))
    perm[a], perm[b] = perm[b], perm[a]
    return _permuted(ctx, call, input, perm)


def _concat(ctx, call, tensors, dim=0, *, axis=None):
    dim = dim if axis is None else axis
    if not isinstance(tensors, (tuple, list)) or not tensors:
        raise call.error("expects a list of tensors")
    if not all(is_var(t) for t in tensors):
        raise call.error("joins a constant with the model's tensors; a constant has no batch axis to join along")
    nodes = [ctx.node(t, call.layer) for t in tensors]
    a = _axis(call, dim, len(ctx.builder.shape(nodes[0])) + 1)
    return Tensor(ctx.builder.concat(nodes, axis=a, name=call.name))


def _stack(ctx, call, tensors, dim=0):
    if not isinstance(tensors, (tuple, list)) or not tensors or not all(is_var(t) for t in tensors):
        raise call.error("expects a list of the model's tensors")
    nodes = [ctx.node(t, call.layer) for t in tensors]
    shape = ctx.builder.shape(nodes[0])
    rank = len(shape) + 2
    d = dim + rank if dim < 0 else dim
    if d == 0:
        raise batch_error(call, "stacks along the batch axis")
    a = _axis(call, d, rank)
    parts = [ctx.builder.reshape(n, shape[:a] + (1,) + shape[a:], name=f"{call.name}_{k}") for k, n in enumerate(nodes)]
    return Tensor(ctx.builder.concat(parts, axis=a, name=call.name))


def _getitem(ctx, call, input, index):
    """``x[:, a:b]``, ``x[:, i]``, ``x[..., k]``, ``x[:, None]``: slices, integers, None, Ellipsis."""
    if not is_var(input):
        return operator.getitem(input, index)
    shape = _shape(ctx, call, input)
    rank = len(shape) + 1
    items = list(index) if isinstance(index, tuple) else [index]
    for it in items:
        if not (it is None or it is Ellipsis or isinstance(it, slice) or
                (isinstance(it, (int, np.integer)) and not isinstance(it, bool))):
            raise call.error(f"indexing with {type(it).__name__} is not supported (only slices, integers, None and "
                             "...)")
        if isinstance(it, slice) and any(isinstance(v, _Batch) for v in (it.start, it.stop, it.step)):
            raise batch_error(call, "slices with the batch size")
    n_real = sum(1 for it in items if it is not None and it is not Ellipsis)
    if items.count(Ellipsis) > 1:
        raise call.error("more than one ... in an index")
    if n_real > rank:
        raise call.error(f"too many indices for a tensor of {rank} dimensions")
    if Ellipsis in items:
        k = items.index(Ellipsis)
        items[k:k + 1] = [slice(None)] * (rank - n_real)
    else:
        items += [slice(None)] * (rank - n_real)
    if items[0] is None:
        raise batch_error(call, "inserts an axis before the batch axis")
    b = items[0]
    if not (isinstance(b, slice) and b.start in (None, 0) and b.stop is None and b.step in (None, 1)):
        raise batch_error(call, f"indexes the batch axis with {b!r}")
    slices, out_shape = [], []
    axis = 0
    for it in items[1:]:
        if it is None:
            out_shape.append(1)
            continue
        n = shape[axis]
        if isinstance(it, slice):
            start, stop, step = it.indices(n)
            if step < 1:
                raise call.error("negative slice steps are not supported")
            slices.append((start, stop, step))
            out_shape.append(len(range(start, stop, step)))
        else:
            i = int(it) + n if it < 0 else int(it)
            if not 0 <= i < n:
                raise call.error(f"index {it} is out of range for an axis of size {n}")
            slices.append((i, i + 1, 1))
        axis += 1
    node = ctx.node(input, call.layer)
    if any(s != (0, n, 1) for s, n in zip(slices, shape)):
        node = ctx.builder.slice(node, slices, name=call.name if tuple(out_shape) == tuple(
            len(range(*s)) for s in slices) else f"{call.name}_slice")
    if ctx.builder.shape(node) != tuple(out_shape):
        node = ctx.builder.reshape(node, tuple(out_shape), name=call.name)
    return Tensor(node)


def _identity(ctx, call, input, *args, **kwargs):
    """Methods that change no value of an inference-time tensor (``contiguous``, ``float``, ``to``, ...)."""
    return input


def _dropout(ctx, call, input, p=0.5, training=True, inplace=False):
    if training:
        raise call.error("dropout with training=True; convert a model in evaluation mode (F.dropout(x, p, "
                         "training=self.training))")
    return input


def _passthrough_module(ctx, call, m, x):
    """Layers that are the identity at inference (Identity, Dropout)."""
    return x


def _size(ctx, call, input, dim=None):
    shape = (BATCH,) + _shape(ctx, call, input)
    if dim is None:
        return shape
    d = dim + len(shape) if dim < 0 else dim
    if not 0 <= d < len(shape):
        raise call.error(f"dim {dim} is out of range")
    return shape[d]


def _size_or_pending(ctx, call, input, dim=None):
    if dim == 0 and _unknown(ctx, input):
        return BATCH   # the batch size does not need the input's shape
    return _size(ctx, call, input, dim)


def _getattr(ctx, call, obj, name):
    if not is_var(obj):
        return getattr(obj, name)
    if name == "shape":
        return _InputShape(obj.name) if _unknown(ctx, obj) else _size(ctx, call, obj)
    if name == "ndim":
        return _full_rank(ctx, call, obj)
    if name == "dtype":
        return torch.float64
    if name == "device":
        return torch.device("cpu")
    if name == "T":
        raise batch_error(call, "x.T moves the batch axis; use x.transpose(1, 2) or x.permute(0, ...)")
    if name == "mT":
        rank = _full_rank(ctx, call, obj)
        if rank < 3:
            raise batch_error(call, "x.mT on a 2-D tensor swaps the batch axis")
        return _transpose(ctx, call, obj, -2, -1)
    raise call.error(f"the tensor attribute .{name} is not supported")


def _dim(ctx, call, input):
    return _full_rank(ctx, call, input)


# --------------------------------------------------------------------------- convolutions and pooling


def _spatial(call: Call, shape: tuple[int, ...], n: int, what: str) -> None:
    if len(shape) != n + 1:
        raise call.error(f"{what} expects an input of shape (N, C, {', '.join('L' * n)}), got (N, "
                         f"{', '.join(map(str, shape))})")


def conv(ctx, call: Call, x, weight, bias, stride, padding, dilation, groups) -> Tensor:
    """A convolution with post-training quantization of its weights, like :func:`dense`."""
    if is_var(weight) or is_var(bias):
        raise call.error("its weights are computed from the model's inputs; rtl4ml converts convolutions with "
                         "constant weights")
    w = to_numpy(weight)
    n = w.ndim - 2
    if isinstance(padding, str):
        if padding == "valid":
            padding = 0
        elif padding == "same" and all(int(s) == 1 for s in np.atleast_1d(stride)):
            d = np.broadcast_to(np.asarray(dilation), (n,))
            total = [int(di) * (k - 1) for di, k in zip(d, w.shape[2:])]
            if any(t % 2 for t in total):
                raise call.error("padding='same' with an even kernel pads unevenly; pad explicitly")
            padding = tuple(t // 2 for t in total)
        else:
            raise call.error(f"padding={padding!r} is not supported (use an int, a tuple, 'valid' or 'same')")
    node = ctx.node(x, call.layer)
    _spatial(call, ctx.builder.shape(node), n, f"a {n}-d convolution")
    b = np.zeros(w.shape[0]) if bias is None else to_numpy(bias)
    wt = ctx.type_for("weight_type", call.layer)
    bt = ctx.type_for("bias_type", call.layer, required=False) or wt
    check_finite(w, call.layer, "weight")
    check_finite(b, call.layer, "bias")
    try:
        out = ctx.builder.conv(node, w, b, stride, padding, dilation, int(groups), name=call.name,
                               weight_type=wt, bias_type=bt)
    except GraphError as e:
        raise call.error(str(e)) from None
    ctx.quantized[out] = call.what
    rt = ctx.type_for("result_type", call.layer, required=False)
    return Tensor(out, rounding=None if rt is None else (rt, f"{call.name}_result"))


def _conv_module(ctx, call, m, x):
    if m.padding_mode != "zeros":
        raise call.error(f"padding_mode={m.padding_mode!r} is not supported (only zero padding)")
    return conv(ctx, call, x, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups)


def _conv_fn(ctx, call, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return conv(ctx, call, input, weight, bias, stride, padding, dilation, groups)


def _pool(ctx, call, x, reduction: str, n: int, kernel, stride, padding, dilation=1, ceil_mode=False,
          count_include_pad=True, divisor_override=None) -> Tensor:
    if ceil_mode:
        raise call.error("ceil_mode=True is not supported")
    node = ctx.node(x, call.layer)
    _spatial(call, ctx.builder.shape(node), n, f"{n}-d pooling")
    if reduction == "avg" and not count_include_pad and np.any(np.asarray(padding)):
        raise call.error("count_include_pad=False with padding is not supported (border windows would divide "
                         "by fewer elements)")
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) else stride
    try:
        out = ctx.builder.pool(node, "max" if reduction == "max" else "sum", kernel, stride, padding, dilation,
                               name=call.name if reduction == "max" else f"{call.name}_sum")
    except GraphError as e:
        raise call.error(str(e)) from None
    if reduction == "max":
        return Tensor(out)
    count = divisor_override or int(np.prod(np.broadcast_to(np.asarray(kernel), (n,))))
    return Tensor(elementwise(ctx, call, "mul", (Tensor(out), 1.0 / count),
                              what=f"1/{count} (the average over {count} elements)"))


def _pool_module(reduction: str, n: int):
    def handler(ctx, call, m, x):
        if reduction == "max":
            if getattr(m, "return_indices", False):
                raise call.error("return_indices=True is not supported")
            return _pool(ctx, call, x, "max", n, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode)
        return _pool(ctx, call, x, "avg", n, m.kernel_size, m.stride, m.padding, 1, m.ceil_mode,
                     m.count_include_pad, getattr(m, "divisor_override", None))
    return handler


def _pool_fn(reduction: str, n: int):
    def handler(ctx, call, input, kernel_size, stride=None, padding=0, *args, **kw):
        if reduction == "max":
            dilation = kw.get("dilation", args[0] if args else 1)
            ceil = kw.get("ceil_mode", args[1] if len(args) > 1 else False)
            if kw.get("return_indices", args[2] if len(args) > 2 else False):
                raise call.error("return_indices=True is not supported")
            return _pool(ctx, call, input, "max", n, kernel_size, stride, padding, dilation, ceil)
        ceil = kw.get("ceil_mode", args[0] if args else False)
        inc = kw.get("count_include_pad", args[1] if len(args) > 1 else True)
        div = kw.get("divisor_override", args[2] if len(args) > 2 else None)
        return _pool(ctx, call, input, "avg", n, kernel_size, stride, padding, 1, ceil, inc, div)
    return handler


def _adaptive_module(reduction: str, n: int):
    def handler(ctx, call, m, x):
        return _adaptive(ctx, call, x, m.output_size, reduction, n)
    return handler


def _adaptive(ctx, call, x, output_size, reduction: str, n: int) -> Tensor:
    """Global pooling (``output_size`` 1): the sum (times ``1/count``) or maximum over the
    spatial axes, keeping them as size-1 axes like torch."""
    sizes = np.broadcast_to(np.asarray(output_size, dtype=object), (n,))
    if any(s not in (1, None) for s in sizes):
        raise call.error(f"adaptive pooling to output_size={output_size} is not supported; only global pooling "
                         "(output_size=1)")
    node = ctx.node(x, call.layer)
    shape = ctx.builder.shape(node)
    _spatial(call, shape, n, f"{n}-d adaptive pooling")
    axes = tuple(range(1, n + 1))
    if reduction == "max":
        return Tensor(ctx.builder.reduce(node, "max", axes, keepdims=True, name=call.name))
    s = Tensor(ctx.builder.reduce(node, "sum", axes, keepdims=True, name=f"{call.name}_sum"))
    count = int(np.prod(shape[1:]))
    return Tensor(elementwise(ctx, call, "mul", (s, 1.0 / count), what=f"1/{count} (the mean over {count} positions)"))


def _upsample(ctx, call, x, size=None, scale_factor=None, mode="nearest", align_corners=None,
              recompute_scale_factor=None, antialias=False) -> Tensor:
    if mode != "nearest":
        raise call.error(f"mode={mode!r} is not supported (only 'nearest')")
    node = ctx.node(x, call.layer)
    shape = ctx.builder.shape(node)
    n = len(shape) - 1
    if size is not None:
        sizes = np.broadcast_to(np.asarray(size), (n,))
        if any(int(o) % int(i) for o, i in zip(sizes, shape[1:])):
            raise call.error(f"size={size} is not an integer multiple of the input's spatial shape {shape[1:]}")
        scale = tuple(int(o) // int(i) for o, i in zip(sizes, shape[1:]))
    else:
        f = np.broadcast_to(np.asarray(scale_factor, dtype=np.float64), (n,))
        if np.any(f != np.round(f)) or np.any(f < 1):
            raise call.error(f"scale_factor={scale_factor} must be a positive integer")
        scale = tuple(int(a) for a in f)
    return Tensor(ctx.builder.upsample(node, scale, name=call.name))


def _upsample_module(ctx, call, m, x):
    return _upsample(ctx, call, x, m.size, m.scale_factor, m.mode, m.align_corners)


# --------------------------------------------------------------------------- functions by table

#: Table entries when ``activation_type`` gives none for the layer: ``[0, 1)`` / ``[-1, 1)`` in
#: steps of 2^-8 and 2^-7, rounded, saturating.
DEFAULT_ACTIVATION_TYPES = {"sigmoid": "ufixed<8,0,RND,SAT>", "tanh": "fixed<8,1,RND,SAT>"}


def _table_input(ctx, call: Call, node: str) -> str:
    t = ctx.type_for("table_input_type", call.layer, required=False)
    return node if t is None else ctx.builder.quantize(node, t, name=f"{call.name}_in")


def table_function(ctx, call: Call, x, function: str) -> Tensor:
    """``function(x)`` as a lookup table over the input's codes, entries in the layer's
    ``activation_type``; ``table_input_type`` first narrows a too-wide input."""
    node = _table_input(ctx, call, ctx.node(x, call.layer))
    t = ctx.type_for("activation_type", call.layer, required=False) or DEFAULT_ACTIVATION_TYPES.get(function)
    if t is None:
        raise call.error(f"needs activation_type for the entries of its {function} table, e.g. "
                         "activation_type='fixed<8,3,RND,SAT>'")
    try:
        return Tensor(ctx.builder.lookup(node, function, t, name=call.name))
    except GraphError as e:
        raise call.error(f"{e}; pass table_input_type='fixed<...>' (or {{{call.layer!r}: ...}}) to quantize the "
                         "table's input") from None


def _table_fn(function: str):
    def handler(ctx, call, input, *args, **kwargs):
        return table_function(ctx, call, input, function)
    return handler


def _table_module(function: str):
    def handler(ctx, call, m, x):
        return table_function(ctx, call, x, function)
    return handler


def softmax(ctx, call: Call, x, dim) -> Tensor:
    """Softmax by tables (see :mod:`rtl4ml.graph.composite`); ``activation_type`` is its output type."""
    if dim is None:
        raise call.error("needs dim= (the class axis, e.g. dim=1)")
    node = ctx.node(x, call.layer)
    ax = _axis(call, dim, len(ctx.builder.shape(node)) + 1)
    t = ctx.type_for("activation_type", call.layer, required=False)
    try:
        return Tensor(softmax_nodes(ctx.builder, node, ax, name=call.name, out_type=t))
    except GraphError as e:
        raise call.error(str(e)) from None


def _softmax_fn(ctx, call, input, dim=None, _stacklevel=3, dtype=None):
    return softmax(ctx, call, input, dim)


def _softmax_module(ctx, call, m, x):
    return softmax(ctx, call, x, m.dim)


def _multihead_attention_module(ctx, call, m, *args, **kwargs):
    raise call.error("nn.MultiheadAttention is not supported as one module (its packed in_proj weights and "
                     "masks); write attention from its parts: nn.Linear projections of every particle, "
                     "torch.einsum('npd,nqd->npq', q, k) (or q @ k.transpose(1, 2)), torch.softmax(s, dim=-1), "
                     "torch.einsum('npq,nqd->npd', a, v), or use rtl4ml.nn.QSelfAttention")


# --------------------------------------------------------------------------- tables

#: ``module class (the one defining forward) -> handler(ctx, call, module, *args, **kwargs)``
MODULES: dict[type, Callable] = {
    nn.Linear: _linear_module,
    nn.ReLU: _relu_module,
    nn.modules.batchnorm._BatchNorm: _batchnorm,
    nn.Flatten: _flatten_module,
    nn.Unflatten: _unflatten_module,
    nn.Hardtanh: _hardtanh_module,      # and ReLU6
    nn.LeakyReLU: _leaky_relu_module,
    nn.Conv1d: _conv_module, nn.Conv2d: _conv_module,
    nn.MaxPool1d: _pool_module("max", 1), nn.MaxPool2d: _pool_module("max", 2),
    nn.AvgPool1d: _pool_module("avg", 1), nn.AvgPool2d: _pool_module("avg", 2),
    nn.AdaptiveAvgPool1d: _adaptive_module("avg", 1), nn.AdaptiveAvgPool2d: _adaptive_module("avg", 2),
    nn.AdaptiveMaxPool1d: _adaptive_module("max", 1), nn.AdaptiveMaxPool2d: _adaptive_module("max", 2),
    nn.Upsample: _upsample_module,
    nn.Sigmoid: _table_module("sigmoid"), nn.Tanh: _table_module("tanh"), nn.SiLU: _table_module("silu"),
    nn.GELU: _table_module("gelu"), nn.Softmax: _softmax_module,
    nn.MultiheadAttention: _multihead_attention_module,
    **{cls: _passthrough_module for cls in (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
                                            nn.AlphaDropout, nn.FeatureAlphaDropout)},
}

_ADD, _SUB, _MUL = _binary("add"), _binary("sub"), _binary("mul")
_MAX, _MIN = _max_or_min("max", "maximum"), _max_or_min("min", "minimum")

#: ``function -> handler(ctx, call, *args, **kwargs)``
FUNCTIONS: dict[Callable, Callable] = {
    operator.add: _ADD, operator.iadd: _ADD, torch.add: _ADD,
    operator.sub: _SUB, operator.isub: _SUB, torch.sub: _SUB, torch.subtract: _SUB,
    operator.mul: _MUL, operator.imul: _MUL, torch.mul: _MUL, torch.multiply: _MUL,
    operator.truediv: _div, operator.itruediv: _div, torch.div: _div, torch.divide: _div, torch.true_divide: _div,
    operator.neg: _neg, torch.neg: _neg, torch.negative: _neg, operator.pos: _identity,
    operator.matmul: _matmul, torch.matmul: _matmul, torch.mm: _matmul, torch.bmm: _matmul,
    torch.einsum: _einsum,
    torch.abs: _abs, operator.abs: _abs, torch.square: _square, operator.pow: _pow, torch.pow: _pow,
    torch.maximum: _extremum("maximum"), torch.minimum: _extremum("minimum"),
    torch.max: _MAX, torch.min: _MIN,
    torch.relu: _relu, F.relu: _relu, F.relu6: _relu6, F.hardtanh: _hardtanh, F.leaky_relu: _leaky_relu,
    torch.clamp: _clamp, torch.clip: _clamp,
    F.linear: _linear,
    F.conv1d: _conv_fn, F.conv2d: _conv_fn,
    F.max_pool1d: _pool_fn("max", 1), F.max_pool2d: _pool_fn("max", 2),
    F.avg_pool1d: _pool_fn("avg", 1), F.avg_pool2d: _pool_fn("avg", 2),
    F.adaptive_avg_pool1d: lambda ctx, call, input, output_size: _adaptive(ctx, call, input, output_size, "avg", 1),
    F.adaptive_avg_pool2d: lambda ctx, call, input, output_size: _adaptive(ctx, call, input, output_size, "avg", 2),
    F.interpolate: _upsample,
    torch.sigmoid: _table_fn("sigmoid"), F.sigmoid: _table_fn("sigmoid"), torch.tanh: _table_fn("tanh"),
    F.tanh: _table_fn("tanh"), F.silu: _table_fn("silu"), F.gelu: _table_fn("gelu"), torch.exp: _table_fn("exp"),
    torch.sqrt: _table_fn("sqrt"), torch.log: _table_fn("log"), torch.sin: _table_fn("sin"),
    torch.cos: _table_fn("cos"), torch.reciprocal: _table_fn("reciprocal"), torch.rsqrt: _table_fn("rsqrt"),
    torch.softmax: _softmax_fn, F.softmax: _softmax_fn,
    F.dropout: _dropout,
    torch.sum: _sum, torch.mean: _mean, torch.amax: _amax("max"), torch.amin: _amax("min"),
    torch.cat: _concat, torch.concat: _concat, torch.concatenate: _concat, torch.stack: _stack,
    torch.flatten: _flatten, torch.reshape: _reshape_fn, torch.permute: _permute,
    torch.transpose: _transpose, torch.swapaxes: _transpose, torch.swapdims: _transpose,
    torch.unsqueeze: _unsqueeze, torch.squeeze: _squeeze, torch.unflatten: _unflatten,
    operator.getitem: _getitem, getattr: _getattr,
}

#: ``Tensor method name -> handler(ctx, call, self, *args, **kwargs)``
METHODS: dict[str, Callable] = {
    "add": _ADD, "add_": _ADD, "__add__": _ADD, "sub": _SUB, "sub_": _SUB, "mul": _MUL, "mul_": _MUL,
    "div": _div, "div_": _div, "neg": _neg, "abs": _abs, "matmul": _matmul, "__matmul__": _matmul, "bmm": _matmul, "square": _square, "pow": _pow,
    "__pow__": _pow,
    "__radd__": _rbinary("add"), "__rsub__": _rbinary("sub"), "__rmul__": _rbinary("mul"),
    "maximum": _extremum("maximum"), "minimum": _extremum("minimum"), "max": _MAX, "min": _MIN,
    "relu": _relu, "relu_": _relu, "clamp": _clamp, "clip": _clamp, "clamp_": _clamp,
    "sum": _sum, "mean": _mean, "amax": _amax("max"), "amin": _amax("min"),
    "sigmoid": _table_fn("sigmoid"), "tanh": _table_fn("tanh"), "exp": _table_fn("exp"), "sqrt": _table_fn("sqrt"),
    "log": _table_fn("log"), "sin": _table_fn("sin"), "cos": _table_fn("cos"), "reciprocal": _table_fn("reciprocal"),
    "rsqrt": _table_fn("rsqrt"), "softmax": _softmax_fn,
    "view": _view, "reshape": _view, "flatten": _flatten, "unflatten": _unflatten, "permute": _permute,
    "transpose": _transpose, "swapaxes": _transpose, "swapdims": _transpose,
    "unsqueeze": _unsqueeze, "squeeze": _squeeze, "size": _size_or_pending, "dim": _dim,
    **{m: _identity for m in ("contiguous", "clone", "detach", "float", "double", "to", "type_as", "requires_grad_",
                              "cpu")},
}


def function_name(fn) -> str:
    """``torch.sin``, ``F.relu``, ``operator.add``: how a user would write the function."""
    name = getattr(fn, "__name__", repr(fn))
    for prefix, mod in (("torch", torch), ("F", F), ("operator", operator), ("torch.special", torch.special),
                        ("torch.linalg", torch.linalg), ("torch.fft", torch.fft)):
        if getattr(mod, name, None) is fn:
            return f"{prefix}.{name}"
    mod = getattr(fn, "__module__", None)
    return f"{mod}.{getattr(fn, '__qualname__', name)}" if mod else name


def supported_functions() -> str:
    """The supported functions and methods, for messages."""
    names = {function_name(f) for f in FUNCTIONS}
    torch_fns = sorted(n[6:] for n in names if n.startswith("torch."))
    f_fns = sorted(n[2:] for n in names if n.startswith("F."))
    methods = sorted(m for m in METHODS if not m.startswith("_") and not m.endswith("_"))
    return (f"the operators + - * / @ abs() and indexing x[...]; torch.{{{', '.join(torch_fns)}}}; "
            f"F.{{{', '.join(f_fns)}}}; the tensor methods .{{{', '.join(methods)}}}")
