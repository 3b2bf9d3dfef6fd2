"""Fused ops for the LSTM fast path: one LSTM time step as ONE graph node, a whole layer as one node, and the
input projection.

The composed cell (`nn.LSTMCell(fused=False)`) builds about thirty small nodes per step, which is
what you want to *see*; the fused ops are what you want to *train* with. `fused_lstm_cell` takes the
input projection already computed for the step, `xw = x @ W_ih.T + b_ih + b_hh` of shape (B, 4H) with
the gates in PyTorch's order i, f, g, o, and does the rest in one node with an analytic backward:

    gates = xw + h_prev @ w_hh.T
    i, f, o = sigmoid(...), g = tanh(...)
    c = f * c_prev + i * g
    h = o * tanh(c)

It saves only the activated gates (B, 4H) and references to arrays that stay alive anyway
(c_prev, c, h_prev, w_hh); tanh(c) is recomputed in backward. On NumPy the gate math is a dozen
vectorized in-place calls; on CuPy it is one elementwise kernel forward and one backward (the
matmuls stay cuBLAS matmuls), compiled on first use.

`fused_lstm` runs those same steps over a whole sequence inside one node, as cuDNN does: a graph
node per step costs the engine more than the step's own math when the LSTM is small, and the
recurrent weight's gradient becomes one matmul over all steps. nn.LSTM trains through it.

`fused_linear(x, weight, bias)` is `x @ weight.T + bias` as one node: nn.LSTM computes every step's
`xw` with it at once, and no bias-free copy of that (steps * B, 4H) array stays alive beside it.
"""

from __future__ import annotations

import functools

import numpy as np

from .graph import Function
from .tensor import Tensor, apply


@functools.lru_cache(maxsize=64)
def _gate_constants(batch: int, hidden: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-column constants that let one tanh activate all four gates (NumPy path).

    sigmoid(z) = 0.5 * tanh(0.5 * z) + 0.5, so with `scale` = 0.5 on the i, f, o columns and 1 on the
    g columns, `tanh(z * scale) * scale + shift` is sigmoid or tanh per column. The derivative of
    either, written in its output a, is `a * (slope - a) + offset`: a(1 - a) for a sigmoid, 1 - a^2 for tanh.
    They are full (batch, 4H) arrays because NumPy multiplies equal shapes faster than it broadcasts.
    """
    is_sigmoid = np.ones((batch, 4, hidden), dtype=dtype)
    is_sigmoid[:, 2] = 0  # the candidate g is a tanh
    is_sigmoid = is_sigmoid.reshape(batch, 4 * hidden)
    scale = 1 - 0.5 * is_sigmoid
    shift = 0.5 * is_sigmoid
    offset = 1 - is_sigmoid
    return scale, shift, is_sigmoid, offset


# CUDA: loop index i is hidden unit i % H of batch row i / H; that unit's four gates sit at k, k + H,
# k + 2H and k + 3H of the contiguous (B, 4H) gate array, with k = (i / H) * 4H + i % H. The forward
# kernel finds xw in `gates` and overwrites it with the activations (each thread its own four entries).
_CUDA_PREAMBLE = """
template <typename T> __device__ T lstm_sigmoid(T z) { return (T)0.5 * tanh((T)0.5 * z) + (T)0.5; }
"""

_CUDA_FORWARD = """
    const ptrdiff_t k = i + 3 * (i / H) * H;
    const T a_i = lstm_sigmoid(gates[k] + pre[k]);
    const T a_f = lstm_sigmoid(gates[k + H] + pre[k + H]);
    const T a_g = tanh(gates[k + 2 * H] + pre[k + 2 * H]);
    const T a_o = lstm_sigmoid(gates[k + 3 * H] + pre[k + 3 * H]);
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
        "raw T pre, T c_prev, int32 H", "raw T gates, T c, T h",
        _CUDA_FORWARD, "tinygrad_lstm_fused_lstm_forward", preamble=_CUDA_PREAMBLE,
    )
    backward = cupy.ElementwiseKernel(
        "raw T gates, T c_prev, T c, T gh, T gc, int32 H", "raw T dgates, T dc_prev",
        _CUDA_BACKWARD, "tinygrad_lstm_fused_lstm_backward",
    )
    return forward, backward


