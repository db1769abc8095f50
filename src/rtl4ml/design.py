"""The user-facing Design: a converted model that predicts, writes, verifies and estimates.

A Design holds only the Graph and the options that shape the hardware; the Netlist, the
pipeline and the Verilog are derived from them on first use, so a Design saved as JSON
and loaded again produces the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ._version import __version__
from .backends.verilog import check_module_name, emit_verilog
from .estimate.analytic import LayerStats, adder_stats
from .fidelity import Fidelity, QuantizationWarning, TimingWarning, compare_outputs, input_range_warnings, warn
from .graph import Graph, lower_graph
from .netlist.execute import execute, split_outputs
from .netlist.ir import Netlist
from .passes.dce import simplify
from .passes.pipeline import DEFAULT_DELAY_MODEL, PipelineReport, schedule_pipeline

DESIGN_FORMAT = "rtl4ml-design/1"


@dataclass(frozen=True)
class Mismatch:
    sample: int
    output: int     # element of all outputs, bus after bus
    expected: int   # emulator code
    got: int        # RTL code
    width: int
    where: str = ""  # output name and element index, e.g. "y[3]"

    def __str__(self) -> str:
        w = max(self.width, 1)
        what = f"output {self.output}" + (f" ({self.where})" if self.where else "")
        return (f"sample {self.sample}, {what}: emulator {self.expected} "
                f"(0b{self.expected % (1 << w):0{w}b}) != RTL {self.got} (0b{self.got % (1 << w):0{w}b})")


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    n_samples: int
    n_mismatch: int           # samples with at least one differing output bit
    outputs: object           # RTL outputs as float64: an array, or a tuple (dict) for several outputs
    first_mismatch: Mismatch | None
    bad_valid_cycles: int

    def __str__(self) -> str:
        if self.ok:
            return f"RTL == emulator on all {self.n_samples} samples (every output bit)"
        msg = f"RTL differs from the emulator on {self.n_mismatch} of {self.n_samples} samples"
        if self.first_mismatch:
            msg += f"; first: {self.first_mismatch}"
        if self.bad_valid_cycles:
            msg += f"; valid_out wrong on {self.bad_valid_cycles} cycles"
        return msg


@dataclass(frozen=True)
class Estimate:
    """Analytic figures (always) and Yosys figures (``None`` when ``synth=False``)."""

    adders: int
    adder_bits: int
    adder_depth: int
    register_bits: int
    latency_cycles: int
    clock_ns: float
    latency_ns: float
    critical_path_ns: float
    lut: int | None = None
    ff: int | None = None
    carry: int | None = None
    dsp: int | None = None
    bram: float | None = None
    srl: int | None = None
    logic_depth: int | None = None
    synth_seconds: float | None = None
    luts_estimate: int = 0
    multipliers: int = 0
    layers: tuple[LayerStats, ...] = ()   # analytic figures per Graph node

    def as_dict(self) -> dict:
        return asdict(self)

    def layer_table(self) -> str:
        """The per-layer figures as an aligned text table."""
        head = ("layer", "adders", "adder bits", "LUT est.", "reg bits", "mults", "depth")
        rows = [(s.layer, s.adders, s.adder_bits, s.luts, s.register_bits, s.multipliers, s.adder_depth)
                for s in self.layers]
        widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
        fmt = lambda r: "  ".join(str(v).ljust(w) if i == 0 else str(v).rjust(w)  # noqa: E731
                                  for i, (v, w) in enumerate(zip(r, widths)))
        return "\n".join([fmt(head)] + [fmt(r) for r in rows])

    def __str__(self) -> str:
        rows = [(k, v) for k, v in self.as_dict().items() if v is not None and k != "layers"]
        return "\n".join([f"{k:>17}: {v}" for k, v in rows] + ["", self.layer_table()])


class Design:
    """A converted model. Create with :func:`rtl4ml.convert` or :func:`rtl4ml.load`.

    ``model``: the model it was converted from (a torch module), the default reference of
    :meth:`fidelity`; None for a design built from a Graph or loaded from a file. It is kept
    as it is (changes made to it afterwards show in :meth:`fidelity`) and never saved.
    """

    def __init__(self, graph: Graph, name: str = "net", clock_ns: float = 5.0, cmvm: str = "cse",
                 valid: bool = True, cmvm_depth_slack: int | None = 1) -> None:
        check_module_name(name)
        if not (isinstance(clock_ns, (int, float)) and clock_ns > 0):
            raise ValueError(f"clock_ns must be a positive number of nanoseconds, got {clock_ns!r}")
        m = DEFAULT_DELAY_MODEL
        if clock_ns < m.adder_ns:
            warn(f"clock_ns={clock_ns:g} is shorter than one adder in the delay model ({m.adder_ns:g} ns + "
                 f"{m.adder_ns_per_bit:g} ns per bit): every adder gets a pipeline stage of its own, so the design "
                 "needs very many stages and still cannot meet this clock", TimingWarning)
        _ = graph.types  # type-check now: errors name the node at convert time, not later
        self.graph = graph
        self.name = name
        self.clock_ns = float(clock_ns)
        self.cmvm = cmvm
        self.valid = valid
        if cmvm_depth_slack is not None and not (isinstance(cmvm_depth_slack, int) and cmvm_depth_slack >= 0):
            raise ValueError(f"cmvm_depth_slack must be a non-negative integer or None, got {cmvm_depth_slack!r}")
        self.cmvm_depth_slack = cmvm_depth_slack
        self.model = None

    def with_options(self, **options) -> "Design":
        """The same Graph as a new Design with hardware options changed (``name``,
        ``clock_ns``, ``cmvm``, ``cmvm_depth_slack``, ``valid``); it keeps :attr:`model`."""
        current = dict(name=self.name, clock_ns=self.clock_ns, cmvm=self.cmvm, valid=self.valid,
                       cmvm_depth_slack=self.cmvm_depth_slack)
        unknown = sorted(set(options) - set(current))
        if unknown:
            raise TypeError(f"with_options() takes {sorted(current)}, not {unknown}")
        d = Design(self.graph, **{**current, **options})
        d.model = self.model
        return d

    def __repr__(self) -> str:
        shape = lambda t: "x".join(map(str, t.shape)) or "scalar"  # noqa: E731
        ins = ", ".join(shape(self.graph.types[n.name]) for n in self.graph.inputs)
        outs = ", ".join(shape(t) for t in self.graph.output_types)
        return f"<Design {self.name!r}: {ins} -> {outs}, {len(self.graph.nodes)} nodes, clock {self.clock_ns} ns>"

    @property
    def input_names(self) -> list[str]:
        return [n.name for n in self.graph.inputs]

    @property
    def output_names(self) -> list[str]:
        return list(self.graph.outputs)

    # ------------------------------------------------------------------ derived hardware

    @cached_property
    def _pipelined(self) -> tuple[Netlist, PipelineReport]:
        nl = lower_graph(self.graph, cmvm=self.cmvm, depth_slack=self.cmvm_depth_slack)
        nl, report = schedule_pipeline(simplify(nl), self.clock_ns)
        if not report.meets_timing:
            warn(f"the design cannot meet clock_ns={self.clock_ns:g}: its slowest operation alone takes "
                 f"{report.critical_path_ns:.3g} ns in the delay model, and a pipeline stage cannot split it",
                 TimingWarning)
        return nl, report

    @property
    def netlist(self) -> Netlist:
        """The pipelined Netlist (registers included)."""
        return self._pipelined[0]

    @property
    def pipeline(self) -> PipelineReport:
        return self._pipelined[1]

    @cached_property
    def verilog(self) -> str:
        return emit_verilog(self.netlist, self.name, self.valid)

    # ------------------------------------------------------------------ behaviour

    def quantize_input(self, x) -> np.ndarray:
        """Input codes of a single-input design."""
        return self.graph.quantize_input(x)

    def quantize_inputs(self, x) -> list[np.ndarray]:
        """Input codes, one array per input (``x``: an array, a tuple, or a dict by name)."""
        return self.graph.quantize_inputs(x)

    def predict(self, x):
        """Bit-exact values of the hardware's outputs (float64), from the fast emulator.

        One output: an array of shape (N, *output shape). Several: a tuple in output order,
        or a dict by output name when ``x`` is a dict by input name.
        """
        return self.graph.predict(x)

    def _shaped(self, arrays: list[np.ndarray], like_dict: bool):
        if len(arrays) == 1:
            return arrays[0]
        return dict(zip(self.graph.outputs, arrays)) if like_dict else tuple(arrays)

    def predict_codes(self, x):
        """The integer codes of the outputs for inputs ``x`` (emulator), shaped like :meth:`predict`."""
        codes = self.graph.emulate_codes(self.quantize_inputs(x))
        return self._shaped([codes[o] for o in self.graph.outputs], isinstance(x, dict))

    def execute_netlist(self, x):
        """Output codes from executing the Netlist (slower than :meth:`predict_codes`; for checks)."""
        flat = execute(self.netlist, self.quantize_inputs(x))
        return self._shaped(split_outputs(self.netlist, flat), isinstance(x, dict))

    def _expected_flat(self, xq: list[np.ndarray]) -> np.ndarray:
        codes = self.graph.emulate_codes(xq)
        return np.concatenate([codes[o].reshape(len(xq[0]), -1) for o in self.graph.outputs], axis=1)

    def _to_float(self, codes: np.ndarray) -> list[np.ndarray]:
        f = np.array([t.fraction for t in self.netlist.output_types])
        return split_outputs(self.netlist, np.ldexp(codes.astype(np.float64), -f))

    def _where(self, j: int) -> str:
        """Output name and element index of element ``j`` of all outputs."""
        for bus in self.netlist.output_buses:
            if j < len(bus.slots):
                idx = np.unravel_index(j, bus.shape) if bus.shape else ()
                return f"{bus.name}[{', '.join(str(int(i)) for i in idx)}]"
            j -= len(bus.slots)
        return ""

    # ------------------------------------------------------------------ artifacts

    def write(self, path: str | Path) -> Path:
        """Write ``<name>.v``, the Verilator bench ``tb_<name>.cpp`` and ``design.json`` to ``path``."""
        from .verify.verilator import testbench
        out = Path(path)
        if out.exists() and not out.is_dir():
            raise FileExistsError(f"cannot write the design to {out}: it is a file, not a folder (the design is "
                                  f"written as {self.name}.v, tb_{self.name}.cpp and design.json in a folder)")
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{self.name}.v").write_text(self.verilog)
        (out / f"tb_{self.name}.cpp").write_text(testbench(self.netlist, self.name, self.valid))
        (out / "design.json").write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return out

    def to_json(self) -> dict:
        return {"format": DESIGN_FORMAT, "rtl4ml": __version__, "name": self.name, "clock_ns": self.clock_ns,
                "cmvm": self.cmvm, "cmvm_depth_slack": self.cmvm_depth_slack, "valid": self.valid,
                "graph": self.graph.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> "Design":
        if data.get("format") != DESIGN_FORMAT:
            raise ValueError(f"not an rtl4ml design (format {data.get('format')!r}, expected {DESIGN_FORMAT!r})")
        return cls(Graph.from_json(data["graph"]), data["name"], data["clock_ns"], data.get("cmvm", "plain"),
                   data.get("valid", True), data.get("cmvm_depth_slack", 1))

    # ------------------------------------------------------------------ proofs and numbers

    def _input_arrays(self, x) -> list[np.ndarray]:
        """``x`` as one (N, *shape) array per input where its shape allows (the graph checks the
        rest); refuses no samples and warns about values outside the input types."""
        arrays = []
        for node, a in zip(self.graph.inputs, self.graph._input_arrays(x)):
            a = np.asarray(a)
            if a.ndim == 2 and a.shape[1:] != node.op.shape and a.shape[1] == node.op.size:
                a = a.reshape((len(a),) + node.op.shape)
            if a.ndim == 0 or len(a) == 0:
                raise ValueError(f"no samples: the input array{f' {node.name!r}' if len(self.input_names) > 1 else ''} "
                                 f"has shape {a.shape}")
            arrays.append(a)
        for msg in input_range_warnings(self.input_names, arrays, [n.op.types for n in self.graph.inputs]):
            warn(msg, QuantizationWarning)
        return arrays

    def _inputs_like(self, x, arrays: list[np.ndarray]):
        """``arrays`` passed the way ``x`` was (an array, a tuple, or a dict by name)."""
        if isinstance(x, dict):
            return dict(zip(self.input_names, arrays))
        return arrays[0] if len(arrays) == 1 and not isinstance(x, (tuple, list)) else tuple(arrays)

    def verify(self, x, jobs: int | None = None) -> VerifyResult:
        """Simulate the RTL with Verilator on ``x`` and compare every output bit with the emulator.

        Warns (:class:`~rtl4ml.fidelity.QuantizationWarning`) when inputs lie outside the
        input types' ranges: they wrap or saturate, in the RTL and the emulator alike.
        """
        from .verify.verilator import simulate
        x = self._inputs_like(x, self._input_arrays(x))
        xq = self.quantize_inputs(x)
        expected = self._expected_flat(xq)
        sim = simulate(self.netlist, self.verilog, self.name, xq, self.valid, jobs)
        diff = sim.codes != expected
        bad = np.flatnonzero(diff.any(axis=1))
        first = None
        if len(bad):
            s = int(bad[0])
            j = int(np.flatnonzero(diff[s])[0])
            first = Mismatch(s, j, int(expected[s, j]), int(sim.codes[s, j]), self.netlist.output_types[j].width,
                             self._where(j))
        ok = len(bad) == 0 and sim.bad_valid == 0
        outputs = self._shaped(self._to_float(sim.codes), isinstance(x, dict))
        return VerifyResult(ok, len(expected), len(bad), outputs, first, sim.bad_valid)

    def fidelity(self, x, reference=None) -> Fidelity:
        """How closely the design's outputs follow the float model's on inputs ``x``.

        ``reference``: the float model, a torch module (run on a copy, in evaluation mode, in
        float64) or any callable taking ``x`` as :meth:`predict` does and returning an array,
        a tuple or a dict by output name; default :attr:`model`. Both see the same float
        inputs, so input quantization counts as well. Returns a :class:`~rtl4ml.fidelity.Fidelity`
        (per output: correlation, max and mean absolute difference, argmax agreement).
        """
        ref = self.model if reference is None else reference
        if ref is None:
            raise ValueError("no float model to compare with: pass reference= (the torch model, or a function); "
                             "a design loaded from a file or built from a Graph does not keep one")
        arrays = self._input_arrays(x)
        x = self._inputs_like(x, arrays)
        got = self.predict(x)
        got = list(got.values()) if isinstance(got, dict) else list(got) if isinstance(got, tuple) else [got]
        if _is_torch_module(ref):
            from .frontends.torch import run_float
            want = run_float(ref, arrays)
        elif callable(ref):
            want = ref(x)
        else:
            raise TypeError(f"reference must be a torch module or a callable, got {type(ref).__name__}")
        return compare_outputs(self.output_names, got, self._reference_outputs(want))

    def _reference_outputs(self, want) -> list[np.ndarray]:
        """The reference's result as one float64 array per design output, in output order."""
        if isinstance(want, dict):
            if set(want) == set(self.output_names):
                want = [want[k] for k in self.output_names]
            else:
                want = list(want.values())
        elif not isinstance(want, (tuple, list)):
            want = [want]
        if len(want) != len(self.output_names):
            raise ValueError(f"the float model returns {len(want)} outputs, the design has {len(self.output_names)} "
                             f"{self.output_names}")
        return [_to_numpy(w) for w in want]

    def estimate(self, synth: bool = True, family: str = "xcup") -> Estimate:
        """Resources and latency, in total and per layer. ``synth=False``: instant analytic
        figures only; otherwise Yosys figures for the whole design as well."""
        st = adder_stats(self.netlist)
        p = self.pipeline
        base = dict(adders=st.adders, adder_bits=st.adder_bits, adder_depth=st.adder_depth,
                    register_bits=st.register_bits, latency_cycles=p.latency_cycles, clock_ns=self.clock_ns,
                    latency_ns=round(p.latency_cycles * self.clock_ns, 6),
                    critical_path_ns=round(p.critical_path_ns, 4), luts_estimate=st.luts,
                    multipliers=st.multipliers, layers=st.layers)
        if not synth:
            return Estimate(**base)
        from .estimate.yosys import synthesize
        r = synthesize(self.verilog, self.name, family)
        return Estimate(**base, lut=r.lut, ff=r.ff, carry=r.carry, dsp=r.dsp, bram=r.bram, srl=r.srl,
                        logic_depth=r.logic_depth, synth_seconds=r.seconds)

    def report(self, path: str | Path, x=None, y=None, reference=None, *, synth: bool = False,
               verify=True) -> Path:
        """Write a self-contained HTML report (graph, bit widths, resources, pipeline; with
        inputs ``x`` the comparison with ``reference``, the float model or its outputs, by
        default the model this design was converted from, and the RTL verification; with
        labels ``y`` accuracy and ROC curves). See :func:`rtl4ml.report.write_report`."""
        from .report import write_report
        return write_report(self, path, x, y, reference, synth=synth, verify=verify)


