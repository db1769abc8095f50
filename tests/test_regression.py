"""The jet MLP of benchmarks/emulation_speed.py keeps the adder graph and outputs it had
before the N-D core (figures recorded from the code at commit 0bdead8)."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "emulation_speed.py"


def jet_mlp_design():
    spec = importlib.util.spec_from_file_location("emulation_speed", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.jet_mlp_design()


def test_jet_mlp_has_the_same_adders_and_outputs_as_before():
    d = jet_mlp_design()
    e = d.estimate(synth=False)
    assert (e.adders, e.adder_bits, e.register_bits, e.latency_cycles) == (3595, 66496, 16086, 8)
    x = np.random.default_rng(1).normal(size=(5000, 16))
    codes = d.predict_codes(x)
    assert hashlib.sha256(np.ascontiguousarray(codes, dtype=np.int64).tobytes()).hexdigest()[:16] == "8811c50a5226b848"
    np.testing.assert_array_equal(d.execute_netlist(x[:1000]), codes[:1000])
