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
"""

from __future__ import annotations

from ..tensor import Function, Tensor, apply
from .cell_math import LSTM_BACKWARD, LSTM_FORWARD, gate_views

LSTM_GATES = ("input gate", "forget gate", "candidate", "output gate")


def _forward_step(xp, gates, h_prev, c_prev, w_hh_t, h, c) -> None:
    """gates (B, 4H) holds xw on entry and the activated gates on exit; h and c are written."""
    gates += xp.dot(h_prev, w_hh_t)
    LSTM_FORWARD(xp, c_prev, *gate_views(gates), c, h, all_gates=gates)


def _backward_step(xp, gates, c_prev, c, gh, gc, dgates, dc_prev) -> None:
    """Write d(loss)/d(pre-activation gates) into dgates and d(loss)/d(c_prev) into dc_prev."""
    LSTM_BACKWARD(xp, *gate_views(gates), c_prev, c, gh, gc, *gate_views(dgates), dc_prev,
                  all_gates=gates, all_dgates=dgates)


class FusedLSTMCell(Function):
    """One LSTM step (inputs xw, h_prev, c_prev, w_hh; outputs h, c) as one node."""

    def forward(self, xw, h_prev, c_prev, w_hh, overwrite_xw=False):
        xp = self.xp
        gates = xw if overwrite_xw and xw.flags.c_contiguous else xp.array(xw, order="C")
        h, c = xp.empty_like(c_prev), xp.empty_like(c_prev)
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
        return (
            dgates if needs[0] else None,
            xp.dot(dgates, w_hh) if needs[1] else None,
            dc_prev if needs[2] else None,
            xp.dot(dgates.T, h_prev) if needs[3] else None,  # dot: NumPy's matmul is slow for (4H, 1) @ (1, H)
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
        gates = xw if overwrite_xw and xw.flags.c_contiguous else xp.array(xw, order="C")
        hs = xp.empty((steps + 1,) + h0.shape, dtype=h0.dtype)  # hs[t + 1] is the output of step t
        cs = xp.empty_like(hs)
        hs[0], cs[0] = h0, c0
        w_hh_t = xp.ascontiguousarray(w_hh.T)  # a matmul with the transposed view is up to 3x slower
        for t in range(steps):
            _forward_step(xp, gates[t], hs[t], cs[t], w_hh_t, hs[t + 1], cs[t + 1])
        self.saved = (gates, hs, cs, w_hh)
        self.details = {"cell": "LSTM", "steps": steps, "gates": LSTM_GATES}
        return hs[1:], cs[-1]

    def backward(self, g_hs, g_c):
        gates, hs, cs, w_hh = self.saved
        xp, needs = self.xp, self.needs_grad
        dgates = xp.empty_like(gates)
        dh = xp.zeros_like(hs[0])  # what reaches h_t from step t + 1 (nothing after the last step)
        dc = xp.zeros_like(cs[0]) if g_c is None else g_c.copy()  # what reaches c_t (a copy: its buffer is reused)
        dc_prev = xp.empty_like(dc)
        for t in reversed(range(gates.shape[0])):
            if g_hs is not None:
                dh += g_hs[t]  # plus what the output hs[t] gets from the loss
            _backward_step(xp, gates[t], cs[t], cs[t + 1], dh, dc, dgates[t], dc_prev)
            dc, dc_prev = dc_prev, dc  # two buffers, swapped each step
            if t or needs[1]:
                xp.dot(dgates[t], w_hh, out=dh)
        rows = dgates.reshape(-1, gates.shape[2])
        return (
            dgates if needs[0] else None,
            dh if needs[1] else None,
            dc if needs[2] else None,
            xp.dot(rows.T, hs[:-1].reshape(rows.shape[0], hs.shape[-1])) if needs[3] else None,
        )


def fused_lstm_cell(xw: Tensor, h_prev: Tensor, c_prev: Tensor, w_hh: Tensor, *,
                    overwrite_xw: bool = False) -> tuple[Tensor, Tensor]:
    """One LSTM step as one graph node: returns (h, c).

    xw: (B, 4H), the input projection x @ W_ih.T + b_ih + b_hh (see `tl.linear`). h_prev, c_prev:
    (B, H). w_hh: (4H, H). Gates in PyTorch's order i, f, g, o. Gradients flow to all four inputs.
    overwrite_xw=True lets the op keep its gate activations in xw's memory (one (B, 4H) array less
    per step): pass it only when xw is a temporary that nothing else reads, as nn.LSTMCell's input
    projection is (it then shows the gates, not the projection, if drawn with data).
    """
    if not _well_formed(xw, h_prev, c_prev, w_hh, 2):
        raise _input_error("fused_lstm_cell", xw, ("h_prev", h_prev), ("c_prev", c_prev), w_hh, 2)
    return apply(FusedLSTMCell, xw, h_prev, c_prev, w_hh, overwrite_xw=overwrite_xw)


def fused_lstm(xw: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor, *,
               overwrite_xw: bool = False) -> tuple[Tensor, Tensor]:
    """A whole LSTM layer over a sequence as one graph node: returns (hs, c_T), the h of every step and the last c.

    xw: (T, B, 4H), every step's input projection (see `fused_lstm_cell`). h0, c0: (B, H). w_hh: (4H, H).
    hs: (T, B, H), so the last h is hs[-1]. Same values and gradients as T `fused_lstm_cell` steps, with
    the engine's per-step cost gone: nn.LSTM trains through this. overwrite_xw as in `fused_lstm_cell`.
    """
    if not _well_formed(xw, h0, c0, w_hh, 3):
        raise _input_error("fused_lstm", xw, ("h0", h0), ("c0", c0), w_hh, 3)
    return apply(FusedLSTMLayer, xw, h0, c0, w_hh, overwrite_xw=overwrite_xw)


def _well_formed(xw, h, c, w_hh, xw_ndim: int) -> bool:
    """The fast check, once per step: four Tensors whose shapes and dtypes agree (xw has `xw_ndim` axes)."""
    if not (isinstance(xw, Tensor) and isinstance(h, Tensor) and isinstance(c, Tensor) and isinstance(w_hh, Tensor)):
        return False
    if xw.ndim != xw_ndim or w_hh.ndim != 2:
        return False
    batch, hidden, dtype = xw.shape[-2], w_hh.shape[1], w_hh.dtype
    return (xw.shape[-1] == 4 * hidden and h.shape == c.shape == (batch, hidden)
            and w_hh.shape == (4 * hidden, hidden) and xw.dtype == h.dtype == c.dtype == dtype)


def _input_error(who: str, xw, h: tuple[str, Tensor], c: tuple[str, Tensor], w_hh, xw_ndim: int) -> Exception:
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
