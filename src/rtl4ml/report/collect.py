"""Everything the report says about one design, gathered as plain data before any HTML.

Collecting first and rendering second keeps the numbers testable without parsing HTML and
lets the comparison report reuse each design's facts. Nothing here draws or formats pages;
the slow steps (Verilator, Yosys) run only when asked, and a missing tool becomes a message
in the report instead of an exception, since a report should describe what it can.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..fixed import code_width
from ..graph.ops import Dense, Input, Quantize
from ..graph.ops.io import exact_codes
from ..graph.tensor import TensorType
from .evaluate import (Classification, DiffStats, as_labels, classifier_note, classify, diff_stats, output_list,
                       predicted_class, reference_outputs)
from .stages import Stage, pipeline_stages


def type_summary(t: TensorType) -> str:
    """A tensor's element types in one phrase: ``fixed<W,I>`` (hls4ml style, I counting the
    sign bit) when every element has the same type, else the ranges of widths and fractions."""
    if t.size == 0:
        return "empty"
    w, s, f = t.width, t.signed, t.fraction
    if int(w.max()) == 0:
        return "constant 0 (0 bits)"
    if (w == w.flat[0]).all() and (s == s.flat[0]).all() and (f == f.flat[0]).all():
        width, frac = int(w.flat[0]), int(f.flat[0])
        return f"{'fixed' if s.flat[0] else 'ufixed'}<{width},{width - frac}>"
    sign = "signed" if s.all() else "unsigned" if not s.any() else "mixed sign"
    return f"{_span(w)} bits, {_span(f)} fractional, {sign}"


def _span(a: np.ndarray) -> str:
    lo, hi = int(a.min()), int(a.max())
    return str(lo) if lo == hi else f"{lo}\u2013{hi}"


def value_range(t: TensorType) -> tuple[float, float]:
    """The smallest and largest real value any element can take."""
    if t.size == 0:
        return 0.0, 0.0
    scale = [2.0 ** -int(f) for f in t.fraction.flat]
    return (min(float(lo) * k for lo, k in zip(t.lo.flat, scale)),
            max(float(hi) * k for hi, k in zip(t.hi.flat, scale)))


def weight_bits(dense: Dense) -> np.ndarray:
    """Bits of each weight's exact code, (n_in, n_out): the odd mantissa ``m`` of
    ``w = m * 2**-f`` with its sign bit. A pruned (zero) weight has 0 bits: it is no hardware."""
    codes, _ = exact_codes(dense.effective_weight)
    return np.array([code_width(m, m)[1] for m in codes.flat], dtype=np.int64).reshape(codes.shape)


@dataclass(frozen=True)
class NodeRow:
    """One Graph node as the model-graph table shows it."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]
    in_types: tuple[str, ...]
    out_type: str
    bits: int                       # sum of the output's element widths
    lo: float
    hi: float
    detail: str                     # op parameters worth knowing (weights, rounding modes)


def _detail(op) -> str:
    if isinstance(op, Dense):
        w = op.effective_weight
        live = int(np.count_nonzero(w))
        return f"weights {w.shape[0]}\u00d7{w.shape[1]}, {live} of {w.size} non-zero"
    if isinstance(op, (Quantize, Input)):
        return f"{op.types.rounding}, {op.types.overflow}"
    return ""


def node_rows(graph) -> list[NodeRow]:
    types = graph.types
    rows = []
    for n in graph.nodes:
        t = types[n.name]
        lo, hi = value_range(t)
        rows.append(NodeRow(n.name, n.op.kind, n.inputs, t.shape, tuple(type_summary(types[i]) for i in n.inputs),
                            type_summary(t), int(t.width.sum()), lo, hi, _detail(n.op)))
    return rows


@dataclass(frozen=True)
class OutputComparison:
    """Hardware against the float reference for one output."""

    name: str
    diff: np.ndarray                # hardware - float, flattened
    stats: DiffStats


@dataclass(frozen=True)
class OutputClassification:
    name: str
    hardware: Classification | None
    reference: Classification | None
    agreement: float | None         # fraction of samples where hardware and float pick the same class
    note: str | None = None         # why the output is not scored, when it is not


