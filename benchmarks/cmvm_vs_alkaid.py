"""rtl4ml's CMVM optimizer against alkaid (da4ml's successor) on the same problems.

Installs nothing. When ``alkaid`` is importable (``pip install alkaid``; it is not an
rtl4ml dependency) it runs both tools on

* random integer matrices (8x8, 16x16, 32x32, 64x64; 4- and 8-bit weights; 10 seeds each)
  acting on 8-bit signed inputs, and
* the same quantized 16-64-32-32-5 jet MLP (trained here, a few seconds, on the 10,000-jet
  sample shipped with rtl4ml: the first 8,000 jets train it, the other 2,000 test it),

and prints adders, adder bits, adder depth and solve time of both, per row and as medians
of the per-row ratios rtl4ml/alkaid. Both adder graphs are measured the same way: each is
turned into an rtl4ml Netlist (every adder at the exact width of the values it carries) and
counted by ``rtl4ml.estimate.analytic.adder_stats``; alkaid's own cost figure is shown too.
Both solutions are checked bit-exact against ``x @ W`` before they are counted.

Yosys LUT/FF: both tools' own Verilog, synthesized with the same script
(``rtl4ml.estimate.yosys``: ``synth_xilinx -flatten -family xcup -noiopad``), for the jet
MLP and for seed 0 of the matrix sizes in ``--synth-sizes``; alkaid's design gets the same
number of pipeline stages as rtl4ml's.

    python benchmarks/cmvm_vs_alkaid.py                 # everything (Yosys takes minutes)
    python benchmarks/cmvm_vs_alkaid.py --no-mlp --synth-sizes ''   # matrices only, fast

``--slack`` sets rtl4ml's ``cmvm_depth_slack`` for the matrices (default 1, the library's
default); ``--mlp-slacks`` lists the settings the jet MLP is built and synthesized with.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rtl4ml.estimate.analytic import adder_stats
from rtl4ml.netlist.builder import NetlistBuilder
from rtl4ml.cmvm import AdderGraph, solve_cmvm
from rtl4ml.fixed import Wire
from rtl4ml.passes.dce import simplify

INPUT = Wire(-128, 127, 0)      # 8-bit signed inputs


# ----------------------------------------------------------------------------- alkaid glue

def alkaid_graph(stages, n_in: int) -> AdderGraph:
    """An alkaid ``cmvm_solve`` result (its stages applied in turn) as an rtl4ml AdderGraph."""
    ops: list[tuple[int, int, int, bool]] = []
    src: list = [(i, 0, False) for i in range(n_in)]
    for sol in stages:
        buf = []
        for op in sol.ops:
            if op.opcode == -1:
                node, e, neg = src[op.data[0]]
                buf.append((node, e + sol.inp_shifts[op.data[0]], neg))
            elif op.opcode in (0, 1):
                na, ea, ga = buf[op.addr[0]]
                nb, eb, gb = buf[op.addr[1]]
                ops.append((na, nb, eb + op.data[0] - ea, (op.opcode == 1) ^ ga ^ gb))
                buf.append((n_in + len(ops) - 1, ea, ga))
            elif op.opcode == -2:
                node, e, neg = buf[op.addr[0]]
                buf.append((node, e, not neg))
            else:
                raise ValueError(f"unexpected alkaid opcode {op.opcode} in a CMVM solution")
        src = [None if i < 0 else (buf[i][0], buf[i][1] + s, bool(buf[i][2] ^ g))
               for i, s, g in zip(sol.out_idxs, sol.out_shifts, sol.out_negs)]
    return AdderGraph(n_in, tuple(ops), tuple(src))


def measure(graph: AdderGraph, W: np.ndarray, n_in: int):
    """Adder stats of ``graph`` as an exact-width Netlist, after checking it computes x @ W."""
    rng = np.random.default_rng(7)
    x = rng.integers(INPUT.lo, INPUT.hi + 1, size=(256, n_in)).astype(np.float64)
    x[:n_in] = np.where(np.eye(n_in, dtype=bool), INPUT.lo, INPUT.hi)[: len(x)]   # type boundaries
    if not np.array_equal(graph.evaluate(x), x @ W):
        raise AssertionError("adder graph does not compute x @ W")
    nb = NetlistBuilder()
    xs = [nb.input(INPUT) for _ in range(n_in)]
    ys = nb.linear(graph, xs)
    nl = simplify(nb.finish(ys, [nb.wire(y) for y in ys]))
    return adder_stats(nl)


def median(v):
    return statistics.median(v) if len(v) else float("nan")


# ----------------------------------------------------------------------------- matrices

def run_matrices(sizes, bit_widths, seeds, slack) -> dict:
    from alkaid.cmvm import cmvm_solve
    q = [(float(INPUT.lo), float(INPUT.hi), 1.0)]
    print("\n## Random matrices (8-bit signed inputs; ratios are rtl4ml/alkaid)\n")
    hdr = (f"{'size':>5} {'wbits':>5} {'seed':>4} | {'adders r/a':>11} {'bits r/a':>13} {'depth r/a':>9} "
           f"{'time r/a [s]':>13} | {'adders':>6} {'bits':>6} {'time':>6} | {'alk cost':>8}")
    print(hdr)
    print("-" * len(hdr))
    summary = {}
    for n in sizes:
        for b in bit_widths:
            rows = []
            for seed in range(seeds):
                W = np.random.default_rng(seed).integers(-2 ** (b - 1), 2 ** (b - 1), size=(n, n)).astype(np.float64)
                t0, c0 = time.perf_counter(), time.process_time()
                g = solve_cmvm(W, [INPUT] * n, "cse", depth_slack=slack)
                tr, cpu = time.perf_counter() - t0, time.process_time() - c0
                t0 = time.perf_counter()
                stages = cmvm_solve(np.ascontiguousarray(W.astype(np.float32)), qintervals=q * n)
                ta = time.perf_counter() - t0
                sr, sa = measure(g, W, n), measure(alkaid_graph(stages, n), W, n)
                alk_cost = sum(s.cost for s in stages)
                r = (sr.adders / sa.adders, sr.adder_bits / sa.adder_bits, sr.adder_depth - sa.adder_depth, tr / ta,
                     tr, cpu)
                rows.append(r)
                print(f"{n:>5} {b:>5} {seed:>4} | {sr.adders:>5}/{sa.adders:<5} {sr.adder_bits:>6}/{sa.adder_bits:<6} "
                      f"{sr.adder_depth:>4}/{sa.adder_depth:<4} {tr:>6.3f}/{ta:<6.3f} | {r[0]:>6.3f} {r[1]:>6.3f} "
                      f"{r[3]:>6.2f} | {alk_cost:>8.0f}", flush=True)
            summary[(n, b)] = rows
    print("\n## Medians over seeds (rtl4ml/alkaid; depth: rtl4ml minus alkaid)\n")
    print(f"{'size':>5} {'wbits':>5} | {'adders':>7} {'adder bits':>10} {'depth diff':>10} {'max depth diff':>14} "
          f"{'time':>7} | {'rtl4ml wall s':>13} {'rtl4ml CPU s':>12}")
    for (n, b), rows in summary.items():
        a = np.array(rows)
        print(f"{n:>5} {b:>5} | {median(a[:, 0]):>7.3f} {median(a[:, 1]):>10.3f} {median(a[:, 2]):>10.1f} "
              f"{a[:, 2].max():>14.0f} {median(a[:, 3]):>7.2f} | {median(a[:, 4]):>13.3f} {median(a[:, 5]):>12.3f}")
    per_size = {}
    for (n, b), rows in summary.items():
        per_size.setdefault(n, []).extend(rows)
    print(f"\n{'size':>5} | {'adder bits (both weight widths)':>31} {'depth diff':>10}")
    for n, rows in per_size.items():
        a = np.array(rows)
        print(f"{n:>5} | {median(a[:, 1]):>31.3f} {median(a[:, 2]):>10.1f}")
    return summary


# ----------------------------------------------------------------------------- Verilog + Yosys

def alkaid_verilog(comb, n_stages: int, name: str) -> str:
    """alkaid's own Verilog for ``comb`` with ``n_stages`` stages, as one source text."""
    from alkaid.codegen.rtl.rtl_model import RTLModel
    with tempfile.TemporaryDirectory() as d:
        m = RTLModel(comb, Path(d) / name, prj_name=name, n_stages=n_stages, print_latency=False)
        m.write()
        src = Path(d) / name / "src"
        files = sorted(src.glob("*.v")) + sorted((src / "static").glob("*.v"))
        return "\n".join(f.read_text() for f in files if not f.name.endswith("_wrapper.v"))


