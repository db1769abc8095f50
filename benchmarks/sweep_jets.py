"""A 12-point beta x width sweep of the jet tagger on Ray (2 workers) against the same trials serially.

The trials are those of ``examples/sweep_jets.yaml`` (4 EBOPs coefficients x 3 network
shapes, the built-in QAT trainer on the shipped 10,000-jet sample, RTL verified on 1,000
held-out jets, Yosys synth_xilinx per trial). Each run gets its own empty results directory
and its own empty cache (``RTL4ML_CACHE``), so neither reuses the other's Verilator builds
or Yosys results. Prints both wall times, their ratio, whether the two runs agree trial by
trial, and the Pareto table (accuracy up, Yosys LUTs down).

    python benchmarks/sweep_jets.py                    # about 15 minutes on 2 cores
    python benchmarks/sweep_jets.py --epochs 5 --no-synth
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "examples" / "sweep_jets.yaml"


def run(data: dict, out: Path, backend: str, workers: int) -> tuple[float, object]:
    from rtl4ml.sweep import from_dict, run_sweep
    if out.exists():
        shutil.rmtree(out)
    cache = out.parent / f"{out.name}-cache"
    if cache.exists():
        shutil.rmtree(cache)
    os.environ["RTL4ML_CACHE"] = str(cache)
    t0 = time.perf_counter()
    res = run_sweep(from_dict(data, base_dir=CONFIG.parent), out, backend=backend, workers=workers,
                    log=lambda m: print(f"[{backend}] {m}", flush=True))
    return time.perf_counter() - t0, res


def main(argv: list[str] | None = None) -> int:
    import yaml
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=None, help="QAT and float epochs (default: the config's, 20)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-synth", action="store_true", help="analytic estimates only")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "sweep_jets")
    args = ap.parse_args(argv)
    data = yaml.safe_load(CONFIG.read_text())
    if args.epochs is not None:
        data["params"].update(epochs=args.epochs, float_epochs=args.epochs)
    if args.no_synth:
        data.update(synth=False, objectives={"accuracy": "max", "luts_estimate": "min"})
    data.pop("out", None)
    args.out.mkdir(parents=True, exist_ok=True)
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / "rtl4ml-sweep-bench"

    t_ray, ray_res = run(data, scratch / "ray", "ray", args.workers)
    t_serial, serial_res = run(data, scratch / "serial", "serial", 1)

    keys = ("accuracy", "ebops", "adders", "luts_estimate", "lut", "ff", "latency_cycles", "verify")
    by_id = {r["trial_id"]: r for r in serial_res.records}
    same = all(all(r.get(k) == by_id.get(r["trial_id"], {}).get(k) for k in keys) for r in ray_res.records)
    busy = sum(r.get("seconds", {}).get("total", 0) for r in ray_res.records)
    lines = [
        f"{len(ray_res.records)} trials ({len(ray_res.failed)} failed on Ray, {len(serial_res.failed)} serially)",
        f"Ray, {args.workers} workers: {t_ray:.0f} s wall (including starting Ray); trials summed {busy:.0f} s",
        f"serial:          {t_serial:.0f} s wall",
        f"wall time ratio serial / Ray = {t_serial / t_ray:.2f}",
        f"the two runs agree on {', '.join(keys)} for every trial: {same}",
        "",
        "Pareto front (Ray run):",
        ray_res.table(),
        "",
        "all trials (Ray run):",
        ray_res.table(front_only=False),
        "",
        f"command: python benchmarks/sweep_jets.py {' '.join(argv if argv is not None else sys.argv[1:])}",
    ]
    text = "\n".join(lines)
    print("\n" + text)
    (args.out / "summary.txt").write_text(text + "\n")
    (args.out / "results.json").write_text(json.dumps(
        {"ray_wall_s": t_ray, "serial_wall_s": t_serial, "ratio": t_serial / t_ray, "workers": args.workers,
         "agree": same, "records": ray_res.records, "front": [r["trial_id"] for r in ray_res.front]},
        indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