@dataclass
class DesignFacts:
    """What the report shows about one design (see :func:`collect`)."""

    label: str
    design: object
    rows: list[NodeRow]
    weights: dict[str, np.ndarray]                  # Dense node -> weight bits (n_in, n_out)
    activations: dict[str, np.ndarray]              # node -> per-element output widths
    estimate: object                                # rtl4ml Estimate
    synth_error: str | None
    stages: list[Stage]
    n_samples: int = 0
    reference_note: str | None = None               # why there is no float comparison
    comparisons: list[OutputComparison] = field(default_factory=list)
    verification: object = None                     # VerifyResult
    verify_note: str | None = None                  # why there is no verification result
    classifications: list[OutputClassification] = field(default_factory=list)

    @property
    def lut(self) -> tuple[float, str]:
        """LUTs and where the figure comes from (Yosys, else the analytic estimate)."""
        e = self.estimate
        return (float(e.lut), "Yosys") if e.lut is not None else (float(e.luts_estimate), "analytic estimate")

    @property
    def accuracy(self) -> float | None:
        """Hardware accuracy of the first output scored against the labels."""
        return next((c.hardware.accuracy for c in self.classifications if c.hardware), None)

    @property
    def reference_accuracy(self) -> float | None:
        return next((c.reference.accuracy for c in self.classifications if c.reference), None)


def _estimate(design, synth: bool):
    if not synth:
        return design.estimate(synth=False), None
    try:
        return design.estimate(synth=True), None
    except RuntimeError as e:   # Yosys missing or failing: the analytic figures still stand
        return design.estimate(synth=False), f"Yosys did not run: {e}"


def _verify(design, x, verify) -> tuple[object, str | None]:
    if verify is False or verify is None:
        return None, "not run (verify=False / --no-verify)"
    if verify is not True:
        return verify, None          # a VerifyResult computed by the caller
    try:
        return design.verify(x), None
    except RuntimeError as e:       # Verilator missing or failing to build
        return None, f"Verilator did not run: {e}"


def _lsb(t: TensorType) -> float:
    return float(2.0 ** -int(t.fraction.max(initial=0))) if t.size else 1.0


def collect(design, label: str, x=None, y=None, reference=None, synth: bool = False, verify=True) -> DesignFacts:
    """Gather the report's facts about ``design``; ``x``, ``y``, ``reference``: see
    :func:`rtl4ml.report.write_report`."""
    graph = design.graph
    estimate, synth_error = _estimate(design, synth)
    facts = DesignFacts(
        label=label, design=design, rows=node_rows(graph),
        weights={n.name: weight_bits(n.op) for n in graph.nodes if isinstance(n.op, Dense)},
        activations={n.name: graph.types[n.name].width for n in graph.nodes},
        estimate=estimate, synth_error=synth_error, stages=pipeline_stages(design.netlist))
    if x is None:
        facts.reference_note = "no inputs given"
        facts.verify_note = "no inputs given"
        return facts
    names = design.output_names
    out_types = graph.output_types
    hw = output_list(design.predict(x), names)
    n = len(hw[0])
    facts.n_samples = n
    ref = None
    if reference is None:
        facts.reference_note = "no reference model"
    else:
        ref = reference_outputs(reference, x, design.input_names, names, [t.shape for t in out_types], n)
        facts.comparisons = [OutputComparison(name, (h - r).ravel(), diff_stats(h, r, _lsb(t)))
                             for name, h, r, t in zip(names, hw, ref, out_types)]
    facts.verification, facts.verify_note = _verify(design, x, verify)
    if y is not None:
        facts.classifications = _classifications(names, out_types, hw, ref, as_labels(y, n))
    return facts


def _classifications(names: Sequence[str], out_types, hw, ref, y: np.ndarray) -> list[OutputClassification]:
    out = []
    for i, (name, t) in enumerate(zip(names, out_types)):
        note = classifier_note(t.shape, y)
        if note:
            out.append(OutputClassification(name, None, None, None, note))
            continue
        r = ref[i] if ref is not None else None
        agree = float(np.mean(predicted_class(hw[i]) == predicted_class(r))) if r is not None else None
        out.append(OutputClassification(name, classify(hw[i], y), classify(r, y) if r is not None else None, agree))
    return out

