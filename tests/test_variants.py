"""The LSTM variants (nn.variants, nn.variant_math): against a NumPy reference of the article's formulas,
fused equal to composed in values and every gradient, gradchecks in float64, the plain one equal to PyTorch."""

import numpy as np
import pytest

import tinygrad_lstm as tl
from tinygrad_lstm import nn
from tinygrad_lstm.nn.utils import rnn as rnn_utils
from tinygrad_lstm.nn.variant_math import VARIANT_BACKWARD, VARIANT_FORWARD, fused_variant_cell
from tinygrad_lstm.nn.variants import VARIANTS

INPUT, HIDDEN, BATCH, STEPS = 3, 4, 2, 5
TOL = 1e-9
CONFIGS = [(variant, False) for variant in VARIANTS] + [("cifg", True), ("nfg", True), ("nog", True), ("noaf", True)]


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _reference_step(x, h, c, p, gates, coupled, peephole, squash):
    """The variant table of nn/variants.py written out in NumPy, independently of the code under test."""
    z = x @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
    pre = {k: z[:, n * HIDDEN : (n + 1) * HIDDEN] for n, k in enumerate(gates)}
    peep = {k: p.get(f"weight_c{k}", 0) if peephole else 0 for k in "ifo"}
    f = _sigmoid(pre["f"] + peep["f"] * c) if "f" in gates else 1
    i = _sigmoid(pre["i"] + peep["i"] * c) if "i" in gates else (1 - f if coupled else 1)
    c = f * c + i * np.tanh(pre["g"])
    o = _sigmoid(pre["o"] + peep["o"] * c) if "o" in gates else 1
    return o * (np.tanh(c) if squash else c), c


@pytest.mark.parametrize("variant, peephole", CONFIGS)
@pytest.mark.parametrize("fused", [False, True])
def test_variant_cell_matches_the_formula(device, variant, peephole, fused):
    rng = np.random.default_rng(0)
    cell = nn.LSTMVariantCell(INPUT, HIDDEN, variant=variant, peephole=peephole, fused=fused, dtype=np.float64,
                              device=device)
    params = {name: p.detach().numpy() for name, p in cell.named_parameters()}
    xs = rng.standard_normal((STEPS, BATCH, INPUT))
    h, c = rng.standard_normal((2, BATCH, HIDDEN))
    state = (tl.Tensor(h, device=device), tl.Tensor(c, device=device))
    for x in xs:
        state = cell(tl.Tensor(x, device=device), state)
        h, c = _reference_step(x, h, c, params, cell.config["gates"], cell.config["coupled"], cell.config["peephole"],
                               cell.config["squash"])
        np.testing.assert_allclose(state[0].detach().numpy(), h, rtol=0, atol=TOL)
        np.testing.assert_allclose(state[1].detach().numpy(), c, rtol=0, atol=TOL)


@pytest.mark.parametrize("variant, peephole", CONFIGS)
@pytest.mark.parametrize("fused", [False, True])
def test_variant_cell_gradcheck(device, variant, peephole, fused):
    rng = np.random.default_rng(1)
    cell = nn.LSTMVariantCell(2, 3, variant=variant, peephole=peephole, fused=fused, dtype=np.float64,
                              device=device)
    x = tl.Tensor(rng.standard_normal((3, BATCH, 2)), device=device, requires_grad=True)
    h0, c0 = (tl.Tensor(rng.standard_normal((BATCH, 3)), device=device, requires_grad=True) for _ in range(2))

    def run(x, h0, c0, *parameters):
        state, outputs = (h0, c0), []
        for t in range(x.shape[0]):
            state = cell(x[t], state)
            outputs += list(state)
        return tuple(outputs)

    assert tl.gradcheck(run, [x, h0, c0, *cell.parameters()])


def test_gru_cell_gradcheck(device):
    rng = np.random.default_rng(2)
    cell = nn.GRUCell(2, 3, dtype=np.float64, device=device)
    x = tl.Tensor(rng.standard_normal((3, BATCH, 2)), device=device, requires_grad=True)
    h0 = tl.Tensor(rng.standard_normal((BATCH, 3)), device=device, requires_grad=True)

    def run(x, h, *parameters):
        outputs = []
        for t in range(x.shape[0]):
            h = cell(x[t], h)
            outputs.append(h)
        return tuple(outputs)

    assert tl.gradcheck(run, [x, h0, *cell.parameters()])


