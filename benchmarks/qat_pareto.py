"""Accuracy versus hardware for quantization-aware training with learnable bits (rtl4ml.nn).

Trains the 16-64-32-32-5 jet-tagging MLP on the jets_pythia8 data set at several values of
the EBOPs coefficient ``beta``; for each model: calibrate on the training set, convert with
no type arguments, check that the float64 forward pass equals ``design.predict`` on every
test jet (and, with ``--verify``, that the Verilator RTL does too), then report test
accuracy, EBOPs, the analytic estimate, Yosys LUT/FF and the latency. A float baseline and
the uniform 8-bit post-training-quantized design of that float model are included.

Features are standardized with the training split's mean and standard deviation before the
input quantizer (the design's inputs are standardized features).

    python benchmarks/qat_pareto.py --verify              # the full run (writes results/)
    python benchmarks/qat_pareto.py --epochs 5 --no-synth # a quick look
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "jets_pythia8" / "jets_pythia8.npz"
SHAPE = (16, 64, 32, 32, 5)
#: EBOPs coefficients of the Pareto scan, largest model first.
DEFAULT_BETAS = (1e-6, 2e-6, 4e-6, 6e-6, 8e-6, 1.2e-5, 2e-5, 4e-5)


# --------------------------------------------------------------------------- data


def load_data(path: Path) -> dict[str, np.ndarray]:
    """Standardized features and labels per split (train mean/std)."""
    if not path.exists():
        sys.exit(f"data file {path} not found; pass --data PATH to jets_pythia8.npz")
    with np.load(path, allow_pickle=False) as d:
        x, y, split = d["features"].astype(np.float64), d["labels"].astype(np.int64), d["split"]
    train = split == 0
    mean, std = x[train].mean(0), x[train].std(0)
    z = (x - mean) / std
    return {f"x_{k}": z[split == i] for i, k in enumerate(("train", "val", "test"))} | \
           {f"y_{k}": y[split == i] for i, k in enumerate(("train", "val", "test"))} | {"mean": mean, "std": std}


# --------------------------------------------------------------------------- models


def float_mlp(shape=SHAPE):
    from torch import nn
    layers: list = []
    for a, b in zip(shape[:-2], shape[1:-1]):
        layers += [nn.Linear(a, b), nn.ReLU()]
    layers.append(nn.Linear(shape[-2], shape[-1]))
    return nn.Sequential(*layers)


def qat_mlp(shape=SHAPE, init_f: float = 6.0, act_f: float = 6.0, batchnorm: bool = False):
    """QInput -> (QLinear -> QReLU) x 3 -> QLinear: every weight and activation its own bits."""
    import torch.nn as tnn

    import rtl4ml.nn as qnn
    layers: list = [qnn.QInput(shape[0], init_f=act_f)]
    for a, b in zip(shape[:-2], shape[1:-1]):
        layers += [qnn.QLinear(a, b, init_f=init_f, batchnorm=batchnorm), qnn.QReLU(b, init_f=act_f)]
    layers.append(qnn.QLinear(shape[-2], shape[-1], init_f=init_f))
    return tnn.Sequential(*layers)


@dataclass
class TrainConfig:
    epochs: int = 60
    batch: int = 512
    lr: float = 3e-3
    beta: float = 0.0
    warmup: int = 3          # epochs without the resource term
    ramp: int = 20           # epochs of geometric ramp of beta
    l1_bits: float = 0.0     # coefficient of the L1 pressure on bit counts
    bits_lr: float | None = None  # learning rate of the bit counts (default: lr)
    seed: int = 0


def train(model, x, y, cfg: TrainConfig, qat: bool, log=None) -> dict:
    """Adam with cosine learning-rate decay; QAT adds ``beta * ebops`` on the BetaScheduler."""
    import torch
    import torch.nn.functional as F

    import rtl4ml.nn as qnn
    torch.manual_seed(cfg.seed)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)
    if qat:
        qnn.init_lazy(model, xt[:8])
    bits = qnn.bit_parameters(model) if qat else []
    rest = [p for p in model.parameters() if all(p is not b for b in bits)]
    bits_lr = cfg.bits_lr or cfg.lr
    groups = [{"params": rest, "lr": cfg.lr}] + ([{"params": bits, "lr": bits_lr}] if bits else [])
    opt = torch.optim.Adam(groups, lr=cfg.lr)
    steps = cfg.epochs * math.ceil(len(xt) / cfg.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=steps,
                                                pct_start=0.05, anneal_strategy="cos", div_factor=10,
                                                final_div_factor=100)
    beta_at = qnn.BetaScheduler(cfg.beta, warmup=cfg.warmup, ramp=cfg.ramp)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    model.train()
    for epoch in range(cfg.epochs):
        beta = beta_at(epoch)
        perm = torch.randperm(len(xt), generator=gen)
        tot = n = 0.0
        for s in range(0, len(xt), cfg.batch):
            b = perm[s:s + cfg.batch]
            loss = F.cross_entropy(model(xt[b]), yt[b])
            if qat and beta > 0:
                loss = loss + beta * qnn.ebops(model)
            if qat and cfg.l1_bits > 0:
                loss = loss + cfg.l1_bits * qnn.bit_penalty(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += float(loss.detach()) * len(b)
            n += len(b)
        if log and (epoch == 0 or (epoch + 1) % 10 == 0 or epoch + 1 == cfg.epochs):
            extra = f" ebops {float(qnn.ebops(model).detach()):.0f}" if qat else ""
            log(f"  epoch {epoch + 1:3d}/{cfg.epochs} loss {tot / n:.4f} beta {beta:.2e}{extra} "
                f"({time.perf_counter() - t0:.0f} s)")
    model.eval()
    return {"train_seconds": time.perf_counter() - t0}


def train_qat_point(data_path: str, beta: float, cfg_kw: dict, model_kw: dict, threads: int = 1) -> dict:
    """Train one QAT model (runs in a worker process with its own torch threads)."""
    import torch
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # Adam moments of near-zero bit gradients are otherwise denormal (slow)
    data = load_data(Path(data_path))
    cfg = TrainConfig(beta=beta, **cfg_kw)
    torch.manual_seed(cfg.seed)
    model = qat_mlp(**model_kw)
    lines: list[str] = []
    info = train(model, data["x_train"], data["y_train"], cfg, qat=True,
                 log=lambda m: (lines.append(m), print(f"[beta {beta:.1e}]{m}", flush=True)))
    return {"beta": beta, "model": model, "train_seconds": info["train_seconds"], "log": lines}


# --------------------------------------------------------------------------- designs


def _int_bits(maxabs: float) -> int:
    """Integer bits (sign included, as in fixed<W,I>) that hold +-maxabs."""
    return max(1, int(math.ceil(math.log2(max(maxabs, 2.0 ** -8)))) + 1)


def ptq_types(model, x_train, bits: int = 8, percentile: float = 99.9) -> dict:
    """Uniform ``bits``-bit post-training types: the same width for the input, every weight,
    bias and layer output. Integer bits per tensor: from the largest magnitude for weights and
    biases, from the ``percentile`` of ``|value|`` on the training set for the input and the
    layer outputs (SAT clips the rarer, larger values: a better 8-bit model than max-based
    ranges, which spend bits on outliers)."""
    import torch
    from torch import nn
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    mods = dict(model.named_modules())
    out = {"input_type": f"fixed<{bits},{_int_bits(float(np.percentile(np.abs(x_train), percentile)))},RND,SAT>",
           "weight_type": {}, "bias_type": {}, "result_type": {}}
    h = torch.tensor(x_train, dtype=torch.float32)
    with torch.no_grad():
        for name, m in model.named_children():
            h = m(h)
            if name in names:
                lin = mods[name]
                out["weight_type"][name] = f"fixed<{bits},{_int_bits(float(lin.weight.abs().max()))},RND,SAT>"
                out["bias_type"][name] = f"fixed<{bits},{_int_bits(float(lin.bias.abs().max()))},RND,SAT>"
                r = float(np.percentile(h.abs().numpy(), percentile))
                out["result_type"][name] = f"fixed<{bits},{_int_bits(r)},RND,SAT>"
    return out


@dataclass
class Point:
    label: str
    beta: float | None
    accuracy: float
    ebops: float | None = None
    ebops_hgq: float | None = None
    adders: int | None = None
    adder_bits: int | None = None
    register_bits: int | None = None
    latency_cycles: int | None = None
    latency_ns: float | None = None
    lut: int | None = None
    ff: int | None = None
    dsp: int | None = None
    carry: int | None = None
    synth_seconds: float | None = None
    train_seconds: float | None = None
    live_weights: int | None = None
    rtl_verified: int | None = None
    notes: dict = field(default_factory=dict)


def measure(point: Point, design, synth: bool, log) -> None:
    est = design.estimate(synth=synth)
    point.adders, point.adder_bits, point.register_bits = est.adders, est.adder_bits, est.register_bits
    point.latency_cycles, point.latency_ns = est.latency_cycles, est.latency_ns
    if synth:
        point.lut, point.ff, point.dsp, point.carry = est.lut, est.ff, est.dsp, est.carry
        point.synth_seconds = est.synth_seconds
    log(f"  {point.label}: acc {point.accuracy:.4f}, {est.adders} adders / {est.adder_bits} adder bits, "
        f"LUT {point.lut}, FF {point.ff}, {est.latency_cycles} cycles")


def verify_rtl(point: Point, design, x, log) -> None:
    r = design.verify(x)
    if not r.ok:
        raise SystemExit(f"{point.label}: RTL differs from the emulator: {r}")
    point.rtl_verified = r.n_samples
    log(f"  {point.label}: {r}")


# --------------------------------------------------------------------------- report


def table(points: list[Point]) -> str:
    head = (f"{'design':<10}{'beta':>8}{'acc %':>8}{'EBOPs':>8}{'+acc.':>8}{'live w':>8}{'adders':>8}"
            f"{'add.bits':>10}{'LUT':>8}{'FF':>7}{'DSP':>5}{'cycles':>7}{'ns':>6}{'train s':>9}")
    rows = [head, "-" * len(head)]
    for p in points:
        f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
        rows.append(f"{p.label:<10}{f(p.beta, '.2g'):>8}{100 * p.accuracy:>8.2f}{f(p.ebops_hgq, '.0f'):>8}"
                    f"{f(p.ebops, '.0f'):>8}{f(p.live_weights, 'd'):>8}{f(p.adders, 'd'):>8}{f(p.adder_bits, 'd'):>10}"
                    f"{f(p.lut, 'd'):>8}{f(p.ff, 'd'):>7}{f(p.dsp, 'd'):>5}{f(p.latency_cycles, 'd'):>7}"
                    f"{f(p.latency_ns, 'g'):>6}{f(p.train_seconds, '.0f'):>9}")
    rows += ["", "EBOPs: sum of input bits x weight bits (the HGQ figure); +acc.: with the accumulator term "
             "(the training penalty); live w: non-zero weights (of 4,256)"]
    return "\n".join(rows)


#: HGQ2 0.2 + da4ml 0.6 on this data set and shape (Yosys 0.70 synth_xilinx -flatten -family xcup).
HGQ_BAR = ((0.712, 17100), (0.699, 5000), (0.683, 2200))


def pareto(points: list[Point], key: str) -> list[Point]:
    """QAT points not dominated in (accuracy up, ``key`` down)."""
    qat = sorted((p for p in points if p.beta is not None and getattr(p, key) is not None),
                 key=lambda p: (getattr(p, key), -p.accuracy))
    front, best = [], -1.0
    for p in qat:
        if p.accuracy > best:
            front.append(p)
            best = p.accuracy
    return front


def criteria(points: list[Point]) -> list[str]:
    """The acceptance checks of the benchmark, as readable lines."""
    lines = []
    base = next(p for p in points if p.label == "float")
    ptq = next(p for p in points if p.label == "ptq-8bit")
    key = "lut" if ptq.lut is not None else "adder_bits"
    ok = [p for p in pareto(points, key) if p.accuracy >= base.accuracy - 0.01]
    if ok and getattr(ptq, key):
        p = min(ok, key=lambda p: getattr(p, key))
        ratio = getattr(p, key) / getattr(ptq, key)
        lines.append(f"within 1 pp of float ({100 * base.accuracy:.2f}%): {p.label} at {100 * p.accuracy:.2f}% uses "
                     f"{getattr(p, key)} {key} = {ratio:.3f} x the uniform 8-bit design's {getattr(ptq, key)} "
                     f"-> {'PASS' if ratio <= 1 / 3 else 'FAIL'} (needs <= 1/3)")
    else:
        lines.append(f"no QAT design within 1 pp of the float baseline ({100 * base.accuracy:.2f}%) -> FAIL")
    if key == "lut":
        front = pareto(points, "lut")
        for acc, lut in HGQ_BAR:
            cands = [p for p in front if p.accuracy >= acc]
            if cands:
                p = min(cands, key=lambda p: p.lut)
                lines.append(f"HGQ bar {100 * acc:.1f}% @ {lut} LUT: {p.label} {100 * p.accuracy:.2f}% @ {p.lut} LUT "
                             f"= {p.lut / lut:.2f} x -> {'PASS' if p.lut <= 0.8 * lut else 'FAIL'} (needs <= 0.8 x)")
            else:
                lines.append(f"HGQ bar {100 * acc:.1f}% @ {lut} LUT: no design reaches {100 * acc:.1f}% -> FAIL")
    return lines


def plot(points: list[Point], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    key = "lut" if any(p.lut for p in points) else "adder_bits"
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    qat = [p for p in points if p.beta is not None and getattr(p, key)]
    ax.plot([getattr(p, key) for p in qat], [100 * p.accuracy for p in qat], "o", color="C0", label="rtl4ml.nn QAT")
    front = pareto(points, key)
    ax.plot([getattr(p, key) for p in front], [100 * p.accuracy for p in front], "-", color="C0")
    for p in qat:
        ax.annotate(f"β={p.beta:.2g}", (getattr(p, key), 100 * p.accuracy), fontsize=7,
                    textcoords="offset points", xytext=(4, -9))
    ptq = next(p for p in points if p.label == "ptq-8bit")
    if getattr(ptq, key):
        ax.plot([getattr(ptq, key)], [100 * ptq.accuracy], "s", color="C3", label="uniform 8-bit PTQ")
    base = next(p for p in points if p.label == "float")
    ax.axhline(100 * base.accuracy, color="gray", ls="--", lw=1, label=f"float ({100 * base.accuracy:.1f}%)")
    ax.axhline(100 * base.accuracy - 1, color="gray", ls=":", lw=1, label="float - 1 pp")
    if key == "lut":
        ax.plot([lut for _, lut in HGQ_BAR], [100 * a for a, _ in HGQ_BAR], "^--", color="C2",
                label="HGQ2 + da4ml (bar)")
    ax.set_xscale("log")
    ax.set_xlabel("LUT (Yosys synth_xilinx, xcup)" if key == "lut" else "adder bits (analytic)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("16-64-32-32-5 jet tagger: accuracy vs resources")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=130)


def report_only(out: Path) -> int:
    """Table, criteria and plot of a recorded run, from its results.json."""
    rec = json.loads((out / "results.json").read_text())
    points = [Point(**p) for p in rec["points"]]
    print(table(points))
    print()
    for line in criteria(points):
        print(line)
    plot(points, out / "pareto.png")
    return 0


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="jets_pythia8.npz (default: %(default)s)")
    ap.add_argument("--betas", type=float, nargs="+", default=list(DEFAULT_BETAS))
    ap.add_argument("--epochs", type=int, default=120, help="QAT epochs per beta")
    ap.add_argument("--float-epochs", type=int, default=60)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--bits-lr", type=float, default=1e-2, help="learning rate of the bit counts")
    ap.add_argument("--init-f", type=float, default=6.0, help="initial fractional bits of weights")
    ap.add_argument("--act-f", type=float, default=6.0, help="initial fractional bits of activations")
    ap.add_argument("--l1-bits", type=float, default=0.0)
    ap.add_argument("--batchnorm", action="store_true", help="QLinear(batchnorm=True) in the hidden layers")
    ap.add_argument("--clock-ns", type=float, default=5.0, help="target clock (default 5 ns = 200 MHz)")
    ap.add_argument("--no-synth", action="store_true", help="analytic estimates only (no Yosys)")
    ap.add_argument("--no-ptq-synth", action="store_true", help="skip Yosys for the (large) 8-bit PTQ design")
    ap.add_argument("--verify", action="store_true", help="also prove the Verilator RTL bit-exact on every test jet")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per training (1 is fastest for this size)")
    ap.add_argument("--jobs", type=int, default=2, help="QAT trainings run in parallel (processes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--write-designs", action="store_true", help="also write each design's Verilog and model.pt")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "qat_pareto")
    ap.add_argument("--report-only", action="store_true",
                    help="re-print the table, criteria and plot from OUT/results.json (no training)")
    args = ap.parse_args(argv)
    if args.report_only:
        return report_only(args.out)

    import torch

    import rtl4ml
    import rtl4ml.nn as qnn
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # Adam moments of near-zero bit gradients are otherwise denormal (slow)
    args.out.mkdir(parents=True, exist_ok=True)
    log_lines: list[str] = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_lines.append(msg)

    t_start = time.perf_counter()
    data = load_data(args.data)
    xtr, ytr, xte, yte = data["x_train"], data["y_train"], data["x_test"], data["y_test"]
    log(f"data: {len(xtr)} train / {len(xte)} test jets, standardized with the train mean/std")
    points: list[Point] = []
    synth = not args.no_synth

    # float baseline and the uniform 8-bit PTQ design of it
    log("float baseline")
    torch.manual_seed(args.seed)
    fm = float_mlp()
    info = train(fm, xtr, ytr, TrainConfig(epochs=args.float_epochs, batch=args.batch, lr=args.lr, seed=args.seed),
                 qat=False, log=log)
    with torch.no_grad():
        acc = float((fm(torch.tensor(xte, dtype=torch.float32)).argmax(1).numpy() == yte).mean())
    points.append(Point("float", None, acc, train_seconds=info["train_seconds"]))
    types = ptq_types(fm, xtr, 8)
    log(f"uniform 8-bit PTQ types: {json.dumps(types)}")
    ptq = rtl4ml.convert(fm, clock_ns=args.clock_ns, name="ptq8", **types)
    ptq_point = Point("ptq-8bit", None, float((ptq.predict(xte).argmax(1) == yte).mean()), notes={"types": types})
    measure(ptq_point, ptq, False, log)
    points.append(ptq_point)

    betas = sorted(args.betas)
    cfg_kw = dict(epochs=args.epochs, batch=args.batch, lr=args.lr, bits_lr=args.bits_lr, l1_bits=args.l1_bits,
                  seed=args.seed)
    model_kw = dict(init_f=args.init_f, act_f=args.act_f, batchnorm=args.batchnorm)
    log(f"QAT: {len(betas)} values of beta, {args.epochs} epochs each, {args.jobs} in parallel")
    t_train = time.perf_counter()
    if args.jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(train_qat_point, str(args.data), b, cfg_kw, model_kw, args.threads) for b in betas]
            trained = [f.result() for f in futures]
    else:
        trained = [train_qat_point(str(args.data), b, cfg_kw, model_kw, args.threads) for b in betas]
    train_wall = time.perf_counter() - t_train
    train_total = sum(t["train_seconds"] for t in trained)
    log(f"QAT training: {train_wall:.0f} s wall clock for {len(betas)} points ({train_total:.0f} s summed over "
        f"the {args.jobs} parallel jobs)")

    for k, t in enumerate(trained):
        beta, model, label = t["beta"], t["model"], f"qat-{k}"
        log(f"{label}: beta={beta:.1e}")
        log_lines.extend(t["log"])
        qnn.calibrate(model, xtr)
        design = rtl4ml.convert(model, clock_ns=args.clock_ns, name=f"qat{k}")
        model.double()
        with torch.no_grad():
            ref = model(torch.from_numpy(xte)).numpy()
        emu = design.predict(xte)
        if not np.array_equal(ref, emu):
            raise SystemExit(f"{label}: model forward != design.predict on {(ref != emu).any(1).sum()} test jets")
        p = Point(label, beta, float((emu.argmax(1) == yte).mean()), train_seconds=t["train_seconds"])
        with torch.no_grad():
            p.ebops = float(qnn.ebops(model))
            p.ebops_hgq = float(qnn.ebops(model, accumulator=False))
        p.live_weights = sum(c.live_weights for c in qnn.layer_costs(model))
        p.notes["bit_exact_predict"] = len(xte)
        log(f"  model(x) == design.predict(x) on all {len(xte)} test jets")
        measure(p, design, synth, log)
        if args.verify:
            verify_rtl(p, design, xte, log)
        if args.write_designs:
            design.write(args.out / f"qat{k}")
            torch.save(model, args.out / f"qat{k}" / "model.pt")
        points.append(p)

    if synth and not args.no_ptq_synth:
        log("uniform 8-bit PTQ design: Yosys")
        measure(ptq_point, ptq, True, log)

    log("")
    log(table(points))
    log("")
    for line in criteria(points):
        log(line)
    log(f"QAT training, {len(betas)} points: {train_wall:.0f} s wall clock with {args.jobs} jobs "
        f"({train_total:.0f} s summed); total run {time.perf_counter() - t_start:.0f} s")
    log(f"command: python benchmarks/qat_pareto.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    plot(points, args.out / "pareto.png")
    (args.out / "results.json").write_text(json.dumps(
        {"args": {k: str(v) for k, v in vars(args).items()}, "points": [asdict(p) for p in points],
         "qat_train_seconds_summed": train_total, "qat_train_wall_seconds": train_wall,
         "criteria": criteria(points)}, indent=1) + "\n")
    (args.out / "log.txt").write_text("\n".join(log_lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
