"""Closed-form expressions to a Graph: a sympy expression, or an equation string as PySR and
other symbolic-regression tools print it (``'x0*x1 + sin(x2)'``, ``'x0^2 - 1.5*cos(x3)'``).

``from_expression(expr, input_type, variables=None, ...)``: ``expr`` is one expression or a
list of them (one output element each). The Graph has one input ``x`` (a vector: variables
``x0, x1, ...`` are its columns by number, other names in ``variables`` order or sorted) and
the output ``y``, plus ``class`` (the argmax) with ``argmax=True``.

What becomes what:

* ``+``, ``-``: exact adders; ``*`` of two variables: a multiplier (exact); ``*`` by a
  constant: shift-and-add; integer powers: repeated squaring and multiplication (exact);
  negative powers through a ``reciprocal`` table; ``abs``: exact (``max(x, -x)``, known
  non-negative).
* Constants: exact when they have at most ``const_bits`` significant bits (any dyadic
  number, e.g. ``0.375``), else rounded to ``const_bits`` significant bits.
* ``sin, cos, exp, log, tanh, sqrt`` (and ``x**0.5``): a lookup table over the argument's
  codes. An argument with more than ``table_bits`` bits of codes is first truncated to
  ``table_bits`` bits (fraction bits dropped); entries are rounded to ``table_out_bits`` bits
  covering the function's range over that domain (or to ``table_type``).
* ``result_type``: a quantizer on each output (sums and products never round before).

The string is tokenized and checked before sympy sees it: only numbers, names, ``+ - * / ^
** ( ) ,`` and the known functions pass, so an equation string can never run code.
"""

from __future__ import annotations

import io
import keyword
import math
import re
import tokenize
from collections.abc import Sequence

import numpy as np

from ..fixed import FixedType, FixedTypeArray, code_width, parse_type
from ..graph import Graph, GraphBuilder
from ..graph.ops.lookup import FUNCTIONS
from ..torch_common import ConversionError

#: sympy function name -> table function name (rtl4ml.graph.ops.lookup.FUNCTIONS)
TABLE_FUNCTIONS = {"sin": "sin", "cos": "cos", "exp": "exp", "log": "log", "tanh": "tanh", "sqrt": "sqrt"}
#: Names PySR prints that sympy does not know, as sympy code
PYSR_ALIASES = {"square": lambda x: x ** 2, "cube": lambda x: x ** 3, "neg": lambda x: -x}
_ALLOWED_OPS = {"+", "-", "*", "/", "**", "^", "(", ")", ",", "."}


def _sympy():
    try:
        import sympy
    except ImportError:
        raise ConversionError("expressions need sympy (pip install 'rtl4ml[expr]')") from None
    return sympy


def parse_expression(text: str):
    """A sympy expression from an equation string, refusing anything but arithmetic,
    numbers, variable names and the known functions (never evaluates other code)."""
    sp = _sympy()
    if not isinstance(text, str) or not text.strip():
        raise ConversionError(f"an expression must be a non-empty string, got {text!r}")
    functions = {"sin": sp.sin, "cos": sp.cos, "exp": sp.exp, "log": sp.log, "tanh": sp.tanh, "abs": sp.Abs,
                 "Abs": sp.Abs, "sqrt": sp.sqrt, "pi": sp.pi, **PYSR_ALIASES}
    names: set[str] = set()
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError) as e:
        raise ConversionError(f"cannot read the expression {text!r}: {e}") from None
    for tok, nxt in zip(tokens, tokens[1:] + tokens[-1:]):
        if tok.type == tokenize.NAME and nxt.string == "(" and tok.string not in functions:
            raise ConversionError(f"expression {text!r}: {tok.string}(...) is not a supported function (known: "
                                  f"{', '.join(sorted(set(functions) - {'Abs', 'pi'}))})")
        if tok.type in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER, tokenize.INDENT, tokenize.DEDENT):
            continue
        if tok.type == tokenize.NUMBER:
            if not re.fullmatch(r"(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", tok.string):
                raise ConversionError(f"expression {text!r}: {tok.string!r} is not a decimal number")
            continue
        if tok.type == tokenize.NAME:
            if keyword.iskeyword(tok.string) or tok.string.startswith("_"):
                raise ConversionError(f"expression {text!r}: {tok.string!r} cannot be a variable name")
            if tok.string not in functions:
                names.add(tok.string)
            continue
        if tok.type == tokenize.OP and tok.string in _ALLOWED_OPS:
            continue
        raise ConversionError(f"expression {text!r}: {tok.string!r} at column {tok.start[1]} is not allowed "
                              "(numbers, variable names, + - * / ^ ** ( ) and "
                              f"{', '.join(sorted(set(functions) - {'Abs', 'pi'}))})")
    from sympy.parsing.sympy_parser import convert_xor, parse_expr, standard_transformations
    local = {n: sp.Symbol(n) for n in names}
    local.update(functions)
    glob = {"Integer": sp.Integer, "Float": sp.Float, "Rational": sp.Rational, "Symbol": sp.Symbol,
            "__builtins__": {}}
    try:
        return parse_expr(text, local_dict=local, global_dict=glob,
                          transformations=standard_transformations + (convert_xor,))
    except Exception as e:   # sympy raises many kinds on malformed input
        raise ConversionError(f"cannot read the expression {text!r}: {type(e).__name__}: {e}") from None


