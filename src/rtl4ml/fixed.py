"""Fixed-point types, quantization and exact interval arithmetic.

Everything in rtl4ml rests on this module. A value is an integer ``q`` at scale
``2**-fraction``; a type is ``(signed, integer, fraction)`` where ``integer`` excludes the
sign bit, so ``width = signed + integer + fraction``. Quantization is rounding, then
overflow handling, with the modes of ``ap_fixed`` so that HLS code can agree bit for bit.

Integer arithmetic is done in ``int64`` numpy arrays. Widths above :data:`MAX_WIDTH` bits
cannot be emulated exactly that way and raise :class:`WidthError` instead of silently
losing bits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Union

import numpy as np

ROUNDING_MODES = ("TRN", "RND", "RND_CONV")
OVERFLOW_MODES = ("WRAP", "SAT", "SAT_SYM")

#: The widest integer the emulator handles exactly: int64 with headroom for a rounding add.
MAX_WIDTH = 62


class FixedPointError(ValueError):
    """Base class of fixed-point errors (bad type strings, bad values, too-wide types)."""


class TypeStringError(FixedPointError):
    """A type string that does not parse."""


class WidthError(FixedPointError):
    """A width that the int64 emulator cannot represent exactly."""


def _check_modes(rounding: str, overflow: str) -> None:
    if rounding not in ROUNDING_MODES:
        raise FixedPointError(f"unknown rounding mode {rounding!r}; expected one of {ROUNDING_MODES}")
    if overflow not in OVERFLOW_MODES:
        raise FixedPointError(f"unknown overflow mode {overflow!r}; expected one of {OVERFLOW_MODES}")


@dataclass(frozen=True)
class FixedType:
    """One fixed-point type: ``signed`` + ``integer`` + ``fraction`` bits, plus quantization modes.

    ``integer`` and ``fraction`` may be negative (a value that is always a multiple of 4
    has ``fraction == -2``). A width of 0 or less is the zero type: every value is 0.
    """

    signed: bool
    integer: int
    fraction: int
    rounding: str = "TRN"
    overflow: str = "WRAP"

    def __post_init__(self) -> None:
        object.__setattr__(self, "signed", bool(self.signed))
        object.__setattr__(self, "integer", int(self.integer))
        object.__setattr__(self, "fraction", int(self.fraction))
        _check_modes(self.rounding, self.overflow)

    @property
    def width(self) -> int:
        return max(0, int(self.signed) + self.integer + self.fraction)

    @property
    def min_q(self) -> int:
        """Smallest representable integer code."""
        if self.width == 0 or not self.signed:
            return 0
        return -(1 << (self.width - 1))

    @property
    def max_q(self) -> int:
        """Largest representable integer code."""
        if self.width == 0:
            return 0
        return (1 << (self.width - int(self.signed))) - 1

    @property
    def min_value(self) -> Fraction:
        return Fraction(self.min_q) / Fraction(2) ** self.fraction

    @property
    def max_value(self) -> Fraction:
        return Fraction(self.max_q) / Fraction(2) ** self.fraction

    @property
    def interval(self) -> "Interval":
        return Interval(self.min_value, self.max_value)

    @classmethod
    def parse(cls, text: str) -> "FixedType":
        return parse_type(text)

    def with_modes(self, rounding: str | None = None, overflow: str | None = None) -> "FixedType":
        return replace(self, rounding=rounding or self.rounding, overflow=overflow or self.overflow)

    def __str__(self) -> str:
        kind = "fixed" if self.signed else "ufixed"
        w = int(self.signed) + self.integer + self.fraction
        args = [str(w), str(self.integer + int(self.signed))]
        if (self.rounding, self.overflow) != ("TRN", "WRAP"):
            args += [self.rounding, self.overflow]
        return f"{kind}<{','.join(args)}>"

    def quantize(self, x) -> np.ndarray:
        """Quantize floats (or integers) to this type; returns exact float64 values."""
        return quantize(x, self)


_TYPE_RE = re.compile(
    r"^\s*(?:ap_)?(?P<kind>u?fixed|u?int)\s*<\s*(?P<args>[^<>]*)>\s*$", re.IGNORECASE
)


def parse_type(text: str) -> FixedType:
    """Parse ``fixed<W,I>``, ``ufixed<W,I>``, ``fixed<W,I,RND,SAT>``, ``int<W>``, ``uint<W>``.

    The order is that of ``ap_fixed``: total width, integer bits *including* the sign bit,
    then rounding and overflow modes (with or without the ``AP_`` prefix).
    """
    if isinstance(text, FixedType):
        return text
    if not isinstance(text, str):
        raise TypeStringError(f"a fixed-point type must be a string like 'fixed<16,6>', got {text!r}")
    m = _TYPE_RE.match(text)
    if not m:
        raise TypeStringError(
            f"malformed fixed-point type {text!r}; expected e.g. 'fixed<16,6>', 'ufixed<8,0>', "
            "'fixed<8,3,RND,SAT>' or 'int<8>'"
        )
    kind = m.group("kind").lower()
    args = [a.strip() for a in m.group("args").split(",")]
    signed = not kind.startswith("u")
    is_int = kind.endswith("int")
    n_num = 1 if is_int else 2
    if len(args) < n_num or len(args) > n_num + 2 or any(a == "" for a in args):
        raise TypeStringError(
            f"malformed fixed-point type {text!r}: {kind}<> takes "
            f"{'W' if is_int else 'W,I'} and optionally rounding and overflow modes"
        )
    try:
        nums = [int(a) for a in args[:n_num]]
    except ValueError:
        raise TypeStringError(f"malformed fixed-point type {text!r}: width and integer bits must be integers") from None
    width = nums[0]
    int_incl_sign = width if is_int else nums[1]
    if width < 1:
        raise TypeStringError(f"fixed-point type {text!r} has width {width}; the width must be at least 1")
    if width > MAX_WIDTH:
        raise WidthError(f"fixed-point type {text!r} has {width} bits; rtl4ml handles types of at most {MAX_WIDTH} "
                         "bits (its bit-exact emulator computes in int64)")
    modes = [a.upper().removeprefix("AP_") for a in args[n_num:]]
    rounding = modes[0] if len(modes) > 0 else "TRN"
    overflow = modes[1] if len(modes) > 1 else "WRAP"
    if rounding not in ROUNDING_MODES:
        raise TypeStringError(f"fixed-point type {text!r}: unknown rounding mode {args[n_num]!r}; expected one of {ROUNDING_MODES}")
    if overflow not in OVERFLOW_MODES:
        raise TypeStringError(f"fixed-point type {text!r}: unknown overflow mode {args[n_num + 1]!r}; expected one of {OVERFLOW_MODES}")
    integer = int_incl_sign - int(signed)
    return FixedType(signed, integer, width - int_incl_sign, rounding, overflow)


TypeLike = Union[str, FixedType]


@dataclass(frozen=True, eq=False)
class FixedTypeArray:
    """Per-element fixed-point types (high granularity): arrays of signed/integer/fraction.

    The rounding and overflow modes are shared by the array. A scalar :class:`FixedType`
    broadcasts to any shape with :meth:`full`.
    """

    signed: np.ndarray
    integer: np.ndarray
    fraction: np.ndarray
    rounding: str = "TRN"
    overflow: str = "WRAP"

    def __post_init__(self) -> None:
        s, i, f = np.broadcast_arrays(
            np.asarray(self.signed, dtype=bool), np.asarray(self.integer, dtype=np.int64),
            np.asarray(self.fraction, dtype=np.int64),
        )
        object.__setattr__(self, "signed", s.copy())
        object.__setattr__(self, "integer", i.copy())
        object.__setattr__(self, "fraction", f.copy())
        _check_modes(self.rounding, self.overflow)
        w = self.width
        if w.size and int(w.max()) > MAX_WIDTH:
            k = np.unravel_index(int(np.argmax(w)), w.shape)
            raise WidthError(f"the type {self[k]} has {int(w[k])} bits; the bit-exact int64 emulator handles at most "
                             f"{MAX_WIDTH}")

    @classmethod
    def full(cls, t: TypeLike, shape) -> "FixedTypeArray":
        t = parse_type(t)
        return cls(np.full(shape, t.signed), np.full(shape, t.integer), np.full(shape, t.fraction),
                   t.rounding, t.overflow)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.signed.shape

    @property
    def width(self) -> np.ndarray:
        return np.maximum(0, self.signed.astype(np.int64) + self.integer + self.fraction)

    @property
    def min_q(self) -> np.ndarray:
        w = self.width
        return np.where(self.signed & (w > 0), -np.left_shift(1, np.maximum(w - 1, 0)), 0)

    @property
    def max_q(self) -> np.ndarray:
        w = self.width
        return np.where(w > 0, np.left_shift(1, np.maximum(w - self.signed, 0)) - 1, 0)

    def saturation_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The code range each element saturates to (see :func:`saturate_bounds`)."""
        lo, hi = self.min_q, self.max_q
        if self.overflow == "SAT_SYM":
            lo = np.where(self.signed & (self.width >= 2), -hi, lo)
        return lo, hi

    def broadcast_to(self, shape) -> "FixedTypeArray":
        """The same types repeated over ``shape`` (numpy broadcasting rules)."""
        shape = tuple(shape)
        if self.shape == shape:
            return self
        try:
            return FixedTypeArray(np.broadcast_to(self.signed, shape), np.broadcast_to(self.integer, shape),
                                  np.broadcast_to(self.fraction, shape), self.rounding, self.overflow)
        except ValueError:
            raise FixedPointError(f"types of shape {self.shape} do not broadcast to shape {shape}") from None

    def __getitem__(self, idx) -> FixedType:
        return FixedType(bool(self.signed[idx]), int(self.integer[idx]), int(self.fraction[idx]),
                         self.rounding, self.overflow)

    def __len__(self) -> int:
        return len(self.signed)


