"""Progress: shown on a terminal, silent otherwise or when quiet; tools stream their steps."""

from __future__ import annotations

import io
import re
import sys

import pytest
from rich.console import Console

from rtl4ml import progress
from rtl4ml.tools import run_logged


@pytest.fixture
def terminal():
    buf = io.StringIO()
    progress.configure(console=Console(file=buf, force_terminal=True, width=120))
    yield buf
    progress.configure()


def test_a_task_draws_on_a_terminal(terminal):
    with progress.task("solving", total=3) as t:
        for k in range(3):
            t.advance(status=f"layer fc{k}")
    assert "solving" in terminal.getvalue()


def test_nothing_when_quiet_or_not_a_terminal(capsys):
    progress.configure(quiet=True, console=Console(file=io.StringIO(), force_terminal=True))
    try:
        with progress.task("quiet") as t:
            t.update(status="x")
        assert progress._console() is None
    finally:
        progress.configure()
    with progress.task("not a tty"):   # pytest's stderr is not a terminal
        pass
    assert capsys.readouterr().err == ""


def test_tools_stream_their_steps_and_verbose_echoes_them(tmp_path):
    buf = io.StringIO()
    progress.configure(verbose=True, console=Console(file=buf, force_terminal=True, width=120))
    try:
        script = "print('1. Executing READ'); print('2.1. Executing ABC pass'); print('done')"
        rc, log = run_logged([sys.executable, "-c", script], tmp_path, 30, "tool", re.compile(r"^\d+(?:\.\d+)*\. Executing (\S+)"))
    finally:
        progress.configure()
    assert rc == 0 and "done" in log
    assert "2.1. Executing ABC pass" in buf.getvalue()


def test_a_tool_that_runs_too_long_is_stopped(tmp_path):
    rc, _ = run_logged([sys.executable, "-c", "import time; time.sleep(30)"], tmp_path, 0.5, "sleep", re.compile("x"))
    assert rc is None