def convert(model, input_type=None, weight_type=None, bias_type=None, result_type=None, clock_ns: float = 5.0,
            name: str = "net", cmvm: str = "cse", cmvm_depth_slack: int | None = 1, input_shape=None,
            activation_type=None, table_input_type=None, format: str | None = None) -> Design:
    """Convert a model (any ``torch.nn.Module``, a Keras 3 / HGQ2 model, a :class:`Graph`, or a
    model/design file path) to a Design.

    A file's kind is detected from its name and first bytes (``.onnx``, ``.keras``, XGBoost
    ``.json``/``.ubj``, ``.skops``, a saved design, else ``torch.save``); ``format`` (one of
    :data:`FORMATS`) overrides the detection, e.g. for a Keras file named ``model.bin``.

    A torch model's ``forward`` is traced (torch.fx) and each call in it translated; what
    rtl4ml cannot translate is refused with the layer or function and the line of code that
    calls it (:mod:`rtl4ml.frontends.torch`). Layers of :mod:`rtl4ml.nn` carry their own types.

    ``input_type`` quantizes the inputs (a type string for all of them, or a dict by
    ``forward`` argument name). ``input_shape``: the shape of one sample (a tuple, or a dict
    by name / a list for several inputs) when the model does not fix it (a first Linear
    does). Each Linear's weights and bias are quantized to ``weight_type`` / ``bias_type`` (a
    type string, or ``{layer name: string}`` with names from ``model.named_modules()``;
    ``bias_type=None`` means ``weight_type``); ``weight_type`` also quantizes constants of the
    model's code that are not short binary fractions (``x * 0.45``). Product-sums are exact;
    ``result_type``, when given, rounds every Linear's output (after a BatchNorm folded into it).
    Convolutions take the same three options. Sigmoid, tanh, exp, ... become lookup tables
    with entries in ``activation_type`` (also a softmax's output type); ``table_input_type``
    narrows a table's input first (docs/layers.md).

    Constant matrices become shift-and-add adder graphs (docs/cmvm.md). ``cmvm`` picks the
    solver: ``"cse"`` (default) shares partial sums between outputs for the fewest adder
    bits; ``"plain"`` shares nothing. ``cmvm_depth_slack`` is the area/latency knob: the
    adder levels a layer may use beyond the fewest any of its outputs needs without
    sharing. ``0`` keeps every layer as shallow as unshared trees; each extra level lets
    more partial sums be shared and correlated columns be built from each other (fewer
    LUTs, possibly one more pipeline stage); ``None`` removes the bound. Default ``1``.
    """
    graph, source = _to_graph(model, dict(input_type=input_type, input_shape=input_shape, weight_type=weight_type,
                                          bias_type=bias_type, result_type=result_type,
                                          activation_type=activation_type, table_input_type=table_input_type),
                               format)
    d = Design(graph, name=name, clock_ns=clock_ns, cmvm=cmvm, cmvm_depth_slack=cmvm_depth_slack)
    d.model = source
    return d


