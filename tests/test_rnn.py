"""Recurrent cells and layers: against PyTorch to 1e-9 in float64, gradchecks, metadata, bad input, a learning test."""

import gc
import itertools

import numpy as np
import pytest

import tinygrad_lstm as tl
from tinygrad_lstm import nn
from tinygrad_lstm.nn import functional as F

STEPS, BATCH, INPUT, HIDDEN = 20, 3, 4, 5
TOL = 1e-9

# ---------------------------------------------------------------- helpers


def _ours_and_torch(torch, kind: str, device: str, layer: bool, **options):
    """The same module twice (ours in float64 on `device`, PyTorch's in float64), sharing PyTorch's weights."""
    base = kind.split("_")[0]
    ours_options, torch_options = dict(options), dict(options)
    if base == "rnn":
        ours_options["nonlinearity"] = torch_options["nonlinearity"] = kind.split("_")[1]
    if kind == "lstm_fused":
        ours_options["fused"] = True
    if kind == "lstm_composed":
        ours_options["fused"] = False
    name = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[base] + ("" if layer else "Cell")
    theirs = getattr(torch.nn, name)(INPUT, HIDDEN, **torch_options).double()
    ours = getattr(nn, name)(INPUT, HIDDEN, dtype=np.float64, device=device, **ours_options)
    ours.load_state_dict({key: value.detach().numpy() for key, value in theirs.state_dict().items()})
    return ours, theirs


def _pair(torch, data, device):
    """One array as a leaf on both sides."""
    return tl.Tensor(data, device=device, requires_grad=True), torch.tensor(data, requires_grad=True)


def _flatten_state(state):
    return list(state) if isinstance(state, tuple) else [state]


def _backward_both(torch, ours_outputs, torch_outputs, rng, device):
    """Backpropagate the same random upstream gradient through both sides."""
    ours_total = tl.zeros((), dtype=np.float64, device=device)
    torch_total = 0
    for o, t in zip(ours_outputs, torch_outputs, strict=True):
        u = rng.standard_normal(o.shape)
        ours_total = ours_total + (o * tl.Tensor(u, device=device)).sum()
        torch_total = torch_total + (t * torch.tensor(u)).sum()
    ours_total.backward()
    torch_total.backward()


def _assert_close(ours, theirs, what):
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=0, atol=TOL, err_msg=what)


def _assert_parameter_grads(ours, theirs):
    ours_params, torch_params = dict(ours.named_parameters()), dict(theirs.named_parameters())
    assert ours_params.keys() == torch_params.keys()
    for name, p in ours_params.items():
        _assert_close(p.grad, torch_params[name].grad, f"gradient of {name}")


# ---------------------------------------------------------------- against PyTorch

CELL_KINDS = ["rnn_tanh", "rnn_relu", "lstm_composed", "lstm_fused", "gru"]


@pytest.mark.parametrize("kind", CELL_KINDS)
@pytest.mark.parametrize("bias, give_state, batched",
                         [(True, True, True), (True, False, True), (False, True, True), (True, True, False),
                          (False, False, False)])
def test_cell_matches_torch_through_many_steps(device, torch, kind, bias, give_state, batched):
    """A cell unrolled by hand for 20 steps: every output, and the gradient of x, the initial state, every weight."""
    rng = np.random.default_rng(0)
    ours, theirs = _ours_and_torch(torch, kind, device, layer=False, bias=bias)
    lstm = kind.startswith("lstm")
    x, tx = _pair(torch, rng.standard_normal((STEPS, BATCH, INPUT) if batched else (STEPS, INPUT)), device)
    state_shape = (BATCH, HIDDEN) if batched else (HIDDEN,)
    states = [_pair(torch, rng.standard_normal(state_shape), device) for _ in range(2 if lstm else 1)]
    state = (tuple(s for s, _ in states) if lstm else states[0][0]) if give_state else None
    torch_state = (tuple(t for _, t in states) if lstm else states[0][1]) if give_state else None
    ours_outputs, torch_outputs = [], []
    for t in range(STEPS):
        state, torch_state = ours(x[t], state), theirs(tx[t], torch_state)
        ours_outputs += _flatten_state(state)
        torch_outputs += _flatten_state(torch_state)
    for o, t in zip(ours_outputs, torch_outputs, strict=True):
        _assert_close(o, t, "output")
    _assert_gradients_match(torch, ours, theirs, ours_outputs, torch_outputs, x, tx, states if give_state else [],
                            rng, device)


