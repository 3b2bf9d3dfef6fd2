"""The CUDA path, as far as it can be proven without a GPU.

- the fake device (tests/fake_cupy.py) behaves as CuPy where the project could get it wrong, and runs
  the project's elementwise kernels from the same formula as the CPU path;
- the availability check runs an op of each kind and names the CUDA library that is missing;
- every CUDA kernel source of the project compiles with NVRTC as CuPy generates it (float32, float64);
- indexing and the losses do not wait for the GPU more than they must.
"""

import os
import subprocess
import sys
import types

import cuda_source
import numpy as np
import pytest

import tinygrad_lstm as tl
import tinygrad_lstm.nn  # noqa: F401 - registers the nn kernels
from tinygrad_lstm.cli import main
from tinygrad_lstm.nn import functional as F
from tinygrad_lstm.tensor import backend

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(ROOT, "tests")


def _axpy_formula(xp, a, x, y, out):
    xp.multiply(a, x, out=out)
    out += y


@pytest.fixture
def axpy():
    """A small elementwise kernel of the tests' own, registered for the test's duration."""
    kernel = backend.ElementwiseKernel("tinygrad_lstm_test_axpy", "T a, T x, T y", "T out",
                                       "out = a * x + y;", _axpy_formula)
    yield kernel
    del backend.KERNELS[kernel.name]


# ---------------------------------------------------------------- the fake device behaves as CuPy


def test_fake_device_arrays_are_not_numpy_and_refuse_to_mix(fake_gpu):
    a = fake_gpu.arange(6, dtype=np.float32).reshape(2, 3)
    assert not isinstance(a, np.ndarray) and a.device.id == 0 and a.dtype == np.float32
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Unsupported type"):
        a + np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="Unsupported type"):
        np.ones(3, dtype=np.float32) * a
    assert (a + np.float32(1)).get().tolist() == [[1, 2, 3], [4, 5, 6]]  # NumPy scalars are fine, as in CuPy
    total, element = a.sum(), a[1, 2]
    assert isinstance(total, fake_gpu.ndarray) and total.shape == () and float(total) == 15
    assert isinstance(element, fake_gpu.ndarray) and element.ndim == 0
    np.testing.assert_array_equal(np.exp(a).get(), np.exp(a.get()))  # NumPy functions run on the device


def test_fake_elementwise_kernel_runs_the_registered_formula_on_strided_views(fake_gpu, axpy):
    rng = np.random.default_rng(0)
    buffer, x, y = (rng.standard_normal(shape).astype(np.float32) for shape in ((3, 8), (3, 4), (3, 4)))
    expected = 2 * x + y
    on_device = fake_gpu.asarray(buffer)
    axpy(fake_gpu, fake_gpu.float32(2), fake_gpu.asarray(x), fake_gpu.asarray(y), on_device[:, 4:])
    np.testing.assert_allclose(on_device.get()[:, 4:], expected, rtol=1e-6)
    np.testing.assert_array_equal(on_device.get()[:, :4], buffer[:, :4])  # the view was written, nothing else
    on_host = buffer.copy()
    axpy(np, np.float32(2), x, y, on_host[:, 4:])
    np.testing.assert_array_equal(on_host, on_device.get())


def test_fake_elementwise_kernel_checks_its_arguments_as_cupy(fake_gpu, axpy):
    with pytest.raises(ValueError, match="Can not use 'i' as a parameter name"):
        fake_gpu.ElementwiseKernel("T i, T f", "T c", "c = i * f;", "tinygrad_lstm_test_axpy")
    kernel = fake_gpu.ElementwiseKernel(axpy.in_params, axpy.out_params, axpy.operation, axpy.name)
    x, out = fake_gpu.ones(4, dtype=np.float32), fake_gpu.empty(4, dtype=np.float32)
    with pytest.raises(TypeError, match="Type is mismatched"):
        kernel(x, x.astype(np.float64), x, out)
    with pytest.raises(TypeError, match="Unsupported type"):
        kernel(x, np.ones(4, dtype=np.float32), x, out)
    with pytest.raises(ValueError, match="Out shape is mismatched"):
        kernel(x, x, x, fake_gpu.empty(1, dtype=np.float32))
    unknown = fake_gpu.ElementwiseKernel("T x", "T y", "y = x;", "not_a_project_kernel")
    with pytest.raises(KeyError, match="not_a_project_kernel"):
        unknown(x, out)


