"""The LSTM variants' step as one graph node: one generalized step formula with the article's names.

The article ends on "other modified networks based on LSTM" that "are essentially the same"; Greff et
al. (2015, "LSTM: A Search Space Odyssey") compare them. Each drops or ties one piece of the step:

    gate       present                              absent
    forget     f = sigmoid(z_f + w_cf * c_prev)     f = 1 (NFG, the 1997 original: nothing is forgotten)
    input      i = sigmoid(z_i + w_ci * c_prev)     i = 1 - f (CIFG, coupled) or i = 1 (NIG)
    candidate  g = tanh(z_g)                        (always there)
    cell       c = f * c_prev + i * g
    output     o = sigmoid(z_o + w_co * c)          o = 1 (NOG)
               h = o * tanh(c)                      h = o * c (NOAF: no output activation)

z_k = x W_ik^T + b_ik + h_prev W_hk^T + b_hk for the gates present (their rows are stacked in PyTorch's
order i, f, g, o, skipping the absent ones); w_ci, w_cf, w_co are the peephole weights (Gers &
Schmidhuber 2000: the gates look at the cell), zero without peepholes. The backward, in the same names
(gh, gc: what reaches h and c from above; di... are the pre-activation gradients):

    do      = gh * tanh(c) * o (1 - o)                      (0 without an output gate)
    dc      = gc + gh * o * (1 - tanh(c)^2) + do * w_co     (tanh(c) -> c, 1 - tanh(c)^2 -> 1 for NOAF)
    dg      = dc * i * (1 - g^2)
    di      = dc * g * i (1 - i)                            (0 without an input gate)
    df      = (dc * c_prev - [coupled] dc * g) * f (1 - f)   (0 without a forget gate)
    dc_prev = dc * f + di * w_ci + df * w_cf

As in `cell_math.py`, the formula is NumPy array code and, spelled the same, a CUDA elementwise
kernel (the flags are kernel arguments, so one kernel serves the whole family). `fused_variant_cell`
wraps it with the recurrent matmul into one node; `nn.variants.LSTMVariantCell(fused=True)` runs it.
The plain LSTM's own formula stays in `cell_math.py`, and every plain LSTM (proj_size too) runs on it.
"""

from __future__ import annotations

from ..tensor import ElementwiseKernel, Function, Tensor, apply
from .cell_math import gate_views, sigmoid_
from .fused import step_gradients

GATE_SCOPES = {"i": "input gate", "f": "forget gate", "g": "candidate", "o": "output gate"}


def variant_step_forward(xp, c_prev, w_ci, w_cf, w_co, has_input, has_forget, has_output, coupled, squash,
                         i, f, g, o, c, h) -> None:
    """One variant step in place: i, f, g, o hold the pre-activations on entry, the gates on exit.

    A gate that is absent gets its constant value (1, or 1 - f for a coupled input gate), so the
    backward reads every gate the same way.
    """
    if has_forget:  # forget gate: how much of the old cell state to keep
        f += w_cf * c_prev
        sigmoid_(xp, f)
    else:
        f[...] = 1
    if has_input:  # input gate: how much of the candidate to write
        i += w_ci * c_prev
        sigmoid_(xp, i)
    elif coupled:
        xp.subtract(1, f, out=i)
    else:
        i[...] = 1
    xp.tanh(g, out=g)  # candidate: what could be written
    xp.multiply(f, c_prev, out=c)  # c = f * c_prev + i * g
    c += i * g
    if has_output:  # output gate: what of the squashed cell state to show
        o += w_co * c
        sigmoid_(xp, o)
    else:
        o[...] = 1
    if squash:
        xp.tanh(c, out=h)  # h = o * tanh(c)
    else:
        h[...] = c  # h = o * c: no output activation
    h *= o


