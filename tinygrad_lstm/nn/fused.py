"""The LSTM's fast path: one time step as ONE graph node (`fused_lstm_cell`), a whole layer as one node
(`fused_lstm`), both with an analytic backward built on the one step formula in `cell_math.py`.

The composed cell (`nn.LSTMCell(fused=False)`) builds a dozen nodes per step in named gate scopes,
which is what you want to *see*; these are what you want to *train* with, and tests prove them equal
to it in values and gradients. The input projection `xw = x @ W_ih^T + b_ih + b_hh` (B, 4H) is computed
outside (`tl.linear`, for every step of a layer at once); a step then does

    gates = xw + h_prev @ W_hh^T        (one matmul for the four gates)
    i, f, g, o, c, h = lstm_step_forward(gates, c_prev)

saving the activated gates (B, 4H) and references to arrays that stay alive anyway (c_prev, c,
h_prev, W_hh). `fused_lstm` loops those steps inside one node, as cuDNN does: a graph node per step
costs the engine more than the step's own math when the LSTM is small, and the recurrent weight's
gradient becomes one matmul over all steps. nn.LSTM trains through it.

`fused_gru` and `fused_rnn` are the same for the GRU and the Elman RNN. nn.LSTM, nn.GRU and nn.RNN run the
same nodes with the input projection inside (`projected_layer`): one node per layer. Every loop runs its
small per-step matmuls on one BLAS thread unless they are large (`threads.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..tensor import Function, Tensor, apply, ops
from .cell_math import GRU_BACKWARD, GRU_FORWARD, LSTM_BACKWARD, LSTM_FORWARD, RNN_STEPS, gate_views, gru_gate_views
from .threads import blas_threads, step_work

LSTM_GATES = ("input gate", "forget gate", "candidate", "output gate")
GRU_GATES = ("reset gate", "update gate", "candidate")


def _forward_step(xp, gates, h_prev, c_prev, w_hh_t, h, c) -> None:
    """gates (B, 4H) holds xw on entry and the activated gates on exit; h and c are written."""
    gates += xp.dot(h_prev, w_hh_t)
    LSTM_FORWARD(xp, c_prev, *gate_views(gates), c, h, all_gates=gates)


def _backward_step(xp, gates, c_prev, c, gh, gc, dgates, dc_prev) -> None:
    """Write d(loss)/d(pre-activation gates) into dgates and d(loss)/d(c_prev) into dc_prev."""
    LSTM_BACKWARD(xp, *gate_views(gates), c_prev, c, gh, gc, *gate_views(dgates), dc_prev,
                  all_gates=gates, all_dgates=dgates)


def step_gradients(xp, g_hs) -> list | None:
    """What reaches each step's output h_t from the loss, as T contiguous (B, H) arrays (None: nothing reaches hs).

    Contiguous, because adding a broadcast array row by row is 2x slower (measured). A loss that weighs every
    step alike (`output.sum()`) sends one value broadcast along time: then one copy serves every step, as the
    ceiling's `ones` does, instead of a (T, B, H) copy and a view per step.
    """
    if g_hs is None:
        return None
    if g_hs.strides[0] == 0:
        return [xp.ascontiguousarray(g_hs[0])] * g_hs.shape[0]
    return list(xp.ascontiguousarray(g_hs))


class InputProjection(ops.Linear):
    """The engine's `Linear` (x @ W_ih^T + biases, what tl.linear records) for every step of a layer at once,
    under the fused ops' BLAS thread rule: the layer's other BLAS calls run inside its fused node, and this
    keeps the projection and its gradients on the same rule (`threads.py`), so a small layer's whole
    training step runs on one BLAS thread.
    """

    def forward(self, x, w_ih, *biases):
        with projection_threads(self.xp, x, w_ih):
            return super().forward(x, w_ih, *biases)

    def backward(self, g):
        with projection_threads(self.xp, *self.saved):
            return super().backward(g)


def projection_threads(xp, x, w_ih) -> blas_threads:
    """The thread rule for an input projection's matmuls: (rows of x) x (w_ih's elements) multiply-adds each."""
    return blas_threads(xp, x.size // max(x.shape[-1], 1) * w_ih.size)


def input_projection(x: Tensor, w_ih: Tensor, *biases: Tensor | None) -> Tensor:
    """x @ w_ih.T + the biases as one node (see `InputProjection`): x (T, B, in) or (rows, in), w_ih (G, in),
    each bias (G,) or None. A layer passes b_ih and b_hh both, so their sum costs no node of its own."""
    given = [b for b in biases if b is not None]
    if x.ndim < 2 or w_ih.ndim != 2 or x.shape[-1] != w_ih.shape[1] or any(b.shape != w_ih.shape[:1] for b in given):
        raise ValueError(f"input_projection: x {x.shape}, w_ih {w_ih.shape} and biases "
                         f"{[b.shape for b in given]} do not fit (..., in), (G, in), (G,)")
    return apply(InputProjection, x, w_ih, *given)


def projected_layer(layer: type[Function], x: Tensor, w_ih: Tensor, biases: tuple[Tensor | None, ...],
                    *inputs: Tensor, **params) -> tuple[Tensor, ...]:
    """A fused layer (`FusedLSTMLayer`, ...) as nn.LSTM, nn.GRU and nn.RNN run it: one node from x (T, B, in), w_ih,
    the biases (None for none) and the layer's inputs after xw, to (hs, h_n, ...): every h, then the final states
    as (1, B, H). For the layers, which checked all of them."""
    given = [b for b in biases if b is not None]
    return apply(layer, x, w_ih, *given, *inputs, projected=len(given), **params)


class _SequenceNode(Function):
    """A fused layer's node, in one of two forms.

    The public ops (`fused_lstm`, ...) give it xw, every step's input projection, and get the layer's outputs.
    The layers give it x, w_ih and k biases (`projected=k`): it projects them itself and returns the final states
    as (1, B, H) arrays after hs (h_n a copy of the last h), so a layer is one graph node, as cuDNN's RNN call
    is. That spares a small layer's training step the engine's cost of three nodes (~25 us of ~1 ms at
    (1, 32, 32, 200)). Subclasses define the layer from xw on, `forward_xw` and `backward_xw`; their `saved`
    may gain x and w_ih at its end.
    """

    fresh_gradients = True
    forward_xw: Callable[..., Any]  # the layer from xw on, defined by each subclass
    backward_xw: Callable[..., tuple]  # its gradients, xw's first

    def forward(self, *arrays, projected=None, **params):
        self.projected = projected
        if projected is None:
            return self.forward_xw(*arrays, **params)
        x, w_ih, biases, inputs = arrays[0], arrays[1], arrays[2 : 2 + projected], arrays[2 + projected :]
        with projection_threads(self.xp, x, w_ih):
            xw = ops.linear_forward(self.xp, x, w_ih, biases)
        out = self.forward_xw(xw, *inputs, overwrite_xw=True, **params)
        hs, *finals = out if type(out) is tuple else (out,)
        self.saved = (*self.saved, x, w_ih)
        self.steps_shape = hs.shape
        return (hs, hs[-1:].copy(), *(final[None] for final in finals))

    def backward(self, *grad_outputs):
        if self.projected is None:
            return self.backward_xw(*grad_outputs)
        xp, needs, projection = self.xp, self.needs_grad, 2 + self.projected  # x, w_ih and the biases
        g_hs, g_hn, *g_finals = grad_outputs
        if g_hn is not None:  # h_n is hs[-1]: its gradient joins the last step's
            g_hs = xp.zeros(self.steps_shape, dtype=g_hn.dtype) if g_hs is None else g_hs.copy()
            g_hs[-1] += g_hn[0]
        self.needs_grad = (any(needs[:projection]), *needs[projection:])  # as if xw were the first input
        try:
            g_xw, *rest = self.backward_xw(g_hs, *(None if g is None else g[0] for g in g_finals))
        finally:
            self.needs_grad = needs
        if g_xw is None:
            return (None,) * projection + tuple(rest)
        x, w_ih = self.saved[-2:]
        with projection_threads(xp, x, w_ih):
            return (*ops.linear_backward(xp, g_xw, x, w_ih, needs[:projection]), *rest)


class FusedLSTMCell(Function):
    """One LSTM step (inputs xw, h_prev, c_prev, w_hh; outputs h, c) as one node; h_prev may be projected (B, P)."""

    fresh_gradients = True

    def forward(self, xw, h_prev, c_prev, w_hh, overwrite_xw=False):
        xp = self.xp
        gates = xw if overwrite_xw and xw.flags.c_contiguous else xp.array(xw, order="C")
        h, c = xp.empty_like(c_prev), xp.empty_like(c_prev)  # h is (B, H): a projection comes after the step
        with blas_threads(xp, step_work(h_prev, w_hh)):
            _forward_step(xp, gates, h_prev, c_prev, w_hh.T, h, c)
        self.saved = (gates, c_prev, c, h_prev, w_hh)
        self.details = {"cell": "LSTM", "steps": 1, "gates": LSTM_GATES}
        return h, c

    def backward(self, gh, gc):
        gates, c_prev, c, h_prev, w_hh = self.saved
        xp, needs = self.xp, self.needs_grad
        dgates, dc_prev = xp.empty_like(gates), xp.empty_like(c)
        gh = xp.zeros_like(c) if gh is None else gh  # an output that got no gradient contributes zeros
        gc = xp.zeros_like(c) if gc is None else gc
        _backward_step(xp, gates, c_prev, c, gh, gc, dgates, dc_prev)
        with blas_threads(xp, step_work(h_prev, w_hh)):
            return (
                dgates if needs[0] else None,
                xp.dot(dgates, w_hh) if needs[1] else None,
                dc_prev if needs[2] else None,
                xp.dot(dgates.T, h_prev) if needs[3] else None,  # dot: NumPy's matmul is slow for (4H, 1) @ (1, H)
            )


class FusedLSTMLayer(_SequenceNode):
    """A whole sequence of LSTM steps (inputs xw (T, B, 4H), h0, c0, w_hh; outputs hs (T, B, H), c_T) as one node.

    The steps are `FusedLSTMCell`'s, looped here rather than in the graph: one node per layer instead of
    one per step, and the recurrent weight's gradient is one matmul over the whole sequence instead of
    one per step. That is what decides the speed of small LSTMs, where the per-step math is tiny.
    """

    def forward_xw(self, xw, h0, c0, w_hh, overwrite_xw=False):
        xp = self.xp
        steps = xw.shape[0]
        gates = xw if overwrite_xw and xw.flags.c_contiguous else xp.array(xw, order="C")
        hs = xp.empty((steps + 1,) + h0.shape, dtype=h0.dtype)  # hs[t + 1] is the output of step t
        cs = xp.empty_like(hs)
        hs[0], cs[0] = h0, c0
        w_hh_t = xp.ascontiguousarray(w_hh.T)  # a matmul with the transposed view is up to 3x slower
        i, f, g, o = gate_views(gates)  # (T, B, H) each: step t's gates are i[t], f[t], g[t], o[t]
        with blas_threads(xp, step_work(h0, w_hh)):
            for t in range(steps):
                gates[t] += xp.dot(hs[t], w_hh_t)
                LSTM_FORWARD(xp, cs[t], i[t], f[t], g[t], o[t], cs[t + 1], hs[t + 1], all_gates=gates[t])
        self.saved = (gates, hs, cs, w_hh)
        self.details = {"cell": "LSTM", "steps": steps, "gates": LSTM_GATES}
        return hs[1:], cs[-1]

    def backward_xw(self, g_hs, g_c):
        gates, hs, cs, w_hh, *_ = self.saved
        xp, needs = self.xp, self.needs_grad
        dgates = xp.empty_like(gates)
        dh = xp.zeros(hs.shape[1:], dtype=hs.dtype)  # what reaches h_t from step t + 1 (nothing after the last step)
        dc = xp.zeros(cs.shape[1:], dtype=cs.dtype) if g_c is None else g_c.copy()  # reaches c_t (a copy: reused)
        dc_prev = xp.empty_like(dc)
        from_loss = step_gradients(xp, g_hs)
        i, f, g, o = gate_views(gates)
        di, df, dg, do = gate_views(dgates)
        with blas_threads(xp, step_work(dh, w_hh)):
            for t in reversed(range(gates.shape[0])):
                if from_loss is not None:
                    dh += from_loss[t]  # plus what the output hs[t] gets from the loss
                LSTM_BACKWARD(xp, i[t], f[t], g[t], o[t], cs[t], cs[t + 1], dh, dc, di[t], df[t], dg[t], do[t], dc_prev,
                              all_gates=gates[t], all_dgates=dgates[t])
                dc, dc_prev = dc_prev, dc  # two buffers, swapped each step
                if t or needs[1]:
                    xp.dot(dgates[t], w_hh, out=dh)
            rows = dgates.reshape(-1, gates.shape[2])
            d_w_hh = xp.dot(rows.T, hs[:-1].reshape(rows.shape[0], hs.shape[-1])) if needs[3] else None
        return dgates if needs[0] else None, dh if needs[1] else None, dc if needs[2] else None, d_w_hh


class FusedGRULayer(_SequenceNode):
    """A whole sequence of GRU steps (inputs xw (T, B, 3H), h0, w_hh, b_hh unless bias=False; output hs) as one node.

    b_hh comes in rather than being folded into xw as the LSTM's is: the reset gate scales the
    candidate's recurrent projection, bias included. Saved: the gates r, z, n and the candidate's
    recurrent projection hn of every step, and every h.
    """

    def forward_xw(self, xw, h0, w_hh, b_hh=None, overwrite_xw=False):
        xp = self.xp
        steps = xw.shape[0]
        gates = xw if overwrite_xw and xw.flags.c_contiguous else xp.array(xw, order="C")
        hs = xp.empty((steps + 1,) + h0.shape, dtype=h0.dtype)  # hs[t + 1] is the output of step t
        hs[0] = h0
        hns = xp.empty_like(hs[1:])
        hw = xp.empty_like(gates[0])  # this step's h_prev @ W_hh^T + b_hh
        w_hh_t = xp.ascontiguousarray(w_hh.T)
        two_h = 2 * h0.shape[1]
        with blas_threads(xp, step_work(h0, w_hh)):
            for t in range(steps):
                xp.dot(hs[t], w_hh_t, out=hw)
                if b_hh is not None:
                    hw += b_hh
                GRU_FORWARD(xp, hs[t], *gru_gate_views(hw), *gru_gate_views(gates[t]), hs[t + 1], hns[t],
                            rz=gates[t, :, :two_h], hrz=hw[:, :two_h])
        self.saved = (gates, hs, hns, w_hh, b_hh is not None)
        self.details = {"cell": "GRU", "steps": steps, "gates": GRU_GATES}
        return hs[1:]

    def backward_xw(self, g_hs):
        gates, hs, hns, w_hh, has_bias, *_ = self.saved
        xp, needs = self.xp, self.needs_grad
        hidden = hs.shape[2]
        dhw = xp.empty_like(gates)  # per step dr, dz, dhn: the recurrent projection's gradient
        dn = xp.empty_like(hns)  # the candidate's input projection's (dr, dz are the same for both)
        gh = xp.zeros(hs.shape[1:], dtype=hs.dtype)  # what reaches h_t, from above and from step t + 1
        direct = xp.empty_like(gh)  # what reaches h_prev past the matmul: gh * z
        from_loss = step_gradients(xp, g_hs)
        with blas_threads(xp, step_work(gh, w_hh)):
            for t in reversed(range(gates.shape[0])):
                gh += from_loss[t]
                dr, dz, dhn = gru_gate_views(dhw[t])
                GRU_BACKWARD(xp, *gru_gate_views(gates[t]), hns[t], hs[t], gh, dr, dz, dn[t], dhn, direct)
                if t or needs[1]:
                    xp.dot(dhw[t], w_hh, out=gh)
                    gh += direct
            rows = dhw.reshape(-1, gates.shape[2])
            d_w_hh = xp.dot(rows.T, hs[:-1].reshape(rows.shape[0], hidden)) if needs[2] else None
        d_b_hh = (rows.sum(axis=0) if needs[3] else None,) if has_bias else ()
        dhw[..., 2 * hidden :] = dn  # dhw becomes the gradient of xw (its buffer reused)
        return (dhw if needs[0] else None, gh if needs[1] else None, d_w_hh, *d_b_hh)


class FusedRNNLayer(_SequenceNode):
    """A whole sequence of Elman steps (inputs xw (T, B, H), h0, w_hh; output hs) as one node.

    The hs of every step are all the backward needs; with overwrite_xw they are written over xw.
    """

    def forward_xw(self, xw, h0, w_hh, nonlinearity="tanh", overwrite_xw=False):
        xp = self.xp
        step_forward = RNN_STEPS[nonlinearity][0]
        hs = xw if overwrite_xw and xw.flags.c_contiguous else xp.array(xw, order="C")  # hs[t] holds xw[t] first
        hw = xp.empty_like(h0)  # this step's h_prev @ W_hh^T
        w_hh_t = xp.ascontiguousarray(w_hh.T)
        with blas_threads(xp, step_work(h0, w_hh)):
            for t in range(hs.shape[0]):
                xp.dot(hs[t - 1] if t else h0, w_hh_t, out=hw)
                step_forward(xp, hw, hs[t])
        self.saved = (hs, h0, w_hh, nonlinearity)
        self.details = {"cell": f"RNN ({nonlinearity})", "steps": hs.shape[0]}
        return hs

    def backward_xw(self, g_hs):
        hs, h0, w_hh, nonlinearity, *_ = self.saved
        xp, needs = self.xp, self.needs_grad
        step_backward = RNN_STEPS[nonlinearity][1]
        dpre = xp.empty_like(hs)
        gh = xp.zeros(h0.shape, dtype=h0.dtype)
        from_loss = step_gradients(xp, g_hs)
        with blas_threads(xp, step_work(h0, w_hh)):
            for t in reversed(range(hs.shape[0])):
                gh += from_loss[t]
                step_backward(xp, hs[t], gh, dpre[t])
                if t or needs[1]:
                    xp.dot(dpre[t], w_hh, out=gh)
            d_w_hh = None
            if needs[2]:  # sum over steps of dpre_t^T h_{t-1}: h_{-1} is h0, the others are hs[:-1]
                hidden = hs.shape[2]
                d_w_hh = xp.dot(dpre[0].T, h0)
                if hs.shape[0] > 1:
                    d_w_hh += xp.dot(dpre[1:].reshape(-1, hidden).T, hs[:-1].reshape(-1, hidden))
        return dpre if needs[0] else None, gh if needs[1] else None, d_w_hh


def fused_lstm_cell(xw: Tensor, h_prev: Tensor, c_prev: Tensor, w_hh: Tensor, *,
                    overwrite_xw: bool = False) -> tuple[Tensor, Tensor]:
    """One LSTM step as one graph node: returns (h, c).

    xw: (B, 4H), the input projection x @ W_ih.T + b_ih + b_hh (see `tl.linear`). h_prev: (B, P), c_prev:
    (B, H), w_hh: (4H, P), where P = H unless h is projected (nn.LSTM's proj_size). Gates in PyTorch's order
    i, f, g, o. Gradients flow to all four inputs.
    overwrite_xw=True lets the op keep its gate activations in xw's memory (one (B, 4H) array less
    per step): pass it only when xw is a temporary that nothing else reads, as nn.LSTMCell's input
    projection is (it then shows the gates, not the projection, if drawn with data).
    """
    if not _well_formed(xw, (h_prev, c_prev), w_hh, 2, 4, projected=True):
        raise _input_error("fused_lstm_cell", xw, (("h_prev", h_prev), ("c_prev", c_prev)), w_hh, 2, 4, projected=True)
    return apply(FusedLSTMCell, xw, h_prev, c_prev, w_hh, overwrite_xw=overwrite_xw)


def fused_lstm(xw: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, *,
               overwrite_xw: bool = False) -> tuple[Tensor, Tensor]:
    """A whole LSTM layer over a sequence as one graph node: returns (hs, c_T), the h of every step and the last c.

    xw: (T, B, 4H), every step's input projection (see `fused_lstm_cell`). h0, c0: (B, H). w_hh: (4H, H).
    hs: (T, B, H), so the last h is hs[-1]. Same values and gradients as T `fused_lstm_cell` steps, with
    the engine's per-step cost gone: nn.LSTM trains through this. overwrite_xw as in `fused_lstm_cell`.
    """
    if not _well_formed(xw, (h0, c0), w_hh, 3, 4):
        raise _input_error("fused_lstm", xw, (("h0", h0), ("c0", c0)), w_hh, 3, 4)
    return apply(FusedLSTMLayer, xw, h0, c0, w_hh, overwrite_xw=overwrite_xw)


def fused_gru(xw: Tensor, h0: Tensor, w_hh: Tensor, b_hh: Tensor | None = None, *,
              overwrite_xw: bool = False) -> Tensor:
    """A whole GRU layer over a sequence as one graph node: returns hs (T, B, H), the h of every step.

    xw: (T, B, 3H), every step's input projection x @ W_ih.T + b_ih (without b_hh: see `FusedGRULayer`).
    h0: (B, H). w_hh: (3H, H), b_hh: (3H,) or None; rows r, z, n as PyTorch's. overwrite_xw as in
    `fused_lstm_cell`. nn.GRU trains through this.
    """
    if not _well_formed(xw, (h0,), w_hh, 3, 3, b_hh):
        raise _input_error("fused_gru", xw, (("h0", h0),), w_hh, 3, 3, b_hh)
    bias = () if b_hh is None else (b_hh,)
    return apply(FusedGRULayer, xw, h0, w_hh, *bias, overwrite_xw=overwrite_xw)


def fused_rnn(xw: Tensor, h0: Tensor, w_hh: Tensor, *, nonlinearity: str = "tanh",
              overwrite_xw: bool = False) -> Tensor:
    """A whole Elman RNN layer over a sequence as one graph node: returns hs (T, B, H), the h of every step.

    xw: (T, B, H), every step's input projection x @ W_ih.T + b_ih + b_hh. h0: (B, H). w_hh: (H, H).
    nonlinearity: "tanh" or "relu". overwrite_xw=True writes hs over xw (see `fused_lstm_cell`).
    nn.RNN trains through this.
    """
    if nonlinearity not in RNN_STEPS:
        raise ValueError(f"fused_rnn: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    if not _well_formed(xw, (h0,), w_hh, 3, 1):
        raise _input_error("fused_rnn", xw, (("h0", h0),), w_hh, 3, 1)
    return apply(FusedRNNLayer, xw, h0, w_hh, nonlinearity=nonlinearity, overwrite_xw=overwrite_xw)


def _well_formed(xw, states: tuple, w_hh, xw_ndim: int, gates: int, b_hh=None, projected: bool = False) -> bool:
    """The fast check: Tensors whose shapes and dtypes agree (xw has `xw_ndim` axes, the weights `gates` row blocks).

    The states are (B, H), H = xw's width / gates; with `projected`, the first (h) is (B, P), P = w_hh's width.
    """
    if not all(isinstance(t, Tensor) for t in (xw, w_hh, *states)) or xw.ndim != xw_ndim or w_hh.ndim != 2:
        return False
    batch, rows, dtype = xw.shape[-2], xw.shape[-1], w_hh.dtype
    hidden, width = rows // gates, w_hh.shape[1]
    if b_hh is not None and not (isinstance(b_hh, Tensor) and b_hh.shape == (rows,) and b_hh.dtype == dtype):
        return False
    widths = [width if projected and k == 0 else hidden for k in range(len(states))]
    return (rows == gates * hidden and w_hh.shape[0] == rows and (projected or width == hidden) and xw.dtype == dtype
            and all(s.shape == (batch, n) and s.dtype == dtype for s, n in zip(states, widths, strict=True)))


def _input_error(who: str, xw, states: tuple[tuple[str, Tensor], ...], w_hh, xw_ndim: int, gates: int,
                 b_hh=None, projected: bool = False) -> Exception:
    """The error for inputs `_well_formed` refused, naming the offending tensor and both shapes."""
    named = (("xw", xw), *states, ("w_hh", w_hh)) + ((("b_hh", b_hh),) if b_hh is not None else ())
    for name, t in named:
        if not isinstance(t, Tensor):
            return TypeError(f"{who}: {name} must be a Tensor, got {type(t).__name__}")
    rows = "H" if gates == 1 else f"{gates}H"
    width = "P" if projected else "H"
    if w_hh.ndim != 2 or w_hh.shape[0] % gates or (not projected and w_hh.shape[0] != gates * w_hh.shape[1]):
        return ValueError(f"{who}: w_hh must have shape ({rows}, {width}), got {w_hh.shape}")
    hidden = w_hh.shape[0] // gates
    layout = f"(B, {rows})" if xw_ndim == 2 else f"(T, B, {rows})"
    if xw.ndim != xw_ndim or xw.shape[-1] != gates * hidden:
        return ValueError(f"{who}: xw has shape {xw.shape}, expected {layout} with {rows} = {gates * hidden} "
                          f"for w_hh of shape {w_hh.shape}")
    if b_hh is not None and b_hh.shape != (gates * hidden,):
        return ValueError(f"{who}: b_hh has shape {b_hh.shape}, expected ({rows},) = ({gates * hidden},)")
    for k, (name, t) in enumerate(states):
        n, letter = (w_hh.shape[1], width) if projected and k == 0 else (hidden, "H")
        if t.shape != (xw.shape[-2], n):
            return ValueError(f"{who}: {name} has shape {t.shape}, expected (B, {letter}) = {(xw.shape[-2], n)} "
                              f"(B from xw of shape {xw.shape}, {letter} from w_hh of shape {w_hh.shape})")
    name = next(name for name, t in named if t.dtype != w_hh.dtype)
    return TypeError(f"{who}: {name} has dtype {dict(named)[name].dtype} but w_hh has dtype "
                     f"{w_hh.dtype}; convert with .to(dtype)")
