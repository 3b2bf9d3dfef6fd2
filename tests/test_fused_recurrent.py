"""The fused GRU and Elman RNN layers (`fused_gru`, `fused_rnn`, nn.GRU/nn.RNN's default), the composed cells'
fewer nodes, bounded backward memory of a cell loop, and the BLAS thread choice of the recurrent loops."""

import gc
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recurrent_checks import assert_fused_equals_composed

import tinygrad_lstm as tl
from tinygrad_lstm import nn
from tinygrad_lstm.nn import fused_gru, fused_rnn
from tinygrad_lstm.nn.threads import PARALLEL_WORK, blas_threads

TOL = 1e-9


def _tensor(rng, shape, device, requires_grad=True):
    return tl.Tensor(rng.standard_normal(shape), dtype=np.float64, device=device, requires_grad=requires_grad)


# ---------------------------------------------------------------- the ops alone


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("grad_of", ["all", "xw only"])
def test_fused_gru_gradcheck(device, bias, grad_of):
    rng = np.random.default_rng(0)
    steps, batch, hidden = 3, 2, 2
    inputs = [_tensor(rng, (steps, batch, 3 * hidden), device), _tensor(rng, (batch, hidden), device),
              _tensor(rng, (3 * hidden, hidden), device)] + ([_tensor(rng, (3 * hidden,), device)] if bias else [])
    if grad_of == "xw only":
        for t in inputs[1:]:
            t.requires_grad_(False)
    assert tl.gradcheck(fused_gru, inputs, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("steps", [1, 4])
def test_fused_rnn_gradcheck(device, nonlinearity, steps):
    rng = np.random.default_rng(1)
    batch, hidden = 2, 3
    inputs = [_tensor(rng, (steps, batch, hidden), device), _tensor(rng, (batch, hidden), device),
              _tensor(rng, (hidden, hidden), device)]
    assert tl.gradcheck(lambda *a: fused_rnn(*a, nonlinearity=nonlinearity), inputs, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("op, gates", [(fused_gru, 3), (fused_rnn, 1)])
def test_overwrite_xw_only_when_asked(device, op, gates):
    rng = np.random.default_rng(2)
    xw, h0, w_hh = (_tensor(rng, s, device) for s in ((3, 2, gates * 2), (2, 2), (gates * 2, 2)))
    before = xw.detach().numpy().copy()
    kept = op(xw, h0, w_hh)
    np.testing.assert_array_equal(xw.detach().numpy(), before)
    reused = op(tl.Tensor(before, device=device, requires_grad=True), h0, w_hh, overwrite_xw=True)
    np.testing.assert_array_equal(kept.detach().numpy(), reused.detach().numpy())


@pytest.mark.parametrize("call, message", [
    (lambda: fused_gru(tl.zeros(3, 2, 7), tl.zeros(2, 2), tl.zeros(6, 2)),
     "fused_gru: xw has shape (3, 2, 7), expected (T, B, 3H) with 3H = 6"),
    (lambda: fused_gru(tl.zeros(3, 2, 6), tl.zeros(2, 2), tl.zeros(6, 2), tl.zeros(5)),
     "fused_gru: b_hh has shape (5,), expected (3H,) = (6,)"),
    (lambda: fused_gru(tl.zeros(3, 2, 6), tl.zeros(3, 2), tl.zeros(6, 2)),
     "fused_gru: h0 has shape (3, 2), expected (B, H) = (2, 2)"),
    (lambda: fused_rnn(tl.zeros(3, 2, 2), tl.zeros(2, 2), tl.zeros(4, 2)),
     "fused_rnn: w_hh must have shape (H, H), got (4, 2)"),
    (lambda: fused_rnn(tl.zeros(3, 2, 2), tl.zeros(2, 2), tl.zeros(2, 2), nonlinearity="sigmoid"),
     "fused_rnn: nonlinearity must be 'tanh' or 'relu', got 'sigmoid'"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value)


def test_bad_dtype_is_named():
    with pytest.raises(TypeError, match="fused_gru: b_hh has dtype float64 but w_hh has dtype float32"):
        fused_gru(tl.zeros(3, 2, 6), tl.zeros(2, 2), tl.zeros(6, 2), tl.zeros(6, dtype=np.float64))


# ---------------------------------------------------------------- the layers, against PyTorch and the composed path


def _layers(torch, kind, device, **options):
    """Our fused layer, our composed one and PyTorch's, sharing PyTorch's float64 weights."""
    name, extra = {"gru": ("GRU", {}), "rnn_tanh": ("RNN", {"nonlinearity": "tanh"}),
                   "rnn_relu": ("RNN", {"nonlinearity": "relu"}), "lstm": ("LSTM", {})}[kind]
    theirs = getattr(torch.nn, name)(3, 4, **options, **extra).double()
    state = {key: value.detach().numpy() for key, value in theirs.state_dict().items()}
    ours = []
    for fused in (True, False):
        model = getattr(nn, name)(3, 4, **options, **extra, fused=fused, dtype=np.float64, device=device)
        model.load_state_dict(state)
        ours.append(model)
    return ours, theirs


@pytest.mark.parametrize("kind", ["gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("bias, num_layers, batch_first, give_state",
                         [(True, 1, False, True), (False, 1, False, False), (True, 2, True, False),
                          (False, 2, False, True)])
def test_fused_and_composed_layers_equal_torch(device, torch, kind, bias, num_layers, batch_first, give_state):
    """Values and every gradient (input, initial state, each weight) under a random upstream gradient, 1e-9."""
    rng = np.random.default_rng(3)
    (fused, composed), theirs = _layers(torch, kind, device, bias=bias, num_layers=num_layers,
                                        batch_first=batch_first)
    x_data = rng.standard_normal((2, 6, 3) if batch_first else (6, 2, 3))
    h0_data = rng.standard_normal((num_layers, 2, 4))
    upstream = rng.standard_normal((2, 6, 4) if batch_first else (6, 2, 4)), rng.standard_normal((num_layers, 2, 4))
    tx = torch.tensor(x_data, requires_grad=True)
    th0 = torch.tensor(h0_data, requires_grad=True)
    t_out, t_h = theirs(tx, th0 if give_state else None)
    ((t_out * torch.tensor(upstream[0])).sum() + (t_h * torch.tensor(upstream[1])).sum()).backward()
    expected = [t_out, t_h, tx.grad] + ([th0.grad] if give_state else []) + [p.grad for p in theirs.parameters()]
    for model in (fused, composed):
        x = tl.Tensor(x_data, device=device, requires_grad=True)
        h0 = tl.Tensor(h0_data, device=device, requires_grad=True)
        out, h_n = model(x, h0 if give_state else None)
        ((out * tl.Tensor(upstream[0], device=device)).sum()
         + (h_n * tl.Tensor(upstream[1], device=device)).sum()).backward()
        got = [out, h_n, x.grad] + ([h0.grad] if give_state else []) + [p.grad for p in model.parameters()]
        assert len(got) == len(expected)
        for ours, reference in zip(got, expected, strict=True):
            np.testing.assert_allclose(ours.detach().numpy(), reference.detach().numpy(), rtol=0, atol=TOL)


@settings(max_examples=20, deadline=None)
@given(kind=st.sampled_from(["gru", "rnn_tanh", "rnn_relu"]), steps=st.integers(1, 5), batch=st.integers(1, 4),
       hidden=st.integers(1, 5), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_fused_equals_composed_for_random_shapes(kind, steps, batch, hidden, bias, seed):
    rng = np.random.default_rng(seed)
    make = nn.GRU if kind == "gru" else nn.RNN
    options = {} if kind == "gru" else {"nonlinearity": kind.split("_")[1]}
    fused = make(3, hidden, bias=bias, dtype=np.float64, **options)
    composed = make(3, hidden, bias=bias, fused=False, dtype=np.float64, **options)
    assert_fused_equals_composed(fused, composed, rng, steps, batch)


@pytest.mark.parametrize("make, op", [(lambda: nn.GRU(3, 4, num_layers=2), "FusedGRULayer"),
                                      (lambda: nn.RNN(3, 4, num_layers=2), "FusedRNNLayer")])
def test_fused_layers_are_one_node_per_layer(make, op):
    model = make()
    assert model.fused and "fused" not in repr(model)
    output, h_n = model(tl.randn(5, 2, 3))
    assert [o.op for o in tl.walk_graph(output, h_n).ops].count(op) == 2
    model.fused = False
    assert "fused=False" in repr(model)
    assert not any(o.op == op for o in tl.walk_graph(*model(tl.randn(5, 2, 3))).ops)


def test_fused_gru_keeps_the_highway_tags():
    output, _ = nn.GRU(3, 4)(tl.randn(5, 2, 3))
    view = tl.walk_graph(output)
    assert {"hs", "h0"} <= {t.name for t in view.tensors if "highway" in t.tags}


# ---------------------------------------------------------------- the composed cells: few nodes, bounded memory


@pytest.mark.parametrize("make, most, projections", [
    (lambda: nn.LSTMCell(3, 4), 10, {"GateInputs": 1}), (lambda: nn.LSTMCell(3, 4, bias=False), 10, {"GateInputs": 1}),
    (lambda: nn.RNNCell(3, 4), 2, {"GateInputs": 1}), (lambda: nn.GRUCell(3, 4), 15, {"Linear": 2})])
def test_composed_cell_step_projects_all_gates_at_once(make, most, projections):
    """A step computes every gate's input in one node (two for the GRU, whose reset gate scales h's part), not a
    matmul and a weight chunk per gate; no node transposes a weight."""
    cell = make()
    x, state = tl.randn(2, 3), cell(tl.randn(2, 3))  # the second step: its state comes from a graph
    out = cell(x, state)
    ops = [o.op for o in tl.walk_graph(*(out if isinstance(out, tuple) else (out,))).ops
           if o.scope.startswith("step 2")]
    assert len(ops) <= most
    assert {op: ops.count(op) for op in projections} == projections and "Transpose" not in ops


@pytest.mark.parametrize("bias", [True, False])
def test_gate_inputs_gradcheck(device, bias):
    from tinygrad_lstm.nn.rnn import _gate_inputs

    rng = np.random.default_rng(5)
    shapes = [(2, 3), (2, 4), (8, 3), (8, 4)] + ([(8,), (8,)] if bias else [None, None])
    inputs = [None if s is None else _tensor(rng, s, device) for s in shapes]
    assert tl.gradcheck(_gate_inputs, inputs, atol=1e-7, rtol=1e-5)
    # one output per gate (as LSTMCell uses it), two of the four gates reaching the loss: the others count as zeros
    upstream = [_tensor(rng, (2, 2), device) for _ in range(4)]

    def two_gates(*args):
        pieces = _gate_inputs(*args, gates=4)
        assert len(pieces) == 4 and all(p.shape == (2, 2) for p in pieces)
        return (pieces[1] * upstream[1]).sum() + (pieces[3] * upstream[3]).sum()

    assert tl.gradcheck(two_gates, inputs, atol=1e-7, rtol=1e-5)


def _backward_peak_over_forward(cell, x, steps: int) -> tuple[int, int]:
    """Bytes alive after the forward of a loop over `cell`, and the most the backward added on top."""
    gc.collect()
    tracemalloc.start()
    try:
        state, outputs = None, []
        for t in range(steps):
            state = cell(x[t], state)
            outputs.append(state[0] if isinstance(state, tuple) else state)
        loss = tl.stack(outputs).sum()
        forward, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        loss.backward()
        return forward, tracemalloc.get_traced_memory()[1] - forward
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("make", [lambda: nn.LSTMCell(32, 64), lambda: nn.GRUCell(32, 64)])
def test_a_cell_loop_backward_adds_little_memory(make):
    """Weight gradients accumulate as they arrive and each node's gradients go when it has run: the backward of a
    50-step loop peaks at a small part of what the forward keeps (it was a growing pile of per-gate pieces)."""
    x = tl.randn(50, 8, 32)
    forward, added = _backward_peak_over_forward(make(), x, 50)
    assert added < 0.25 * forward, (forward, added)


# ---------------------------------------------------------------- BLAS threads


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")


@pytest.mark.parametrize("busy", [False, True])
def test_blas_runs_on_one_thread_unless_matmuls_are_large_and_cores_free(monkeypatch, busy):
    from threadpoolctl import threadpool_limits

    from tinygrad_lstm.nn import threads

    monkeypatch.setattr(threads, "_busy", lambda: busy)
    with threadpool_limits(2, user_api="blas"):
        with blas_threads(np, PARALLEL_WORK - 1):
            assert _blas_threads() == 1
        assert _blas_threads() == 2
        with blas_threads(np, PARALLEL_WORK):
            assert _blas_threads() == (1 if busy else 2)


def test_a_small_layer_trains_on_one_blas_thread(monkeypatch):
    """The input projection, the loop and the weight gradients of nn.LSTM/GRU/RNN at a small size: all on one thread."""
    from threadpoolctl import threadpool_limits

    seen = []
    real_dot = np.dot

    def spying_dot(*args, **kwargs):
        seen.append(_blas_threads())
        return real_dot(*args, **kwargs)

    with threadpool_limits(2, user_api="blas"):
        for make in (nn.LSTM, nn.GRU, nn.RNN):
            layer, x = make(3, 4), tl.randn(5, 2, 3, requires_grad=True)
            monkeypatch.setattr(np, "dot", spying_dot)
            output, _ = layer(x)
            output.sum().backward()
            monkeypatch.setattr(np, "dot", real_dot)
    assert len(seen) > 30 and set(seen) == {1}


# ---------------------------------------------------------------- the benchmark's ceilings and the memory child


@pytest.mark.parametrize("kind", ["gru", "rnn"])
def test_benchmark_ceilings_compute_the_same_gradients(kind):
    """benchmarks/lstm.py compares nn.GRU / nn.RNN against hand-fused layers: they must compute the same."""
    from tinygrad_lstm.benchmarks.lstm import CEILINGS

    rng = np.random.default_rng(10)
    layer = (nn.GRU if kind == "gru" else nn.RNN)(3, 4, dtype=np.float64)
    x = tl.Tensor(rng.standard_normal((6, 2, 3)), requires_grad=True)
    output, _ = layer(x)
    output.sum().backward()
    weights = (p.detach().numpy() for p in layer.parameters())
    ceiling_output, grads = CEILINGS[kind](np, *weights).train_step(x.detach().numpy())
    np.testing.assert_allclose(ceiling_output, output.detach().numpy(), atol=1e-13)
    expected = {"x": x.grad, "weight_ih": layer.weight_ih_l0.grad, "weight_hh": layer.weight_hh_l0.grad}
    expected |= ({"bias_ih": layer.bias_ih_l0.grad, "bias_hh": layer.bias_hh_l0.grad} if kind == "gru"
                 else {"bias": layer.bias_ih_l0.grad})
    assert grads.keys() == expected.keys()
    for name, grad in expected.items():
        np.testing.assert_allclose(grads[name], grad.detach().numpy(), atol=1e-12, err_msg=name)


def test_benchmark_memory_runs_each_implementation_in_its_own_process(capsys):
    from tinygrad_lstm.benchmarks.lstm import _one_memory_measurement, main

    before, peak = _one_memory_measurement("cells", (2, 3, 4, 5))
    assert 0 < before <= peak
    assert main(["--memory-of", "fused cells", "--sizes", "2,3,4,5"]) == 0
    assert len(capsys.readouterr().out.split()) == 2


# ---------------------------------------------------------------- iterating a tensor (a user's loop over steps)


def test_iterating_unbinds_in_one_node(device, torch):
    """`for x_t in x` is one Unbind node (as PyTorch's), not one indexing node per step each returning a gradient
    of the whole x; values and gradients as PyTorch's, on any axis, with slices that got no gradient."""
    rng = np.random.default_rng(4)
    data, upstream = rng.standard_normal((4, 3, 2)), rng.standard_normal((3, 2))
    x, tx = tl.Tensor(data, device=device, requires_grad=True), torch.tensor(data, requires_grad=True)
    steps = list(x)
    assert len({id(t.grad_fn) for t in steps}) == 1 and steps[0].grad_fn.op == "Unbind"
    (steps[1] * tl.Tensor(upstream, device=device)).sum().backward()
    (list(tx)[1] * torch.tensor(upstream)).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), tx.grad.detach().numpy())
    for axis in (0, 1, 2, -1):
        assert tl.gradcheck(lambda a, axis=axis: tl.stack(a.unbind(axis)[::2], axis=0).tanh(), [x])
        for ours, theirs in zip(x.unbind(axis), tx.unbind(axis), strict=True):
            np.testing.assert_array_equal(ours.detach().numpy(), theirs.detach().numpy())
    assert list(tl.zeros(0, 2)) == [] and tl.zeros(0, 2).unbind(1) != ()


def test_benchmark_compares_default_and_one_blas_thread_in_one_run(capsys):
    from tinygrad_lstm.benchmarks.lstm import main

    assert main(["--sizes", "2,3,4,5", "--repeat", "1", "--cells", "rnn", "--threads", "both", "--no-loops"]) == 0
    out = capsys.readouterr().out
    assert "layer 1 thread" in out and "layer/1 thread" in out and "cells" not in out.replace("--cells", "")


# ---------------------------------------------------------------- a layer as one node (projection inside, h_n out)


LAYERS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("loss_on", ["h_n", "c_n", "output and h_n"])
def test_layer_node_gradients_from_its_final_states_alone(device, kind, loss_on):
    """The fused layer's node returns h_n (and c_n) itself: a loss on them alone (no gradient reaches the outputs)
    or on both gives the composed layer's gradients, float64, random upstream gradients."""
    if loss_on == "c_n" and kind != "lstm":
        pytest.skip("only the LSTM has a cell state")
    rng = np.random.default_rng(5)
    fused = LAYERS[kind](3, 4, num_layers=2, dtype=np.float64, device=device)
    composed = LAYERS[kind](3, 4, num_layers=2, fused=False, dtype=np.float64, device=device)
    composed.load_state_dict(fused.state_dict())
    x_data = rng.standard_normal((5, 2, 3))
    upstream = {name: rng.standard_normal(shape) for name, shape in
                (("output", (5, 2, 4)), ("h_n", (2, 2, 4)), ("c_n", (2, 2, 4)))}
    results = []
    for model in (fused, composed):
        x = tl.Tensor(x_data, device=device, requires_grad=True)
        output, state = model(x)
        h_n, c_n = state if kind == "lstm" else (state, None)
        outputs = {"output": output, "h_n": h_n, "c_n": c_n}
        loss = sum((outputs[name] * tl.Tensor(upstream[name], device=device)).sum()
                   for name in outputs if name in loss_on.split(" and "))
        loss.backward()
        results.append([x.grad.numpy()] + [p.grad.numpy() for p in model.parameters()])
    assert any(np.abs(g).sum() > 0 for g in results[0])
    for ours, reference in zip(*results, strict=True):
        np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", LAYERS)
def test_layer_node_refuses_an_input_weight_changed_before_backward(kind):
    """The node saved w_ih for the projection's gradient: changing it in place in between raises, as PyTorch."""
    model = LAYERS[kind](3, 4)
    output, _ = model(tl.randn(5, 2, 3, requires_grad=True))
    assert [op.op for op in tl.walk_graph(output).ops].count("InputProjection") == 0
    with tl.no_grad():
        model.weight_ih_l0.add_(1.0)
    with pytest.raises(tl.errors.InplaceModifiedError, match="modified by an in-place operation"):
        output.sum().backward()
