"""The jet-constituent examples at full size, and how Deep Sets grows with the particles.

    python benchmarks/constituent_examples.py [--shared ../shared/data] [--only NAME] [--epochs E] [--no-synth]
    python benchmarks/constituent_examples.py --models DIR --no-rtl --no-synth   # train, save
    python benchmarks/constituent_examples.py --models DIR --load                # RTL + Yosys
    python benchmarks/constituent_examples.py --scaling [--synth] [--models DIR]
    python benchmarks/constituent_examples.py --multipliers
    python benchmarks/constituent_examples.py --layernorm [--epochs 6] [--ln-jets 40000] [--ln-seeds 3]

The first form runs ``examples/deepsets_jets.py``, ``interaction_network_jets.py``,
``mlp_mixer_jets.py`` and ``transformer_jets.py`` on ``jets_pythia8`` (train split for
training, test split for the figures), each proving model == design on every test jet and
the RTL in Verilator, with Yosys at ``clock_ns=2.5``, and prints one table (float / design
accuracy, the 16-feature MLP's accuracy on the same split, LUT, FF, DSP, latency).

``--scaling`` builds the Deep Sets model of the example (16-wide ``phi``; with ``--models``
the one trained by the first form, else one briefly trained and calibrated on random
particles) for 8, 16 and 30 particles and prints the time to
convert and lower it, the analytic LUT estimate and (``--synth``) Yosys LUTs: the
per-particle part grows linearly with the particles.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "examples"))

RUNS = {
    "Deep Sets (30 particles)": ("deepsets_jets.py", []),
    "Interaction Network (16, all pairs)": ("interaction_network_jets.py", []),
    "MLP-Mixer (30)": ("mlp_mixer_jets.py", []),
    "transformer (16, 1 head)": ("transformer_jets.py", []),
}


def figures(out: str) -> dict[str, str]:
    from layer_examples import figures as common
    f = common(out)
    if m := re.search(r"accuracy on (\d+) test jets \((\d+) particles\): float ([\d.]+) %, bit-exact design "
                      r"([\d.]+) %, 16-feature MLP \(float\) ([\d.]+) %", out):
        f["quality"] = f"{m.group(3)} / {m.group(4)} %"
        f["mlp"] = f"{m.group(5)} %"
    return f


def examples(args) -> None:
    path = args.shared / "jets_pythia8" / "jets_pythia8.npz"
    if not path.exists():
        raise SystemExit(f"{path} not found: pass --shared DIR")
    rows = []
    for name, (script, extra) in RUNS.items():
        if args.only and args.only not in name:
            continue
        cmd = [sys.executable, str(ROOT / "examples" / script), "--data", str(path), "--seed", str(args.seed), *extra]
        if args.epochs is not None:
            cmd += ["--epochs", str(args.epochs)]
        saved = args.models / (Path(script).stem + ".pt") if args.models else None
        if saved is not None:
            cmd += ["--load", str(saved)] if args.load else ["--save", str(saved)]
        cmd += ["--no-synth"] * args.no_synth + ["--no-rtl"] * args.no_rtl
        print("+", " ".join(cmd), flush=True)
        t = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        print(r.stdout)
        if r.returncode:
            print(r.stderr[-3000:])
            raise SystemExit(f"{name} failed")
        rows.append((name, figures(r.stdout), time.time() - t))
    print(f"\n| model (seed {args.seed}) | float / design acc | 16-feature MLP | bit-exact | RTL | LUT | FF | DSP | "
          "cycles | ns at 2.5 | run s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, f, dt in rows:
        print(f"| {name} | {f.get('quality', '')} | {f.get('mlp', '')} | {f.get('bit-exact', '')} | {f['rtl']} | "
              f"{f.get('lut', '')} | {f.get('ff', '')} | {f.get('dsp', '')} | {f.get('cycles', '')} | "
              f"{f.get('ns', '')} | {dt:.0f} |")


def trained_deepsets(models: Path):
    """The trained QAT Deep Sets of ``deepsets_jets.py --save`` (pickled from that script's
    ``__main__``, so its class is made visible there first)."""
    import __main__
    import torch

    from deepsets_jets import DeepSets
    __main__.DeepSets = DeepSets
    return torch.load(models / "deepsets_jets.pt", weights_only=False)["model"]


def with_state(model, trained, x):
    """``model`` (P particles) with the weights and types of ``trained`` (any number of
    particles): Deep Sets weights do not depend on P, and with ``granularity="feature"`` the
    calibrated ranges (stored per element) are the same for every particle, so the first P
    particles' entries are the model's."""
    import rtl4ml.nn as qnn
    qnn.init_lazy(model, x)
    mine = model.state_dict()
    model.load_state_dict({k: v.reshape(-1)[:mine[k].numel()].reshape(mine[k].shape) if v.shape != mine[k].shape
                           else v for k, v in trained.state_dict().items()})
    return model.eval()


def scaling(args) -> None:
    import numpy as np
    import torch

    import rtl4ml
    import rtl4ml.nn as qnn
    from rtl4ml.graph import lower_graph
    from _constituents import Layers
    from deepsets_jets import DeepSets

    print("| particles | convert s | lower s | primitives | analytic LUT | Yosys LUT | FF | cycles |")
    print("|---|---|---|---|---|---|---|---|")
    trained = trained_deepsets(args.models) if args.models else None
    for p in (8, 16, 30):
        torch.manual_seed(0)
        x = torch.randn(512, p, 3)
        model = DeepSets(Layers(True), p, 16)
        if trained is not None:
            model = with_state(model, trained, torch.zeros(8, p, 3))
        else:
            model = qnn.fit(model, x.numpy(), torch.randint(0, 5, (512,)).numpy(), epochs=2, beta=2e-6,
                            label=f"P={p}")
            qnn.calibrate(model, x.numpy())
        t = time.time()
        d = rtl4ml.convert(model, clock_ns=2.5, name="deepsets_jets")   # the example's name: a cached Yosys run is reused
        t_conv = time.time() - t
        t = time.time()
        nl = lower_graph(d.graph)
        t_low = time.time() - t
        est = d.estimate(synth=args.synth)
        print(f"| {p} | {t_conv:.2f} | {t_low:.2f} | {len(nl.prims)} | {est.luts_estimate} | "
              f"{est.lut if est.lut is not None else ''} | {est.ff if est.ff is not None else ''} | "
              f"{est.latency_cycles} |", flush=True)
        assert np.isfinite(t_low)


MUL_WIDTHS = ((4, 4), (6, 6), (8, 8), (10, 10), (12, 8), (27, 8), (16, 16))


def multipliers(args) -> None:
    """One signed ``a x b`` product per design, as the backend builds it (partial products: Bit,
    Select and Add primitives, one stage at a 20 ns clock) and as a module written ``*``:
    Yosys LUT / CARRY8 / DSP of each (what MUL_LUT_MAX_BITS is set from)."""
    import numpy as np

    from rtl4ml.design import Design
    from rtl4ml.estimate.yosys import synthesize
    from rtl4ml.fixed import FixedTypeArray
    from rtl4ml.graph import GraphBuilder
    from rtl4ml.netlist.vexpr import fit

    def partial_products(wa: int, wb: int, n: int = 1, clock_ns: float = 20.0) -> Design:
        g = GraphBuilder()
        signed, frac = np.ones(n, dtype=bool), np.full(n, 2)
        a = g.input(FixedTypeArray(signed, np.full(n, wa - 3), frac), name="a")
        b = g.input(FixedTypeArray(signed, np.full(n, wb - 3), frac), name="b")
        return Design(g.build(g.einsum("p,p->p", a, b, name="y")), name="m", clock_ns=clock_ns)

    def star(wa: int, wb: int) -> str:
        w = wa + wb
        return (f"module m(input [{wa - 1}:0] a, input [{wb - 1}:0] b, output [{w - 1}:0] y);\n"
                f" assign y = {fit('a', wa, True, w)} * {fit('b', wb, True, w)};\nendmodule\n")

    print("| a x b bits | partial products: LUT / CARRY8 / DSP | `*`: LUT / DSP |\n|---|---|---|")
    for wa, wb in MUL_WIDTHS:
        d = partial_products(wa, wb)
        pp, st = synthesize(d.verilog, d.name), synthesize(star(wa, wb), "m")
        print(f"| {wa} x {wb} | {pp.lut} / {pp.carry} / {pp.dsp} | {st.lut} / {st.dsp} |", flush=True)
    print("\nFour products per design, pipelined to 2.5 ns:\n\n| a x b bits | stages | meets 2.5 ns | LUT | CARRY8 | FF |"
          "\n|---|---|---|---|---|---|")
    for wa, wb in ((6, 6), (8, 8), (10, 10), (8, 12)):
        d = partial_products(wa, wb, 4, 2.5)
        r = synthesize(d.verilog, d.name)
        print(f"| {wa} x {wb} | {d.pipeline.stages} | {d.pipeline.meets_timing} | {r.lut} | {r.carry} | {r.ff} |",
              flush=True)


def layernorm(args) -> None:
    """Does the transformer need LayerNorm? The float transformer of the example with and
    without ``nn.LayerNorm`` after the attention's residual sum (where the QAT model has its
    saturating ``QActivation``), same data, epochs and seeds; test accuracies per seed."""
    import numpy as np
    import torch
    from torch import nn

    import rtl4ml.nn as qnn
    from _constituents import Layers, load
    from transformer_jets import Transformer

    class WithLayerNorm(Transformer):
        def __init__(self, particles: int) -> None:
            super().__init__(Layers(False), particles)
            self.res = nn.LayerNorm(self.embed.out_features)

    torch.set_num_threads(1)
    ns = argparse.Namespace(data=args.shared / "jets_pythia8" / "jets_pythia8.npz", particles=16, small=False,
                            seed=0)
    xc, _, y, tr, te = load(ns)
    tr = tr[:args.ln_jets]
    acc: dict[str, list[float]] = {"no LayerNorm": [], "LayerNorm": []}
    for seed in range(args.ln_seeds):
        for name, make in (("no LayerNorm", lambda: Transformer(Layers(False), 16)),
                           ("LayerNorm", lambda: WithLayerNorm(16))):
            torch.manual_seed(seed)
            m = qnn.fit(make(), xc[tr], y[tr], epochs=args.epochs or 6, seed=seed, label=f"{name} seed {seed}")
            with torch.no_grad():
                acc[name].append(float((m(torch.tensor(xc[te], dtype=torch.float32)).argmax(1).numpy()
                                        == y[te]).mean()))
            print(f"seed {seed} {name}: {100 * acc[name][-1]:.2f} %", flush=True)
    print(f"\nfloat transformer (16 particles), {len(tr)} training jets, {args.epochs or 6} epochs, "
          f"{len(te)} test jets, seeds 0..{args.ln_seeds - 1}")
    print("| model | median acc | min - max |\n|---|---|---|")
    for name, a in acc.items():
        print(f"| {name} | {100 * np.median(a):.2f} % | {100 * min(a):.2f} - {100 * max(a):.2f} % |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--only", help="run the models whose name contains this")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--no-rtl", action="store_true")
    ap.add_argument("--epochs", type=int, default=None, help="training epochs (default: the examples' 40)")
    ap.add_argument("--models", type=Path, default=None,
                    help="a folder: save each example's trained models there (NAME.pt), or with --load read them")
    ap.add_argument("--load", action="store_true", help="with --models: no training, the saved models")
    ap.add_argument("--scaling", action="store_true", help="Deep Sets lowering time and LUTs for 8/16/30 particles")
    ap.add_argument("--synth", action="store_true", help="with --scaling: Yosys LUTs too")
    ap.add_argument("--multipliers", action="store_true",
                    help="Yosys cost of one a x b product as partial products and as '*'")
    ap.add_argument("--layernorm", action="store_true",
                    help="the float transformer with and without LayerNorm (--epochs, default 6)")
    ap.add_argument("--ln-jets", type=int, default=40000, help="with --layernorm: training jets")
    ap.add_argument("--ln-seeds", type=int, default=3, help="with --layernorm: seeds")
    args = ap.parse_args()
    if args.layernorm:
        layernorm(args)
    elif args.multipliers:
        multipliers(args)
    else:
        scaling(args) if args.scaling else examples(args)


if __name__ == "__main__":
    main()