def as_type_array(t: "TypeLike | FixedTypeArray", shape) -> FixedTypeArray:
    if isinstance(t, FixedTypeArray):
        if t.shape != tuple(shape):
            raise FixedPointError(f"type array of shape {t.shape} does not match shape {tuple(shape)}")
        return t
    return FixedTypeArray.full(t, shape)


def check_width(width, what: str) -> None:
    """Raise :class:`WidthError` if any width exceeds what int64 emulation handles exactly."""
    w = int(np.max(width)) if np.size(width) else 0
    if w > MAX_WIDTH:
        raise WidthError(
            f"{what} needs {w} bits, more than the {MAX_WIDTH} bits the bit-exact int64 emulator "
            "can represent; use narrower input, weight or result types"
        )


# --------------------------------------------------------------------------- quantization


def _round_shift(q: np.ndarray, d: np.ndarray, rounding: str) -> np.ndarray:
    """Integer ``q * 2**-d`` rounded to an integer (d >= 0 elementwise)."""
    d = np.asarray(d, dtype=np.int64)
    if rounding == "TRN":
        return np.right_shift(q, d)
    half = np.where(d > 0, np.left_shift(np.int64(1), np.maximum(d - 1, 0)), 0)
    if rounding == "RND":
        return np.right_shift(q + half, d)
    # RND_CONV: half to even; add half-1 plus the bit that becomes the LSB.
    lsb = np.right_shift(q, d) & 1
    return np.where(d > 0, np.right_shift(q + half - 1 + lsb, d), q)


