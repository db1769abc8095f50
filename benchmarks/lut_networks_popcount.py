"""The popcount head alone: Yosys LUT/FF/CARRY and cycles of the adder tree (Reduce sum) and the
LUT compressor tree (the Popcount op) for 5 classes of N bits each.

    python benchmarks/lut_networks_popcount.py [--bits 40,80]

Each design is also checked against the emulator (``execute_netlist``) on random bits.
"""

from __future__ import annotations

import argparse

import numpy as np


def main(argv=None) -> None:
    from rtl4ml.design import Design
    from rtl4ml.fixed import parse_type
    from rtl4ml.graph import GraphBuilder
    from rtl4ml.graph.ops.luts import Popcount
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bits", default="40,80", help="bits per class, comma-separated")
    ap.add_argument("--classes", type=int, default=5)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| bits per class | head | Yosys LUT | FF | CARRY | cycles |\n|---|---|---|---|---|---|")
    for per in (int(b) for b in args.bits.split(",")):
        n = per * args.classes
        for head in ("adders", "compressors"):
            g = GraphBuilder()
            x = g.input(parse_type("ufixed<1,1>"), n)
            if head == "adders":
                out = g.reduce(g.reshape(x, (args.classes, per)), "sum", (1,))
            else:
                out = g.node(Popcount(args.classes), (x,), "popcount")
            d = Design(g.build(out), name="popcount", clock_ns=2.5)
            xs = rng.integers(0, 2, (2000, n)).astype(np.float64)
            assert np.array_equal(d.predict(xs), xs.reshape(len(xs), args.classes, per).sum(2))
            assert np.array_equal(d.execute_netlist(xs), d.predict_codes(xs))
            e = d.estimate(synth=True)
            print(f"| {per} | {head} | {e.lut} | {e.ff} | {e.carry} | {e.latency_cycles} |", flush=True)


if __name__ == "__main__":
    main()
