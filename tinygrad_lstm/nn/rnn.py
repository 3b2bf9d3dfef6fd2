"""Recurrent layers as PyTorch lays them out: RNNCell, LSTMCell, GRUCell and the sequence modules RNN, LSTM, GRU.

The cells are written to be read (and drawn): each gate of the LSTM is a line or two in its own name
scope, the cell state is tagged "highway", and the layers wrap every time step in a "step t" scope, so
the graph renderer draws one cluster per step with one cluster per gate inside. A composed step still
computes every gate's input in one node (`GateInputs`), so a loop over a cell is worth training with.
`nn.LSTM`, `nn.GRU` and `nn.RNN` train through fused layers (`nn.fused_lstm`, `nn.fused_gru`,
`nn.fused_rnn`: one node for the whole sequence) unless built with `fused=False`.
"""

from __future__ import annotations

import contextlib
import math
import re

from ..tensor import Function, Tensor, apply, linear, name_scope, rand, stack, zeros
from .fused import fused_gru, fused_lstm, fused_lstm_cell, fused_rnn, input_projection
from .module import Module, Parameter

# ---------------------------------------------------------------- one time step, as functions of the weights


class GateInputs(Function):
    """x W_ih^T + h W_hh^T + b_ih + b_hh as one node: the article's W [h, x] + b, without building [h, x].

    Every gate's input at once (split by the caller, one gate per name scope): one node and one
    (B, gates * H) array per step, where `linear(x) + linear(h)` would keep three alive until the backward.
    """

    def forward(self, x, h, w_ih, w_hh, b_ih=None, b_hh=None):
        dot = self.xp.dot
        self.saved = (x, h, w_ih, w_hh)
        out = dot(x, w_ih.T)
        out += dot(h, w_hh.T)
        for bias in (b_ih, b_hh):
            if bias is not None:
                out += bias
        return out

    def backward(self, g):
        x, h, w_ih, w_hh = self.saved
        needs, dot = self.needs_grad, self.xp.dot
        bias = g.sum(axis=0) if any(needs[4:]) else None
        return (
            dot(g, w_ih) if needs[0] else None,
            dot(g, w_hh) if needs[1] else None,
            dot(g.T, x) if needs[2] else None,
            dot(g.T, h) if needs[3] else None,
            *(bias if need else None for need in needs[4:]),
        )


def _gate_inputs(x: Tensor, h_prev: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
                 b_hh: Tensor | None) -> Tensor:
    """x W_ih^T + b_ih + h_prev W_hh^T + b_hh for all gates at once (`GateInputs`): two matmuls, not two per gate."""
    biases = () if b_ih is None else (b_ih, b_hh)
    return apply(GateInputs, x, h_prev, w_ih, w_hh, *biases)


