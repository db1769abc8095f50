"""rtl4ml's CMVM optimizer against alkaid (da4ml's successor) on the same problems.

Installs nothing. When ``alkaid`` is importable (``pip install alkaid``; it is not an
rtl4ml dependency) it runs both tools on

* random integer matrices (8x8 to 64x64; 2, 3, 4, 6 and 8-bit weights; 10 seeds each)
  acting on 8-bit signed inputs, and
* the same quantized 16-64-32-32-5 jet MLP (trained here, a few seconds, on the 10,000-jet
  sample shipped with rtl4ml: the first 8,000 jets train it, the other 2,000 test it),

and prints adders, adder bits, adder depth and solve time of both, per row and as medians
(with min-max over seeds) of the per-row ratios rtl4ml/alkaid. Both solutions are checked
bit-exact against ``x @ W`` first, then each adder graph is counted two ways:

* rtl4ml's counter: the graph as an rtl4ml Netlist, every adder at the exact width of the
  values it carries, counted by ``rtl4ml.estimate.analytic.adder_stats``;
* alkaid's cost figure (:func:`alkaid_cost`): alkaid's own ``cost_add`` over alkaid's
  interval arithmetic, for rtl4ml's graph just as for alkaid's (alkaid's reported total is
  printed too). The two figures differ by 10-20 % on the same graph (alkaid charges the low
  bits only one operand drives and not the carry-out), so only like is compared with like.

Yosys LUT/FF: both tools' own Verilog, synthesized with the same script
(``rtl4ml.estimate.yosys``: ``synth_xilinx -flatten -family xcup -noiopad``), for matrices
of the ``--synth-sizes`` (``--synth-seeds`` seeds each, every ``--synth-bits`` width) and the
jet MLP; alkaid's design gets the same number of pipeline stages as rtl4ml's. Matrices are
synthesized twice: as emitted (rtl4ml marks its adders of 6 bits or more ``(* keep *)``, so
each is one carry chain; alkaid marks none), and with every adder's result marked
``(* keep *)`` in both tools' Verilog (:func:`keep_adders`), which stops Yosys merging
chains of additions into LUT compressor trees and so compares the adder graphs themselves.

    nice python benchmarks/cmvm_vs_alkaid.py --jobs 2      # everything (Yosys takes long)
    python benchmarks/cmvm_vs_alkaid.py --no-mlp --no-synth   # the two counts only, minutes

``--slack`` sets rtl4ml's ``cmvm_depth_slack`` for the matrices (default 1, the library's
default); ``--mlp-slacks`` lists the settings the jet MLP is built and synthesized with.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rtl4ml.cmvm import AdderGraph, solve_cmvm
from rtl4ml.estimate.analytic import adder_stats
from rtl4ml.fixed import Wire
from rtl4ml.netlist.builder import NetlistBuilder
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


def alkaid_cost(graph: AdderGraph) -> float:
    """alkaid's own cost figure for any adder graph, computed the way alkaid computes it.

    alkaid (``state_opr.cc``, ``indexers.cc``) carries an interval ``(min, max, step)`` per
    value, propagated by interval arithmetic (``qint_add``: the sum of the operands'
    intervals, not the exact interval of the linear form), and charges an adder
    ``max(accum + overlap + tail - 1, 1)``: the span of both operands' bit ranges (sign bit
    included) minus one, so the low bits that only one operand drives *are* charged and
    the carry-out bit is not; a sign (add or subtract) does not change it, negated outputs
    are free. ``cost_add`` is alkaid's own compiled function, so only the interval
    propagation is repeated here; on alkaid's graphs this reproduces alkaid's total to
    within 0.5 % (alkaid stores some sums as negated intervals, one bit wider).
    """
    from alkaid._binary.cmvm_bin import cost_add
    q = [(float(INPUT.lo), float(INPUT.hi), 1.0)] * graph.n_inputs
    total = 0.0
    for a, b, s, sub in graph.ops:
        (lo0, hi0, st0), (lo1, hi1, st1) = q[a], q[b]
        total += cost_add(q[a], q[b], s)[0]
        if sub:
            lo1, hi1 = -hi1, -lo1
        f = 2.0 ** s
        q.append((lo0 + lo1 * f, hi0 + hi1 * f, min(st0, st1 * f)))
    return total


def median(v):
    return statistics.median(v) if len(v) else float("nan")


def spread(v) -> str:
    """``median [min-max]`` of ratios, for the summaries."""
    return f"{median(v):.3f} [{min(v):.3f}-{max(v):.3f}]"


def random_matrix(n: int, bits: int, seed: int) -> np.ndarray:
    """The benchmark's problem: a square matrix of uniform ``bits``-bit signed integers."""
    return np.random.default_rng(seed).integers(-2 ** (bits - 1), 2 ** (bits - 1), size=(n, n)).astype(np.float64)


