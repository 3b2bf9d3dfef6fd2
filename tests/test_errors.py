"""Bad input gets a clear error at the API boundary that names what is wrong: shapes, devices,
dtypes, indices, misuse of backward, a missing CuPy or GPU."""

from __future__ import annotations

import re
import sys
import types

import numpy as np
import pytest

import tinygrad_lstm as tl
from tinygrad_lstm.tensor import backend
from tinygrad_lstm.tensor.tensor import Tensor


def _shapes(*shapes) -> str:
    """A regex that matches the shapes in order, anywhere in a message."""
    return ".*".join(re.escape(str(s)) for s in shapes)


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("op", ["+", "-", "*", "/", "**", "maximum", "minimum", "<", "=="])
def test_mismatched_shapes_name_both(device, op):
    a = tl.Tensor(np.ones((2, 3)), device=device)
    b = tl.Tensor(np.ones((4,)), device=device)
    apply = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b, "**": lambda: a**b,
             "maximum": lambda: tl.maximum(a, b), "minimum": lambda: tl.minimum(a, b), "<": lambda: a < b,
             "==": lambda: a == b}[op]
    with pytest.raises(ValueError, match=_shapes((2, 3), (4,)) + ".*cannot be broadcast"):
        apply()


def test_matmul_shape_errors(device):
    a = tl.Tensor(np.ones((2, 3)), device=device)
    with pytest.raises(ValueError, match=_shapes((2, 3), (4, 5)) + r".*3 != 4"):
        a @ tl.Tensor(np.ones((4, 5)), device=device)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        a @ tl.Tensor(2.0, device=device)
    with pytest.raises(ValueError, match=_shapes((2, 2, 3), (3, 3, 1))):
        tl.Tensor(np.ones((2, 2, 3)), device=device) @ tl.Tensor(np.ones((3, 3, 1)), device=device)


def test_where_cat_stack_shape_errors(device):
    a = tl.Tensor(np.ones((2, 3)), device=device)
    with pytest.raises(ValueError, match=_shapes((2, 3), (2, 3), (5,))):
        tl.where(a > 0, a, tl.Tensor(np.ones(5), device=device))
    with pytest.raises(ValueError, match=_shapes((2, 3), (2, 4))):
        tl.cat([a, tl.Tensor(np.ones((2, 4)), device=device)])
    with pytest.raises(ValueError, match=_shapes((2, 3), (3, 2))):
        tl.stack([a, tl.Tensor(np.ones((3, 2)), device=device)])
    with pytest.raises(TypeError, match="non-empty list"):
        tl.cat([])
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        tl.cat([a, a], axis=2)


def test_reshape_expand_permute_errors(device):
    x = tl.Tensor(np.ones((2, 3)), device=device)
    with pytest.raises(ValueError, match=_shapes((2, 3)) + r".*6 elements.*\(4, 2\)"):
        x.reshape(4, 2)
    with pytest.raises(ValueError, match="cannot reshape"):
        x.reshape(-1, -1)
    with pytest.raises(ValueError, match="cannot reshape"):
        x.reshape(-2, -3)
    with pytest.raises(ValueError, match=_shapes((2, 3), (2, 4))):
        x.expand(2, 4)
    with pytest.raises(ValueError, match="cannot be expanded"):
        x.expand(3)
    with pytest.raises(ValueError, match="cannot be expanded"):
        tl.Tensor(np.ones(3), device=device).expand(-1, 3)
    with pytest.raises(ValueError, match="not a permutation"):
        x.permute(0, 0)
    with pytest.raises(ValueError, match="out of range"):
        x.permute(0, 5)
    with pytest.raises(TypeError, match="integers"):
        x.reshape(2.0, 3)
    with pytest.raises(ValueError, match="start_axis"):
        tl.Tensor(np.ones((2, 3, 4)), device=device).flatten(2, 1)


