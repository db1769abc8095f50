"""``rtl4ml demo``: the whole flow on the shipped jet sample, in a few minutes on a laptop.

Train a small float MLP, quantize it after training, convert it, prove the RTL bit-exact
on every shipped jet with Verilator, and synthesize it with Yosys.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .data import load_jets

#: The demo's network and types: small enough that Yosys finishes in about a minute.
HIDDEN = (32, 16)
INPUT_TYPE = "fixed<12,4>"             # standardized features in [-8, 8), 1/256 steps
WEIGHT_TYPE = "fixed<6,2,RND,SAT>"     # weights in [-2, 2), 1/16 steps
RESULT_TYPE = "fixed<12,5,RND,SAT>"    # every layer's output


def train_float_mlp(x: np.ndarray, y: np.ndarray, hidden=HIDDEN, epochs: int = 60, seed: int = 0):
    """A plain float PyTorch MLP (Adam, cross-entropy)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers, n = [], x.shape[1]
    for h in hidden:
        layers += [nn.Linear(n, h), nn.ReLU()]
        n = h
    layers.append(nn.Linear(n, int(y.max()) + 1))
    model = nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(xt), generator=gen)
        for i in range(0, len(xt), 128):
            b = perm[i:i + 128]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(xt[b]), yt[b]).backward()
            opt.step()
        sched.step()
    return model.eval()


def run_demo(out: str | Path = "rtl4ml-demo", epochs: int = 60, synth: bool = True) -> dict:
    import torch

    import rtl4ml

    t0 = time.perf_counter()
    jets = load_jets()
    x, y = jets["features"].astype(np.float64), jets["labels"].astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(x))
    train, test = perm[:7000], perm[7000:]
    mean, std = x[train].mean(0), x[train].std(0)
    xs = (x - mean) / std  # standardization stays in software, before the input quantizer

    print(f"[1/4] training a float MLP 16-{'-'.join(map(str, HIDDEN))}-5 on {len(train)} jets ...", flush=True)
    model = train_float_mlp(xs[train], y[train], epochs=epochs)
    with torch.no_grad():
        float_acc = float((model(torch.tensor(xs[test], dtype=torch.float32)).argmax(1).numpy() == y[test]).mean())

    print(f"[2/4] converting: input {INPUT_TYPE}, weights {WEIGHT_TYPE}, results {RESULT_TYPE}, 200 MHz ...", flush=True)
    design = rtl4ml.convert(model, input_type=INPUT_TYPE, weight_type=WEIGHT_TYPE, result_type=RESULT_TYPE,
                            clock_ns=5.0, name="jet_tagger")
    q_acc = float((design.predict(xs[test]).argmax(1) == y[test]).mean())
    folder = design.write(out)

    print(f"[3/4] verifying the RTL with Verilator on all {len(xs)} shipped jets ...", flush=True)
    r = design.verify(xs)

    est = design.estimate(synth=False)
    if synth:
        print("[4/4] synthesizing with Yosys synth_xilinx (UltraScale+) ...", flush=True)
        est = design.estimate()
    rows = [
        ("float accuracy (test)", f"{100 * float_acc:.2f} %"),
        ("quantized accuracy (test)", f"{100 * q_acc:.2f} %"),
        ("RTL agreement", f"{r.n_samples - r.n_mismatch}/{r.n_samples} jets bit-exact" + ("" if r.ok else "  FAILED")),
        ("LUT", "-" if est.lut is None else f"{est.lut}"),
        ("FF", "-" if est.ff is None else f"{est.ff}"),
        ("DSP", "-" if est.dsp is None else f"{est.dsp}"),
        ("adders / adder bits", f"{est.adders} / {est.adder_bits}"),
        ("latency", f"{est.latency_cycles} cycles = {est.latency_ns:g} ns at {est.clock_ns:g} ns"),
        ("output folder", str(folder)),
        ("total time", f"{time.perf_counter() - t0:.0f} s"),
    ]
    w = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")
    if not r.ok:
        print(f"\n{r}")
        raise RuntimeError("the RTL does not match the emulator")
    return {"float_acc": float_acc, "quantized_acc": q_acc, "verify": r, "estimate": est}