# ----------------------------------------------------------------------------- matrices

def run_matrices(sizes, bit_widths, seeds, slack) -> dict:
    from alkaid.cmvm import cmvm_solve
    q = [(float(INPUT.lo), float(INPUT.hi), 1.0)]
    print("\n## Random matrices (8-bit signed inputs; r/a = rtl4ml/alkaid)\n")
    print("bits: rtl4ml's adder-bit counter on an exact-width Netlist of each graph; alk cost: alkaid's cost "
          "figure of each graph (alkaid's cost_add over alkaid's interval arithmetic); own: alkaid's reported "
          "total for its graph\n")
    hdr = (f"{'size':>5} {'wbits':>5} {'seed':>4} | {'adders r/a':>11} {'bits r/a':>13} {'alk cost r/a':>13} "
           f"{'own':>6} {'depth r/a':>9} {'time r/a [s]':>13} | {'bits':>6} {'cost':>6}")
    print(hdr)
    print("-" * len(hdr))
    summary = {}
    for n in sizes:
        for b in bit_widths:
            rows = []
            for seed in range(seeds):
                W = random_matrix(n, b, seed)
                t0, c0 = time.perf_counter(), time.process_time()
                g = solve_cmvm(W, [INPUT] * n, "cse", depth_slack=slack)
                tr, cpu = time.perf_counter() - t0, time.process_time() - c0
                t0 = time.perf_counter()
                stages = cmvm_solve(np.ascontiguousarray(W.astype(np.float32)), qintervals=q * n)
                ta = time.perf_counter() - t0
                ga = alkaid_graph(stages, n)
                sr, sa = measure(g, W, n), measure(ga, W, n)
                cr, ca = alkaid_cost(g), alkaid_cost(ga)
                own = sum(s.cost for s in stages)
                r = (sr.adders / sa.adders, sr.adder_bits / sa.adder_bits, cr / ca, sr.adder_depth - sa.adder_depth,
                     tr / ta, tr, cpu, own / ca)
                rows.append(r)
                print(f"{n:>5} {b:>5} {seed:>4} | {sr.adders:>5}/{sa.adders:<5} {sr.adder_bits:>6}/{sa.adder_bits:<6} "
                      f"{cr:>6.0f}/{ca:<6.0f} {own:>6.0f} {sr.adder_depth:>4}/{sa.adder_depth:<4} {tr:>6.3f}/{ta:<6.3f} | "
                      f"{r[1]:>6.3f} {r[2]:>6.3f}", flush=True)
            summary[(n, b)] = rows
    print("\n## Medians over seeds [min-max] (rtl4ml/alkaid; depth: rtl4ml minus alkaid)\n")
    print(f"{'size':>5} {'wbits':>5} | {'adders':>7} {'adder bits (rtl4ml counter)':>27} {'alkaid cost figure':>27} "
          f"{'depth diff':>10} | {'rtl4ml s':>8} {'alkaid s':>8}")
    for (n, b), rows in summary.items():
        a = np.array(rows)
        print(f"{n:>5} {b:>5} | {median(a[:, 0]):>7.3f} {spread(a[:, 1]):>27} {spread(a[:, 2]):>27} "
              f"{median(a[:, 3]):>10.1f} | {median(a[:, 5]):>8.3f} {median(a[:, 5] / a[:, 4]):>8.3f}")
    if summary:
        own = np.concatenate([np.array(rows)[:, 7] for rows in summary.values()])
        print(f"\nalkaid's reported total / this recomputation on alkaid's graphs: {spread(own)}")
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