def _overflow(q: np.ndarray, t: FixedTypeArray) -> np.ndarray:
    if t.overflow == "WRAP":
        lo, w = t.min_q, t.width
        mask = np.left_shift(np.int64(1), w) - 1
        return ((q - lo) & mask) + lo
    return np.clip(q, *t.saturation_bounds())


def requantize(q, from_fraction, t: "TypeLike | FixedTypeArray") -> np.ndarray:
    """Quantize integer codes ``q`` at scale ``2**-from_fraction`` to type ``t``; returns int64 codes.

    ``from_fraction`` and ``t`` broadcast against the trailing axes of ``q``.
    """
    q = np.asarray(q)
    if q.dtype.kind not in "iu":
        raise FixedPointError(f"requantize expects integer codes, got dtype {q.dtype}")
    q = q.astype(np.int64)
    t = _type_array(t)
    check_width(t.width, "the target type")
    d = np.asarray(from_fraction, dtype=np.int64) - t.fraction
    if np.any(d < 0):
        up = np.maximum(-d, 0)
        if t.overflow != "WRAP":
            # Anything that would shift past 2**62 saturates anyway; clip first so the shift
            # cannot wrap int64. (WRAP is modular, so int64 wrap-around is harmless there.)
            lim = np.right_shift(np.int64(1) << 62, np.minimum(up, 62))
            q = np.clip(q, -lim, lim)
        q = np.left_shift(q, up)
    r = _round_shift(q, np.maximum(d, 0), t.rounding)
    return _overflow(r, t)


