"""Fixed-point quantizers with learnable precision, exact in value and differentiable in bits.

Two quantizers, sharing the exact arithmetic of :mod:`rtl4ml.fixed`:

* :class:`WeightQuantizer` rounds constants (weights, biases) to a learnable number of
  fractional bits. A constant's integer bits follow from its own value, so it never
  overflows; its cost is the bit length of its code, and a code of 0 is a pruned weight.
* :class:`ActivationQuantizer` rounds data. Its integer bits come either from the range
  observed on data (``overflow="WRAP"``: free in hardware, fixed by
  :func:`rtl4ml.nn.calibrate`) or from a learnable parameter trained through the clip
  (``"SAT"`` / ``"SAT_SYM"``).

The value a quantizer returns is *exactly* the fixed-point value the hardware computes:
rounding, scaling and wrapping are done on integer-valued floats with powers of two built
exactly from their exponent bits, and the gradients are attached with terms whose value is exactly zero
(``q + (x - x.detach()) * mask + ...``), so they never perturb a bit. Gradients:

* straight-through for the rounding (``dq/dx = 1``, 0 where a SAT quantizer clips);
* ``dq/df = -ln2 * (q(x) - x)`` for the fractional bits ``f`` (the HGQ surrogate: the
  rounding error shrinks by half per extra bit);
* ``dq/di = ±ln2 * 2**i`` where a SAT quantizer clips, through its bound ``±2**i``.

Learnable bit counts are real-valued parameters; the forward pass uses them rounded to the
nearest integer (``torch.round``, ties to even) with a straight-through gradient.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.parameter import UninitializedParameter

from ..fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedTypeArray

LN2 = math.log(2.0)
GRANULARITIES = ("element", "channel", "layer", "feature")
#: Bit counts are clamped to this range (powers of two in it are exact in float32 and float64).
MAX_SHIFT = 62


class QuantizerError(ValueError):
    """A quantizer used in a way that cannot give correct hardware (the message says what to do)."""


_WARNED: set[int] = set()


def cast_checked(y64: torch.Tensor, dtype: torch.dtype, who: nn.Module) -> torch.Tensor:
    """Cast an exact float64 result to the module dtype, warning (once per module) if that rounds."""
    if dtype == torch.float64:
        return y64
    y = y64.to(dtype)
    if id(who) not in _WARNED and not torch.equal(y.detach().to(torch.float64), y64.detach()):
        _WARNED.add(id(who))
        warnings.warn(
            f"{type(who).__name__}: a value is too wide for {dtype} and was rounded, so this {dtype} "
            "forward pass can differ from the hardware; call model.double() for the bit-exact reference",
            RuntimeWarning, stacklevel=3)
    return y


# --------------------------------------------------------------------------- exact helpers


def pow2(k: torch.Tensor) -> torch.Tensor:
    """Exact ``2.0**k`` for integer-valued ``k`` in ``[-MAX_SHIFT, MAX_SHIFT]``, built from the
    IEEE exponent bits (never ``exp2``, whose last bit is not guaranteed)."""
    e = k.detach().clamp(-MAX_SHIFT, MAX_SHIFT).to(torch.int64)
    if k.dtype == torch.float32:
        return ((e + 127) << 23).to(torch.int32).view(torch.float32)
    return ((e + 1023) << 52).view(torch.float64)


def round_codes(y: torch.Tensor, rounding: str) -> torch.Tensor:
    """Integer-valued codes of the exact scaled values ``y``, as :func:`rtl4ml.fixed.to_codes` rounds."""
    fl = torch.floor(y)
    if rounding == "TRN":
        return fl
    r = y - fl  # exact: the fractional part of a float
    if rounding == "RND":
        return fl + (r >= 0.5).to(y.dtype)
    odd = torch.fmod(fl, 2) != 0
    return fl + ((r > 0.5) | ((r == 0.5) & odd)).to(y.dtype)


def bit_length(n: torch.Tensor) -> torch.Tensor:
    """Bits of the non-negative integer-valued ``n`` (``int.bit_length``), exact via frexp."""
    _, e = torch.frexp(n)
    return torch.where(n > 0, e.to(n.dtype), torch.zeros_like(n))


def code_width(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(width, signed) of the narrowest two's-complement code holding ``[lo, hi]``.

    The torch twin of :func:`rtl4ml.fixed.code_width`.
    """
    zero = torch.zeros_like(hi)
    whi = bit_length(torch.maximum(hi, zero))
    wlo = bit_length(torch.maximum(-lo - 1, zero))
    signed = lo < 0
    return torch.where(signed, 1 + torch.maximum(whi, wlo), whi), signed


