"""docs/tutorial.md runs as written: every ```python block, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"


def blocks(hw: bool) -> list[str]:
    code = re.findall(r"```python\n(.*?)```", TUTORIAL.read_text(), flags=re.S)
    assert len(code) >= 6, "the tutorial lost its code blocks"
    return [c for c in code if hw or not c.lstrip().startswith("# needs: hw")]


def run(hw: bool) -> dict:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    ns: dict = {"__name__": "tutorial"}
    try:
        for k, code in enumerate(blocks(hw)):
            exec(compile(code, f"{TUTORIAL.name}[block {k}]", "exec"), ns)
    finally:
        torch.set_num_threads(n)
    return ns


def test_tutorial_runs_without_hardware_tools():
    ns = run(hw=False)
    acc = (ns["design"].predict(ns["x_test"]).argmax(1) == ns["y_test"]).mean()
    assert acc > 0.55   # 5 balanced classes: chance is 0.2


@pytest.mark.hw
@pytest.mark.slow
def test_tutorial_runs_with_verilator_and_yosys(capsys):
    run(hw=True)
    out = capsys.readouterr().out
    assert "RTL == emulator on all 2000 samples" in out
    assert re.search(r"lut: \d+", out)
