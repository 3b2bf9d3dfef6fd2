"""The gate math of one recurrent step, written once, with the article's names.

`lstm_step_forward` and `lstm_step_backward` are the only place the fused LSTM's step math lives
(the fused cell, the fused layer, the benchmark's hand-fused ceiling and the tests call them). Each
takes the four gates as named (B, H) views `i, f, g, o` (PyTorch's row order) of one (B, 4H) buffer:

    forward                              backward (gh, gc: what reaches h and c from above)
    i, f, o = sigmoid(.), g = tanh(.)    dc      = gc + gh * o * (1 - tanh(c)^2)
    c = f * c_prev + i * g               di      = dc * g * i (1 - i)
    h = o * tanh(c)                      df      = dc * c_prev * f (1 - f)
                                         dg      = dc * i * (1 - g^2)
                                         do      = gh * tanh(c) * o (1 - o)
                                         dc_prev = dc * f

On NumPy they are array code that writes into the given buffers; on CuPy the same lines, with the
same names, are a CUDA elementwise kernel (`LSTM_FORWARD`, `LSTM_BACKWARD`), one thread per unit.
The matmuls around the step (h_prev @ W_hh^T, dgates @ W_hh) stay outside: they are BLAS/cuBLAS calls.
The GRU's step (`gru_step_forward`, views r, z, n) and the Elman RNN's follow below in the same style.
"""

from __future__ import annotations

import functools

import numpy as np

from ..tensor import ElementwiseKernel

# The gate buffer holds the pre-activations on entry to the forward and the activations i, f, g, o after it.


def gate_views(gates):
    """The (B, H) views i, f, g, o of a (B, 4H) gate buffer, in PyTorch's row order."""
    h = gates.shape[-1] // 4
    return gates[..., :h], gates[..., h : 2 * h], gates[..., 2 * h : 3 * h], gates[..., 3 * h :]