def variant_step_backward(xp, i, f, g, o, c_prev, c, gh, gc, w_ci, w_cf, w_co, has_input, has_forget, has_output,
                          coupled, squash, di, df, dg, do, dc_prev) -> None:
    """The gradients of one variant step, written into di, df, dg, do (pre-activation) and dc_prev."""
    tanh_c = xp.tanh(c) if squash else c  # what o multiplies (c itself without the output activation)
    if has_output:
        xp.multiply(gh, tanh_c, out=do)  # do = gh * tanh(c) * o (1 - o)
        do *= o * (1 - o)
    else:
        do[...] = 0
    dc = gc + gh * o * (1 - tanh_c * tanh_c if squash else 1) + do * w_co
    xp.multiply(dc, i * (1 - g * g), out=dg)  # dg = dc * i * (1 - g^2)
    if has_input:
        xp.multiply(dc, g * i * (1 - i), out=di)  # di = dc * g * i (1 - i)
    else:
        di[...] = 0
    if has_forget:
        xp.multiply(dc, c_prev - g if coupled else c_prev, out=df)  # df = (dc * c_prev - [coupled] dc * g) f (1 - f)
        df *= f * (1 - f)
    else:
        df[...] = 0
    xp.multiply(dc, f, out=dc_prev)  # dc_prev = dc * f + di * w_ci + df * w_cf
    dc_prev += di * w_ci + df * w_cf


_CUDA_PREAMBLE = """
template <typename T> __device__ T variant_sigmoid(T z) { return (T)0.5 * tanh((T)0.5 * z) + (T)0.5; }
"""
_FLAGS = "int32 has_input, int32 has_forget, int32 has_output, int32 coupled, int32 squash"
# CuPy's elementwise kernels reserve `i` (the element index), so the kernels call the input gate `i_`.

VARIANT_FORWARD = ElementwiseKernel(
    name="tinygrad_lstm_variant_step_forward",
    in_params=f"T c_prev, T w_ci, T w_cf, T w_co, {_FLAGS}",
    out_params="T i_, T f, T g, T o, T c, T h",
    operation="""
    f = has_forget ? variant_sigmoid(f + w_cf * c_prev) : (T)1;
    i_ = has_input ? variant_sigmoid(i_ + w_ci * c_prev) : (coupled ? (T)1 - f : (T)1);
    g = tanh(g);
    c = f * c_prev + i_ * g;
    o = has_output ? variant_sigmoid(o + w_co * c) : (T)1;
    h = o * (squash ? tanh(c) : c);
    """,
    formula=variant_step_forward,
    preamble=_CUDA_PREAMBLE,
)

# `do` is a C++ keyword, so the kernel calls that gradient `do_`.
VARIANT_BACKWARD = ElementwiseKernel(
    name="tinygrad_lstm_variant_step_backward",
    in_params=f"T i_, T f, T g, T o, T c_prev, T c, T gh, T gc, T w_ci, T w_cf, T w_co, {_FLAGS}",
    out_params="T di, T df, T dg, T do_, T dc_prev",
    operation="""
    const T tanh_c = squash ? tanh(c) : c;
    do_ = has_output ? gh * tanh_c * o * ((T)1 - o) : (T)0;
    const T dc = gc + gh * o * (squash ? (T)1 - tanh_c * tanh_c : (T)1) + do_ * w_co;
    dg = dc * i_ * ((T)1 - g * g);
    di = has_input ? dc * g * i_ * ((T)1 - i_) : (T)0;
    df = has_forget ? (dc * c_prev - (coupled ? dc * g : (T)0)) * f * ((T)1 - f) : (T)0;
    dc_prev = dc * f + di * w_ci + df * w_cf;
    """,
    formula=variant_step_backward,
    preamble=_CUDA_PREAMBLE,
)


def check_variant(gates: str, coupled: bool) -> None:
    """The gate letters a variant keeps (in the order i, f, g, o, g always), and whether i = 1 - f."""
    if not isinstance(gates, str) or "g" not in gates or "".join(k for k in "ifgo" if k in gates) != gates:
        raise ValueError(f"LSTM variant: gates must list the gates kept, in the order i, f, g, o with g always "
                         f"(e.g. 'ifgo', 'fgo', 'igo', 'ifg'), got {gates!r}")
    if coupled and ("i" in gates or "f" not in gates):
        raise ValueError(f"LSTM variant: a coupled input gate (i = 1 - f) needs a forget gate and no input gate "
                         f"of its own, got gates={gates!r}")