def test_axis_errors(device):
    x = tl.Tensor(np.ones((2, 3)), device=device)
    for call in (lambda: x.sum(axis=2), lambda: x.max(axis=-3), lambda: x.mean(axis=(0, 5)),
                 lambda: x.softmax(axis=2), lambda: x.unsqueeze(4), lambda: x.split(1, axis=3)):
        with pytest.raises(ValueError, match="out of range"):
            call()
    with pytest.raises(ValueError, match="twice"):
        x.sum(axis=(0, -2))
    with pytest.raises(ValueError, match="out of range"):
        tl.Tensor(1.0, device=device).softmax(axis=1)  # a 0-d tensor takes axis 0 or -1 only
    with pytest.raises(ValueError, match="empty axis"):
        tl.Tensor(np.ones((0, 2)), device=device).max(axis=0)


def test_split_chunk_clip_errors(device):
    x = tl.Tensor(np.ones((4, 2)), device=device)
    with pytest.raises(ValueError, match=r"add up to 4"):
        x.split([1, 2])
    with pytest.raises(ValueError, match=">= 0"):
        x.split([5, -1])
    with pytest.raises(ValueError, match="positive"):
        x.split(0)
    with pytest.raises(ValueError, match="positive number of chunks"):
        x.chunk(0)
    with pytest.raises(ValueError, match="at least one of min and max"):
        x.clip()
    with pytest.raises(TypeError, match="bounds are numbers"):
        x.clip(x, None)


# ---------------------------------------------------------------- indexing


def test_index_errors_name_the_index_and_the_shape(device):
    x = tl.Tensor(np.ones((3, 4)), device=device)
    with pytest.raises(IndexError, match=r"index 3 is out of range for axis 0 with size 3 \(shape \(3, 4\)\)"):
        x[3]
    with pytest.raises(IndexError, match=r"index -5 is out of range for axis 1 with size 4"):
        x[0, -5]
    with pytest.raises(IndexError, match=r"index 7 is out of range for axis 0"):
        x[[0, 7]]
    with pytest.raises(IndexError, match=r"index 4 is out of range for axis 1"):
        x[:, tl.Tensor(np.array([4]), device=device)]
    with pytest.raises(IndexError, match="too many indices"):
        x[0, 0, 0]
    with pytest.raises(IndexError, match=r"mask of shape \(4,\) does not match shape \(3, 4\)"):
        x[np.ones(4, dtype=bool)]
    with pytest.raises(IndexError, match="integer or bool"):
        x[tl.Tensor([0.0, 1.0], device=device)]
    with pytest.raises(IndexError, match="single ellipsis"):
        x[..., ...]
    with pytest.raises(IndexError, match="unsupported index"):
        x["a"]


def test_an_ellipsis_is_placed_before_checking_ranges(device):
    x = tl.Tensor(np.ones((2, 3, 4)), device=device)
    assert x[..., 3].shape == (2, 3) and x[1, ..., 2].shape == (3,) and x[[]].shape == (0, 3, 4)
    with pytest.raises(IndexError, match=r"index 4 is out of range for axis 2"):
        x[..., 4]


# ---------------------------------------------------------------- devices


@pytest.fixture
def fake_cuda_tensor(device, monkeypatch):
    """Make Tensors that claim to live on cuda:0 over NumPy arrays: only to reach the device checks."""
    if device != "cpu":
        pytest.skip("the fake second device is only for the CPU run")
    monkeypatch.setattr("tinygrad_lstm.tensor.tensor.array_module", lambda name: np)
    return lambda values: Tensor._make(np.asarray(values), "cuda:0", None)


def test_ops_on_two_devices_name_both(fake_cuda_tensor):
    cpu = tl.Tensor([1.0, 2.0])
    gpu = fake_cuda_tensor(np.array([1.0, 2.0], dtype=np.float32))
    for call in (lambda: cpu + gpu, lambda: gpu * cpu, lambda: cpu @ gpu, lambda: tl.cat([cpu, gpu]),
                 lambda: tl.stack([gpu, cpu]), lambda: tl.where(cpu > 0, cpu, gpu), lambda: tl.maximum(cpu, gpu),
                 lambda: cpu < gpu):
        with pytest.raises(RuntimeError, match=r"different devices.*'(cpu|cuda:0)'.*'(cuda:0|cpu)'"):
            call()


