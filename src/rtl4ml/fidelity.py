"""How far a design is from the float model: parameter quantization and output agreement.

Bit-exactness (``Design.verify``) proves that the RTL computes what the emulator computes;
it says nothing about whether the types chosen for a float model keep its meaning. This
module measures that:

* :func:`parameter_quantization` measures what post-training quantization does to every
  float parameter tensor of a Graph that carries a pending type (a Dense layer's weights
  and bias, a typed Constant, an Affine's scale and shift): how many values overflow the
  type (and wrap or clip), how many non-zero values become zero, the relative error. A
  tensor that loses too much is :attr:`ParameterQuantization.bad`, with a suggested type;
  :func:`warn_quantization` issues a :class:`QuantizationWarning` for each.
* :func:`compare_outputs` compares a design's outputs with the float model's on the same
  inputs (correlation, differences, argmax agreement) into a :class:`Fidelity`.
* :func:`input_range_warnings` finds input values outside the input types' ranges.

Warnings have their own categories (subclasses of :class:`Rtl4mlWarning`) so that they can
be filtered (``warnings.simplefilter("error", rtl4ml.fidelity.QuantizationWarning)``).
"""

from __future__ import annotations

import functools
import math
import os
import sys
import warnings
from dataclasses import dataclass

import numpy as np

from .fixed import MAX_WIDTH, FixedType, FixedTypeArray, overflows, quantize
from .graph.ops import Affine, Constant, Dense


class Rtl4mlWarning(UserWarning):
    """Base class of the warnings rtl4ml issues."""


class QuantizationWarning(Rtl4mlWarning):
    """A type that loses much of what it quantizes (parameters, or inputs outside its range)."""


class TimingWarning(Rtl4mlWarning):
    """A clock target the delay model says no pipeline can meet."""


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_SKIPPED = (_PACKAGE, os.path.abspath(functools.__file__))   # functools: cached properties


