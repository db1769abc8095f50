"""Softmax by tables against float softmax: the guaranteed bound and the measured error.

For each number of classes, random logits (normal, scale 4, quantized to ``fixed<10,5>``,
plus rows of equal values and ties) go through the graph's softmax (rtl4ml.graph.composite,
default types); the largest |hardware - float softmax of the same quantized logits| and the
bound of ``softmax_error_bound`` are printed, with the table sizes.

    python benchmarks/softmax_error.py [--samples 20000]
"""

from __future__ import annotations

import argparse

import numpy as np

from rtl4ml.fixed import quantize
from rtl4ml.graph import GraphBuilder, composite


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'classes':>8} {'max |error|':>12} {'mean |error|':>13} {'bound':>8} {'exp entries':>12} {'1/x entries':>12}")
    for n in (2, 5, 10, 16, 32):
        g = GraphBuilder()
        x = g.input("fixed<10,5>", n)
        y = composite.softmax(g, x)
        graph = g.build(y)
        xs = rng.normal(scale=4, size=(args.samples, n))
        xs[: args.samples // 10] = xs[: args.samples // 10, :1]        # all equal
        xs[args.samples // 10: args.samples // 5, 1] = xs[args.samples // 10: args.samples // 5, 0]   # ties
        xq = quantize(xs, "fixed<10,5>")
        ref = np.exp(xq - xq.max(1, keepdims=True))
        ref /= ref.sum(1, keepdims=True)
        err = np.abs(graph.predict(xs) - ref)
        sizes = {node.op.function: len(node.op.tables(graph.types[node.inputs[0]]).tables[0])
                 for node in graph.nodes if node.op.kind == "lookup_table"}
        print(f"{n:>8} {err.max():>12.5f} {err.mean():>13.6f} {composite.softmax_error_bound(n):>8.4f} "
              f"{sizes['exp_neg']:>12} {sizes['reciprocal']:>12}")


if __name__ == "__main__":
    main()