class _FakeGpuArray(np.ndarray):
    """An ndarray that reports a GPU as its device, to reach backward()'s device check."""


def test_index_tensor_and_gradient_on_another_device(fake_cuda_tensor, monkeypatch):
    x = tl.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"index tensor is on 'cuda:0'.*'cpu'"):
        x[fake_cuda_tensor(np.array([0]))]
    device_of = backend.device_of
    monkeypatch.setattr("tinygrad_lstm.tensor.tensor.device_of",
                        lambda a: "cuda:0" if isinstance(a, _FakeGpuArray) else device_of(a))
    with pytest.raises(RuntimeError, match=r"gradient is on 'cuda:0'.*'cpu'"):
        (x * 2).backward(np.ones(2).view(_FakeGpuArray))


@pytest.fixture
def no_cupy(monkeypatch):
    """As if CuPy were not installed."""
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_problem", None)
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` now raises ImportError


def _fake_cupy(monkeypatch, get_count):
    fake = types.ModuleType("cupy")
    fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_count))
    fake.random = types.SimpleNamespace(seed=lambda seed: None)
    monkeypatch.setattr(backend, "_cupy", None)
    monkeypatch.setattr(backend, "_cupy_problem", None)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    return fake


def test_cuda_without_cupy_says_so_and_how_to_install(no_cupy):
    for call in (lambda: tl.Tensor([1.0], device="cuda"), lambda: tl.zeros(2, device="cuda:0"),
                 lambda: tl.Tensor([1.0]).to("cuda"), lambda: tl.Tensor([1.0]).cuda()):
        with pytest.raises(RuntimeError, match=r"CuPy, which is not installed.*pip install 'tinygrad-lstm\[cuda12\]'"):
            call()
    assert not tl.cuda.is_available() and tl.cuda.device_count() == 0


def test_cuda_with_cupy_but_no_usable_gpu_says_which(monkeypatch):
    def broken():
        raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    _fake_cupy(monkeypatch, broken)
    with pytest.raises(RuntimeError, match=r"CuPy is installed but found no usable GPU.*cudaErrorNoDevice.*pip instal"):
        tl.Tensor([1.0], device="cuda")
    assert not tl.cuda.is_available()
    _fake_cupy(monkeypatch, lambda: 0)
    with pytest.raises(RuntimeError, match=r"CuPy is installed but sees no GPU.*nvidia-smi.*pip install"):
        tl.ones(1, device="cuda")


def test_a_gpu_index_that_does_not_exist(fake_gpu):
    with pytest.raises(RuntimeError, match=r"'cuda:3' does not exist: CuPy sees 1 GPU"):
        tl.Tensor([1.0], device="cuda:3")


def test_unknown_devices_are_named():
    for bad in ("gpu", "cuda:x", "tpu:0"):
        with pytest.raises(ValueError, match=f"unknown device '{re.escape(bad)}'"):
            tl.Tensor([1.0], device=bad)
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        tl.Tensor([1.0]).to("gpu")
    with pytest.raises(TypeError, match="device must be a string"):
        tl.Tensor([1.0], device=0)


def test_the_cpu_path_never_imports_cupy(no_cupy):
    x = tl.Tensor([1.0, 2.0], requires_grad=True)
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 4.0] and tl.Tensor([1.0]).to("cpu").device == "cpu"


# ---------------------------------------------------------------- construction and dtypes


@pytest.mark.parametrize("data", ["abc", [[1.0, 2.0], [3.0]], None, {"a": 1}, [1.0, "x"], np.array(["a"])])
def test_unusable_data_is_refused_clearly(data):
    with pytest.raises(TypeError, match="Tensor"):
        tl.Tensor(data)


def test_int_tensors_cannot_require_grad_anywhere(device):
    with pytest.raises(TypeError, match="only floating point tensors can require grad, got dtype int64"):
        tl.Tensor(np.arange(2), requires_grad=True, device=device)
    with pytest.raises(TypeError, match="floating point"):
        tl.arange(3, requires_grad=True, device=device)
    with pytest.raises(TypeError, match="floating point"):
        tl.ones(2, dtype=bool, requires_grad=True, device=device)


def test_unsupported_operands(device):
    x = tl.Tensor([1.0], device=device)
    with pytest.raises(TypeError, match="unsupported operand"):
        x + "a"
    with pytest.raises(TypeError):
        _ = x < "a"
    assert (x == None) is False and (x != None) is True  # noqa: E711 - Python's fallback, not an elementwise test
    with pytest.raises(TypeError, match="Tensors or numbers"):
        tl.maximum(1.0, 2.0)
    with pytest.raises(TypeError, match="Tensors or numbers"):
        tl.maximum(x, "a")


def test_one_element_conversions(device):
    x = tl.Tensor([1.0, 2.0], device=device)
    with pytest.raises(ValueError, match=r"one element.*\(2,\)"):
        x.item()
    with pytest.raises(ValueError, match="ambiguous"):
        bool(x)
    with pytest.raises(TypeError, match="0-d"):
        len(tl.Tensor(1.0, device=device))


# ---------------------------------------------------------------- backward misuse


def test_backward_misuse(device):
    x = tl.Tensor([[1.0, 2.0]], requires_grad=True, device=device)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"one-element output, got shape \(1, 2\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"gradient has shape \(2,\) but the output has shape \(1, 2\)"):
        y.backward(np.ones(2))
    with pytest.raises(RuntimeError, match="does not require grad"):
        tl.Tensor([1.0], device=device).backward()
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        loss.backward()


def test_nan_under_detect_anomaly(device):
    x = tl.Tensor([1.0, 0.0], requires_grad=True, device=device)
    with tl.detect_anomaly(), np.errstate(divide="ignore", invalid="ignore"):
        with pytest.raises(FloatingPointError, match="forward of op 'Div'"):
            x / x
        root = (x * x).sqrt().sum()  # finite forward; d sqrt(u) / du is infinite at u = 0
        with pytest.raises(FloatingPointError, match="backward of op 'Sqrt'"):
            root.backward()


@pytest.mark.parametrize("make", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("name, shape", [("weight_hh_l0", (3, 3)), ("weight_ih_l0", (3, 3)), ("bias_hh_l0", (5,))])
@pytest.mark.parametrize("fused", [True, False])
def test_a_layer_names_a_parameter_replaced_by_one_of_another_shape(make, name, shape, fused):
    """The fused layer's node trusts its weights' shapes: the layer names the one that changed, not a matmul."""
    from tinygrad_lstm import nn

    layer = getattr(nn, make)(3, 4, fused=fused)
    expected = getattr(layer, name).shape
    setattr(layer, name, nn.Parameter(tl.randn(*shape)))
    with pytest.raises(ValueError, match=f"{make}: parameter {name} has shape {_shapes(shape)}, expected "
                                         f"{_shapes(expected)}"):
        layer(tl.randn(5, 2, 3))


@pytest.mark.parametrize("make", ["LSTM", "GRU", "RNN"])
def test_a_layer_names_a_parameter_of_another_dtype(make):
    from tinygrad_lstm import nn

    layer = getattr(nn, make)(3, 4)
    layer.weight_hh_l0 = nn.Parameter(tl.randn(*layer.weight_hh_l0.shape, dtype=np.float64))
    with pytest.raises(TypeError, match=f"{make}: parameter weight_hh_l0 is float64 on 'cpu' but weight_ih_l0 is "
                                        "float32"):
        layer(tl.randn(5, 2, 3))
