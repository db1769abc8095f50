"""The ``rtl4ml`` command line: convert, verify, estimate, report, demo, sweep.

Errors are reported in one line (set ``RTL4ML_DEBUG=1`` for the traceback), warnings too
(``rtl4ml convert: warning: ...``). Every command accepts either a saved design (a folder
written by ``convert`` / ``Design.write``, or its ``design.json``) or a model file
(``torch.save``-d model, loaded without unpickling arbitrary objects) plus the type options.
Hardware options (``--clock-ns``, ``--name``, ``--cmvm``, ``--cmvm-depth-slack``) also apply
to a saved design; type options need a model file and are refused for a saved design.
``--quiet`` / ``--verbose`` go before or after the command. Each command's ``--help`` ends
with examples (:data:`EXAMPLES`), which ``tests/test_cli_help.py`` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from .design import FORMATS
from .sweep.cli import EXAMPLES as SWEEP_EXAMPLES


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


#: Options that shape the hardware: applied to a model file's conversion or to a saved design.
HARDWARE_OPTIONS = ("clock_ns", "name", "cmvm", "cmvm_depth_slack")
#: Options that need a model file (a saved design's types are fixed).
TYPE_OPTIONS = ("input_type", "input_shape", "weight_type", "bias_type", "result_type")


def _flag(option: str) -> str:
    return "--" + option.replace("_", "-")


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return n


def _add_model_args(p: argparse.ArgumentParser, optional: bool = False) -> None:
    p.add_argument("model", nargs="?" if optional else None,
                   help="saved design folder / design.json, a torch.save-d model file (.pt), an ONNX/QONNX model "
                        "(.onnx), a Keras 3 / HGQ2 model (.keras), an XGBoost model (.json, .ubj) or a scikit-learn "
                        "model saved with skops (.skops)")
    g = p.add_argument_group("conversion options", "Type options need a model file; --clock-ns, --name and --cmvm* "
                             "also rebuild a saved design with new hardware options.")
    g.add_argument("--input-type", action="append",
                   help="type of the inputs, e.g. 'fixed<16,6>', or INPUT=TYPE per input (repeatable)")
    g.add_argument("--input-shape", action="append",
                   help="shape of one sample, e.g. 30,3 (when the model does not fix it), or INPUT=30,3 (repeatable)")
    g.add_argument("--weight-type", action="append", help="weight type, or LAYER=TYPE (repeatable)")
    g.add_argument("--bias-type", action="append", help="bias type (default: the weight type), or LAYER=TYPE")
    g.add_argument("--result-type", action="append", help="type of every Linear's output, or LAYER=TYPE")
    g.add_argument("--format", default=None, choices=list(FORMATS),
                   help="what the model file is (default: detected from its name and first bytes)")
    g.add_argument("--clock-ns", type=float, default=None, help="target clock period in ns (default 5.0)")
    g.add_argument("--name", default=None, help="Verilog module name (default net)")
    g.add_argument("--cmvm", default=None, choices=["cse", "plain"],
                   help="constant-matrix solver: cse shares partial sums (default), plain shares nothing")
    g.add_argument("--cmvm-depth-slack", default=None,
                   help="adder levels a layer may add for sharing (area/latency knob; default 1, 'none': unbounded)")


def _is_saved_design(path: Path) -> bool:
    if path.suffix == ".json" and path.is_file():
        from .frontends.trees import tree_file_kind
        return tree_file_kind(path) is None   # an XGBoost .json is a model file
    return path.is_dir() or path.suffix == ".json"


def _hardware_options(args) -> dict:
    """The hardware options given on the command line (defaults are not 'given')."""
    given = {k: getattr(args, k) for k in HARDWARE_OPTIONS if getattr(args, k, None) is not None}
    if "cmvm_depth_slack" in given:
        slack = given["cmvm_depth_slack"]
        try:
            given["cmvm_depth_slack"] = None if slack.lower() == "none" else int(slack)
        except ValueError:
            raise CLIError(f"--cmvm-depth-slack must be an integer or 'none', got {slack!r}") from None
    return given


def _design(args):
    import rtl4ml

    if getattr(args, "expr", None):
        if args.model is not None:
            raise CLIError(f"give a model file or --expr, not both (got {args.model} and --expr)")
        from .frontends.expressions import from_expression
        other = [_flag(o) for o in TYPE_OPTIONS if o != "input_type" and getattr(args, o) is not None]
        if other:
            raise CLIError(f"{', '.join(other)}: not options of an expression (it takes --input-type)")
        graph = from_expression(args.expr if len(args.expr) > 1 else args.expr[0], _types(args.input_type))
        return rtl4ml.convert(graph, **_hardware_options(args))
    if args.model is None:
        raise CLIError("give a model file, a saved design, or --expr")
    path = Path(args.model)
    if not path.exists():
        raise CLIError(f"{path} does not exist")
    hardware = _hardware_options(args)
    fmt = getattr(args, "format", None)
    if fmt == "design" or (fmt is None and _is_saved_design(path)):
        typed = [_flag(o) for o in TYPE_OPTIONS if getattr(args, o) is not None]
        if typed:
            raise CLIError(f"{', '.join(typed)}: {path} is a saved design, whose types are fixed; type options apply "
                           "when converting a model file (convert the model again to change them)")
        d = rtl4ml.load(path)
        return d.with_options(**hardware) if hardware else d

    def shape(text: str) -> tuple[int, ...]:
        try:
            return tuple(int(d) for d in text.split(",") if d.strip())
        except ValueError:
            raise CLIError(f"--input-shape takes sizes like 30,3; got {text!r}") from None

    shapes = _types(args.input_shape)
    shapes = {k: shape(v) for k, v in shapes.items()} if isinstance(shapes, dict) else shapes and shape(shapes)
    return rtl4ml.convert(path, input_type=_types(args.input_type), input_shape=shapes,
                          weight_type=_types(args.weight_type),
                          bias_type=_types(args.bias_type), result_type=_types(args.result_type), format=fmt,
                          **hardware)


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
            return {k: _first(d[k], n, f"{p} array {k!r}") for k in names}
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
    return _first(x, n, str(p))


def _first(x: np.ndarray, n: int | None, what: str) -> np.ndarray:
    """The first ``n`` samples of ``x`` (all for None); refuses an array without samples."""
    if x.ndim == 0 or len(x) == 0:
        raise CLIError(f"{what} holds no samples (shape {x.shape})")
    return x if n is None else x[:n]


def cmd_convert(args) -> int:
    if args.inputs and args.model is not None and _is_saved_design(Path(args.model)):
        raise CLIError("--inputs compares the design with the float model, which a saved design does not keep; "
                       "give the model file")
    d = _design(args)
    x = _load_inputs(args.inputs, None, d.input_names) if args.inputs else None
    out = d.write(args.output)
    a = d.estimate(synth=False)
    print(f"wrote {out / (d.name + '.v')}, {out / ('tb_' + d.name + '.cpp')}, {out / 'design.json'}")
    print(f"{a.adders} adders, {a.adder_bits} adder bits, latency {a.latency_cycles} cycles "
          f"({a.latency_ns:g} ns at {a.clock_ns:g} ns)")
    if x is not None:
        print(d.fidelity(x))
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
    run_demo(out=args.output, epochs=args.epochs, synth=not args.no_synth, fast=args.fast)
    return 0


def cmd_report(args) -> int:
    """One HTML report of a saved design, or the comparison of several."""
    import rtl4ml
    from .report import write_report

    paths = [Path(p) for p in args.designs]
    folders = [p if p.is_dir() else p.parent for p in paths]
    designs = [rtl4ml.load(p) for p in paths]
    x = _load_inputs(args.inputs, None, designs[0].input_names) if args.inputs else None
    y = None
    if args.labels:
        if x is None:
            raise CLIError("--labels needs --inputs")
        y = np.load(args.labels, allow_pickle=False)
        if hasattr(y, "files"):   # a .npz: array 'y', else the first
            y = y["y" if "y" in y.files else y.files[0]]
    if args.output:
        out = Path(args.output)
    else:
        out = folders[0] / "report.html" if len(paths) == 1 else Path("report.html")
    labels = [f.resolve().name for f in folders]
    written = write_report(designs, out, x, y, synth=args.synth, verify=not args.no_verify,
                           labels=labels if len(set(labels)) == len(labels) else None)
    print(f"wrote {written}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__
    p = argparse.ArgumentParser(prog="rtl4ml", description="Trained models to bit-exact, pipelined, verified Verilog.")
    p.add_argument("--version", action="version", version=f"rtl4ml {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("convert", help="convert a model and write Verilog, test bench and design.json")
    _add_model_args(c, optional=True)
    c.add_argument("--expr", action="append", metavar="EXPRESSION",
                   help="a closed-form expression in x0, x1, ... instead of a model, e.g. 'x0*x1 + sin(x2)' "
                        "(repeatable: one output each; docs/trees.md)")
    c.add_argument("-o", "--output", required=True, help="output folder")
    c.add_argument("--inputs", help="float inputs (.npy, .npz, .csv, .txt): print how closely the design follows "
                   "the float model on them (correlation, differences, argmax agreement)")
    c.set_defaults(func=cmd_convert)

    v = sub.add_parser("verify", help="simulate the RTL with Verilator and compare every bit with the emulator")
    _add_model_args(v)
    v.add_argument("--inputs", required=True, help="inputs (N, *input shape): .npy, .npz, .csv or .txt; "
                   "a .npz with one array per input name for several inputs")
    v.add_argument("-n", type=_positive_int, default=None, help="use only the first N samples")
    v.add_argument("--jobs", type=_positive_int, default=None, help="parallel compile jobs for the Verilator build")
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
    m.add_argument("--fast", action="store_true",
                   help="the quick path only: post-training quantization, without QAT fine-tuning and the report")
    m.set_defaults(func=cmd_demo)

    r = sub.add_parser("report", help="an HTML report of a saved design, or a comparison of several")
    r.add_argument("designs", nargs="+", metavar="DIR", help="saved design folder(s) or design.json file(s)")
    r.add_argument("--inputs", help="inputs for the accuracy and verification sections (.npy, .npz, .csv, .txt)")
    r.add_argument("--labels", help="integer class labels (.npy, or .npz array 'y'): accuracy, ROC, Pareto plot")
    r.add_argument("-o", "--output", help="HTML file (default DIR/report.html; ./report.html for several)")
    r.add_argument("--synth", action="store_true", help="also run Yosys (minutes for large designs; cached)")
    r.add_argument("--no-verify", action="store_true", help="skip the Verilator simulation of the inputs")
    r.set_defaults(func=cmd_report)
    from .sweep.cli import add_parser as add_sweep_parser
    add_sweep_parser(sub)
    _add_global_flags(p, sub)
    return p


#: Each command's examples for its ``--help``: (what it does, command line). The command lines
#: use model.pt (a torch.save-d model with layers '0' and '2'), x.npy and build/net, and
#: ``tests/test_cli_help.py`` runs every one of them in that order.
EXAMPLES = {
    "convert": [
        ("a torch.save-d model to Verilog at 400 MHz",
         ("rtl4ml convert model.pt --input-type 'fixed<16,6>' --weight-type 'fixed<8,3,RND,SAT>' --clock-ns 2.5 "
          "-o build/net")),
        ("and compare it with the float model on the inputs x.npy",
         ("rtl4ml convert model.pt --input-type 'fixed<16,6>' --weight-type 'fixed<8,3,RND,SAT>' -o build/net "
          "--inputs x.npy")),
        ("one weight type per layer (names from model.named_modules())",
         ("rtl4ml convert model.pt --input-type 'fixed<16,6>' --weight-type 0='fixed<8,3,RND,SAT>' "
          "--weight-type 2='fixed<6,2,RND,SAT>' -o build/net")),
        ("a saved design rebuilt for another clock, under another module name",
         "rtl4ml convert build/net --clock-ns 2 --name net_500mhz -o build/net_500mhz"),
        ("a symbolic-regression formula (x0, x1, x2: the input columns); XGBoost .json/.ubj and .skops files "
         "convert like model.pt, --weight-type being the leaf type",
         "rtl4ml convert --expr 'x0*x1 + sin(x2)' --input-type 'fixed<10,4>' -o build/expr"),
    ],
    "verify": [
        ("simulate the RTL on every sample of x.npy, compare every output bit with the emulator",
         "rtl4ml verify build/net --inputs x.npy"),
        ("the first 100 samples only", "rtl4ml verify build/net --inputs x.npy -n 100"),
    ],
    "estimate": [
        ("instant analytic figures (adders, adder bits, latency, per layer)", "rtl4ml estimate build/net --no-synth"),
        ("Yosys synth_xilinx figures (LUT, FF, DSP, ...) as JSON", "rtl4ml estimate build/net --json"),
    ],
    "report": [
        ("build/net/report.html, with the accuracy and verification sections on x.npy",
         "rtl4ml report build/net --inputs x.npy"),
    ],
    "demo": [
        ("the whole flow on the shipped jets (a few minutes)", "rtl4ml demo"),
        ("a quick run without synthesis, into ./demo", "rtl4ml demo --fast --no-synth -o demo"),
    ],
    "sweep": SWEEP_EXAMPLES,
}


def _add_global_flags(p: argparse.ArgumentParser, sub) -> None:
    """--quiet / --verbose before or after any command; each command's description and examples."""
    for parser, default in [(p, False)] + [(c, argparse.SUPPRESS) for c in sub.choices.values()]:
        parser.add_argument("-q", "--quiet", action="store_true", default=default,
                            help="no progress display")
        parser.add_argument("-v", "--verbose", action="store_true", default=default,
                            help="show the output of Verilator and Yosys as they run")
    for action in sub._choices_actions:   # the one-line help of each command opens its --help
        parser = sub.choices[action.dest]
        parser.description = parser.description or action.help[0].upper() + action.help[1:] + "."
    for name, c in sub.choices.items():
        if name in EXAMPLES:
            c.formatter_class = argparse.RawDescriptionHelpFormatter
            c.epilog = "examples:\n" + "\n".join(f"  # {what}\n  {cmd}" for what, cmd in EXAMPLES[name])


def main(argv: list[str] | None = None) -> int:
    from . import progress
    from .fidelity import Rtl4mlWarning

    args = build_parser().parse_args(argv)
    progress.configure(quiet=args.quiet, verbose=args.verbose)
    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, Rtl4mlWarning):
            print(f"rtl4ml {args.command}: warning: {message}", file=sys.stderr)
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", Rtl4mlWarning)
        warnings.showwarning = show
        try:
            return args.func(args)
        except (CLIError, ValueError, TypeError, OSError, ImportError, RuntimeError) as e:
            if os.environ.get("RTL4ML_DEBUG"):
                raise
            print(f"rtl4ml {args.command}: error: {e}", file=sys.stderr)
            return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
