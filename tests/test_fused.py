"""The fused LSTM ops (`fused_lstm_cell`, `fused_lstm`, `tl.linear`): gradchecks, equal to the composed."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from recurrent_checks import assert_fused_equals_composed

import tinygrad_lstm as tl
from tinygrad_lstm import nn
from tinygrad_lstm.nn import fused_lstm, fused_lstm_cell
from tinygrad_lstm.nn.cell_math import gate_views, lstm_step_backward, lstm_step_forward
from tinygrad_lstm.nn.rnn import lstm_step
from tinygrad_lstm.tensor.backend import KERNELS


def _tensor(rng, shape, device, requires_grad=True):
    return tl.Tensor(rng.standard_normal(shape), dtype=np.float64, device=device, requires_grad=requires_grad)


def test_fused_cell_gradcheck(device):
    rng = np.random.default_rng(0)
    batch, hidden = 2, 3
    inputs = [_tensor(rng, s, device) for s in ((batch, 4 * hidden), (batch, hidden), (batch, hidden),
                                                  (4 * hidden, hidden))]
    assert tl.gradcheck(fused_lstm_cell, inputs, atol=1e-7, rtol=1e-5)


def test_fused_cell_with_a_projected_h_prev_gradcheck_and_values(device):
    """nn.LSTM's proj_size feeds back h of P < H features: w_hh is (4H, P); the step is the same formula."""
    rng = np.random.default_rng(1)
    batch, hidden, projected = 2, 3, 2
    xw, h_prev, c_prev, w_hh = (_tensor(rng, s, device) for s in ((batch, 4 * hidden), (batch, projected),
                                                                  (batch, hidden), (4 * hidden, projected)))
    assert tl.gradcheck(fused_lstm_cell, [xw, h_prev, c_prev, w_hh], atol=1e-7, rtol=1e-5)
    gates = (xw + h_prev @ w_hh.T).detach().numpy()
    i, f, g, o = np.split(gates, 4, axis=1)
    sigmoid = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    c = sigmoid(f) * c_prev.detach().numpy() + sigmoid(i) * np.tanh(g)
    h_new, c_new = fused_lstm_cell(xw, h_prev, c_prev, w_hh)
    np.testing.assert_allclose(c_new.detach().numpy(), c, rtol=1e-12)
    np.testing.assert_allclose(h_new.detach().numpy(), sigmoid(o) * np.tanh(c), rtol=1e-12)


@pytest.mark.parametrize("x_shape", [(3, 4), (4,), (2, 3, 4), (2, 0, 4)])
def test_linear_gradcheck_and_values(device, x_shape):
    """Any number of leading axes, as PyTorch's linear: (..., in) @ (out, in).T + (out,)."""
    rng = np.random.default_rng(8)
    x, weight, bias = (_tensor(rng, s, device) for s in (x_shape, (5, 4), (5,)))
    assert tl.gradcheck(tl.linear, [x, weight, bias], atol=1e-7, rtol=1e-5)
    assert tl.gradcheck(tl.linear, [x, weight], atol=1e-7, rtol=1e-5)
    out = tl.linear(x, weight, bias)
    assert out.shape == x_shape[:-1] + (5,)
    np.testing.assert_allclose(out.detach().numpy(), x.detach().numpy() @ weight.detach().numpy().T
                               + bias.detach().numpy(), rtol=1e-14)


def test_linear_rejects_shapes_that_do_not_fit(device):
    rng = np.random.default_rng(8)
    x, weight, bias = (_tensor(rng, s, device) for s in ((3, 4), (5, 4), (5,)))
    with pytest.raises(ValueError, match=r"shapes x \(3, 4\), weight \(4, 5\), bias \(5,\) do not fit"):
        tl.linear(x, weight.T, bias)


