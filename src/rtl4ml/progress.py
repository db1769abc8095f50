"""Progress on the steps that take more than a few seconds: QAT epochs, CMVM solving per
layer, Verilator builds and runs, Yosys synthesis.

A step is a :func:`task`: a line on stderr with a spinner (or a bar when the total is known),
the elapsed time and a status (the layer being solved, the Yosys pass running, the loss and
accuracy of the epoch). Nothing is shown when stderr is not a terminal (logs, CI, pytest),
nor after ``configure(quiet=True)`` (``rtl4ml --quiet``); ``configure(verbose=True)``
(``rtl4ml --verbose``) also prints the underlying tools' output. Library code calls
:func:`task` and :func:`tool_line` unconditionally; the decision lives here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_settings = {"quiet": False, "verbose": False, "console": None}


def configure(quiet: bool = False, verbose: bool = False, console=None) -> None:
    """Silence progress (``quiet``), show tool output (``verbose``); ``console``: a
    ``rich.console.Console`` to draw on instead of stderr (tests)."""
    _settings.update(quiet=bool(quiet), verbose=bool(verbose), console=console)


def _console():
    if _settings["quiet"]:
        return None
    con = _settings["console"]
    if con is not None:
        return con
    if not sys.stderr.isatty():
        return None
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - rich is a dependency; progress is optional
        return None
    return Console(stderr=True)


@dataclass
class Task:
    """A running step; a no-op when progress is not shown."""

    _progress: object = None
    _id: object = None

    def update(self, status: str | None = None, advance: float = 0, total: float | None = None) -> None:
        if self._progress is None:
            return
        kw = {"advance": advance}
        if status is not None:
            kw["status"] = status
        if total is not None:
            kw["total"] = total
        self._progress.update(self._id, **kw)

    def advance(self, n: float = 1, status: str | None = None) -> None:
        self.update(status=status, advance=n)


@contextmanager
def task(description: str, total: float | None = None, status: str = "") -> Iterator[Task]:
    """Show ``description`` with a spinner or bar, the elapsed time and ``status`` while the
    block runs; the line disappears when it ends."""
    con = _console()
    if con is None:
        yield Task()
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), TaskProgressColumn()]
    columns += [TimeElapsedColumn(), TextColumn("{task.fields[status]}")]
    with Progress(*columns, console=con, transient=True) as p:
        yield Task(p, p.add_task(description, total=total, status=status))


def verbose() -> bool:
    return _settings["verbose"] and not _settings["quiet"]


def tool_line(line: str) -> None:
    """One line of a tool's output, shown in verbose mode only."""
    if verbose():
        con = _settings["console"]
        (con.print(line, markup=False, highlight=False) if con is not None
         else print(line.rstrip("\n"), file=sys.stderr))