def _assert_gradients_match(torch, ours, theirs, ours_outputs, torch_outputs, x, tx, states, rng, device):
    """Backward through both with one random upstream gradient; compare input, state and parameter gradients."""
    _backward_both(torch, ours_outputs, torch_outputs, rng, device)
    _assert_close(x.grad, tx.grad, "gradient of x")
    for s, t in states:
        _assert_close(s.grad, t.grad, "gradient of the initial state")
    _assert_parameter_grads(ours, theirs)


LAYER_KINDS = ["rnn_tanh", "rnn_relu", "lstm_fused", "lstm_composed", "gru"]
LAYER_CONFIGS = list(itertools.product([1, 2], [False, True], [False, True], [True, False]))


@pytest.mark.parametrize("kind", LAYER_KINDS)
@pytest.mark.parametrize("num_layers, batch_first, give_state, bias", LAYER_CONFIGS)
def test_layer_matches_torch(device, torch, kind, num_layers, batch_first, give_state, bias):
    rng = np.random.default_rng(1)
    ours, theirs = _ours_and_torch(torch, kind, device, layer=True, num_layers=num_layers, batch_first=batch_first,
                                   bias=bias)
    lstm = kind.startswith("lstm")
    x_shape = (BATCH, STEPS, INPUT) if batch_first else (STEPS, BATCH, INPUT)
    x, tx = _pair(torch, rng.standard_normal(x_shape), device)
    states = [_pair(torch, rng.standard_normal((num_layers, BATCH, HIDDEN)), device) for _ in range(2 if lstm else 1)]
    hx = (tuple(s for s, _ in states) if lstm else states[0][0]) if give_state else None
    torch_hx = (tuple(t for _, t in states) if lstm else states[0][1]) if give_state else None
    output, state = ours(x, hx)
    torch_output, torch_state = theirs(tx, torch_hx)
    assert output.shape == tuple(torch_output.shape)
    ours_outputs = [output] + _flatten_state(state)
    torch_outputs = [torch_output] + _flatten_state(torch_state)
    for o, t in zip(ours_outputs, torch_outputs, strict=True):
        assert o.shape == tuple(t.shape)
        _assert_close(o, t, "output")
    _assert_gradients_match(torch, ours, theirs, ours_outputs, torch_outputs, x, tx, states if give_state else [],
                            rng, device)


