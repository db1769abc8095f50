"""Lowering time and adder bits of one square dense layer with 8-bit weights (CSE), n = 32 to 256.

The layer is the one of the project issue: ``fixed<8,3>`` inputs, weights drawn from
``N(0, (2 / sqrt(n))**2)`` (seed 0) and quantized to ``fixed<8,1,RND,SAT>``, zero bias,
``cmvm="cse", depth_slack=1``. The CMVM solve alone (``solve_cmvm``) and the whole
``lower_graph`` are timed separately (the median over the repeats; fewer repeats as ``n``
grows), and the adder bits are compared with those recorded before the solver was sped up.

    python benchmarks/lowering_speed.py [--sizes 32 64 128 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import rtl4ml
from rtl4ml.cmvm import solve_cmvm
from rtl4ml.estimate.analytic import adder_stats
from rtl4ml.fixed import Wire
from rtl4ml.graph import Graph, GraphBuilder, lower_graph

INPUT = "fixed<8,3>"
WEIGHT = "fixed<8,1,RND,SAT>"
#: ``n -> (adder bits, lowering seconds)`` of this layer before the CSE engine was sped up:
#: the figures of the project issue (the same layer and ``lower_graph`` call, this machine).
BEFORE = {32: (14024, 0.34), 64: (49377, 2.29), 128: (169774, 14.05), 256: (581112, 123.8)}


def layer(n: int) -> tuple[Graph, np.ndarray]:
    """The graph of one n x n dense layer and its quantized weights."""
    rng = np.random.default_rng(0)
    w = rtl4ml.quantize(rng.normal(scale=1 / np.sqrt(n) * 2, size=(n, n)), WEIGHT)
    g = GraphBuilder()
    x = g.input(INPUT, n)
    return g.build(g.dense(x, w, np.zeros(n))), w


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 128, 256])
    ap.add_argument("--repeats", type=int, default=5, help="for n <= 64; n = 128 gets half, larger n 2")
    args = ap.parse_args()

    t = rtl4ml.parse_type(INPUT)
    print(f"{INPUT} inputs, {WEIGHT} weights, cse, depth_slack=1; median times")
    print(f"{'n':>5} {'solve s':>8} {'lower s':>8} {'adders':>8} {'adder bits':>11} "
          f"{'before bits':>12} {'ratio':>7} {'before s':>9} {'speed-up':>9}")
    for n in args.sizes:
        graph, w = layer(n)
        wires = [Wire(t.min_q, t.max_q, t.fraction)] * n
        repeats = args.repeats if n <= 64 else max(1, args.repeats // 2) if n <= 128 else 2
        t_solve, _ = timed(lambda: solve_cmvm(w, wires, "cse", depth_slack=1), repeats)
        t_lower, nl = timed(lambda: lower_graph(graph, cmvm="cse", depth_slack=1), repeats)
        a = adder_stats(nl)
        bits, seconds = BEFORE.get(n, (None, None))
        before = (f"{bits:>12} {a.adder_bits / bits:>7.4f} {seconds:>9.2f} {seconds / t_lower:>8.1f}x"
                  if bits else f"{'-':>12} {'-':>7} {'-':>9} {'-':>9}")
        print(f"{n:>5} {t_solve:>8.2f} {t_lower:>8.2f} {a.adders:>8} {a.adder_bits:>11} {before}")


if __name__ == "__main__":
    main()
