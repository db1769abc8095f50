"""``rtl4ml demo``: the whole flow on the shipped jet sample, in a few minutes on 2 cores.

The default is the best flow: a float MLP is trained, then fine-tuned with quantization-aware
training (learned bits per weight and activation, an EBOPs resource term), calibrated and
converted with no type arguments; the RTL is proven bit-exact on every shipped jet with
Verilator, synthesized with Yosys, and an HTML report is written. The post-training
quantized design of the same float model is built beside it (analytic estimate only) so
the two can be compared. ``fast=True`` (``--fast``) keeps the quick path: post-training
quantization only.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from . import progress
from .data import load_jets

#: The demo's network and post-training types: small enough that Yosys finishes in about a minute.
HIDDEN = (32, 16)
INPUT_TYPE = "fixed<12,4,TRN,SAT>"     # standardized features clamped to [-8, 8), 1/256 steps
WEIGHT_TYPE = "fixed<6,2,RND,SAT>"     # weights in [-2, 2), 1/16 steps
RESULT_TYPE = "fixed<12,5,RND,SAT>"    # every layer's output
#: EBOPs coefficient of the QAT fine-tuning. Measured on this split (QAT seeds 0, 1, 2, one
#: thread): 69.6 / 69.5 / 69.3 % test accuracy at 6.8k / 6.8k / 6.6k estimated LUTs, against
#: 68.7 % at 12.9k for the post-training design (2e-6: 69.9 / 69.1 / 69.6 % at about 8.6k).
BETA = 5e-6


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
    with progress.task("float training", total=epochs) as bar:
        for _ in range(epochs):
            perm = torch.randperm(len(xt), generator=gen)
            for i in range(0, len(xt), 128):
                b = perm[i:i + 128]
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(xt[b]), yt[b])
                loss.backward()
                opt.step()
            sched.step()
            bar.advance(status=f"loss {float(loss.detach()):.3f}")
    return model.eval()


def qat_finetune(float_model, x: np.ndarray, y: np.ndarray, epochs: int = 60, beta: float = BETA, seed: int = 0):
    """Quantization-aware fine-tuning of ``float_model`` (``rtl4ml.nn.from_float``), calibrated."""
    import torch
    from torch import nn

    from . import nn as qnn

    torch.manual_seed(seed)
    model = qnn.from_float(float_model, input={"init_i": 3.0}, linear={"init_f": 6})
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)
    qnn.init_lazy(model, xt[:8])
    bits = qnn.bit_parameters(model)
    rest = [p for p in model.parameters() if all(p is not b for b in bits)]
    opt = torch.optim.Adam([{"params": rest}, {"params": bits, "lr": 2e-2}], lr=2e-3)
    beta_at = qnn.BetaScheduler(beta, warmup=2, ramp=max(1, epochs // 3))
    gen = torch.Generator().manual_seed(seed)
    with progress.task("QAT", total=epochs) as bar:
        for epoch in range(epochs):
            model.train()
            correct = 0
            for idx in torch.randperm(len(xt), generator=gen).split(256):
                out = model(xt[idx])
                loss = nn.functional.cross_entropy(out, yt[idx]) + beta_at(epoch) * qnn.ebops(model)
                opt.zero_grad()
                loss.backward()
                opt.step()
                correct += int((out.argmax(1) == yt[idx]).sum())
            bar.advance(status=f"loss {float(loss.detach()):.3f}, accuracy {100 * correct / len(xt):.1f} %, "
                               f"EBOPs {float(qnn.ebops(model)):.0f}")
    return qnn.calibrate(model, x)


def _rows(rows: list[tuple[str, str]]) -> None:
    w = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"  {k:<{w}}  {v}")


def run_demo(out: str | Path = "rtl4ml-demo", epochs: int = 60, synth: bool = True, fast: bool = False) -> dict:
    import torch

    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # tiny networks train faster on one thread, and reproducibly
    try:
        return _run(out, epochs, synth, fast, t0)
    finally:
        torch.set_num_threads(threads)


def _run(out, epochs: int, synth: bool, fast: bool, t0: float) -> dict:
    import torch

    import rtl4ml

    jets = load_jets()
    x, y = jets["features"].astype(np.float64), jets["labels"].astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(x))
    train, test = perm[:7000], perm[7000:]
    mean, std = x[train].mean(0), x[train].std(0)
    xs = (x - mean) / std  # standardization stays in software, before the input quantizer
    n_steps = 4 if fast else 6
    step = iter(range(1, n_steps + 1))

    print(f"[{next(step)}/{n_steps}] training a float MLP 16-{'-'.join(map(str, HIDDEN))}-5 on {len(train)} jets ...",
          flush=True)
    model = train_float_mlp(xs[train], y[train], epochs=epochs)
    with torch.no_grad():
        float_acc = float((model(torch.tensor(xs[test], dtype=torch.float32)).argmax(1).numpy() == y[test]).mean())

    print(f"[{next(step)}/{n_steps}] post-training quantization: input {INPUT_TYPE}, weights {WEIGHT_TYPE}, "
          f"results {RESULT_TYPE}, 200 MHz ...", flush=True)
    ptq = rtl4ml.convert(model, input_type=INPUT_TYPE, weight_type=WEIGHT_TYPE, result_type=RESULT_TYPE,
                         clock_ns=5.0, name="jet_tagger")
    ptq_acc = float((ptq.predict(xs[test]).argmax(1) == y[test]).mean())
    design, acc = ptq, ptq_acc
    if not fast:
        print(f"[{next(step)}/{n_steps}] quantization-aware fine-tuning ({epochs} epochs, beta {BETA:g}), "
              "calibration, conversion with the trained types ...", flush=True)
        qat = qat_finetune(model, xs[train], y[train], epochs=epochs)
        design = rtl4ml.convert(qat, clock_ns=5.0, name="jet_tagger")
        acc = float((design.predict(xs[test]).argmax(1) == y[test]).mean())
        qat.eval().double()
        with torch.no_grad():
            same = bool((qat(torch.from_numpy(xs)).numpy() == design.predict(xs)).all())
        if not same:
            raise RuntimeError("the QAT model's float64 forward pass differs from the design")
    folder = design.write(out)

    print(f"[{next(step)}/{n_steps}] verifying the RTL with Verilator on all {len(xs)} shipped jets ...", flush=True)
    r = design.verify(xs)
    est = design.estimate(synth=False)
    if synth:
        print(f"[{next(step)}/{n_steps}] synthesizing with Yosys synth_xilinx (UltraScale+) ...", flush=True)
        est = design.estimate()
    else:
        next(step)
    report = None
    if not fast and hasattr(design, "report"):
        print(f"[{next(step)}/{n_steps}] writing the HTML report ...", flush=True)
        report = design.report(Path(folder) / "report.html", x=xs[test], y=y[test], reference=qat)
    ptq_est = ptq.estimate(synth=False)
    rows = [("float accuracy (test)", f"{100 * float_acc:.2f} %"),
            ("post-training quantized (test)", f"{100 * ptq_acc:.2f} %, {ptq_est.luts_estimate} LUT (estimate)")]
    if not fast:
        rows.append(("quantization-aware (test)", f"{100 * acc:.2f} %, {est.luts_estimate} LUT (estimate); "
                                                  "this is the design below"))
    rows += [
        ("RTL agreement", f"{r.n_samples - r.n_mismatch}/{r.n_samples} jets bit-exact" + ("" if r.ok else "  FAILED")),
        ("LUT (Yosys)", "-" if est.lut is None else f"{est.lut}"),
        ("FF (Yosys)", "-" if est.ff is None else f"{est.ff}"),
        ("DSP", "-" if est.dsp is None else f"{est.dsp}"),
        ("adders / adder bits", f"{est.adders} / {est.adder_bits}"),
        ("latency", f"{est.latency_cycles} cycles = {est.latency_ns:g} ns at {est.clock_ns:g} ns"),
        ("output folder", str(folder)),
    ]
    if report is not None:
        rows.append(("report", f"{report} (open it in a browser)"))
    rows.append(("total time", f"{time.perf_counter() - t0:.0f} s"))
    _rows(rows)
    if not r.ok:
        print(f"\n{r}")
        raise RuntimeError("the RTL does not match the emulator")
    return {"float_acc": float_acc, "ptq_acc": ptq_acc, "quantized_acc": acc, "verify": r, "estimate": est,
            "report": report}