#: the model formats ``convert(..., format=...)`` and ``rtl4ml convert --format`` accept
FORMATS = ("torch", "onnx", "keras", "xgboost", "skops", "design")


def _to_graph(model, options: dict, format: str | None = None) -> tuple[Graph, object]:
    """The Graph of ``model``, and the torch module it came from (or None). ``format``
    overrides the detection of a file's kind (see :data:`FORMATS`)."""
    if format is not None and format not in FORMATS:
        raise ValueError(f"format {format!r} is not one of {', '.join(FORMATS)}")
    if isinstance(model, Graph):
        return model, None
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.exists():
            raise FileNotFoundError(f"model file {path} does not exist")
        if format is None:
            format = _file_format(path)
        if format in ("xgboost", "skops"):
            return _trees_graph(path, options), None
        if format == "design":
            return load(path).graph, None
        if format == "onnx":
            return _onnx_graph(path, options), None
        if format == "keras":
            return _keras_graph(path, options), None
        from .frontends.formats import check_model_file
        check_model_file(path)
        from .frontends.torch import load_torch_file
        model = load_torch_file(path)
    elif format not in (None, "torch", "keras", "xgboost", "skops"):
        raise ValueError(f"format {format!r} applies to a model file, not to an in-memory {type(model).__name__}")
    if format in (None, "keras") and _is_keras_model(model):   # before torch: on its torch backend a Keras
        return _keras_graph(model, options), None              # model is a torch.nn.Module too
    if format in (None, "torch") and _is_torch_module(model):
        from .frontends.torch import from_torch
        return from_torch(model, **options), model
    from .frontends.trees import is_tree_model
    if format in (None, "xgboost", "skops") and is_tree_model(model):
        return _trees_graph(model, options), None
    if format is not None:
        raise TypeError(f"format={format!r}, but the model is a {type(model).__name__}")
    raise TypeError(f"cannot convert a {type(model).__name__}: rtl4ml converts torch.nn.Module models, Keras 3 / "
                    "HGQ2 models, scikit-learn and XGBoost tree models, rtl4ml Graphs and saved designs")


