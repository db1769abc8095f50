"""The ``rtl4ml`` command line: convert, verify, estimate, demo.

Errors are reported in one line (set ``RTL4ML_DEBUG=1`` for the traceback). Every command accepts either a saved design (a folder written by ``convert`` / ``Design.write``,
or its ``design.json``) or a model file (``torch.save``-d ``nn.Sequential``, loaded without
unpickling arbitrary objects) plus the type options.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np


class CLIError(Exception):
    """An error to report in one line, without a traceback."""


def _types(values: list[str] | None):
    """``--weight-type T`` or repeated ``--weight-type LAYER=T`` (a per-layer dict)."""
    if not values:
        return None
    if all("=" not in v for v in values):
        if len(values) > 1:
            raise CLIError(f"give one type, or LAYER=TYPE pairs; got {values}")
        return values[0]
    out = {}
    for v in values:
        if "=" not in v:
            raise CLIError(f"mixing a plain type with LAYER=TYPE pairs: {v!r}")
        k, t = v.split("=", 1)
        out[k.strip()] = t.strip()
    return out


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="saved design folder / design.json, or a torch.save-d model file (.pt)")
    g = p.add_argument_group("conversion of a model file (ignored for a saved design)")
    g.add_argument("--input-type", action="append",
                   help="type of the inputs, e.g. 'fixed<16,6>', or INPUT=TYPE per input (repeatable)")
    g.add_argument("--input-shape", action="append",
                   help="shape of one sample, e.g. 30,3 (when the model does not fix it), or INPUT=30,3 (repeatable)")
    g.add_argument("--weight-type", action="append", help="weight type, or LAYER=TYPE (repeatable)")
    g.add_argument("--bias-type", action="append", help="bias type (default: the weight type), or LAYER=TYPE")
    g.add_argument("--result-type", action="append", help="type of every Linear's output, or LAYER=TYPE")
    g.add_argument("--clock-ns", type=float, default=5.0, help="target clock period in ns (default 5.0)")
    g.add_argument("--name", default="net", help="Verilog module name (default net)")
    g.add_argument("--cmvm", default="cse", choices=["cse", "plain"],
                   help="constant-matrix solver: cse shares partial sums (default), plain shares nothing")
    g.add_argument("--cmvm-depth-slack", default="1",
                   help="adder levels a layer may add for sharing (area/latency knob; default 1, 'none': unbounded)")


def _design(args):
    import rtl4ml

    path = Path(args.model)
    if not path.exists():
        raise CLIError(f"{path} does not exist")
    if path.is_dir() or path.suffix == ".json":
        return rtl4ml.load(path)

    def shape(text: str) -> tuple[int, ...]:
        try:
            return tuple(int(d) for d in text.split(",") if d.strip())
        except ValueError:
            raise CLIError(f"--input-shape takes sizes like 30,3; got {text!r}") from None

    shapes = _types(args.input_shape)
    shapes = {k: shape(v) for k, v in shapes.items()} if isinstance(shapes, dict) else shapes and shape(shapes)
    slack = args.cmvm_depth_slack
    try:
        slack = None if slack.lower() == "none" else int(slack)
    except ValueError:
        raise CLIError(f"--cmvm-depth-slack must be an integer or 'none', got {slack!r}") from None
    return rtl4ml.convert(path, input_type=_types(args.input_type), input_shape=shapes,
                          weight_type=_types(args.weight_type),
                          bias_type=_types(args.bias_type), result_type=_types(args.result_type),
                          clock_ns=args.clock_ns, name=args.name, cmvm=args.cmvm, cmvm_depth_slack=slack)


def _load_inputs(path: str, n: int | None, names: list[str]):
    """Inputs from a file. One input: an array (.npy, .csv, .txt, or array 'x' or the first
    of a .npz). Several inputs: a .npz with one array per input name."""
    p = Path(path)
    if not p.exists():
        raise CLIError(f"input file {p} does not exist")
    if len(names) > 1:
        if p.suffix != ".npz":
            raise CLIError(f"{p}: the design has {len(names)} inputs {names}: give a .npz with one array per name")
        with np.load(p, allow_pickle=False) as d:
            missing = [k for k in names if k not in d.files]
            if missing:
                raise CLIError(f"{p} has arrays {d.files}; the design's inputs are {names} (missing {missing})")
            return {k: d[k][:n] if n else d[k] for k in names}
    if p.suffix == ".npy":
        x = np.load(p, allow_pickle=False)
    elif p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as d:
            key = "x" if "x" in d.files else names[0] if names[0] in d.files else d.files[0]
            x = d[key]
    elif p.suffix in (".csv", ".txt"):
        x = np.loadtxt(p, delimiter="," if p.suffix == ".csv" else None, ndmin=2)
    else:
        raise CLIError(f"{p}: inputs must be .npy, .npz (array 'x' or the first one), .csv or .txt")
    return x[:n] if n else x


def cmd_convert(args) -> int:
    d = _design(args)
    out = d.write(args.output)
    a = d.estimate(synth=False)
    print(f"wrote {out / (d.name + '.v')}, {out / ('tb_' + d.name + '.cpp')}, {out / 'design.json'}")
    print(f"{a.adders} adders, {a.adder_bits} adder bits, latency {a.latency_cycles} cycles "
          f"({a.latency_ns:g} ns at {a.clock_ns:g} ns)")
    return 0


def cmd_verify(args) -> int:
    d = _design(args)
    x = _load_inputs(args.inputs, args.n, d.input_names)
    r = d.verify(x, jobs=args.jobs)
    print(r)
    return 0 if r.ok else 1


def cmd_estimate(args) -> int:
    d = _design(args)
    e = d.estimate(synth=not args.no_synth, family=args.family)
    print(json.dumps(e.as_dict(), indent=1) if args.json else e)
    return 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    run_demo(out=args.output, epochs=args.epochs, synth=not args.no_synth)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__
    p = argparse.ArgumentParser(prog="rtl4ml", description="Trained models to bit-exact, pipelined, verified Verilog.")
    p.add_argument("--version", action="version", version=f"rtl4ml {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("convert", help="convert a model and write Verilog, test bench and design.json")
    _add_model_args(c)
    c.add_argument("-o", "--output", required=True, help="output folder")
    c.set_defaults(func=cmd_convert)

    v = sub.add_parser("verify", help="simulate the RTL with Verilator and compare every bit with the emulator")
    _add_model_args(v)
    v.add_argument("--inputs", required=True, help="inputs (N, *input shape): .npy, .npz, .csv or .txt; "
                   "a .npz with one array per input name for several inputs")
    v.add_argument("-n", type=int, default=None, help="use only the first N samples")
    v.add_argument("--jobs", type=int, default=None, help="parallel compile jobs for the Verilator build")
    v.set_defaults(func=cmd_verify)

    e = sub.add_parser("estimate", help="resources and latency (Yosys synth_xilinx, or analytic)")
    _add_model_args(e)
    e.add_argument("--no-synth", action="store_true", help="analytic estimate only (instant)")
    e.add_argument("--family", default="xcup", help="synth_xilinx family (default xcup, UltraScale+)")
    e.add_argument("--json", action="store_true", help="print JSON")
    e.set_defaults(func=cmd_estimate)

    m = sub.add_parser("demo", help="train, quantize, convert, verify and synthesize a jet tagger")
    m.add_argument("-o", "--output", default="rtl4ml-demo", help="output folder (default ./rtl4ml-demo)")
    m.add_argument("--epochs", type=int, default=60, help="training epochs (default 60)")
    m.add_argument("--no-synth", action="store_true", help="skip Yosys synthesis")
    m.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CLIError, ValueError, TypeError, FileNotFoundError, ImportError, RuntimeError) as e:
        if os.environ.get("RTL4ML_DEBUG"):
            raise
        print(f"rtl4ml {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
