"""Constant matrix-vector multiplication as shift-and-add adder graphs.

A leaf package: it depends only on :mod:`rtl4ml.fixed`, so any op, pass or benchmark can
use it. ``solve_cmvm(W, input_wires, method="cse")`` returns an :class:`AdderGraph` that the
Netlist builder emits with exact wire widths.
"""

from .core import AdderGraph, csd, dyadic, weight_terms
from .solvers import SOLVERS, solve_cmvm, solve_cse, solve_plain

__all__ = ["AdderGraph", "csd", "dyadic", "weight_terms", "SOLVERS", "solve_cmvm", "solve_cse", "solve_plain"]