def _file_format(path: Path) -> str:
    """The format of a model file by its name (and, for ``.json``, its first bytes)."""
    from .frontends.trees import tree_file_kind
    kind = tree_file_kind(path) if path.is_file() else None
    if kind:   # XGBoost .json/.ubj, scikit-learn .skops
        return kind
    if path.suffix == ".json" or path.is_dir():
        return "design"
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return "onnx"
    if suffix in (".keras", ".h5", ".hdf5"):
        return "keras"
    return "torch"


def _without_input_shape(options: dict, what: str) -> dict:
    """The options for a frontend whose models fix their input shapes (``input_shape`` refused)."""
    if options.get("input_shape") is not None:
        raise ValueError(f"{what} fixes its input shapes; remove input_shape")
    return {k: v for k, v in options.items() if k != "input_shape"}


def _onnx_graph(path: Path, options: dict) -> Graph:
    options = _without_input_shape(options, f"{path}: an ONNX model")
    from .frontends.onnx import from_onnx, load_onnx
    from .torch_common import ConversionError
    onnx_model = load_onnx(path)
    if not onnx_model.graph.output:
        raise ConversionError(f"{path}: the ONNX model has no graph outputs (an empty or truncated file?)")
    return from_onnx(onnx_model, **options)


def _keras_graph(model, options: dict) -> Graph:
    """A Keras model or ``.keras`` file through :mod:`rtl4ml.frontends.keras`."""
    options = _without_input_shape(options, f"{model}: a Keras model" if isinstance(model, (str, Path))
                                   else "a Keras model")
    from .frontends.keras import from_keras
    return from_keras(model, **options)


