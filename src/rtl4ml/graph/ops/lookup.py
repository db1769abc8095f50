"""LookupTable: any unary function, tabulated over the finite domain of its input.

A fixed-point input has finitely many codes, so ``f(x)`` for any function (sigmoid, exp,
a user's Python function) is exactly a table from the input's codes to output codes: the
float value of each entry is quantized once, at conversion, to the output type. The
hardware is that table (a ROM of LUTs), and emulation indexes the same table, so both agree
bit for bit by construction; what remains is the approximation error of the entries, which
the output type decides.

The op means "``f`` with results quantized to ``out_types``", for whatever input type it
receives: its tables are derived from the input's exact intervals whenever the type is
inferred (graph passes may narrow or widen an interval upstream), one table per distinct
(input interval, output type), so an input of 8 bits needs at most 256 entries however its
type was declared. A named function is saved by name; a user's Python function is saved as
its tables, which then must cover the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...fixed import FixedType, FixedTypeArray, as_type_array, parse_type, to_codes
from ..tensor import TensorType, int_array
from .base import GraphError, Op, wire_array
from .serial import types_from_json, types_to_json

#: Tables of more entries than ``2**MAX_TABLE_BITS`` are refused: a LUT6 holds 64 entries
#: per output bit, so a 12-bit table already costs 64 LUTs per output bit.
MAX_TABLE_BITS = 12


def _gelu(x: np.ndarray) -> np.ndarray:
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


#: Functions known by name (frontends and users may pass any vectorized callable instead).
FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "tanh": np.tanh,
    "exp": np.exp,
    "exp_neg": lambda x: np.exp(-x),
    "log": np.log,
    "reciprocal": lambda x: 1.0 / x,
    "sqrt": np.sqrt,
    "rsqrt": lambda x: 1.0 / np.sqrt(x),
    "gelu": _gelu,
    "silu": lambda x: x / (1.0 + np.exp(-x)),
    "sin": np.sin,
    "cos": np.cos,
    "abs": np.abs,
    "square": np.square,
}


def resolve_function(fn) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    """``(callable, name)`` of a function name or a callable."""
    if isinstance(fn, str):
        if fn not in FUNCTIONS:
            raise GraphError(f"unknown table function {fn!r}; known: {', '.join(sorted(FUNCTIONS))}, "
                             "or pass a Python function")
        return FUNCTIONS[fn], fn
    if not callable(fn):
        raise GraphError(f"a table function must be a name or a callable, got {fn!r}")
    return fn, getattr(fn, "__name__", "function")


@dataclass(frozen=True)
class Tables:
    """Element ``e`` maps code ``c`` (at scale ``2**-in_fractions[t]``, ``t = which[e]``) to
    ``tables[t][c - starts[t]]`` at scale ``2**-out_fractions[t]``."""

    tables: tuple[tuple[int, ...], ...]
    starts: tuple[int, ...]
    in_fractions: tuple[int, ...]
    out_fractions: tuple[int, ...]
    which: np.ndarray

    def to_json(self) -> dict:
        return {"tables": [list(t) for t in self.tables], "starts": list(self.starts),
                "in_fractions": list(self.in_fractions), "out_fractions": list(self.out_fractions),
                "shape": list(self.which.shape), "which": self.which.reshape(-1).tolist()}

    @classmethod
    def from_json(cls, d: dict) -> "Tables":
        return cls(tuple(tuple(int(v) for v in t) for t in d["tables"]), tuple(d["starts"]), tuple(d["in_fractions"]),
                   tuple(d["out_fractions"]), np.asarray(d["which"], dtype=np.int64).reshape(tuple(d["shape"])))


def _entries(f, name: str, idx, lo: int, hi: int, fx: int, ty: FixedType, max_bits: int) -> tuple[int, ...]:
    """``f`` at codes ``lo..hi`` (scale ``2**-fx``), quantized to ``ty``.

    ``+inf`` / ``-inf`` (``1/0``, ``log 0``) become the type's largest / smallest value; a NaN
    is refused with the input value that produced it, since no output value is right for it.
    """
    n = hi - lo + 1
    if n > 1 << max_bits:
        bits = (n - 1).bit_length()
        raise GraphError(
            f"{name} table for input element {idx} would have {n} entries (codes {lo}..{hi}, {bits} bits at "
            f"2^-{fx}), more than 2^{max_bits}: quantize the input to at most {max_bits} bits first, e.g. drop "
            f"{bits - max_bits} fraction bits or clip its range")
    codes = np.arange(lo, hi + 1, dtype=np.float64)
    with np.errstate(all="ignore"):
        v = np.asarray(f(np.ldexp(codes, -fx)), dtype=np.float64).reshape(-1)
    if v.shape != codes.shape:
        raise GraphError(f"{name}: the function returned {v.shape[0]} values for {codes.shape[0]} inputs; it must "
                         "work element by element on a numpy array")
    if np.isnan(v).any():
        bad = float(np.ldexp(codes[np.isnan(v)][0], -fx))
        raise GraphError(f"{name}({bad}) is not a number; the input element {idx} reaches {bad}: restrict the "
                         "input's range (e.g. a ReLU or a clamp before the table)")
    v = np.where(np.isposinf(v), float(ty.max_value), np.where(np.isneginf(v), float(ty.min_value), v))
    v = np.clip(v, -2.0**62, 2.0**62)   # huge finite values saturate or wrap like any other
    return tuple(int(c) for c in to_codes(v, ty))


def tabulate(fn, x: TensorType, out_types: FixedTypeArray, max_bits: int = MAX_TABLE_BITS,
             name: str | None = None) -> Tables:
    """The tables of ``fn`` for inputs of type ``x``, entries in ``out_types`` (of ``x``'s shape)."""
    f, fname = resolve_function(fn)
    name = name or fname
    keys: dict[tuple, int] = {}
    tables, starts, in_fracs, out_fracs = [], [], [], []
    which = np.zeros(x.shape, dtype=np.int64)
    for idx in np.ndindex(*x.shape):
        lo, hi, fx, ty = int(x.lo[idx]), int(x.hi[idx]), int(x.fraction[idx]), out_types[idx]
        key = (lo, hi, fx, ty)
        if key not in keys:
            keys[key] = len(tables)
            tables.append(_entries(f, name, idx, lo, hi, fx, ty, max_bits))
            starts.append(lo)
            in_fracs.append(fx)
            out_fracs.append(ty.fraction)
        which[idx] = keys[key]
    which.setflags(write=False)
    return Tables(tuple(tables), tuple(starts), tuple(in_fracs), tuple(out_fracs), which)


def output_types(out, shape: tuple[int, ...]) -> FixedTypeArray:
    """``out`` (a type, type string or FixedTypeArray) for every element of ``shape``."""
    if isinstance(out, FixedTypeArray):
        try:
            return out.broadcast_to(shape)
        except ValueError:
            raise GraphError(f"table output types of shape {out.shape} for an input of shape {shape}") from None
    return as_type_array(parse_type(out) if isinstance(out, str) else out, shape)


@dataclass(frozen=True, eq=False)
class LookupTable(Op):
    """``function`` (a name in :data:`FUNCTIONS`, or the name of ``fn``, a user's vectorized
    function) of each element, quantized to ``out_types`` (broadcast to the input's shape).
    ``saved``: the tables of a user's function read from a saved design."""

    function: str
    out_types: FixedTypeArray
    fn: Callable | None = None
    saved: Tables | None = None
    max_bits: int = MAX_TABLE_BITS
    kind = "lookup_table"

    def __post_init__(self) -> None:
        if self.fn is None and self.saved is None:
            resolve_function(self.function)     # an unknown name fails here, not at first use
        object.__setattr__(self, "_cache", {})

    def tables(self, x: TensorType) -> Tables:
        """The tables for inputs of type ``x`` (computed once per type)."""
        key = (x.shape, tuple(x.lo.flat), tuple(x.hi.flat), x.fraction.tobytes())
        cache = self.__dict__["_cache"]
        if key not in cache:
            cache.clear()
            cache[key] = self.saved if self.saved is not None else tabulate(
                self.fn or self.function, x, output_types(self.out_types, x.shape), self.max_bits, self.function)
        return cache[key]

    def infer(self, inputs: list[TensorType]) -> TensorType:
        (x,) = inputs
        t = self.tables(x)
        if x.shape != t.which.shape:
            raise GraphError(f"{self.function} tables were saved for inputs of shape {t.which.shape}, got {x.shape}")
        lo = np.empty(x.shape, dtype=object)
        hi = np.empty(x.shape, dtype=object)
        f = np.zeros(x.shape, dtype=np.int64)
        for idx in np.ndindex(*x.shape):
            k = int(t.which[idx])
            a, b = int(x.lo[idx]) - t.starts[k], int(x.hi[idx]) - t.starts[k]
            if int(x.fraction[idx]) != t.in_fractions[k] or a < 0 or b >= len(t.tables[k]):
                raise GraphError(
                    f"the saved {self.function} table of element {idx} covers codes {t.starts[k]}.."
                    f"{t.starts[k] + len(t.tables[k]) - 1} at 2^-{t.in_fractions[k]}, but the input reaches "
                    f"{int(x.lo[idx])}..{int(x.hi[idx])} at 2^-{int(x.fraction[idx])}")
            seg = t.tables[k][a:b + 1]
            lo[idx], hi[idx], f[idx] = min(seg), max(seg), t.out_fractions[k]
        return TensorType(int_array(lo), int_array(hi), f)

    def emulator(self, in_types, out_type):
        t = self.tables(in_types[0])
        flat = np.concatenate([np.asarray(v, dtype=np.int64) for v in t.tables])
        offsets = np.cumsum([0] + [len(v) for v in t.tables[:-1]])
        shift = (offsets - np.asarray(t.starts, dtype=np.int64))[t.which]   # code -> flat index
        return lambda inputs: flat[inputs[0] + shift]

    def lower(self, nl, inputs, in_types, out_type) -> np.ndarray:
        t = self.tables(in_types[0])
        out = []
        for idx, w in zip(np.ndindex(*t.which.shape), inputs[0].flat):
            k = int(t.which[idx])
            wire = nl.wire(int(w))
            up = t.in_fractions[k] - wire.fraction    # the netlist may carry the value with fewer bits
            if up < 0:
                raise GraphError(f"{self.function} table of element {idx}: its input wire has {wire.fraction} "
                                 f"fraction bits, more than the {t.in_fractions[k]} the table was made for")
            entries = [t.tables[k][(c << up) - t.starts[k]] for c in range(wire.lo, wire.hi + 1)]
            out.append(nl.lookup(int(w), entries, t.out_fractions[k]))
        return wire_array(out, t.which.shape)

    def describe(self) -> str:
        return f"{self.function} table"

    def to_json(self) -> dict:
        d = {"function": self.function, "out_types": types_to_json(self.out_types), "max_bits": self.max_bits}
        if self.fn is not None or self.saved is not None:
            cache = self.__dict__["_cache"]
            if not cache:
                raise GraphError(f"the {self.function} table of a Python function is saved as its tables; infer the "
                                 "graph's types before saving")
            d["tables"] = next(iter(cache.values())).to_json()
        return d

    @classmethod
    def from_json(cls, data: dict) -> "LookupTable":
        saved = Tables.from_json(data["tables"]) if "tables" in data else None
        return cls(data["function"], types_from_json(data["out_types"]), None, saved,
                   int(data.get("max_bits", MAX_TABLE_BITS)))
