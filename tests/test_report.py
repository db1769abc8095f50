"""The HTML report: its sections and numbers, self-containment, the CLI, and a real browser."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

import rtl4ml
from rtl4ml.cli import main
from rtl4ml.report import render_report, write_report
from rtl4ml.report.collect import collect, weight_bits
from rtl4ml.report.evaluate import auc, classify, pareto_front, roc_curve
from rtl4ml.report.sections import SECTIONS, comparison
from rtl4ml.report.stages import pipeline_stages

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib")
nn = torch.nn

SECTION_IDS = [sid for sid, _ in SECTIONS]


class Page(HTMLParser):
    """The ids, image sources, links and scripts of a page."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.imgs: list[str] = []
        self.refs: list[str] = []
        self.scripts = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))
        self.refs += [v for k, v in attrs if k in ("src", "href") and v is not None]
        self.scripts += tag == "script"


def check_self_contained(text: str) -> Page:
    """Every image an inline PNG, every link an anchor, no script, nothing fetched."""
    page = Page(text)
    assert page.imgs and page.scripts == 0
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert all(r.startswith(("data:", "#")) for r in page.refs), [r[:40] for r in page.refs]
    without_images = re.sub(r'src="data:[^"]*"', "", text)
    assert not re.search(r"(https?|ftp|file):|url\(|@import", without_images, re.IGNORECASE)
    assert "default-src 'none'" in text   # the CSP: a browser refuses any fetch
    return page


def section_text(text: str, sid: str) -> str:
    m = re.search(rf'<section id="{sid}">(.*?)</section>', text, re.DOTALL)
    assert m, f"no section {sid}"
    return m.group(1)