def requantizer(from_fraction, t: FixedTypeArray, lo: np.ndarray, hi: np.ndarray):
    """A function quantizing codes at ``from_fraction`` whose values lie in ``[lo, hi]``
    (per-element exact bounds) to ``t``, as fast as exactness allows.

    When every intermediate provably fits the mantissa, the codes are rounded as
    integer-valued float32 (24 bits) or float64 (53 bits): scaling by a power of two, the
    floor and the clip are then exact, and no int64 shift by a per-element amount is needed
    (the slow part of :func:`requantize`). Saturation or wrapping is skipped where no input
    value can overflow. The function accepts integer or integer-valued float codes and
    returns codes in the dtype it computed with (int64 on the exact-integer fallback).
    """
    shape = t.shape
    f0 = np.broadcast_to(np.asarray(from_fraction, dtype=np.int64), shape)
    d = f0 - t.fraction
    rlo = [round_code(int(a), int(dd), t.rounding) for a, dd in zip(np.asarray(lo).reshape(-1), d.reshape(-1))]
    rhi = [round_code(int(b), int(dd), t.rounding) for b, dd in zip(np.asarray(hi).reshape(-1), d.reshape(-1))]
    qlo, qhi = (b.reshape(-1) for b in t.saturation_bounds())
    overflows = any(a < int(ql) or b > int(qh) for a, b, ql, qh in zip(rlo, rhi, qlo, qhi))
    # the largest intermediate magnitude: the aligned input plus the rounding offset, and when
    # wrapping, plus the range's low end and one modulus; every result fits the output width.
    # A float holds every integer up to 2**24 (float32) / 2**53 (float64) exactly.
    wraps = overflows and t.overflow == "WRAP"
    need = int(t.width.max(initial=0))
    for a, b, dd, ql, w in zip(np.asarray(lo).reshape(-1), np.asarray(hi).reshape(-1), d.reshape(-1), qlo,
                               t.width.reshape(-1)):
        m, dd = max(abs(int(a)), abs(int(b))), int(dd)
        m = m << -dd if dd < 0 else m + ((1 << (dd - 1)) if dd > 0 else 0)
        need = max(need, (m + (abs(int(ql)) + (1 << int(w)) if wraps else 0)).bit_length())
    if need > 53:
        return lambda q: requantize(np.asarray(q).astype(np.int64), from_fraction, t)
    dtype = np.float32 if need <= 24 else np.float64
    scale = _uniform(np.ldexp(1.0, -d), dtype)
    half = _uniform(np.where(d > 0, np.ldexp(1.0, np.maximum(d - 1, 0)), 0.0), dtype)
    qlo, qhi = _uniform(qlo.reshape(shape), dtype), _uniform(qhi.reshape(shape), dtype)
    modulus, inverse = _uniform(np.ldexp(1.0, t.width), dtype), _uniform(np.ldexp(1.0, -t.width), dtype)
    rounding, overflow = t.rounding, t.overflow

    def run(q: np.ndarray) -> np.ndarray:
        y = q.astype(dtype)   # a copy: the codes may have other readers
        if rounding == "RND":
            y += half
        if np.any(scale != 1):
            y *= scale
        (np.rint if rounding == "RND_CONV" else np.floor)(y, out=y)
        if overflows:
            if overflow == "WRAP":
                y -= np.floor((y - qlo) * inverse) * modulus
            else:
                np.maximum(y, qlo, out=y)
                np.minimum(y, qhi, out=y)
        return y
    return run


