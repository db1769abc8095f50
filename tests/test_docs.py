"""Every code block of the README and the user guide runs as written.

A document's blocks run top to bottom in one Python namespace and one scratch folder;
``bash`` blocks run there line by line (with this interpreter's scripts on PATH) and must
exit 0. A block followed by an HTML comment saying it is "not run by the tests" is skipped
(installs, the test run itself, the minutes-long demo); the comment says why.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```\n(\s*<!--[^>]*not run by the tests[^>]*-->)?", re.S | re.M)

pytest.importorskip("torch")


def blocks(path: Path) -> list[tuple[str, str, bool]]:
    """``(language, code, skipped)`` of every python/bash block, in order."""
    return [(m.group(1), m.group(2), m.group(3) is not None) for m in BLOCK.finditer(path.read_text())]


def run_document(path: Path, tmp_path: Path, monkeypatch) -> int:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    namespace: dict = {"__name__": "__doc__"}
    ran = 0
    for k, (lang, code, skipped) in enumerate(blocks(path)):
        if skipped:
            continue
        if lang == "python":
            exec(compile(code, f"{path.name}, block {k}", "exec"), namespace)
        else:
            for line in code.splitlines():
                cmd = line.split("  #")[0].strip()
                if not cmd:
                    continue
                r = subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=600)
                assert r.returncode == 0, f"{path.name}, block {k}: {cmd!r} failed:\n{r.stdout}\n{r.stderr}"
        ran += 1
    return ran


@pytest.mark.hw
def test_the_readme_runs(tmp_path, monkeypatch):
    found = blocks(ROOT / "README.md")
    assert sum(skipped for *_, skipped in found) <= 4   # only installs, test runs and the demo
    assert run_document(ROOT / "README.md", tmp_path, monkeypatch) >= 5


@pytest.mark.hw
def test_the_user_guide_runs(tmp_path, monkeypatch, capsys):
    assert run_document(ROOT / "docs" / "guide.md", tmp_path, monkeypatch) >= 10
    out = capsys.readouterr().out
    assert "RTL == emulator on all 500 samples" in out and "function torch.erf is not supported" in out


def test_a_failing_block_fails(tmp_path, monkeypatch):
    doc = tmp_path / "doc.md"
    doc.write_text("```python\nassert 1 == 2\n```\n")
    with pytest.raises(AssertionError):
        run_document(doc, tmp_path, monkeypatch)
    doc.write_text("```bash\nrtl4ml estimate does-not-exist\n```\n")
    with pytest.raises(AssertionError, match="failed"):
        run_document(doc, tmp_path, monkeypatch)
