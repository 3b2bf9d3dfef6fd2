"""The backward-pass explorer: its walk is the engine's, its numbers are the engine's, it folds long graphs,
the CLI at its defaults, a real headless browser (Chromium) stepping through it, and the Jupyter tour."""

import importlib
import json
import os
import re
import shutil
import time

import numpy as np
import pytest

import tinygrad_lstm as tl
from tinygrad_lstm import viz
from tinygrad_lstm.cli import main
from tinygrad_lstm.experiments import unrolled_cell
from tinygrad_lstm.tensor import graph as engine_graph

explore_module = importlib.import_module("tinygrad_lstm.viz.explore")  # viz.explore is the function
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="the explorer lays graphs out with Graphviz's dot")


def page_data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="explorer-data">(.*?)</script>', html, re.S)
    return json.loads(match.group(1))


def recorded_backward(monkeypatch, build):
    """Build a graph and run backward with every op the engine calls recorded, in the engine's order."""
    called = []
    real = engine_graph.call_backward

    def record(fn, grad_outputs):
        called.append(fn)
        return real(fn, grad_outputs)

    monkeypatch.setattr(engine_graph, "call_backward", record)
    root = build()
    tl.retain_grads(root)
    root.backward()
    monkeypatch.setattr(engine_graph, "call_backward", real)
    return root, called


def lstm_loss(steps=3, device="cpu"):
    return unrolled_cell("lstm", steps, device=device, input_grad=True)


def expected_keys(root, called):
    """The picture's node keys ("op<i>": index into walk_graph's ops) in the order the engine processed them."""
    position = {id(op): i for i, op in enumerate(tl.walk_graph(root).ops)}
    return [f"op{position[id(fn)]}" for fn in called]


def test_the_walk_is_the_engines_backward_order(monkeypatch):
    # the explorer replays walk_graph's op order reversed; this pins that it is the order backward() runs
    root, called = recorded_backward(monkeypatch, lambda: lstm_loss(2))
    panel = page_data(viz.explorer_page(root).html)["panels"][0]
    assert [panel["ops"][i]["op"] for i in panel["walk"]] == [fn.op for fn in called]
    assert [f"op{i}" for i in panel["walk"]] == expected_keys(root, called)
    steps = panel["pictures"]["whole"]["steps"]
    assert [s["node"] for s in steps] == expected_keys(root, called)
    assert all(s["edges"] for s in steps), "every processed op sends gradient along at least one drawn edge"


def test_summaries_are_the_engines_numbers(device):
    root = unrolled_cell("lstm", 2, device=device, input_grad=True, backward=True)
    view = tl.walk_graph(root)
    panel = page_data(viz.explorer_page(root).html)["panels"][0]
    sigmoids = 0
    for i, t in enumerate(view.tensors):
        shown = panel["tensors"][i]
        assert shown["shape"] == list(t.shape)
        value = t.detach().numpy().astype(np.float64)
        np.testing.assert_allclose(shown["value"]["norm"], np.linalg.norm(value), rtol=1e-12)
        if t.grad is None:
            assert shown["grad"] is None
            continue
        grad = t.grad.numpy().astype(np.float64)
        np.testing.assert_allclose([shown["grad"][k] for k in ("min", "mean", "max", "norm")],
                                   [grad.min(), grad.mean(), grad.max(), np.linalg.norm(grad)], rtol=1e-12)
        if t.grad_fn is not None and t.grad_fn.op == "Sigmoid":  # a gate's activation: how saturated it is
            sigmoids += 1
            values = t.detach().numpy()
            assert shown["saturation"]["near0"] == pytest.approx((values < 0.1).mean())
            assert shown["saturation"]["near1"] == pytest.approx((values > 0.9).mean())
        else:
            assert "saturation" not in shown
    assert sigmoids == 2 * 3  # three sigmoid gates per LSTM step


def test_gradients_arrive_after_every_user_sent_its_part():
    root = lstm_loss(2)
    tl.retain_grads(root)
    root.backward()
    view = tl.walk_graph(root)
    panel = page_data(viz.explorer_page(root).html)["panels"][0]
    step_of = {op: s for s, op in enumerate(panel["walk"])}
    for i, t in enumerate(view.tensors):
        arrival = panel["tensors"][i]["arrival"]
        users = [step_of[j] for j, op in enumerate(view.ops) if any(x is t for x in op.inputs)]
        assert arrival == (None if t.grad is None else max(users) if users else -1)
    root_index = next(i for i, t in enumerate(view.tensors) if t is root)
    assert panel["tensors"][root_index]["arrival"] == -1  # the root holds its gradient from the start


