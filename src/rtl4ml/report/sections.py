"""One function per report section, from a design's collected facts to HTML.

Every section is always present, with its figures or a sentence saying why it has none
(no inputs, no reference model, no labels, Yosys not run), so a reader, and a test, finds
the same structure in every report.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import plots
from .collect import DesignFacts
from .evaluate import pareto_front
from .html import badge, esc, figures, fmt, note, pairs, section, table

#: Section ids (prefixed per design in a comparison report) and titles, in page order.
SECTIONS = (("summary", "Summary"), ("graph", "Model graph"), ("bitwidths", "Bit widths"),
            ("resources", "Resources"), ("pipeline", "Pipeline and latency"),
            ("emulation", "Emulation against the float model"), ("verification", "RTL verification"),
            ("classification", "Classification"))


def _shape(shape) -> str:
    return "\u00d7".join(map(str, shape)) or "scalar"


def _verify_badge(f: DesignFacts) -> str:
    v = f.verification
    if v is None:
        return esc(f.verify_note or "not run")
    return badge(v.ok, "bit-exact" if v.ok else "MISMATCH") + f" on {v.n_samples} samples"


def summary(f: DesignFacts, p: str) -> str:
    d, e = f.design, f.estimate
    g = d.graph
    lut, source = f.lut
    rows = [
        ("module", f"<code>{esc(d.name)}</code>"),
        ("inputs", ", ".join(f"{esc(n.name)}: {_shape(g.types[n.name].shape)}" for n in g.inputs)),
        ("outputs", ", ".join(f"{esc(o)}: {_shape(g.types[o].shape)}" for o in g.outputs)),
        ("clock", f"{fmt(e.clock_ns)} ns ({fmt(1000 / e.clock_ns)} MHz)"),
        ("latency", f"{e.latency_cycles} cycles = {fmt(e.latency_ns)} ns"),
        ("critical path", f"{fmt(e.critical_path_ns)} ns "
                          + badge(d.pipeline.meets_timing, "meets timing" if d.pipeline.meets_timing else "too slow")),
        ("LUT", f"{fmt(int(lut))} ({esc(source)})"),
        *([("FF / CARRY / DSP (Yosys)", f"{e.ff} / {e.carry} / {e.dsp}")] if e.ff is not None else []),
        ("adders / adder bits", f"{e.adders} / {e.adder_bits}"),
        ("register bits", str(e.register_bits)),
        ("RTL verification", _verify_badge(f)),
    ]
    if f.accuracy is not None:
        ref = f.reference_accuracy
        rows.append(("accuracy", f"{f.accuracy:.4f} hardware" + (f", {ref:.4f} float" if ref is not None else "")))
    return section(p + "summary", "Summary", pairs(rows))


def graph(f: DesignFacts, p: str) -> str:
    head = ("node", "op", "inputs", "shape", "input types", "output type", "bits", "min", "max", "details")
    rows = [(r.name, r.kind, ", ".join(r.inputs) or "\u2013", _shape(r.shape), "; ".join(r.in_types) or "\u2013",
             r.out_type, r.bits, r.lo, r.hi, r.detail) for r in f.rows]
    text = note("Types: fixed<W,I> has W bits, I of them integer bits including the sign; every element is as "
                "narrow as the values it can reach. 'bits' is the sum over the tensor's elements; min and max "
                "are the exact reachable values.")
    return section(p + "graph", "Model graph", text, table(head, rows))


def bitwidths(f: DesignFacts, p: str) -> str:
    parts = []
    if f.weights:
        rows = []
        for name, b in f.weights.items():
            live = b[b > 0]
            rows.append((name, f"{b.shape[0]}\u00d7{b.shape[1]}", int(b.size - live.size), int(live.size),
                         int(live.min()) if live.size else 0, float(live.mean()) if live.size else 0.0,
                         int(live.max(initial=0)), int(b.sum())))
        parts += ["<h3>Weights</h3>",
                  note("Bits of each weight's exact code (odd mantissa and sign); a pruned weight has 0 bits "
                       "and costs no hardware: grey cells."),
                  table(("layer", "weights", "pruned", "live", "min bits", "mean bits", "max bits", "total bits"),
                        rows),
                  figures(*(plots.weight_heatmap(n, b) for n, b in f.weights.items()))]
    else:
        parts.append(note("no Dense layers: no weight matrices"))
    parts += ["<h3>Activations</h3>", figures(plots.activation_heatmap(f.activations))]
    return section(p + "bitwidths", "Bit widths", *parts)


def resources(f: DesignFacts, p: str) -> str:
    e = f.estimate
    layers = list(e.layers)
    head = ("layer", "adders", "adder bits", "LUT est.", "register bits", "multipliers", "adder depth")
    per_layer = table(head, [(s.layer, s.adders, s.adder_bits, s.luts, s.register_bits, s.multipliers, s.adder_depth)
                             for s in layers])
    bars = plots.layer_bars([s.layer for s in layers], [s.luts for s in layers], [s.register_bits for s in layers]) \
        if layers else note("no layer has hardware")
    totals = [("adders", e.adders), ("adder bits", e.adder_bits), ("LUT estimate", e.luts_estimate),
              ("register bits", e.register_bits), ("multipliers", e.multipliers), ("adder depth", e.adder_depth)]
    if e.lut is not None:
        yosys = [("LUT", e.lut), ("FF", e.ff), ("CARRY", e.carry), ("DSP", e.dsp), ("BRAM", e.bram),
                 ("SRL", e.srl), ("logic depth", e.logic_depth), ("synthesis time (s)", e.synth_seconds)]
        synth = table(("Yosys synth_xilinx (whole design)", "value"), yosys)
        synth_note = note("Yosys flattens the design, so its figures are totals; the per-layer table is analytic.")
    else:
        synth = note(f.synth_error or "Yosys not run (design.report(..., synth=True) or rtl4ml report --synth; "
                                      "it takes minutes for large designs)")
        synth_note = ""
    return section(p + "resources", "Resources", "<h3>Per layer (analytic)</h3>", per_layer, bars,
                   "<h3>Totals</h3>", figures(table(("analytic", "value"), totals), synth), synth_note)


def pipeline(f: DesignFacts, p: str) -> str:
    e, rep = f.estimate, f.design.pipeline
    text = (f"<p>{e.latency_cycles} stages at {fmt(e.clock_ns)} ns: latency {e.latency_cycles} cycles = "
            f"{fmt(e.latency_ns)} ns; critical path {fmt(rep.critical_path_ns)} ns; "
            f"{rep.register_bits} pipeline register bits. "
            f"{badge(rep.meets_timing, 'meets timing' if rep.meets_timing else 'misses timing')}</p>")
    rows = [(s.index, s.delay_ns, e.clock_ns - s.delay_ns, ", ".join(s.layers) or "\u2013",
             " \u2192 ".join(s.path) or "\u2013", s.path_prims) for s in f.stages]
    tab = table(("stage", "critical path (ns)", "slack (ns)", "layers in the stage", "critical path through",
                 "primitives on it"), rows)
    return section(p + "pipeline", "Pipeline and latency", text, tab,
                   plots.stage_bars([s.delay_ns for s in f.stages], e.clock_ns),
                   note("Delays from the scheduler's delay model (rtl4ml.passes.pipeline.DelayModel)."))


def emulation(f: DesignFacts, p: str) -> str:
    title = "Emulation against the float model"
    if not f.comparisons:
        return section(p + "emulation", title, note(f.reference_note or "no reference model"))
    rows = [(c.name, c.diff.size, c.stats.max_abs, c.stats.mean, c.stats.rms, c.stats.lsb,
             c.stats.max_abs / c.stats.lsb if c.stats.lsb else float("nan"), c.stats.exact_fraction)
            for c in f.comparisons]
    tab = table(("output", "elements", "max |hw \u2212 float|", "mean", "RMS", "output LSB", "max in LSBs",
                 "exactly equal"), rows)
    hists = figures(*(plots.diff_histogram(c.name, c.diff, c.stats.lsb) for c in f.comparisons))
    return section(p + "emulation", title,
                   note(f"Bit-exact hardware outputs (design.predict) minus the float model's, on {f.n_samples} "
                        "samples."), tab, hists)


def verification(f: DesignFacts, p: str) -> str:
    v = f.verification
    title = "RTL verification"
    if v is None:
        return section(p + "verification", title, note(f.verify_note or "not run"))
    rows = [("result", badge(v.ok, "bit-exact" if v.ok else "MISMATCH")), ("samples", str(v.n_samples)),
            ("samples with a differing bit", str(v.n_mismatch)),
            ("first mismatch", esc(v.first_mismatch) if v.first_mismatch else "\u2013"),
            ("cycles with a wrong valid_out", str(v.bad_valid_cycles))]
    return section(p + "verification", title,
                   note("Verilator simulation of the Verilog, every output bit compared with the emulator."),
                   pairs(rows), f"<p>{esc(v)}</p>")


def classification(f: DesignFacts, p: str) -> str:
    title = "Classification"
    if not f.classifications:
        return section(p + "classification", title, note("no labels given" if f.n_samples else "no inputs given"))
    rows, figs = [], []
    for c in f.classifications:
        if c.hardware is None:
            rows.append((c.name, None, None, None, c.note))
            continue
        rows.append((c.name, c.hardware.accuracy, c.reference.accuracy if c.reference else None, c.agreement, ""))
        if c.hardware.curves:
            figs.append(plots.roc_plot(c.name, c.hardware, c.reference))
    tab = table(("output", "accuracy (hardware)", "accuracy (float)", "same class as float", "note"), rows)
    aucs = []
    for c in f.classifications:
        ref = {r.label: r.auc for r in c.reference.curves} if c.reference else {}
        aucs += [(c.name, k.label, k.auc, ref.get(k.label)) for k in (c.hardware.curves if c.hardware else ())]
    parts = [note("Scores are the outputs as they are (no softmax); ROC one class against the rest."), tab]
    if aucs:
        parts.append(table(("output", "class", "AUC (hardware)", "AUC (float)"), aucs))
    if f.reference_note and not f.comparisons:
        parts.append(note(f"float curves: {f.reference_note}"))
    return section(p + "classification", title, *parts, figures(*figs))


RENDERERS = {"summary": summary, "graph": graph, "bitwidths": bitwidths, "resources": resources,
             "pipeline": pipeline, "emulation": emulation, "verification": verification,
             "classification": classification}


def design_sections(f: DesignFacts, prefix: str = "") -> list[str]:
    return [RENDERERS[sid](f, prefix) for sid, _ in SECTIONS]


def comparison(facts: Sequence[DesignFacts]) -> str:
    """The table of all designs and, with labels, the accuracy-against-LUT Pareto plot."""
    luts = [f.lut for f in facts]
    sources = {s for _, s in luts}
    lut_source = sources.pop() if len(sources) == 1 else "Yosys where run, else analytic estimate"
    acc = np.array([f.accuracy if f.accuracy is not None else np.nan for f in facts])
    front = pareto_front([v for v, _ in luts], acc)
    rows = [(f.label, f.design.name, int(v), s, f.estimate.ff, f.accuracy, f.reference_accuracy,
             f.estimate.latency_cycles, f.estimate.latency_ns, f.estimate.clock_ns, f.estimate.adder_bits,
             bool(front[i]) if np.isfinite(acc[i]) else None)
            for i, (f, (v, s)) in enumerate(zip(facts, luts))]
    tab = table(("design", "module", "LUT", "LUT from", "FF", "accuracy", "float accuracy", "latency (cycles)",
                 "latency (ns)", "clock (ns)", "adder bits", "Pareto-optimal"), rows)
    if np.isfinite(acc).any():
        plot = plots.pareto_plot([f.label for f in facts], [v for v, _ in luts], acc, front, lut_source)
    else:
        plot = note("no accuracy: the Pareto plot needs inputs and labels (x and y, or --inputs and --labels)")
    return section("comparison", "Comparison", note(f"LUT: {lut_source}."), tab, plot)
