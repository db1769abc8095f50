"""Every command's --help ends with examples, and every example runs (exit status 0)."""

from __future__ import annotations

import shlex

import numpy as np
import pytest

from rtl4ml import cli

torch = pytest.importorskip("torch")


def subcommands():
    p = cli.build_parser()
    sub = next(a for a in p._actions if a.choices and isinstance(a.choices, dict))
    return sub.choices


def examples(parser) -> list[list[str]]:
    """The command lines of a subcommand's epilog (lines '  rtl4ml ...')."""
    lines = (parser.epilog or "").splitlines()
    return [shlex.split(line.strip())[1:] for line in lines if line.startswith("  rtl4ml ")]


def test_every_command_has_help_with_examples(capsys):
    for name, parser in subcommands().items():
        assert parser.description or parser.format_help(), name
        found = examples(parser)
        assert found, f"rtl4ml {name} --help has no example"
        assert all(argv[0] == name for argv in found), name
        with pytest.raises(SystemExit) as e:
            cli.main([name, "--help"])
        assert e.value.code == 0
        assert "examples:\n  # " in capsys.readouterr().out


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """What the examples use: model.pt (layers '0' and '2'), x.npy."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    torch.save(model, tmp_path / "model.pt")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(200, 4)))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_example_runs(workdir, monkeypatch, capsys):
    import rtl4ml.demo
    demo_calls = []
    monkeypatch.setattr(rtl4ml.demo, "run_demo", lambda **kw: demo_calls.append(kw))   # minutes: not here
    ran = []
    for name, parser in subcommands().items():
        for argv in examples(parser):
            if name == "estimate" and "--no-synth" not in argv:
                argv = argv + ["--no-synth"]   # Yosys takes its time; the option parsing is what is tested
            rc = cli.main(argv)
            out = capsys.readouterr()
            assert rc == 0, f"rtl4ml {shlex.join(argv)}: {out.err}"
            assert "warning" not in out.err, out.err
            ran.append((argv, out.out))
    assert len(ran) == sum(len(examples(p)) for p in subcommands().values())
    convert_with_inputs = next(o for a, o in ran if a[0] == "convert" and "--inputs" in a)
    assert "design vs float model, output '2': correlation 0.99" in convert_with_inputs
    assert (workdir / "build/net_500mhz/net_500mhz.v").exists()
    assert {c["fast"] for c in demo_calls} == {False, True}
    assert any(c["out"] == "demo" and c["synth"] is False for c in demo_calls)


@pytest.mark.parametrize("argv", [["-q", "estimate", "build/net", "--no-synth"],
                                  ["estimate", "build/net", "--no-synth", "--quiet"],
                                  ["--verbose", "estimate", "build/net", "--no-synth", "-q"]])
def test_global_flags_before_or_after_the_command(argv, workdir, monkeypatch, capsys):
    import rtl4ml.progress
    assert cli.main(["convert", "model.pt", "--input-type", "fixed<16,6>", "--weight-type", "fixed<8,3,RND,SAT>",
                     "-o", "build/net"]) == 0
    calls = []
    monkeypatch.setattr(rtl4ml.progress, "configure", lambda **kw: calls.append(kw))
    assert cli.main(argv) == 0
    assert calls == [{"quiet": True, "verbose": "--verbose" in argv}]