@pytest.mark.parametrize("kind", LAYER_KINDS)
def test_unbatched_layer_matches_torch(device, torch, kind):
    rng = np.random.default_rng(2)
    ours, theirs = _ours_and_torch(torch, kind, device, layer=True, num_layers=2)
    lstm = kind.startswith("lstm")
    x, tx = _pair(torch, rng.standard_normal((STEPS, INPUT)), device)
    states = [_pair(torch, rng.standard_normal((2, HIDDEN)), device) for _ in range(2 if lstm else 1)]
    hx = tuple(s for s, _ in states) if lstm else states[0][0]
    torch_hx = tuple(t for _, t in states) if lstm else states[0][1]
    (output, state), (torch_output, torch_state) = ours(x, hx), theirs(tx, torch_hx)
    ours_outputs, torch_outputs = [output] + _flatten_state(state), [torch_output] + _flatten_state(torch_state)
    for o, t in zip(ours_outputs, torch_outputs, strict=True):
        assert o.shape == tuple(t.shape)
        _assert_close(o, t, "output")
    _backward_both(torch, ours_outputs, torch_outputs, rng, device)
    _assert_close(x.grad, tx.grad, "gradient of x")
    for s, t in states:
        _assert_close(s.grad, t.grad, "gradient of the initial state")
    _assert_parameter_grads(ours, theirs)


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm_fused", "gru"])
@pytest.mark.parametrize("bias", [True, False])
def test_state_dict_round_trips_with_torch(torch, kind, bias):
    """Our state_dict loads unchanged into PyTorch's module of the same configuration, and back."""
    base = kind.split("_")[0]
    name = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[base]
    tl.manual_seed(3)
    ours = getattr(nn, name)(INPUT, HIDDEN, num_layers=2, bias=bias)
    theirs = getattr(torch.nn, name)(INPUT, HIDDEN, num_layers=2, bias=bias)
    theirs.load_state_dict({key: torch.tensor(value.numpy()) for key, value in ours.state_dict().items()})
    x = np.random.default_rng(3).standard_normal((STEPS, BATCH, INPUT)).astype(np.float32)
    np.testing.assert_allclose(ours(tl.Tensor(x))[0].detach().numpy(), theirs(torch.tensor(x))[0].detach().numpy(),
                               atol=1e-5)
    back = getattr(nn, name)(INPUT, HIDDEN, num_layers=2, bias=bias)
    back.load_state_dict({key: value.detach().numpy() for key, value in theirs.state_dict().items()})
    for key, value in back.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), ours.state_dict()[key].numpy())


def test_parameter_names_shapes_and_initialisation(torch):
    ours, theirs = nn.GRU(INPUT, HIDDEN, num_layers=2), torch.nn.GRU(INPUT, HIDDEN, num_layers=2)
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == \
        [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()]
    lstm = nn.LSTM(3, 100)
    bound = 1 / np.sqrt(100)
    for p in lstm.parameters():
        values = p.detach().numpy()
        assert p.dtype == np.float32 and values.min() >= -bound and values.max() <= bound
        assert values.max() - values.min() > 1.8 * bound  # spread over the whole interval, not a constant


# ---------------------------------------------------------------- gradchecks (no PyTorch needed)