def _uniform(a: np.ndarray, dtype):
    """A scalar when every element is the same (numpy broadcasts a scalar fastest), else the array."""
    a = np.asarray(a, dtype=dtype)
    return a.reshape(-1)[0] if a.size and np.all(a == a.reshape(-1)[0]) else a


def _float_codes(x: np.ndarray, t: FixedTypeArray) -> np.ndarray:
    """Round floats to integer codes of ``t`` (exact: scaling by 2**f is exact in float64)."""
    f = _uniform(t.fraction, np.int64)
    y = np.ldexp(x, f)
    if not np.isfinite(y).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(np.broadcast_to(y, np.shape(y))))[0])
        xb = np.broadcast_to(x, np.shape(y))
        raise FixedPointError(f"cannot quantize the value {float(xb[bad])} at index {bad}: not finite or out of float64 range")
    if t.rounding == "RND_CONV":
        fl = np.rint(y)   # exact, ties to even (an underflowed value rounds to 0 either way)
    else:
        fl = np.floor(y)
        # ldexp is exact unless the result underflows (|y| < 2**-1022); then only the sign
        # matters, and a negative value that underflowed to -0.0 still floors to -1.
        zero = np.flatnonzero(y == 0)
        if zero.size:
            xz = np.broadcast_to(x, y.shape).reshape(-1)[zero]
            fl.reshape(-1)[zero[xz < 0]] = -1.0
        if t.rounding == "RND":
            fl += y - fl >= 0.5   # y - floor(y) is exact (Sterbenz); y + 0.5 would round
    w = t.width
    if t.overflow == "WRAP":
        lo = t.min_q
        if w.max(initial=0) <= 52:   # exact in float64: wrap there
            lo_f, mod = _uniform(lo, np.float64), _uniform(np.ldexp(1.0, w), np.float64)
            fl -= np.floor((fl - lo_f) / mod) * mod
            return fl.astype(np.int64)
        return _overflow(np.fmod(fl, np.ldexp(1.0, w)).astype(np.int64), t)   # fmod by 2**W keeps the residue
    lo, hi = t.saturation_bounds()
    # the bounds fit int64 (<= 62 bits), and clipping in float64 then converting is exact
    # for them only below 2**53: clip huge values first, then in int64
    np.clip(fl, -(2.0 ** 62), 2.0 ** 62, out=fl)
    if w.max(initial=0) <= 52:
        np.maximum(fl, _uniform(lo, np.float64), out=fl)
        np.minimum(fl, _uniform(hi, np.float64), out=fl)
        return fl.astype(np.int64)
    return np.clip(fl.astype(np.int64), lo, hi)


def _type_array(t: "TypeLike | FixedTypeArray") -> FixedTypeArray:
    """A scalar type becomes a 0-d type array, which broadcasts against any codes."""
    return t if isinstance(t, FixedTypeArray) else FixedTypeArray.full(t, ())


