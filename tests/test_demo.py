"""The demo's flows run end to end (short settings; the full run is `rtl4ml demo`)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")


@pytest.mark.hw
def test_fast_demo_proves_the_rtl(tmp_path, capsys):
    from rtl4ml.demo import run_demo
    r = run_demo(out=tmp_path / "demo", epochs=2, synth=False, fast=True)
    out = capsys.readouterr().out
    assert r["verify"].ok and "10000/10000 jets bit-exact" in out
    assert "quantization-aware" not in out and (tmp_path / "demo" / "jet_tagger.v").exists()