def test_any_recorded_graph_works_not_only_cells():
    w = tl.randn(3, 2, requires_grad=True)
    x = tl.randn(4, 3)
    loss = (x @ w).tanh().sum()
    tl.retain_grads(loss)
    loss.backward()
    panel = page_data(viz.explorer_page(loss).html)["panels"][0]
    assert len(panel["walk"]) == len(tl.walk_graph(loss).ops) == 3
    assert panel["chart"] is None and list(panel["pictures"]) == ["whole"]


def test_long_graphs_fold_by_default_beyond_the_measured_size(monkeypatch):
    root = unrolled_cell("rnn", 6, backward=True, input_grad=True)  # 6 steps: steps 3 and 4 can fold
    ops = len(tl.walk_graph(root).ops)
    assert ops <= viz.FOLD_ABOVE_OPS
    small = page_data(viz.explorer_page(root).html)["panels"][0]
    assert small["shown"] == "whole" and set(small["pictures"]) == {"whole", "folded"}
    monkeypatch.setattr(explore_module, "FOLD_ABOVE_OPS", ops - 1)  # the same graph, now "long"
    large = page_data(viz.explorer_page(root).html)["panels"][0]
    assert large["shown"] == "folded" and set(large["pictures"]) == {"folded"}  # the whole one is never laid out
    folded = large["pictures"]["folded"]
    elided = [key for key, node in folded["nodes"].items() if node["kind"] == "elided"]
    assert len(elided) == 1 and len(folded["nodes"][elided[0]]["ops"]) > 0
    assert len(folded["steps"]) == len(large["walk"])  # hidden ops are walked on the folded node
    assert {s["node"] for s in folded["steps"]} >= {elided[0]}


def test_compare_shares_one_gradient_scale_and_charts_each_step():
    roots = {"RNN": unrolled_cell("rnn", 4, backward=True, input_grad=True),
             "LSTM": unrolled_cell("lstm", 4, backward=True, input_grad=True)}
    data = page_data(viz.explorer_page(roots).html)
    assert [p["title"] for p in data["panels"]] == ["RNN", "LSTM"]
    for panel, root in zip(data["panels"], roots.values(), strict=True):
        chart = panel["chart"]
        assert [b["number"] for b in chart["bars"]] == [1, 2, 3, 4]
        xs = {t.name: t for t in tl.walk_graph(root).tensors if (t.name or "").startswith("x_")}
        for bar in chart["bars"]:
            assert bar["inputs"] == [f"x_{bar['number']}"]
            assert bar["norm"] == pytest.approx(np.linalg.norm(xs[bar["inputs"][0]].grad.numpy()))
    assert data["panels"][0]["chart"]["low"] == data["panels"][1]["chart"]["low"]


def test_the_page_is_self_contained_and_a_still_picture_without_javascript(tmp_path):
    path = viz.explore(unrolled_cell("gru", 2, backward=True), tmp_path / "page")
    assert path.endswith(".html")
    html = open(path, encoding="utf-8").read()
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html) and "<link" not in html  # nothing to fetch
    assert "<noscript>" in html and "JavaScript is off" in html
    first = re.search(r'<div class="picture" data-variant="\w+"( hidden)?>\s*<svg', html)
    assert first is not None and first.group(1) is None  # the first picture is visible as it stands


@pytest.mark.parametrize("bad, error, message", [
    (lambda: unrolled_cell("lstm", 1), ValueError, "retain_grads"),
    (lambda: tl.randn(2, requires_grad=True), ValueError, "no graph"),
    (lambda: np.ones(3), TypeError, "Tensor"),
    (lambda: {}, ValueError, "at least one"),
])
def test_bad_roots_get_a_clear_error(bad, error, message):
    with pytest.raises(error, match=message):
        viz.explorer_page(bad())


def test_fold_true_without_repeated_steps_is_an_error():
    root = unrolled_cell("lstm", 1, backward=True)
    with pytest.raises(ValueError, match="no repeated"):
        viz.explorer_page(root, fold=True)


# ---------------------------------------------------------------- the CLI