def to_codes(x, t: "TypeLike | FixedTypeArray") -> np.ndarray:
    """Quantize ``x`` (floats or integers) to ``t``; returns the int64 codes ``q``.

    ``t`` is a scalar type or a :class:`FixedTypeArray` that broadcasts against ``x``.
    """
    x = np.asarray(x)
    t = _type_array(t)
    check_width(t.width, "the type")
    if x.dtype.kind in "iub":
        return requantize(x.astype(np.int64), 0, t)
    if x.dtype.kind != "f":
        raise FixedPointError(f"cannot quantize an array of dtype {x.dtype}")
    if x.ndim == 0 and t.signed.ndim == 0:   # numpy ufuncs return scalars for 0-d arrays: work in 1-d
        return _float_codes(x.astype(np.float64).reshape(1), t).reshape(())
    return _float_codes(x.astype(np.float64), t)


def overflows(x, t: "TypeLike | FixedTypeArray") -> np.ndarray:
    """Where quantizing ``x`` to ``t`` overflows: the code rounded to ``t``'s scale lies outside
    the range ``t`` keeps (which WRAP wraps and SAT / SAT_SYM clip). Boolean, ``x``'s shape
    broadcast with ``t``'s."""
    t = _type_array(t)
    wide = FixedTypeArray(True, MAX_WIDTH - 1 - t.fraction, t.fraction, t.rounding, "SAT")   # holds any rounding
    r = to_codes(x, wide)
    lo, hi = t.saturation_bounds()
    return (r < lo) | (r > hi)


def from_codes(q, fraction) -> np.ndarray:
    """Exact float64 values of integer codes (exact while |q| < 2**53)."""
    return np.ldexp(np.asarray(q, dtype=np.float64), -np.asarray(fraction, dtype=np.int64))


def quantize(x, t: "TypeLike | FixedTypeArray") -> np.ndarray:
    """Quantize ``x`` to ``t`` and return the exact values as float64."""
    if isinstance(t, FixedTypeArray):
        return from_codes(to_codes(x, t), t.fraction)
    t = parse_type(t)
    return from_codes(to_codes(x, t), t.fraction)


# --------------------------------------------------------------------------- intervals


def as_fraction(v) -> Fraction:
    if isinstance(v, Fraction):
        return v
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            raise FixedPointError(f"interval bound {v!r} is not finite")
        return Fraction(float(v))
    return Fraction(v)


@dataclass(frozen=True)
class Interval:
    """An exact closed interval of rationals, for type inference that never rounds."""

    lo: Fraction
    hi: Fraction

    def __post_init__(self) -> None:
        lo, hi = as_fraction(self.lo), as_fraction(self.hi)
        if lo > hi:
            raise FixedPointError(f"empty interval [{lo}, {hi}]")
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)

    def __add__(self, o: "Interval") -> "Interval":
        return Interval(self.lo + o.lo, self.hi + o.hi)

    def __sub__(self, o: "Interval") -> "Interval":
        return Interval(self.lo - o.hi, self.hi - o.lo)

    def __neg__(self) -> "Interval":
        return Interval(-self.hi, -self.lo)

    def __mul__(self, o: "Interval | int | Fraction | float") -> "Interval":
        if not isinstance(o, Interval):
            o = Interval(o, o)
        p = [self.lo * o.lo, self.lo * o.hi, self.hi * o.lo, self.hi * o.hi]
        return Interval(min(p), max(p))

    __rmul__ = __mul__

    def union(self, o: "Interval") -> "Interval":
        return Interval(min(self.lo, o.lo), max(self.hi, o.hi))

    def relu(self) -> "Interval":
        return Interval(max(self.lo, 0), max(self.hi, 0))

    def contains(self, v) -> bool:
        v = as_fraction(v)
        return self.lo <= v <= self.hi


def code_width(lo: int, hi: int) -> tuple[bool, int]:
    """(signed, width) of the narrowest two's-complement code holding integers [lo, hi]."""
    lo, hi = int(lo), int(hi)
    if lo < 0:
        return True, 1 + max(hi.bit_length() if hi > 0 else 0, (-lo - 1).bit_length())
    return False, hi.bit_length()


