"""QAT functions by table: QTable (any named unary function), QSigmoid, QTanh, QSoftmax.

In hardware a unary function of a narrow fixed-point value is a table (see
:mod:`rtl4ml.graph.ops.lookup`), whose entries are the function's values quantized to the
output type. Here that output type is a learnable quantizer (per-element fractional bits,
saturating), so training chooses how many bits each table keeps. In training the torch
function gives the gradient; in evaluation the entries are computed exactly as the exported
table computes them (the same numpy function, then the quantizer in float64), so the model
equals the design bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..fixed import FixedType, quantize
from ..graph.composite import softmax_types
from ..graph.ops.lookup import FUNCTIONS
from .export import export_softmax, export_table
from .quantizer import ActivationQuantizer, QuantizerError

#: torch versions of the named functions, for the training gradient
_TORCH = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "exp": torch.exp, "log": torch.log,
          "reciprocal": torch.reciprocal, "sqrt": torch.sqrt, "rsqrt": torch.rsqrt,
          "gelu": torch.nn.functional.gelu, "silu": torch.nn.functional.silu, "sin": torch.sin, "cos": torch.cos,
          "abs": torch.abs, "square": torch.square, "exp_neg": lambda x: torch.exp(-x)}

#: (signed, initial integer bits) of the output type of functions with a known range
_RANGE = {"sigmoid": (False, 0.0), "tanh": (True, 0.0)}


def _numpy(x: torch.Tensor, fn) -> torch.Tensor:
    with np.errstate(all="ignore"):
        return torch.from_numpy(np.asarray(fn(x.detach().cpu().numpy().astype(np.float64)), dtype=np.float64))


class QTable(nn.Module):
    """``quantize(f(x))`` for a named unary function ``f`` (see
    :data:`rtl4ml.graph.ops.lookup.FUNCTIONS`), exported as a lookup table.

    ``size``: the sample shape (or ``None`` to take it from the first batch). The output
    quantizer rounds to nearest and saturates; its keyword arguments (``init_f``,
    ``granularity``, ``signed``, ``init_i``, ...) go to
    :class:`~rtl4ml.nn.quantizer.ActivationQuantizer`. Its input must be narrow (at most 12
    bits per element): put a QActivation in front.
    """

    def __init__(self, function: str, size=None, **quantizer) -> None:
        super().__init__()
        if function not in FUNCTIONS or function not in _TORCH:
            raise QuantizerError(f"unknown table function {function!r}; known: {', '.join(sorted(_TORCH))}")
        self.function = function
        signed, init_i = _RANGE.get(function, (None, None))
        quantizer.setdefault("rounding", "RND")
        quantizer.setdefault("overflow", "SAT")
        quantizer.setdefault("init_f", 7.0)
        if signed is not None:
            quantizer.setdefault("signed", signed)
            quantizer.setdefault("init_i", init_i)
        self.quantizer = ActivationQuantizer(size, **quantizer)

    def extra_repr(self) -> str:
        return f"function={self.function!r}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.quantizer(_TORCH[self.function](x))
        y = _numpy(x, FUNCTIONS[self.function]).to(x.device)
        return self.quantizer(y.to(x.dtype) if x.dtype == torch.float64 else y).to(x.dtype)

    def rtl4ml_export(self, ctx, name: str, inputs: list) -> str:
        return export_table(self, ctx, name, inputs)


class QSigmoid(QTable):
    """``sigmoid`` by table; output ``ufixed`` in ``[0, 1)`` with learnable fractional bits."""

    def __init__(self, size=None, **quantizer) -> None:
        super().__init__("sigmoid", size, **quantizer)


class QTanh(QTable):
    """``tanh`` by table; output ``fixed`` in ``[-1, 1)`` with learnable fractional bits."""

    def __init__(self, size=None, **quantizer) -> None:
        super().__init__("tanh", size, **quantizer)


class QSoftmax(nn.Module):
    """Softmax over ``dim`` as the hardware computes it (tables for ``exp`` and ``1/x``, see
    :func:`rtl4ml.graph.composite.softmax`), with a learnable output quantizer.

    ``types``: ``input_type``, ``exp_type``, ``sum_type``, ``recip_type`` of the internal
    steps (defaults from :func:`~rtl4ml.graph.composite.softmax_types`). Training uses
    ``torch.softmax``; evaluation reproduces every rounding of the hardware.
    """

    def __init__(self, size=None, dim: int = -1, **types) -> None:
        super().__init__()
        self.dim = int(dim)
        bad = set(types) - {"input_type", "exp_type", "sum_type", "recip_type"}
        if bad:
            raise QuantizerError(f"unknown QSoftmax option(s) {sorted(bad)}")
        self.types = {k: str(v) for k, v in types.items()}
        self.quantizer = ActivationQuantizer(size, rounding="RND", overflow="SAT", signed=False, init_i=0.0,
                                             init_f=8.0)

    def extra_repr(self) -> str:
        return f"dim={self.dim}" + "".join(f", {k}={v!r}" for k, v in self.types.items())

    def internal_types(self, n: int) -> dict[str, FixedType]:
        return softmax_types(n, **self.types)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dim == 0 or self.dim == -x.ndim:
            raise QuantizerError("QSoftmax over the batch axis (dim 0) is not supported")
        if self.training:
            return self.quantizer(torch.softmax(x, dim=self.dim))
        if not self.quantizer.initialized:       # sized (and typed) by the model's input, not the float64 below
            self.quantizer._check_input(x)
        t = self.internal_types(x.shape[self.dim])
        v = x.detach().cpu().numpy().astype(np.float64)
        v = np.maximum(v.max(axis=self.dim, keepdims=True) - v, 0)
        e = quantize(np.exp(-quantize(v, t["input_type"])), t["exp_type"])
        s = quantize(e.sum(axis=self.dim, keepdims=True), t["sum_type"])
        with np.errstate(divide="ignore"):
            r = 1.0 / s
        r = quantize(np.where(np.isinf(r), float(t["recip_type"].max_value), r), t["recip_type"])
        return self.quantizer(torch.from_numpy(e * r).to(x.device)).to(x.dtype)

    def rtl4ml_export(self, ctx, name: str, inputs: list) -> str:
        return export_softmax(self, ctx, name, inputs)
