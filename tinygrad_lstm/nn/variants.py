"""The classic LSTM variants the article ends on ("other modified networks based on LSTM"), as options of one cell.

    variant     what changes                                         reference
    "vanilla"   nothing: the plain LSTM (no peepholes), = nn.LSTMCell
    "peephole"  the gates also see the cell: i, f from c_prev, o from c   Gers & Schmidhuber 2000
    "cifg"      coupled input-forget gate: i = 1 - f                  Greff et al. 2015 (as in the GRU)
    "nfg"       no forget gate: f = 1 (the 1997 original LSTM)        Hochreiter & Schmidhuber 1997
    "nig"       no input gate: i = 1
    "nog"       no output gate: o = 1
    "noaf"      no output activation: h = o * c                      Greff et al. 2015

`peephole=True` adds peepholes to any of them ("peephole" is "vanilla" with them). The weights stack
only the gates a variant keeps, in PyTorch's row order i, f, g, o (CIFG's weight_ih is (3H, input):
rows f, g, o); peephole weights are vectors weight_ci, weight_cf, weight_co (H,), one per gate kept.
The GRU, the other common relative, is `nn.GRU`.

Composed (fused=False), each gate is a name scope as in `nn.LSTMCell` (a missing gate has none; the
coupled input gate is its `1 - f`), so `tinygrad-lstm graph` draws the difference. Fused, a cell step
is one node (`nn.variant_math.fused_variant_cell`) and a layer one node (`fused_variant_layer`; one per
step when projected or packed), with the same values and gradients.
"""

from __future__ import annotations

import math

from ..tensor import Tensor, name_scope
from .fused import input_projection
from .module import Module
from .rnn import (
    LSTM,
    _affine,
    _call_scope,
    _Cell,
    _mark_lstm_state,
    _pieces,
    _Recurrent,
    _state_pair,
    _unbatched,
    _uniform,
)
from .variant_math import check_variant, fused_variant_cell, fused_variant_layer, peephole_gates

VARIANTS: dict[str, dict] = {
    "vanilla": {"gates": "ifgo"},
    "peephole": {"gates": "ifgo", "peephole": True},
    "cifg": {"gates": "fgo", "coupled": True},
    "nfg": {"gates": "igo"},
    "nig": {"gates": "fgo"},
    "nog": {"gates": "ifg"},
    "noaf": {"gates": "ifgo", "squash": False},
}
"""Each variant's gates kept (in the order i, f, g, o), whether i = 1 - f, whether it has peepholes, and whether
h squashes the cell (h = o * tanh(c), or o * c)."""


