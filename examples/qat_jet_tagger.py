"""Quantization-aware training of a jet tagger with learnable per-weight precision, end to end.

    python examples/qat_jet_tagger.py [--beta 2e-5] [--epochs 20] [--verify]

Trains on the 10,000 jets shipped with rtl4ml (train/test split 8,000/2,000), calibrates,
converts with no type arguments, checks the design against the model bit for bit and prints
its size. ``--verify`` also simulates the RTL with Verilator; ``--synth`` runs Yosys.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch import nn

import rtl4ml
import rtl4ml.nn as qnn
from rtl4ml.data import load_jets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--beta", type=float, default=2e-5, help="EBOPs coefficient (larger: smaller hardware)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--verify", action="store_true", help="simulate the RTL with Verilator")
    ap.add_argument("--synth", action="store_true", help="synthesize with Yosys")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    torch.manual_seed(0)

    jets = load_jets()
    x, y = jets["features"].astype(np.float64), jets["labels"].astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(x))
    tr, te = perm[:8000], perm[8000:]
    mean, std = x[tr].mean(0), x[tr].std(0)
    x = (x - mean) / std                                    # standardized inputs
    xtr, ytr, xte, yte = x[tr], y[tr], x[te], y[te]

    model = nn.Sequential(qnn.QInput(16), qnn.QLinear(16, 32), qnn.QReLU(), qnn.QLinear(32, 16), qnn.QReLU(),
                          qnn.QLinear(16, 5))
    xt, yt = torch.tensor(xtr, dtype=torch.float32), torch.tensor(ytr)
    qnn.init_lazy(model, xt[:8])
    bits = qnn.bit_parameters(model)
    rest = [p for p in model.parameters() if all(p is not b for b in bits)]
    opt = torch.optim.Adam([{"params": rest}, {"params": bits, "lr": 2e-2}], lr=5e-3)
    beta_at = qnn.BetaScheduler(args.beta, warmup=2, ramp=max(1, args.epochs // 3))
    for epoch in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(xt)).split(256):
            loss = nn.functional.cross_entropy(model(xt[idx]), yt[idx]) + beta_at(epoch) * qnn.ebops(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1:3d}: loss {float(loss.detach()):.3f}, EBOPs {float(qnn.ebops(model).detach()):.0f}")

    qnn.calibrate(model, xtr)
    design = rtl4ml.convert(model, clock_ns=2.5, name="jet_qat")
    model.double()
    with torch.no_grad():
        ref = model(torch.from_numpy(xte)).numpy()
    assert (ref == design.predict(xte)).all(), "the design differs from the model"
    print(f"test accuracy {(ref.argmax(1) == yte).mean():.4f}; model(x) == design.predict(x) on all {len(xte)} jets")
    for c in qnn.layer_costs(model):
        print(f"  layer {c.name}: {c.live_weights}/{c.weights} live weights, {c.mean_weight_bits:.2f} bits on average, "
              f"{c.live_inputs}/{c.inputs} live inputs")
    print(design.estimate(synth=args.synth))
    if args.verify:
        print(design.verify(xte))


if __name__ == "__main__":
    main()
