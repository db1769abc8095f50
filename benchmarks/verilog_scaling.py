"""Graph-to-Verilog time and Verilog size against the number of netlist primitives.

Two families of designs, each doubling in size:

* **rows**: a dense layer 3 -> 16 -> 8 applied to every one of P particles (shared weights,
  solved once), then a sum over particles: the work grows with P only;
* **width**: a 16 -> W -> W -> 5 MLP with 6-bit weights: the adder graphs grow with W^2;
* **conv**: a 3x3 convolution, 8 -> 8 channels, padding 1, on S x S images (S^2 positions;
  the kernel's adder graph is solved once per kind of border and emitted per position).

For each design the script times lowering (CMVM included), netlist clean-up, pipelining
and Verilog emission separately (median of ``--repeats`` runs), counts primitives and
Verilog bytes, and prints time and bytes per primitive: flat columns mean linear growth.

    python benchmarks/verilog_scaling.py [--repeats 3] [--only rows|width|conv]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import rtl4ml
from rtl4ml.backends.verilog import emit_verilog
from rtl4ml.graph import GraphBuilder, lower_graph
from rtl4ml.passes.dce import simplify
from rtl4ml.passes.pipeline import schedule_pipeline

W_TYPE = "fixed<6,2,RND,SAT>"


def rows_model(p: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x = g.input("fixed<10,4>", (p, 3), name="particles")
    h = x
    for i, (a, b) in enumerate([(3, 16), (16, 8)]):
        w = rtl4ml.quantize(rng.normal(scale=1 / np.sqrt(a), size=(a, b)), W_TYPE)
        h = g.quantize(g.relu(g.dense(h, w, np.zeros(b), name=f"phi{i}")), "ufixed<10,4,RND,SAT>", name=f"q{i}")
    return g.build(g.reduce(h, "sum", 0, name="pool"))


def width_model(w: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    h = g.input("fixed<10,4>", 16, name="x")
    sizes = [16, w, w, 5]
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        wt = rtl4ml.quantize(rng.normal(scale=1 / np.sqrt(a), size=(a, b)), W_TYPE)
        h = g.dense(h, wt, np.zeros(b), name=f"fc{i}")
        if i < 2:
            h = g.quantize(g.relu(h), "ufixed<10,4,RND,SAT>", name=f"q{i}")
    return g.build(h)


def conv_model(side: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x = g.input("fixed<8,3>", (8, side, side), name="image")
    w = rtl4ml.quantize(rng.normal(scale=1 / 3, size=(8, 8, 3, 3)), W_TYPE)
    return g.build(g.conv(x, w, np.zeros(8), 1, 1, name="conv"))


def measure(graph, repeats: int) -> dict:
    steps = {"lower": [], "simplify": [], "pipeline": [], "verilog": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        nl = lower_graph(graph, cmvm="cse", depth_slack=1)
        t1 = time.perf_counter()
        nl = simplify(nl)
        t2 = time.perf_counter()
        nl, _ = schedule_pipeline(nl, 2.5)
        t3 = time.perf_counter()
        v = emit_verilog(nl, "net")
        t4 = time.perf_counter()
        for k, dt in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            steps[k].append(dt)
    return {"prims": len(nl.prims), "bytes": len(v), **{k: statistics.median(t) for k, t in steps.items()}}


def report(title: str, label: str, sizes, make, repeats: int, positions=None) -> None:
    """One row per size; with ``positions(n)``, also lowering time and bytes per position."""
    print(f"\n{title}")
    extra = f" {'lower ms/pos':>13} {'bytes/pos':>10}" if positions else ""
    print(f"  {label:>6} {'prims':>8} {'bytes':>10} {'lower s':>8} {'simpl s':>8} {'pipe s':>8} {'emit s':>8}"
          f" {'us/prim (no lower)':>19} {'us/prim (all)':>14} {'bytes/prim':>11}{extra}")
    for n in sizes:
        m = measure(make(n), repeats)
        rest = m["simplify"] + m["pipeline"] + m["verilog"]
        total = rest + m["lower"]
        line = (f"  {n:>6} {m['prims']:>8} {m['bytes']:>10} {m['lower']:>8.2f} {m['simplify']:>8.2f} "
                f"{m['pipeline']:>8.2f} {m['verilog']:>8.2f} {1e6 * rest / m['prims']:>19.1f} "
                f"{1e6 * total / m['prims']:>14.1f} {m['bytes'] / m['prims']:>11.1f}")
        if positions:
            p = positions(n)
            line += f" {1e3 * m['lower'] / p:>13.2f} {m['bytes'] / p:>10.0f}"
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", choices=["rows", "width", "conv"])
    args = ap.parse_args()
    families = {"rows", "width", "conv"} if args.only is None else {args.only}
    if "rows" in families:
        report("rows: 3-16-8 per particle (shared weights), sum over particles", "P", [15, 30, 60, 120, 240],
               rows_model, args.repeats)
    if "width" in families:
        report("width: 16-W-W-5 MLP, 6-bit weights", "W", [16, 32, 64, 128], width_model, args.repeats)
    if "conv" in families:
        report("conv: 3x3, 8 -> 8 channels, padding 1, on S x S (S^2 positions)", "S", [8, 16, 28], conv_model,
               args.repeats, positions=lambda s: s * s)

if __name__ == "__main__":
    main()
