"""Design artifacts, estimation and the command line."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

import rtl4ml
from rtl4ml.cli import main

torch = pytest.importorskip("torch")


def _has(module: str) -> bool:
    import importlib.util
    return importlib.util.find_spec(module) is not None
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
    for name, msg in (("evil.pt", "not a torch.save file"), ("evil2.pt", "refused to load")):
        rc = main(["convert", str(tmp_path / name), "--input-type", "fixed<8,3>", "--weight-type", "fixed<8,3>",
                   "-o", str(tmp_path / "o")])
        captured = capsys.readouterr()
        assert rc == 2
        assert "this must never run" not in captured.out
        assert msg in captured.err and "never unpickles" in captured.err


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
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "layer '1' (Linear): weight_type fixed<6,2>" in err   # init weights of +-0.105 in 1/16 steps
    assert rtl4ml.load(tmp_path / "b").graph.input.op.shape == (30, 3)
    torch.save(nn.Sequential(nn.Linear(2, 2), OwnModule()), tmp_path / "own.pt")
    assert main(["convert", str(tmp_path / "own.pt"), "--input-type", "fixed<8,3>", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "OwnModule" in err and "rtl4ml.convert(model) in Python" in err and err.count("\n") == 1


def _convert_tiny(tmp_path, model, *extra) -> int:
    torch.save(model, tmp_path / "m.pt")
    return main(["convert", str(tmp_path / "m.pt"), "--input-type", "fixed<10,4>", "--weight-type",
                 "fixed<6,2,RND,SAT>", "-o", str(tmp_path / "b"), *extra])


def test_cli_options_with_a_saved_design_are_applied_or_refused(model, tmp_path, capsys):
    assert _convert_tiny(tmp_path, model, "--clock-ns", "2") == 0
    capsys.readouterr()
    saved = str(tmp_path / "b")
    assert main(["estimate", saved, "--no-synth", "--json", "--clock-ns", "1.5"]) == 0
    assert json.loads(capsys.readouterr().out)["clock_ns"] == 1.5
    assert main(["estimate", saved, "--no-synth", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["clock_ns"] == 2.0   # the saved one, not a default
    assert main(["convert", saved, "--name", "renamed", "--cmvm", "plain", "-o", str(tmp_path / "r")]) == 0
    d = rtl4ml.load(tmp_path / "r")
    assert (d.name, d.cmvm, d.clock_ns) == ("renamed", "plain", 2.0) and "module renamed" in d.verilog
    for argv, flags in [(["--weight-type", "fixed<8,3>"], "--weight-type"),
                        (["--input-type", "fixed<8,3>", "--result-type", "fixed<8,3>"], "--input-type, --result-type")]:
        assert main(["estimate", saved, "--no-synth", *argv]) == 2
        err = capsys.readouterr().err
        assert err == (f"rtl4ml estimate: error: {flags}: {saved} is a saved design, whose types are fixed; type "
                       "options apply when converting a model file (convert the model again to change them)\n")
    assert main(["convert", saved, "-o", str(tmp_path / "o"), "--inputs", "x.npy"]) == 2
    assert "--inputs compares the design with the float model" in capsys.readouterr().err


def test_cli_output_onto_a_file_is_one_clear_line(model, tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    torch.save(model, tmp_path / "m.pt")
    assert main(["convert", str(tmp_path / "m.pt"), "--input-type", "fixed<10,4>", "--weight-type", "fixed<6,2>",
                 "-o", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert err.endswith(f"rtl4ml convert: error: cannot write the design to {tmp_path / 'taken'}: it is a file, not a "
                        "folder (the design is written as net.v, tb_net.cpp and design.json in a folder)\n")
    assert "Traceback" not in err


@pytest.mark.parametrize("n", ["0", "-3", "ten"])
def test_cli_verify_rejects_a_sample_count_that_is_not_positive(n, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["verify", str(tmp_path), "--inputs", "x.npy", "-n", n])
    assert e.value.code == 2
    assert f"rtl4ml verify: error: argument -n: must be a positive integer, got '{n}'" in capsys.readouterr().err


def test_cli_inputs_first_n_and_no_samples(tmp_path):
    from rtl4ml.cli import CLIError, _load_inputs
    np.save(tmp_path / "x.npy", np.ones((30, 5)))
    assert _load_inputs(str(tmp_path / "x.npy"), 7, ["x"]).shape == (7, 5)
    assert _load_inputs(str(tmp_path / "x.npy"), None, ["x"]).shape == (30, 5)
    np.save(tmp_path / "e.npy", np.ones((0, 5)))
    with pytest.raises(CLIError, match=r"e.npy holds no samples \(shape \(0, 5\)\)"):
        _load_inputs(str(tmp_path / "e.npy"), None, ["x"])


def test_cli_warnings_are_one_line_each(model, tmp_path, capsys):
    torch.save(model, tmp_path / "m.pt")
    rc = main(["convert", str(tmp_path / "m.pt"), "--input-type", "fixed<10,4>", "--weight-type", "fixed<8,-3>",
               "--clock-ns", "0.1", "-o", str(tmp_path / "b")])
    err = capsys.readouterr().err.splitlines()
    assert rc == 0 and len(err) == 4
    assert err[0].startswith("rtl4ml convert: warning: layer '0' (Linear): weight_type fixed<8,-3>: ")
    assert err[1].startswith("rtl4ml convert: warning: layer '2' (Linear): weight_type fixed<8,-3>: ")
    assert err[2].startswith("rtl4ml convert: warning: clock_ns=0.1 is shorter than one adder")
    assert err[3].startswith("rtl4ml convert: warning: the design cannot meet clock_ns=0.1: its slowest operation")


@pytest.mark.hw
def test_cli_verify_warns_about_inputs_outside_the_input_type(tmp_path, capsys):
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(3, 2)), tmp_path / "m.pt")
    x = np.zeros((20, 3))
    x[4, 1] = 100.0
    np.save(tmp_path / "x.npy", x)
    rc = main(["verify", str(tmp_path / "m.pt"), "--input-type", "fixed<8,7>", "--weight-type", "fixed<8,0,RND,SAT>",
               "--inputs", str(tmp_path / "x.npy")])
    out = capsys.readouterr()
    assert rc == 0 and "RTL == emulator on all 20 samples" in out.out
    assert out.err == ("rtl4ml verify: warning: input 'x': 1 of 60 values lie outside the input type's range and wrap "
                       "around (WRAP); the first, x[4, 1] = 100, is outside fixed<8,7> [-64, 63.5] and becomes -28\n")


def test_cli_rough_inputs_have_clear_messages(model, tmp_path, capsys):
    torch.save(model, tmp_path / "m.pt")
    (tmp_path / "trunc.pt").write_bytes((tmp_path / "m.pt").read_bytes()[:400])
    (tmp_path / "notes.pt").write_text("not a model")
    (tmp_path / "m.onnx").write_bytes(b"\x08\x07\x12\x07pytorch")
    (tmp_path / "xgb.json").write_text(json.dumps({"learner": {"gradient_booster": {}}, "version": [2, 1, 0]}))
    (tmp_path / "m.ubj").write_bytes(b"{L\x00")
    (tmp_path / "m.keras").write_bytes(b"PK\x05\x06" + bytes(18))
    (tmp_path / "m.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(8))
    (tmp_path / "m.pkl").write_bytes(pickle.dumps({"a": 1}))
    cases = [
        (["--input-type", "fixed<200,100>", "--weight-type", "fixed<8,3>"], "m.pt",
         "input_type: fixed-point type 'fixed<200,100>' has 200 bits; rtl4ml handles types of at most 62 bits"),
        (["--input-type", "fixed<8,3>", "--weight-type", "fixed<80,3>"], "m.pt",
         "weight_type for layer '0': fixed-point type 'fixed<80,3>' has 80 bits"),
        ([], "trunc.pt", "trunc.pt (not a torch.save file, or truncated)"),
        ([], "notes.pt", "notes.pt (not a torch.save file, or truncated)"),
        ([], "m.onnx", "m.onnx: the ONNX model has no graph outputs"),
        ([], "xgb.json", "xgb.json: a tree model needs input_type"),
        ([], "m.ubj", "m.ubj: a tree model needs input_type"),
        (["--input-type", "fixed<8,3>"], "xgb.json", "xgb.json: booster None is not supported (only gbtree"),
        ([], "m.keras", "m.keras: Keras could not load the model" if _has("keras") else
                        "m.keras: the Keras frontend needs Keras 3: pip install 'rtl4ml[keras]'"),
        ([], "m.h5", "m.h5: a legacy HDF5 Keras file; rtl4ml reads Keras 3 .keras files: load the model with Keras "
                     "and re-save it with model.save('model.keras')"),
        ([], "m.pkl", "m.pkl: pickle files are not read (unpickling runs arbitrary code); save a scikit-learn model "
                      "with skops"),
    ]
    for extra, name, msg in cases:
        assert main(["convert", str(tmp_path / name), *extra, "-o", str(tmp_path / "o")]) == 2, name
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1 and "not an rtl4ml design" not in err, err
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    assert main(["convert", str(tmp_path / "other.json"), "-o", str(tmp_path / "o")]) == 2
    assert "not an rtl4ml design" in capsys.readouterr().err


def test_cli_reads_keras_files_and_format_overrides(tmp_path, capsys):
    """A .keras file by its name; --format keras for another name; --format onnx forces the ONNX reader."""
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu", name="fc"),
                          keras.layers.Dense(2, name="out")])
    rng = np.random.default_rng(0)
    m.set_weights([np.round(rng.normal(size=w.shape) * 4).astype(np.float32) / 4 for w in m.get_weights()])
    m.save(tmp_path / "m.keras")
    x = np.round(rng.normal(size=(50, 4)) * 4) / 4
    np.save(tmp_path / "x.npy", x)
    assert main(["convert", str(tmp_path / "m.keras"), "--input-type", "fixed<8,3>", "-o", str(tmp_path / "k")]) == 0
    want = keras.ops.convert_to_numpy(m(x.astype(np.float32)))
    np.testing.assert_array_equal(rtl4ml.load(tmp_path / "k").predict(x), want)
    (tmp_path / "m.bin").write_bytes((tmp_path / "m.keras").read_bytes())
    capsys.readouterr()
    assert main(["convert", str(tmp_path / "m.bin"), "--input-type", "fixed<8,3>", "-o", str(tmp_path / "b")]) == 2
    assert "m.bin is a Keras 3 model archive: name it model.keras, or pass format='keras' (--format keras)" in \
        capsys.readouterr().err
    assert main(["convert", str(tmp_path / "m.bin"), "--format", "keras", "--input-type", "fixed<8,3>",
                 "-o", str(tmp_path / "b")]) == 0
    np.testing.assert_array_equal(rtl4ml.load(tmp_path / "b").predict(x), want)
    capsys.readouterr()
    assert main(["convert", str(tmp_path / "m.keras"), "--format", "onnx", "-o", str(tmp_path / "o")]) == 2
    assert "m.keras: cannot read it as an ONNX model" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "k"), "--format", "design", "--clock-ns", "2", "-o",
                 str(tmp_path / "k2")]) == 0
    with pytest.raises(SystemExit):
        main(["convert", str(tmp_path / "m.keras"), "--format", "tflite", "-o", str(tmp_path / "t")])
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
