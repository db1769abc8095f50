"""Expressions (sympy, or equation strings as symbolic regression prints them) to Graphs:
exact arithmetic where no table is involved, tables within their rounding, safe parsing,
and graph == netlist == RTL in one Verilator build."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtl4ml.design import Design
from rtl4ml.fixed import FixedType, quantize

sp = pytest.importorskip("sympy")

from rtl4ml.frontends.expressions import from_expression, parse_expression  # noqa: E402
from rtl4ml.torch_common import ConversionError  # noqa: E402

INPUT = "fixed<10,4>"   # -8 .. 8 in steps of 1/64


def reference(expr: str, x: np.ndarray, names=None) -> np.ndarray:
    """``expr`` in float64 with sympy's own numpy translation, on the quantized inputs."""
    e = parse_expression(expr)
    names = names or [f"x{i}" for i in range(x.shape[1])]
    f = sp.lambdify([sp.Symbol(n) for n in names], e, "numpy")
    return np.broadcast_to(f(*[x[:, i] for i in range(x.shape[1])]), (len(x),)).astype(np.float64)


def inputs(n: int, cols: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-8, 8, (n, cols))
    x[:4] = [[-8] * cols, [8 - 2 ** -6] * cols, [0] * cols, [2 ** -6] * cols]
    return quantize(x, INPUT)


POLYNOMIALS = ["x0*x1 + x2", "x0^2 - 3*x1 + 0.375", "x0**3 - x0*x1*x2 + 2.5", "-x0 - x1", "(x0 + x1)^2 * 0.125",
               "x1 - 7", "square(x0) + cube(x1) + neg(x2)", "abs(x0 - x1) * 2"]


@pytest.mark.parametrize("expr", POLYNOMIALS)
def test_polynomials_are_exact(expr):
    x = inputs(2000, 3)
    g = from_expression(expr, INPUT, variables=["x0", "x1", "x2"])
    np.testing.assert_array_equal(g.predict(x)[:, 0], reference(expr, x))


@settings(max_examples=40, deadline=None)
@given(coef=st.lists(st.integers(-64, 64), min_size=3, max_size=3), powers=st.lists(st.integers(0, 3), min_size=3,
                                                                                    max_size=3))
def test_random_sparse_polynomials_are_exact(coef, powers):
    terms = [f"({c}/16)*x{i}^{p}" for i, (c, p) in enumerate(zip(coef, powers))]
    expr = " + ".join(terms) + " + x0*x2"
    x = inputs(300, 3, seed=abs(sum(coef)))
    np.testing.assert_array_equal(from_expression(expr, INPUT).predict(x)[:, 0], reference(expr, x))


@pytest.mark.parametrize("fn", ["sin", "cos", "tanh", "exp", "log", "sqrt"])
def test_functions_through_tables_within_half_an_lsb(fn):
    # inputs of 8 bits: the table covers every code, so the only error is the entry's rounding
    t = "ufixed<8,3>" if fn in ("log", "sqrt") else "fixed<8,3>"
    out = FixedType(True, 4, 11, "RND", "SAT")
    g = from_expression(f"{fn}(x0)", t, table_type=out)
    x = quantize(np.linspace(-4, 8, 3001)[:, None], t)
    if fn == "log":
        x = x[x[:, 0] > 0]
    got, want = g.predict(x)[:, 0], reference(f"{fn}(x0)", x)
    lsb = 2.0 ** -11
    np.testing.assert_array_less(np.abs(got - np.clip(want, -16, 16 - lsb)), lsb / 2 + 1e-12)


def test_wide_table_arguments_are_truncated_to_table_bits():
    g = from_expression("sin(x0*x1)", INPUT, table_bits=9)
    quant = [n for n in g.nodes if n.op.kind == "quantize"]
    assert len(quant) == 1
    t = g.types[quant[0].name]
    assert int(t.hi[0]) - int(t.lo[0]) + 1 <= 1 << 9
    x = inputs(2000, 2)
    # error: the argument's truncation (|d sin| <= 1 per LSB of the argument) + the entry's rounding
    arg_lsb = 2.0 ** -int(t.fraction[0])
    assert np.abs(g.predict(x)[:, 0] - reference("sin(x0*x1)", x)).max() <= arg_lsb + 2.0 ** -11