def _mark_lstm_state(h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """The metadata the renderer reads: the new cell state is on the highway; both outputs are named."""
    c.tag("highway")
    c.name, h.name = "c", "h"
    return h, c


def rnn_step(x: Tensor, h_prev: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
             nonlinearity: str = "tanh") -> Tensor:
    """Elman RNN: h = tanh(x W_ih^T + b_ih + h_prev W_hh^T + b_hh) (or relu)."""
    with name_scope("hidden state"):
        pre = _gate_inputs(x, h_prev, w_ih, w_hh, b_ih, b_hh)
        h = pre.tanh() if nonlinearity == "tanh" else pre.relu()
    h.name = "h"
    return h


def lstm_step(x: Tensor, h_prev: Tensor, c_prev: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
              b_hh: Tensor | None) -> tuple[Tensor, Tensor]:
    """One LSTM step from primitive ops (PyTorch's layout: rows i, f, g, o), each gate in its own name scope.

    Eleven nodes: every gate's input in one (`GateInputs`), then a line or two per gate.
    """
    c_prev.tag("highway")
    i, f, g, o = _gate_inputs(x, h_prev, w_ih, w_hh, b_ih, b_hh).chunk(4, axis=1)
    with name_scope("forget gate"):  # how much of the old cell state to keep
        f = f.sigmoid()
    with name_scope("input gate"):  # how much of the candidate to write
        i = i.sigmoid()
    with name_scope("candidate"):  # what could be written
        g = g.tanh()
    with name_scope("cell state"):  # the highway: forget some, add some
        c = f * c_prev + i * g
    with name_scope("output gate"):  # what of the squashed cell state to show
        h = o.sigmoid() * c.tanh()
    return _mark_lstm_state(h, c)


def gru_step(x: Tensor, h_prev: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
             b_hh: Tensor | None) -> Tensor:
    """One GRU step as PyTorch (rows r, z, n); the hidden state is the gated highway here."""
    h_prev.tag("highway")
    x_r, x_z, x_n = linear(x, w_ih, b_ih).chunk(3, axis=1)
    h_r, h_z, h_n = linear(h_prev, w_hh, b_hh).chunk(3, axis=1)  # apart: the reset gate scales h_n
    with name_scope("reset gate"):  # how much of the old state the candidate sees
        r = (x_r + h_r).sigmoid()
    with name_scope("update gate"):  # how much of the old state to keep
        z = (x_z + h_z).sigmoid()
    with name_scope("candidate"):  # what the new state could be
        n = (x_n + r * h_n).tanh()
    with name_scope("hidden state"):  # h = (1 - z) * n + z * h_prev
        h = n + z * (h_prev - n)
    h.tag("highway")
    h.name = "h"
    return h


# ---------------------------------------------------------------- initialisation, checks at the API boundary, states


def _uniform(shape: tuple[int, ...], bound: float, dtype, device) -> Parameter:
    """U(-bound, bound), PyTorch's initialisation of every recurrent parameter."""
    return Parameter((rand(*shape, dtype=dtype, device=device) * 2 - 1) * bound)


def _check_tensor(who: str, what: str, t, like: Tensor) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{who}: {what} must be a Tensor, got {type(t).__name__}")
    if t.device != like.device:
        raise RuntimeError(f"{who}: {what} is on {t.device!r} but the parameters are on {like.device!r}; "
                           "move one of them with .to(device)")
    if t.dtype != like.dtype:
        raise TypeError(f"{who}: {what} has dtype {t.dtype} but the parameters have dtype {like.dtype}; "
                        "convert with .to(dtype) (or the module with .double()/.float())")


def _check_shape(who: str, what: str, t: Tensor, expected: tuple[int, ...], meaning: str) -> None:
    if t.shape != expected:
        raise ValueError(f"{who}: {what} has shape {t.shape}, expected {expected} {meaning}")


def _check_features(who: str, x: Tensor, input_size: int, ranks: tuple[int, int], layout: str) -> None:
    if x.ndim not in ranks:
        raise ValueError(f"{who}: expected a {ranks[1]}-D input {layout} or a {ranks[0]}-D unbatched one, "
                         f"got shape {x.shape}")
    if x.shape[-1] != input_size:
        raise ValueError(f"{who}: input has {x.shape[-1]} features (shape {x.shape}) but input_size is {input_size}")


def _unbatched(t: Tensor) -> Tensor:
    """Drop the batch axis of one (1, H) state, keeping its name and tags for the renderer."""
    out = t.reshape(t.shape[1])
    out.name = t.name
    out.tags.update(t.tags)
    return out


_STEP_SCOPE = re.compile(r"(?:^|/)step (\d+)(?:/|$)")


def _call_scope(state: Tensor | None):
    """The name scope "step N" of one call of a cell, numbered from 1 along the state it is given.

    A user's own loop over a cell is then drawn with one box per call, as a layer's steps are: the
    step after a state made in "step 3" is "step 4"; a fresh (None or detached) state starts at 1.
    """
    found = _STEP_SCOPE.findall(state.scope) if isinstance(state, Tensor) else []
    return name_scope(f"step {int(found[-1]) + 1 if found else 1}")


def _named_zeros(name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    t = zeros(*shape, dtype=like.dtype, device=like.device)
    t.name = name
    return t


# ---------------------------------------------------------------- cells


class _Cell(Module):
    """Shared parameters and checks of the one-step cells; `gates` is how many row blocks the weights stack."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype=None, device: str | None = None):
        super().__init__()
        _check_sizes(type(self).__name__, input_size, hidden_size, 1, bias)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        bound = 1 / math.sqrt(hidden_size)
        rows = self.gates * hidden_size
        self.weight_ih = _uniform((rows, input_size), bound, dtype, device)
        self.weight_hh = _uniform((rows, hidden_size), bound, dtype, device)
        self.register_parameter("bias_ih", _uniform((rows,), bound, dtype, device) if bias else None)
        self.register_parameter("bias_hh", _uniform((rows,), bound, dtype, device) if bias else None)

    def _weights(self) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def _batched(self, x: Tensor) -> tuple[Tensor, bool]:
        """Check x, and give it a batch axis if it has none (returns whether it had one)."""
        who = type(self).__name__
        _check_tensor(who, "input", x, self.weight_ih)
        _check_features(who, x, self.input_size, (1, 2), "(batch, input_size)")
        return (x, True) if x.ndim == 2 else (x.reshape(1, -1), False)

    def _state(self, state: Tensor | None, what: str, x: Tensor, batched: bool) -> Tensor:
        """The given state with a batch axis, or zeros named `what` + "0" (h0, c0) when it is None."""
        batch, hidden = x.shape[0], self.hidden_size
        if state is None:
            return _named_zeros(what + "0", (batch, hidden), x)
        who = type(self).__name__
        _check_tensor(who, f"state {what}", state, self.weight_hh)
        if batched:
            _check_shape(who, f"state {what}", state, (batch, hidden), f"(batch {batch}, hidden_size {hidden})")
            return state
        _check_shape(who, f"state {what}", state, (hidden,), f"(hidden_size {hidden}) for an unbatched input")
        return state.reshape(1, hidden)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(_Cell):
    """Elman cell: h = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu). forward(x, h=None) -> h."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 dtype=None, device: str | None = None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, dtype=dtype, device=device)
        self.nonlinearity = nonlinearity

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        x, batched = self._batched(x)
        with _call_scope(h):
            h = rnn_step(x, self._state(h, "h", x, batched), *self._weights(), self.nonlinearity)
            return h if batched else _unbatched(h)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity}")


