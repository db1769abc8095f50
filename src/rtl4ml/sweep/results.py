"""A sweep's results directory: one record per trial, the table, the Pareto front, the best designs.

Layout of ``out/``::

    sweep.json             the sweep's settings and search space
    trials/<id>.json       one record per finished trial (written as each one finishes)
    designs/<id>/          that trial's design.json and Verilog
    results.csv, .json     every trial: configuration, figures, verify status, seeds, errors
    front.csv, .json       the Pareto front of the sweep's objectives
    front/<k>_<id>/        the front's designs (design.json + Verilog), best first
    front/report.html      the HTML report comparing them (when matplotlib is installed)
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

#: Record figures in the table, in this order (the trial's parameters come after ``status``).
FIGURES = ("seed", "float_accuracy", "accuracy", "emulator_exact", "ebops", "adders", "adder_bits", "adder_depth",
           "luts_estimate", "register_bits", "multipliers", "lut", "ff", "carry", "dsp", "logic_depth",
           "latency_cycles", "latency_ns", "clock_ns", "critical_path_ns", "verify", "verify_samples",
           "design_hash", "synth_cached", "calibrated_by_sweep")
TAIL = ("error", "host", "pid")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_record(out: Path, record: dict) -> dict:
    """Write a finished trial's design files and record; returns the record without the design."""
    record = dict(record)
    design = record.pop("design", None)
    tid = record["trial_id"]
    if design is not None:
        d = out / "designs" / tid
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{design['name']}.v").write_text(design["verilog"])
        _atomic_write(d / "design.json", json.dumps(design["json"], indent=1) + "\n")
        record["design_dir"] = str(Path("designs") / tid)
    _atomic_write(out / "trials" / f"{tid}.json", json.dumps(record, indent=1, default=str) + "\n")
    return record


def load_records(out: Path) -> dict[str, dict]:
    """The finished trials of a results directory, by trial id (unreadable files are ignored)."""
    recs = {}
    for p in sorted((out / "trials").glob("*.json")):
        try:
            r = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(r, dict) and r.get("status") in ("ok", "failed"):
            recs[r["trial_id"]] = r
    return recs


def rows(records: list[dict], params: list[str]) -> tuple[list[str], list[dict]]:
    """Table columns and flat rows (lists and dicts as JSON text)."""
    cols = ["index", "trial_id", "status", "stage"] + [p for p in params if p not in FIGURES] + list(FIGURES)
    cols += [f"{s}_s" for s in ("train", "convert", "verify", "estimate", "synth", "total")] + list(TAIL)
    out = []
    for r in records:
        row = {k: r.get(k) for k in cols}
        for p in params:
            row[p] = r.get("config", {}).get(p)
        for s in ("train", "convert", "verify", "estimate", "synth", "total"):
            row[f"{s}_s"] = r.get("seconds", {}).get(s)
        out.append({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in row.items()})
    return cols, out


def write_table(path_stem: Path, records: list[dict], params: list[str]) -> None:
    cols, table = rows(records, params)
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    tmp = path_stem.with_name(f".{path_stem.name}.csv.tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for row in table:
            w.writerow({k: "" if v is None else v for k, v in row.items()})
    os.replace(tmp, path_stem.with_suffix(".csv"))
    _atomic_write(path_stem.with_suffix(".json"), json.dumps(records, indent=1, default=str) + "\n")


def eligible(record: dict, objectives: dict) -> bool:
    """A finished, verified (or unverified by choice) trial with every objective measured."""
    return (record.get("status") == "ok" and record.get("verify") in ("ok", "skipped")
            and all(record.get(k) is not None for k in objectives))


def dominates(a: dict, b: dict, objectives: dict) -> bool:
    better = False
    for k, d in objectives.items():
        x, y = (a[k], b[k]) if d == "max" else (-a[k], -b[k])
        if x < y:
            return False
        better |= x > y
    return better


def pareto_front(records: list[dict], objectives: dict) -> list[dict]:
    """The records not dominated on ``objectives`` ({metric: "max"|"min"}), best first on
    the first objective; of equal records the first is kept."""
    cands = [r for r in records if eligible(r, objectives)]
    front = []
    for r in cands:
        if any(dominates(o, r, objectives) for o in cands):
            continue
        if any(all(o[k] == r[k] for k in objectives) for o in front):
            continue
        front.append(r)
    first, d = next(iter(objectives.items()))
    return sorted(front, key=lambda r: -r[first] if d == "max" else r[first])


def format_table(records: list[dict], params: list[str], synth: bool) -> str:
    """A readable text table of records (the front, or all trials)."""
    head = ["trial", *params, "acc %", "float %", "EBOPs", "adders", "LUT est."]
    head += ["LUT", "FF"] if synth else []
    head += ["cycles", "ns", "verify", "status"]
    body = []
    for r in records:
        c = r.get("config", {})
        f = lambda v, fmt="": "-" if v is None else format(v, fmt)  # noqa: E731
        cells = [r["trial_id"][:8]] + [json.dumps(c.get(p)) if isinstance(c.get(p), list) else
                                       f(c.get(p), "g" if isinstance(c.get(p), float) else "") for p in params]
        cells += [f(None if r.get("accuracy") is None else 100 * r["accuracy"], ".2f"),
                  f(None if r.get("float_accuracy") is None else 100 * r["float_accuracy"], ".2f"),
                  f(r.get("ebops"), ".0f"), f(r.get("adders")), f(r.get("luts_estimate"))]
        cells += [f(r.get("lut")), f(r.get("ff"))] if synth else []
        cells += [f(r.get("latency_cycles")), f(r.get("latency_ns"), "g"), f(r.get("verify")), r.get("status", "")]
        body.append(cells)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(str(x).rjust(w) for x, w in zip(row, widths)) for row in [head, *body]]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def write_front(out: Path, front: list[dict]) -> list[Path]:
    """Copy the front's designs to ``out/front/<k>_<id>/``, best first; returns the folders."""
    top = out / "front"
    if top.exists():
        shutil.rmtree(top)
    top.mkdir(parents=True)
    folders = []
    for k, r in enumerate(front, 1):
        src = out / r["design_dir"] if r.get("design_dir") else None
        if src is None or not src.exists():
            continue
        dst = top / f"{k:02d}_{r['trial_id']}"
        shutil.copytree(src, dst)
        folders.append(dst)
    return folders


def write_report(out: Path, folders: list[Path], data: dict | None) -> Path | None:
    """The HTML report comparing the front's designs (None without matplotlib or designs)."""
    if not folders:
        return None
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return None
    import rtl4ml
    from ..report import write_report as report
    designs = [rtl4ml.load(f) for f in folders]
    x = y = None
    if data is not None:
        x, y = data["x_test"], data["y_test"]
    return report(designs, out / "front" / "report.html", x, y, verify=False, labels=[f.name for f in folders])
