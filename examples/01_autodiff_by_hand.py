"""Autodiff by hand: one LSTM step computed by the engine, then every gate's weight gradient written out with
the chain rule in plain NumPy and compared with what backward() found.

    python examples/01_autodiff_by_hand.py
"""

import argparse

import numpy as np

import tinygrad_lstm as tl
from tinygrad_lstm import nn

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--batch", type=int, default=2)
parser.add_argument("--input-size", type=int, default=3)
parser.add_argument("--hidden-size", type=int, default=4)
args = parser.parse_args()
B, I, H = args.batch, args.input_size, args.hidden_size

# --- 1. The engine: one step of the composed LSTMCell, in float64 so the comparison is exact.
tl.manual_seed(0)
cell = nn.LSTMCell(I, H).double()
x = tl.randn(B, I, dtype=np.float64)
h0 = tl.randn(B, H, dtype=np.float64, requires_grad=True)
c0 = tl.randn(B, H, dtype=np.float64, requires_grad=True)
h, c = cell(x, (h0, c0))
upstream = np.random.default_rng(1).standard_normal((B, H))  # dL/dh: a random "loss" L = sum(h * upstream)
(h * tl.Tensor(upstream)).sum().backward()

# --- 2. The same step by hand. PyTorch's gate order: input, forget, candidate (g), output.
W, U = cell.weight_ih.detach().numpy(), cell.weight_hh.detach().numpy()
b = cell.bias_ih.detach().numpy() + cell.bias_hh.detach().numpy()
xs, hs, cs = x.detach().numpy(), h0.detach().numpy(), c0.detach().numpy()
sigmoid = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
pre = xs @ W.T + hs @ U.T + b  # (B, 4H): the four yellow boxes of the article at once
a_i, a_f, a_g, a_o = np.split(pre, 4, axis=1)
i, f, g, o = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g), sigmoid(a_o)
c_new = f * cs + i * g           # new cell state: forget some of the old, add some of the candidate
h_new = o * np.tanh(c_new)       # output: a filtered view of the cell state
assert np.allclose(h_new, h.detach().numpy()) and np.allclose(c_new, c.detach().numpy())

# --- 3. Backward by the chain rule, from dL/dh back to each gate's pre-activation.
dh = upstream
do = dh * np.tanh(c_new)                         # h = o * tanh(c)
dc = dh * o * (1 - np.tanh(c_new) ** 2)          # ... and through tanh(c)
df, di, dg = dc * cs, dc * g, dc * i             # c = f * c_prev + i * g
d_pre = {
    "input gate": di * i * (1 - i),              # sigmoid' = s (1 - s)
    "forget gate": df * f * (1 - f),
    "candidate": dg * (1 - g**2),                # tanh' = 1 - tanh^2
    "output gate": do * o * (1 - o),
}

# --- 4. Each gate owns a quarter of weight_ih's rows: dL/dW_gate = d_pre^T x (and h_prev for weight_hh).
print(f"{'gate':12s} {'|dW_ih| by hand':>16s} {'max |hand - engine|':>20s}")
for k, (gate, d) in enumerate(d_pre.items()):
    rows = slice(k * H, (k + 1) * H)
    by_hand_ih, by_hand_hh = d.T @ xs, d.T @ hs
    error = max(np.abs(by_hand_ih - cell.weight_ih.grad.numpy()[rows]).max(),
                np.abs(by_hand_hh - cell.weight_hh.grad.numpy()[rows]).max(),
                np.abs(d.sum(0) - cell.bias_ih.grad.numpy()[rows]).max())
    print(f"{gate:12s} {np.linalg.norm(by_hand_ih):16.6f} {error:20.2e}")
    assert error < 1e-12, f"{gate}: chain rule and backward() disagree by {error}"
# The states get gradients too: the highway carries dL/dc back through the forget gate alone.
dc_prev, dh_prev = dc * f, np.concatenate(list(d_pre.values()), axis=1) @ U
assert np.allclose(dc_prev, c0.grad.numpy(), atol=1e-12) and np.allclose(dh_prev, h0.grad.numpy(), atol=1e-12)
print(f"dL/dc_prev = dL/dc * f: max |hand - engine| = {np.abs(dc_prev - c0.grad.numpy()).max():.2e}")
print("every gate's gradient written out by the chain rule equals the engine's backward()")
