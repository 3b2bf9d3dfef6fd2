"""Device parametrization: every test that takes `device` runs on the CPU and, when CuPy sees a GPU, on CUDA.

Set TINYGRAD_LSTM_TEST_DEVICES=cuda to run the whole suite on the GPU only (missing GPU -> errors, not skips);
the default is "cpu,cuda", where the CUDA cases skip cleanly without a GPU.
"""

import os

import pytest

import tinygrad_lstm as tl

DEVICES = [d.strip() for d in os.environ.get("TINYGRAD_LSTM_TEST_DEVICES", "cpu,cuda").split(",") if d.strip()]
GPU_ONLY = DEVICES == ["cuda"]


@pytest.fixture(params=DEVICES)
def device(request):
    """The device a test runs on; CUDA skips cleanly when CuPy or a GPU is missing (unless GPU_ONLY)."""
    if request.param.startswith("cuda") and not GPU_ONLY and not tl.cuda.is_available():
        pytest.skip("CUDA: CuPy or a GPU is not available")
    return request.param


@pytest.fixture
def torch():
    """PyTorch as a test-only reference; tests that use it skip when it is not installed."""
    return pytest.importorskip("torch")