def _natural(name: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _columns(symbols: set[str], variables: Sequence[str] | None) -> list[str | None]:
    """Column names of the input vector."""
    if variables is not None:
        variables = list(variables)
        missing = sorted(symbols - set(variables), key=_natural)
        if missing:
            raise ConversionError(f"the expression uses {missing}, which are not in variables={variables}")
        return variables
    if symbols and all(re.fullmatch(r"x\d+", s) for s in symbols):
        n = max(int(s[1:]) for s in symbols) + 1
        return [f"x{i}" if f"x{i}" in symbols else None for i in range(n)]
    return sorted(symbols, key=_natural)


class _Builder:
    def __init__(self, g: GraphBuilder, x: str, columns: list, const_bits: int, table_bits: int,
                 table_out_bits: int, table_type) -> None:
        self.g, self.x = g, x
        self.col = {c: i for i, c in enumerate(columns) if c is not None}
        self.const_bits, self.table_bits, self.table_out_bits = const_bits, table_bits, table_out_bits
        self.table_type = table_type
        self.memo: dict = {}
        self.sp = _sympy()

    def constant(self, v: float) -> str:
        v = float(v)
        if not math.isfinite(v):
            raise ConversionError(f"the expression has a non-finite constant {v}")
        t = None
        if v != 0:
            m, e = math.frexp(abs(v))   # |v| = m * 2**e, 0.5 <= m < 1
            scaled = abs(v) * 2.0 ** (self.const_bits - e)
            if scaled != int(scaled):   # more significant bits than const_bits: round
                t = FixedType(True, max(e + 1, 0), self.const_bits - e, "RND", "SAT")
        return self.g.constant(np.array([v]), t, name="c")

    def build(self, e) -> str:
        if e in self.memo:
            return self.memo[e]
        out = self._build(e)
        self.memo[e] = out
        return out

    def _build(self, e) -> str:
        sp, g = self.sp, self.g
        if e.is_Symbol:
            i = self.col[str(e)]
            return g.slice(self.x, [(i, i + 1, 1)], name=str(e))
        if e.is_Number or e.is_NumberSymbol:
            return self.constant(float(e))
        if e.is_Add:
            pos, neg = [], []
            for term in e.as_ordered_terms():
                c, rest = term.as_coeff_Mul()
                if c < 0:
                    neg.append(self.build(-term))
                else:
                    pos.append(self.build(term))
            acc = _balanced(g.add, pos, "add") if pos else self.constant(0.0)
            if neg:   # one subtraction of a balanced sum: as shallow as a sum of all terms
                acc = g.sub(acc, _balanced(g.add, neg, "add"), name="sub")
            return acc
        if e.is_Mul:
            c, rest = e.as_coeff_Mul()
            if c == -1:
                return g.sub(self.constant(0.0), self.build(rest), name="neg")
            factors = [self.build(f) for f in (rest.as_ordered_factors() if rest.is_Mul else [rest])]
            if c != 1:
                factors.append(self.constant(float(c)))
            return _balanced(g.mul, factors, "mul")
        if e.is_Pow:
            base, ex = e.args
            if base == sp.E:
                return self.table("exp", self.build(ex))
            if ex.is_Integer:
                k = int(ex)
                if k == 0:
                    return self.constant(1.0)
                b = self.build(base) if k > 0 else self.table("reciprocal", self.build(base))
                return self.power(b, abs(k))
            if ex == sp.Rational(1, 2):
                return self.table("sqrt", self.build(base))
            if ex == sp.Rational(-1, 2):
                return self.table("rsqrt", self.build(base))
            raise ConversionError(f"{e}: only integer powers (and square roots) are supported")
        if isinstance(e, sp.Abs):
            a = self.build(e.args[0])
            m = g.maximum(a, g.sub(self.constant(0.0), a, name="neg"), name="abs")
            return g.relu(m, name="abs") if g.types[m].lo.min() < 0 else m   # the interval [0, max]
        fname = type(e).__name__
        if fname in TABLE_FUNCTIONS and len(e.args) == 1:
            return self.table(TABLE_FUNCTIONS[fname], self.build(e.args[0]))
        raise ConversionError(f"{e}: {fname} is not supported (use +, -, *, constants, integer powers, "
                              f"{', '.join(sorted(TABLE_FUNCTIONS))}, abs)")

    def power(self, b: str, k: int) -> str:
        """``b**k`` by squaring and multiplying."""
        result, sq = None, b
        while k:
            if k & 1:
                result = sq if result is None else self.g.mul(result, sq, name="mul")
            k >>= 1
            if k:
                sq = self.g.square(sq, name="square")
        return result

    def table(self, fn: str, a: str) -> str:
        """``fn(a)`` through a lookup table over at most ``table_bits`` bits of ``a``."""
        g = self.g
        t = g.types[a]
        lo, hi, f = int(t.lo[0]), int(t.hi[0]), int(t.fraction[0])
        d = 0
        while (hi >> d) - (lo >> d) + 1 > (1 << self.table_bits):
            d += 1
        if d:
            s, w = code_width(lo >> d, hi >> d)
            a = g.quantize(a, FixedType(s, w - int(s) - (f - d), f - d), name=f"{fn}_in")
            lo, hi, f = lo >> d, hi >> d, f - d
        if self.table_type is not None:
            out = self.table_type
        else:
            with np.errstate(all="ignore"):
                v = np.asarray(FUNCTIONS[fn](np.ldexp(np.arange(lo, hi + 1, dtype=np.float64), -f)))
            v = v[np.isfinite(v)]
            m = float(np.abs(v).max(initial=0.0))
            i = max(math.floor(math.log2(m)) + 1, 0) if m > 0 else 0
            out = FixedType(True, i, self.table_out_bits - 1 - i, "RND", "SAT")
        return g.lookup(a, fn, out, name=fn)


def _balanced(op, items: list[str], name: str) -> str:
    while len(items) > 1:
        items = [op(items[i], items[i + 1], name=name) for i in range(0, len(items) - 1, 2)] + \
                ([items[-1]] if len(items) % 2 else [])
    return items[0]


def from_expression(expr, input_type, variables: Sequence[str] | None = None, const_bits: int = 16,
                    table_bits: int = 10, table_out_bits: int = 12, table_type=None, result_type=None,
                    argmax: bool = False) -> Graph:
    """A Graph computing ``expr`` (see the module doc)."""
    sp = _sympy()
    exprs = list(expr) if isinstance(expr, (list, tuple)) else [expr]
    if not exprs:
        raise ConversionError("no expression given")
    parsed = []
    for e in exprs:
        if isinstance(e, str):
            e = parse_expression(e)
        elif not isinstance(e, sp.Basic):
            raise ConversionError(f"an expression must be a string or a sympy expression, got {type(e).__name__}")
        parsed.append(sp.sympify(e))
    symbols = {str(s) for e in parsed for s in e.free_symbols}
    if input_type is None:
        raise ConversionError("an expression needs input_type (the fixed-point type of its variables, e.g. "
                              "'fixed<12,4>')")
    columns = _columns(symbols, variables)
    if not columns:
        raise ConversionError(f"the expression {exprs[0]} has no variables")
    g = GraphBuilder()
    shape = (len(columns),)
    if isinstance(input_type, FixedTypeArray) and input_type.shape not in (shape, ()):
        raise ConversionError(f"input_type has types of shape {input_type.shape} for {len(columns)} variables")
    x = g.input(input_type if isinstance(input_type, FixedTypeArray) else parse_type(input_type), shape, name="x")
    b = _Builder(g, x, columns, const_bits, table_bits, table_out_bits,
                 parse_type(table_type) if isinstance(table_type, str) else table_type)
    outs = []
    for e in parsed:
        try:
            outs.append(b.build(e))
        except ConversionError:
            raise
        except ValueError as err:   # GraphError and fixed-point errors name the node
            raise ConversionError(f"expression {e}: {err}") from None
    y = outs[0] if len(outs) == 1 else g.concat(outs, name="y")
    if result_type is not None:
        y = g.quantize(y, parse_type(result_type) if isinstance(result_type, str) else result_type, name="y_q")
    if y != "y":
        y = g.reshape(y, g.shape(y), name="y")   # the output is named y
    results = [y]
    if argmax:
        results.append(g.argmax(y, name="class"))
    return g.build(results)