def peephole_gates(gates: str) -> str:
    """The gates that get a peephole weight, in the order the weights are passed: i, f, o (those present)."""
    return "".join(k for k in gates if k != "g")


# The nodes keep every gate in one (B, 4H) buffer in the order i, f, g, o, as the plain LSTM's do: an absent
# gate's columns get no input (its rows of the full W_hh are zero) and hold its constant after the formula,
# and its gradient columns come out zero, so the matmuls need no special case.


def _full_rows(xp, rows, gates: str, hidden: int):
    """(..., nH) -> (..., 4H): the gates kept in their columns of the four, zeros for the others."""
    full = xp.zeros(rows.shape[:-1] + (4 * hidden,), dtype=rows.dtype)
    full[..., _columns(xp, gates, hidden)] = rows
    return full


def _columns(xp, gates: str, hidden: int):
    """The columns of the gates kept among the four."""
    return xp.concatenate([xp.arange(n * hidden, (n + 1) * hidden) for n, k in enumerate("ifgo") if k in gates])


def _peephole_weights(xp, peepholes, gates: str, hidden: int, dtype) -> list:
    """w_ci, w_cf, w_co, zero for a gate without a peephole weight."""
    given = dict(zip(peephole_gates(gates), peepholes, strict=False))
    return [given.get(k, xp.zeros(hidden, dtype=dtype)) for k in "ifo"]


def _forward_step(xp, gates, h_prev, c_prev, w_full_t, weights, flags, h, c) -> None:
    """gates (B, 4H) holds xw on entry and the gates on exit; h and c are written."""
    gates += xp.dot(h_prev, w_full_t)
    VARIANT_FORWARD(xp, c_prev, *weights, *flags, *gate_views(gates), c, h)


def _backward_step(xp, gates, c_prev, c, gh, gc, weights, flags, dgates, dc_prev) -> None:
    VARIANT_BACKWARD(xp, *gate_views(gates), c_prev, c, gh, gc, *weights, *flags, *gate_views(dgates), dc_prev)


def _peephole_grads(dgates, c_prev, c, gates: str, needs) -> list:
    """d w_ci = sum(di * c_prev), d w_cf = sum(df * c_prev), d w_co = sum(do * c), over every axis but the last."""
    di, df, _, do = gate_views(dgates)
    pairs = {"i": (di, c_prev), "f": (df, c_prev), "o": (do, c)}
    axes = tuple(range(c.ndim - 1))
    return [(pairs[k][0] * pairs[k][1]).sum(axis=axes) if need else None
            for k, need in zip(peephole_gates(gates), needs, strict=False)]


class _VariantNode(Function):
    """What the cell and the layer share: the flags, the peephole weights and W_hh as four gates' rows."""

    def _prepare(self, xw, w_hh, c0, peepholes, gates, coupled, squash):
        xp, hidden = self.xp, c0.shape[-1]
        flags = (int("i" in gates), int("f" in gates), int("o" in gates), int(coupled), int(squash))
        weights = _peephole_weights(xp, peepholes, gates, hidden, c0.dtype)
        w_full = _full_rows(xp, w_hh.T, gates, hidden).T  # (4H, P)
        self.details = {"cell": "LSTM variant", "steps": xw.shape[0] if xw.ndim == 3 else 1,
                        "gates": tuple(GATE_SCOPES[k] for k in gates)}
        return _full_rows(xp, xw, gates, hidden), w_full, weights, flags

    def _input_grads(self, dgates, dh_prev, dc_prev, h_prevs, c_prevs, cs, gates):
        """The gradients of xw, h_prev, c_prev, w_hh and the peephole weights from the gate gradients."""
        xp, needs = self.xp, self.needs_grad
        hidden = cs.shape[-1]
        columns = _columns(xp, gates, hidden)
        rows = dgates.reshape(-1, 4 * hidden)
        return (
            dgates[..., columns] if needs[0] else None,
            dh_prev if needs[1] else None,
            dc_prev if needs[2] else None,
            xp.dot(rows.T, h_prevs.reshape(rows.shape[0], h_prevs.shape[-1]))[columns] if needs[3] else None,
            *_peephole_grads(dgates, c_prevs, cs, gates, needs[4:]),
        )