def test_a_kernel_parameter_cupy_would_refuse_is_refused_on_any_machine():
    for params in ("T i, T f", "T x, T _ind"):
        with pytest.raises(ValueError, match="clash with CuPy's generated code"):
            backend.ElementwiseKernel("tinygrad_lstm_test_bad_names", params, "T out", "out = 0;", _axpy_formula)
    assert "tinygrad_lstm_test_bad_names" not in backend.KERNELS


# ---------------------------------------------------------------- the availability check


@pytest.mark.parametrize("library, named", [("nvrtc", "NVRTC"), ("cublas", "cuBLAS"), ("curand", "cuRAND")])
def test_a_missing_cuda_library_is_named_with_what_to_install(fake_gpu, library, named, capsys, tmp_path):
    fake_gpu.BROKEN = library
    assert not tl.cuda.is_available() and tl.cuda.device_count() == 0
    assert named in tl.cuda.problem() and "tinygrad-lstm[cuda12]" in tl.cuda.problem()
    with pytest.raises(RuntimeError, match=f"{named}.*tinygrad-lstm\\[cuda12\\]"):
        tl.zeros(1, device="cuda")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "not usable: device 'cuda': CuPy sees 1 GPU(s) but" in out and named in out
    assert "--device auto uses cpu" in out
    argv = ["train", "--task", "adding", "--steps", "1", "--delay", "4", "--hidden-size", "4", "--batch-size", "2",
            "--quiet", "--out", str(tmp_path)]
    assert main([*argv, "--device", "cuda"]) == 2  # a clear error, not a traceback
    assert named in capsys.readouterr().err
    assert main([*argv, "--device", "auto"]) == 0
    assert "device: cpu (the GPU is not usable: " in capsys.readouterr().out


def test_a_usable_gpu_is_shown_by_info_and_taken_by_auto(fake_gpu, capsys):
    assert tl.cuda.is_available() and tl.cuda.problem() is None and tl.cuda.device_count() == 1
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "cuda:0 Fake GPU" in out and "a matmul (cuBLAS)" in out and "--device auto uses cuda" in out


def _python_with(tmp_path, setup: str) -> dict:
    """Environment for a subprocess whose interpreter first runs `setup` (through sitecustomize)."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(setup)
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), ROOT, TESTS])}


@pytest.mark.parametrize("broken", [None, "cublas"])
def test_example_05_checks_the_gpu_for_real(tmp_path, broken):
    setup = f"import sys, fake_cupy\nfake_cupy.BROKEN = {broken!r}\nsys.modules['cupy'] = fake_cupy\n"
    env = _python_with(tmp_path, setup)
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "05_char_lstm_gpu.py"), "--steps", "2",
                           "--hidden-size", "8", "--seq-len", "8", "--batch-size", "2"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    if broken:
        assert "no usable GPU, training on the CPU instead" in done.stdout and "cuBLAS" in done.stdout
        assert "steps/s on cpu" in done.stdout
    else:
        assert "steps/s on cuda" in done.stdout


# ---------------------------------------------------------------- without the graphviz package


def test_engine_nn_and_cli_work_without_graphviz_and_rendering_says_what_to_install(tmp_path):
    env = _python_with(tmp_path, "import sys\nsys.modules['graphviz'] = None  # as if not installed\n")
    script = f"""
import tinygrad_lstm as tl, tinygrad_lstm.nn, tinygrad_lstm.viz
from tinygrad_lstm.cli import main
x = tl.randn(3, 2, requires_grad=True)
tinygrad_lstm.nn.LSTM(2, 4)(x.unsqueeze(1))[0].sum().backward()
assert x.grad is not None
assert main(["info"]) == 0
tiny = ["--steps", "1", "--hidden-size", "4", "--batch-size", "2", "--device", "cpu", "--quiet"]
assert main(["train", "--task", "adding", "--delay", "4", *tiny, "--out", {str(tmp_path / "t")!r}]) == 0
assert main(["gates", "--length", "12", *tiny[:4], *tiny[6:], "--out", {str(tmp_path / "g")!r}]) == 0
assert main(["graph", "--format", "dot", "--out", {str(tmp_path / "graph.dot")!r}]) == 2
print("ALL OK")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=120)
    assert done.returncode == 0 and "ALL OK" in done.stdout, done.stdout + done.stderr
    assert "graphviz` Python package, which is not installed: pip install graphviz" in done.stderr
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- host syncs