@pytest.fixture(scope="module")
def tiny():
    """A 6-8-3 MLP with pruned weights, inputs, and noisy labels that it mostly gets right."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[0].weight[:, :2] = 0.0          # two inputs pruned away in the first layer
        model[2].weight[1, ::2] = 0.0
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 6)) * 2
    with torch.no_grad():
        y = model(torch.tensor(x, dtype=torch.float32)).argmax(1).numpy()
    flip = rng.random(len(y)) < 0.2
    y[flip] = rng.integers(0, 3, flip.sum())
    d = rtl4ml.convert(model, input_type="fixed<10,4>", weight_type="fixed<6,2,RND,SAT>",
                       result_type="fixed<10,5,RND,SAT>", clock_ns=1.5, name="tiny")
    return d, model, x, y


def test_report_has_every_section_and_is_self_contained(tiny, tmp_path):
    d, model, x, y = tiny
    path = d.report(tmp_path, x, y, reference=model, verify=False)
    assert path == tmp_path / "report.html"
    text = path.read_text()
    page = check_self_contained(text)
    assert page.ids[:len(SECTION_IDS)] == SECTION_IDS
    # 2 weight heatmaps, activations, layer bars, stages, 1 histogram, 1 ROC plot
    assert len(page.imgs) == 7
    hw_acc = (d.predict(x).argmax(1) == y).mean()
    assert f"{hw_acc:.4f} hardware" in section_text(text, "summary")
    for n in d.graph.nodes:
        assert f"<td>{n.name}</td>" in section_text(text, "graph")
    pruned = int((d.graph["0"].op.effective_weight == 0).sum())
    assert f"({pruned} of 48 pruned, grey)" in section_text(text, "bitwidths")
    assert "Yosys not run" in section_text(text, "resources")
    assert f"{d.pipeline.latency_cycles} stages" in section_text(text, "pipeline")
    assert "max in LSBs" in section_text(text, "emulation")
    assert "not run" in section_text(text, "verification")
    assert "AUC (float)" in section_text(text, "classification")


def test_report_without_data_or_reference_says_so(tiny):
    d, _, x, _ = tiny
    text = render_report(d)
    check_self_contained(text)
    assert render_report(d) == text   # deterministic: same design, same bytes
    for sid in ("emulation", "verification", "classification"):
        assert "no inputs given" in section_text(text, sid)
    text = render_report(rtl4ml.Design.from_json(d.to_json()), x, verify=False)
    assert "no reference model" in section_text(text, "emulation")
    assert "no labels given" in section_text(text, "classification")
    assert Page(text).ids[:len(SECTION_IDS)] == SECTION_IDS


def test_design_report_compares_with_the_model_it_was_converted_from(tiny, tmp_path):
    d, _, x, _ = tiny
    assert d.model is not None   # rtl4ml.convert keeps the torch model (Design.model)
    text = d.report(tmp_path / "r.html", x[:100], verify=False).read_text()
    assert "max in LSBs" in section_text(text, "emulation")


def test_reference_as_module_function_or_outputs(tiny):
    d, model, x, _ = tiny
    model.train()
    with torch.no_grad():
        want = model.double()(torch.tensor(x)).numpy()
    model.float()
    forms = [model, lambda a: want, want]
    stats = [collect(d, "t", x, reference=r, verify=False).comparisons[0].stats for r in forms]
    assert stats[0] == stats[1] == stats[2]
    np.testing.assert_allclose(stats[0].max_abs, np.abs(d.predict(x) - want).max())
    assert model.training and model[0].weight.dtype == torch.float32   # the caller's module is untouched
    with pytest.raises(ValueError, match="reference output"):
        collect(d, "t", x, reference=want[:, :2], verify=False)
    model.eval()


def test_every_output_is_reported(rng):
    """Two outputs: both compared with the reference, the one that fits the labels scored."""
    g = rtl4ml.graph.GraphBuilder()
    x = g.input(rtl4ml.FixedTypeArray.full("fixed<8,3>", (4,)))
    w1, w2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 1))
    d = rtl4ml.Design(g.build([g.dense(x, w1, np.zeros(3), name="scores", weight_type="fixed<8,3,RND,SAT>"),
                               g.dense(x, w2, np.zeros(1), name="energy", weight_type="fixed<8,3,RND,SAT>")]))
    xs = rng.normal(size=(300, 4))
    y = (xs @ w1).argmax(1)
    f = collect(d, "two", xs, y, reference=lambda a: (a @ w1, a @ w2), verify=False)
    assert [c.name for c in f.comparisons] == ["scores", "energy"]
    scores, energy = f.classifications
    assert scores.hardware.accuracy > 0.8 and len(scores.hardware.curves) == 3 and scores.agreement > 0.8
    assert energy.hardware is None and "labels up to 2" in energy.note
    with pytest.raises(ValueError, match="gives 1 outputs"):
        collect(d, "two", xs, reference=lambda a: a @ w1, verify=False)
    with pytest.raises(ValueError, match="need the inputs"):
        render_report(d, y=y)


def test_weight_bits_are_code_bits_and_pruned_weights_have_none():
    w = np.array([[0.5, -0.75, 3.0], [0.0, -1.0, 0.3125]])
    g = rtl4ml.graph.GraphBuilder()
    x = g.input(rtl4ml.FixedTypeArray.full("fixed<8,3>", (2,)))
    d = rtl4ml.Design(g.build(g.dense(x, w, np.zeros(3))))
    np.testing.assert_array_equal(weight_bits(d.graph.nodes[1].op), [[1, 3, 2], [0, 1, 3]])


def test_roc_auc_match_pairwise_counting():
    rng = np.random.default_rng(3)
    for _ in range(20):
        s = rng.integers(0, 6, 80).astype(float)        # many ties
        pos = rng.random(80) < 0.4
        fpr, tpr = roc_curve(s, pos)
        assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)
        p, n = s[pos], s[~pos]
        pairs = (p[:, None] > n[None]).mean() + 0.5 * (p[:, None] == n[None]).mean()
        assert auc(fpr, tpr) == pytest.approx(pairs)
    assert auc(*roc_curve([3, 2, 1, 0], [1, 1, 0, 0])) == 1.0
    assert auc(*roc_curve([3, 2, 1, 0], [0, 0, 1, 1])) == 0.0
    c = classify(np.array([[2.0, 1, 0], [0, 2, 1], [0, 1, 2], [2, 0, 1]]), np.array([0, 1, 2, 1]))
    assert c.accuracy == 0.75 and [k.label for k in c.curves] == [0, 1, 2]


def test_pareto_front():
    lut = [100, 200, 150, 300, 200]
    acc = [0.70, 0.80, 0.69, 0.80, np.nan]
    np.testing.assert_array_equal(pareto_front(lut, acc), [True, True, False, False, False])


@pytest.mark.parametrize("clock_ns", [1.5, 2.5, 20.0])
def test_stage_critical_paths_match_the_scheduler(tiny, clock_ns):
    d = rtl4ml.Design(tiny[0].graph, clock_ns=clock_ns)
    stages = pipeline_stages(d.netlist)
    assert tuple(s.delay_ns for s in stages) == pytest.approx(d.pipeline.stage_delay_ns)
    with_logic = {s.layer for s in d.estimate(synth=False).layers if s.adders}
    assert with_logic <= {name for s in stages for name in s.layers}
    assert all(set(s.path) <= set(s.layers) for s in stages)


def test_comparison_report(tiny, tmp_path):
    d, model, x, y = tiny
    coarse = rtl4ml.convert(model, input_type="fixed<8,4>", weight_type="fixed<3,1,RND,SAT>",
                            result_type="fixed<8,5,RND,SAT>", clock_ns=1.5, name="coarse")
    path = write_report([d, coarse], tmp_path / "cmp.html", x, y, reference=model, verify=False,
                        labels=["fine", "coarse"])
    text = path.read_text()
    page = check_self_contained(text)
    assert page.ids[0] == "comparison"
    for i in (1, 2):
        assert f"design-{i}" in page.ids and all(f"design-{i}-{s}" in page.ids for s in SECTION_IDS)
    cmp = section_text(text, "comparison")
    assert "<td>fine</td>" in cmp and "<td>coarse</td>" in cmp and "analytic estimate" in cmp
    assert "accuracy against LUTs" in cmp   # the Pareto plot
    facts = [collect(d, "fine"), collect(coarse, "coarse")]   # no inputs: no accuracy
    assert "Pareto plot needs" in comparison(facts)


def test_cli_report(tiny, tmp_path, capsys):
    d, _, x, y = tiny
    a = d.write(tmp_path / "a")
    rtl4ml.Design(d.graph, name="tiny", clock_ns=4.0).write(tmp_path / "b")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    io = ["--inputs", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--no-verify"]
    assert main(["report", str(a), *io]) == 0
    text = (a / "report.html").read_text()
    assert "no reference model" in section_text(text, "emulation") and "AUC (hardware)" in text
    out = tmp_path / "cmp.html"
    assert main(["report", str(a), str(tmp_path / "b" / "design.json"), "-o", str(out), *io]) == 0
    cmp = section_text(out.read_text(), "comparison")
    assert "<td>a</td>" in cmp and "<td>b</td>" in cmp
    assert main(["report", str(a), "--labels", str(tmp_path / "y.npy")]) == 2
    assert "--labels needs --inputs" in capsys.readouterr().err


@pytest.mark.hw
def test_report_shows_rtl_verification(rng):
    g = rtl4ml.graph.GraphBuilder()
    x = g.input(rtl4ml.FixedTypeArray.full("fixed<6,3>", (3,)))
    d = rtl4ml.Design(g.build(g.dense(x, np.array([[1.0, -0.5], [0.25, 0], [2, 1]]), np.zeros(2))), name="little")
    text = section_text(render_report(d, rng.normal(size=(200, 3))), "verification")
    assert "bit-exact" in text and "RTL == emulator on all 200 samples" in text


# ------------------------------------------------------------------ a real browser

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--enable-logging=stderr", "--v=0"]
CONSOLE = re.compile(r":CONSOLE[:(]")   # Chromium's log lines for the page's console (errors, CSP refusals)


def chromium() -> str:
    exe = shutil.which("chromium")
    if exe is None:
        if os.environ.get("RTL4ML_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is not installed but RTL4ML_REQUIRE_CHROMIUM is set (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return exe


def open_in_chromium(exe: str, html_path, work) -> tuple[str, list[str], object]:
    """Open a file in headless Chromium: its DOM after loading, its console lines, the screenshot."""
    shot = work / "shot.png"
    r = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={work / 'profile'}", f"--screenshot={shot}",
                        "--dump-dom", "--window-size=1280,4000", f"file://{html_path.resolve()}"],
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout, [line for line in r.stderr.splitlines() if CONSOLE.search(line)], shot


def page_problems(dom: str, console: list[str], ids: list[str]) -> list[str]:
    found = set(Page(dom).ids)
    return console + [f"section {i!r} not rendered" for i in ids if i not in found]


def test_report_renders_in_chromium(tiny, tmp_path):
    from matplotlib.image import imread
    exe = chromium()
    d, model, x, y = tiny
    path = d.report(tmp_path / "report.html", x, y, reference=model, verify=False)
    dom, console, shot = open_in_chromium(exe, path, tmp_path)
    assert page_problems(dom, console, SECTION_IDS) == []
    assert dom.count("<img") == path.read_text().count("<img")
    image = imread(shot)
    assert image.shape[:2] == (4000, 1280)
    ink = (image[..., :3] < 0.9).any(axis=2).mean()   # not a blank page: text, tables, plots
    assert ink > 0.05 and len(np.unique(image.reshape(-1, image.shape[2])[::97], axis=0)) > 50

    # the same check fails on a broken page: a fetch the policy blocks, a script error (the
    # policy relaxed so that the script runs at all), a missing section
    broken = tmp_path / "broken.html"
    broken.write_text(path.read_text().replace('id="pipeline"', 'id="nothing"')
                      .replace("style-src 'unsafe-inline'", "style-src 'unsafe-inline'; script-src 'unsafe-inline'")
                      .replace("</main>", '<img src="https://example.invalid/x.png">'
                                          "<script>undefinedFunction()</script></main>"))
    (tmp_path / "b").mkdir()
    dom, console, _ = open_in_chromium(exe, broken, tmp_path / "b")
    problems = page_problems(dom, console, SECTION_IDS)
    assert any("Uncaught ReferenceError: undefinedFunction" in p for p in problems), problems
    assert any("example.invalid" in p and "Content Security Policy" in p for p in problems), problems
    assert "section 'pipeline' not rendered" in problems
