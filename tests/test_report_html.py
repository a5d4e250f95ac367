"""The HTML report (deltaprop.report_html, ``deltaprop report``, ``train --report``), read as text and in a browser.

The browser is Debian's chromium, driven by Playwright for Python through its
``executable_path`` (Playwright's own browser download is not needed). Each
page is opened from a file:// URL; the tests record the console and every
request the page makes, then check that every chart is drawn. Screenshots at
desktop and phone width go to /tmp/report_shots/.

Without chromium or Playwright the browser tests skip, saying how to enable
them; ``make test`` installs chromium through apt when it can. With
``DELTAPROP_REQUIRE_BROWSER=1`` (CI) a missing browser is a failure instead.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.errors import SaveError
from deltaprop.report_html import render_report, write_report
from test_diagnosis import EXPECTED, train_run

ROOT = Path(__file__).resolve().parents[1]
SHOTS = Path("/tmp/report_shots")
ENABLE = ("install Debian's chromium and Playwright for Python to run them: apt-get install chromium; "
          "pip install playwright (make test installs chromium when it runs as root or with passwordless sudo)")
CHROMIUM = shutil.which(os.environ.get("DELTAPROP_CHROMIUM") or "chromium") or shutil.which("chromium-browser")


# ---------------------------------------------------------------------------
# Runs and the browser
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def runs():
    """``{kind: (network, inspector log)}`` of the four real runs of test_diagnosis."""
    return {kind: train_run(kind) for kind in EXPECTED}


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = [what for what, ok in (("Playwright for Python", sync_playwright), ("chromium", CHROMIUM)) if not ok]
    if missing:
        if os.environ.get("DELTAPROP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"DELTAPROP_REQUIRE_BROWSER=1 but {' and '.join(missing)} missing; {ENABLE}")
        pytest.skip(f"the report's browser tests need {' and '.join(missing)}: {ENABLE}")
    args = ["--no-sandbox"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield b
        b.close()


#: every chart: its size on the page, and its data marks (lines, dots, bars) that have a size
_CHARTS_JS = """() => [...document.querySelectorAll('svg.chart')].map(svg => {
    const box = svg.getBoundingClientRect();
    const marks = [...svg.querySelectorAll('.data')].map(m => m.getBBox()).filter(b => b.width > 0 || b.height > 0);
    return {label: svg.getAttribute('aria-label'), width: box.width, height: box.height,
            marks: marks.length, all: svg.querySelectorAll('.data').length};
})"""


class Page:
    """A report opened from a file: its page, console messages, requests and charts."""

    def __init__(self, browser, path, width=1280, height=900, media=None):
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.console, self.errors, self.requests = [], [], []
        self.page.on("console", lambda m: self.console.append((m.type, m.text)))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        if media:
            self.page.emulate_media(media=media)
        self.url = Path(path).resolve().as_uri()
        self.page.goto(self.url, wait_until="load")
        self.charts = self.page.evaluate(_CHARTS_JS)
        self.text = self.page.inner_text("body")

    def check_offline_and_drawn(self):
        assert [m for m in self.console if m[0] in ("error", "warning")] == [], self.console
        assert self.errors == []
        assert self.requests == [self.url]  # the page itself, and nothing else
        assert self.charts, "no chart on the page"
        for chart in self.charts:
            assert chart["width"] > 50 and chart["height"] > 30, chart
            assert chart["marks"] >= 1 and chart["marks"] == chart["all"], chart

    def close(self):
        self.context.close()


def _open(browser, path, **kw):
    page = Page(browser, path, **kw)
    try:
        page.check_offline_and_drawn()
    except BaseException:
        page.close()
        raise
    return page


# ---------------------------------------------------------------------------
# In the browser
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_real_runs_in_the_browser(browser, runs, kind, tmp_path):
    net, log = runs[kind]
    path = write_report(tmp_path / "run.html", log, title=f"{kind} run")
    page = _open(browser, path)
    try:
        findings = page.page.locator("ol.findings li").all_inner_texts()
        expected = EXPECTED[kind]
        if expected is None:
            assert findings == [] and "No warnings" in page.text
            return
        kind_, epoch, layer, words = expected
        item = page.page.locator(f'li[data-kind="{kind_}"]').first.inner_text()
        assert item.startswith("Warning") and f"epoch {epoch}" in item and layer in item and words in item
        n_layers = len(log["network"]["layers"])
        titles = [c["label"] for c in page.charts]
        for key in ("delta_norm", "grad_W_norm", "update_ratio"):  # one small multiple per layer
            assert sum(t.startswith(f"{key} of ") for t in titles) == n_layers, titles
        assert any(t.startswith("loss by epoch") for t in titles)
    finally:
        page.close()


def test_the_checks_catch_a_page_that_loads_something_or_draws_nothing(browser, tmp_path):
    """The harness itself: a request, a console error and an empty chart each fail it."""
    cases = {"request": '<img src="http://127.0.0.1:9/x.png" alt=""><svg class="chart" width="200" height="100">'
                        '<rect class="data" width="20" height="20"/></svg>',
             "empty": '<svg class="chart" width="200" height="100"><path class="data" d=""/></svg>',
             "none": "<p>no chart</p>"}
    for name, body in cases.items():
        path = tmp_path / f"{name}.html"
        path.write_text(f"<!DOCTYPE html><html><body>{body}</body></html>")
        with pytest.raises(AssertionError):
            _open(browser, path)


def test_screenshots_at_desktop_and_phone_width_and_in_print(browser, runs, tmp_path):
    net, log = runs["high_lr"]
    rng = np.random.default_rng(0)
    rows = dp.gradcheck(net, rng.standard_normal((6, 10)), rng.integers(0, 3, 6), max_entries=10)
    path = write_report(tmp_path / "run.html", log, title="SGD with lr=2: too high", gradcheck=rows,
                        facts=[("network", "10-32-32-3 relu, softmax"), ("optimizer", "sgd lr=2")])
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name, width, height in (("desktop", 1280, 900), ("phone", 390, 844)):
        page = _open(browser, path, width=width, height=height)
        try:
            shot = SHOTS / f"report-{name}.png"
            page.page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            overflow = page.page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width, f"{name}: the page is {overflow} px wide in a {width} px window"
            assert "Gradient check" in page.text and "update ratio" in page.text.lower()
        finally:
            page.close()
    page = _open(browser, path, media="print")
    try:
        assert page.page.evaluate("getComputedStyle(document.querySelector('nav')).display") == "none"
        pdf = page.page.pdf()
        assert pdf[:5] == b"%PDF-" and len(pdf) > 20_000
    finally:
        page.close()


def test_train_report_and_report_command_end_to_end(browser, cli_run):
    for name in ("train.html", "checkpoint.html", "log.html", "model.html"):
        page = _open(browser, cli_run / name)
        try:
            assert "Curves" in page.text
            if name in ("train.html", "checkpoint.html"):
                assert "Per-layer flows" in page.text and "Histograms" in page.text
        finally:
            page.close()


# ---------------------------------------------------------------------------
# The document as text
# ---------------------------------------------------------------------------


def test_the_document_loads_nothing_and_holds_no_url(runs):
    text = render_report(runs["sigmoid"][1], gradcheck=[{"layer": 1, "W": 1e-9, "b": 1e-9}])
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?:|//[a-z]|<script|\bsrc=|url\(|@import", text, re.IGNORECASE)
    assert "default-src 'none'" in text  # the Content-Security-Policy forbids any load
    assert re.findall(r'href="([^"]*)"', text) and all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', text))


def test_every_string_is_escaped(runs):
    log = json.loads(json.dumps(runs["healthy"][1]))
    evil = '<img src=x onerror="alert(1)">&'
    log["network"]["layers"][0]["path"] = evil
    for epoch in log["epochs"]:
        epoch["layers"][0]["path"] = evil
        epoch["layers"][0]["dead_fraction"] = 0.9
    text = render_report(log, title="<script>alert(2)</script>", facts=[("data", "<b>x</b>")],
                         notes=["<i>stopped</i>"])
    assert "<img" not in text and "<script>" not in text and "<b>x" not in text and "<i>stopped" not in text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;" in text  # in the warning and the layer table
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in text


def test_a_value_that_is_not_finite_leaves_a_gap():
    rows = [{"epoch": e, "loss": v} for e, v in enumerate([1.0, None, 0.6, 0.5, float("nan"), 0.3], 1)]
    text = render_report(None, history=rows)
    (d,) = re.findall(r'<path class="data line s0" d="([^"]*)"', text)
    assert d.count("M") == 1 and d.count("L") == 1  # 0.6 → 0.5; 1.0 and 0.3 stand alone
    assert text.count('<circle class="data s0"') == 2
    assert "non-finite" not in text and "The training loss is not finite at epoch 2" in text


def test_a_log_of_curves_alone():
    rows = [{"epoch": e, "loss": 1 / e, "val_loss": 1.1 / e, "accuracy": 1 - 1 / (e + 1), "lr": 0.01}
            for e in range(1, 6)]
    text = render_report(None, history=rows)
    assert 'id="curves"' in text and 'id="flows"' not in text and 'id="histograms"' not in text
    assert "No warnings" in text and "need an Inspector log" in text
    assert text.count('class="chart"') == 3  # loss, accuracy, learning rate


def test_the_gradient_check_table_marks_failures():
    log = {"format": "deltaprop.inspector", "version": 1, "settings": {"every": 1, "bins": 4},
           "network": {"layers": [{"path": "layers.0", "kind": "Dense", "activation": "tanh", "n_in": 2, "n_out": 1}]},
           "epochs": [{"epoch": 1, "logs": {"loss": 1.0}, "samples": 0, "layers": []}]}
    text = render_report(log, gradcheck={"rows": [{"layer": 1, "W": 3e-9, "b": 2e-4}], "tol": 1e-6,
                                         "about": "On 8 random rows."})
    rows = re.findall(r"<tr><td class=num>1</td><td>layers.0</td><td>(\w+)</td><td class=num>([^<]+)</td>"
                      r"<td[^>]*>(\w+)</td></tr>", text)
    assert rows == [("W", "3.00e-09", "ok"), ("b", "2.00e-04", "FAIL")]


def test_write_report_is_atomic(runs, tmp_path):
    path = tmp_path / "r.html"
    path.write_text("old")
    write_report(path, runs["dead"][1])
    assert path.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]
    with pytest.raises(SaveError):
        write_report(tmp_path / "missing" / "r.html", runs["dead"][1])


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------


def deltaprop(*args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "deltaprop", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def ok(result):
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def one_error(result, status, fragment):
    assert result.returncode == status and "Traceback" not in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and fragment in result.stderr, result.stderr


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A small ``train --report`` run with a log and checkpoints, and ``deltaprop report`` of each of its files."""
    folder = tmp_path_factory.mktemp("cli")
    ok(deltaprop("train", "--data", "digits", "--hidden", "32", "--epochs", "2", "--report", "train.html",
                 "--report-every", "5", "--plot", "none", "--log", "log.jsonl", "--checkpoint-dir", "ckpt",
                 "--quiet", cwd=folder))
    folder.joinpath("checkpoint.out").write_text(ok(deltaprop("report", "ckpt", "--out", "checkpoint.html",
                                                              "--gradcheck", cwd=folder)).stdout)
    ok(deltaprop("report", "log.jsonl", "--out", "log.html", cwd=folder))
    ok(deltaprop("report", "model.safetensors", "-o", "model.html", cwd=folder))
    return folder