@pytest.mark.parametrize("variant, peephole", CONFIGS)
@pytest.mark.parametrize("packed", [False, True])
def test_fused_layer_equals_composed_in_values_and_every_gradient(device, variant, peephole, packed):
    """Two layers, both directions, a given state, equal lengths (one node per layer) or packed sequences of
    unequal lengths (one node per step): every output and every gradient."""
    rng = np.random.default_rng(3)
    options = {"num_layers": 2, "bidirectional": True, "variant": variant, "peephole": peephole, "dtype": np.float64,
               "device": device}
    fused, composed = nn.LSTMVariant(INPUT, HIDDEN, fused=True, **options), nn.LSTMVariant(INPUT, HIDDEN, fused=False,
                                                                                           **options)
    composed.load_state_dict(fused.state_dict())
    data = rng.standard_normal((STEPS, BATCH + 1, INPUT))
    states = rng.standard_normal((2, 4, BATCH + 1, HIDDEN))
    rows = 9 if packed else STEPS * (BATCH + 1)
    upstream = [rng.standard_normal(shape) for shape in ((rows, 2 * HIDDEN), (4, BATCH + 1, HIDDEN),
                                                         (4, BATCH + 1, HIDDEN))]
    results = []
    for layer in (fused, composed):
        x = tl.Tensor(data, device=device, requires_grad=True)
        h0, c0 = (tl.Tensor(s, device=device, requires_grad=True) for s in states)
        inputs = rnn_utils.pack_padded_sequence(x, [2, 5, 2], enforce_sorted=False) if packed else x
        output, (h, c) = layer(inputs, (h0, c0))
        output = output.data if packed else output.reshape(rows, 2 * HIDDEN)
        total = sum((o * tl.Tensor(u, device=device)).sum() for o, u in zip((output, h, c), upstream, strict=True))
        total.backward()
        results.append([output, h, c, x.grad, h0.grad, c0.grad, *(p.grad for p in layer.parameters())])
    for mine, other in zip(*results, strict=True):
        np.testing.assert_allclose(mine.detach().numpy(), other.detach().numpy(), rtol=0, atol=TOL)
    nodes = {op.op for op in tl.walk_graph(results[0][0]).ops}
    assert ("FusedVariantCell" if packed else "FusedVariantLayer") in nodes


@pytest.mark.parametrize("variant, peephole", [("peephole", False), ("cifg", True), ("nfg", False), ("noaf", True)])
def test_fused_variant_layer_gradcheck(device, variant, peephole):
    rng = np.random.default_rng(6)
    layer = nn.LSTMVariant(2, 3, variant=variant, peephole=peephole, dtype=np.float64, device=device)
    x = tl.Tensor(rng.standard_normal((4, BATCH, 2)), device=device, requires_grad=True)
    h0, c0 = (tl.Tensor(rng.standard_normal((1, BATCH, 3)), device=device, requires_grad=True) for _ in range(2))

    def run(x, h0, c0, *parameters):
        output, (h, c) = layer(x, (h0, c0))
        return output, h, c

    assert tl.gradcheck(run, [x, h0, c0, *layer.parameters()])
    assert "FusedVariantLayer" in {op.op for op in tl.walk_graph(run(x, h0, c0)[0]).ops}


def test_vanilla_variant_equals_torch(device, torch):
    """The plain variant is PyTorch's LSTM: the cell and a bidirectional projected layer, values and gradients."""
    rng = np.random.default_rng(4)
    theirs = torch.nn.LSTM(INPUT, HIDDEN, num_layers=2, bidirectional=True, proj_size=2).double()
    for fused in (True, False):
        ours = nn.LSTMVariant(INPUT, HIDDEN, num_layers=2, bidirectional=True, proj_size=2, fused=fused,
                              dtype=np.float64, device=device)
        ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
        data = rng.standard_normal((STEPS, BATCH, INPUT))
        x, tx = tl.Tensor(data, device=device, requires_grad=True), torch.tensor(data, requires_grad=True)
        output, (h, c) = ours(x)
        t_output, (t_h, t_c) = theirs(tx)
        for o, t in ((output, t_output), (h, t_h), (c, t_c)):
            np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=0, atol=TOL)
        u = rng.standard_normal(output.shape)
        (output * tl.Tensor(u, device=device)).sum().backward()
        theirs.zero_grad()
        (t_output * torch.tensor(u)).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=0, atol=TOL)
        torch_params = dict(theirs.named_parameters())
        for name, p in ours.named_parameters():
            np.testing.assert_allclose(p.grad.numpy(), torch_params[name].grad.numpy(), rtol=0, atol=TOL)
    cell, torch_cell = nn.LSTMVariantCell(INPUT, HIDDEN, dtype=np.float64), torch.nn.LSTMCell(INPUT, HIDDEN).double()
    cell.load_state_dict({k: v.detach().numpy() for k, v in torch_cell.state_dict().items()})
    data = rng.standard_normal((BATCH, INPUT))
    for o, t in zip(cell(tl.Tensor(data)), torch_cell(torch.tensor(data)), strict=True):
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=0, atol=TOL)


def test_parameters_stack_only_the_gates_kept():
    cifg = nn.LSTMVariant(INPUT, HIDDEN, variant="cifg", peephole=True)
    shapes = {name: p.shape for name, p in cifg.named_parameters()}
    assert shapes == {"weight_ih_l0": (3 * HIDDEN, INPUT), "weight_hh_l0": (3 * HIDDEN, HIDDEN),
                      "bias_ih_l0": (3 * HIDDEN,), "bias_hh_l0": (3 * HIDDEN,), "weight_cf_l0": (HIDDEN,),
                      "weight_co_l0": (HIDDEN,)}
    assert "weight_ci" in dict(nn.LSTMVariantCell(INPUT, HIDDEN, variant="peephole").named_parameters())
    assert repr(cifg) == "LSTMVariant(3, 4, variant='cifg', peephole=True)"