def warn(message: str, category: type[Warning] = Rtl4mlWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside rtl4ml (the user's line)."""
    frame, level = sys._getframe(1), 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_SKIPPED):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


# --------------------------------------------------------------------------- parameters

#: When a parameter tensor counts as badly quantized (see :attr:`ParameterQuantization.bad`).
MAX_RMS_ERROR = 0.5          # relative RMS error ||q - v|| / ||v||
MAX_ZEROED = 0.5             # fraction of the non-zero values that become zero
MAX_CLIPPED = 0.01           # fraction of the values a saturating type clips by more than 10 % of themselves


@dataclass(frozen=True)
class ParameterQuantization:
    """What rounding one tensor of float parameters ``v`` to ``type`` does (``q`` the result)."""

    layer: str                  # how messages name the layer, e.g. "layer '0' (Linear)"
    what: str                   # "weights", "bias", "constant", "scale", "shift"
    option: str                 # the option that sets the type, e.g. "weight_type"
    type: FixedType
    n: int                      # values
    n_nonzero: int              # non-zero values
    n_overflow: int             # values outside the type's range (wrapped, or clipped)
    n_overflow_far: int         # of those, values moved by more than 10 % of themselves
    n_zeroed: int               # non-zero values that became zero
    worst_relative_error: float  # max |q - v| / |v| over the non-zero values
    rms_relative_error: float   # ||q - v|| / ||v||
    largest: float              # max |v|
    suggestion: FixedType | None = None   # a type that keeps the values (when bad)
    suggestion_rms_error: float | None = None
    inherited: str = ""         # the option the type comes from when ``option`` is not given

    @property
    def bad(self) -> bool:
        """Any value wraps; or a saturating type clips more than 1 % of the values by more
        than 10 % of themselves; or more than half the non-zero values become zero; or the
        relative RMS error exceeds 50 %."""
        if self.n_nonzero == 0:
            return False
        if self.n_overflow and (self.type.overflow == "WRAP" or self.n_overflow_far > MAX_CLIPPED * self.n):
            return True
        return self.n_zeroed > MAX_ZEROED * self.n_nonzero or self.rms_relative_error > MAX_RMS_ERROR

    def message(self) -> str:
        """What went wrong and the suggestion, without the layer's name."""
        t = self.type
        parts = []
        if self.n_overflow:
            how = "wrap around (WRAP)" if t.overflow == "WRAP" else f"are clipped ({t.overflow})"
            parts.append(f"{self.n_overflow} of {self.n} {self.what} lie outside its range "
                         f"[{float(t.min_value):.4g}, {float(t.max_value):.4g}] and {how}")
        if self.n_zeroed:
            parts.append(f"{self.n_zeroed} of {self.n_nonzero} non-zero {self.what} become zero")
        parts.append(f"relative error {_pct(self.rms_relative_error)} RMS, {_pct(self.worst_relative_error)} at worst "
                     f"(largest |value| {self.largest:.3g})")
        src = f" (the {self.inherited}; no {self.option} given)" if self.inherited else ""
        msg = f"{self.option} {t}{src}: " + "; ".join(parts)
        if self.suggestion is not None:
            return msg + f". Try {self.option}='{self.suggestion}' (relative error {_pct(self.suggestion_rms_error)} RMS)."
        return msg + f". No {t.width}- to {t.width + 8}-bit type keeps these values well; check them."


def _pct(v: float) -> str:
    """A relative error: ``5.4%``, ``422%``, ``1.9e+04x`` (times the value)."""
    return f"{100 * v:.2g}%" if v < 0.1 else f"{100 * v:.0f}%" if v < 10 else f"{v:.0f}x" if v < 1e4 else f"{v:.1e}x"


def _measure(v: np.ndarray, t: FixedType) -> dict:
    v = np.asarray(v, dtype=np.float64)
    q = quantize(v, t)
    nz = v != 0
    norm = float(np.linalg.norm(v))
    err = np.abs(q - v)
    over = overflows(v, t)
    return dict(n=int(v.size), n_nonzero=int(nz.sum()), n_overflow=int(over.sum()),
                n_overflow_far=int(np.sum(over & (err > 0.1 * np.abs(v)))),
                n_zeroed=int(np.sum(nz & (q == 0))),
                worst_relative_error=float((err[nz] / np.abs(v[nz])).max(initial=0.0)),
                rms_relative_error=float(np.linalg.norm(q - v) / norm) if norm else 0.0,
                largest=float(np.abs(v).max(initial=0.0)))


def _is_bad(v: np.ndarray, t: FixedType) -> tuple[bool, dict]:
    m = _measure(v, t)
    r = ParameterQuantization("", "", "", t, **m)
    return r.bad, m


def suggest_type(v: np.ndarray, t: FixedType, extra_bits: int = 8) -> tuple[FixedType, float] | None:
    """A type with ``t``'s modes that keeps ``v`` (not :attr:`~ParameterQuantization.bad`):
    signed if any value is negative, integer bits for the largest ``|v|``, ``t``'s width
    or up to ``extra_bits`` more; with its relative RMS error. None when none does."""
    v = np.asarray(v, dtype=np.float64)
    m = float(np.abs(v).max(initial=0.0))
    if m == 0:
        return None
    signed = bool(t.signed or (v < 0).any())
    integer0 = math.floor(math.log2(m)) + 1   # 2**integer > m (integer bits without the sign)
    for width in range(max(t.width, int(signed) + 1), min(t.width + extra_bits, MAX_WIDTH) + 1):
        for integer in (integer0, integer0 + 1):   # rounding up may need one more bit
            c = FixedType(signed, integer, width - int(signed) - integer, t.rounding, t.overflow)
            bad, meas = _is_bad(v, c)
            if meas["n_overflow"] == 0:
                if not bad:
                    return c, meas["rms_relative_error"]
                break
    return None


def measure_parameter(values, t: FixedType, layer: str, what: str, option: str,
                      inherited: str = "") -> ParameterQuantization:
    """Measure rounding ``values`` to ``t``; a bad result carries a suggested type."""
    v = np.asarray(values, dtype=np.float64)
    m = _measure(v, t)
    r = ParameterQuantization(layer, what, option, t, **m, inherited=inherited)
    s = suggest_type(v, t) if r.bad else None
    return r if s is None else ParameterQuantization(layer, what, option, t, **m, suggestion=s[0],
                                                     suggestion_rms_error=s[1], inherited=inherited)


def parameter_quantization(graph, layers: dict[str, str] | None = None) -> list[ParameterQuantization]:
    """Measure every pending post-training quantization of ``graph``'s float parameters.

    ``layers`` maps node names to how messages name them (default ``node 'name'``). Nodes
    without pending types (exported by rtl4ml.nn, or exact constants) are not measured.
    """
    layers = layers or {}
    out = []
    for n in graph.nodes:
        label = layers.get(n.name, f"node {n.name!r}")
        op = n.op
        if isinstance(op, Dense) and op.weight_type is not None:
            out.append(measure_parameter(op.weight, op.weight_type, label, "weights", "weight_type"))
            bt = op.bias_type or op.weight_type
            out.append(measure_parameter(op.bias, bt, label, "bias values", "bias_type",
                                         "weight_type" if bt == op.weight_type else ""))
        elif isinstance(op, Constant) and op.type is not None:
            out.append(measure_parameter(op.values, op.type, label, "constant values", "weight_type"))
        elif isinstance(op, Affine):
            for what, v, t in (("scale values", op.scale, op.scale_type), ("shift values", op.shift, op.shift_type)):
                if t is not None:
                    out.append(measure_parameter(v, t, label, what, what.split()[0] + "_type"))
    return out


def warn_quantization(graph, layers: dict[str, str] | None = None) -> list[ParameterQuantization]:
    """:func:`parameter_quantization`, with one :class:`QuantizationWarning` per layer that has
    bad results (which it returns)."""
    bad = [r for r in parameter_quantization(graph, layers) if r.bad]
    for layer in dict.fromkeys(r.layer for r in bad):
        warn(f"{layer}: " + " ".join(r.message() for r in bad if r.layer == layer), QuantizationWarning)
    return bad


# --------------------------------------------------------------------------- inputs


def input_range_warnings(names: list[str], arrays: list[np.ndarray], types: list[FixedTypeArray]) -> list[str]:
    """One message per input with values outside its type's range (which wrap or saturate).

    ``arrays[k]`` is (N, *shape) for ``types[k]`` of that shape.
    """
    msgs = []
    for name, a, t in zip(names, arrays, types):
        a = np.asarray(a)
        if a.dtype.kind not in "iubf" or a.shape[1:] != t.shape or a.size == 0:
            continue
        bad = overflows(a, t)
        k = int(bad.sum())
        if not k:
            continue
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        te = t[idx[1:]]
        value = a[idx]
        how = "wrap around (WRAP)" if t.overflow == "WRAP" else f"saturate ({t.overflow})"
        msgs.append(f"input {name!r}: {k} of {a.size} values lie outside the input type's range and {how}; the first, "
                    f"{name}[{', '.join(map(str, idx))}] = {float(value):g}, is outside {te} "
                    f"[{float(te.min_value):g}, {float(te.max_value):g}] and becomes "
                    f"{float(quantize(np.asarray(value), te)):g}")
    return msgs


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class OutputFidelity:
    """One output of a design against the float model's, over ``n_samples`` samples.

    ``correlation``: the lowest, over the output's elements, of the Pearson correlation
    across samples between design and float model (elements where the float model is
    constant are skipped; NaN when all are). ``argmax_agreement``: for outputs with more
    than one value on the last axis, the fraction of samples (rows) whose argmax agrees.
    """

    name: str
    n_samples: int
    correlation: float
    max_abs_difference: float
    mean_abs_difference: float
    argmax_agreement: float | None = None

    def __str__(self) -> str:
        c = "n/a" if math.isnan(self.correlation) else f"{self.correlation:.4f}"
        s = (f"output {self.name!r}: correlation {c}, max |difference| {self.max_abs_difference:.4g}, "
             f"mean |difference| {self.mean_abs_difference:.4g}")
        if self.argmax_agreement is not None:
            s += f", argmax agrees on {100 * self.argmax_agreement:.2f}%"
        return s + f" ({self.n_samples} samples)"


@dataclass(frozen=True)
class Fidelity:
    """The design's outputs against the float model's: one :class:`OutputFidelity` per output."""

    outputs: tuple[OutputFidelity, ...]

    def __getitem__(self, key: int | str) -> OutputFidelity:
        if isinstance(key, str):
            for o in self.outputs:
                if o.name == key:
                    return o
            raise KeyError(f"no output {key!r}; outputs: {[o.name for o in self.outputs]}")
        return self.outputs[key]

    @property
    def correlation(self) -> float:
        """The lowest correlation of any output (NaN only when no output has one)."""
        vals = [o.correlation for o in self.outputs if not math.isnan(o.correlation)]
        return min(vals) if vals else math.nan

    @property
    def max_abs_difference(self) -> float:
        return max(o.max_abs_difference for o in self.outputs)

    @property
    def argmax_agreement(self) -> float | None:
        """The lowest argmax agreement of the outputs that have one (None when none does)."""
        vals = [o.argmax_agreement for o in self.outputs if o.argmax_agreement is not None]
        return min(vals) if vals else None

    def __str__(self) -> str:
        return "\n".join(f"design vs float model, {o}" for o in self.outputs)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Lowest per-column Pearson correlation of (N, k) arrays ``a`` (design) and ``b`` (reference)."""
    if len(a) < 2:
        return math.nan
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    sa, sb = np.sqrt((a * a).sum(axis=0)), np.sqrt((b * b).sum(axis=0))
    live = sb > 0
    if not live.any():
        return math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(sa[live] > 0, (a * b).sum(axis=0)[live] / (sa[live] * sb[live]), 0.0)
    return float(np.clip(c, -1.0, 1.0).min())


def compare_outputs(names: list[str], got: list[np.ndarray], want: list[np.ndarray]) -> Fidelity:
    """Compare the design's outputs ``got`` with the float model's ``want`` (same shapes)."""
    outs = []
    for name, g, w in zip(names, got, want):
        g, w = np.asarray(g, dtype=np.float64), np.asarray(w, dtype=np.float64)
        if w.shape != g.shape:
            if w.size != g.size:
                raise ValueError(f"the float model's output {name!r} has shape {w.shape}, the design's {g.shape}")
            w = w.reshape(g.shape)
        n = len(g)
        d = np.abs(g - w)
        arg = None
        if g.ndim >= 2 and g.shape[-1] > 1 and n:
            arg = float(np.mean(g.argmax(axis=-1) == w.argmax(axis=-1)))
        outs.append(OutputFidelity(name, n, _correlation(g.reshape(n, -1), w.reshape(n, -1)),
                                   float(d.max(initial=0.0)), float(d.mean()) if d.size else 0.0, arg))
    return Fidelity(tuple(outs))