def test_host_indices_are_checked_on_the_host_and_device_ones_in_one_transfer(fake_gpu):
    x = tl.Tensor(np.arange(12.0).reshape(3, 4), device="cuda")
    before = fake_gpu.SYNCS
    picked = x[[0, 2], np.array([1, 3])]
    assert fake_gpu.SYNCS == before and picked.detach().numpy().tolist() == [1.0, 11.0]
    rows = tl.Tensor([0, 2], dtype=np.int64, device="cuda")
    columns = tl.Tensor([1, -1], dtype=np.int64, device="cuda")
    before = fake_gpu.SYNCS
    picked = x[rows, columns]
    assert fake_gpu.SYNCS == before + 1  # one transfer for both index arrays
    assert picked.detach().numpy().tolist() == [1.0, 11.0]
    with pytest.raises(IndexError, match="index 4 is out of range for axis 1"):
        x[rows, tl.Tensor([1, 4], dtype=np.int64, device="cuda")]
    with pytest.raises(IndexError, match="index -4 is out of range for axis 0"):
        x[[0, -4]]


def test_losses_and_embeddings_with_host_targets_do_not_wait_for_the_gpu(fake_gpu):
    logits = tl.randn(6, 5, device="cuda", requires_grad=True)
    weight = tl.randn(5, 3, device="cuda", requires_grad=True)
    targets = np.array([0, 4, 2, 1, 3, -100])
    before = fake_gpu.SYNCS
    loss = F.cross_entropy(logits, targets) + F.nll_loss(logits[:5].log_softmax(), targets[:5])
    rows = F.embedding(targets[:5], weight)
    assert fake_gpu.SYNCS == before
    (loss + rows.sum()).backward()
    assert fake_gpu.SYNCS == before
    with pytest.raises(IndexError, match="target 5 is out of range for 5 classes"):
        F.cross_entropy(logits, np.array([0, 1, 2, 3, 4, 5]))
    device_targets = tl.Tensor(targets[:5], device="cuda")
    before = fake_gpu.SYNCS
    F.cross_entropy(logits[:5], device_targets)
    assert fake_gpu.SYNCS == before + 2  # the target check, then the picking indices


def test_backward_moves_a_host_gradient_to_the_device(device):
    x = tl.Tensor([1.0, 2.0], device=device, requires_grad=True)
    (x * 3).backward([1.0, 0.5])
    assert x.grad.device == x.device and x.grad.numpy().tolist() == [3.0, 1.5]
    x.grad = None
    (x * 3).backward(np.array([2.0, 1.0]))
    assert x.grad.numpy().tolist() == [6.0, 3.0]


# ---------------------------------------------------------------- every CUDA kernel compiles with NVRTC

NVRTC_PATH = cuda_source.find_nvrtc()
needs_nvrtc = pytest.mark.skipif(NVRTC_PATH is None, reason="NVRTC is not installed: "
                                 "pip install nvidia-cuda-nvrtc-cu12 (CI installs it)")
NVRTC_OPTIONS = ["--gpu-architecture=sm_90", "--std=c++17"]


def _project_kernels() -> dict:
    """The kernels tinygrad_lstm itself defines (not the tests')."""
    return {name: k for name, k in backend.KERNELS.items() if k.formula.__module__.startswith("tinygrad_lstm")}


def test_the_project_registers_its_cuda_kernels():
    assert _project_kernels(), "importing tinygrad_lstm.nn registered no ElementwiseKernel"


def _compile(kernel, dtype, ndim: int, contiguous: bool) -> tuple[bool, str]:
    source = cuda_source.kernel_source(kernel, dtype, ndim, contiguous)
    return cuda_source.NVRTC(NVRTC_PATH).compile(source, {"cupy/carray.cuh": cuda_source.CARRAY_STANDIN},
                                                 NVRTC_OPTIONS)


@needs_nvrtc
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_cuda_kernel_compiles_with_nvrtc_as_cupy_generates_it(dtype, axpy):
    for kernel in [*_project_kernels().values(), axpy]:
        names = [name for _, _, name in cuda_source.parse_params(f"{kernel.in_params}, {kernel.out_params}")]
        assert "i" not in names, f"{kernel.name}: CuPy refuses a parameter named 'i' (its loop index)"
        for ndim, contiguous in ((1, True), (2, False)):  # merged contiguous arguments; strided views
            compiled, log = _compile(kernel, dtype, ndim, contiguous)
            assert compiled and "warning" not in log, f"{kernel.name} ({np.dtype(dtype)}, {ndim}-d):\n{log}"


@needs_nvrtc
def test_the_nvrtc_check_catches_a_broken_kernel(axpy):
    broken = types.SimpleNamespace(name=axpy.name, in_params=axpy.in_params, out_params=axpy.out_params,
                                   preamble="", operation="out = a * x + undefined_name; x = y;")
    compiled, log = _compile(broken, np.float32, 1, True)
    assert not compiled and "undefined_name" in log and "modifiable lvalue" in log