def synth_pair(label: str, ours_v: str, ours_top: str, alk_v: str, alk_top: str) -> None:
    from rtl4ml.estimate.yosys import synthesize
    r = synthesize(ours_v, ours_top)
    a = synthesize(alk_v, alk_top)
    print(f"{label:<24} | LUT {r.lut:>6}/{a.lut:<6} ({r.lut / a.lut:.3f})  FF {r.ff:>6}/{a.ff:<6}  "
          f"CARRY {r.carry:>5}/{a.carry:<5}  Yosys {r.seconds:.0f}/{a.seconds:.0f} s", flush=True)


def synth_matrices(sizes, slack) -> None:
    import rtl4ml
    from alkaid.trace import FVArrayInput, trace
    from rtl4ml.graph import GraphBuilder
    print("\n## Yosys, matrices (seed 0, 8-bit weights; rtl4ml/alkaid, same synth script)\n")
    for n in sizes:
        W = np.random.default_rng(0).integers(-128, 128, size=(n, n)).astype(np.float64)
        gb = GraphBuilder()
        x = gb.input("fixed<8,8>", n)
        d = rtl4ml.Design(gb.build(gb.dense(x, W, np.zeros(n))), name=f"cmvm{n}", clock_ns=5.0,
                          cmvm_depth_slack=slack)
        inp = FVArrayInput((n,))
        comb = trace(inp, inp.quantize(1, 7, 0) @ W)
        synth_pair(f"{n}x{n} ({d.pipeline.stages} stages)", d.verilog, d.name,
                   alkaid_verilog(comb, d.pipeline.stages, f"alk{n}"), f"alk{n}")


