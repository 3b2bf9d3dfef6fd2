"""Linear, activations, Sequential, Embedding and Dropout: values and gradients against PyTorch, init, errors."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lstm as tl
from tinygrad_lstm import nn


def to_torch(torch, module_state: dict) -> dict:
    return {k: torch.tensor(v.numpy()) for k, v in module_state.items()}


def assert_close(ours, theirs, tol=1e-12):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    ours = ours.detach().numpy() if isinstance(ours, tl.Tensor) else ours
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)


def check_against_torch(torch, ours, theirs, x: np.ndarray, seed: int = 0):
    """Same forward values and the same vector-Jacobian products (random upstream) for input and parameters."""
    theirs.load_state_dict(to_torch(torch, ours.state_dict()))
    xt = torch.tensor(x, requires_grad=True)
    xo = tl.Tensor(x, requires_grad=True)
    out, ref = ours(xo), theirs(xt)
    assert_close(out, ref)
    upstream = np.random.default_rng(seed).standard_normal(ref.shape)
    out.backward(upstream)
    ref.backward(torch.tensor(upstream))
    assert_close(xo.grad, xt.grad)
    ref_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, ref_params[name].grad)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.lists(st.integers(1, 4), min_size=0, max_size=2), st.booleans())
def test_linear_matches_torch(in_features, out_features, batch, bias):
    torch = pytest.importorskip("torch")
    ours = nn.Linear(in_features, out_features, bias=bias, dtype=np.float64)
    theirs = torch.nn.Linear(in_features, out_features, bias=bias, dtype=torch.float64)
    x = np.random.default_rng(len(batch)).standard_normal((*batch, in_features))
    check_against_torch(torch, ours, theirs, x)


def test_linear_layout_and_pytorch_init():
    tl.manual_seed(0)
    layer = nn.Linear(100, 300)
    assert layer.weight.shape == (300, 100) and layer.bias.shape == (300,)
    assert layer.weight.dtype == np.float32
    bound = 1 / math.sqrt(100)  # kaiming_uniform(a=sqrt(5)) works out to U(-1/sqrt(in), 1/sqrt(in))
    for p, count in ((layer.weight, 30000), (layer.bias, 300)):
        values = p.detach().numpy()
        assert np.abs(values).max() <= bound
        assert np.abs(values).max() > 0.95 * bound
        assert abs(values.mean()) < 4 * bound / math.sqrt(3 * count)  # U(-b, b) has std b/sqrt(3)
        assert abs(values.std() - bound / math.sqrt(3)) < 0.05 * bound
    tl.manual_seed(0)
    np.testing.assert_array_equal(nn.Linear(100, 300).weight.detach().numpy(), layer.weight.detach().numpy())


def test_linear_on_device_passes_gradcheck(device):
    layer = nn.Linear(3, 2, dtype=np.float64, device=device)
    x = tl.randn(4, 3, dtype=np.float64, device=device, requires_grad=True)
    assert tl.gradcheck(lambda x, w, b: nn.F.linear(x, w, b), [x, layer.weight, layer.bias])


def test_linear_rejects_a_wrong_feature_count():
    with pytest.raises(ValueError, match=r"shape \(4, 5\).*in_features=3"):
        nn.Linear(3, 2)(tl.randn(4, 5))


def test_activations_match_torch(torch):
    x = np.linspace(-5, 5, 23)
    pairs = ((nn.Sigmoid(), torch.nn.Sigmoid()), (nn.Tanh(), torch.nn.Tanh()), (nn.ReLU(), torch.nn.ReLU()))
    for ours, theirs in pairs:
        check_against_torch(torch, ours, theirs, x)
    for ours, theirs in ((nn.F.sigmoid, torch.sigmoid), (nn.F.tanh, torch.tanh), (nn.F.relu, torch.relu)):
        assert_close(ours(tl.Tensor(x)), theirs(torch.tensor(x)))


def test_sequential_matches_torch_and_indexes_like_a_list(torch):
    ours = nn.Sequential(nn.Linear(3, 5, dtype=np.float64), nn.Tanh(), nn.Linear(5, 2, dtype=np.float64))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    check_against_torch(torch, ours, theirs, np.random.default_rng(1).standard_normal((4, 3)))
    assert len(ours) == 3 and isinstance(ours[1], nn.Tanh) and ours[-1] is ours[2]
    assert [type(m).__name__ for m in ours] == ["Linear", "Tanh", "Linear"]
    head = ours[1:]
    assert isinstance(head, nn.Sequential) and list(head.state_dict()) == ["2.weight", "2.bias"]
    with pytest.raises(IndexError, match="3 modules"):
        ours[3]
    ours.append(nn.Sigmoid())
    assert len(ours) == 4 and isinstance(ours[3], nn.Sigmoid)


def test_state_dicts_cross_to_torch_and_back(torch):
    ours = nn.Sequential(nn.Embedding(7, 3), nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2, bias=False))
    theirs = torch.nn.Sequential(torch.nn.Embedding(7, 3), torch.nn.Linear(3, 4), torch.nn.ReLU(),
                                 torch.nn.Linear(4, 2, bias=False))
    theirs.load_state_dict(to_torch(torch, ours.state_dict()))  # strict: same names and shapes
    for name, value in theirs.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), ours.state_dict()[name].numpy())
    fresh = torch.nn.Sequential(torch.nn.Embedding(7, 3), torch.nn.Linear(3, 4), torch.nn.ReLU(),
                                torch.nn.Linear(4, 2, bias=False))
    ours.load_state_dict({k: v.numpy() for k, v in fresh.state_dict().items()})
    for name, value in fresh.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[name].numpy(), value.numpy())
    tokens = np.array([[1, 2, 6], [0, 0, 3]])
    assert_close(ours(tokens), fresh(torch.tensor(tokens)), tol=1e-6)


def test_embedding_picks_rows_and_accumulates_repeated_gradients(torch):
    ours = nn.Embedding(6, 4, dtype=np.float64)
    theirs = torch.nn.Embedding(6, 4, dtype=torch.float64)
    theirs.load_state_dict(to_torch(torch, ours.state_dict()))
    indices = np.array([[0, 5, 5], [2, 0, 5]])
    out, ref = ours(tl.Tensor(indices)), theirs(torch.tensor(indices))
    assert_close(out, ref)
    upstream = np.random.default_rng(2).standard_normal(ref.shape)
    out.backward(upstream)
    ref.backward(torch.tensor(upstream))
    assert_close(ours.weight.grad, theirs.weight.grad)
    assert_close(ours(indices.tolist()), ref)  # lists and arrays work too
    assert_close(ours(np.int32(5)), theirs(torch.tensor(5)))


def test_embedding_init_is_standard_normal():
    tl.manual_seed(1)
    weight = nn.Embedding(200, 50).weight.detach().numpy()
    assert weight.dtype == np.float32
    assert abs(weight.mean()) < 0.03 and abs(weight.std() - 1) < 0.03


def test_embedding_padding_idx_matches_torch(torch):
    ours = nn.Embedding(5, 3, padding_idx=-1, dtype=np.float64)
    assert ours.padding_idx == 4 and not ours.weight.detach().numpy()[4].any()
    theirs = torch.nn.Embedding(5, 3, padding_idx=4, dtype=torch.float64)
    ours.weight.array[4] = 1.5  # a non-zero padding row is still returned, but takes no gradient
    theirs.load_state_dict(to_torch(torch, ours.state_dict()))
    indices = np.array([4, 1, 4, 2])
    out, ref = ours(indices), theirs(torch.tensor(indices))
    assert_close(out, ref)
    out.sum().backward()
    ref.sum().backward()
    assert_close(ours.weight.grad, theirs.weight.grad)
    with pytest.raises(ValueError, match="padding_idx 5"):
        nn.Embedding(5, 3, padding_idx=5)


def test_embedding_rejects_bad_indices(device):
    emb = nn.Embedding(10, 2, device=device)
    with pytest.raises(IndexError, match=r"index 10 is out of range for num_embeddings=10"):
        emb(tl.Tensor(np.array([3, 10, 11]), device=device))
    with pytest.raises(IndexError, match=r"index -1 .*num_embeddings=10"):
        emb(np.array([-1]))
    with pytest.raises(TypeError, match="integer dtype, got float32"):
        emb(tl.Tensor([1.0, 2.0], device=device))


def test_dropout_in_training_zeroes_with_probability_p_and_scales_the_rest():
    tl.manual_seed(3)
    drop = nn.Dropout(0.25)
    x = tl.ones(200, 100, dtype=np.float64, requires_grad=True)
    out = drop(x)
    values = out.detach().numpy()
    kept = values != 0
    assert abs(1 - kept.mean() - 0.25) < 0.02
    np.testing.assert_allclose(values[kept], 1 / 0.75)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), values)  # d(out)/dx is the scaled mask


def test_dropout_is_identity_in_eval_and_at_p_zero_and_zero_at_p_one():
    x = tl.randn(5, 4)
    assert nn.Dropout(0.5).eval()(x) is x
    assert nn.F.dropout(x, 0.5, training=False) is x
    assert nn.Dropout(0.0)(x) is x
    assert not nn.Dropout(1.0)(x).numpy().any()


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_validates_p(p):
    with pytest.raises(ValueError, match=f"must be in \\[0, 1\\], got {p}"):
        nn.Dropout(p)
    with pytest.raises(ValueError, match="must be in"):
        nn.F.dropout(tl.ones(2), p)


def test_dropout_runs_on_the_inputs_device(device):
    x = tl.ones(8, 8, device=device)
    out = nn.Dropout(0.5)(x)
    assert out.device == x.device and out.dtype == np.float32