def test_named_variables_several_outputs_and_argmax():
    g = from_expression(["a*b", "a - b", "2*c"], INPUT, variables=["a", "b", "c"], argmax=True)
    x = inputs(500, 3)
    y, cls = g.predict(x)
    want = np.stack([reference(e, x, ["a", "b", "c"]) for e in ["a*b", "a - b", "2*c"]], axis=1)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(cls, want.argmax(axis=1))
    e = sp.Symbol("a") * 3 + sp.sin(sp.Symbol("b"))   # a sympy object directly
    g = from_expression(e, INPUT, variables=["a", "b"])
    assert np.abs(g.predict(x[:, :2])[:, 0] - (3 * x[:, 0] + np.sin(x[:, 1]))).max() < 2.0 ** -8


def test_constants_round_to_const_bits():
    g = from_expression("x0 * 0.1", INPUT, const_bits=8)
    c = next(n.op for n in g.nodes if n.op.kind == "constant")
    assert float(c.effective[0]) == round(0.1 * 2 ** 11) / 2 ** 11   # 8 significant bits
    np.testing.assert_array_equal(from_expression("x0 * 0.375", INPUT).predict(inputs(50, 1))[:, 0],
                                  inputs(50, 1)[:, 0] * 0.375)


@pytest.mark.parametrize("bad,msg", [
    ("__import__('os').system('true')", "not a supported function"),
    ("x0 + __class__", "cannot be a variable name"),
    ("x0; x1", "';' at column 2 is not allowed"),
    ("lambda: 1", "'lambda' cannot be a variable name"),
    ("gamma(x0)", r"gamma\(...\) is not a supported function"),
    ("x0**x1", "only integer powers"),
    ("x0 +", "cannot read the expression"),
    ("x0.real", r"cannot|not allowed|supported"),
])
def test_bad_expressions_are_refused_clearly(bad, msg):
    with pytest.raises(ConversionError, match=msg):
        from_expression(bad, INPUT)


def test_missing_options_and_variables():
    with pytest.raises(ConversionError, match="needs input_type"):
        from_expression("x0", None)
    with pytest.raises(ConversionError, match=r"uses \['z'\], which are not in variables"):
        from_expression("x0 + z", INPUT, variables=["x0"])


@pytest.mark.hw
def test_expressions_rtl_graph_netlist_and_verilator_agree():
    exprs = ["x0*x1 + sin(x2)", "x0^3 - 0.3*x1 + 1", "exp(x0 * 0.25) - tanh(x1)", "abs(x2) * x0 - cos(x1)",
             "sqrt(abs(x0)) + log(abs(x1) + 1)"]
    g = from_expression(exprs, INPUT, result_type="fixed<18,10,RND,SAT>", argmax=True)
    d = Design(g, name="exprs", clock_ns=5.0)
    x = inputs(3000, 3, seed=3)
    for a, b in zip(d.execute_netlist(x), d.predict_codes(x)):
        np.testing.assert_array_equal(a, b)
    want = np.stack([reference(e, x) for e in exprs], axis=1)
    assert np.abs(d.predict(x)[0] - want).max() < 0.05
    r = d.verify(x)
    assert r.ok, str(r)


def test_cli_converts_an_expression(tmp_path, capsys):
    import rtl4ml
    from rtl4ml.cli import main
    assert main(["convert", "--expr", "x0*x1 - x2", "--expr", "x1^2", "--input-type", INPUT, "-o",
                 str(tmp_path / "e")]) == 0
    d = rtl4ml.load(tmp_path / "e")
    x = inputs(100, 3)
    np.testing.assert_array_equal(d.predict(x), np.stack([reference("x0*x1 - x2", x), x[:, 1] ** 2], axis=1))
    capsys.readouterr()
    assert main(["convert", "--expr", "x0 +", "--input-type", INPUT, "-o", str(tmp_path / "f")]) == 2
    assert "cannot read the expression 'x0 +'" in capsys.readouterr().err
    assert main(["convert", "--expr", "x0", "--weight-type", "fixed<8,3>", "--input-type", INPUT, "-o",
                 str(tmp_path / "f")]) == 2
    assert "not options of an expression" in capsys.readouterr().err
