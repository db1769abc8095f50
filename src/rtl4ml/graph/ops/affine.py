"""Affine: ``y = x * scale + shift`` with constant, broadcasting parameters.

What a BatchNorm becomes at inference (the BatchNorm-folding pass merges it into a Dense
before it), and any per-channel scale and offset. With ``scale_type`` / ``shift_type`` the
float parameters are quantized first, as for :class:`~rtl4ml.graph.ops.dense.Dense`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ...fixed import FixedType, quantize
from ..tensor import TensorType
from .arith import add_types, aligner, mul_types
from .base import GraphError, Op, batched, wire_array
from .io import Constant
from .serial import floats_from_json, floats_to_json, type_from_json, type_to_json


@dataclass(frozen=True, eq=False)
class Affine(Op):
    """``scale`` and ``shift`` broadcast against the input's shape (e.g. ``(C,)`` for the last
    axis, ``(C, 1)`` for channels first)."""

    scale: np.ndarray
    shift: np.ndarray
    scale_type: FixedType | None = None
    shift_type: FixedType | None = None
    kind = "affine"

    def __post_init__(self) -> None:
        for name in ("scale", "shift"):
            v = np.array(getattr(self, name), dtype=np.float64)
            if not np.all(np.isfinite(v)):
                idx = tuple(int(i) for i in np.argwhere(~np.isfinite(v))[0])
                raise GraphError(f"affine {name} has a non-finite value {float(v[idx])} at index {idx}")
            v.setflags(write=False)
            object.__setattr__(self, name, v)

    @cached_property
    def _params(self) -> tuple[TensorType, TensorType]:
        s = Constant(self.scale if self.scale_type is None else quantize(self.scale, self.scale_type))
        t = Constant(self.shift if self.shift_type is None else quantize(self.shift, self.shift_type))
        return s.infer([]), t.infer([])

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        s, t = self._params
        y = add_types(mul_types(x, s), t)
        if y.shape != x.shape:
            raise GraphError(f"affine parameters of shapes {s.shape} and {t.shape} do not broadcast to the input "
                             f"shape {x.shape}")
        return y

    def emulator(self, in_types, out_type):
        (x,) = in_types
        s, t = self._params
        product = mul_types(x, s)
        sc = s.lo.astype(np.int64)
        nd = x.ndim
        up = aligner(product, out_type.fraction)
        tc = np.left_shift(np.broadcast_to(t.lo.astype(np.int64), out_type.shape),
                           out_type.fraction - np.broadcast_to(t.fraction, out_type.shape))
        return lambda inputs: up(batched(inputs[0], nd) * sc) + tc

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        shape = out_type.shape
        s, t = (p.map(lambda v: np.broadcast_to(v, shape)) for p in self._params)
        out = []
        for w, sw, tw in zip(inputs[0].flat, s.wires(), t.wires()):
            y = nl.const_mul(int(w), sw.lo, sw.fraction)
            out.append(nl.add(y, nl.const(tw.lo, tw.fraction)))
        return wire_array(out, out_type.shape)

    def to_json(self) -> dict:
        return {"scale": floats_to_json(self.scale), "shift": floats_to_json(self.shift),
                "scale_type": type_to_json(self.scale_type), "shift_type": type_to_json(self.shift_type)}

    @classmethod
    def from_json(cls, data: dict) -> "Affine":
        return cls(floats_from_json(data["scale"]), floats_from_json(data["shift"]),
                   type_from_json(data.get("scale_type")), type_from_json(data.get("shift_type")))
