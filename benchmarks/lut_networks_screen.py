"""Screening runs for the LUT-network recipe (the log in docs/lutnet.md): one model, no synthesis.

    python benchmarks/lut_networks_screen.py NAME [key=value ...]

trains one DWN-style model (``rtl4ml.nn.lutnet``) on the jets' training split exactly as
``benchmarks/lut_networks.py`` loads it and appends one JSON line with the test accuracy of
its eval forward pass (the forward that ``design.predict`` equals bit for bit) to ``--log``
(``log=PATH``). Keys and defaults are in :data:`DEFAULTS`: ``units`` (LUT layer widths joined
by ``-``), ``thr`` (thresholds per feature), ``it`` (input type), ``fine`` (features read at
``fine_type``, comma-separated, empty for none), ``tau`` (0: the default ``sqrt(units per
class)``), ``lr``, ``bs``, ``epochs``, ``clamp``, ``efd``, ``learn`` (learned thresholds),
``seed``, ``unit`` (``dwn``: qnn.LUTLayer; ``neuralut``: qnn.MLPLUTLayer with ``hidden``),
``head`` (``popcount``: qnn.GroupSum; ``dense``: a qnn.QLinear on the last layer's bits),
``synth`` (1: convert, check ``design.predict`` on the test jets, Yosys LUT/FF/CARRY).
It is a quick, one-thread probe for choosing the benchmark's defaults, not the benchmark.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

DEFAULTS = {"units": "200", "thr": 16, "it": "fixed<6,3,TRN,SAT>", "fine": "", "fine_type": "fixed<8,3,TRN,SAT>",
            "tau": 0.0, "lr": 1e-2, "bs": 256, "epochs": 3, "clamp": 0, "efd": "linear", "learn": 0, "seed": 0,
            "unit": "dwn", "hidden": 16, "head": "popcount", "synth": 0, "log": str(HERE / "results" / "lut_networks_screen.jsonl")}


def parse(argv: list[str]) -> tuple[str, dict]:
    if not argv or "=" in argv[0]:
        sys.exit(__doc__)
    cfg = dict(DEFAULTS)
    for a in argv[1:]:
        key, _, value = a.partition("=")
        if key not in cfg:
            sys.exit(f"unknown key {key!r}; known: {sorted(cfg)}")
        cfg[key] = type(DEFAULTS[key])(value)
    return argv[0], cfg


def main(argv=None) -> None:
    import torch
    from lut_networks import DEFAULT_DATA, load

    import rtl4ml
    import rtl4ml.nn as qnn
    name, cfg = parse(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(1)
    xtr, ytr, xte, yte = load(DEFAULT_DATA)
    fine = {int(i) for i in cfg["fine"].split(",") if i}
    types = [cfg["fine_type"] if i in fine else cfg["it"] for i in range(16)]
    enc = qnn.Thermometer(16, cfg["thr"], types, learn=bool(cfg["learn"])).init_quantiles(xtr)
    layers, n = [enc], enc.out_bits
    for i, w in enumerate(int(w) for w in cfg["units"].split("-")):
        mapping, seed = "learned" if i == 0 else "random", cfg["seed"] * 100 + i
        if cfg["unit"] == "neuralut":
            layers.append(qnn.MLPLUTLayer(n, w, 6, mapping=mapping, seed=seed, hidden=cfg["hidden"]))
        elif cfg["unit"] == "dwn":
            layers.append(qnn.LUTLayer(n, w, 6, mapping=mapping, seed=seed, clamp=bool(cfg["clamp"]), efd=cfg["efd"]))
        else:
            sys.exit(f"unit={cfg['unit']!r}: 'dwn' or 'neuralut'")
        n = w
    if cfg["head"] not in ("popcount", "dense"):
        sys.exit(f"head={cfg['head']!r}: 'popcount' or 'dense'")
    model = torch.nn.Sequential(*layers, qnn.GroupSum(5) if cfg["head"] == "popcount" else qnn.QLinear(n, 5))
    t0 = time.time()
    qnn.fit_lutnet(model, xtr, ytr, epochs=cfg["epochs"], lr=cfg["lr"], tau=cfg["tau"] or None,
                   batch_size=cfg["bs"], seed=cfg["seed"], label=name)
    rec = {"name": name, "cfg": cfg, "seconds": round(time.time() - t0)}
    with torch.no_grad():
        out = model.eval()(torch.as_tensor(xte)).numpy().astype(np.float64)
    rec.update(acc=float((out.argmax(1) == yte).mean()), comparators=enc.comparators())
    if cfg["synth"]:
        design = rtl4ml.convert(model, clock_ns=2.5)
        if not np.array_equal(design.predict(xte), out):
            sys.exit(f"{name}: design.predict differs from the model")
        e = design.estimate(synth=True)
        rec.update(lut=e.lut, ff=e.ff, carry=e.carry, cycles=e.latency_cycles)
    print(json.dumps(rec))
    with open(cfg["log"], "a") as f:
        f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
