"""The fused LSTM cell: one LSTM time step as ONE graph node with an analytic backward.

The composed cell (`nn.LSTMCell(fused=False)`) builds about thirty small nodes per step, which is
what you want to *see*; this op is what you want to *train* with. It takes the input projection
already computed for the step, `xw = x @ W_ih.T (+ b_ih + b_hh)` of shape (B, 4H) with the gates in
PyTorch's order i, f, g, o, and does the rest in one go:

    gates = xw (+ bias) + h_prev @ w_hh.T
    i, f, o = sigmoid(...), g = tanh(...)
    c = f * c_prev + i * g
    h = o * tanh(c)

It saves only the activated gates (B, 4H) and references to arrays that stay alive anyway
(c_prev, c, h_prev, w_hh); tanh(c) is recomputed in backward. On NumPy the gate math is a handful
of vectorized in-place calls; on CuPy it is one elementwise kernel forward and one backward (the
matmuls stay cuBLAS matmuls), compiled on first use.
"""

from __future__ import annotations

import functools

import numpy as np

from .graph import Function, apply
from .tensor import Tensor


@functools.lru_cache(maxsize=64)
def _gate_constants(hidden_size: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-column constants that let one tanh activate all four gates (NumPy path).

    sigmoid(z) = 0.5 * tanh(0.5 * z) + 0.5, so with `scale` = 0.5 on the i, f, o columns and 1 on the
    g columns, `tanh(z * scale) * scale + shift` is sigmoid or tanh per column. The derivative of
    either, written in its output a, is `a * (slope - a) + offset`: a(1 - a) for a sigmoid, 1 - a^2 for tanh.
    """
    is_sigmoid = np.ones((4, hidden_size), dtype=dtype)
    is_sigmoid[2] = 0  # the candidate g is a tanh
    is_sigmoid = is_sigmoid.reshape(-1)
    scale = 1 - 0.5 * is_sigmoid
    shift = 0.5 * is_sigmoid
    offset = 1 - is_sigmoid
    return scale, shift, is_sigmoid, offset


# CUDA: thread k handles column k % H of row k // H, i.e. the four gates of one hidden unit.
_CUDA_PREAMBLE = """
template <typename T> __device__ T lstm_sigmoid(T z) { return (T)0.5 * tanh((T)0.5 * z) + (T)0.5; }
"""

_CUDA_FORWARD = """
    const ptrdiff_t k = i + 3 * (i / H) * H;  // index of gate i's column in the (B, 4H) row
    const T a_i = lstm_sigmoid(pre[k] + xw[k]);
    const T a_f = lstm_sigmoid(pre[k + H] + xw[k + H]);
    const T a_g = tanh(pre[k + 2 * H] + xw[k + 2 * H]);
    const T a_o = lstm_sigmoid(pre[k + 3 * H] + xw[k + 3 * H]);
    c = a_f * c_prev + a_i * a_g;
    h = a_o * tanh(c);
    gates[k] = a_i;
    gates[k + H] = a_f;
    gates[k + 2 * H] = a_g;
    gates[k + 3 * H] = a_o;
"""

_CUDA_BACKWARD = """
    const ptrdiff_t k = i + 3 * (i / H) * H;
    const T a_i = gates[k], a_f = gates[k + H], a_g = gates[k + 2 * H], a_o = gates[k + 3 * H];
    const T tanh_c = tanh(c);
    const T dc = gc + gh * a_o * ((T)1 - tanh_c * tanh_c);
    dgates[k] = dc * a_g * a_i * ((T)1 - a_i);
    dgates[k + H] = dc * c_prev * a_f * ((T)1 - a_f);
    dgates[k + 2 * H] = dc * a_i * ((T)1 - a_g * a_g);
    dgates[k + 3 * H] = gh * tanh_c * a_o * ((T)1 - a_o);
    dc_prev = dc * a_f;
"""


@functools.lru_cache(maxsize=1)
def _cuda_kernels():
    """Build the two CuPy kernels once (CuPy compiles each for a dtype on its first call)."""
    import cupy

    forward = cupy.ElementwiseKernel(
        "raw T pre, raw T xw, T c_prev, int32 H", "raw T gates, T c, T h",
        _CUDA_FORWARD, "tinygrad_lstm_fused_lstm_forward", preamble=_CUDA_PREAMBLE,
    )
    backward = cupy.ElementwiseKernel(
        "raw T gates, T c_prev, T c, T gh, T gc, int32 H", "raw T dgates, T dc_prev",
        _CUDA_BACKWARD, "tinygrad_lstm_fused_lstm_backward",
    )
    return forward, backward


class FusedLSTMCell(Function):
    """One LSTM step (inputs xw, h_prev, c_prev, w_hh[, bias]; outputs h, c) as one node."""

    def forward(self, xw, h_prev, c_prev, w_hh, *bias, overwrite_xw=False):
        xp = self.xp
        hidden = c_prev.shape[1]
        if xp is np:
            gates = h_prev @ w_hh.T
            if overwrite_xw:  # the caller's temporary becomes our gate buffer: one (B, 4H) array less
                xw += gates
                gates = xw
            else:
                gates += xw
            if bias:
                gates += bias[0]
            scale, shift, _, _ = _gate_constants(hidden, gates.dtype)
            gates *= scale
            np.tanh(gates, out=gates)
            gates *= scale
            gates += shift
            i, f, g, o = (gates[:, k * hidden : (k + 1) * hidden] for k in range(4))
            c = f * c_prev
            c += i * g
            h = np.tanh(c)
            h *= o
        else:
            pre = xp.matmul(h_prev, w_hh.T)
            if bias:
                pre += bias[0]
            xw = xp.ascontiguousarray(xw)
            gates = xw if overwrite_xw else pre  # each thread reads its four entries before writing them
            c = xp.empty_like(c_prev)
            h = xp.empty_like(c_prev)
            _cuda_kernels()[0](pre, xw, xp.ascontiguousarray(c_prev), np.int32(hidden), gates, c, h)
        self.saved = (gates, c_prev, c, h_prev, w_hh)
        self.has_bias = bool(bias)
        return h, c

    def backward(self, gh, gc):
        gates, c_prev, c, h_prev, w_hh = self.saved
        xp = self.xp
        if xp is np:
            dgates, dc_prev = self._gate_grads_numpy(gates, c_prev, c, gh, gc)
        else:
            zero = xp.zeros((), dtype=c.dtype)
            dgates = xp.empty_like(gates)
            dc_prev = xp.empty_like(c)
            _cuda_kernels()[1](gates, c_prev, c, zero if gh is None else gh, zero if gc is None else gc,
                               np.int32(c.shape[1]), dgates, dc_prev)
        needs = self.needs_grad
        grads = (
            dgates if needs[0] else None,
            dgates @ w_hh if needs[1] else None,
            dc_prev if needs[2] else None,
            dgates.T @ h_prev if needs[3] else None,
        )
        if self.has_bias:
            grads += (dgates.sum(axis=0) if needs[4] else None,)
        return grads

    @staticmethod
    def _gate_grads_numpy(gates, c_prev, c, gh, gc):
        """d(loss)/d(pre-activation gates) and d(loss)/d(c_prev), with as few temporaries as NumPy allows."""
        hidden = c.shape[1]
        i, f, g, o = (gates[:, k * hidden : (k + 1) * hidden] for k in range(4))
        dgates = np.empty_like(gates)
        di, df, dg, do = (dgates[:, k * hidden : (k + 1) * hidden] for k in range(4))
        if gh is None:
            do.fill(0)
            dc = gc  # only read below
        else:
            tanh_c = np.tanh(c)
            np.multiply(gh, tanh_c, out=do)
            dc = tanh_c  # reuse: dc = gh * o * (1 - tanh(c)^2) (+ gc)
            dc *= tanh_c
            np.subtract(1, dc, out=dc)
            dc *= o
            dc *= gh
            if gc is not None:
                dc += gc
        np.multiply(dc, g, out=di)
        np.multiply(dc, c_prev, out=df)
        np.multiply(dc, i, out=dg)
        dc_prev = dc * f
        _, _, slope, offset = _gate_constants(hidden, gates.dtype)
        derivative = slope - gates
        derivative *= gates
        derivative += offset
        dgates *= derivative
        return dgates, dc_prev


def fused_lstm_cell(xw: Tensor, h_prev: Tensor, c_prev: Tensor, w_hh: Tensor, bias: Tensor | None = None, *,
                    overwrite_xw: bool = False) -> tuple[Tensor, Tensor]:
    """One LSTM step as one graph node: returns (h, c).

    xw: (B, 4H), the input projection x @ W_ih.T, with the biases added here or passed as `bias`
    (4H,) (then they are added inside, which saves a (B, 4H) array per step). h_prev, c_prev: (B, H).
    w_hh: (4H, H). Gates in PyTorch's order i, f, g, o. Gradients flow to every input.
    overwrite_xw=True lets the op keep its gate activations in xw's memory: pass it only when xw is a
    temporary nothing else reads (nn.LSTM does so for its per-step pieces of the input projection).
    """
    _check_inputs(xw, h_prev, c_prev, w_hh, bias)
    inputs = (xw, h_prev, c_prev, w_hh) if bias is None else (xw, h_prev, c_prev, w_hh, bias)
    return apply(FusedLSTMCell, *inputs, overwrite_xw=overwrite_xw and xw.data.flags.c_contiguous)


def _check_inputs(xw: Tensor, h_prev: Tensor, c_prev: Tensor, w_hh: Tensor, bias: Tensor | None) -> None:
    """Name the offending tensor and both shapes, instead of failing inside a matmul."""
    named = (("xw", xw), ("h_prev", h_prev), ("c_prev", c_prev), ("w_hh", w_hh), ("bias", bias))
    for name, t in named:
        if t is not None and not isinstance(t, Tensor):
            raise TypeError(f"fused_lstm_cell: {name} must be a Tensor, got {type(t).__name__}")
    if w_hh.ndim != 2 or w_hh.shape[0] != 4 * w_hh.shape[1]:
        raise ValueError(f"fused_lstm_cell: w_hh must have shape (4H, H), got {w_hh.shape}")
    hidden = w_hh.shape[1]
    if xw.ndim != 2 or xw.shape[1] != 4 * hidden:
        raise ValueError(f"fused_lstm_cell: xw has shape {xw.shape}, expected (B, 4H) = (B, {4 * hidden}) "
                         f"for w_hh of shape {w_hh.shape}")
    state_shape = (xw.shape[0], hidden)
    for name, t in (("h_prev", h_prev), ("c_prev", c_prev)):
        if t.shape != state_shape:
            raise ValueError(f"fused_lstm_cell: {name} has shape {t.shape}, expected (B, H) = {state_shape} "
                             f"(B from xw of shape {xw.shape}, H from w_hh of shape {w_hh.shape})")
    if bias is not None and bias.shape != (4 * hidden,):
        raise ValueError(f"fused_lstm_cell: bias has shape {bias.shape}, expected (4H,) = ({4 * hidden},)")
    for name, t in named:
        if t is not None and t.dtype != w_hh.dtype:
            raise TypeError(f"fused_lstm_cell: {name} has dtype {t.dtype} but w_hh has dtype {w_hh.dtype}; "
                            "convert with .to(dtype)")
