"""Fixed point against an independent reference written with fractions.Fraction."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtl4ml.fixed import (FixedPointError, FixedType, FixedTypeArray, Interval, TypeStringError, WidthError,
                          covering_type, parse_type, quantize, quantized_range, requantize, requantize_code, requantizer,
                          saturate_bounds, to_codes)


def ref_quantize(x: Fraction, t: FixedType) -> Fraction:
    """The contract of docs/design.md, written directly: round, then overflow."""
    s = x * Fraction(2) ** t.fraction
    if t.rounding == "TRN":
        q = math.floor(s)
    elif t.rounding == "RND":
        q = math.floor(s + Fraction(1, 2))
    else:
        q = round(s)  # Python rounds Fractions half to even
    w = int(t.signed) + t.integer + t.fraction
    if w <= 0:
        return Fraction(0)
    lo, hi = (-(2 ** (w - 1)), 2 ** (w - 1) - 1) if t.signed else (0, 2**w - 1)
    if t.overflow == "WRAP":
        q = (q - lo) % (2**w) + lo
    else:
        if t.overflow == "SAT_SYM" and t.signed:
            lo |= 1   # ap_fixed's overflow_adjust: the most negative code with its lowest bit set
        q = min(max(q, lo), hi)
    return Fraction(q) / Fraction(2) ** t.fraction


types = st.builds(
    lambda s, w, f, r, o: FixedType(s, w - int(s) - f, f, r, o),
    st.booleans(), st.integers(1, 40), st.integers(-6, 30),
    st.sampled_from(["TRN", "RND", "RND_CONV"]), st.sampled_from(["WRAP", "SAT", "SAT_SYM"]),
)


@settings(max_examples=400, deadline=None)
@given(t=types, xs=st.lists(st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False), min_size=1, max_size=20))
def test_quantize_floats_matches_fraction_reference(t, xs):
    got = quantize(np.array(xs), t)
    want = [float(ref_quantize(Fraction(x), t)) for x in xs]
    assert got.tolist() == want


@settings(max_examples=300, deadline=None)
@given(t=types, data=st.data())
def test_quantize_ties_and_boundaries(t, data):
    """Exact half-steps and values just outside the range exercise every rounding/overflow branch."""
    step = Fraction(1, 2**t.fraction) if t.fraction >= 0 else Fraction(2 ** -t.fraction)
    ks = data.draw(st.lists(st.integers(-(2**41), 2**41), min_size=1, max_size=10))
    xs = [Fraction(k, 2) * step for k in ks] + [t.min_value, t.max_value, t.max_value + step / 2,
                                                 t.min_value - step / 2, t.max_value + step, t.min_value - step]
    xs = [x for x in xs if abs(x) < 2**60 and float(x) == x]
    got = quantize(np.array([float(x) for x in xs]), t)
    assert got.tolist() == [float(ref_quantize(x, t)) for x in xs]


@settings(max_examples=400, deadline=None)
@given(t=types, f_in=st.integers(-8, 30), qs=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=20))
def test_requantize_integers_matches_reference(t, f_in, qs):
    got = requantize(np.array(qs, dtype=np.int64), f_in, t)
    want = [ref_quantize(Fraction(q) / Fraction(2) ** f_in, t) * Fraction(2) ** t.fraction for q in qs]
    assert got.tolist() == [int(v) for v in want]
    assert [requantize_code(q, f_in, t) for q in qs] == [int(v) for v in want]


@settings(max_examples=300, deadline=None)
@given(t=types, f_in=st.integers(-4, 20), a=st.integers(-(2**30), 2**30), b=st.integers(-(2**30), 2**30))
def test_quantized_range_contains_every_result_and_is_tight(t, f_in, a, b):
    lo, hi = min(a, b), max(a, b)
    rlo, rhi = quantized_range(lo, hi, f_in, t)
    samples = sorted({lo, hi, (lo + hi) // 2, lo + 1 if lo < hi else lo})
    vals = [requantize_code(q, f_in, t) for q in samples]
    assert all(rlo <= v <= rhi for v in vals)
    assert rlo >= t.min_q and rhi <= t.max_q
    if rlo != t.min_q or rhi != t.max_q:  # unless the whole range is reachable, the ends are attained
        assert rlo in vals or rlo == requantize_code(lo, f_in, t)


one_bit = st.builds(lambda f, r: FixedType(True, -f, f, r, "SAT_SYM"), st.integers(-4, 6),
                   st.sampled_from(["TRN", "RND", "RND_CONV"]))


@settings(max_examples=200, deadline=None)
@given(t=one_bit, xs=st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=20),
       f_in=st.integers(-4, 12), qs=st.lists(st.integers(-(2**20), 2**20), min_size=1, max_size=20))
def test_one_bit_sat_sym_saturates_like_ap_fixed(t, xs, f_in, qs):
    """A 1-bit signed SAT_SYM type has the codes -1 and 0; ap_fixed saturates a negative value
    to -1 (the most negative code with its lowest bit set is -1 itself), like SAT."""
    assert t.width == 1 and saturate_bounds(t) == (-1, 0)
    want = [ref_quantize(Fraction(x), t) for x in xs]
    assert quantize(np.array(xs), t).tolist() == [float(v) for v in want]
    assert quantize(np.array(xs), t.with_modes(overflow="SAT")).tolist() == [float(v) for v in want]
    codes = requantize(np.array(qs, dtype=np.int64), f_in, t).tolist()
    assert codes == [requantize_code(q, f_in, t) for q in qs]
    assert codes == [int(ref_quantize(Fraction(q) / Fraction(2) ** f_in, t) * Fraction(2) ** t.fraction) for q in qs]
    lo, hi = min(qs), max(qs)
    rlo, rhi = quantized_range(lo, hi, f_in, t)
    assert rlo <= min(codes) and max(codes) <= rhi
    run = requantizer(np.array([f_in]), FixedTypeArray.full(t, (1,)), np.array([lo], dtype=object),
                      np.array([hi], dtype=object))
    assert np.asarray(run(np.array(qs, dtype=np.int64)[:, None])).astype(np.int64).ravel().tolist() == codes


def test_one_bit_sat_sym_examples():
    t = parse_type("fixed<1,1,TRN,SAT_SYM>")
    assert to_codes(np.array([-3.0, -1.0, -0.5, 0.0, 0.7, 2.0]), t).tolist() == [-1, -1, -1, 0, 0, 0]
    assert saturate_bounds(parse_type("fixed<2,2,TRN,SAT_SYM>")) == (-1, 1)
    assert to_codes(np.array([-9.0]), "fixed<8,8,TRN,SAT_SYM>").tolist() == [-9]
    assert to_codes(np.array([-200.0]), "fixed<8,8,TRN,SAT_SYM>").tolist() == [-127]


def test_per_element_types_broadcast_over_samples(rng):
    t = FixedTypeArray([True, False, True], [2, 0, -1], [3, 4, 6], "RND", "SAT")
    x = rng.normal(size=(50, 3)) * 4
    got = quantize(x, t)
    for j in range(3):
        assert got[:, j].tolist() == [float(ref_quantize(Fraction(v), t[j])) for v in x[:, j]]


def test_integer_inputs_are_quantized_exactly():
    assert to_codes(np.array([1000, -1000, 5]), "int<8>").tolist() == [-24, 24, 5]
    assert to_codes(np.array([1000, -1000]), "fixed<8,8,TRN,SAT>").tolist() == [127, -128]


@pytest.mark.parametrize("text,expect", [
    ("fixed<16,6>", FixedType(True, 5, 10)),
    ("ufixed<8,0>", FixedType(False, 0, 8)),
    ("fixed<8,3,RND,SAT>", FixedType(True, 2, 5, "RND", "SAT")),
    ("ap_fixed<8, 3, AP_RND_CONV, AP_SAT_SYM>", FixedType(True, 2, 5, "RND_CONV", "SAT_SYM")),
    ("fixed<4,8>", FixedType(True, 7, -4)),
    ("fixed<6,-2>", FixedType(True, -3, 8)),
    ("int<8>", FixedType(True, 7, 0)),
    ("uint<3>", FixedType(False, 3, 0)),
    ("fixed<8,3,RND>", FixedType(True, 2, 5, "RND", "WRAP")),
])
def test_parse(text, expect):
    t = parse_type(text)
    assert t == expect
    assert parse_type(str(t)) == t


@pytest.mark.parametrize("text", ["fixed<16>", "fixed<a,3>", "fixed<8,3,FLOOR>", "fixed<8,3,RND,CLIP>", "float<8,3>",
                                  "fixed<0,0>", "fixed<8,3,RND,SAT,2>", "fixed 8,3", ""])
def test_malformed_type_strings_name_the_string(text):
    with pytest.raises(TypeStringError) as e:
        parse_type(text)
    assert repr(text) in str(e.value)


def test_type_properties():
    t = parse_type("fixed<8,3>")
    assert (t.width, t.min_q, t.max_q, t.min_value, t.max_value) == (8, -128, 127, -4, Fraction(127, 32))
    z = FixedType(True, -3, 2)  # width 0: pruned
    assert (z.width, z.min_q, z.max_q) == (0, 0, 0)
    assert quantize(np.array([3.7, -9.0]), z).tolist() == [0.0, 0.0]


def test_nan_and_inf_are_named():
    with pytest.raises(FixedPointError, match="nan"):
        quantize(np.array([1.0, np.nan]), "fixed<8,3>")
    with pytest.raises(FixedPointError, match="inf"):
        quantize(np.array([np.inf]), "fixed<8,3>")


def test_too_wide_type_is_refused():
    with pytest.raises(WidthError, match="63 bits"):
        quantize(np.array([1.0]), "fixed<63,10>")
    with pytest.raises(WidthError, match=r"^fixed-point type 'fixed<200,100>' has 200 bits; rtl4ml handles types of "
                                         r"at most 62 bits \(its bit-exact emulator computes in int64\)$"):
        parse_type("fixed<200,100>")
    assert parse_type("fixed<62,10>").width == 62
    with pytest.raises(WidthError, match=r"the type fixed<104,101> has 104 bits; the bit-exact int64 emulator handles "
                                         r"at most 62"):
        FixedTypeArray([True, True], [3, 100], [4, 3])


def test_scalars_quantize_in_every_mode():
    for t in ("fixed<8,3,RND,SAT>", "fixed<8,3>", "fixed<60,3,RND_CONV,SAT_SYM>"):
        assert float(quantize(0.3, t)) == float(quantize(np.array([0.3]), t)[0])
        assert quantize(np.float64(-0.3), t).shape == ()


@settings(max_examples=200, deadline=None)
@given(a=st.tuples(st.fractions(), st.fractions()), b=st.tuples(st.fractions(), st.fractions()))
def test_interval_arithmetic_is_exact(a, b):
    A, B = Interval(min(a), max(a)), Interval(min(b), max(b))
    corners = [x * y for x in (A.lo, A.hi) for y in (B.lo, B.hi)]
    assert (A * B) == Interval(min(corners), max(corners))
    assert (A + B) == Interval(A.lo + B.lo, A.hi + B.hi)
    assert (A - B) == Interval(A.lo - B.hi, A.hi - B.lo)
    assert A.relu() == Interval(max(A.lo, 0), max(A.hi, 0))


@settings(max_examples=300, deadline=None)
@given(lo=st.fractions(-1000, 1000), span=st.fractions(0, 1000), f=st.integers(-4, 12))
def test_covering_type_is_minimal(lo, span, f):
    iv = Interval(lo, lo + span)
    t = covering_type(iv, f)
    grid_lo = math.floor(iv.lo * 2**f) / Fraction(2) ** f
    grid_hi = math.ceil(iv.hi * 2**f) / Fraction(2) ** f
    assert t.min_value <= grid_lo and grid_hi <= t.max_value
    if t.width > 0:  # one bit less (or no sign) would not cover
        narrower = [FixedType(t.signed, t.integer - 1, f)] + ([FixedType(False, t.integer, f)] if t.signed else [])
        assert all(not (n.min_value <= grid_lo and grid_hi <= n.max_value) for n in narrower)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), in_bits=st.sampled_from([4, 12, 20, 23, 24, 25, 26, 30, 50, 53, 54, 60]),
       rounding=st.sampled_from(["TRN", "RND", "RND_CONV"]), overflow=st.sampled_from(["WRAP", "SAT", "SAT_SYM"]),
       as_float=st.booleans())
def test_fast_requantizer_equals_requantize(data, in_bits, rounding, overflow, as_float):
    """The float32 / float64 / int64 kernels of ``requantizer`` give exactly the codes of
    ``requantize``, at the ends of the input range and at random points inside it."""
    from rtl4ml.fixed import requantizer
    n = data.draw(st.integers(1, 5))
    signed = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    integer = np.array(data.draw(st.lists(st.integers(-2, 20), min_size=n, max_size=n)))
    fraction = np.array(data.draw(st.lists(st.integers(-3, 12), min_size=n, max_size=n)))
    t = FixedTypeArray(signed, integer, fraction, rounding, overflow)
    f0 = np.array(data.draw(st.lists(st.integers(-4, 16), min_size=n, max_size=n)))
    lo = -(1 << (in_bits - 1))
    hi = (1 << (in_bits - 1)) - 1
    lo_a, hi_a = np.array([lo] * n, dtype=object), np.array([hi] * n, dtype=object)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    q = rng.integers(lo, hi, size=(200, n), endpoint=True)
    q[:4] = [[lo] * n, [hi] * n, [0] * n, [-1] * n]
    run = requantizer(f0, t, lo_a, hi_a)
    x = q.astype(np.float64) if as_float and in_bits <= 53 else q
    got = run(x)
    np.testing.assert_array_equal(np.asarray(got).astype(np.int64), requantize(q, f0, t))