def variant_config(who: str, variant: str, peephole: bool) -> dict:
    """The named variant's gates, coupling and peepholes (peephole=True adds peepholes to any variant)."""
    if variant not in VARIANTS:
        raise ValueError(f"{who}: variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    if not isinstance(peephole, bool):
        raise TypeError(f"{who}: peephole must be True or False, got {peephole!r}")
    config = {"gates": "ifgo", "coupled": False, "peephole": False, "squash": True, **VARIANTS[variant]}
    config["peephole"] = config["peephole"] or peephole
    check_variant(config["gates"], config["coupled"])
    return config


# ---------------------------------------------------------------- one step, composed and fused


def variant_lstm_step(x: Tensor, h_prev: Tensor, c_prev: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
                      b_hh: Tensor | None, *peepholes: Tensor, gates: str = "ifgo", coupled: bool = False,
                      squash: bool = True) -> tuple[Tensor, Tensor]:
    """One step of a variant from primitive ops, gate by gate; `peepholes` are the weights of `peephole_gates`."""
    n = len(gates)
    w_i = dict(zip(gates, w_ih.chunk(n), strict=True))
    w_h = dict(zip(gates, w_hh.chunk(n), strict=True))
    b_i = dict(zip(gates, _pieces(b_ih, n), strict=True))
    b_h = dict(zip(gates, _pieces(b_hh, n), strict=True))
    peep = dict(zip(peephole_gates(gates), peepholes, strict=False))
    c_prev.tag("highway")

    def gate(k: str, cell: Tensor | None = None) -> Tensor:
        z = _affine(x, w_i[k], b_i[k]) + _affine(h_prev, w_h[k], b_h[k])
        return z if k not in peep else z + peep[k] * cell  # a peephole: the gate looks at the cell

    f = i = None  # an absent gate is 1: nothing multiplies
    if "f" in gates:
        with name_scope("forget gate"):  # how much of the old cell state to keep
            f = gate("f", c_prev).sigmoid()
    if "i" in gates:
        with name_scope("input gate"):  # how much of the candidate to write
            i = gate("i", c_prev).sigmoid()
    elif coupled and f is not None:  # a coupled input gate needs the forget gate (the config says so)
        with name_scope("input gate"):  # coupled: write exactly as much as was forgotten
            i = 1 - f
    with name_scope("candidate"):  # what could be written
        g = gate("g").tanh()
    with name_scope("cell state"):  # the highway: forget some, add some
        c = (c_prev if f is None else f * c_prev) + (g if i is None else i * g)
    with name_scope("output gate" if "o" in gates else "output"):  # what of the squashed cell state to show
        h = c.tanh() if squash else c
        if "o" in gates:
            h = gate("o", c).sigmoid() * h
    return _mark_lstm_state(h, c)


def fused_variant_step(x: Tensor, h_prev: Tensor, c_prev: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
                       b_hh: Tensor | None, *peepholes: Tensor, gates: str = "ifgo", coupled: bool = False,
                       squash: bool = True) -> tuple[Tensor, Tensor]:
    """`variant_lstm_step` as one fused node (plus the input projection; w_ih None: x is that projection)."""
    c_prev.tag("highway")
    xw = x if w_ih is None else input_projection(x, w_ih, b_ih, b_hh)
    return _mark_lstm_state(*fused_variant_cell(xw, h_prev, c_prev, w_hh, *peepholes, gates=gates, coupled=coupled,
                                                squash=squash))


# ---------------------------------------------------------------- the cell and the sequence layer


class LSTMVariantCell(_Cell):
    """One LSTM variant's cell (see the module's table). forward(x, hx=None) -> (h, c), as nn.LSTMCell.

    variant="vanilla" with peephole=False has nn.LSTMCell's parameters and values exactly.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, variant: str = "vanilla", *,
                 peephole: bool = False, fused: bool = False, dtype=None, device: str | None = None):
        # set before Module.__init__ (bypassing its attribute bookkeeping): the parameters' shapes depend on it
        self.__dict__["config"] = variant_config(type(self).__name__, variant, peephole)
        super().__init__(input_size, hidden_size, bias, dtype=dtype, device=device)
        self.variant, self.fused = variant, fused
        for k in _peepholes(self):
            setattr(self, f"weight_c{k}", _uniform((hidden_size,), 1 / math.sqrt(hidden_size), dtype, device))

    @property
    def gates(self) -> int:  # type: ignore[override]  # the base's class constant is per instance here
        return len(self.config["gates"])

    def _weights(self) -> tuple:
        return (*super()._weights(), *(getattr(self, f"weight_c{k}") for k in _peepholes(self)))

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor]:
        x, batched = self._batched(x)
        h, c = _state_pair(type(self).__name__, hx)
        with _call_scope(h):
            h, c = self._state(h, "h", x, batched), self._state(c, "c", x, batched)
            step = fused_variant_step if self.fused else variant_lstm_step
            h, c = step(x, h, c, *self._weights(), **_step_options(self))
            return (h, c) if batched else (_unbatched(h), _unbatched(c))

    def extra_repr(self) -> str:
        return super().extra_repr() + _variant_repr(self) + (", fused=True" if self.fused else "")


class LSTMVariant(LSTM):
    """A sequence layer of one LSTM variant, with every nn.LSTM option (layers, bidirectional, dropout,
    proj_size, packed sequences). Parameters as nn.LSTM's plus weight_ci_l0, ... with peepholes.

    fused=True (the default) runs the layer as one fused variant node (one per step when projected or
    packed with unequal lengths); fused=False composes every step.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 *, variant: str = "vanilla", peephole: bool = False, fused: bool = True, dtype=None,
                 device: str | None = None):
        # set before Module.__init__ (bypassing its attribute bookkeeping): the parameters' shapes depend on it
        self.__dict__["config"] = variant_config(type(self).__name__, variant, peephole)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, proj_size,
                         fused=fused, dtype=dtype, device=device)
        self.variant = variant

    @property
    def gates(self) -> int:  # type: ignore[override]  # the base's class constant is per instance here
        return len(self.config["gates"])

    def _make_parameters(self, name, columns, bound, dtype, device):
        super()._make_parameters(name, columns, bound, dtype, device)
        for k in _peepholes(self):
            setattr(self, f"weight_c{k}{name}", _uniform((self.hidden_size,), bound, dtype, device))

    @property
    def _extra_weights(self):
        return (*(f"weight_c{k}" for k in _peepholes(self)), *super()._extra_weights)

    def _cell(self, x, state, weights):
        step = fused_variant_step if self.fused else variant_lstm_step
        return step(x, *state, *weights, **_step_options(self))

    def _layer(self, weights, seq, state, batch_sizes):
        """Fused: one node for the layer (`fused_variant_layer`), or, projected or packed, one per step."""
        if not self.fused:
            return _Recurrent._layer(self, weights, seq, state, batch_sizes)
        w_ih, w_hh, b_ih, b_hh, *rest = weights
        xw = input_projection(seq, w_ih, b_ih, b_hh)  # every step's input projection in one matmul
        if self.proj_size or seq.ndim == 2:  # the steps get w_ih None: their x is projected
            return _Recurrent._layer(self, (None, w_hh, None, None, *rest), xw, state, batch_sizes)
        h0, c0 = state
        c0.tag("highway")
        hs, c = fused_variant_layer(xw, h0, c0, w_hh, *rest, **_step_options(self))
        c.tag("highway")
        hs.name, c.name = "hs", "c"
        return hs, (hs[-1:], c.reshape(1, *c.shape))

    def extra_repr(self) -> str:
        return super().extra_repr() + _variant_repr(self)


def _peepholes(module: Module) -> str:
    """The gates with a peephole weight (weight_ci, weight_cf, weight_co), none without peepholes."""
    return peephole_gates(module.config["gates"]) if module.config["peephole"] else ""


def _step_options(module: Module) -> dict:
    return {key: module.config[key] for key in ("gates", "coupled", "squash")}


def _variant_repr(module: Module) -> str:
    return f", variant={module.variant!r}" + (", peephole=True" if module.config["peephole"]
                                               and module.variant != "peephole" else "")
