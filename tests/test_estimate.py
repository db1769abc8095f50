"""Per-layer figures: every primitive remembers its Graph node, so resources add up by layer."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rtl4ml.design import Design
from rtl4ml.estimate.analytic import adder_stats

from .test_graph_dag import residual_mlp, two_inputs


def test_layers_add_up_to_the_totals_and_name_graph_nodes():
    g = residual_mlp(np.random.default_rng(2))
    d = Design(g, name="res", clock_ns=1.0)
    e = d.estimate(synth=False)
    names = {n.name for n in g.nodes}
    assert e.layers and {s.layer for s in e.layers} <= names
    assert sum(s.adders for s in e.layers) == e.adders
    assert sum(s.adder_bits for s in e.layers) == e.adder_bits
    assert sum(s.register_bits for s in e.layers) == e.register_bits
    assert sum(s.luts for s in e.layers) == e.luts_estimate
    by = {s.layer: s for s in e.layers}
    assert by["fc1"].adders > 0 and by["skip"].adders > 0   # the skip connection's adders are its own
    assert 0 < by["fc1"].adder_depth <= e.adder_depth
    table = e.layer_table()
    assert table.splitlines()[0].split()[:2] == ["layer", "adders"] and "fc1" in table
    assert "layers" in e.as_dict() and "fc1" in str(e)


def test_every_primitive_has_an_origin_and_verilog_names_say_the_layer():
    g = two_inputs(np.random.default_rng(4))
    d = Design(g, name="two", clock_ns=1.0)
    names = {n.name for n in g.nodes}
    assert all(p.origin in names for p in d.netlist.prims)
    declared = re.findall(r"^  (?:wire|reg) \[\d+:0\] (n\d+[a-z]?_\w+)", d.verilog, re.M)
    assert declared and all(any(w.endswith("_" + n) for n in names) for w in declared)
    assert "input wire [" in d.verilog and " in_tracks" in d.verilog and " in_towers" in d.verilog


def test_analytic_totals_match_adder_stats():
    g = residual_mlp(np.random.default_rng(3))
    d = Design(g, name="r3", clock_ns=2.0)
    st = adder_stats(d.netlist)
    e = d.estimate(synth=False)
    assert (e.adders, e.adder_bits, e.adder_depth, e.register_bits) == (st.adders, st.adder_bits, st.adder_depth,
                                                                         st.register_bits)


@pytest.mark.hw
def test_wide_adders_are_kept_whole_and_that_saves_yosys_luts():
    """Each adder of at least KEEP_ADDER_MIN_BITS bits is ``(* keep *)``: Yosys maps it to one carry
    chain instead of merging the adder graph into compressor trees, which costs more LUTs."""
    from rtl4ml.estimate.yosys import synthesize
    from rtl4ml.graph import GraphBuilder
    from rtl4ml.netlist.prims import KEEP_ADDER_MIN_BITS, Add

    w = np.random.default_rng(3).integers(-4, 4, size=(8, 8))
    gb = GraphBuilder()
    x = gb.input("fixed<8,8>", 8)
    d = Design(gb.build(gb.dense(x, w, np.zeros(8))), name="kept", clock_ns=5.0)
    decls = {m.group(2): bool(m.group(1)) for m in
             re.finditer(r"^  (\(\* keep \*\) )?wire \[\d+:0\] (n\d+)_\w* = ", d.verilog, re.M)}
    adds = [(k, p.wire.width) for k, p in enumerate(d.netlist.prims) if isinstance(p, Add)]
    assert any(width >= KEEP_ADDER_MIN_BITS for _, width in adds)
    for k, width in adds:
        assert decls[f"n{k}"] == (width >= KEEP_ADDER_MIN_BITS), (k, width)
    kept = synthesize(d.verilog, d.name)
    merged = synthesize(d.verilog.replace("(* keep *) ", ""), d.name)
    assert kept.lut < merged.lut, (kept.lut, merged.lut)