def _is_keras_model(model) -> bool:
    """Whether ``model`` is a Keras model, without importing Keras for other models."""
    if not any(c.__module__.split(".")[0] == "keras" for c in type(model).__mro__):
        return False
    import keras
    return isinstance(model, keras.Model)


def _trees_graph(model, options: dict) -> Graph:
    """A tree model or file through :mod:`rtl4ml.frontends.trees`: ``weight_type`` is the
    type of the leaf values (default: a 2**-10 accuracy target); the other type options do
    not apply."""
    from .frontends.trees import from_trees
    unused = sorted(k for k, v in options.items() if v is not None and k not in ("input_type", "weight_type"))
    if unused:
        raise ValueError(f"{', '.join(unused)}: not options of a tree model (it takes input_type, and weight_type "
                         "for its leaf values)")
    return from_trees(model, options["input_type"], leaf_type=options["weight_type"])


def _to_numpy(v) -> np.ndarray:
    """An array from a numpy array, a torch tensor, or anything array-like."""
    if hasattr(v, "detach"):
        v = v.detach().cpu().double().numpy()
    return np.asarray(v, dtype=np.float64)


def _is_torch_module(model) -> bool:
    try:
        import torch
    except ImportError:
        return False
    return isinstance(model, torch.nn.Module)


def load(path: str | Path) -> Design:
    """Load a Design saved by :meth:`Design.write` (a folder) or its ``design.json``."""
    p = Path(path)
    if p.is_dir():
        p = p / "design.json"
    if not p.exists():
        raise FileNotFoundError(f"no rtl4ml design at {path} (expected a folder with design.json or the file itself)")
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p} is not valid JSON: {e}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{p} is not a text file (an rtl4ml design is JSON)") from None
    if isinstance(data, dict) and data.get("format") != DESIGN_FORMAT:
        from .frontends.formats import check_json_model
        check_json_model(p, data)
    if not isinstance(data, dict):
        raise ValueError(f"{p} is not an rtl4ml design (a JSON object with format {DESIGN_FORMAT!r})")
    return Design.from_json(data)