class FusedLSTMCell(Function):
    """One LSTM step (inputs xw, h_prev, c_prev, w_hh; outputs h, c) as one node."""

    def forward(self, xw, h_prev, c_prev, w_hh, overwrite_xw=False):
        xp = self.xp
        gates = xw if overwrite_xw else xp.array(xw, order="C")
        h, c = xp.empty_like(c_prev), xp.empty_like(c_prev)
        _step_forward(xp, gates, h_prev, c_prev, w_hh, h, c)
        self.saved = (gates, c_prev, c, h_prev, w_hh)
        return h, c

    def backward(self, gh, gc):
        gates, c_prev, c, h_prev, w_hh = self.saved
        xp = self.xp
        dgates = xp.empty_like(gates)
        dc_prev = _step_backward(xp, gates, c_prev, c, gh, gc, dgates)
        needs, dot = self.needs_grad, xp.dot  # dot: NumPy's matmul is slow for (4H, 1) @ (1, H)
        return (
            dgates if needs[0] else None,
            dot(dgates, w_hh) if needs[1] else None,
            dc_prev if needs[2] else None,
            dot(dgates.T, h_prev) if needs[3] else None,
        )


class FusedLSTMLayer(Function):
    """A whole sequence of LSTM steps (inputs xw (T, B, 4H), h0, c0, w_hh; outputs hs (T, B, H), c_T) as one node.

    The steps are `FusedLSTMCell`'s, looped here rather than in the graph: one node per layer instead of
    one per step, and the recurrent weight's gradient is one matmul over the whole sequence instead of
    one per step. That is what decides the speed of small LSTMs, where the per-step math is tiny.
    """

    def forward(self, xw, h0, c0, w_hh, overwrite_xw=False):
        xp = self.xp
        steps = xw.shape[0]
        gates = xw if overwrite_xw else xp.array(xw, order="C")
        hs = xp.empty((steps + 1,) + h0.shape, dtype=h0.dtype)  # hs[t + 1] is the output of step t
        cs = xp.empty_like(hs)
        hs[0], cs[0] = h0, c0
        for t in range(steps):
            _step_forward(xp, gates[t], hs[t], cs[t], w_hh, hs[t + 1], cs[t + 1])
        self.saved = (gates, hs, cs, w_hh)
        return hs[1:], cs[-1]

    def backward(self, g_hs, g_c):
        gates, hs, cs, w_hh = self.saved
        xp, needs = self.xp, self.needs_grad
        dgates = xp.empty_like(gates)
        dh, dc = None, g_c  # the gradients flowing back into the state of step t
        for t in reversed(range(gates.shape[0])):
            gh = dh  # what reaches h_t: from step t + 1, plus what the output hs[t] gets
            if g_hs is not None:
                gh = g_hs[t] if dh is None else xp.add(dh, g_hs[t], out=dh)
            dc = _step_backward(xp, gates[t], cs[t], cs[t + 1], gh, dc, dgates[t])
            dh = xp.dot(dgates[t], w_hh) if t or needs[1] else None
        rows = dgates.reshape(-1, dgates.shape[2])
        return (
            dgates if needs[0] else None,
            dh,
            dc if needs[2] else None,
            xp.dot(rows.T, hs[:-1].reshape(rows.shape[0], -1)) if needs[3] else None,
        )


def _step_forward(xp, gates, h_prev, c_prev, w_hh, h, c) -> None:
    """One step in place: `gates` (B, 4H) holds xw on entry and the activated gates on exit; h and c are written."""
    (_forward_numpy if xp is np else _forward_cuda)(xp, gates, h_prev, c_prev, w_hh, h, c)


def _step_backward(xp, gates, c_prev, c, gh, gc, dgates):
    """Write d(loss)/d(pre-activation gates) into `dgates`; return d(loss)/d(c_prev). gh or gc may be None."""
    return (_backward_numpy if xp is np else _backward_cuda)(xp, gates, c_prev, c, gh, gc, dgates)


