"""Running the external tools (Verilator, Yosys) with their output streamed to progress."""

from __future__ import annotations

import re
import subprocess
import threading
from collections import deque
from pathlib import Path

from . import progress


def run_logged(cmd: list[str], cwd: Path, timeout: float | None, what: str, step_re: re.Pattern) -> tuple[int | None, str]:
    """Run a tool, streaming its output: progress shows the elapsed time and the step it is
    in (the first group of ``step_re``); ``--verbose`` echoes every line. Returns the exit
    status (None on timeout) and the last lines of the output."""
    tail: deque[str] = deque(maxlen=400)
    with progress.task(what) as t:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace")
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            proc.kill()
        timer = threading.Timer(timeout, kill) if timeout else None
        if timer:
            timer.start()
        try:
            for line in proc.stdout:
                tail.append(line)
                progress.tool_line(line)
                m = step_re.match(line)
                if m:
                    t.update(status=m.group(1))
            rc = proc.wait()
        finally:
            if timer:
                timer.cancel()
    return (None if killed.is_set() else rc), "".join(tail)
