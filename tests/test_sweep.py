"""rtl4ml.sweep: search spaces, config checks, the Pareto front, and real sweeps on Ray and serially."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtl4ml.sweep import (Grid, Random, Sweep, SweepConfigError, from_dict, load_config, make_space, pareto_front,
                          parse_params, run_sweep)
from rtl4ml.sweep.results import dominates

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "sweep_jets.yaml"


# --------------------------------------------------------------------------- a tiny trainer


def tiny_data() -> dict:
    """2,000 training and 300 held-out jets of the packaged sample, standardized."""
    from rtl4ml.data import load_jets
    j = load_jets()
    x, y = j["features"].astype(np.float64), j["labels"].astype(np.int64)
    mean, std = x[:2000].mean(0), x[:2000].std(0)
    x = (x - mean) / std
    return {"x_train": x[:2000], "y_train": y[:2000], "x_test": x[2000:2300], "y_test": y[2000:2300]}


def tiny_train(config: dict, data: dict):
    """A 16-h-5 QAT MLP, a few epochs. Fails on purpose for hidden == 0; leaves a mark per call."""
    import uuid

    import torch

    import rtl4ml.nn as qnn
    Path(config["marks"], uuid.uuid4().hex).write_text(json.dumps(config))
    h = config["hidden"]
    if h == 0:
        raise ValueError("hidden must be positive (this trial fails on purpose)")
    torch.manual_seed(config.get("seed", 0))
    model = torch.nn.Sequential(qnn.QInput(16, init_f=4.0), qnn.QLinear(16, h, init_f=4.0), qnn.QReLU(h, init_f=4.0),
                                qnn.QLinear(h, 5, init_f=4.0))
    xt = torch.tensor(data["x_train"], dtype=torch.float32)
    yt = torch.tensor(data["y_train"])
    qnn.init_lazy(model, xt[:8])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(config.get("epochs", 2)):
        for idx in torch.randperm(len(xt)).split(500):
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx]) + config["beta"] * qnn.ebops(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model   # not calibrated: the sweep calibrates it on the training set


# --------------------------------------------------------------------------- spaces and configs


def test_grid_enumerates_the_product_in_order():
    space = Grid(parse_params({"a": [1, 2], "b": ["x", "y", "z"], "c": 7, "d": {"value": [3, 4]}}))
    configs = space.configs()
    assert len(configs) == len(space) == 6
    assert configs[0] == {"a": 1, "b": "x", "c": 7, "d": [3, 4]}
    assert [c["b"] for c in configs[:3]] == ["x", "y", "z"]      # the last list varies fastest
    assert {(c["a"], c["b"]) for c in configs} == {(a, b) for a in (1, 2) for b in "xyz"}


def test_random_search_is_seeded_and_stays_in_its_ranges():
    params = {"lr": {"low": 1e-4, "high": 1e-1, "log": True}, "width": {"low": 4, "high": 64, "int": True},
              "act": ["relu", "tanh"], "epochs": 3}
    a = Random(parse_params(params), n_trials=50, seed=1).configs()
    assert a == Random(parse_params(params), n_trials=50, seed=1).configs()
    assert a != Random(parse_params(params), n_trials=50, seed=2).configs()
    assert all(1e-4 <= c["lr"] <= 1e-1 and 4 <= c["width"] <= 64 and isinstance(c["width"], int) for c in a)
    assert {c["act"] for c in a} == {"relu", "tanh"} and {c["epochs"] for c in a} == {3}
    lrs = np.log10([c["lr"] for c in a])
    assert lrs.min() < -3 and lrs.max() > -2     # log-uniform: spread over the decades


def test_yaml_style_number_strings_become_numbers():
    space = make_space("grid", {"beta": ["1e-6", "2.5E-5"], "t": "fixed<8,3>"})
    assert space.configs()[0] == {"beta": 1e-6, "t": "fixed<8,3>"}
    assert space.configs()[1]["beta"] == 2.5e-5


@pytest.mark.parametrize("data, match", [
    ({"params": {"beta": [1]}, "epoch": 3}, r"unknown option 'epoch'.*did you mean 'params'|unknown option 'epoch'"),
    ({"params": {"beta": [1.0], "hiden": [8]}}, r"params.hiden: not an option of the jet_tagger.*did you mean .hidden."),
    ({"params": {"lr": {"low": 1, "high": 2}}, "trainer": "tests.test_sweep:tiny_train"},
     r"params.lr: a range .* needs search kind random or optuna"),
    ({"params": {"beta": []}}, r"params.beta: an empty list"),
    ({"params": {"lr": {"low": 2, "high": 1}}, "search": "random", "trainer": "tests.test_sweep:tiny_train"},
     r"params.lr: low \(2\) must be below high \(1\)"),
    ({"params": {"beta": [1.0]}, "search": {"kind": "random", "n_trials": 0}}, r"search.n_trials"),
    ({"params": {"beta": [1.0]}, "search": {"kind": "anneal"}}, r"search.kind: 'anneal'"),
    ({"params": {"beta": [1.0]}, "search": {"kind": "grid", "seed": 1}}, r"search: unknown key\(s\) \['seed'\]"),
    ({"params": {"beta": [1.0]}, "trainer": "no_such_module_xyz:train"}, r"trainer: cannot import 'no_such_module_xyz'"),
    ({"params": {"beta": [1.0]}, "trainer": "tests.test_sweep:no_such_fn"}, r"trainer: .* has no function 'no_such_fn'"),
    ({"params": {"beta": [1.0]}, "trainer": "my_trainer"}, r"trainer: 'my_trainer' is not built in"),
    ({"params": {"beta": [1.0]}, "trainer": None}, r"trainer: missing"),
    ({"params": {"beta": [1.0]}, "objectives": {"acc": "max"}}, r"objectives: unknown metric 'acc'.*accuracy"),
    ({"params": {"beta": [1.0]}, "objectives": {"lut": "min"}}, r"objectives.lut: Yosys figures need synth: true"),
    ({"params": {"beta": [1.0]}, "objectives": {"accuracy": "up"}}, r"objectives.accuracy: 'up' must be"),
    ({"params": {"beta": [1.0]}, "verify": -3}, r"verify: expected true, false or a positive number"),
    ({"params": {"beta": [1.0]}, "data": {"path": "nowhere.npz"}}, r"data.path: .*nowhere.npz does not exist"),
    ({"params": {"beta": [1.0]}, "family": "ice40"}, r"family: 'ice40'"),
    ({"search": "grid"}, r"params: missing"),
])
def test_bad_configs_are_refused_naming_the_key(data, match):
    with pytest.raises(SweepConfigError, match=match):
        from_dict(data, base_dir=ROOT)


def test_a_train_function_with_the_wrong_arguments_is_refused():
    with pytest.raises(SweepConfigError, match="takes 3 positional arguments"):
        Sweep(Grid(parse_params({"a": [1]})), train=lambda a, b, c: None)


def test_the_yaml_file_error_names_the_file(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("params:\n  beta: [1.0e-6]\nworkerz: 2\n")
    with pytest.raises(SweepConfigError, match=r"s.yaml: unknown option 'workerz' \(did you mean 'workers'\?\)"):
        load_config(p)
    p.write_text("params: [\n")
    with pytest.raises(SweepConfigError, match="not valid YAML"):
        load_config(p)


# --------------------------------------------------------------------------- the Pareto front


records = st.lists(st.fixed_dictionaries({
    "accuracy": st.floats(0, 1, allow_nan=False), "luts_estimate": st.integers(0, 50),
    "status": st.sampled_from(["ok", "ok", "ok", "failed"]), "verify": st.sampled_from(["ok", "ok", "mismatch"]),
}), max_size=25)


@settings(max_examples=200, deadline=None)
@given(records)
def test_the_front_is_exactly_the_non_dominated_verified_trials(recs):
    obj = {"accuracy": "max", "luts_estimate": "min"}
    front = pareto_front(recs, obj)
    good = [r for r in recs if r["status"] == "ok" and r["verify"] == "ok"]
    assert all(r in good for r in front)
    for r in good:
        dominated = any(dominates(o, r, obj) for o in good)
        on_front = any(o["accuracy"] == r["accuracy"] and o["luts_estimate"] == r["luts_estimate"] for o in front)
        assert dominated != on_front     # each verified trial is dominated, or (its figures are) on the front
    assert [r["accuracy"] for r in front] == sorted((r["accuracy"] for r in front), reverse=True)
    assert [r["luts_estimate"] for r in front] == sorted(r["luts_estimate"] for r in front)[::-1]


# --------------------------------------------------------------------------- a sweep on Ray


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _mtimes(out: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in (out / "trials").glob("*.json")}


@pytest.mark.hw
def test_a_sweep_on_ray_records_failures_writes_the_front_and_resumes(ray_local, tmp_path, monkeypatch):
    monkeypatch.setenv("RTL4ML_CACHE", str(tmp_path / "cache"))
    marks = tmp_path / "marks"
    marks.mkdir()
    space = Grid(parse_params({"hidden": [0, 2, 3], "beta": [0.0, 1e-4], "epochs": 4, "seed": 0,
                               "marks": str(marks), "clock_ns": 2.5}))
    # verify=False: a Verilator build per design takes 10-30 s here; the example's test verifies
    sweep = Sweep(space, train=tiny_train, data=tiny_data, verify=False, name="tiny")
    out = tmp_path / "out"
    lines: list[str] = []
    r = run_sweep(sweep, out, log=lines.append)

    assert r.ran == 6 and r.skipped == 0 and len(r.records) == 6 and r.backend == "ray"
    assert len(list(marks.iterdir())) == 6
    failed = [x for x in r.records if x["status"] == "failed"]
    assert [x["config"]["hidden"] for x in failed] == [0, 0]
    assert all(x["stage"] == "train" and "hidden must be positive" in x["error"] for x in failed)
    ok = [x for x in r.records if x["status"] == "ok"]
    assert len(ok) == 4
    assert {x["pid"] for x in ok}.isdisjoint({os.getpid()})          # ran in Ray workers, not here
    for x in ok:
        assert x["verify"] == "skipped" and x["verify_samples"] == 0
        assert x["emulator_exact"] is True and x["accuracy"] == x["float_accuracy"]
        assert x["calibrated_by_sweep"] is True
        assert x["ebops"] > 0 and x["adders"] > 0 and x["latency_ns"] == 2.5 * x["latency_cycles"]
        assert x["seed"] == 0 and x["clock_ns"] == 2.5
    wider = {x["config"]["beta"]: x["ebops"] for x in ok if x["config"]["hidden"] == 3}
    narrower = {x["config"]["beta"]: x["ebops"] for x in ok if x["config"]["hidden"] == 2}
    assert wider[0.0] > narrower[0.0]

    # the table: one row per trial with its configuration, figures and status
    with (out / "results.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6 and {row["trial_id"] for row in table} == {x["trial_id"] for x in r.records}
    for col in ("hidden", "beta", "seed", "accuracy", "float_accuracy", "ebops", "adders", "luts_estimate", "lut",
                "ff", "latency_ns", "verify", "status", "error"):
        assert col in table[0], col
    assert sorted(row["status"] for row in table) == ["failed"] * 2 + ["ok"] * 4
    assert len(json.loads((out / "results.json").read_text())) == 6

    # the front: non-dominated, its designs written, and they predict what the records say
    import rtl4ml
    front = json.loads((out / "front.json").read_text())
    assert front and [x["trial_id"] for x in front] == [x["trial_id"] for x in r.front]
    for x in ok:
        dominated = any(dominates(y, x, sweep.objectives) for y in ok)
        figures = lambda r: tuple(r[k] for k in sweep.objectives)  # noqa: E731
        assert dominated != any(figures(y) == figures(x) for y in front)     # ties: the first one is kept
    data = tiny_data()
    assert len(r.front_dirs) == len(front)
    for folder, x in zip(r.front_dirs, front):
        assert list(folder.glob("*.v")) and x["trial_id"] in folder.name
        d = rtl4ml.load(folder)
        acc = float((d.predict(data["x_test"]).argmax(1) == data["y_test"]).mean())
        assert acc == x["accuracy"]
    assert r.report is not None and r.report.exists() and "<html" in r.report.read_text()[:200].lower()

    # started again: nothing new runs, nothing is rewritten
    before = _mtimes(out)
    r2 = run_sweep(sweep, out, log=lines.append)
    assert r2.ran == 0 and r2.skipped == 6 and len(list(marks.iterdir())) == 6
    assert _mtimes(out) == before
    assert [x["trial_id"] for x in r2.front] == [x["trial_id"] for x in r.front]
    assert any("0 trial(s) to run, 6 already finished" in m for m in lines)

    # retry_failed runs (only) the failed trials again
    r3 = run_sweep(sweep, out, retry_failed=True)
    assert r3.ran == 2 and len(list(marks.iterdir())) == 8 and len(r3.failed) == 2


@pytest.mark.hw
def test_an_interrupted_sweep_resumes_with_the_missing_trials(tmp_path, monkeypatch):
    """A results directory with some records: the next run does only the others (serial runner)."""
    monkeypatch.setenv("RTL4ML_CACHE", str(tmp_path / "cache"))
    marks = tmp_path / "marks"
    marks.mkdir()
    space = Grid(parse_params({"hidden": [0, 2, 0], "beta": 0.0, "epochs": 1, "marks": str(marks)}))
    sweep = Sweep(space, train=tiny_train, data=tiny_data, verify=False, report=False)
    out = tmp_path / "out"
    r = run_sweep(sweep, out, backend="serial")
    assert r.ran == 2 and len(r.records) == 2          # the third configuration repeats the first
    ok = next(x for x in r.records if x["status"] == "ok")
    assert ok["verify"] == "skipped"
    (out / "trials" / f"{ok['trial_id']}.json").unlink()    # as if the run stopped before it finished
    r2 = run_sweep(sweep, out, backend="serial")
    assert r2.ran == 1 and r2.skipped == 1 and len(list(marks.iterdir())) == 3
    assert [x["status"] for x in r2.records] == ["failed", "ok"]


# --------------------------------------------------------------------------- the example and the CLI


def test_the_packaged_example_is_the_documented_one():
    from rtl4ml.sweep.cli import example_config
    assert example_config() == EXAMPLE.read_text()


@pytest.mark.hw
def test_the_example_config_parses_and_runs_at_tiny_size(tmp_path, monkeypatch):
    monkeypatch.setenv("RTL4ML_CACHE", str(tmp_path / "cache"))
    sweep = load_config(EXAMPLE)
    assert len(sweep.space) == 12 and sweep.synth and sweep.objectives == {"accuracy": "max", "lut": "min"}
    import yaml
    data = yaml.safe_load(EXAMPLE.read_text())
    data["params"].update(beta=[5.0e-5], hidden=[[4]], epochs=1, float_epochs=1)
    data.update(synth=False, objectives={"accuracy": "max", "luts_estimate": "min"}, verify=50)
    r = run_sweep(from_dict(data, base_dir=ROOT), tmp_path / "out", backend="serial")
    assert [x["status"] for x in r.records] == ["ok"], r.records[0].get("error")
    x = r.records[0]
    assert x["verify"] == "ok" and x["emulator_exact"] and 0.2 < x["accuracy"] < 1 and x["clock_ns"] == 5.0
    assert len(r.front) == 1 and (tmp_path / "out" / "front.csv").exists()


def test_the_cli_writes_lists_and_refuses(tmp_path, monkeypatch, capsys):
    from rtl4ml import cli
    monkeypatch.chdir(tmp_path)
    assert cli.main(["sweep", "--write-example", "s.yaml"]) == 0
    assert cli.main(["sweep", "s.yaml", "--dry-run", "-o", "elsewhere"]) == 0
    out = capsys.readouterr().out
    assert "12 trials (grid), results in elsewhere" in out and out.count("to run") == 12
    Path("bad.yaml").write_text("params:\n  beta: [1.0e-6]\n  hiden: [8]\n")
    assert cli.main(["sweep", "bad.yaml"]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: params.hiden: not an option of the jet_tagger trainer (did you mean 'hidden'?)" in err
    assert cli.main(["sweep", "--write-example", "s.yaml"]) == 2     # never overwrites


def test_an_optuna_search_runs_serially_and_resumes(tmp_path, monkeypatch):
    pytest.importorskip("optuna")
    monkeypatch.setenv("RTL4ML_CACHE", str(tmp_path / "cache"))
    marks = tmp_path / "marks"
    marks.mkdir()
    data = {"trainer": "tests.test_sweep:tiny_train", "data": "tests.test_sweep:tiny_data",
            "search": {"kind": "optuna", "n_trials": 3, "seed": 0},
            "params": {"hidden": [2, 3], "beta": {"low": 1e-6, "high": 1e-3, "log": True}, "epochs": 1,
                       "marks": str(marks)},
            "verify": False, "report": False}
    r = run_sweep(from_dict(data, base_dir=ROOT), tmp_path / "out", backend="serial")
    assert r.ran == 3 and [x["status"] for x in r.records] == ["ok"] * 3
    assert all(x["config"]["hidden"] in (2, 3) and 1e-6 <= x["config"]["beta"] <= 1e-3 for x in r.records)
    r2 = run_sweep(from_dict(data, base_dir=ROOT), tmp_path / "out", backend="serial")
    assert r2.ran == 0 and len(r2.records) == 3 and len(list(marks.iterdir())) == 3
    data["search"]["n_trials"] = 4
    r3 = run_sweep(from_dict(data, base_dir=ROOT), tmp_path / "out", backend="serial")
    assert r3.ran == 1 and len(r3.records) == 4