_RTL4ML_ADDER = re.compile(r"^(\s*)(wire \[\d+:0\] \w+ = [^;]*[-+][^;]*;)$", re.MULTILINE)
_ALKAID_ADDER = re.compile(r"^(\s*)(wire \[BW_ADD-1:0\] accum;)$", re.MULTILINE)


def keep_adders(verilog: str, tool: str) -> str:
    """The same Verilog with ``(* keep *)`` on every adder's result: each adder stays one carry chain.

    Without it Yosys (``alumacc``) merges every chain of single-use additions into one
    multi-operand ``$macc`` and maps it to LUT compressor trees. rtl4ml already marks its
    adders of 6 bits or more (here the narrow ones get the mark too); alkaid's ``shift_adder``
    slices its operands, so only its own sub-expressions merge. Marking both tools' adders
    the same way compares the adder graphs themselves.
    """
    pat = _RTL4ML_ADDER if tool == "rtl4ml" else _ALKAID_ADDER
    out, n = pat.subn(r"\1(* keep *) \2", verilog)
    if not n and "(* keep *)" not in verilog:
        raise AssertionError(f"no adder found to mark in the {tool} Verilog")
    return out


def _synth(job):
    from rtl4ml.estimate.yosys import synthesize
    return synthesize(*job)


def synth_all(jobs: dict, n_jobs: int) -> dict:
    """Yosys on every ``key -> (verilog, top)``, ``n_jobs`` at a time (cached by Verilog hash)."""
    keys = list(jobs)
    if n_jobs <= 1:
        return {k: _synth(jobs[k]) for k in keys}
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(n_jobs) as ex:
        return dict(zip(keys, ex.map(_synth, [jobs[k] for k in keys])))


def matrix_designs(n: int, bits: int, seed: int, slack):
    """rtl4ml's Design of ``x @ W`` (5 ns) and alkaid's Verilog of the same product at the same stages."""
    from alkaid.trace import FVArrayInput, trace

    import rtl4ml
    from rtl4ml.graph import GraphBuilder
    W = random_matrix(n, bits, seed)
    gb = GraphBuilder()
    x = gb.input("fixed<8,8>", n)
    d = rtl4ml.Design(gb.build(gb.dense(x, W, np.zeros(n))), name=f"cmvm{n}", clock_ns=5.0,
                      cmvm_depth_slack=slack)
    inp = FVArrayInput((n,))
    comb = trace(inp, inp.quantize(1, 7, 0) @ W)
    return d, alkaid_verilog(comb, d.pipeline.stages, f"alk{n}"), f"alk{n}"


