"""The layer examples at full size, with Verilator and Yosys: one table.

    python benchmarks/layer_examples.py [--shared ../shared/data] [--only NAME] [--seed 0] [--no-synth]

Runs, one after another, each example of ``examples/`` on the project's full data sets
(``shared/data``): the CNN digit classifier on ``digits_8x8`` and on ``mnist_5k`` (28x28),
the jet autoencoder and the convolutional autoencoder on ``jets_pythia8`` (trained on the
q/g jets of the train split, scored on the test split). Each run proves model == design on
every test sample and the RTL in Verilator, synthesizes with Yosys at ``clock_ns=2.5``, and
its figures are collected into the table printed at the end.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUNS = {
    "digits_8x8 CNN": ("cnn_digits.py", "digits_8x8/digits_8x8.npz", []),
    "mnist_5k CNN": ("cnn_digits.py", "mnist_5k/mnist_5k.npz", []),
    "jet autoencoder": ("jet_autoencoder.py", "jets_pythia8/jets_pythia8.npz", []),
    "conv autoencoder": ("conv_autoencoder.py", "jets_pythia8/jets_pythia8.npz", []),
}


def figures(out: str) -> dict[str, str]:
    """The figures an example printed."""
    f: dict[str, str] = {}
    if m := re.search(r"accuracy on (\d+) test images: float ([\d.]+) %, bit-exact design ([\d.]+) %", out):
        f["quality"] = f"acc {m.group(2)} % / {m.group(3)} %"
        f["n"] = m.group(1)
    aucs = re.findall(r"AUC (\w) vs q/g: float ([\d.]+), bit-exact design ([\d.]+)", out)
    if aucs:
        f["quality"] = ", ".join(f"{s} {a}/{b}" for s, a, b in aucs)
    if m := re.search(r"model\(x\) == design.predict\(x\) on (\d+) of (\d+)", out):
        f["bit-exact"] = f"{m.group(1)}/{m.group(2)}"
    f["rtl"] = "yes" if re.search(r"RTL \(Verilator\): bit-exact", out) else "no"
    if m := re.search(r"Yosys: (\d+) LUT, (\d+) FF, (\d+) DSP", out):
        f["lut"], f["ff"], f["dsp"] = m.groups()
    elif m := re.search(r"analytic: (\d+) LUT", out):
        f["lut"] = f"~{m.group(1)}"
    if m := re.search(r"latency: (\d+) cycles = ([\d.]+) ns", out):
        f["cycles"], f["ns"] = m.groups()
    return f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--only", choices=list(RUNS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-synth", action="store_true")
    args = ap.parse_args()
    rows = []
    for name, (script, data, extra) in RUNS.items():
        if args.only and name != args.only:
            continue
        path = args.shared / data
        if not path.exists():
            raise SystemExit(f"{path} not found: pass --shared DIR (the folder holding {data.split('/')[0]}/)")
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
    print(f"\n| example (seed {args.seed}) | float / design | bit-exact | RTL | LUT | FF | DSP | cycles | ns at 2.5 | run s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, f, dt in rows:
        print(f"| {name} | {f.get('quality', '')} | {f.get('bit-exact', '')} | {f['rtl']} | {f.get('lut', '')} | "
              f"{f.get('ff', '')} | {f.get('dsp', '')} | {f.get('cycles', '')} | {f.get('ns', '')} | {dt:.0f} |")


if __name__ == "__main__":
    main()