class LSTMCell(_Cell):
    """Long short-term memory cell. forward(x, hx=None) -> (h, c); hx = (h, c), None means zeros.

    fused=False (the default) composes the step from primitive ops, one name scope per gate, because a
    single cell is what people draw and step through; it still computes all gates' inputs in one node, so
    a loop over it trains at 1-3x the time of PyTorch's LSTMCell loop (benchmarks/lstm.py). fused=True
    runs the step as one node (`nn.fused_lstm_cell`): the same values and gradients, faster, drawn as one box.
    Each call opens a name scope "step N", numbered along the state, so a loop draws one box per step.
    """

    gates = 4

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype=None, device: str | None = None,
                 fused: bool = False):
        super().__init__(input_size, hidden_size, bias, dtype=dtype, device=device)
        self.fused = fused

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        x, batched = self._batched(x)
        h, c = _state_pair(type(self).__name__, hx)
        with _call_scope(h):
            h, c = self._state(h, "h", x, batched), self._state(c, "c", x, batched)
            step = fused_lstm_step if self.fused else lstm_step
            h, c = step(x, h, c, *self._weights())
            return (h, c) if batched else (_unbatched(h), _unbatched(c))

    def extra_repr(self) -> str:
        return super().extra_repr() + (", fused=True" if self.fused else "")


class GRUCell(_Cell):
    """Gated recurrent unit (PyTorch's rows r, z, n). forward(x, h=None) -> h."""

    gates = 3

    def forward(self, x: Tensor, h: Tensor | None = None) -> Tensor:
        x, batched = self._batched(x)
        with _call_scope(h):
            h = gru_step(x, self._state(h, "h", x, batched), *self._weights())
            return h if batched else _unbatched(h)


def fused_lstm_step(x: Tensor, h_prev: Tensor, c_prev: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
                    b_hh: Tensor | None) -> tuple[Tensor, Tensor]:
    """`lstm_step` as one fused node (plus the input projection)."""
    c_prev.tag("highway")
    return _mark_lstm_state(*fused_lstm_cell(_projection(x, w_ih, b_ih, b_hh), h_prev, c_prev, w_hh,
                                             overwrite_xw=True))


