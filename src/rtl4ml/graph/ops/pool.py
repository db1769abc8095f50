"""Pool (max or sum over windows, per channel) and Upsample (nearest), channels first.

Windows are those of :func:`~rtl4ml.graph.ops.conv.window_index`. A max pool ignores padding
(PyTorch pads with -inf); a sum pool counts padding as zero, so an average pool with
PyTorch's default ``count_include_pad=True`` is this sum times the constant ``1/prod(kernel)``
(the frontends add that Affine). Both are exact; a window becomes a balanced tree of adders
or of comparators and selects. Upsampling only repeats wires.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...fixed import MAX_WIDTH, WidthError
from ..tensor import TensorType, int_array
from .base import GraphError, Op, wire_array
from .conv import _tuple, window_index
from .reduce import _tree

POOLS = ("max", "sum")
_LOWEST = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Pool(Op):
    """``reduction`` in :data:`POOLS` over each window of ``kernel`` in every channel."""

    reduction: str
    kernel: tuple[int, ...]
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    kind = "pool"

    def __post_init__(self) -> None:
        if self.reduction not in POOLS:
            raise GraphError(f"unknown pooling {self.reduction!r}; expected one of {POOLS}")
        k = tuple(int(a) for a in self.kernel)
        n = len(k)
        if not n or min(k) < 1:
            raise GraphError(f"pooling kernel {k} must have positive sizes")
        object.__setattr__(self, "kernel", k)
        for name, v, default in (("stride", self.stride, k), ("padding", self.padding, 0),
                                 ("dilation", self.dilation, 1)):
            t = _tuple(v if np.size(v) else default, n, f"pooling {name}")
            if any(a < (0 if name == "padding" else 1) for a in t):
                raise GraphError(f"pooling {name} {t} must be {'non-negative' if name == 'padding' else 'positive'}")
            object.__setattr__(self, name, t)
        if any(2 * p > kk for p, kk in zip(self.padding, k)):
            raise GraphError(f"pooling padding {self.padding} must be at most half the kernel {k}")

    def _windows(self, x: TensorType) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        """Flat indices (C, P, K) into the input (``-1``: padding), and the output shape."""
        if x.ndim != len(self.kernel) + 1:
            axes = ", ".join("L" * len(self.kernel))
            raise GraphError(f"a {len(self.kernel)}-d pooling expects an input of shape (C, {axes}), got {x.shape}")
        win, out = window_index(x.shape[1:], self.kernel, self.stride, self.padding, self.dilation)
        spatial = int(np.prod(x.shape[1:]))
        c = np.arange(x.shape[0])[:, None, None]
        idx = np.where(win[None] >= 0, c * spatial + win[None], -1)
        return idx, (x.shape[0],) + out

    def _aligned(self, x: TensorType, idx: np.ndarray):
        """Per window element: aligned lo, hi (padding: 0 for a sum, none for a max) and shift."""
        lo, hi, f = (a.reshape(-1) for a in (x.lo, x.hi, x.fraction))
        pad = idx < 0
        safe = np.where(pad, 0, idx)
        fe = np.where(pad, -(1 << 30), f[safe])
        fo = fe.max(axis=-1)                                       # (C, P)
        up = np.where(pad, 0, fo[..., None] - fe)
        a = np.where(pad, 0, lo[safe] << up.astype(object))
        b = np.where(pad, 0, hi[safe] << up.astype(object))
        return a, b, up, fo, pad

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        idx, shape = self._windows(x)
        a, b, _, fo, pad = self._aligned(x, idx)
        if self.reduction == "sum":
            lo, hi = a.sum(axis=-1), b.sum(axis=-1)
        else:
            k = idx.shape[-1]
            rows = zip(a.reshape(-1, k), b.reshape(-1, k), ~pad.reshape(-1, k))
            lo, hi = zip(*[(r[v].max(), q[v].max()) for r, q, v in rows])
        return TensorType(int_array(lo, shape), int_array(hi, shape), fo.reshape(shape))

    def emulator(self, in_types, out_type):
        (x,) = in_types
        idx, shape = self._windows(x)
        a, b, up, _, pad = self._aligned(x, idx)
        ends = np.concatenate([a.reshape(-1), b.reshape(-1), out_type.lo.reshape(-1), out_type.hi.reshape(-1)])
        bits = max(int(abs(v)).bit_length() for v in ends)
        if bits >= MAX_WIDTH:
            raise WidthError(f"{self.reduction} pooling reaches {bits + 1}-bit values, more than the {MAX_WIDTH} bits "
                             "the int64 emulator represents exactly")
        fill = 0 if self.reduction == "sum" else _LOWEST
        reduce = np.sum if self.reduction == "sum" else np.max

        def run(inputs):
            v = inputs[0].reshape(len(inputs[0]), -1).astype(np.int64, copy=False)
            vz = np.concatenate([v, np.full((len(v), 1), fill, dtype=np.int64)], axis=1)
            w = vz[:, idx]
            if up.any():
                w = np.where(pad, fill, np.left_shift(w, up))
            return reduce(w, axis=-1).reshape((len(v),) + shape)
        return run

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        (x,) = in_types
        idx, shape = self._windows(x)
        flat = inputs[0].reshape(-1)
        combine = nl.add if self.reduction == "sum" else nl.maximum
        out = [_tree(combine, [int(flat[i]) for i in window if i >= 0]) for window in idx.reshape(-1, idx.shape[-1])]
        return wire_array(out, shape)

    def describe(self) -> str:
        return f"{self.reduction} pool {'x'.join(map(str, self.kernel))}, stride {self.stride}"

    def to_json(self) -> dict:
        return {"reduction": self.reduction, "kernel": list(self.kernel), "stride": list(self.stride),
                "padding": list(self.padding), "dilation": list(self.dilation)}

    @classmethod
    def from_json(cls, data: dict) -> "Pool":
        return cls(data["reduction"], tuple(data["kernel"]), tuple(data["stride"]), tuple(data["padding"]),
                   tuple(data["dilation"]))


@dataclass(frozen=True)
class Upsample(Op):
    """Nearest-neighbour upsampling by integer ``scale`` per spatial axis (channels first)."""

    scale: tuple[int, ...]
    kind = "upsample"
    float_codes = True

    def __post_init__(self) -> None:
        s = tuple(int(a) for a in self.scale)
        if not s or min(s) < 1:
            raise GraphError(f"upsampling scale {s} must be positive integers")
        object.__setattr__(self, "scale", s)

    def _index(self, shape: tuple[int, ...]) -> np.ndarray:
        if len(shape) != len(self.scale) + 1:
            raise GraphError(f"upsampling by {self.scale} expects an input of shape (C, {len(self.scale)} spatial "
                             f"axes), got {shape}")
        i = np.arange(int(np.prod(shape))).reshape(shape)
        for ax, s in enumerate(self.scale):
            i = np.repeat(i, s, axis=ax + 1)
        return i

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        i = self._index(x.shape)
        return x.map(lambda v: v.reshape(-1)[i])

    def emulator(self, in_types, out_type):
        i = self._index(in_types[0].shape)
        return lambda inputs: inputs[0].reshape(len(inputs[0]), -1)[:, i]

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        return inputs[0].reshape(-1)[self._index(in_types[0].shape)]

    def to_json(self) -> dict:
        return {"scale": list(self.scale)}

    @classmethod
    def from_json(cls, data: dict) -> "Upsample":
        return cls(tuple(data["scale"]))
