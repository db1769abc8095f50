"""Design artifacts, estimation and the command line."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import rtl4ml
from rtl4ml.cli import main

torch = pytest.importorskip("torch")
nn = torch.nn


@pytest.fixture
def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3))


@pytest.fixture
def design(model):
    return rtl4ml.convert(model, input_type="fixed<10,4>", weight_type="fixed<6,2,RND,SAT>",
                          result_type="fixed<10,5,RND,SAT>", clock_ns=2.0, name="tiny")


def test_write_and_load_round_trip(design, tmp_path, rng):
    out = design.write(tmp_path / "tiny")
    assert sorted(p.name for p in out.iterdir()) == ["design.json", "tb_tiny.cpp", "tiny.v"]
    assert (out / "tiny.v").read_text() == design.verilog
    d2 = rtl4ml.load(out)
    assert d2.verilog == design.verilog and d2.clock_ns == 2.0 and d2.name == "tiny"
    x = rng.normal(size=(200, 5)) * 4
    np.testing.assert_array_equal(d2.predict(x), design.predict(x))
    with pytest.raises(ValueError, match="not an rtl4ml design"):
        (tmp_path / "bad.json").write_text(json.dumps({"format": "other"}))
        rtl4ml.load(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="no rtl4ml design"):
        rtl4ml.load(tmp_path / "nothing")


def test_analytic_estimate(design):
    a = design.estimate(synth=False)
    assert a.lut is None and a.adders > 0 and a.adder_bits > a.adders
    assert a.latency_cycles == design.netlist.latency >= 1
    assert a.latency_ns == a.latency_cycles * 2.0
    assert a.critical_path_ns <= 2.0
    slow = rtl4ml.convert(design.graph, clock_ns=50.0)
    assert slow.estimate(synth=False).latency_cycles == 1  # everything fits one stage


@pytest.mark.hw
def test_yosys_estimate_tracks_adder_bits_and_is_cached(design):
    e = design.estimate()
    assert e.dsp == 0 and e.bram == 0
    assert 0.6 * e.adder_bits <= e.lut <= 1.3 * e.adder_bits
    assert e.ff > 0 and e.carry > 0
    e2 = design.estimate()
    assert e2.lut == e.lut and e2.ff == e.ff


def test_cli_convert_verify_estimate(model, tmp_path, rng, capsys):
    torch.save(model, tmp_path / "m.pt")
    x = rng.normal(size=(300, 5)) * 3
    np.save(tmp_path / "x.npy", x)
    rc = main(["convert", str(tmp_path / "m.pt"), "--input-type", "fixed<10,4>", "--weight-type", "fixed<6,2,RND,SAT>",
               "--result-type", "fixed<10,5,RND,SAT>", "--clock-ns", "2", "--name", "tiny", "-o", str(tmp_path / "b")])
    assert rc == 0
    assert "adders" in capsys.readouterr().out
    assert rtl4ml.load(tmp_path / "b").verilog.count("module tiny") == 1
    rc = main(["estimate", str(tmp_path / "b"), "--no-synth", "--json"])
    est = json.loads(capsys.readouterr().out)
    assert rc == 0 and est["adders"] > 0 and est["lut"] is None
    rc = main(["verify", str(tmp_path / "b"), "--inputs", str(tmp_path / "x.npy")])
    assert rc == 0
    assert "RTL == emulator on all 300 samples" in capsys.readouterr().out


def test_cli_cmvm_knob(model, tmp_path, capsys):
    torch.save(model, tmp_path / "m.pt")
    common = ["estimate", str(tmp_path / "m.pt"), "--no-synth", "--json", "--input-type", "fixed<10,4>",
              "--weight-type", "fixed<8,3>"]
    main(common + ["--cmvm", "plain"])
    plain = json.loads(capsys.readouterr().out)
    main(common + ["--cmvm-depth-slack", "none"])
    cse = json.loads(capsys.readouterr().out)
    assert cse["adder_bits"] < plain["adder_bits"]
    assert main(common + ["--cmvm-depth-slack", "deep"]) == 2
    assert "--cmvm-depth-slack must be an integer or 'none'" in capsys.readouterr().err


def test_cli_per_layer_types(model, tmp_path, capsys):
    torch.save(model, tmp_path / "m.pt")
    rc = main(["estimate", str(tmp_path / "m.pt"), "--no-synth", "--input-type", "fixed<10,4>",
               "--weight-type", "0=fixed<6,2>", "--weight-type", "2=fixed<4,1>"])
    assert rc == 0 and "adder_bits" in capsys.readouterr().out


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_cli_refuses_pickled_code(tmp_path, capsys):
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump(Evil(), f)
    torch.save({"model": nn.Linear(2, 2), "x": Evil()}, tmp_path / "evil2.pt")
    for name in ("evil.pt", "evil2.pt"):
        rc = main(["convert", str(tmp_path / name), "--input-type", "fixed<8,3>", "--weight-type", "fixed<8,3>",
                   "-o", str(tmp_path / "o")])
        captured = capsys.readouterr()
        assert rc == 2
        assert "this must never run" not in captured.out
        assert "refused to load" in captured.err and "never unpickles" in captured.err


def test_cli_errors_are_one_line(tmp_path, capsys, model):
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    cases = [
        (["verify", str(tmp_path / "missing.pt"), "--inputs", "x.npy"], "does not exist"),
        (["convert", str(tmp_path / "sd.pt"), "-o", str(tmp_path / "o")], "state_dict"),
    ]
    for argv, msg in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and err.count("\n") == 1


class OwnModule(nn.Module):
    def forward(self, x):
        return x


def test_cli_input_shape_and_refused_user_class(tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(90, 4)), tmp_path / "flat.pt")
    rc = main(["convert", str(tmp_path / "flat.pt"), "--input-type", "fixed<10,4>", "--weight-type", "fixed<6,2>",
               "--input-shape", "30,3", "-o", str(tmp_path / "b")])
    assert rc == 0, capsys.readouterr().err
    assert rtl4ml.load(tmp_path / "b").graph.input.op.shape == (30, 3)
    torch.save(nn.Sequential(nn.Linear(2, 2), OwnModule()), tmp_path / "own.pt")
    assert main(["convert", str(tmp_path / "own.pt"), "--input-type", "fixed<8,3>", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "OwnModule" in err and "rtl4ml.convert(model) in Python" in err and err.count("\n") == 1