@pytest.mark.parametrize("used", ["h", "c"])
def test_fused_cell_gradcheck_one_output_used(device, used):
    """backward gets None for the output nobody used; the other one must still give every gradient."""
    rng = np.random.default_rng(1)
    xw, h, c, w_hh = (_tensor(rng, s, device) for s in ((2, 8), (2, 2), (2, 2), (8, 2)))
    index = 0 if used == "h" else 1
    assert tl.gradcheck(lambda *args: fused_lstm_cell(*args)[index], [xw, h, c, w_hh], atol=1e-7, rtol=1e-5)


def test_fused_cell_matches_torch(device, torch):
    rng = np.random.default_rng(2)
    batch, inputs, hidden = 3, 4, 5
    cell = torch.nn.LSTMCell(inputs, hidden).double()
    x, h, c = (rng.standard_normal(s) for s in ((batch, inputs), (batch, hidden), (batch, hidden)))
    tx, th, tc = (torch.tensor(a, requires_grad=True) for a in (x, h, c))
    th_new, tc_new = cell(tx, (th, tc))
    w_ih, w_hh, b_ih, b_hh = (tl.Tensor(p.detach().numpy(), device=device, requires_grad=True)
                              for p in (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh))
    ox, oh, oc = (tl.Tensor(a, device=device, requires_grad=True) for a in (x, h, c))
    h_new, c_new = fused_lstm_cell(ox @ w_ih.T + b_ih + b_hh, oh, oc, w_hh)
    np.testing.assert_allclose(h_new.detach().numpy(), th_new.detach().numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(c_new.detach().numpy(), tc_new.detach().numpy(), rtol=0, atol=1e-12)
    gh, gc = rng.standard_normal((batch, hidden)), rng.standard_normal((batch, hidden))
    (th_new * torch.tensor(gh) + tc_new * torch.tensor(gc)).sum().backward()
    (h_new * tl.Tensor(gh, device=device) + c_new * tl.Tensor(gc, device=device)).sum().backward()
    ours = (ox, oh, oc, w_ih, w_hh, b_ih, b_hh)
    theirs = (tx, th, tc, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("used", ["hs", "c", "both"])
def test_fused_layer_gradcheck(device, used):
    """The whole-sequence op, with gradients reaching it through the outputs every way it can be used."""
    rng = np.random.default_rng(11)
    steps, batch, hidden = 3, 2, 2
    inputs = [_tensor(rng, s, device) for s in ((steps, batch, 4 * hidden), (batch, hidden), (batch, hidden),
                                                  (4 * hidden, hidden))]
    pick = {"hs": lambda hs, c: hs, "c": lambda hs, c: c, "both": lambda hs, c: (hs, c)}[used]
    assert tl.gradcheck(lambda *args: pick(*fused_lstm(*args)), inputs, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("overwrite_xw", [False, True])
@pytest.mark.parametrize("looped_cell", [False, True])
def test_fused_ops_equal_the_composed_step(device, overwrite_xw, looped_cell):
    """fused_lstm (and fused_lstm_cell looped) equal nn's composed step, built from primitive ops: every value
    and every gradient, with a random upstream gradient on every output. The composed step gets xw as its
    input x with an identity W_ih, which float64 multiplies exactly."""
    rng = np.random.default_rng(12)
    steps, batch, hidden = 6, 3, 4
    data = [rng.standard_normal(s) for s in ((steps, batch, 4 * hidden), (batch, hidden), (batch, hidden),
                                             (4 * hidden, hidden))]
    upstream_hs, upstream_c = rng.standard_normal((steps, batch, hidden)), rng.standard_normal((batch, hidden))
    identity = tl.Tensor(np.eye(4 * hidden), device=device)
    results = []
    for path in ("fused", "composed"):
        xw, h0, c0, w_hh = (tl.Tensor(a, device=device, requires_grad=True) for a in data)
        if path == "fused" and not looped_cell:
            hs, c = fused_lstm(xw * 1 if overwrite_xw else xw, h0, c0, w_hh, overwrite_xw=overwrite_xw)
        else:
            h, c, hs = h0, c0, []
            for t in range(steps):
                if path == "fused":
                    h, c = fused_lstm_cell(xw[t] * 1 if overwrite_xw else xw[t], h, c, w_hh, overwrite_xw=overwrite_xw)
                else:
                    h, c = lstm_step(xw[t], h, c, identity, w_hh, None, None)
                hs.append(h)
            hs = tl.stack(hs)
        ((hs * tl.Tensor(upstream_hs, device=device)).sum() + (c * tl.Tensor(upstream_c, device=device)).sum()
         ).backward()
        results.append([hs, c, xw.grad, h0.grad, c0.grad, w_hh.grad])
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("one_tanh", [True, False])
def test_step_formula_equals_the_primitive_ops(one_tanh):
    """Both ways the formula activates the gates (one tanh over the whole buffer on NumPy; gate by gate, as the
    CUDA kernel and the test device run it) give the values and gradients of the same step built from ops."""
    rng = np.random.default_rng(5)
    batch, hidden = 3, 5
    pre, c_prev = rng.standard_normal((batch, 4 * hidden)) * 3, rng.standard_normal((batch, hidden))
    gh, gc = rng.standard_normal((batch, hidden)), rng.standard_normal((batch, hidden))
    gates, c, h = pre.copy(), np.empty_like(c_prev), np.empty_like(c_prev)
    lstm_step_forward(np, c_prev, *gate_views(gates), c, h, all_gates=gates if one_tanh else None)
    dgates, dc_prev = np.empty_like(gates), np.empty_like(c_prev)
    lstm_step_backward(np, *gate_views(gates), c_prev, c, gh, gc, *gate_views(dgates), dc_prev,
                       all_gates=gates if one_tanh else None, all_dgates=dgates if one_tanh else None)

    a, c_in = tl.Tensor(pre, requires_grad=True), tl.Tensor(c_prev, requires_grad=True)
    i, f, g, o = a.chunk(4, axis=1)
    c_ref = i.sigmoid() * g.tanh() + f.sigmoid() * c_in
    h_ref = o.sigmoid() * c_ref.tanh()
    ((h_ref * tl.Tensor(gh)).sum() + (c_ref * tl.Tensor(gc)).sum()).backward()
    for ours, ref in ((c, c_ref), (h, h_ref), (dgates, a.grad), (dc_prev, c_in.grad)):
        np.testing.assert_allclose(ours, ref.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.concatenate([t.sigmoid().detach().numpy() if k != 2 else t.tanh().detach().numpy()
                                               for k, t in enumerate((i, f, g, o))], axis=1), gates, rtol=1e-12)


def test_every_cuda_kernel_is_registered_with_its_formula():
    """The kernels a GPU runs are the named formulas the CPU runs (the test device evaluates `formula`)."""
    assert KERNELS["tinygrad_lstm_step_forward"].formula is lstm_step_forward
    assert KERNELS["tinygrad_lstm_step_backward"].formula is lstm_step_backward
    for name in ("i", "f", "g", "o", "c_prev", "c ", "h"):
        assert name in KERNELS["tinygrad_lstm_step_forward"].operation


def test_fused_layer_gives_gradients_only_where_needed(device):
    rng = np.random.default_rng(13)
    xw = _tensor(rng, (4, 2, 8), device)
    h0, c0 = _tensor(rng, (2, 2), device, requires_grad=False), _tensor(rng, (2, 2), device)
    w_hh = _tensor(rng, (8, 2), device, requires_grad=False)
    hs, c = fused_lstm(xw, h0, c0, w_hh)
    (hs.sum() + c.sum()).backward()
    assert xw.grad.shape == (4, 2, 8) and c0.grad.shape == (2, 2)
    assert h0.grad is None and w_hh.grad is None


@pytest.mark.parametrize("bad, message", [
    ({"xw": (2, 8)}, "fused_lstm: xw has shape (2, 8), expected (T, B, 4H) with 4H = 8"),
    ({"xw": (3, 2, 7)}, "xw has shape (3, 2, 7), expected (T, B, 4H) with 4H = 8"),
    ({"h0": (3, 2)}, "h0 has shape (3, 2), expected (B, H) = (2, 2) (B from xw of shape (3, 2, 8)"),
    ({"c0": (2, 3)}, "c0 has shape (2, 3), expected (B, H) = (2, 2)"),
    ({"w_hh": (8, 3)}, "w_hh must have shape (4H, H), got (8, 3)"),
])
def test_fused_layer_bad_shapes_are_named(bad, message):
    shapes = {"xw": (3, 2, 8), "h0": (2, 2), "c0": (2, 2), "w_hh": (8, 2)} | bad
    args = {name: tl.zeros(*shape) for name, shape in shapes.items()}
    with pytest.raises(ValueError) as error:
        fused_lstm(**args)
    assert message in str(error.value)


def test_fused_layer_bad_input_types_are_named():
    with pytest.raises(TypeError, match="fused_lstm: c0 has dtype float64 but w_hh has dtype float32"):
        fused_lstm(tl.zeros(3, 2, 8), tl.zeros(2, 2), tl.zeros(2, 2, dtype=np.float64), tl.zeros(8, 2))
    with pytest.raises(TypeError, match="fused_lstm: h0 must be a Tensor, got ndarray"):
        fused_lstm(tl.zeros(3, 2, 8), np.zeros((2, 2), np.float32), tl.zeros(2, 2), tl.zeros(8, 2))


def _copy_parameters(source: nn.Module, target: nn.Module) -> None:
    target.load_state_dict({name: p.detach().numpy() for name, p in source.state_dict().items()})


@pytest.mark.parametrize("num_layers, batch_first, bias, give_state",
                         [(1, False, True, False), (1, False, True, True), (2, True, True, True),
                          (2, False, False, False), (1, True, False, True)])
def test_fused_lstm_equals_composed(device, num_layers, batch_first, bias, give_state):
    """Same values and the same gradient for the input, the initial state and every weight."""
    rng = np.random.default_rng(3)
    steps, batch, inputs, hidden = 7, 3, 4, 5
    tl.manual_seed(0)
    fused = nn.LSTM(inputs, hidden, num_layers, bias=bias, batch_first=batch_first, dtype=np.float64, device=device)
    composed = nn.LSTM(inputs, hidden, num_layers, bias=bias, batch_first=batch_first, fused=False,
                       dtype=np.float64, device=device)
    _copy_parameters(fused, composed)
    x_shape = (batch, steps, inputs) if batch_first else (steps, batch, inputs)
    x_data = rng.standard_normal(x_shape)
    state_data = [rng.standard_normal((num_layers, batch, hidden)) for _ in range(2)]
    upstream = [rng.standard_normal(s) for s in (x_shape[:2] + (hidden,), (num_layers, batch, hidden),
                                                  (num_layers, batch, hidden))]
    results = []
    for model in (fused, composed):
        x = tl.Tensor(x_data, device=device, requires_grad=True)
        hx = tuple(tl.Tensor(s, device=device, requires_grad=True) for s in state_data) if give_state else None
        output, (h_n, c_n) = model(x, hx)
        loss = sum(((t * tl.Tensor(u, device=device)).sum() for t, u in zip((output, h_n, c_n), upstream, strict=True)),
                   start=tl.zeros((), dtype=np.float64, device=device))
        loss.backward()
        grads = [x.grad] + ([s.grad for s in hx] if give_state else []) + [p.grad for p in model.parameters()]
        results.append(([output, h_n, c_n], grads))
    (values_f, grads_f), (values_c, grads_c) = results
    assert len(grads_f) == len(grads_c) == 1 + 2 * give_state + (4 if bias else 2) * num_layers
    for a, b in zip(values_f + grads_f, values_c + grads_c, strict=True):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=0, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(steps=st.integers(1, 5), batch=st.integers(1, 4), inputs=st.integers(1, 4), hidden=st.integers(1, 6),
       seed=st.integers(0, 2**16))
def test_fused_equals_composed_for_random_shapes(steps, batch, inputs, hidden, seed):
    rng = np.random.default_rng(seed)
    fused = nn.LSTM(inputs, hidden, dtype=np.float64)
    composed = nn.LSTM(inputs, hidden, fused=False, dtype=np.float64)
    assert_fused_equals_composed(fused, composed, rng, steps, batch)


def test_fused_cell_module_equals_composed(device):
    rng = np.random.default_rng(4)
    fused = nn.LSTMCell(3, 4, fused=True, dtype=np.float64, device=device)
    composed = nn.LSTMCell(3, 4, dtype=np.float64, device=device)
    _copy_parameters(fused, composed)
    x_data = rng.standard_normal((5, 2, 3))
    grads = []
    for cell in (fused, composed):
        h = c = None
        x = tl.Tensor(x_data, device=device, requires_grad=True)
        total = tl.zeros((), dtype=np.float64, device=device)
        for t in range(5):
            h, c = cell(x[t], None if h is None else (h, c))
            total = total + (h * h).sum() + c.sum()
        total.backward()
        grads.append([total, x.grad] + [p.grad for p in cell.parameters()])
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=0, atol=1e-12)


def test_overwrite_xw_only_when_asked(device):
    rng = np.random.default_rng(5)
    xw, h, c, w_hh = (_tensor(rng, s, device) for s in ((2, 8), (2, 2), (2, 2), (8, 2)))
    before = xw.detach().numpy().copy()
    kept = fused_lstm_cell(xw, h, c, w_hh)
    np.testing.assert_array_equal(xw.detach().numpy(), before)
    scratch = tl.Tensor(before, device=device, requires_grad=True)
    reused = fused_lstm_cell(scratch, h, c, w_hh, overwrite_xw=True)
    assert not np.array_equal(scratch.detach().numpy(), before)  # it now holds the gate activations
    for a, b in zip(kept, reused, strict=True):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_backward_twice_with_retain_graph(device):
    rng = np.random.default_rng(6)
    xw, h, c, w_hh = (_tensor(rng, s, device) for s in ((2, 8), (2, 2), (2, 2), (8, 2)))
    h_new, c_new = fused_lstm_cell(xw, h, c, w_hh)
    loss = (h_new * c_new).sum()
    loss.backward(retain_graph=True)
    first = w_hh.grad.numpy().copy()
    loss.backward()
    np.testing.assert_allclose(w_hh.grad.numpy(), 2 * first, rtol=1e-12)


def test_no_graph_under_no_grad(device):
    rng = np.random.default_rng(7)
    xw, h, c, w_hh = (_tensor(rng, s, device) for s in ((2, 8), (2, 2), (2, 2), (8, 2)))
    with tl.no_grad():
        h_new, c_new = fused_lstm_cell(xw, h, c, w_hh)
    assert h_new.grad_fn is None and not c_new.requires_grad


def test_float32_stays_float32(device):
    xw, h, c = tl.randn(2, 8, device=device), tl.randn(2, 2, device=device), tl.randn(2, 2, device=device)
    w_hh = tl.randn(8, 2, device=device, requires_grad=True)
    h_new, c_new = fused_lstm_cell(xw, h, c, w_hh)
    (h_new.sum() + c_new.sum()).backward()
    assert h_new.dtype == c_new.dtype == w_hh.grad.dtype == np.float32


@pytest.mark.parametrize("bad, message", [
    ({"xw": (2, 7)}, "xw has shape (2, 7), expected (B, 4H) with 4H = 8 for w_hh of shape (8, 2)"),
    ({"h_prev": (3, 2)}, "h_prev has shape (3, 2), expected (B, P) = (2, 2)"),
    ({"c_prev": (2, 3)}, "c_prev has shape (2, 3), expected (B, H) = (2, 2)"),
    ({"w_hh": (7, 2)}, "w_hh must have shape (4H, P), got (7, 2)"),
    ({"w_hh": (8, 3)}, "h_prev has shape (2, 2), expected (B, P) = (2, 3)"),  # a projected h_prev: P = 3
])
def test_bad_shapes_are_named(bad, message):
    shapes = {"xw": (2, 8), "h_prev": (2, 2), "c_prev": (2, 2), "w_hh": (8, 2)} | bad
    args = {name: tl.zeros(*shape) for name, shape in shapes.items()}
    with pytest.raises(ValueError) as error:
        fused_lstm_cell(**args)
    assert message in str(error.value)


def test_bad_dtype_is_named():
    with pytest.raises(TypeError, match="h_prev has dtype float64 but w_hh has dtype float32"):
        fused_lstm_cell(tl.zeros(2, 8), tl.zeros(2, 2, dtype=np.float64), tl.zeros(2, 2), tl.zeros(8, 2))


def test_layer_backward_twice_with_retain_graph(device):
    """The gates live in the projection's memory (overwrite_xw): a second backward must still see them intact."""
    lstm = nn.LSTM(3, 4, dtype=np.float64, device=device)
    x = tl.Tensor(np.random.default_rng(9).standard_normal((5, 2, 3)), device=device, requires_grad=True)
    output, (h_n, c_n) = lstm(x)
    loss = (output * output).sum() + c_n.sum()
    loss.backward(retain_graph=True)
    first = [x.grad.numpy().copy()] + [p.grad.numpy().copy() for p in lstm.parameters()]
    loss.backward()
    for a, t in zip(first, [x, *lstm.parameters()], strict=True):
        np.testing.assert_allclose(t.grad.numpy(), 2 * a, rtol=1e-12)


def test_benchmark_ceiling_computes_the_same_gradients():
    """benchmarks/lstm.py compares against a hand-written LSTM: it must compute what nn.LSTM computes."""
    from tinygrad_lstm.benchmarks.lstm import HandFusedLSTM

    rng = np.random.default_rng(10)
    lstm = nn.LSTM(3, 4, dtype=np.float64)
    x = tl.Tensor(rng.standard_normal((6, 2, 3)), requires_grad=True)
    output, _ = lstm(x)
    output.sum().backward()
    ceiling = HandFusedLSTM(np, *(p.detach().numpy() for p in lstm.parameters()))
    ceiling_output, grads = ceiling.train_step(x.detach().numpy())
    np.testing.assert_allclose(ceiling_output, output.detach().numpy(), atol=1e-13)
    expected = {"x": x.grad, "weight_ih": lstm.weight_ih_l0.grad, "weight_hh": lstm.weight_hh_l0.grad,
                "bias": lstm.bias_ih_l0.grad}
    for name, grad in expected.items():
        np.testing.assert_allclose(grads[name], grad.detach().numpy(), atol=1e-12, err_msg=name)


def test_benchmark_runs_and_prints_ratios(capsys):
    from tinygrad_lstm.benchmarks.lstm import main

    assert main(["--sizes", "2,3,4,5", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    lstm_columns = ["layer", "ceiling", "cells", "fused cells", "torch layer", "torch cells", "layer/ceiling",
                    "layer/torch", "cells/torch", "fused cells/torch"]
    other_columns = [c for c in lstm_columns if "fused" not in c]
    ratios = {"layer/ceiling": ("layer", "ceiling"), "layer/torch": ("layer", "torch layer"),
              "cells/torch": ("cells", "torch cells"), "fused cells/torch": ("fused cells", "torch cells")}
    for table, columns in (("LSTM", lstm_columns), ("GRU", other_columns), ("RNN", other_columns)):
        header, row = out.split(f"\n{table} (ms)\n")[1].splitlines()[:2]
        assert header.split() == " ".join(["batch,input,hidden,steps", *columns]).split()
        size, *numbers = row.split()
        values = dict(zip(columns, map(float, numbers), strict=True))
        times = [v for name, v in values.items() if "/" not in name]  # ratios may print as 0.00
        assert size == "2,3,4,5" and all(v > 0 for v in times)
        for ratio, (top, bottom) in ratios.items():  # each printed ratio is what its two columns give
            if ratio in values:
                low = (values[top] - 0.0005) / (values[bottom] + 0.0005) - 0.005  # times and ratios print rounded
                high = (values[top] + 0.0005) / (values[bottom] - 0.0005) + 0.005
                assert low <= values[ratio] <= high, ratio
    with pytest.raises(SystemExit):
        main(["--sizes", "2,3,4"])