def code_bounds(width: torch.Tensor, signed: torch.Tensor, overflow: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest and largest code of each type (the saturation bounds for SAT / SAT_SYM)."""
    s = signed.to(width.dtype)
    live = width > 0
    hi = torch.where(live, pow2(torch.clamp(width - s, min=0)) - 1, torch.zeros_like(width))
    lo = torch.where(live & signed, -pow2(torch.clamp(width - 1, min=0)), torch.zeros_like(width))
    if overflow == "SAT_SYM":   # ap_fixed: the most negative code goes, except in 1 bit (see fixed.saturate_bounds)
        lo = torch.where(signed & (width >= 2), -hi, lo)
    return lo, hi


def wrap_codes(q: torch.Tensor, width: torch.Tensor, signed: torch.Tensor) -> torch.Tensor:
    """Two's-complement wrap of integer-valued ``q`` into ``width`` bits (exact in float64)."""
    lo, _ = code_bounds(width, signed, "WRAP")
    m = pow2(width)
    r = torch.fmod(q, m)  # exact, |r| < 2**width
    return torch.remainder(r - lo, m) + lo


def ste_round(v: torch.Tensor) -> torch.Tensor:
    """``round(v)`` in value, identity in gradient."""
    return v + (torch.round(v) - v).detach()


def param_shape(shape: Sequence[int], granularity: str, channel_axis: int = 0) -> tuple[int, ...]:
    """Shape of a per-element / per-channel / per-layer bit parameter for a tensor of ``shape``."""
    if granularity not in GRANULARITIES:
        raise QuantizerError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    shape = tuple(int(s) for s in shape)
    if granularity == "element":
        return shape
    if granularity == "layer":
        return (1,) * len(shape)
    if granularity == "feature":     # one per feature of the last axis, shared by every particle / position
        return (1,) * (len(shape) - 1) + shape[-1:]
    return tuple(s if k == channel_axis % len(shape) else 1 for k, s in enumerate(shape))


def _check_modes(rounding: str, overflow: str | None = None) -> None:
    if rounding not in ROUNDING_MODES:
        raise QuantizerError(f"unknown rounding mode {rounding!r}; expected one of {ROUNDING_MODES}")
    if overflow is not None and overflow not in OVERFLOW_MODES:
        raise QuantizerError(f"unknown overflow mode {overflow!r}; expected one of {OVERFLOW_MODES}")


def _check_bounds(name: str, bounds: tuple[float, float]) -> None:
    if len(bounds) != 2 or not -MAX_SHIFT < bounds[0] <= bounds[1] < MAX_SHIFT:
        raise QuantizerError(f"{name} {bounds} must be (low, high) with -{MAX_SHIFT} < low <= high < {MAX_SHIFT}")


class _BitsMixin:
    """Shared handling of the learnable fractional bits ``f``."""

    f: nn.Parameter
    f_bounds: tuple[float, float]
    #: A part of exportable layers that a saved model may contain (see rtl4ml.torch_common).
    rtl4ml_loadable = True

    def f_int(self) -> torch.Tensor:
        """The integer fractional bits in use: ``round(clamp(f))``, straight-through gradient."""
        lo, hi = self.f_bounds
        return ste_round(torch.clamp(self.f, lo, hi))


# --------------------------------------------------------------------------- weights


class WeightQuantizer(_BitsMixin, nn.Module):
    """Rounds a constant tensor to learnable fractional bits; integer bits follow from the value.

    A weight is a constant, so the hardware never overflows it: its type is exactly as wide as
    its code. ``bits(w)`` is the bit length of ``|code|`` (0 for a pruned weight), which is
    what a shift-and-add multiplier costs, with gradient 1 in ``f`` for live weights.
    """

    def __init__(self, shape: Sequence[int], *, granularity: str = "element", init_f: float = 6.0,
                 rounding: str = "RND", f_bounds: tuple[float, float] = (-16, 24), channel_axis: int = 0,
                 trainable: bool = True) -> None:
        super().__init__()
        _check_modes(rounding)
        _check_bounds("f_bounds", f_bounds)
        self.shape = tuple(int(s) for s in shape)
        self.granularity = granularity
        self.rounding = rounding
        self.f_bounds = (float(f_bounds[0]), float(f_bounds[1]))
        self.f = nn.Parameter(torch.full(param_shape(self.shape, granularity, channel_axis), float(init_f)),
                              requires_grad=trainable)

    def extra_repr(self) -> str:
        return f"shape={self.shape}, granularity={self.granularity!r}, rounding={self.rounding!r}"

    def codes(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(integer-valued codes, integer f) of ``w``, exact; no gradient."""
        fi = self.f_int().detach().to(w.dtype)
        return round_codes(w.detach() * pow2(fi), self.rounding), fi

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        fi = self.f_int().to(w.dtype)
        q = round_codes(w.detach() * pow2(fi.detach()), self.rounding) * pow2(-fi.detach())
        delta = (q - w.detach())
        return q + (w - w.detach()) + (fi - fi.detach()) * (-LN2 * delta)

    def bits(self, w: torch.Tensor) -> torch.Tensor:
        """Differentiable bit count per element: ``bit_length(|code|)``, 0 when pruned."""
        fs = self.f_int().to(w.dtype)
        width = bit_length(round_codes(w.detach() * pow2(fs.detach()), self.rounding).abs())
        return width + (fs - fs.detach()) * (width > 0).to(w.dtype)


# --------------------------------------------------------------------------- activations


def _f64_bits(t: torch.Tensor) -> torch.Tensor:
    """A float64 tensor stored losslessly as int64 (so ``model.float()`` cannot round it)."""
    return t.detach().to(torch.float64).contiguous().view(torch.int64).clone()


def _from_bits(b: torch.Tensor) -> torch.Tensor:
    return b.contiguous().view(torch.float64)


class ActivationQuantizer(_BitsMixin, nn.Module):
    """Quantizes data to per-element fixed-point types with learnable fractional bits.

    ``overflow="WRAP"``: integer bits (and the sign, unless ``signed`` is given) come from the
    range of the values seen: the last batch while training, and the range recorded by
    :func:`rtl4ml.nn.calibrate` at evaluation and export. Until calibrated, a WRAP quantizer
    only rounds (no overflow). ``overflow="SAT"`` / ``"SAT_SYM"``: learnable integer bits ``i``
    (initialised from the first training batch unless ``init_i`` is given), clipped values get
    a gradient on ``i``.

    ``size`` is the number of features, or the shape of one sample (``(C, H, W)`` for a
    feature map; ``granularity="channel"`` then means one type per channel, axis 0;
    ``"feature"`` one type per feature of the last axis shared by every particle of a
    ``(P, F)`` sample, ranges included: a permutation-invariant model needs it). It may
    be ``None``: the per-element parameters are then created at the first forward pass (run
    one before building the optimizer).
    """

    def __init__(self, size: int | Sequence[int] | None = None, *, granularity: str = "element", init_f: float = 6.0,
                 rounding: str = "TRN", overflow: str = "WRAP", signed: bool | None = None,
                 init_i: float | None = None, f_bounds: tuple[float, float] = (-16, 24),
                 i_bounds: tuple[float, float] = (-16, 32)) -> None:
        super().__init__()
        _check_modes(rounding, overflow)
        _check_bounds("f_bounds", f_bounds)
        _check_bounds("i_bounds", i_bounds)
        if granularity not in GRANULARITIES:
            raise QuantizerError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
        self.granularity = granularity
        self.rounding = rounding
        self.overflow = overflow
        self.signed = signed
        self.init_f = float(init_f)
        self.init_i = None if init_i is None else float(init_i)
        self.f_bounds = (float(f_bounds[0]), float(f_bounds[1]))
        self.i_bounds = (float(i_bounds[0]), float(i_bounds[1]))
        self.shape: tuple[int, ...] | None = None if size is None else (
            (int(size),) if isinstance(size, (int, np.integer)) else tuple(int(v) for v in size))
        self.size = None if self.shape is None else int(np.prod(self.shape))
        self.calibrating = False
        self._last_range: tuple[torch.Tensor, torch.Tensor] | None = None
        self._cal_acc: tuple[torch.Tensor, torch.Tensor] | None = None
        # Calibrated ranges: float64 values stored as int64 bits (see _f64_bits), one per element.
        self.register_buffer("cal_lo", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("cal_hi", torch.zeros(0, dtype=torch.int64))
        if self.size is None:
            self.f = UninitializedParameter()
            self.i = UninitializedParameter() if self.saturating else None
        else:
            self._materialize(self.shape)
        self.register_buffer("calibrated", torch.tensor(False))
        self.register_buffer("calib_digest", torch.tensor(0, dtype=torch.int64))
        self.register_buffer("i_ready", torch.tensor(self.init_i is not None))

    # ------------------------------------------------------------------ setup

    @property
    def saturating(self) -> bool:
        return self.overflow != "WRAP"

    @property
    def needs_calibration(self) -> bool:
        """WRAP quantizers take their integer bits, and auto-signed ones their sign, from data."""
        return not self.saturating or self.signed is None

    def _materialize(self, sample: tuple[int, ...]) -> None:
        shape = param_shape(sample, self.granularity)
        size = int(np.prod(sample))
        if isinstance(getattr(self, "f", None), UninitializedParameter):
            self.f.materialize(shape)
            with torch.no_grad():
                self.f.fill_(self.init_f)
        else:
            self.f = nn.Parameter(torch.full(shape, self.init_f))
        if self.saturating:
            if isinstance(getattr(self, "i", None), UninitializedParameter):
                self.i.materialize(shape)
                with torch.no_grad():
                    self.i.fill_(self.init_i if self.init_i is not None else 0.0)
            else:
                self.i = nn.Parameter(torch.full(shape, self.init_i if self.init_i is not None else 0.0))
        else:
            self.i = None
        self.size = size
        self.shape = tuple(sample)
        self.cal_lo = torch.zeros(size, dtype=torch.int64, device=self.cal_lo.device)
        self.cal_hi = torch.zeros(size, dtype=torch.int64, device=self.cal_hi.device)

    def extra_repr(self) -> str:
        size = self.size if len(self.shape or ()) <= 1 else self.shape
        return (f"size={size}, granularity={self.granularity!r}, rounding={self.rounding!r}, "
                f"overflow={self.overflow!r}, signed={self.signed}")

    @property
    def initialized(self) -> bool:
        return self.size is not None and not isinstance(self.f, UninitializedParameter)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim < 2:
            raise QuantizerError(f"expected activations of shape (batch, features...), got {tuple(x.shape)}")
        if not self.initialized:
            self._materialize(tuple(int(v) for v in x.shape[1:]))
            self.to(device=x.device, dtype=x.dtype if x.is_floating_point() else None)
        if tuple(x.shape[1:]) != self.shape:
            if len(self.shape) == 1 and x.ndim == 2:
                raise QuantizerError(f"quantizer for {self.size} features received {x.shape[1]}")
            raise QuantizerError(f"quantizer for samples of shape {self.shape} received {tuple(x.shape[1:])}")

    def _flat(self, t: torch.Tensor) -> torch.Tensor:
        """A bit parameter (per element, channel or layer) as one value per element, flattened."""
        return torch.broadcast_to(t, self.shape).reshape(-1)

    # ------------------------------------------------------------------ types

    @property
    def cal_range(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The calibrated per-element (min, max) of the values before quantization (float64)."""
        return _from_bits(self.cal_lo), _from_bits(self.cal_hi)

    def set_calibration(self, lo: torch.Tensor, hi: torch.Tensor, digest: int) -> None:
        self.cal_lo = _f64_bits(lo).to(self.cal_lo.device)
        self.cal_hi = _f64_bits(hi).to(self.cal_hi.device)
        self.calibrated = torch.tensor(True, device=self.calibrated.device)
        self.calib_digest = torch.tensor(int(digest), dtype=torch.int64, device=self.calib_digest.device)

    def _pooled(self, v: torch.Tensor, largest: bool = False) -> torch.Tensor:
        """With ``granularity="feature"`` a range is shared by every particle (the smallest low,
        the largest high over all but the last axis), so the types do not depend on a
        particle's position and the hardware is invariant to the particles' order."""
        if self.granularity != "feature" or v is None or v.numel() != self.size:
            return v
        rows = v.reshape(-1, self.shape[-1])
        red = rows.amax(0) if largest else rows.amin(0)
        return red.expand_as(rows).reshape(-1)

    def i_int(self) -> torch.Tensor:
        lo, hi = self.i_bounds
        return ste_round(torch.clamp(self.i, lo, hi))

    def int_types(self, lo: torch.Tensor | None = None, hi: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(width, signed, f) per element as exact float64/bool tensors, no gradient.

        The range ``lo, hi`` defaults to the calibrated one; it decides WRAP integer bits and
        an automatic sign. This is the single source of the types: the evaluation forward
        pass and the export both call it.
        """
        if lo is None:
            lo, hi = self.cal_range
        lo, hi = self._pooled(lo), self._pooled(hi, largest=True)
        fi = self._flat(self.f_int().detach().to(torch.float64))
        if self.saturating:
            ii = self._flat(self.i_int().detach().to(torch.float64))
            signed = (lo < 0) if self.signed is None else torch.full((self.size,), bool(self.signed), device=fi.device)
            width = torch.clamp(signed.to(torch.float64) + ii + fi, min=0)
            return width, signed, fi
        s = pow2(fi)
        clo = round_codes(lo.to(torch.float64) * s, self.rounding)
        chi = round_codes(hi.to(torch.float64) * s, self.rounding)
        if self.signed is False:
            clo = torch.clamp(clo, min=0)
        width, signed = code_width(clo, chi)
        if self.signed is True:
            width = torch.where(signed, width, width + 1)
            signed = torch.ones_like(signed)
        return width, signed, fi

    def fixed_types(self) -> FixedTypeArray:
        """The per-element :class:`~rtl4ml.fixed.FixedTypeArray` the hardware uses (needs calibration if WRAP)."""
        if not self.initialized:
            raise QuantizerError("this quantizer has not seen data yet; run a forward pass and calibrate")
        if self.needs_calibration and not bool(self.calibrated):
            raise QuantizerError("this quantizer is not calibrated; call rtl4ml.nn.calibrate(model, x_sample)")
        width, signed, fi = self.int_types()
        s = signed.cpu().numpy().astype(bool)
        f = fi.cpu().numpy().astype(np.int64)
        w = width.cpu().numpy().astype(np.int64)
        integer = np.where(w > 0, w - s - f, -f)
        s = np.where(w > 0, s, False)
        return FixedTypeArray(s.reshape(self.shape), integer.reshape(self.shape), f.reshape(self.shape),
                              self.rounding, self.overflow)

    # ------------------------------------------------------------------ forward

    def _quantize(self, x: torch.Tensor, width: torch.Tensor, signed: torch.Tensor, fi: torch.Tensor,
                  wrap: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Exact (values, mask of unclipped elements or None): round, then saturate or (if ``wrap``) wrap."""
        width, fi = width.to(x.dtype), fi.to(x.dtype)
        c = round_codes(x.detach() * pow2(fi), self.rounding)
        if self.saturating:
            lo, hi = code_bounds(width, signed, self.overflow)
            keep = (c >= lo) & (c <= hi)
            c = torch.minimum(torch.maximum(c, lo), hi)
        else:
            keep = None
            if wrap:
                c = wrap_codes(c, width, signed)
        return c * pow2(-fi), keep

    def _init_i(self, x: torch.Tensor) -> None:
        """SAT integer bits from the first batch: enough to hold its largest magnitude."""
        with torch.no_grad():
            m = x.detach().abs().amax(dim=0).to(torch.float64).reshape(self.shape)
            i0 = torch.where(m > 0, torch.ceil(torch.log2(torch.clamp(m, min=1e-30))), torch.zeros_like(m))
            axes = tuple(k for k, n in enumerate(self.i.shape) if n == 1 and self.shape[k] != 1)
            if axes:
                i0 = i0.amax(dim=axes, keepdim=True)
            self.i.copy_(torch.clamp(i0, *self.i_bounds).to(self.i.dtype))
            self.i_ready.fill_(True)

    @property
    def exact_mode(self) -> bool:
        """True when the forward pass applies the final hardware types (evaluation, calibrated)."""
        return not self.training and (bool(self.calibrated) or not self.needs_calibration)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        if x.ndim > 2:       # feature maps: one element per (channel, position), flattened
            return self._forward(x.reshape(len(x), -1)).reshape(x.shape)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.saturating and not bool(self.i_ready):
            if not self.training:
                raise QuantizerError("a SAT quantizer without init_i must see a training batch before evaluation")
            self._init_i(x)
        with torch.no_grad():
            bmin = x.detach().amin(dim=0).to(torch.float64)
            bmax = x.detach().amax(dim=0).to(torch.float64)
        self._last_range = (bmin, bmax)
        if self.calibrating:
            lo, hi = self._cal_acc if self._cal_acc is not None else (bmin, bmax)
            self._cal_acc = (torch.minimum(lo, bmin), torch.maximum(hi, bmax))
        if self.exact_mode:
            # Evaluation: float64 whatever the module's dtype, with the calibrated types.
            xc = x.to(torch.float64)
            width, signed, fi = self.int_types()
            q, keep = self._quantize(xc, width.to(xc.device), signed.to(xc.device), fi.to(xc.device), wrap=True)
        elif not self.saturating:
            # Training (or not yet calibrated): WRAP types cover the batch, so nothing overflows.
            xc = x
            fi = self._flat(self.f_int().detach()).to(xc.dtype)
            q = round_codes(xc.detach() * pow2(fi), self.rounding) * pow2(-fi)
            keep = None
        else:
            xc = x
            width, signed, fi = self.int_types(bmin, bmax)
            q, keep = self._quantize(xc, width, signed.to(xc.device), fi.to(xc.device), wrap=False)
        fs = self._flat(self.f_int()).to(xc.dtype)
        if keep is None:  # nothing clipped
            out = q + (xc - xc.detach()) + (fs - fs.detach()) * (-LN2 * (q - xc.detach()))
        else:
            keep_f = keep.to(xc.dtype)
            delta = (q - xc.detach()) * keep_f
            out = q + (xc - xc.detach()) * keep_f + (fs - fs.detach()) * (-LN2 * delta)
        if self.saturating:
            out = out + self._clip_grad(xc, q, keep, signed.to(xc.device))
        return out if self.training else cast_checked(out, self.f.dtype, self)

    def _clip_grad(self, x: torch.Tensor, q: torch.Tensor, keep: torch.Tensor, signed: torch.Tensor) -> torch.Tensor:
        """Zero-valued term carrying ``dq/di = +-ln2 * 2**i`` on clipped elements.

        The upper bound is ``2**i - 2**-f`` and a signed type's lower bound ``-2**i`` (an
        unsigned one's is 0, which ``i`` does not move).
        """
        ii = self._flat(self.i_int()).to(x.dtype)
        mag = LN2 * pow2(ii.detach())
        one = torch.ones_like(q)
        sign = torch.where(x.detach() > 0, one, torch.where(signed, -one, torch.zeros_like(q)))
        clipped = (~keep).to(x.dtype)
        return (ii - ii.detach()) * mag * sign * clipped

    # ------------------------------------------------------------------ bit counts

    def bits(self) -> torch.Tensor:
        """Differentiable width of each element (0 = pruned), from the calibrated range at
        evaluation, else from the last training batch."""
        if not self.initialized:
            raise QuantizerError("this quantizer has not seen data yet; run a forward pass first")
        fi = self._flat(self.f_int())
        use_cal = bool(self.calibrated) and not self.training
        if self.saturating:
            ii = self._flat(self.i_int())
            if self.signed is not None:
                signed = torch.full((self.size,), bool(self.signed), device=fi.device)
            elif use_cal:
                signed = self._pooled(self.cal_range[0]).to(fi.device) < 0
            elif self._last_range is not None:
                signed = self._pooled(self._last_range[0]).to(fi.device) < 0
            else:
                raise QuantizerError("run a forward pass (or calibrate) before asking for bit counts")
            return torch.relu(signed.to(fi.dtype) + ii + fi)
        if use_cal:
            rng = self.cal_range
        elif self._last_range is not None:
            rng = self._last_range
        else:
            raise QuantizerError("run a forward pass (or calibrate) before asking for bit counts")
        width, _, _ = self.int_types(*rng)
        width = width.to(fi.dtype)
        return width + (fi - fi.detach()) * (width > 0).to(fi.dtype)