class FusedVariantCell(_VariantNode):
    """One variant step: inputs xw (B, nH), h_prev (B, P), c_prev (B, H), w_hh (nH, P) and the peephole
    weights (H,) of the gates present (none without peepholes); outputs h and c (B, H)."""

    def forward(self, xw, h_prev, c_prev, w_hh, *peepholes, gates="ifgo", coupled=False, squash=True):
        xp = self.xp
        buffer, w_full, weights, flags = self._prepare(xw, w_hh, c_prev, peepholes, gates, coupled, squash)
        h, c = xp.empty_like(c_prev), xp.empty_like(c_prev)
        _forward_step(xp, buffer, h_prev, c_prev, w_full.T, weights, flags, h, c)
        self.saved = (buffer, h_prev, c_prev, c, w_full, weights, flags, gates)
        return h, c

    def backward(self, gh, gc):
        buffer, h_prev, c_prev, c, w_full, weights, flags, gates = self.saved
        xp = self.xp
        gh = xp.zeros_like(c) if gh is None else gh  # an output that got no gradient contributes zeros
        gc = xp.zeros_like(c) if gc is None else gc
        dgates, dc_prev = xp.empty_like(buffer), xp.empty_like(c)
        _backward_step(xp, buffer, c_prev, c, gh, gc, weights, flags, dgates, dc_prev)
        dh_prev = xp.dot(dgates, w_full) if self.needs_grad[1] else None
        return self._input_grads(dgates, dh_prev, dc_prev, h_prev, c_prev, c, gates)


class FusedVariantLayer(_VariantNode):
    """A whole sequence of variant steps (inputs xw (T, B, nH), h0, c0 (B, H), w_hh (nH, H), peepholes; outputs
    hs (T, B, H) and c_T) as one node: `FusedVariantCell`'s steps looped inside, as the plain `FusedLSTMLayer`."""

    def forward(self, xw, h0, c0, w_hh, *peepholes, gates="ifgo", coupled=False, squash=True):
        xp = self.xp
        buffers, w_full, weights, flags = self._prepare(xw, w_hh, c0, peepholes, gates, coupled, squash)
        hs = xp.empty((xw.shape[0] + 1,) + h0.shape, dtype=h0.dtype)  # hs[t + 1] is the output of step t
        cs = xp.empty_like(hs)
        hs[0], cs[0] = h0, c0
        w_full_t = xp.ascontiguousarray(w_full.T)
        for t in range(xw.shape[0]):
            _forward_step(xp, buffers[t], hs[t], cs[t], w_full_t, weights, flags, hs[t + 1], cs[t + 1])
        self.saved = (buffers, hs, cs, w_full, weights, flags, gates)
        return hs[1:], cs[-1]

    def backward(self, g_hs, g_c):
        buffers, hs, cs, w_full, weights, flags, gates = self.saved
        xp = self.xp
        dgates = xp.empty_like(buffers)
        dh = xp.zeros_like(hs[0])  # what reaches h_t from step t + 1 (nothing after the last step)
        dc = xp.zeros_like(cs[0]) if g_c is None else g_c.copy()  # what reaches c_t (its buffer is reused)
        dc_prev = xp.empty_like(dc)
        from_loss = step_gradients(xp, g_hs)
        for t in reversed(range(buffers.shape[0])):
            if from_loss is not None:
                dh += from_loss[t]  # plus what the output hs[t] gets from the loss
            _backward_step(xp, buffers[t], cs[t], cs[t + 1], dh, dc, weights, flags, dgates[t], dc_prev)
            dc, dc_prev = dc_prev, dc  # two buffers, swapped each step
            dh = xp.dot(dgates[t], w_full)
        return self._input_grads(dgates, dh, dc, hs[:-1], cs[:-1], cs[1:], gates)