def covering_type(interval: Interval, fraction: int, rounding: str = "TRN", overflow: str = "WRAP") -> FixedType:
    """The minimal type with ``fraction`` fractional bits whose range covers ``interval``.

    The interval's bounds are first rounded outward to the grid ``2**-fraction``.
    """
    scale = Fraction(2) ** fraction
    lo = (interval.lo * scale).__floor__()
    hi = (interval.hi * scale).__ceil__()
    signed, width = code_width(lo, hi)
    if width == 0:
        return FixedType(False, -fraction, fraction, rounding, overflow)
    return FixedType(signed, width - int(signed) - fraction, fraction, rounding, overflow)


@dataclass(frozen=True)
class Wire:
    """The type of one value: an exact code interval ``[lo, hi]`` at scale ``2**-fraction``.

    Signedness and width follow from the interval, so a wire is always as narrow as the
    values it can carry (a Netlist wire, one element of a Graph tensor, a CMVM input).
    """

    lo: int
    hi: int
    fraction: int

    def __post_init__(self) -> None:
        if self.lo > self.hi:
            raise ValueError(f"empty wire interval [{self.lo}, {self.hi}]")

    @property
    def signed(self) -> bool:
        return self.lo < 0

    @property
    def width(self) -> int:
        return code_width(self.lo, self.hi)[1]

    @property
    def is_const(self) -> bool:
        return self.lo == self.hi

    def value_lo(self) -> Fraction:
        return Fraction(self.lo) / Fraction(2) ** self.fraction

    def value_hi(self) -> Fraction:
        return Fraction(self.hi) / Fraction(2) ** self.fraction


# --------------------------------------------------------------------------- Python-int scalars


def round_code(q: int, drop: int, rounding: str) -> int:
    """Exact ``q * 2**-drop`` rounded to an integer with ``rounding`` (any ``drop``, any size)."""
    q = int(q)
    if drop <= 0:
        return q << -drop
    fl = q >> drop
    rem = q - (fl << drop)
    half = 1 << (drop - 1)
    if rounding == "RND":
        return fl + (rem >= half)
    if rounding == "RND_CONV":
        return fl + (rem > half or (rem == half and fl & 1 == 1))
    return fl


def saturate_bounds(t: FixedType) -> tuple[int, int]:
    """The code range an overflow mode clamps to.

    SAT_SYM drops the most negative code of a signed type, as ``ap_fixed`` does: it
    saturates to that code with its lowest bit set, ``-max_q`` from 2 bits up; a 1-bit
    signed type keeps ``-1`` (its only non-zero code), so there SAT_SYM is SAT.
    """
    lo, hi = t.min_q, t.max_q
    if t.overflow == "SAT_SYM" and t.signed and t.width >= 2:
        lo = -hi
    return lo, hi


def requantize_code(q: int, from_fraction: int, t: FixedType) -> int:
    """Scalar, arbitrary-precision twin of :func:`requantize` (for type inference)."""
    r = round_code(q, from_fraction - t.fraction, t.rounding)
    if t.overflow == "WRAP":
        if t.width == 0:
            return 0
        return ((r - t.min_q) % (1 << t.width)) + t.min_q
    lo, hi = saturate_bounds(t)
    return min(max(r, lo), hi)


def quantized_range(lo: int, hi: int, from_fraction: int, t: FixedType) -> tuple[int, int]:
    """Exact code range of quantizing every code in ``[lo, hi]`` to ``t``.

    Rounding is monotone, so the rounded range is that of the endpoints. If it fits the
    type nothing overflows; otherwise WRAP can reach the whole type and SAT clamps.
    """
    d = from_fraction - t.fraction
    rlo, rhi = round_code(lo, d, t.rounding), round_code(hi, d, t.rounding)
    if t.width == 0:
        return 0, 0
    slo, shi = saturate_bounds(t) if t.overflow != "WRAP" else (t.min_q, t.max_q)
    if slo <= rlo and rhi <= shi:
        return rlo, rhi
    if t.overflow == "WRAP":
        return t.min_q, t.max_q
    return min(max(rlo, slo), shi), min(max(rhi, slo), shi)