def test_train_writes_the_report_and_report_reads_every_kind_of_file(cli_run):
    train = (cli_run / "train.html").read_text()
    assert "deltaprop train: digits" in train and 'id="flows"' in train and "64→32" in train
    assert "every 5" in train and "test</b>: loss" in train
    checkpoint = (cli_run / "checkpoint.html").read_text()
    assert 'id="gradcheck"' in checkpoint and checkpoint.count("<td>W</td>") == 2  # two Dense layers
    assert "wrote checkpoint.html" in (cli_run / "checkpoint.out").read_text()
    for name in ("log.html", "model.html"):
        text = (cli_run / name).read_text()
        assert 'id="curves"' in text and 'id="flows"' not in text
    assert "val_accuracy" in (cli_run / "log.html").read_text()


def test_report_refuses_what_it_cannot_read(cli_run, tmp_path):
    (tmp_path / "notes.txt").write_text("hello\n")
    one_error(deltaprop("report", "notes.txt", cwd=tmp_path), 1, "not an inspector log, a checkpoint")
    (tmp_path / "bad.jsonl").write_text('{"epoch": 1, "loss": 1.0}\n{"epoch": 2,\n')
    one_error(deltaprop("report", "bad.jsonl", cwd=tmp_path), 1, "line 2 is not JSON")
    one_error(deltaprop("report", cli_run / "log.jsonl", "--out", cli_run / "log.jsonl", cwd=tmp_path), 2,
              "is the same file as the source")
    one_error(deltaprop("report", tmp_path, cwd=tmp_path), 2, "a folder without checkpoints")
    result = ok(deltaprop("report", cli_run / "log.jsonl", "--gradcheck", cwd=tmp_path))
    assert "no gradient check" in result.stderr and "No gradient check" in (tmp_path / "report.html").read_text()


def test_train_checks_the_report_options(tmp_path):
    one_error(deltaprop("train", "--report-every", "3", "--plot", "none", cwd=tmp_path), 2, "give --report too")
    one_error(deltaprop("train", "--report", "model.safetensors", "--plot", "none", cwd=tmp_path), 2,
              "--report model.safetensors is the same file as --out")
    (tmp_path / "run.toml").write_text('report-every = 2\nplot = "none"\n')  # the same table reads TOML files
    one_error(deltaprop("train", "--config", "run.toml", cwd=tmp_path), 2, "give --report too")
    (tmp_path / "run.toml").write_text('report = "run.toml"\nplot = "none"\n')
    one_error(deltaprop("train", "--config", "run.toml", cwd=tmp_path), 2, "is the same file as --config")


def test_a_diverged_run_still_writes_its_report(tmp_path):
    result = deltaprop("train", "--data", "digits", "--hidden", "16", "--epochs", "3", "--optimizer", "sgd", "--lr",
                       "1e6", "--report", "failed.html", "--plot", "none", "--quiet", cwd=tmp_path)
    one_error(result, 1, "diverged")
    text = (tmp_path / "failed.html").read_text()
    assert "The run stopped early: training diverged" in text