def synth_matrices(seeds: dict, bit_widths, slack, n_jobs) -> None:
    """Yosys LUTs of both tools' designs: ``seeds[n]`` seeds of every width for each size ``n``."""
    print(f"\n## Yosys LUTs, matrices (seeds per size {seeds}; same synth script for both tools; "
          "'kept': every adder's result marked (* keep *) in both tools' Verilog)\n")
    jobs, stages = {}, {}
    for n, k in seeds.items():
        for b in bit_widths:
            for seed in range(k):
                d, av, atop = matrix_designs(n, b, seed, slack)
                stages[n, b, seed] = d.pipeline.stages
                jobs[n, b, seed, "r", 0] = (d.verilog, d.name)
                jobs[n, b, seed, "a", 0] = (av, atop)
                jobs[n, b, seed, "r", 1] = (keep_adders(d.verilog, "rtl4ml"), d.name)
                jobs[n, b, seed, "a", 1] = (keep_adders(av, "alkaid"), atop)
    t0 = time.perf_counter()
    res = synth_all(jobs, n_jobs)
    print(f"{'size':>5} {'wbits':>5} {'seed':>4} {'st':>3} | {'LUT r/a as emitted':>20} {'ratio':>6} | "
          f"{'LUT r/a kept':>14} {'ratio':>6} | {'CARRY r/a':>11} {'FF r/a':>11}")
    ratios: dict = {}
    for (n, b, seed), st in stages.items():
        r0, a0, r1, a1 = (res[n, b, seed, t, k] for k, t in ((0, "r"), (0, "a"), (1, "r"), (1, "a")))
        ratios.setdefault((n, b), []).append((r0.lut / a0.lut, r1.lut / a1.lut))
        print(f"{n:>5} {b:>5} {seed:>4} {st:>3} | {r0.lut:>9}/{a0.lut:<10} {r0.lut / a0.lut:>6.3f} | "
              f"{r1.lut:>6}/{a1.lut:<7} {r1.lut / a1.lut:>6.3f} | {r0.carry:>5}/{a0.carry:<5} {r0.ff:>5}/{a0.ff:<5}",
              flush=True)
    print(f"\n{'size':>5} {'wbits':>5} | {'LUT rtl4ml/alkaid as emitted':>29} {'kept adders':>22}")
    for (n, b), rows in ratios.items():
        a = np.array(rows)
        print(f"{n:>5} {b:>5} | {spread(a[:, 0]):>29} {spread(a[:, 1]):>22}")
    print(f"\n(Yosys wall time {time.perf_counter() - t0:.0f} s with {n_jobs} jobs, cached results included)")


def synth_pair(label: str, ours_v: str, ours_top: str, alk_v: str, alk_top: str) -> None:
    from rtl4ml.estimate.yosys import synthesize
    r = synthesize(ours_v, ours_top)
    a = synthesize(alk_v, alk_top)
    print(f"{label:<24} | LUT {r.lut:>6}/{a.lut:<6} ({r.lut / a.lut:.3f})  FF {r.ff:>6}/{a.ff:<6}  "
          f"CARRY {r.carry:>5}/{a.carry:<5}  Yosys {r.seconds:.0f}/{a.seconds:.0f} s", flush=True)


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
    from alkaid.trace import FVArrayInput, trace
    from alkaid.trace.ops import quantize as aq
    from alkaid.trace.ops import relu as arelu

    import rtl4ml
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
            v = v @ op.effective_weight + op.effective_bias   # the exact (quantized) hardware values
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
    p.add_argument("--bits", default="2,3,4,6,8", help="weight widths")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--slack", default="1", help="rtl4ml cmvm depth slack ('none' for unbounded)")
    p.add_argument("--synth-sizes", default="8,16,32", help="matrix sizes to synthesize with Yosys ('' for none)")
    p.add_argument("--synth-bits", default="2,3,4,6,8", help="weight widths synthesized with Yosys")
    p.add_argument("--synth-seeds", default="3,2,1",
                   help="seeds 0..k-1 synthesized per width, one k per synth size (or one for all)")
    p.add_argument("--jobs", type=int, default=1, help="Yosys runs at a time")
    p.add_argument("--mlp-slacks", default="1,2", help="rtl4ml depth slacks for the jet MLP ('none' allowed)")
    p.add_argument("--no-mlp", action="store_true")
    p.add_argument("--no-synth", action="store_true", help="skip every Yosys run")
    p.add_argument("--no-mlp-synth", action="store_true", help="build the jet MLP but do not synthesize it")
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
        ssizes = [int(s) for s in a.synth_sizes.split(",") if s]
        kseeds = [int(k) for k in a.synth_seeds.split(",") if k]
        kseeds = kseeds * len(ssizes) if len(kseeds) == 1 else kseeds
        if len(kseeds) != len(ssizes):
            p.error("--synth-seeds needs one count, or one per --synth-sizes entry")
        synth_matrices(dict(zip(ssizes, kseeds)), [int(b) for b in a.synth_bits.split(",") if b], slack, a.jobs)
    if not a.no_mlp:
        run_mlp([None if x.lower() == "none" else int(x) for x in a.mlp_slacks.split(",") if x], synth=not (a.no_synth or a.no_mlp_synth))
    return 0


if __name__ == "__main__":
    sys.exit(main())