@functools.lru_cache(maxsize=64)
def _one_tanh_constants(batch: int, hidden: int, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    """Per-column constants that activate (and differentiate) all four gates in one pass over the buffer.

    sigmoid(z) = 0.5 * tanh(0.5 * z) + 0.5, so `tanh(z * scale) * scale + shift` is a sigmoid on the
    i, f, o columns (scale 0.5, shift 0.5) and a tanh on the g columns (scale 1, shift 0). The
    derivative, written in the activation a, is `a * (sigmoid_columns - a) + tanh_columns`: a (1 - a)
    for a sigmoid, 1 - a^2 for a tanh. Full (B, 4H) arrays: NumPy multiplies equal shapes faster than
    it broadcasts a row.
    """
    sigmoid_columns = np.ones((batch, 4, hidden), dtype=dtype)
    sigmoid_columns[:, 2] = 0  # g, the candidate, is the tanh
    sigmoid_columns = sigmoid_columns.reshape(batch, 4 * hidden)
    scale = 1 - 0.5 * sigmoid_columns
    shift = 0.5 * sigmoid_columns
    tanh_columns = 1 - sigmoid_columns
    return scale, shift, sigmoid_columns, tanh_columns


def sigmoid_(xp, z) -> None:
    """z = sigmoid(z) in place, through tanh (no overflow warnings for large |z|)."""
    z *= 0.5
    xp.tanh(z, out=z)
    z *= 0.5
    z += 0.5


def lstm_step_forward(xp, c_prev, i, f, g, o, c, h, all_gates=None) -> None:
    """One LSTM step's gate math in place: i, f, g, o hold the pre-activations on entry, the gates on exit.

    `all_gates`, the (B, 4H) buffer the four views split (NumPy only), activates them with one tanh call
    instead of four: the gate math then runs 2.4-3.3x faster (8.7 vs 24.8 us at B=1, H=32; 35 vs 117 us
    at B=32, H=128; 110 vs 204 us at B=32, H=512; one thread), which is a quarter of a small LSTM's step.
    """
    if all_gates is not None:
        scale, shift, _, _ = _one_tanh_constants(*all_gates.shape[:1], all_gates.shape[1] // 4, all_gates.dtype)
        all_gates *= scale
        xp.tanh(all_gates, out=all_gates)
        all_gates *= scale
        all_gates += shift
    else:
        sigmoid_(xp, i)  # input gate: how much of the candidate to write
        sigmoid_(xp, f)  # forget gate: how much of the old cell state to keep
        xp.tanh(g, out=g)  # candidate: what could be written
        sigmoid_(xp, o)  # output gate: what of the squashed cell state to show
    xp.multiply(f, c_prev, out=c)  # c = f * c_prev + i * g
    xp.multiply(i, g, out=h)  # (h is scratch here)
    c += h
    xp.tanh(c, out=h)  # h = o * tanh(c)
    h *= o


def lstm_step_backward(xp, i, f, g, o, c_prev, c, gh, gc, di, df, dg, do, dc_prev,
                       all_gates=None, all_dgates=None) -> None:
    """The gradients of one LSTM step, written into di, df, dg, do (pre-activation) and dc_prev.

    gh and gc reach h and c from above. tanh(c) is recomputed rather than kept. `all_gates` and
    `all_dgates` (NumPy only), the (B, 4H) buffers the views split, take the activations'
    derivatives in one pass instead of four (the same trick as the forward).
    """
    tanh_c = xp.tanh(c)
    xp.multiply(gh, tanh_c, out=do)  # do = gh * tanh(c) * o (1 - o)
    dc = tanh_c  # dc = gc + gh * o * (1 - tanh(c)^2), built in tanh_c's buffer
    dc *= tanh_c
    xp.subtract(1, dc, out=dc)
    dc *= o
    dc *= gh
    dc += gc
    xp.multiply(dc, g, out=di)  # di = dc * g * i (1 - i)
    xp.multiply(dc, c_prev, out=df)  # df = dc * c_prev * f (1 - f)
    xp.multiply(dc, i, out=dg)  # dg = dc * i * (1 - g^2)
    xp.multiply(dc, f, out=dc_prev)  # dc_prev = dc * f
    if all_gates is not None:
        _, _, sigmoid_columns, tanh_columns = _one_tanh_constants(all_gates.shape[0], all_gates.shape[1] // 4,
                                                                  all_gates.dtype)
        derivative = sigmoid_columns - all_gates
        derivative *= all_gates
        derivative += tanh_columns
        all_dgates *= derivative
    else:
        di *= i * (1 - i)
        df *= f * (1 - f)
        dg *= 1 - g * g
        do *= o * (1 - o)


_CUDA_PREAMBLE = """
template <typename T> __device__ T sigmoid(T z) { return (T)0.5 * tanh((T)0.5 * z) + (T)0.5; }
template <typename T> __device__ T grad_sigmoid(T a) { return a * ((T)1 - a); }
template <typename T> __device__ T grad_tanh(T a) { return (T)1 - a * a; }
"""

# CuPy's loop index is `i`, so the kernels call the input gate `i_`; `do` is a C++ keyword, so the backward
# calls that gradient `do_`.
LSTM_FORWARD = ElementwiseKernel(
    name="tinygrad_lstm_step_forward",
    in_params="T c_prev",
    out_params="T i_, T f, T g, T o, T c, T h",
    operation="""
    i_ = sigmoid(i_);
    f = sigmoid(f);
    g = tanh(g);
    o = sigmoid(o);
    c = f * c_prev + i_ * g;
    h = o * tanh(c);
    """,
    formula=lstm_step_forward,
    preamble=_CUDA_PREAMBLE,
)

LSTM_BACKWARD = ElementwiseKernel(
    name="tinygrad_lstm_step_backward",
    in_params="T i_, T f, T g, T o, T c_prev, T c, T gh, T gc",
    out_params="T di, T df, T dg, T do_, T dc_prev",
    operation="""
    const T tanh_c = tanh(c);
    const T dc = gc + gh * o * ((T)1 - tanh_c * tanh_c);
    di = dc * g * grad_sigmoid(i_);
    df = dc * c_prev * grad_sigmoid(f);
    dg = dc * i_ * grad_tanh(g);
    do_ = gh * tanh_c * grad_sigmoid(o);
    dc_prev = dc * f;
    """,
    formula=lstm_step_backward,
    preamble=_CUDA_PREAMBLE,
)


# ---------------------------------------------------------------- GRU (PyTorch's rows r, z, n)
#
#     forward (r, z, n hold x W_i^T + b_i on entry,      backward (gh: what reaches h from above)
#     hr, hz, hn hold h_prev W_h^T + b_h)
#     r = sigmoid(r + hr)                                dn  = gh * (1 - z) * (1 - n^2)
#     z = sigmoid(z + hz)                                dz  = gh * (h_prev - n) * z (1 - z)
#     n = tanh(n + r * hn)                               dr  = dn * hn * r (1 - r)
#     h = (1 - z) * n + z * h_prev                       dhn = dn * r
#                                                        dh_prev = gh * z   (+ [dr, dz, dhn] @ W_hh, outside)
#
# dr, dz, dn are the gradients of the input projection; dr, dz, dhn those of the recurrent one (which
# differs in the candidate: the reset gate scales hn). hn is kept (`hn_kept`) for the backward.


def gru_gate_views(gates):
    """The (B, H) views r, z, n of a (B, 3H) gate buffer, in PyTorch's row order."""
    hidden = gates.shape[-1] // 3
    return tuple(gates[..., k * hidden : (k + 1) * hidden] for k in range(3))


def gru_step_forward(xp, h_prev, hr, hz, hn, r, z, n, h, hn_kept, rz=None, hrz=None) -> None:
    """One GRU step's gate math in place: r, z, n hold the input projections on entry, the gates on exit.

    `rz` and `hrz` (NumPy only), the (B, 2H) views that r, z and hr, hz split, activate both sigmoid gates
    with one call each instead of two.
    """
    if rz is not None:
        rz += hrz
        sigmoid_(xp, rz)
    else:
        r += hr
        sigmoid_(xp, r)  # reset gate: how much of the old state the candidate sees
        z += hz
        sigmoid_(xp, z)  # update gate: how much of the old state to keep
    hn_kept[...] = hn
    xp.multiply(r, hn, out=h)  # (h is scratch here)
    n += h
    xp.tanh(n, out=n)  # candidate: what the new state could be
    xp.subtract(h_prev, n, out=h)  # h = n + z * (h_prev - n)
    h *= z
    h += n


def gru_step_backward(xp, r, z, n, hn, h_prev, gh, dr, dz, dn, dhn, dh_prev) -> None:
    """The gradients of one GRU step, written into dr, dz, dn, dhn (pre-activation) and dh_prev (the direct path)."""
    xp.multiply(gh, z, out=dh_prev)  # dh_prev = gh * z
    xp.subtract(gh, dh_prev, out=dn)  # dn = gh * (1 - z) * (1 - n^2)
    xp.multiply(n, n, out=dhn)  # (dhn is scratch here)
    xp.subtract(1, dhn, out=dhn)
    dn *= dhn
    xp.subtract(h_prev, n, out=dz)  # dz = gh * (h_prev - n) * z (1 - z)
    dz *= gh
    xp.subtract(1, z, out=dhn)
    dhn *= z
    dz *= dhn
    xp.multiply(dn, hn, out=dr)  # dr = dn * hn * r (1 - r)
    xp.subtract(1, r, out=dhn)
    dhn *= r
    dr *= dhn
    xp.multiply(dn, r, out=dhn)  # dhn = dn * r


GRU_FORWARD = ElementwiseKernel(
    name="tinygrad_gru_step_forward",
    in_params="T h_prev, T hr, T hz, T hn",
    out_params="T r, T z, T n, T h, T hn_kept",
    operation="""
    r = sigmoid(r + hr);
    z = sigmoid(z + hz);
    n = tanh(n + r * hn);
    h = ((T)1 - z) * n + z * h_prev;
    hn_kept = hn;
    """,
    formula=gru_step_forward,
    preamble=_CUDA_PREAMBLE,
)

GRU_BACKWARD = ElementwiseKernel(
    name="tinygrad_gru_step_backward",
    in_params="T r, T z, T n, T hn, T h_prev, T gh",
    out_params="T dr, T dz, T dn, T dhn, T dh_prev",
    operation="""
    dn = gh * ((T)1 - z) * grad_tanh(n);
    dz = gh * (h_prev - n) * grad_sigmoid(z);
    dr = dn * hn * grad_sigmoid(r);
    dhn = dn * r;
    dh_prev = gh * z;
    """,
    formula=gru_step_backward,
    preamble=_CUDA_PREAMBLE,
)


# ---------------------------------------------------------------- Elman RNN
#
#     forward (h holds x W_ih^T + b_ih + b_hh on entry,     backward
#     hw is h_prev W_hh^T)
#     h = tanh(h + hw)    or relu                          dpre = gh * (1 - h^2)    or gh * (h > 0)


def rnn_tanh_step_forward(xp, hw, h) -> None:
    h += hw
    xp.tanh(h, out=h)


def rnn_relu_step_forward(xp, hw, h) -> None:
    h += hw
    xp.maximum(h, 0, out=h)


def rnn_tanh_step_backward(xp, h, gh, dpre) -> None:
    xp.multiply(h, h, out=dpre)
    xp.subtract(1, dpre, out=dpre)
    dpre *= gh


def rnn_relu_step_backward(xp, h, gh, dpre) -> None:
    xp.greater(h, 0, out=dpre)  # 1 where the unit was active, written in dpre's dtype
    dpre *= gh


def _rnn_kernels(nonlinearity: str, forward: str, backward: str, formulas) -> tuple[ElementwiseKernel, ...]:
    return (
        ElementwiseKernel(name=f"tinygrad_rnn_{nonlinearity}_step_forward", in_params="T hw", out_params="T h",
                          operation=forward, formula=formulas[0]),
        ElementwiseKernel(name=f"tinygrad_rnn_{nonlinearity}_step_backward", in_params="T h, T gh",
                          out_params="T dpre", operation=backward, formula=formulas[1]),
    )


RNN_STEPS = {
    "tanh": _rnn_kernels("tanh", "h = tanh(h + hw);", "dpre = gh * ((T)1 - h * h);",
                         (rnn_tanh_step_forward, rnn_tanh_step_backward)),
    "relu": _rnn_kernels("relu", "const T pre = h + hw; h = pre > (T)0 ? pre : (T)0;", "dpre = h > (T)0 ? gh : (T)0;",
                         (rnn_relu_step_forward, rnn_relu_step_backward)),
}
"""The Elman step's (forward, backward) kernels by nonlinearity."""
