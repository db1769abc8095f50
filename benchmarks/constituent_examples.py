"""The jet-constituent examples at full size, and how Deep Sets grows with the particles.

    python benchmarks/constituent_examples.py [--shared ../shared/data] [--only NAME] [--no-synth]
    python benchmarks/constituent_examples.py --scaling [--synth]

The first form runs ``examples/deepsets_jets.py``, ``interaction_network_jets.py``,
``mlp_mixer_jets.py`` and ``transformer_jets.py`` on ``jets_pythia8`` (train split for
training, test split for the figures), each proving model == design on every test jet and
the RTL in Verilator, with Yosys at ``clock_ns=2.5``, and prints one table (float / design
accuracy, the 16-feature MLP's accuracy on the same split, LUT, FF, DSP, latency).

``--scaling`` builds the Deep Sets model of the example (16-wide ``phi``, briefly trained
and calibrated on random particles) for 8, 16 and 30 particles and prints the time to
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
        if args.no_synth:
            cmd.append("--no-synth")
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
    for p in (8, 16, 30):
        torch.manual_seed(0)
        x = torch.randn(512, p, 3)
        model = DeepSets(Layers(True), p, 16)
        model = qnn.fit(model, x.numpy(), torch.randint(0, 5, (512,)).numpy(), epochs=2, beta=2e-6, label=f"P={p}")
        qnn.calibrate(model, x.numpy())
        t = time.time()
        d = rtl4ml.convert(model, clock_ns=2.5, name=f"deepsets_{p}")
        t_conv = time.time() - t
        t = time.time()
        nl = lower_graph(d.graph)
        t_low = time.time() - t
        est = d.estimate(synth=args.synth)
        print(f"| {p} | {t_conv:.2f} | {t_low:.2f} | {len(nl.prims)} | {est.luts_estimate} | "
              f"{est.lut if est.lut is not None else ''} | {est.ff if est.ff is not None else ''} | "
              f"{est.latency_cycles} |", flush=True)
        assert np.isfinite(t_low)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--only", help="run the models whose name contains this")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--scaling", action="store_true", help="Deep Sets lowering time and LUTs for 8/16/30 particles")
    ap.add_argument("--synth", action="store_true", help="with --scaling: Yosys LUTs too")
    args = ap.parse_args()
    scaling(args) if args.scaling else examples(args)


if __name__ == "__main__":
    main()
