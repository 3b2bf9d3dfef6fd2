"""Recurrent layers as PyTorch lays them out: RNNCell, LSTMCell, GRUCell and the sequence modules RNN, LSTM, GRU.

The cells are written to be read (and drawn): each gate of the LSTM is a line or two in its own name
scope, the cell state is tagged "highway", and the layers wrap every time step in a "step t" scope, so
the graph renderer draws one cluster per step with one cluster per gate inside. A composed step still
computes every gate's input in one node (`GateInputs`), so a loop over a cell is worth training with.
`nn.LSTM`, `nn.GRU` and `nn.RNN` train through fused layers (the nodes of `nn.fused_lstm`, `nn.fused_gru`,
`nn.fused_rnn`, here also doing the input projection: one node per layer and direction) unless built with
`fused=False`.
"""

from __future__ import annotations

import contextlib
import math
import re
import warnings

from ..tensor import Function, Tensor, apply, cat, linear, name_scope, ops, rand, zeros
from .functional import dropout
from .fused import FusedGRULayer, FusedLSTMLayer, FusedRNNLayer, fused_lstm_cell, input_projection, projected_layer
from .module import Module, Parameter
from .utils.rnn import PackedSequence, packed_batch_sizes, reversed_in_time

# ---------------------------------------------------------------- one time step, as functions of the weights


