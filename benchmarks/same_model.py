"""The same HGQ2 models through rtl4ml and through alkaid (HGQ2's own RTL path), side by side.

HGQ2 jet taggers 16-64-32-32-5 (QDense + relu, per-weight and per-activation bit widths) are
trained at three values of HGQ2's resource penalty ``beta`` on ``shared/data/jets_pythia8``
(its train split; the test split measures accuracy), with the same split, seed, epochs and
optimizer for all. The 16 features are standardized with the training mean and spread before
the model (in software, the same for both tools); the first layer's input quantizer (WRAP, as
alkaid requires for an input) sets the input widths of both designs.

Each trained model is converted

* by rtl4ml: ``rtl4ml.convert(model, clock_ns=...)`` (the Keras frontend), pipelined by
  rtl4ml's scheduler to the clock; and
* by alkaid: ``alkaid.converter.trace_model`` + ``alkaid.trace.trace``, then its Verilog
  (``RTLModel``), given the same number of pipeline stages as rtl4ml's design;

and both Verilog files are synthesized by the SAME Yosys script
(``rtl4ml.estimate.yosys.synthesize``: ``synth_xilinx -flatten -family xcup -noiopad``).
Printed per model: test accuracy of HGQ2's quantized forward pass, of rtl4ml's design and of
alkaid's emulation (the outputs must be identical on every test jet, else the script fails),
LUT, FF, CARRY, Yosys logic depth, stages, latency, the ratio rtl4ml/alkaid, and the adder
counts of both graphs per layer (rtl4ml: its Netlist; alkaid: the two-operand adders of its
trace, per layer by tracing the model up to each layer).

    nice python benchmarks/same_model.py                 # 3 betas, 30 epochs each (about half an hour on 2 cores)
    nice python benchmarks/same_model.py --epochs 60     # better-trained models (longer)
    nice python benchmarks/same_model.py --seeds 0,1     # two trainings per beta: the spread of the ratios
    python benchmarks/same_model.py --epochs 2 --no-synth --betas 1e-5   # smoke run

Needs keras, hgq2 and alkaid (dev dependencies of rtl4ml, not runtime ones) and the data set
at ``--data`` (default ``../shared/data/jets_pythia8/jets_pythia8.npz`` next to the checkout).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cmvm_vs_alkaid import alkaid_verilog

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "jets_pythia8" / "jets_pythia8.npz"


def load_data(path: Path):
    d = np.load(path)
    X, y, split = d["features"].astype(np.float32), d["labels"].astype(np.int64), d["split"]
    tr, te = split == 0, split == 2
    mu, sd = X[tr].mean(0), X[tr].std(0) + 1e-6
    X = ((X - mu) / sd).astype(np.float32)
    return X[tr], y[tr], X[te], y[te]


def build(beta: float):
    """The HGQ2 16-64-32-32-5 tagger (HGQ2's recommended defaults: weights KBI/SAT_SYM, activations KIF/WRAP)."""
    import keras
    from hgq.config import LayerConfigScope, QuantizerConfigScope
    from hgq.layers import QDense
    with QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM"), \
            QuantizerConfigScope(place="datalane", default_q_type="kif", overflow_mode="WRAP"), \
            LayerConfigScope(enable_ebops=True, beta0=beta):
        return keras.Sequential([keras.Input((16,)), QDense(64, activation="relu"), QDense(32, activation="relu"),
                                 QDense(32, activation="relu"), QDense(5)])


def train(beta: float, Xtr, ytr, epochs: int, seed: int, batch: int = 1024, lr: float = 3e-3):
    import keras
    keras.utils.set_random_seed(seed)
    m = build(beta)
    steps = epochs * -(-len(Xtr) // batch)
    opt = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(lr, steps))
    m.compile(opt, keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    t0 = time.perf_counter()
    m.fit(Xtr, ytr, epochs=epochs, batch_size=batch, verbose=0)
    return m, time.perf_counter() - t0


def hgq_predict(m, X) -> np.ndarray:
    import keras
    return np.concatenate([keras.ops.convert_to_numpy(m(X[i:i + 8192], training=False)) for i in range(0, len(X), 8192)])


def _width(qint) -> int:
    lo, hi, step = qint
    if step == 0 or (lo == 0 and hi == 0):
        return 0
    a, b = round(lo / step), round(hi / step)
    return max(int(b).bit_length(), int(-a - 1).bit_length() if a < 0 else 0) + (a < 0)


def alkaid_adders(comb) -> tuple[int, int]:
    """Adders of an alkaid trace: two-operand ones (opcodes 0, 1) and constant additions (opcode 4:
    biases, rounding offsets), and the sum of their output widths."""
    adds = [op for op in comb.ops if op.opcode in (0, 1, 4)]
    return len(adds), sum(_width(op.qint) for op in adds)


def alkaid_opcodes(comb) -> str:
    """How many ops of each opcode the trace has (0/1 add/sub, 4 constant add; see alkaid's docs/alir.md)."""
    from collections import Counter
    return ", ".join(f"{k}:{v}" for k, v in sorted(Counter(op.opcode for op in comb.ops).items()))


def alkaid_per_layer(m) -> list[tuple[str, int, int]]:
    """alkaid's adders per layer: the trace up to each layer's output, minus the one before."""
    from alkaid.converter import trace_model
    from alkaid.trace import trace
    dump = trace_model(m, dump=True)
    inp = dump["inputs"]
    rows, prev = [], (0, 0)
    for layer in m.layers:
        key = f"/{layer.name}/final"
        if key not in dump:
            continue
        n, b = alkaid_adders(trace(inp, dump[key]))
        rows.append((layer.name, n - prev[0], b - prev[1]))
        prev = (n, b)
    return rows


def run(beta: float, data, epochs: int, seed: int, clock_ns: float, synth: bool, batch: int = 1024,
        lr: float = 3e-3) -> dict:
    from alkaid.converter import trace_model
    from alkaid.trace import trace

    import rtl4ml
    Xtr, ytr, Xte, yte = data
    m, t_train = train(beta, Xtr, ytr, epochs, seed, batch, lr)
    ref = hgq_predict(m, Xte)
    d = rtl4ml.convert(m, clock_ns=clock_ns, name="ours")
    ours = d.predict(Xte)
    inp, out = trace_model(m)
    comb = trace(inp, out)
    alk = comb.predict(Xte).reshape(ours.shape)
    same = np.array_equal(ours, ref) and np.array_equal(alk, ref)
    if not same:
        bad = int(np.argwhere(np.any(ours != ref, axis=1) | np.any(alk != ref, axis=1))[0, 0])
        raise AssertionError(f"beta={beta}: outputs differ on test jet {bad}: HGQ2 {ref[bad]}, rtl4ml {ours[bad]}, "
                             f"alkaid {alk[bad]}")
    est = d.estimate(synth=False)
    r = dict(beta=beta, seed=seed, t_train=t_train, n_test=len(yte), acc_hgq=float((ref.argmax(1) == yte).mean()),
             acc_ours=float((ours.argmax(1) == yte).mean()), acc_alk=float((alk.argmax(1) == yte).mean()),
             stages=d.pipeline.stages, latency_ns=d.pipeline.stages * clock_ns, adders=est.adders,
             adder_bits=est.adder_bits, layers=[(s.layer, s.adders, s.adder_bits) for s in est.layers if s.adders],
             alk_adders=alkaid_adders(comb), alk_layers=alkaid_per_layer(m), alk_ops=alkaid_opcodes(comb),
             ebops=float(sum(float(np.asarray(getattr(l, "ebops", 0))) for l in m.layers)))
    if synth:
        from rtl4ml.estimate.yosys import synthesize
        r["ours"] = synthesize(d.verilog, d.name)
        r["alk"] = synthesize(alkaid_verilog(comb, d.pipeline.stages, "alk"), "alk")
    return r


def report(rows: list[dict], epochs: int, clock_ns: float, synth: bool) -> None:
    print(f"\n## HGQ2 jet taggers 16-64-32-32-5, {epochs} epochs, pipelined to {clock_ns} ns "
          f"(alkaid given rtl4ml's stage count)\n")
    print("| beta | seed | EBOPs | test acc HGQ2 / rtl4ml / alkaid | stages | latency | LUT rtl4ml | LUT alkaid | ratio | "
          "FF rtl4ml / alkaid | CARRY rtl4ml / alkaid | depth rtl4ml / alkaid |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        acc = f"{r['acc_hgq']:.4f} / {r['acc_ours']:.4f} / {r['acc_alk']:.4f}"
        if synth:
            o, a = r["ours"], r["alk"]
            hw = (f"{o.lut} | {a.lut} | {o.lut / a.lut:.3f} | {o.ff} / {a.ff} | {o.carry} / {a.carry} | "
                  f"{o.logic_depth} / {a.logic_depth}")
        else:
            hw = "- | - | - | - | - | -"
        print(f"| {r['beta']:g} | {r['seed']} | {r['ebops']:.0f} | {acc} | {r['stages']} | {r['latency_ns']:g} ns | {hw} |")
    print("\nOutputs identical (HGQ2 == rtl4ml == alkaid) on every test jet of every model.")
    print("\n### Adders per layer (rtl4ml: count / adder bits of its Netlist, rounding adders of a quantizer "
          "listed apart; alkaid: count / summed output widths of its trace's adders and constant additions, "
          "a layer's input quantizer included)\n")
    for r in rows:
        al = r["alk_adders"]
        print(f"beta {r['beta']:g}, seed {r['seed']}: rtl4ml {r['adders']} adders / {r['adder_bits']} bits; alkaid {al[0]} adders / "
              f"{al[1]} bits")
        print("  rtl4ml: " + ", ".join(f"{n} {a}/{b}" for n, a, b in r["layers"]))
        print("  alkaid: " + ", ".join(f"{n} {a}/{b}" for n, a, b in r["alk_layers"]))
        print(f"  alkaid ops by opcode: {r['alk_ops']}")
    if synth:
        for beta in dict.fromkeys(r["beta"] for r in rows):
            ratios = [r["ours"].lut / r["alk"].lut for r in rows if r["beta"] == beta]
            print(f"LUT ratio rtl4ml/alkaid at beta {beta:g}: median {np.median(ratios):.3f}, range "
                  f"{min(ratios):.3f}-{max(ratios):.3f} over {len(ratios)} seed(s) (goal <= 0.8 at no more stages)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--betas", default="1e-6,1e-5,1e-4", help="HGQ2 beta values (comma separated)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs per model (default 30)")
    p.add_argument("--seeds", default="0", help="training seeds (comma separated); ratios get a spread over them")
    p.add_argument("--clock-ns", type=float, default=5.0)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--no-synth", action="store_true", help="skip Yosys")
    a = p.parse_args(argv)
    try:
        import alkaid
        import hgq
        import keras
    except ImportError as e:
        print(f"needs keras, hgq2 and alkaid (rtl4ml dev dependencies): {e}")
        return 0
    import torch
    torch.set_num_threads(1)
    data = load_data(a.data)
    seeds = [int(s) for s in a.seeds.split(",") if s]
    print(f"keras {keras.__version__} ({keras.backend.backend()}), hgq2 {hgq.__version__}, alkaid {alkaid.__version__}; "
          f"{len(data[1])} training / {len(data[3])} test jets, seeds {seeds}")
    rows = []
    for seed in seeds:
        for beta in (float(b) for b in a.betas.split(",") if b):
            t0 = time.perf_counter()
            rows.append(run(beta, data, a.epochs, seed, a.clock_ns, not a.no_synth))
            print(f"beta {beta:g}, seed {seed}: trained in {rows[-1]['t_train']:.0f} s, all done in "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
            report(rows[-1:], a.epochs, a.clock_ns, not a.no_synth)   # each model's figures as soon as they exist
    if len(rows) > 1:
        report(rows, a.epochs, a.clock_ns, not a.no_synth)
    return 0


if __name__ == "__main__":
    sys.exit(main())