def _forward_numpy(xp, gates, h_prev, c_prev, w_hh, h, c):
    """A dozen vectorized calls that write into their buffers."""
    gates += np.dot(h_prev, w_hh.T)
    hidden = c_prev.shape[1]
    scale, shift, _, _ = _gate_constants(gates.shape[0], hidden, gates.dtype)
    gates *= scale
    np.tanh(gates, out=gates)
    gates *= scale
    gates += shift
    np.multiply(gates[:, hidden : 2 * hidden], c_prev, out=c)  # f * c_prev
    c += gates[:, :hidden] * gates[:, 2 * hidden : 3 * hidden]  # + i * g
    np.tanh(c, out=h)
    h *= gates[:, 3 * hidden :]  # o * tanh(c)


def _backward_numpy(xp, gates, c_prev, c, gh, gc, dgates):
    """tanh(c) is recomputed rather than kept."""
    hidden = c.shape[1]
    i, f = gates[:, :hidden], gates[:, hidden : 2 * hidden]
    g, o = gates[:, 2 * hidden : 3 * hidden], gates[:, 3 * hidden :]
    if gh is None:
        dgates[:, 3 * hidden :] = 0
        dc = gc  # only read below
    else:
        tanh_c = np.tanh(c)
        np.multiply(gh, tanh_c, out=dgates[:, 3 * hidden :])  # d/do
        dc = tanh_c  # reused: dc = gh * o * (1 - tanh(c)^2) (+ gc)
        dc *= tanh_c
        np.subtract(1, dc, out=dc)
        dc *= o
        dc *= gh
        if gc is not None:
            dc += gc
    np.multiply(dc, g, out=dgates[:, :hidden])  # d/di
    np.multiply(dc, c_prev, out=dgates[:, hidden : 2 * hidden])  # d/df
    np.multiply(dc, i, out=dgates[:, 2 * hidden : 3 * hidden])  # d/dg
    dc_prev = dc * f
    _, _, slope, offset = _gate_constants(gates.shape[0], hidden, gates.dtype)
    derivative = slope - gates  # through the activations: a (1 - a) for sigmoids, 1 - a^2 for tanh
    derivative *= gates
    derivative += offset
    dgates *= derivative
    return dc_prev


def _forward_cuda(xp, gates, h_prev, c_prev, w_hh, h, c):
    pre = xp.dot(h_prev, w_hh.T)
    _cuda_kernels()[0](pre, c_prev, np.int32(c_prev.shape[1]), gates, c, h)


def _backward_cuda(xp, gates, c_prev, c, gh, gc, dgates):
    zero = xp.zeros((), dtype=c.dtype)  # an output that got no gradient contributes zeros
    dc_prev = xp.empty_like(c)
    _cuda_kernels()[1](gates, c_prev, c, zero if gh is None else gh, zero if gc is None else gc,
                       np.int32(c.shape[1]), dgates, dc_prev)
    return dc_prev


class Linear(Function):
    """x @ weight.T + bias in one node (PyTorch's addmm), for 2-D x."""

    def forward(self, x, weight, bias):
        self.saved = (x, weight)
        out = self.xp.dot(x, weight.T)
        out += bias
        return out

    def backward(self, g):
        x, weight = self.saved
        needs, dot = self.needs_grad, self.xp.dot
        return (
            dot(g, weight) if needs[0] else None,
            dot(g.T, x) if needs[1] else None,
            g.sum(axis=0) if needs[2] else None,
        )


def fused_lstm_cell(xw: Tensor, h_prev: Tensor, c_prev: Tensor, w_hh: Tensor, *,
                    overwrite_xw: bool = False) -> tuple[Tensor, Tensor]:
    """One LSTM step as one graph node: returns (h, c).

    xw: (B, 4H), the input projection x @ W_ih.T + b_ih + b_hh (see `fused_linear`). h_prev, c_prev:
    (B, H). w_hh: (4H, H). Gates in PyTorch's order i, f, g, o. Gradients flow to all four inputs.
    overwrite_xw=True lets the op keep its gate activations in xw's memory (one (B, 4H) array less
    per step): pass it only when xw is a temporary that nothing else reads, as nn.LSTMCell's input
    projection is (it then shows the gates, not the projection, if drawn with data).
    """
    if not _well_formed(xw, h_prev, c_prev, w_hh, 2):
        raise _input_error("fused_lstm_cell", xw, ("h_prev", h_prev), ("c_prev", c_prev), w_hh, 2)
    return apply(FusedLSTMCell, xw, h_prev, c_prev, w_hh, overwrite_xw=overwrite_xw and xw.array.flags.c_contiguous)