@pytest.mark.parametrize("kind", CELL_KINDS)
def test_cell_gradcheck(device, kind):
    rng = np.random.default_rng(4)
    tl.manual_seed(4)
    lstm = kind.startswith("lstm")
    cell = {"rnn": lambda: nn.RNNCell(2, 2, nonlinearity=kind.split("_")[-1], dtype=np.float64, device=device),
            "lstm": lambda: nn.LSTMCell(2, 2, fused=kind == "lstm_fused", dtype=np.float64, device=device),
            "gru": lambda: nn.GRUCell(2, 2, dtype=np.float64, device=device)}[kind.split("_")[0]]()
    x = tl.Tensor(rng.standard_normal((2, 2, 2)), device=device, requires_grad=True)
    states = [tl.Tensor(rng.standard_normal((2, 2)), device=device, requires_grad=True) for _ in range(1 + lstm)]

    def two_steps(x, *states_and_parameters):
        state = tuple(states_and_parameters[: 1 + lstm]) if lstm else states_and_parameters[0]
        outputs = []
        for t in range(2):
            state = cell(x[t], state)
            outputs += _flatten_state(state)
        return tuple(outputs)

    assert tl.gradcheck(two_steps, [x, *states, *cell.parameters()], atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("kind", LAYER_KINDS)
def test_layer_gradcheck(device, kind):
    rng = np.random.default_rng(5)
    tl.manual_seed(5)
    base = kind.split("_")[0]
    options = {"rnn": {"nonlinearity": kind.split("_")[-1]}, "lstm": {"fused": kind == "lstm_fused"}, "gru": {}}[base]
    layer = getattr(nn, {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[base])(2, 2, num_layers=2, batch_first=True,
                                                                           dtype=np.float64, device=device, **options)
    x = tl.Tensor(rng.standard_normal((2, 3, 2)), device=device, requires_grad=True)

    def run(x, *parameters):
        output, state = layer(x)
        return (output, *_flatten_state(state))

    assert tl.gradcheck(run, [x, *layer.parameters()], atol=1e-7, rtol=1e-5)


# ---------------------------------------------------------------- what the graph renderer reads


def _scopes(*roots):
    return {op.scope for op in tl.walk_graph(*roots).ops}


def test_lstm_cell_scopes_names_and_highway():
    cell = nn.LSTMCell(3, 4)
    h, c = cell(tl.randn(2, 3))
    gates = ["forget gate", "input gate", "candidate", "cell state", "output gate"]
    assert {f"step 1/{gate}" for gate in gates} <= _scopes(h, c)
    assert (h.name, c.name) == ("h", "c") and "highway" in c.tags and "highway" not in h.tags
    tensors = {t.name: t for t in tl.walk_graph(h, c).tensors if t.name}
    assert "highway" in tensors["c0"].tags and "h0" in tensors
    c_prev = tl.randn(2, 4)
    _, c_next = cell(tl.randn(2, 3), (h, c_prev))
    assert "highway" in c_prev.tags and "highway" in c_next.tags


@pytest.mark.parametrize("make", [lambda: nn.LSTMCell(3, 4), lambda: nn.LSTMCell(3, 4, fused=True),
                                  lambda: nn.GRUCell(3, 4), lambda: nn.RNNCell(3, 4)])
def test_a_loop_over_a_cell_is_numbered_one_scope_per_call(make):
    """A user's own loop gets "step 1", "step 2", ... along the state, and a detached state starts again at 1."""
    cell, state = make(), None
    for _ in range(3):
        state = cell(tl.randn(2, 3), state)
    h = state[0] if isinstance(state, tuple) else state
    assert {scope.split("/")[0] for scope in _scopes(h)} == {"step 1", "step 2", "step 3"}
    detached = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
    again = cell(tl.randn(2, 3), detached)
    again = again[0] if isinstance(again, tuple) else again
    assert {scope.split("/")[0] for scope in _scopes(again)} == {"step 1"}
    unbatched = cell(tl.randn(3), None)
    unbatched = unbatched[0] if isinstance(unbatched, tuple) else unbatched
    follow = cell(tl.randn(3), unbatched if not isinstance(state, tuple) else (unbatched, unbatched))
    follow = follow[0] if isinstance(follow, tuple) else follow
    assert "step 2" in {scope.split("/")[0] for scope in _scopes(follow)}


def test_composed_layer_scopes_per_layer_step_and_gate():
    lstm = nn.LSTM(3, 4, num_layers=2, fused=False)
    output, (h_n, c_n) = lstm(tl.randn(5, 2, 3))
    scopes = _scopes(output, h_n, c_n)
    for k, t in itertools.product(range(2), range(1, 6)):
        assert f"layer {k}/step {t}/cell state" in scopes
        assert f"layer {k}/step {t}/forget gate" in scopes
    single = nn.LSTM(3, 4, fused=False)
    assert {"step 1/output gate", "step 5/output gate"} <= _scopes(single(tl.randn(5, 2, 3))[0])


def test_fused_layer_is_one_node_per_layer_on_the_highway():
    output, (h_n, c_n) = nn.LSTM(3, 4, num_layers=2)(tl.randn(5, 2, 3))
    view = tl.walk_graph(output, c_n)
    assert [op.op for op in view.ops].count("FusedLSTMLayer") == 2
    assert not any(op.op == "FusedLSTMCell" for op in view.ops)
    cells = [t for t in view.tensors if t.name == "c"]
    assert len(cells) == 2 and all("highway" in t.tags for t in cells)
    assert sum("highway" in t.tags and t.name == "c0" for t in view.tensors) == 2


def test_gru_tags_its_hidden_state_and_rnn_tags_nothing():
    h = nn.GRUCell(3, 4)(tl.randn(2, 3))
    assert "highway" in h.tags and h.name == "h"
    assert {f"step 1/{gate}" for gate in ("reset gate", "update gate", "candidate", "hidden state")} <= _scopes(h)
    h = nn.RNNCell(3, 4)(tl.randn(2, 3))
    assert not any("highway" in t.tags for t in tl.walk_graph(h).tensors)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("make, args, error, message", [
    (lambda: nn.LSTMCell(5, 4), (tl.randn(3, 7),), ValueError,
     "input has 7 features (shape (3, 7)) but input_size is 5"),
    (lambda: nn.GRUCell(5, 4), (tl.randn(3, 5), tl.randn(2, 4)), ValueError,
     "state h has shape (2, 4), expected (3, 4)"),
    (lambda: nn.LSTMCell(5, 4), (tl.randn(3, 5), (tl.randn(3, 4), tl.randn(3, 6))), ValueError,
     "state c has shape (3, 6), expected (3, 4)"),
    (lambda: nn.RNNCell(5, 4), (tl.randn(5), tl.randn(1, 4)), ValueError,
     "state h has shape (1, 4), expected (4,)"),
    (lambda: nn.RNNCell(5, 4), (tl.randn(2, 3, 5),), ValueError, "got shape (2, 3, 5)"),
    (lambda: nn.LSTMCell(5, 4), (tl.randn(3, 5), tl.randn(3, 4)), TypeError, "hx must be a tuple (h, c)"),
    (lambda: nn.LSTMCell(5, 4), (tl.randn(3, 5, dtype=np.float64),), TypeError,
     "input has dtype float64 but the parameters have dtype float32"),
    (lambda: nn.LSTM(5, 4), (tl.randn(6, 3, 7),), ValueError,
     "input has 7 features (shape (6, 3, 7)) but input_size is 5"),
    (lambda: nn.GRU(5, 4, num_layers=2), (tl.randn(6, 3, 5), tl.randn(1, 3, 4)), ValueError,
     "initial state h0 has shape (1, 3, 4), expected (2, 3, 4)"),
    (lambda: nn.LSTM(5, 4, batch_first=True), (tl.randn(3, 6, 5), (tl.randn(1, 6, 4), tl.randn(1, 3, 4))), ValueError,
     "initial state h0 has shape (1, 6, 4), expected (1, 3, 4)"),
    (lambda: nn.RNN(5, 4), (tl.randn(6, 5), tl.randn(1, 3, 4)), ValueError,
     "initial state h0 has shape (1, 3, 4), expected (1, 4)"),
    (lambda: nn.RNN(5, 4), (tl.randn(0, 3, 5),), ValueError, "the input sequence is empty"),
    (lambda: nn.RNN(5, 4), (np.zeros((6, 3, 5), dtype=np.float32),), TypeError, "input must be a Tensor"),
])
def test_bad_input_is_named(make, args, error, message):
    with pytest.raises(error) as caught:
        make()(*args)
    assert message in str(caught.value)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(TypeError, match="pass nonlinearity= by keyword"):
        nn.RNN(3, 4, 1, "relu")
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        nn.LSTMCell(3, 0)


def test_repr():
    assert repr(nn.LSTM(3, 4, num_layers=2, batch_first=True)) == "LSTM(3, 4, num_layers=2, batch_first=True)"
    assert repr(nn.RNNCell(3, 4, bias=False, nonlinearity="relu")) == "RNNCell(3, 4, bias=False, nonlinearity=relu)"


# ---------------------------------------------------------------- training behaviour


def test_truncated_bptt_stops_at_the_detached_state():
    """Carrying detached state between chunks: each chunk's gradient is that of the chunk alone."""
    rng = np.random.default_rng(6)
    tl.manual_seed(6)
    lstm = nn.LSTM(3, 4, dtype=np.float64)
    chunks = [tl.Tensor(rng.standard_normal((5, 2, 3)), requires_grad=True) for _ in range(3)]
    state, first_chunk_grad = None, None
    for chunk in chunks:
        start = None if state is None else tuple(s.detach() for s in state)
        output, state = lstm(chunk, start)
        lstm.zero_grad()
        output.sum().backward()
        carried = [p.grad.numpy().copy() for p in lstm.parameters()]
        lstm.zero_grad()
        fresh_start = None if start is None else tuple(tl.Tensor(s.numpy()) for s in start)
        lstm(tl.Tensor(chunk.detach().numpy()), fresh_start)[0].sum().backward()
        for a, p in zip(carried, lstm.parameters(), strict=True):
            np.testing.assert_allclose(a, p.grad.numpy(), rtol=1e-12)
        first_chunk_grad = chunks[0].grad.numpy().copy() if first_chunk_grad is None else first_chunk_grad
    np.testing.assert_array_equal(chunks[0].grad.numpy(), first_chunk_grad)  # later backwards never reached it


def _live_graph_objects() -> int:
    """Tensors and graph nodes alive now (type() rather than isinstance: no lazy module attribute gets touched)."""
    gc.collect()
    return sum(issubclass(type(o), tl.Tensor | tl.Function) for o in gc.get_objects())


def test_memory_does_not_grow_across_training_iterations():
    tl.manual_seed(7)
    rng = np.random.default_rng(7)
    lstm, readout = nn.LSTM(3, 8, num_layers=2), nn.Linear(8, 1)
    optimizer = nn.optim.SGD(list(lstm.parameters()) + list(readout.parameters()), lr=0.01)
    state, counts = None, []
    for iteration in range(30):
        output, state = lstm(tl.Tensor(rng.standard_normal((10, 4, 3)).astype(np.float32)), state)
        state = tuple(s.detach() for s in state)
        loss = F.mse_loss(readout(output), tl.zeros(10, 4, 1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if iteration in (4, 29):
            counts.append(_live_graph_objects())
    assert counts[1] <= counts[0], counts


def _recall_first_sign(rng, batch: int, steps: int) -> tuple[tl.Tensor, tl.Tensor]:
    """Channel 0 holds the label's sign at step 0 and nothing after; channel 1 is noise at every step."""
    x = np.zeros((steps, batch, 2), dtype=np.float32)
    label = rng.integers(0, 2, batch)
    x[0, :, 0] = 2.0 * label - 1.0
    x[:, :, 1] = 0.5 * rng.standard_normal((steps, batch))
    return tl.Tensor(x), tl.Tensor(label.astype(np.float32))


def _accuracy_after_training(kind: str, steps: int = 40, iterations: int = 120, hidden: int = 16) -> float:
    tl.manual_seed(0)
    rng = np.random.default_rng(0)
    model = nn.LSTM(2, hidden) if kind == "lstm" else nn.RNN(2, hidden)
    if kind == "lstm":  # the usual forget-gate bias: start by remembering (Jozefowicz et al., 2015)
        with tl.no_grad():
            model.bias_hh_l0.array[hidden : 2 * hidden] = 3.0
    readout = nn.Linear(hidden, 1)
    optimizer = nn.optim.Adam(list(model.parameters()) + list(readout.parameters()), lr=0.01)

    def logits(x):
        _, state = model(x)
        return readout((state[0] if kind == "lstm" else state)[-1]).reshape(-1)

    for _ in range(iterations):
        x, label = _recall_first_sign(rng, 128, steps)
        loss = F.binary_cross_entropy_with_logits(logits(x), label)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    x, label = _recall_first_sign(rng, 1000, steps)
    with tl.no_grad():
        return float(((logits(x).numpy() > 0) == (label.numpy() > 0.5)).mean())


def test_lstm_remembers_across_40_noisy_steps_where_an_rnn_does_not():
    """Same data, optimizer and budget: the LSTM recalls the first input's sign, the plain RNN stays at chance."""
    assert _accuracy_after_training("lstm") > 0.95
    assert _accuracy_after_training("rnn") < 0.6
