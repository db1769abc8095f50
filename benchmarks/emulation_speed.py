"""Samples per second of the Graph emulator, a plain float64 numpy forward pass of the same
network, and the Netlist executor (16-64-32-32-5 jet MLP).

All run on the same design and the same 100k inputs in this one process; each is timed
over several repeats and the median is reported, with the ratios. The bit-exact paths are
compared bit for bit before timing. The float64 forward (``x @ W + b`` and ReLU with the
same weights, no quantization) is what a physicist would otherwise run in numpy: the goal
is a bit-exact emulator at least as fast.

    python benchmarks/emulation_speed.py [--samples 100000] [--repeats 5] [--data PATH]

With ``--data`` (default: ../shared/data/jets_pythia8/jets_pythia8.npz when present) the
inputs are real jets, standardized; otherwise standard-normal features.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import rtl4ml
from rtl4ml.graph import GraphBuilder
from rtl4ml.netlist.execute import execute

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "jets_pythia8" / "jets_pythia8.npz"


def jet_mlp_design(seed: int = 0) -> rtl4ml.Design:
    """16-64-32-32-5 with He-initialized weights in fixed<8,3,RND,SAT>, 16-bit activations."""
    rng = np.random.default_rng(seed)
    g = GraphBuilder()
    x = g.input("fixed<16,6>", 16)
    sizes = [16, 64, 32, 32, 5]
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        w = rtl4ml.quantize(rng.normal(scale=np.sqrt(2 / a), size=(a, b)), "fixed<8,3,RND,SAT>")
        bias = rtl4ml.quantize(rng.normal(scale=0.1, size=b), "fixed<8,3,RND,SAT>")
        x = g.quantize(g.dense(x, w, bias, name=f"fc{i}"), "fixed<16,6,RND,SAT>", b, name=f"fc{i}_q")
        if i < 3:
            x = g.relu(x, name=f"relu{i}")
    return rtl4ml.Design(g.build(x), name="jet_mlp", clock_ns=5.0)


def inputs(n: int, data: Path | None) -> tuple[np.ndarray, str]:
    if data is not None and data.exists():
        with np.load(data, allow_pickle=False) as d:
            x = d["features"][:n].astype(np.float64)
        return (x - x.mean(0)) / x.std(0), f"real jets from {data.name}"
    return np.random.default_rng(1).normal(size=(n, 16)), "standard-normal inputs"


def float_forward(design: rtl4ml.Design):
    """``x @ W + b`` then ReLU per layer, in float64, with the design's weights."""
    dense = [n for n in design.graph.nodes if n.op.kind == "dense"]
    layers = [(n.op.effective_weight, n.op.effective_bias) for n in dense]

    def run(x: np.ndarray) -> np.ndarray:
        h = x
        for i, (w, b) in enumerate(layers):
            h = h @ w + b
            if i < len(layers) - 1:
                h = np.maximum(h, 0)
        return h
    return run


def interleaved(fns: list, repeats: int) -> list[float]:
    """Median seconds of each function, timed in turn within every repeat (so that a load
    change on the shared machine hits all of them alike)."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for t, fn in zip(times, fns):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = ap.parse_args()

    design = jet_mlp_design()
    x, source = inputs(args.samples, args.data)
    xq = design.quantize_input(x)
    graph, netlist = design.graph, design.netlist
    out = graph.outputs[0]
    ref = graph.emulate_codes(xq)[out]
    np.testing.assert_array_equal(execute(netlist, xq), ref)  # same bits before we time anything

    fwd = float_forward(design)
    t_float, t_graph, t_predict = interleaved(
        [lambda: fwd(x), lambda: graph.emulate_codes(xq), lambda: design.predict(x)], args.repeats)
    (t_net,) = interleaved([lambda: execute(netlist, xq)], max(1, args.repeats // 2))
    a = design.estimate(synth=False)
    print(f"design: 16-64-32-32-5, {a.adders} adders, {len(netlist.prims)} netlist primitives; "
          f"{len(x)} samples ({source}); median of {args.repeats} runs")
    rows = [("float64 numpy forward (not bit-exact)", t_float),
            ("graph emulator (codes in, codes out)", t_graph), ("design.predict (floats in, floats out)", t_predict),
            ("netlist executor (codes in, codes out)", t_net)]
    for name, t in rows:
        print(f"  {name:<40} {len(x) / t:>14,.0f} samples/s  ({t:.3f} s)")
    print(f"  graph emulator / float64 forward speed ratio: {t_float / t_graph:.2f}x")
    print(f"  design.predict / float64 forward speed ratio: {t_float / t_predict:.2f}x")
    print(f"  graph emulator / netlist executor speed ratio: {t_net / t_graph:.1f}x")


if __name__ == "__main__":
    main()
