"""Conv: N-d convolution (1-d and 2-d in practice), channels first like PyTorch.

A convolution is a Dense layer applied to every window of the input: the windows are
wiring (an index map, padding reads a constant zero), and the product-sum per window is
:class:`~rtl4ml.graph.ops.dense.Dense` on rows. So the exact types, the float32/float64
emulation and the CMVM lowering are Dense's: the kernel's adder graph is solved once per set
of live inputs (the interior, and each kind of padded border) and emitted once per output
position, so lowering time and netlist size grow linearly with the number of positions.
Groups (depthwise included) are one Dense per group on that group's channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ...fixed import FixedType
from ..tensor import TensorType, int_array
from .base import GraphError, Op, wire_array
from .dense import Dense
from .serial import floats_from_json, floats_to_json, type_from_json, type_to_json

#: Elements per emulation slice (batch x positions x window): bounds the memory of im2col.
_SLICE_ELEMENTS = 1 << 23


def _tuple(v, n: int, what: str) -> tuple[int, ...]:
    t = (int(v),) * n if np.isscalar(v) else tuple(int(a) for a in v)
    if len(t) != n:
        raise GraphError(f"{what} needs {n} values (one per spatial axis), got {t}")
    return t


@lru_cache(maxsize=64)
def window_index(in_shape: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
                 padding: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
    """Flat indices of each window's elements in one channel of ``in_shape`` (spatial only):
    ``(positions, prod(kernel))``, ``-1`` where the window reads padding; and the output's
    spatial shape."""
    out = tuple((s + 2 * p - d * (k - 1) - 1) // st + 1
                for s, k, st, p, d in zip(in_shape, kernel, stride, padding, dilation))
    if any(o < 1 for o in out):
        raise GraphError(f"a window of {kernel} (dilation {dilation}, padding {padding}) does not fit an input of "
                         f"spatial shape {in_shape}")
    coords = []
    for s, k, st, p, d, o in zip(in_shape, kernel, stride, padding, dilation, out):
        c = np.arange(o)[:, None] * st - p + np.arange(k)[None, :] * d       # (o, k) coordinate on this axis
        coords.append(np.where((c >= 0) & (c < s), c, -1))
    n = len(in_shape)
    idx = np.zeros(out + kernel, dtype=np.int64)
    valid = np.ones(out + kernel, dtype=bool)
    for ax, c in enumerate(coords):   # broadcast axis ax's (o, k) into (o1..on, k1..kn)
        shape = [1] * (2 * n)
        shape[ax], shape[n + ax] = c.shape
        c = c.reshape(shape)
        idx = idx * in_shape[ax] + np.maximum(c, 0)
        valid &= c >= 0
    idx = np.where(valid, idx, -1).reshape(int(np.prod(out)), int(np.prod(kernel)))
    idx.setflags(write=False)
    return idx, out


@dataclass(frozen=True, eq=False)
class Conv(Op):
    """``weight`` (C_out, C_in / groups, *kernel), ``bias`` (C_out,); input (C_in, *spatial)."""

    weight: np.ndarray
    bias: np.ndarray
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    dilation: tuple[int, ...] = ()
    groups: int = 1
    weight_type: FixedType | None = None
    bias_type: FixedType | None = None
    kind = "conv"
    float_codes = True

    def __post_init__(self) -> None:
        w = np.array(self.weight, dtype=np.float64)
        b = np.array(self.bias, dtype=np.float64)
        if w.ndim < 3 or b.shape != (w.shape[0],):
            raise GraphError(f"conv weight must be (C_out, C_in/groups, *kernel) and bias (C_out,), got {w.shape} "
                             f"and {b.shape}")
        n = w.ndim - 2
        g = int(self.groups)
        if g < 1 or w.shape[0] % g:
            raise GraphError(f"conv groups={g} must divide the {w.shape[0]} output channels")
        for name, v, default in (("stride", self.stride, 1), ("padding", self.padding, 0),
                                 ("dilation", self.dilation, 1)):
            t = _tuple(v if np.size(v) else default, n, f"conv {name}")
            if any(a < (0 if name == "padding" else 1) for a in t):
                raise GraphError(f"conv {name} {t} must be {'non-negative' if name == 'padding' else 'positive'}")
            object.__setattr__(self, name, t)
        w.setflags(write=False)
        b.setflags(write=False)
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "bias", b)
        object.__setattr__(self, "groups", g)

    @property
    def kernel(self) -> tuple[int, ...]:
        return self.weight.shape[2:]

    def _windows(self, x: TensorType) -> tuple[np.ndarray, tuple[int, ...]]:
        n = len(self.kernel)
        cin = self.weight.shape[1] * self.groups
        if x.ndim != n + 1 or x.shape[0] != cin:
            raise GraphError(f"conv with a {n}-d kernel and {cin} input channels expects an input of shape "
                             f"({cin}, {', '.join('L' * n)}), got {x.shape}")
        return window_index(x.shape[1:], self.kernel, self.stride, self.padding, self.dilation)

    def _plan(self, x: TensorType):
        """Per group: (flat input indices (P, Cg*K), -1 = zero; the rows' TensorType; its Dense)."""
        win, out = self._windows(x)
        spatial = int(np.prod(x.shape[1:]))
        cg = self.weight.shape[1]
        og = self.weight.shape[0] // self.groups
        lo, hi, f = (a.reshape(-1) for a in (x.lo, x.hi, x.fraction))
        plans = []
        for g in range(self.groups):
            chans = np.arange(g * cg, (g + 1) * cg)
            # (P, Cg, K) -> (P, Cg*K), the order of weight[o].reshape(-1)
            idx = np.where(win[:, None, :] >= 0, chans[None, :, None] * spatial + win[:, None, :], -1)
            idx = idx.reshape(len(win), -1)
            first = np.repeat(chans * spatial, win.shape[1])[None, :]
            near = np.where(idx >= 0, idx, first)     # padding takes the fraction of its channel's first element
            pad = idx < 0
            t = TensorType(int_array(np.where(pad, 0, lo[near])), int_array(np.where(pad, 0, hi[near])), f[near])
            w = self.weight[g * og:(g + 1) * og].reshape(og, -1).T
            dense = Dense(w, self.bias[g * og:(g + 1) * og], self.weight_type, self.bias_type)
            plans.append((idx, t, dense))
        return plans, out

    def sum_bound(self, x: TensorType) -> int:
        """Bound on every partial sum, in units of the output's LSB (as ``Dense.sum_bound``)."""
        plans, _ = self._plan(x)
        return max(d.sum_bound(t) for _, t, d in plans)

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        plans, out = self._plan(x)
        ys = [d.infer([t]) for _, t, d in plans]                     # each (P, og)
        cat = [np.concatenate([getattr(y, a) for y in ys], axis=1).T.reshape((self.weight.shape[0],) + out)
               for a in ("lo", "hi", "fraction")]
        return TensorType(*cat)

    def emulator(self, in_types, out_type):
        (x,) = in_types
        plans, out = self._plan(x)
        runs = [(idx, d.emulator([t], d.infer([t]))) for idx, t, d in plans]
        cout = self.weight.shape[0]
        window = max(idx.size for idx, _ in runs)

        def run(inputs):
            v = inputs[0].reshape(len(inputs[0]), -1)
            step = max(1, _SLICE_ELEMENTS // max(window, 1))
            parts = []
            for s in range(0, len(v), step):
                vz = np.concatenate([v[s:s + step], np.zeros((len(v[s:s + step]), 1), dtype=v.dtype)], axis=1)
                ys = [fn([vz[:, idx]]) for idx, fn in runs]           # -1 reads the zero column
                parts.append(np.concatenate(ys, axis=2).transpose(0, 2, 1))
            y = np.concatenate(parts) if len(parts) > 1 else parts[0]
            return y.reshape((len(v), cout) + out)
        return run

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        (x,) = in_types
        plans, out = self._plan(x)
        flat = np.append(inputs[0].reshape(-1), nl.const(0, 0))
        ys = [d.lower(nl, [flat[idx]], [t], d.infer([t])) for idx, t, d in plans]
        return wire_array(np.concatenate(ys, axis=1).T, out_type.shape)

    def describe(self) -> str:
        cout, cg = self.weight.shape[:2]
        k = "x".join(map(str, self.kernel))
        extra = f", groups {self.groups}" if self.groups > 1 else ""
        return f"conv{len(self.kernel)}d {cg * self.groups}->{cout} {k}, stride {self.stride}{extra}"

    def to_json(self) -> dict:
        return {"weight": floats_to_json(self.weight), "shape": list(self.weight.shape),
                "bias": floats_to_json(self.bias), "stride": list(self.stride), "padding": list(self.padding),
                "dilation": list(self.dilation), "groups": self.groups,
                "weight_type": type_to_json(self.weight_type), "bias_type": type_to_json(self.bias_type)}

    @classmethod
    def from_json(cls, data: dict) -> "Conv":
        return cls(floats_from_json(data["weight"]).reshape(tuple(data["shape"])), floats_from_json(data["bias"]),
                   tuple(data["stride"]), tuple(data["padding"]), tuple(data["dilation"]), int(data["groups"]),
                   type_from_json(data.get("weight_type")), type_from_json(data.get("bias_type")))