# ----------------------------------------------------------------------------- jet MLP

def jet_data():
    """The 10,000-jet sample shipped with rtl4ml: first 8,000 jets for training, last 2,000 for testing."""
    from rtl4ml.data import load_jets
    d = load_jets()
    X, y = d["features"].astype(np.float64), d["labels"].astype(np.int64)
    return X[:8000], y[:8000], X[8000:], y[8000:]


def run_mlp(slacks, synth: bool) -> None:
    """The jet MLP, trained on rtl4ml's 10,000-jet sample (8,000 train / 2,000 test), in both tools."""
    import torch
    import rtl4ml
    from alkaid.trace import FVArrayInput, trace
    from alkaid.trace.ops import quantize as aq, relu as arelu
    from rtl4ml.graph import lower_graph
    from rtl4ml.graph.ops import Dense, Quantize, ReLU

    Xtr, ytr, Xte, yte = jet_data()
    mu, sd = Xtr.mean(0), Xtr.std(0) + 1e-9
    Xtr, Xte = (Xtr - mu) / sd, (Xte - mu) / sd
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                            torch.nn.Linear(32, 32), torch.nn.ReLU(), torch.nn.Linear(32, 5))
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    xt, yt = torch.tensor(Xtr, dtype=torch.float32), torch.tensor(ytr)
    for _ in range(8):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 256):
            b = perm[i:i + 256]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(m(xt[b]), yt[b]).backward()
            opt.step()
    des = rtl4ml.convert(m, input_type="fixed<16,6>", weight_type="fixed<8,3,RND,SAT>",
                         result_type="fixed<16,6,RND,SAT>", clock_ns=5.0, name="jet")
    acc = (des.predict(Xte).argmax(1) == yte).mean()

    # the same quantized network, traced by alkaid
    g = des.graph
    in_t = g.nodes[0].op.types
    inp = FVArrayInput((16,))
    v = aq(inp, *(np.array(a) for a in (in_t.signed.astype(int), in_t.integer, in_t.fraction)))
    for node in g.nodes[1:]:
        op = node.op
        if isinstance(op, Dense):
            v = v @ op.weight + op.bias
        elif isinstance(op, Quantize):
            t = op.types
            v = aq(v, t.signed.astype(int), t.integer, t.fraction, overflow_mode=t.overflow, round_mode=t.rounding)
        elif isinstance(op, ReLU):
            v = arelu(v)
        else:
            raise TypeError(f"benchmark handles dense/quantize/relu, not {op.kind}")
    t0 = time.perf_counter()
    comb = trace(inp, v)
    t_alk = time.perf_counter() - t0
    same = np.array_equal(comb.predict(Xte[:5000]), des.predict(Xte[:5000]))
    n_add = sum(op.opcode in (0, 1) for op in comb.ops)

    print("\n## Jet MLP 16-64-32-32-5 (fixed<16,6> in, fixed<8,3> weights, fixed<16,6,RND,SAT> results)\n")
    print(f"test accuracy (bit-exact emulation) {acc:.4f}; alkaid computes the identical function: {same}")
    print(f"alkaid: {n_add} two-input adders in its trace (its own cost {comb.cost:.0f}), trace incl. CMVM {t_alk:.3f} s")
    if not same:
        raise AssertionError("alkaid's traced network differs from rtl4ml's emulation: not the same model")
    for slack in slacks:
        d = rtl4ml.Design(des.graph, name="jet", clock_ns=5.0, cmvm_depth_slack=slack)
        times, cpus = [], []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            lower_graph(d.graph, cmvm="cse", depth_slack=slack)
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        est = d.estimate(synth=False)
        print(f"rtl4ml depth_slack={slack}: {est.adders} adders, {est.adder_bits} adder bits, adder depth "
              f"{est.adder_depth}, {est.latency_cycles} stages at 5 ns (critical path {est.critical_path_ns} ns), "
              f"{est.register_bits} register bits; lowering incl. CMVM: median {median(times):.3f} s wall, "
              f"{median(cpus):.3f} s CPU (of 3)", flush=True)
        if synth:
            synth_pair(f"  jet MLP, slack {slack} ({est.latency_cycles} st.)", d.verilog, d.name,
                       alkaid_verilog(comb, est.latency_cycles, "alkjet"), "alkjet")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="8,16,32,64")
    p.add_argument("--bits", default="4,8")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--slack", default="1", help="rtl4ml cmvm depth slack ('none' for unbounded)")
    p.add_argument("--synth-sizes", default="8,16", help="matrix sizes to synthesize with Yosys ('' for none)")
    p.add_argument("--mlp-slacks", default="1,2", help="rtl4ml depth slacks for the jet MLP ('none' allowed)")
    p.add_argument("--no-mlp", action="store_true")
    p.add_argument("--no-synth", action="store_true", help="skip every Yosys run")
    a = p.parse_args(argv)
    try:
        import alkaid
    except ImportError:
        print("alkaid is not importable: nothing to compare against (pip install alkaid; it is not an rtl4ml "
              "dependency)")
        return 0
    slack = None if a.slack.lower() == "none" else int(a.slack)
    print(f"alkaid {alkaid.__version__} (cmvm_solve defaults) vs rtl4ml cse (depth_slack={slack})")
    sizes = [int(s) for s in a.sizes.split(",") if s]
    run_matrices(sizes, [int(b) for b in a.bits.split(",") if b], a.seeds, slack)
    if not a.no_synth and a.synth_sizes:
        synth_matrices([int(s) for s in a.synth_sizes.split(",") if s], slack)
    if not a.no_mlp:
        run_mlp([None if x.lower() == "none" else int(x) for x in a.mlp_slacks.split(",") if x], synth=not a.no_synth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