def fused_lstm(xw: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, *,
               overwrite_xw: bool = False) -> tuple[Tensor, Tensor]:
    """A whole LSTM layer over a sequence as one graph node: returns (hs, c_T), the h of every step and the last c.

    xw: (T, B, 4H), every step's input projection (see `fused_lstm_cell`). h0, c0: (B, H). w_hh: (4H, H).
    hs: (T, B, H), so the last h is hs[-1]. Same values and gradients as T `fused_lstm_cell` steps, with
    the engine's per-step cost gone: nn.LSTM trains through this. overwrite_xw as in `fused_lstm_cell`.
    """
    if not _well_formed(xw, h0, c0, w_hh, 3):
        raise _input_error("fused_lstm", xw, ("h0", h0), ("c0", c0), w_hh, 3)
    return apply(FusedLSTMLayer, xw, h0, c0, w_hh, overwrite_xw=overwrite_xw and xw.array.flags.c_contiguous)


def fused_linear(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """x @ weight.T + bias as one node, x (N, in_features), weight (out_features, in_features), bias (out_features,)."""
    for name, t in (("x", x), ("weight", weight), ("bias", bias)):
        if not isinstance(t, Tensor):
            raise TypeError(f"fused_linear: {name} must be a Tensor, got {type(t).__name__}")
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1] or bias.shape != weight.shape[:1]:
        raise ValueError(f"fused_linear: shapes x {x.shape}, weight {weight.shape}, bias {bias.shape} do not fit "
                         "x (N, in), weight (out, in), bias (out,)")
    if not x.dtype == weight.dtype == bias.dtype:
        raise TypeError(f"fused_linear: dtypes differ: x {x.dtype}, weight {weight.dtype}, bias {bias.dtype}")
    return apply(Linear, x, weight, bias)


def _well_formed(xw, h, c, w_hh, xw_ndim: int) -> bool:
    """The fast check, once per step: four Tensors whose shapes and dtypes agree (xw has `xw_ndim` axes)."""
    if not (isinstance(xw, Tensor) and isinstance(h, Tensor) and isinstance(c, Tensor) and isinstance(w_hh, Tensor)):
        return False
    if xw.ndim != xw_ndim or w_hh.ndim != 2:
        return False
    batch, hidden, dtype = xw.shape[-2], w_hh.shape[1], w_hh.dtype
    return (xw.shape[-1] == 4 * hidden and h.shape == c.shape == (batch, hidden)
            and w_hh.shape == (4 * hidden, hidden) and xw.dtype == h.dtype == c.dtype == dtype)


def _input_error(who: str, xw, h: tuple[str, object], c: tuple[str, object], w_hh, xw_ndim: int) -> Exception:
    """The error for inputs `_well_formed` refused, naming the offending tensor and both shapes."""
    named = (("xw", xw), h, c, ("w_hh", w_hh))
    for name, t in named:
        if not isinstance(t, Tensor):
            return TypeError(f"{who}: {name} must be a Tensor, got {type(t).__name__}")
    if w_hh.ndim != 2 or w_hh.shape[0] != 4 * w_hh.shape[1]:
        return ValueError(f"{who}: w_hh must have shape (4H, H), got {w_hh.shape}")
    hidden = w_hh.shape[1]
    layout = "(B, 4H)" if xw_ndim == 2 else "(T, B, 4H)"
    if xw.ndim != xw_ndim or xw.shape[-1] != 4 * hidden:
        return ValueError(f"{who}: xw has shape {xw.shape}, expected {layout} with 4H = {4 * hidden} "
                          f"for w_hh of shape {w_hh.shape}")
    state_shape = (xw.shape[-2], hidden)
    for name, t in (h, c):
        if t.shape != state_shape:
            return ValueError(f"{who}: {name} has shape {t.shape}, expected (B, H) = {state_shape} "
                              f"(B from xw of shape {xw.shape}, H from w_hh of shape {w_hh.shape})")
    name = next(name for name, t in named if t.dtype != w_hh.dtype)
    return TypeError(f"{who}: {name} has dtype {dict(named)[name].dtype} but w_hh has dtype "
                     f"{w_hh.dtype}; convert with .to(dtype)")
