"""Which devices the suite runs on, and a summary line of the tests that need PyTorch.

Every test that takes the `device` fixture runs once per device in TINYGRAD_LSTM_TEST_DEVICES:

- unset: "cpu", plus "cuda" where a GPU is usable (CUDA cases are not even collected elsewhere);
- "cuda": the whole suite on the GPU only (an unusable GPU is an error, not a skip);
- "fake": the whole suite on the fake device only: tests/fake_cupy.py, a NumPy-backed stand-in for
  CuPy, is installed as the `cupy` module, so every CUDA code path runs without a GPU. It proves the
  project's device handling (no host/device mixing, no implicit conversions, 0-d results), not CuPy;
- a comma-separated list ("cpu,cuda", "cpu,fake") runs each.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import fake_cupy
import pytest

DEVICE_CHOICES = ("cpu", "cuda", "fake")
_requested = [d.strip() for d in os.environ.get("TINYGRAD_LSTM_TEST_DEVICES", "").split(",") if d.strip()]
for _name in _requested:
    if _name not in DEVICE_CHOICES:
        raise pytest.UsageError(f"TINYGRAD_LSTM_TEST_DEVICES: unknown device {_name!r}; choose from {DEVICE_CHOICES}")
if "cuda" in _requested and "fake" in _requested:
    raise pytest.UsageError("TINYGRAD_LSTM_TEST_DEVICES: 'cuda' and 'fake' are both CuPy; pick one")
FAKE_GPU = "fake" in _requested
if FAKE_GPU:
    sys.modules["cupy"] = fake_cupy  # before tinygrad_lstm first asks for CuPy: every CUDA path gets the fake

import tinygrad_lstm as tl  # noqa: E402 - after the fake is in place
from tinygrad_lstm.tensor import backend  # noqa: E402

if _requested:
    DEVICES = ["cuda" if name == "fake" else name for name in _requested]
else:
    DEVICES = ["cpu", "cuda"] if tl.cuda.is_available() else ["cpu"]


# Drawing tests need the graphviz Python package; GPU machines without network often lack it (.ci/gpu). Without
# it, test_viz.py (which imports it) is not collected and tests stopped by the clear "install graphviz" error
# count as skipped; the summary says how many.
GRAPHVIZ_MISSING = importlib.util.find_spec("graphviz") is None
collect_ignore = ["test_viz.py"] if GRAPHVIZ_MISSING else []
_needed_graphviz: list[str] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item):
    outcome = yield
    report = outcome.get_result()
    said = report.longreprtext + report.capstdout + report.capstderr if report.failed else ""
    if GRAPHVIZ_MISSING and "graphviz` Python package, which is not installed" in said:
        report.outcome, report.longrepr = "skipped", (str(item.path), 0, "needs the graphviz Python package")
        _needed_graphviz.append(item.nodeid)


@pytest.fixture(params=DEVICES)
def device(request):
    """The device a test runs on ("cuda" is the fake device in the fake mode)."""
    return request.param


@pytest.fixture
def fake_gpu(monkeypatch):
    """The fake device, fresh, whatever the test mode: installed as `cupy` with the backend's cached CUDA
    check forgotten. Set `fake_gpu.BROKEN` ("nvrtc", "cublas", "curand") before the first CUDA use to
    play a CuPy installed without that library."""
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_problem", None)
    monkeypatch.setattr(fake_cupy, "BROKEN", None)
    return fake_cupy


@pytest.fixture
def torch():
    """PyTorch as a test-only reference; tests that use it skip when it is not installed."""
    return pytest.importorskip("torch")


# ---------------------------------------------------------------- how many tests need PyTorch

_torch_tests: set[str] = set()
_torch_outcomes: dict[str, str] = {}


def pytest_collection_finish(session):
    _torch_tests.update(item.nodeid for item in session.items if "torch" in getattr(item, "fixturenames", ()))


def pytest_runtest_logreport(report):
    if report.nodeid not in _torch_tests:
        return
    if report.skipped:
        _torch_outcomes[report.nodeid] = "skipped"
    elif report.when == "call" or report.failed:
        _torch_outcomes.setdefault(report.nodeid, "ran")


def pytest_terminal_summary(terminalreporter):
    if GRAPHVIZ_MISSING:
        terminalreporter.write_line(f"graphviz Python package missing (pip install graphviz): tests/test_viz.py not "
                                    f"collected, {len(_needed_graphviz)} tests that draw skipped")
    if not _torch_tests:
        return
    ran = sum(outcome == "ran" for outcome in _torch_outcomes.values())
    skipped = sum(outcome == "skipped" for outcome in _torch_outcomes.values())
    try:
        import torch

        status = f"PyTorch {torch.__version__}"
    except ImportError:
        status = "PyTorch is not installed: pip install torch to run them"
    devices = ",".join(_requested) if _requested else ",".join(DEVICES)
    terminalreporter.write_line(
        f"PyTorch reference: {len(_torch_tests)} tests compare against PyTorch; {ran} ran, {skipped} skipped "
        f"({status}). Devices: {devices}."
    )