def _scopes(variant: str) -> dict[str, set[str]]:
    cell = nn.LSTMVariantCell(INPUT, HIDDEN, variant=variant)
    h, _ = cell(tl.randn(BATCH, INPUT))
    scopes: dict[str, set[str]] = {}
    for op in tl.walk_graph(h).ops:
        scopes.setdefault(op.scope, set()).add(op.op)
    return scopes


def test_composed_graph_draws_the_difference():
    assert "step 1/forget gate" not in _scopes("nfg")
    assert "step 1/input gate" not in _scopes("nig")
    assert _scopes("cifg")["step 1/input gate"] == {"Sub"}  # i = 1 - f, nothing learned
    assert "Sigmoid" not in _scopes("nog")["step 1/output"]
    assert "Tanh" not in _scopes("noaf")["step 1/output gate"] and "Tanh" in _scopes("vanilla")["step 1/output gate"]
    assert "Mul" in _scopes("peephole")["step 1/forget gate"]  # w_cf * c_prev
    assert "Mul" not in _scopes("vanilla")["step 1/forget gate"]
    fused = nn.LSTMVariantCell(INPUT, HIDDEN, variant="cifg", fused=True)
    h, _ = fused(tl.randn(BATCH, INPUT))
    node = h.grad_fn
    assert node.op == "FusedVariantCell" and node.details["gates"] == ("forget gate", "candidate", "output gate")


def test_bad_variants_are_named():
    with pytest.raises(ValueError, match="variant must be one of"):
        nn.LSTMVariant(INPUT, HIDDEN, variant="cfg")
    with pytest.raises(TypeError, match="peephole must be True or False"):
        nn.LSTMVariantCell(INPUT, HIDDEN, peephole="yes")
    xw, h, c = tl.zeros(BATCH, 3 * HIDDEN), tl.zeros(BATCH, HIDDEN), tl.zeros(BATCH, HIDDEN)
    w_hh = tl.zeros(3 * HIDDEN, HIDDEN)
    with pytest.raises(ValueError, match="coupled input gate .* needs a forget gate"):
        fused_variant_cell(xw, h, c, w_hh, gates="igo", coupled=True)
    with pytest.raises(ValueError, match="in the order i, f, g, o"):
        fused_variant_cell(xw, h, c, w_hh, gates="gfo")
    with pytest.raises(ValueError, match=r"xw has shape \(2, 12\) and dtype float32, expected \(2, 16\)"):
        fused_variant_cell(xw, h, c, w_hh)
    with pytest.raises(ValueError, match="take 2 peephole weights"):
        fused_variant_cell(xw, h, c, w_hh, tl.zeros(HIDDEN), gates="fgo")
    with pytest.raises(ValueError, match=r"input has 4 features"):
        nn.LSTMVariant(INPUT, HIDDEN, variant="nog")(tl.zeros(STEPS, BATCH, 4))


@pytest.mark.parametrize("kernel", [VARIANT_FORWARD, VARIANT_BACKWARD], ids=lambda k: k.name)
def test_cuda_kernel_source_compiles_as_cpp(kernel, tmp_path):
    """Without a GPU: the kernel's parameters avoid the names CuPy reserves (it refuses `i`, the element index) and
    C++ keywords, and its body compiles as C++ for float and double, with its parameters declared as CuPy does."""
    import shutil
    import subprocess

    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no C++ compiler")

    def params(spec: str, const: bool) -> list[str]:
        declared = []
        for param in spec.split(","):
            kind, name = param.split()
            assert name not in {"i", "do", "int", "float", "double"} and not name.startswith("_"), name
            ctype = "T" if kind == "T" else {"int32": "int"}[kind]
            declared.append(f"{'const ' if const else ''}{ctype} {'&' if kind == 'T' else ''}{name}")
        return declared

    signature = ", ".join(params(kernel.in_params, True) + params(kernel.out_params, False))
    source = tmp_path / "kernel.cpp"
    source.write_text(f"#include <cmath>\nusing std::tanh;\n#define __device__\n{kernel.preamble}\n"
                      f"template <typename T> void body({signature}) {{\n{kernel.operation}\n}}\n"
                      f"template void body<float>({signature.replace('T ', 'float ')});\n"
                      f"template void body<double>({signature.replace('T ', 'double ')});\n")
    result = subprocess.run([compiler, "-std=c++14", "-fsyntax-only", "-Wall", "-Werror", str(source)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_renderer_draws_each_variant_with_its_gates():
    """Composed variant cells draw as the LSTM does: one box per gate kept, the cell state on the highway."""
    from tinygrad_lstm import viz

    for variant, missing in (("nfg", "forget gate"), ("nig", "input gate"), ("cifg", None)):
        h, c = nn.LSTMVariantCell(INPUT, HIDDEN, variant=variant)(tl.randn(BATCH, INPUT))
        source = viz.draw_graph(h, c).source
        for scope in ("input gate", "forget gate", "candidate", "output gate"):
            assert (f'"cluster_step 1/{scope}"' in source) == (scope != missing), (variant, scope)
        assert "highway" in c.tags
