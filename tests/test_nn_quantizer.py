"""rtl4ml.nn quantizers: exact values (== rtl4ml.fixed), types, and gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rtl4ml.fixed import FixedTypeArray, quantize  # noqa: E402
from rtl4ml.nn import ActivationQuantizer, QuantizerError, WeightQuantizer  # noqa: E402
from rtl4ml.nn.quantizer import code_bounds, code_width, pow2, round_codes, wrap_codes  # noqa: E402

from .conftest import near_quantization_steps  # noqa: E402

LN2 = math.log(2.0)
MODES = [(r, o) for r in ("TRN", "RND", "RND_CONV") for o in ("WRAP", "SAT", "SAT_SYM")]


def boundary_values(rng, f: np.ndarray, n: int) -> np.ndarray:
    """Random values, exact grid points, exact half-LSB ties and one float64 ulp either side."""
    return near_quantization_steps(rng, rng.normal(0, 2.0 ** rng.integers(-6, 8, n)), f)


@pytest.mark.parametrize("rounding,overflow", MODES)
def test_exact_helpers_match_rtl4ml_fixed(rounding, overflow):
    rng = np.random.default_rng(1)
    n = 50_000
    s = rng.integers(0, 2, n).astype(bool)
    w = rng.integers(0, 14, n)
    f = rng.integers(-4, 12, n)
    t = FixedTypeArray(s, w - s - f, f, rounding, overflow)
    x = boundary_values(rng, f, n)
    X, F = torch.from_numpy(x), torch.from_numpy(f.astype(np.float64))
    W, S = torch.from_numpy(t.width.astype(np.float64)), torch.from_numpy(t.signed)
    c = round_codes(X * pow2(F), rounding)
    if overflow == "WRAP":
        c = wrap_codes(c, W, S)
    else:
        lo, hi = code_bounds(W, S, overflow)
        c = torch.minimum(torch.maximum(c, lo), hi)
    np.testing.assert_array_equal((c * pow2(-F)).numpy(), quantize(x, t))


def test_pow2_is_exact_and_code_width_matches_fixed():
    from rtl4ml.fixed import code_width as cw
    k = torch.arange(-60, 61, dtype=torch.float64)
    assert all(float(v) == 2.0 ** int(e) for v, e in zip(pow2(k), k))
    assert all(float(v) == 2.0 ** int(e) for v, e in zip(pow2(k.float()), k))
    assert pow2(k.float()).dtype == torch.float32
    rng = np.random.default_rng(2)
    lo = rng.integers(-(2 ** 40), 2 ** 20, 2000)
    hi = lo + rng.integers(0, 2 ** 41, 2000)
    width, signed = code_width(torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64))
    for a, b, wd, sg in zip(lo, hi, width, signed):
        assert cw(int(a), int(b)) == (bool(sg), int(wd))


def _calibrated(q: ActivationQuantizer, x: torch.Tensor) -> ActivationQuantizer:
    q.set_calibration(x.min(0).values, x.max(0).values, 0)
    q.eval()
    return q


@pytest.mark.parametrize("rounding,overflow", MODES)
def test_activation_quantizer_eval_equals_its_fixed_types(rounding, overflow):
    rng = np.random.default_rng(3)
    n = 24
    q = ActivationQuantizer(n, rounding=rounding, overflow=overflow, init_i=2.0)
    with torch.no_grad():
        q.f.copy_(torch.tensor(rng.uniform(-3, 9, n)))
        if q.i is not None:
            q.i.copy_(torch.tensor(rng.uniform(-2, 5, n)))
    cal = torch.tensor(rng.normal(0, 3, (500, n)))
    _calibrated(q, cal)
    t = q.fixed_types()
    # test data reaching beyond the calibrated range: WRAP wraps, SAT clips, exactly as the types say
    x = np.concatenate([boundary_values(rng, t.fraction, (4000, n)) * 3, cal.numpy(),
                        t.min_q * np.ldexp(1.0, -t.fraction)[None, :], (t.max_q * np.ldexp(1.0, -t.fraction))[None, :]])
    out = q(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_array_equal(out, quantize(x, t))
    if overflow == "WRAP":  # the calibrated types cover the calibration sample: nothing wraps there
        no_overflow = FixedTypeArray(t.signed, t.integer, t.fraction, rounding, "SAT")
        np.testing.assert_array_equal(q(cal).detach().numpy(), quantize(cal.numpy(), no_overflow))


def test_wrap_quantizer_types_cover_calibration_exactly():
    x = torch.tensor([[0.0, -1.0, 0.3], [5.2, 0.75, 0.3], [2.0, 0.5, 0.3]], dtype=torch.float64)
    q = ActivationQuantizer(3, init_f=2.0)
    _calibrated(q, x)
    t = q.fixed_types()
    # col 0: [0, 5.2] at f=2 -> codes [0, 20]: unsigned 5 bits; col 1: [-1, 0.75] -> [-4, 3]: signed 3 bits;
    # col 2: 0.3 -> code 1: 1 bit
    assert t.signed.tolist() == [False, True, False]
    assert t.width.tolist() == [5, 3, 1]
    assert t.fraction.tolist() == [2, 2, 2]


def test_width_zero_activation_is_constant_zero():
    q = ActivationQuantizer(2, init_f=0.0)
    x = torch.tensor([[0.2, 3.0], [0.4, 1.0]], dtype=torch.float64)
    _calibrated(q, x)
    t = q.fixed_types()
    assert t.width.tolist() == [0, 2]
    out = q(torch.tensor([[0.9, 2.5], [100.3, -7.0]], dtype=torch.float64))
    assert out[:, 0].tolist() == [0.0, 0.0]


def test_granularity_shapes():
    assert ActivationQuantizer(7, granularity="layer").f.shape == (1,)
    assert ActivationQuantizer(7, granularity="channel").f.shape == (7,)
    assert WeightQuantizer((5, 7), granularity="channel").f.shape == (5, 1)
    assert WeightQuantizer((5, 7), granularity="layer").f.shape == (1, 1)
    assert WeightQuantizer((5, 7)).f.shape == (5, 7)
    with pytest.raises(QuantizerError, match="granularity"):
        ActivationQuantizer(3, granularity="row")
    with pytest.raises(QuantizerError, match="rounding"):
        ActivationQuantizer(3, rounding="ROUND")


def test_lazy_size_from_first_batch():
    q = ActivationQuantizer()
    assert not q.initialized
    opt = torch.optim.Adam(q.parameters(), lr=0.1)
    y = q(torch.randn(4, 5))
    assert q.initialized and q.f.shape == (5,) and y.shape == (4, 5)
    y.sum().backward()
    opt.step()  # the optimizer created before the first batch trains the materialized parameter
    assert not torch.equal(q.f.detach(), torch.full((5,), 6.0))
    with pytest.raises(QuantizerError, match="5 features"):
        q(torch.randn(4, 6))


# --------------------------------------------------------------------------- gradients


def test_weight_quantizer_values_and_gradients():
    w = torch.tensor([[0.30, -0.71], [1.26, 0.0049]], dtype=torch.float64, requires_grad=True)
    q = WeightQuantizer((2, 2), init_f=3.0).double()
    out = q(w)
    expect = torch.round(w.detach() * 8) / 8  # RND = half up; no ties here
    assert torch.equal(out.detach(), expect)
    out.backward(torch.ones_like(out))
    assert torch.equal(w.grad, torch.ones_like(w))               # straight-through
    torch.testing.assert_close(q.f.grad, -LN2 * (expect - w.detach()), rtol=0, atol=1e-15)
    bits = q.bits(w)
    assert bits.detach().tolist() == [[2.0, 3.0], [4.0, 0.0]]   # codes 2, -6, 10, 0 (pruned)


def test_surrogate_is_exact_derivative_of_expected_rounding_error():
    """For x uniform over many LSBs, E[(q-x)^2] = 4**-f / 3 (TRN): its log-derivative is -2 ln2.

    The finite difference over one bit, log E(f+1) - log E(f), and the surrogate's
    dE/df / E must both give it.
    """
    x = torch.rand(400_000, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 16
    def mse(f: float, grad: bool = False):
        q = ActivationQuantizer(1, init_f=f, granularity="layer").double().train()
        e = ((q(x) - x) ** 2).mean()
        if grad:
            e.backward()
            return float(e.detach()), float(q.f.grad)
        return float(e.detach())
    for f in (2.0, 5.0):
        e, g = mse(f, grad=True)
        assert abs(g / e - (-2 * LN2)) < 0.02
        assert abs(math.log(mse(f + 1) / e) - (-2 * LN2)) < 0.02


def test_sat_gradients_through_the_clip():
    q = ActivationQuantizer(3, overflow="SAT", init_i=1.0, init_f=2.0, signed=True).double().train()
    x = torch.tensor([[0.30, 5.0, -9.0], [1.10, -1.0, 0.6]], dtype=torch.float64, requires_grad=True)
    out = q(x)
    # i=1, f=2, signed: codes in [-8, 7] -> values in [-2, 1.75]
    assert out.detach().tolist() == [[0.25, 1.75, -2.0], [1.0, -1.0, 0.5]]
    out.backward(torch.ones_like(out))
    assert x.grad.tolist() == [[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
    # d out / d i: +ln2*2**i where clipped above, -ln2*2**i where clipped below, else 0
    torch.testing.assert_close(q.i.grad, torch.tensor([0.0, LN2 * 2, -LN2 * 2], dtype=torch.float64))
    # which is the derivative of the smooth bounds 2**i - 2**-f and -2**i (central finite difference)
    h = 1e-6
    upper = lambda i: 2 ** i - 2 ** -2.0  # noqa: E731
    assert abs((upper(1 + h) - upper(1 - h)) / (2 * h) - LN2 * 2) < 1e-6
    # f gradient only where not clipped
    fg = q.f.grad
    assert float(fg[1]) == pytest.approx(-LN2 * float((out[1, 1] - x[1, 1]).detach()))


def test_wrap_training_forward_never_overflows():
    q = ActivationQuantizer(2, init_f=1.0).train()
    x = torch.tensor([[100.3, -7.2], [0.4, 2.26]])
    out = q(x)
    assert out.detach().tolist() == [[100.0, -7.5], [0.0, 2.0]]


def test_value_is_exact_with_gradient_terms():
    """The zero-valued gradient terms never change a bit of the value, whatever the magnitudes."""
    rng = np.random.default_rng(5)
    q = ActivationQuantizer(16, rounding="RND").double().train()
    with torch.no_grad():
        q.f.copy_(torch.tensor(rng.integers(-8, 20, 16), dtype=torch.float64))
    x = torch.tensor(rng.normal(0, 1e3, (1000, 16)), requires_grad=True)
    out = q(x)
    f = q.f.detach().numpy().astype(np.int64)
    np.testing.assert_array_equal(out.detach().numpy(),
                                  np.ldexp(np.floor(np.ldexp(x.detach().numpy(), f) + 0.5), -f))