def fused_variant_cell(xw: Tensor, h_prev: Tensor, c_prev: Tensor, w_hh: Tensor, *peepholes: Tensor,
                       gates: str = "ifgo", coupled: bool = False, squash: bool = True) -> tuple[Tensor, Tensor]:
    """One step of an LSTM variant as one graph node: returns (h, c), h = o * tanh(c) unprojected.

    xw: (B, nH), the input projection of the n gates kept (`gates`, e.g. "fgo"); h_prev: (B, P) (P = H,
    or proj_size when the caller projects h); c_prev: (B, H); w_hh: (nH, P); peepholes: the (H,)
    weights of the gates in `peephole_gates(gates)`, or none. coupled: the input gate is 1 - f.
    squash=False drops the output activation: h = o * c.
    """
    _check("fused_variant_cell", xw, h_prev, c_prev, w_hh, peepholes, gates, coupled, xw_ndim=2)
    return apply(FusedVariantCell, xw, h_prev, c_prev, w_hh, *peepholes, gates=gates, coupled=coupled,
                 squash=squash)


def fused_variant_layer(xw: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, *peepholes: Tensor, gates: str = "ifgo",
                        coupled: bool = False, squash: bool = True) -> tuple[Tensor, Tensor]:
    """A whole layer of an LSTM variant over a sequence as one node: returns (hs, c_T) as `nn.fused_lstm`.

    xw: (T, B, nH), every step's input projection; h0, c0: (B, H); w_hh: (nH, H); the rest as
    `fused_variant_cell`. The same values and gradients as T fused cells, without their per-step cost.
    """
    _check("fused_variant_layer", xw, h0, c0, w_hh, peepholes, gates, coupled, xw_ndim=3)
    if h0.shape != c0.shape:
        raise ValueError(f"fused_variant_layer: h0 has shape {h0.shape} but c0 {c0.shape}; h feeds back "
                         "unprojected here (project step by step with fused_variant_cell)")
    return apply(FusedVariantLayer, xw, h0, c0, w_hh, *peepholes, gates=gates, coupled=coupled, squash=squash)


def _check(who: str, xw, h, c, w_hh, peepholes, gates: str, coupled: bool, xw_ndim: int) -> None:
    """Types, shapes and dtypes, each error naming the tensor, its shape and the one expected."""
    check_variant(gates, coupled)
    tensors = {"xw": xw, "h": h, "c": c, "w_hh": w_hh,
               **{f"w_c{k}": w for k, w in zip(peephole_gates(gates), peepholes, strict=False)}}
    for name, t in tensors.items():
        if not isinstance(t, Tensor):
            raise TypeError(f"{who}: {name} must be a Tensor, got {type(t).__name__}")
    if peepholes and len(peepholes) != len(peephole_gates(gates)):
        raise ValueError(f"{who}: gates {gates!r} take {len(peephole_gates(gates))} peephole weights (or none), "
                         f"got {len(peepholes)}")
    if c.ndim != 2 or h.ndim != 2:
        raise ValueError(f"{who}: the states must be (B, H), got shapes {h.shape} and {c.shape}")
    (batch, hidden), rows = c.shape, len(gates) * c.shape[1]
    expected = {"xw": (xw.shape[0], batch, rows) if xw_ndim == 3 else (batch, rows), "h": (batch, h.shape[1]),
                "c": (batch, hidden), "w_hh": (rows, h.shape[1]), **{f"w_c{k}": (hidden,) for k in "ifo"}}
    for name, t in tensors.items():
        if t.ndim != len(expected[name]) or t.shape != expected[name] or t.dtype != c.dtype:
            raise ValueError(f"{who}: {name} has shape {t.shape} and dtype {t.dtype}, expected {expected[name]} "
                             f"and {c.dtype} (B, H = {batch}, {hidden} from the cell state; {len(gates)} gates "
                             f"{gates!r})")