def _projection(rows: Tensor, w_ih: Tensor, b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor:
    """rows @ W_ih.T + b_ih + b_hh, one node: the xw of every row (every step, for a layer) at once."""
    return input_projection(rows, w_ih, None if b_ih is None else b_ih + b_hh)


def _state_pair(who: str, hx) -> tuple[Tensor | None, Tensor | None]:
    if hx is None:
        return None, None
    if not isinstance(hx, tuple | list) or len(hx) != 2:
        raise TypeError(f"{who}: hx must be a tuple (h, c) of two Tensors, got {type(hx).__name__}")
    return hx[0], hx[1]


def _check_sizes(who: str, input_size: int, hidden_size: int, num_layers: int, bias) -> None:
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{who}: {name} must be a positive integer, got {value!r}")
    if not isinstance(bias, bool):
        raise TypeError(f"{who}: bias must be True or False, got {bias!r} (pass nonlinearity= by keyword)")


# ---------------------------------------------------------------- sequence layers


class _Recurrent(Module):
    """A stack of recurrent layers over a sequence, with PyTorch's parameter names and shapes.

    Subclasses say how many row blocks the weights stack (`gates`), how many state tensors a layer
    carries (`state_names`) and what one step does (`_step`).
    """

    gates = 1
    state_names: tuple[str, ...] = ("h",)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, *, dtype=None, device: str | None = None):
        super().__init__()
        _check_sizes(type(self).__name__, input_size, hidden_size, num_layers, bias)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bias, batch_first
        bound = 1 / math.sqrt(hidden_size)
        rows = self.gates * hidden_size
        for k in range(num_layers):
            columns = input_size if k == 0 else hidden_size
            setattr(self, f"weight_ih_l{k}", _uniform((rows, columns), bound, dtype, device))
            setattr(self, f"weight_hh_l{k}", _uniform((rows, hidden_size), bound, dtype, device))
            self.register_parameter(f"bias_ih_l{k}", _uniform((rows,), bound, dtype, device) if bias else None)
            self.register_parameter(f"bias_hh_l{k}", _uniform((rows,), bound, dtype, device) if bias else None)

    def _weights(self, k: int) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
        return tuple(getattr(self, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def _step(self, x: Tensor, state: tuple[Tensor, ...], weights: tuple) -> tuple[Tensor, ...]:
        raise NotImplementedError

    def forward(self, x: Tensor, hx=None):
        """x: (seq_len, batch, input_size) ((batch, seq_len, input_size) if batch_first), or (seq_len, input_size).

        Returns (output, h_n): output (seq_len, batch, hidden_size) (batch first if batch_first),
        h_n (num_layers, batch, hidden_size); unbatched inputs give unbatched results.
        """
        who = type(self).__name__
        _check_tensor(who, "input", x, self.weight_ih_l0)
        layout = "(batch, seq_len, input_size)" if self.batch_first else "(seq_len, batch, input_size)"
        _check_features(who, x, self.input_size, (2, 3), layout)
        batched = x.ndim == 3
        if not batched:
            steps, batch, rows = x.shape[0], 1, x
        elif self.batch_first:
            batch, steps = x.shape[:2]
            rows = x.permute(1, 0, 2).reshape(-1, x.shape[2])
        else:
            steps, batch = x.shape[:2]
            rows = x.reshape(-1, x.shape[2])
        # rows is time-major, (seq_len * batch, features): step t is rows [t * batch, (t + 1) * batch)
        if steps == 0:
            raise ValueError(f"{who}: the input sequence is empty (shape {x.shape})")
        states = self._initial_states(hx, batch, batched, x)
        finals = []
        for k in range(self.num_layers):
            with name_scope(f"layer {k}") if self.num_layers > 1 else contextlib.nullcontext():
                hs, final = self._layer(k, rows, states[k], batch)
            finals.append(final)
            rows = hs.reshape(steps * batch, self.hidden_size)  # the next layer's input: time-major rows again
        if not batched:
            output = rows
        else:
            output = hs.permute(1, 0, 2) if self.batch_first else hs
        last = []
        for j in range(len(self.state_names)):
            s = stack([final[j] for final in finals])
            last.append(s if batched else s.reshape(self.num_layers, self.hidden_size))
        return output, self._pack(last)

    def _pack(self, last: list[Tensor]):
        return last[0]

    def _layer(self, k: int, rows: Tensor, state: tuple[Tensor, ...], batch: int) -> tuple[Tensor, tuple]:
        """Run layer k over all steps; returns the outputs h_t stacked (steps, batch, hidden) and the final state."""
        weights = self._weights(k)
        hs = []
        for t, x in enumerate(rows.split(batch)):
            with name_scope(f"step {t + 1}"):
                state = self._step(x, state, weights)
            hs.append(state[0])
        return stack(hs), state

    def _initial_states(self, hx, batch: int, batched: bool, x: Tensor) -> list[tuple[Tensor, ...]]:
        """Per layer, a tuple of (batch, hidden) states: slices of hx, or zeros named h0 (and c0)."""
        who, layers, hidden = type(self).__name__, self.num_layers, self.hidden_size
        given = self._unpack(hx)
        per_state = []
        for name, state in zip(self.state_names, given, strict=True):
            if state is None:
                per_state.append([_named_zeros(name + "0", (batch, hidden), x) for _ in range(layers)])
                continue
            _check_tensor(who, f"initial state {name}0", state, self.weight_hh_l0)
            expected = (layers, batch, hidden) if batched else (layers, hidden)
            meaning = (f"(num_layers {layers}, batch {batch}, hidden_size {hidden})" if batched
                       else f"(num_layers {layers}, hidden_size {hidden}) for an unbatched input")
            _check_shape(who, f"initial state {name}0", state, expected, meaning)
            state = state if batched else state.reshape(layers, 1, hidden)
            per_state.append([state[k] for k in range(layers)])
        return list(zip(*per_state, strict=True))

    def _unpack(self, hx) -> tuple:
        return (hx,)

    def extra_repr(self) -> str:
        parts = [f"{self.input_size}, {self.hidden_size}"]
        if self.num_layers != 1:
            parts.append(f"num_layers={self.num_layers}")
        if not self.bias:
            parts.append("bias=False")
        if self.batch_first:
            parts.append("batch_first=True")
        return ", ".join(parts)


class RNN(_Recurrent):
    """Multi-layer Elman RNN (tanh or relu). forward(x, hx=None) -> (output, h_n).

    fused=True (the default, as nn.LSTM's) runs each layer through `nn.fused_rnn`: the input projection
    of all steps in one matmul, then the sequence in one node. fused=False composes every step from
    primitive ops in name scopes, for reading and drawing the graph.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, *, nonlinearity: str = "tanh", fused: bool = True, dtype=None,
                 device: str | None = None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dtype=dtype, device=device)
        self.nonlinearity, self.fused = nonlinearity, fused

    def _step(self, x, state, weights):
        return (rnn_step(x, state[0], *weights, self.nonlinearity),)

    def _layer(self, k, rows, state, batch):
        if not self.fused:
            return super()._layer(k, rows, state, batch)
        w_ih, w_hh, b_ih, b_hh = self._weights(k)
        xw = _projection(rows, w_ih, b_ih, b_hh)
        hs = fused_rnn(xw.reshape(-1, batch, xw.shape[1]), state[0], w_hh, nonlinearity=self.nonlinearity,
                       overwrite_xw=True)
        hs.name = "hs"
        return hs, (hs[-1],)

    def extra_repr(self) -> str:
        return (super().extra_repr() + ("" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity}")
                + ("" if self.fused else ", fused=False"))


class GRU(_Recurrent):
    """Multi-layer GRU. forward(x, hx=None) -> (output, h_n).

    fused=True (the default, as nn.LSTM's) runs each layer through `nn.fused_gru`: the input projection
    of all steps in one matmul, then the sequence in one node with an analytic backward. fused=False
    composes every step from primitive ops in name scopes ("step t/reset gate", ...), for drawing.
    """

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, *, fused: bool = True, dtype=None, device: str | None = None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dtype=dtype, device=device)
        self.fused = fused

    def _step(self, x, state, weights):
        return (gru_step(x, state[0], *weights),)

    def _layer(self, k, rows, state, batch):
        if not self.fused:
            return super()._layer(k, rows, state, batch)
        w_ih, w_hh, b_ih, b_hh = self._weights(k)
        h0 = state[0]
        h0.tag("highway")
        xw = input_projection(rows, w_ih, b_ih)  # b_hh stays apart: the reset gate scales the candidate's share
        hs = fused_gru(xw.reshape(-1, batch, xw.shape[1]), h0, w_hh, b_hh, overwrite_xw=True)
        hs.tag("highway")
        hs.name = "hs"
        return hs, (hs[-1],)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.fused else ", fused=False")


class LSTM(_Recurrent):
    """Multi-layer LSTM. forward(x, hx=None) -> (output, (h_n, c_n)); hx = (h_0, c_0), None means zeros.

    fused=True (the default, unlike LSTMCell's, because a whole sequence is what people train) runs
    through `nn.fused_lstm`: the input projection of all steps in one matmul, then the sequence in one
    node that loops the one step formula (as cuDNN does). fused=False composes every step from
    primitive ops in name scopes ("layer k/step t/forget gate", ...), for reading and drawing the graph.
    """

    gates = 4
    state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, *, fused: bool = True, dtype=None, device: str | None = None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dtype=dtype, device=device)
        self.fused = fused

    def _step(self, x, state, weights):
        return lstm_step(x, *state, *weights)

    def _layer(self, k, rows, state, batch):
        if not self.fused:
            return super()._layer(k, rows, state, batch)
        w_ih, w_hh, b_ih, b_hh = self._weights(k)
        h0, c0 = state
        c0.tag("highway")
        xw = _projection(rows, w_ih, b_ih, b_hh)  # one matmul for every step's input projection
        hs, c = fused_lstm(xw.reshape(-1, batch, xw.shape[1]), h0, c0, w_hh, overwrite_xw=True)
        c.tag("highway")
        hs.name, c.name = "hs", "c"
        return hs, (hs[-1], c)

    def _pack(self, last):
        return last[0], last[1]

    def _unpack(self, hx):
        return _state_pair("LSTM", hx)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.fused else ", fused=False")
