"""The runnable examples keep running (short settings)."""

from __future__ import annotations

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