def test_cli_explore_at_its_defaults(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["explore"]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "runs" / "explore" / "lstm-3steps.html"
    assert str(os.path.join("runs", "explore", "lstm-3steps.html")) in out and path.exists()
    panel = page_data(path.read_text())["panels"][0]
    assert panel["shown"] == "whole" and len(panel["chart"]["bars"]) == 3
    assert len(panel["walk"]) == len(tl.walk_graph(unrolled_cell("lstm", 3)).ops)


def test_cli_explore_folds_a_50_step_lstm_and_not_a_10_step_one(tmp_path, capsys):
    assert len(tl.walk_graph(unrolled_cell("lstm", 10)).ops) == 102 <= viz.FOLD_ABOVE_OPS  # as the README says
    assert main(["explore", "--steps", "50", "--out", str(tmp_path / "long.html")]) == 0
    panel = page_data((tmp_path / "long.html").read_text())["panels"][0]
    assert len(panel["walk"]) > viz.FOLD_ABOVE_OPS
    assert list(panel["pictures"]) == ["folded"] and panel["large"]
    assert len(panel["chart"]["bars"]) == 50


def test_cli_explore_compare(tmp_path, capsys):
    out = tmp_path / "cmp.html"
    assert main(["explore", "--compare", "--steps", "2", "--cell", "gru", "--device", "cpu", "--out", str(out)]) == 0
    assert [p["title"] for p in page_data(out.read_text())["panels"]] == ["RNN", "GRU"]


@pytest.mark.parametrize("argv, message", [(["--steps", "0"], "--steps"), (["--compare", "--cell", "rnn"], "RNN")])
def test_cli_explore_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    assert main(["explore", "--out", str(tmp_path / "x.html"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinygrad-lstm explore: error:") and message in err and "\n" not in err


def test_cli_explore_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["explore", "--help"])
    assert exit_info.value.code == 0
    assert "--compare" in capsys.readouterr().out


# ---------------------------------------------------------------- a real browser


def _chrome(javascript: bool = True):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    binary = next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("headless browser test: Chromium or chromedriver is missing (apt-get install chromium "
                    "chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,900"):
        options.add_argument(arg)
    if not javascript:
        options.add_argument("--blink-settings=scriptEnabled=false")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        return webdriver.Chrome(service=webdriver.ChromeService(driver_path), options=options)
    except Exception as exc:  # noqa: BLE001 - any failure to start the browser is a reason to skip, named
        pytest.skip(f"headless browser test: Chromium would not start: {str(exc).splitlines()[0]}")


@pytest.fixture(scope="module")
def browser():
    driver = _chrome()
    yield driver
    driver.quit()


def test_in_a_browser_stepping_follows_the_walk_and_shows_the_engines_gradient(browser, tmp_path, monkeypatch):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    root, called = recorded_backward(monkeypatch, lambda: lstm_loss(3))
    path = viz.explore(root, tmp_path / "lstm.html")
    browser.get("file://" + os.path.abspath(path))
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
    assert browser.find_elements(By.CSS_SELECTOR, "g.node.current") == []  # nothing processed yet
    expected = expected_keys(root, called)
    body = browser.find_element(By.TAG_NAME, "body")
    seen = []
    for _ in range(12):
        body.send_keys(Keys.ARROW_RIGHT)
        seen.append(browser.find_element(By.CSS_SELECTOR, "g.node.current > title").get_attribute("textContent"))
    assert seen == expected[:12]
    browser.find_element(By.ID, "btn-back").click()
    assert browser.find_element(By.CSS_SELECTOR, "g.node.current > title").get_attribute("textContent") == expected[10]
    assert browser.find_elements(By.CSS_SELECTOR, "g.edge.lit"), "the current op's edges light up"
    body.send_keys(Keys.END)
    assert browser.find_element(By.CSS_SELECTOR, "g.node.current > title").get_attribute("textContent") == expected[-1]
    assert f"step {len(expected)} of {len(expected)}" in browser.find_element(By.ID, "status").text

    # click a node: the gradient shown is the engine's
    view = tl.walk_graph(root)
    for name in ("x_1", "weight_ih"):
        index = next(i for i, t in enumerate(view.tensors) if t.name == name)
        node = browser.find_element(By.XPATH, f'//*[local-name()="g"][*[local-name()="title"]="t{index}"]')
        browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", node)
        shown = float(browser.find_element(By.CSS_SELECTOR, "#info .grad-norm").text)
        assert shown == pytest.approx(np.linalg.norm(view.tensors[index].grad.numpy()), rel=1e-3)
        browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", node)
    sigmoid = next(i for i, op in enumerate(view.ops) if op.op == "Sigmoid")  # a gate: how saturated it is
    node = browser.find_element(By.XPATH, f'//*[local-name()="g"][*[local-name()="title"]="op{sigmoid}"]')
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('mouseenter'))", node)
    assert "near 0" in browser.find_element(By.ID, "info").text and "near 1" in browser.find_element(By.ID, "info").text
    body.send_keys(Keys.HOME)  # back at the start, x_1's gradient has not arrived yet
    index = next(i for i, t in enumerate(view.tensors) if t.name == "x_1")
    node = browser.find_element(By.XPATH, f'//*[local-name()="g"][*[local-name()="title"]="t{index}"]')
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('mouseenter'))", node)
    assert "not arrived yet" in browser.find_element(By.ID, "info").text
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_in_a_browser_fold_colour_and_play(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    path = viz.explore(unrolled_cell("rnn", 6, backward=True, input_grad=True), tmp_path / "rnn.html")
    data = page_data(open(path, encoding="utf-8").read())["panels"][0]
    browser.get("file://" + os.path.abspath(path))
    visible = browser.find_elements(By.CSS_SELECTOR, ".picture:not([hidden])")
    assert [v.get_attribute("data-variant") for v in visible] == ["whole"]
    browser.find_element(By.ID, "fold").click()
    visible = browser.find_elements(By.CSS_SELECTOR, ".picture:not([hidden])")
    assert [v.get_attribute("data-variant") for v in visible] == ["folded"]
    key, node = next((k, n) for k, n in data["pictures"]["folded"]["nodes"].items() if n["kind"] == "root")
    fill = ('return [...document.querySelectorAll(".picture:not([hidden]) g.node")]'
            f'.find((g) => g.querySelector("title").textContent === "{key}")'
            '.querySelector("polygon, ellipse, path").getAttribute("fill")')
    assert browser.execute_script(fill) == node["gradColor"]  # the root's gradient is there from the start
    browser.find_element(By.CSS_SELECTOR, 'input[name="mode"][value="value"]').click()
    assert "mean value" in browser.find_element(By.ID, "legend").text
    assert browser.execute_script(fill) == node["valueColor"]
    assert len(browser.find_elements(By.CSS_SELECTOR, ".chart .bar")) == 6

    Select(browser.find_element(By.ID, "speed")).select_by_value("20")  # 0.3 s: a few of the walk's 14 steps
    position = browser.find_element(By.ID, "position")
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.SPACE)  # play
    time.sleep(0.3)
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.SPACE)  # pause
    reached = int(position.get_attribute("value"))
    time.sleep(0.2)
    assert 0 < reached == int(position.get_attribute("value"))
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_in_a_browser_without_javascript_it_is_a_still_picture(tmp_path):
    from selenium.webdriver.common.by import By

    path = viz.explore(unrolled_cell("rnn", 2, backward=True), tmp_path / "still.html")
    driver = _chrome(javascript=False)
    try:
        driver.get("file://" + os.path.abspath(path))
        assert "JavaScript is off" in driver.find_element(By.CLASS_NAME, "nojs").text
        assert driver.find_element(By.CSS_SELECTOR, ".picture svg").is_displayed()
        assert not driver.find_element(By.ID, "controls").is_displayed()
    finally:
        driver.quit()


# ---------------------------------------------------------------- Jupyter


def test_draw_graph_and_explorer_display_inline():
    root = unrolled_cell("rnn", 2, backward=True)
    bundle = viz.draw_graph(root)._repr_mimebundle_()
    assert "<svg" in bundle["image/svg+xml"]
    inline = viz.explorer_page(root)._repr_html_()
    assert inline.startswith("<iframe srcdoc=") and "explorer-data" in inline and "<script" not in inline


def test_the_tour_notebook_runs_and_shows_its_pictures(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed")
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    notebook = nbformat.read(os.path.join(ROOT, "examples", "06_watch_backprop.ipynb"), as_version=4)
    nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "ops, processed in this order" in text and "forget gate" in text and "near 1" in text
    rich = [o["data"] for o in outputs if o.output_type in ("display_data", "execute_result")]
    assert any("image/svg+xml" in d for d in rich), "draw_graph's picture displays inline"
    assert any("<iframe srcdoc=" in d.get("text/html", "") for d in rich), "the explorer displays inline"
