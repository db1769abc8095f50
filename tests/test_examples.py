"""The runnable examples keep running (short settings)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]


def test_qat_example_runs_and_reports_bit_exactness():
    r = subprocess.run([sys.executable, str(ROOT / "examples" / "qat_jet_tagger.py"), "--epochs", "2"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "model(x) == design.predict(x) on all 2000 jets" in r.stdout


def _run_small_bit_exact(script: str) -> str:
    """Run an example at reduced size (2 epochs, no Yosys) and check what every example
    prints: all samples bit-exact, the RTL check and the latency; returns its output."""
    r = subprocess.run([sys.executable, str(ROOT / "examples" / script), "--small", "--epochs", "2", "--no-synth"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    m = re.search(r"model\(x\) == design.predict\(x\) on (\d+) of (\d+) samples", r.stdout)
    assert m and m.group(1) == m.group(2) and int(m.group(2)) >= 200, r.stdout
    assert re.search(r"RTL \(Verilator\): bit-exact on \d+ samples", r.stdout), r.stdout
    assert re.search(r"latency: \d+ cycles = [\d.]+ ns at 2.5 ns", r.stdout), r.stdout
    return r.stdout


@pytest.mark.hw
@pytest.mark.parametrize("script", ["cnn_digits.py", "jet_autoencoder.py", "conv_autoencoder.py"])
def test_layer_examples_run_bit_exact_with_rtl(script):
    """Reduced size (--small, 2 epochs, no Yosys); the RTL check runs. Full size: benchmarks/layer_examples.py."""
    out = _run_small_bit_exact(script)
    if "autoencoder" in script:
        assert len(re.findall(r"AUC [WZt] vs q/g: float 0\.\d+, bit-exact design 0\.\d+", out)) == 3
    else:
        assert re.search(r"accuracy on \d+ test images: float [\d.]+ %, bit-exact design [\d.]+ %", out)


@pytest.mark.hw
@pytest.mark.parametrize("script", ["deepsets_jets.py", "interaction_network_jets.py", "mlp_mixer_jets.py",
                                    "transformer_jets.py"])
def test_constituent_examples_run_bit_exact_with_rtl(script):
    """Reduced size (--small: 8 particles, 2 epochs, no Yosys); the RTL check runs. Full size:
    benchmarks/constituent_examples.py."""
    out = _run_small_bit_exact(script)
    assert re.search(r"accuracy on \d+ test jets \(8 particles\): float [\d.]+ %, bit-exact design [\d.]+ %, "
                     r"16-feature MLP \(float\) [\d.]+ %", out), out