def _affine(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return x @ weight.T if bias is None else x @ weight.T + bias


def _pieces(t: Tensor | None, n: int) -> tuple:
    """Split stacked per-gate rows into the gates (one Split node), or n Nones for a missing bias."""
    return (None,) * n if t is None else t.chunk(n)


class GateInputs(Function):
    """x W_ih^T + h W_hh^T + b_ih + b_hh as one node: the article's W [h, x] + b, without building [h, x].

    Every gate's input at once: one node and one (B, gates * H) array per step, where `linear(x) + linear(h)`
    would keep three alive until the backward. With `gates` > 1 its outputs are the gates' inputs themselves,
    (B, H) views side by side, one for each gate's name scope: no Split node after it.
    The sum is computed transposed, W_ih x^T + W_hh h^T, then copied back to (B, gates * H) rows: BLAS
    multiplies a batch's few rows by the transposed view W^T up to 1.7x slower (OpenBLAS's AVX-512 kernels,
    B=32, H=128: 46 us against 28 us per product; the AVX2 ones: 46 against 42), and the copy (10 us) keeps
    every array of the step in one memory order: mixing row- and column-major operands made each elementwise
    op of the cell 3x slower.
    """

    def forward(self, x, h, w_ih, w_hh, b_ih=None, b_hh=None, gates=1):
        dot = self.xp.dot
        self.saved = (x, h, w_ih, w_hh)
        out = dot(w_ih, x.T)
        out += dot(w_hh, h.T)
        for bias in (b_ih, b_hh):
            if bias is not None:
                out += bias[:, None]
        out = self.xp.ascontiguousarray(out.T)
        if gates == 1:
            return out
        size = out.shape[1] // gates
        self.pieces = (out.shape, [size] * gates)
        return tuple(out[:, k * size : (k + 1) * size] for k in range(gates))

    fresh_gradients = True

    def backward(self, *grads):
        x, h, w_ih, w_hh = self.saved
        needs, dot = self.needs_grad, self.xp.dot
        g = grads[0] if len(grads) == 1 else ops.join_pieces(self.xp, grads, *self.pieces, axis=1)
        return (
            dot(g, w_ih) if needs[0] else None,
            dot(g, w_hh) if needs[1] else None,
            dot(g.T, x) if needs[2] else None,
            dot(g.T, h) if needs[3] else None,
            *ops.bias_gradients(g, needs[4:]),
        )


def _gate_inputs(x: Tensor, h_prev: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
                 b_hh: Tensor | None, gates: int = 1):
    """x W_ih^T + b_ih + h_prev W_hh^T + b_hh for all gates at once (`GateInputs`): two matmuls, not two per gate.
    With `gates` > 1, the node's outputs are the gates' inputs, one (B, H) each (no Split node after it)."""
    biases = () if b_ih is None else (b_ih, b_hh)
    return apply(GateInputs, x, h_prev, w_ih, w_hh, *biases, gates=gates)


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

    Ten nodes: every gate's input in one (`GateInputs`, one output per gate), then a line or two per gate.
    """
    c_prev.tag("highway")
    i, f, g, o = _gate_inputs(x, h_prev, w_ih, w_hh, b_ih, b_hh, gates=4)
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
    a loop over it trains at 0.6-1.5x the time of PyTorch's LSTMCell loop (1.5x at batch 1, hidden 32, where the
    engine's cost per node is most of a step; see docs/benchmarks.md). fused=True
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
    return _mark_lstm_state(*fused_lstm_cell(input_projection(x, w_ih, b_ih, b_hh), h_prev, c_prev, w_hh,
                                             overwrite_xw=True))


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
    """A stack of recurrent layers over a sequence, with PyTorch's parameter names, shapes and options.

    Subclasses say how many row blocks the weights stack (`gates`), how many state tensors a layer
    carries (`state_names`) and what one step does (`_step`). Every layer runs one direction at a time
    over time-major rows with `_layer`; the reverse direction is the same run over the rows of each
    sequence reversed within its length, and a PackedSequence's shorter sequences simply leave the
    batch at their last step (the rows of the longest come first), so h_n is each one's true last state.
    """

    gates = 1
    state_names: tuple[str, ...] = ("h",)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 proj_size: int = 0, dtype=None, device: str | None = None):
        super().__init__()
        who = type(self).__name__
        _check_sizes(who, input_size, hidden_size, num_layers, bias)
        _check_options(who, dropout, bidirectional, proj_size, hidden_size, num_layers)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = float(dropout), bidirectional, proj_size
        bound = 1 / math.sqrt(hidden_size)
        for k in range(num_layers):
            columns = input_size if k == 0 else self._output_size * len(self._directions)
            for suffix in self._directions:
                self._make_parameters(f"_l{k}{suffix}", columns, bound, dtype, device)
        self._parameter_shapes = {name: p.shape for name, p in self.named_parameters()}

    @property
    def _directions(self) -> tuple[str, ...]:
        """The parameter-name suffix of each direction, as PyTorch: "" and "_reverse"."""
        return ("", "_reverse") if self.bidirectional else ("",)

    @property
    def _output_size(self) -> int:
        """The size of h (and of each direction's output): proj_size when projecting, else hidden_size."""
        return self.proj_size or self.hidden_size

    def _make_parameters(self, name: str, columns: int, bound: float, dtype, device) -> None:
        """One direction of one layer (name "_l0", "_l1_reverse", ...), in PyTorch's state_dict order."""
        rows = self.gates * self.hidden_size
        setattr(self, f"weight_ih{name}", _uniform((rows, columns), bound, dtype, device))
        setattr(self, f"weight_hh{name}", _uniform((rows, self._output_size), bound, dtype, device))
        self.register_parameter(f"bias_ih{name}", _uniform((rows,), bound, dtype, device) if self.bias else None)
        self.register_parameter(f"bias_hh{name}", _uniform((rows,), bound, dtype, device) if self.bias else None)

    _extra_weights: tuple[str, ...] = ()

    def _weights(self, name: str) -> tuple:
        """w_ih, w_hh, b_ih, b_hh (and the subclass's `_extra_weights`) of one layer's direction, each of the shape
        it was made with: the fused layers trust them, so a parameter replaced by one of another shape is named
        here rather than failing inside a matmul."""
        weights: list[Tensor | None] = []
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", *self._extra_weights):
            full_name = kind + name
            weight = getattr(self, full_name)
            if weight is not None:
                expected = self._parameter_shapes.get(full_name)
                if expected is not None and weight.shape != expected:
                    raise ValueError(f"{type(self).__name__}: parameter {full_name} has shape {weight.shape}, "
                                     f"expected {expected} for {type(self).__name__}({self.extra_repr()})")
                first = weights[0] if weights else weight  # weight_ih, never None
                if first is not None and (weight.dtype != first.dtype or weight.device != first.device):
                    raise TypeError(f"{type(self).__name__}: parameter {full_name} is {weight.dtype} on "
                                    f"{weight.device!r} but weight_ih{name} is {first.dtype} on "
                                    f"{first.device!r}; convert the module with .to(...)")
            weights.append(weight)
        return tuple(weights)

    def _step(self, x: Tensor, state: tuple[Tensor, ...], weights: tuple) -> tuple[Tensor, ...]:
        raise NotImplementedError(f"{type(self).__name__} must define _step(x, state, weights): one time step")

    def forward(self, x, hx=None):
        """x: (seq_len, batch, input_size) ((batch, seq_len, input_size) if batch_first), (seq_len, input_size),
        or a PackedSequence (see `nn.utils.rnn.pack_padded_sequence`).

        Returns (output, h_n): output (seq_len, batch, D * H_out) (batch first if batch_first), or a
        PackedSequence for a packed input; h_n (D * num_layers, batch, H_out); D = 2 if bidirectional,
        H_out = proj_size or hidden_size. Unbatched inputs give unbatched results.
        """
        packed = isinstance(x, PackedSequence)
        seq, batch_sizes, batched = self._time_major(x)
        states = self._initial_states(hx, batch_sizes[0], batched, seq, x.sorted_indices if packed else None)
        finals = []
        for k in range(self.num_layers):
            with name_scope(f"layer {k}") if self.num_layers > 1 else contextlib.nullcontext():
                outputs = []
                for d, suffix in enumerate(self._directions):
                    with name_scope("reverse") if d else contextlib.nullcontext():
                        hs, final = self._direction(self._weights(f"_l{k}{suffix}"), seq,
                                                    states[k * len(self._directions) + d], batch_sizes, d == 1)
                    outputs.append(hs)
                    finals.append(final)
                seq = outputs[0] if len(outputs) == 1 else cat(outputs, axis=-1)
                if self.dropout and self.training and k < self.num_layers - 1:
                    with name_scope("dropout"):
                        seq = dropout(seq, self.dropout)
        if packed:
            rows = seq if seq.ndim == 2 else seq.reshape(x.data.shape[0], seq.shape[2])
            output = PackedSequence(rows, x.batch_sizes, x.sorted_indices, x.unsorted_indices)
        elif not batched:
            output = seq.reshape(seq.shape[0], seq.shape[2])
        else:
            output = seq.permute(1, 0, 2) if self.batch_first else seq
        last = []
        for j in range(len(self.state_names)):
            parts = [final[j] for final in finals]  # (1, batch, size) each
            s = cat(parts) if len(parts) > 1 else parts[0]
            if packed and x.unsorted_indices is not None:
                s = s[:, x.unsorted_indices]
            last.append(s if batched else s.reshape(s.shape[0], s.shape[2]))
        return output, self._pack(last)

    def _time_major(self, x) -> tuple[Tensor, list[int], bool]:
        """Check the input; return it time-major with the batch sizes of its steps, and whether it had a batch axis.

        Sequences of one length come as (steps, batch, features); a PackedSequence of unequal lengths as its
        rows (step t is the next batch_sizes[t] rows).
        """
        who = type(self).__name__
        if isinstance(x, PackedSequence):
            _check_tensor(who, "PackedSequence data", x.data, self.weight_ih_l0)
            if x.data.ndim != 2 or x.data.shape[1] != self.input_size:
                raise ValueError(f"{who}: a PackedSequence's data must be (sum(lengths), input_size "
                                 f"{self.input_size}), got shape {x.data.shape}")
            batch_sizes = packed_batch_sizes(x)
            if len(set(batch_sizes)) > 1:
                return x.data, batch_sizes, True
            return x.data.reshape(len(batch_sizes), batch_sizes[0], self.input_size), batch_sizes, True
        _check_tensor(who, "input", x, self.weight_ih_l0)
        layout = "(batch, seq_len, input_size)" if self.batch_first else "(seq_len, batch, input_size)"
        _check_features(who, x, self.input_size, (2, 3), layout)
        if x.shape[0 if x.ndim == 2 or not self.batch_first else 1] == 0:
            raise ValueError(f"{who}: the input sequence is empty (shape {x.shape})")
        if x.ndim == 2:
            return x.reshape(x.shape[0], 1, x.shape[1]), [1] * x.shape[0], False
        if self.batch_first:
            x = x.permute(1, 0, 2)
        return x, [x.shape[1]] * x.shape[0], True

    def _pack(self, last: list[Tensor]):
        return last[0]

    def _direction(self, weights: tuple, seq: Tensor, state: tuple[Tensor, ...], batch_sizes: list[int],
                   reverse: bool) -> tuple[Tensor, tuple]:
        """One direction of one layer: `_layer`, over the sequences reversed in time for the reverse direction."""
        if not reverse:
            return self._layer(weights, seq, state, batch_sizes)
        if seq.ndim == 3:  # one length: flip the time axis (a view)
            hs, final = self._layer(weights, seq[::-1], state, batch_sizes)
            return hs[::-1], final
        order = reversed_in_time(batch_sizes)  # its own inverse
        hs, final = self._layer(weights, seq[order], state, batch_sizes)
        return hs[order], final

    def _layer(self, weights: tuple, seq: Tensor, state: tuple[Tensor, ...],
               batch_sizes: list[int]) -> tuple[Tensor, tuple]:
        """Run one direction of a layer forward over time-major `seq` (see `_time_major`), step by step.

        Returns the outputs h_t laid out as `seq` and the final state, each (1, batch, size), batch in order.
        A sequence that ends (the batch shrinks) sets its state aside as its final one.
        """
        rows = seq if seq.ndim == 2 else seq.reshape(seq.shape[0] * seq.shape[1], seq.shape[2])
        outputs: list[Tensor] = []
        ended: list[tuple[Tensor, ...]] = []  # the final states of sequences that have ended
        for t, x in enumerate(rows.split(batch_sizes)):
            running = batch_sizes[t]
            if running < state[0].shape[0]:
                pieces = [s.split([running, s.shape[0] - running]) for s in state]
                state, done = tuple(p[0] for p in pieces), tuple(p[1] for p in pieces)
                ended.insert(0, done)  # the latest to end sit right after the ones still running
            with name_scope(f"step {t + 1}"):
                state = self._step(x, state, weights)
            outputs.append(state[0])
        if ended:
            state = tuple(cat([s, *(done[j] for done in ended)]) for j, s in enumerate(state))
        hs = cat(outputs) if len(outputs) > 1 else outputs[0]
        hs = hs if seq.ndim == 2 else hs.reshape(seq.shape[0], seq.shape[1], hs.shape[1])
        return hs, tuple(s.reshape(1, *s.shape) for s in state)

    def _initial_states(self, hx, batch: int, batched: bool, x: Tensor, order: Tensor | None = None
                        ) -> list[tuple[Tensor, ...]]:
        """Per layer and direction, a tuple of (batch, size) states: slices of hx, or zeros named h0 (and c0).

        `order` (a PackedSequence's sorted_indices) puts the given states' batch in the packed order.
        """
        who, layers = type(self).__name__, self.num_layers * len(self._directions)
        given = self._unpack(hx)
        per_state = []
        for name, state in zip(self.state_names, given, strict=True):
            size = self._output_size if name == "h" else self.hidden_size
            if state is None:
                per_state.append([_named_zeros(name + "0", (batch, size), x) for _ in range(layers)])
                continue
            _check_tensor(who, f"initial state {name}0", state, self.weight_hh_l0)
            expected = (layers, batch, size) if batched else (layers, size)
            directions = "2 * " if self.bidirectional else ""
            meaning = (f"({directions}num_layers {layers}, batch {batch}, {name} size {size})" if batched
                       else f"({directions}num_layers {layers}, {name} size {size}) for an unbatched input")
            _check_shape(who, f"initial state {name}0", state, expected, meaning)
            state = state if batched else state.reshape(layers, 1, size)
            state = state if order is None else state[:, order]
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
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        if self.bidirectional:
            parts.append("bidirectional=True")
        if self.proj_size:
            parts.append(f"proj_size={self.proj_size}")
        return ", ".join(parts)


def _check_options(who: str, dropout, bidirectional, proj_size, hidden_size: int, num_layers: int) -> None:
    """The sequence layers' options, checked as PyTorch checks them (with the offending value named)."""
    if isinstance(dropout, bool) or not isinstance(dropout, int | float) or not 0 <= dropout <= 1:
        raise ValueError(f"{who}: dropout must be a number in [0, 1], the probability of zeroing an element "
                         f"between layers, got {dropout!r}")
    if dropout > 0 and num_layers == 1:
        warnings.warn(f"{who}: dropout={dropout} acts between layers only, so with num_layers=1 it does nothing",
                      UserWarning, stacklevel=4)
    if not isinstance(bidirectional, bool):
        raise TypeError(f"{who}: bidirectional must be True or False, got {bidirectional!r}")
    if not isinstance(proj_size, int) or isinstance(proj_size, bool) or proj_size < 0:
        raise ValueError(f"{who}: proj_size must be a positive integer, or 0 for no projection, got {proj_size!r}")
    if proj_size >= hidden_size:
        raise ValueError(f"{who}: proj_size ({proj_size}) must be smaller than hidden_size ({hidden_size})")


class RNN(_Recurrent):
    """Multi-layer Elman RNN (tanh or relu). forward(x, hx=None) -> (output, h_n).

    fused=True (the default, as nn.LSTM's) runs each layer as one node (`nn.fused_rnn`'s, `FusedRNNLayer`): the
    input projection of all steps in one matmul, then the sequence. fused=False composes every step from
    primitive ops in name scopes, for reading and drawing the graph.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 nonlinearity: str = "tanh", fused: bool = True, dtype=None, device: str | None = None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype, device=device)
        self.nonlinearity, self.fused = nonlinearity, fused

    def _step(self, x, state, weights):
        return (rnn_step(x, state[0], *weights, self.nonlinearity),)

    def _layer(self, weights, seq, state, batch_sizes):
        if not self.fused or seq.ndim == 2:  # packed with unequal lengths: step by step
            return super()._layer(weights, seq, state, batch_sizes)
        w_ih, w_hh, b_ih, b_hh = weights  # one node: every step's input projection, then the recurrence
        hs, h_n = projected_layer(FusedRNNLayer, seq, w_ih, (b_ih, b_hh), state[0], w_hh,
                                  nonlinearity=self.nonlinearity)
        hs.name = "hs"
        return hs, (h_n,)

    def extra_repr(self) -> str:
        return (super().extra_repr() + ("" if self.nonlinearity == "tanh" else f", nonlinearity={self.nonlinearity}")
                + ("" if self.fused else ", fused=False"))


class GRU(_Recurrent):
    """Multi-layer GRU. forward(x, hx=None) -> (output, h_n).

    fused=True (the default, as nn.LSTM's) runs each layer as one node (`nn.fused_gru`'s, `FusedGRULayer`): the
    input projection of all steps in one matmul, then the sequence with an analytic backward. fused=False
    composes every step from primitive ops in name scopes ("step t/reset gate", ...), for drawing.
    """

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 fused: bool = True, dtype=None, device: str | None = None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype, device=device)
        self.fused = fused

    def _step(self, x, state, weights):
        return (gru_step(x, state[0], *weights),)

    def _layer(self, weights, seq, state, batch_sizes):
        if not self.fused or seq.ndim == 2:  # packed with unequal lengths: step by step
            return super()._layer(weights, seq, state, batch_sizes)
        w_ih, w_hh, b_ih, b_hh = weights
        h0 = state[0]
        h0.tag("highway")
        # one node: every step's input projection (b_hh stays apart: the reset gate scales the candidate's share)
        hs, h_n = projected_layer(FusedGRULayer, seq, w_ih, (b_ih,), h0, w_hh, *([] if b_hh is None else [b_hh]))
        hs.tag("highway")
        hs.name = "hs"
        return hs, (h_n,)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.fused else ", fused=False")


class LSTM(_Recurrent):
    """Multi-layer LSTM. forward(x, hx=None) -> (output, (h_n, c_n)); hx = (h_0, c_0), None means zeros.

    fused=True (the default, unlike LSTMCell's, because a whole sequence is what people train) runs each
    layer as one node (`nn.fused_lstm`'s, `FusedLSTMLayer`): the input projection of all steps in one matmul,
    then a loop of the one step formula (as cuDNN does); the reverse direction is that node over the
    time-flipped sequence. A PackedSequence of unequal lengths runs one fused cell per step instead
    (the batch shrinks as sequences end), and proj_size (h = (o * tanh(c)) @ W_hr^T, so h has
    proj_size features) one fused cell plus the projection's matmul per step. fused=False composes
    every step from primitive ops in name scopes ("layer k/step t/forget gate", ...), for reading and
    drawing the graph.
    """

    gates = 4
    state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 *, fused: bool = True, dtype=None, device: str | None = None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size=proj_size, dtype=dtype, device=device)
        self.fused = fused

    def _make_parameters(self, name, columns, bound, dtype, device):
        super()._make_parameters(name, columns, bound, dtype, device)
        if self.proj_size:
            setattr(self, f"weight_hr{name}", _uniform((self.proj_size, self.hidden_size), bound, dtype, device))

    @property
    def _extra_weights(self):
        return ("weight_hr",) if self.proj_size else ()

    def _step(self, x, state, weights):
        if not self.proj_size:
            return self._cell(x, state, weights)
        h, c = self._cell(x, state, weights[:-1])
        with name_scope("projection"):  # h = (o * tanh(c)) @ W_hr^T: a smaller h to feed back and out
            h = h @ weights[-1].T
        h.name = "h"
        return h, c

    def _cell(self, x, state, weights):
        """The unprojected step: (o * tanh(c), c)."""
        return (fused_lstm_step if self.fused else lstm_step)(x, *state, *weights)

    def _layer(self, weights, seq, state, batch_sizes):
        if not self.fused or self.proj_size or seq.ndim == 2:  # projected or packed: step by step
            return super()._layer(weights, seq, state, batch_sizes)
        w_ih, w_hh, b_ih, b_hh = weights
        h0, c0 = state
        c0.tag("highway")
        # one node: every step's input projection (one matmul), then the recurrence
        hs, h_n, c_n = projected_layer(FusedLSTMLayer, seq, w_ih, (b_ih, b_hh), h0, c0, w_hh)
        c_n.tag("highway")
        hs.name, c_n.name = "hs", "c"
        return hs, (h_n, c_n)

    def _pack(self, last):
        return last[0], last[1]

    def _unpack(self, hx):
        return _state_pair(type(self).__name__, hx)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.fused else ", fused=False")
