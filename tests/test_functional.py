"""nn.functional: every loss with every reduction against PyTorch (values and gradients), stability, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_lstm as tl
from tinygrad_lstm import nn

F = nn.functional
REDUCTIONS = ["mean", "sum", "none"]


def compare(torch, ours_fn, torch_fn, float_inputs, other_inputs=(), tol=1e-12, seed=0):
    """Run both on the same float64 inputs; compare values and input gradients under a random upstream."""
    ours_in = [tl.Tensor(a, requires_grad=True) for a in float_inputs]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in float_inputs]
    out = ours_fn(*ours_in, *[tl.Tensor(a) for a in other_inputs])
    ref = torch_fn(*theirs_in, *[torch.tensor(a) for a in other_inputs])
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=tol, atol=tol)
    upstream = np.random.default_rng(seed).standard_normal(ref.shape)
    out.backward(upstream)
    ref.backward(torch.tensor(upstream))
    for o, t in zip(ours_in, theirs_in, strict=True):
        np.testing.assert_allclose(o.grad.numpy(), t.grad.numpy(), rtol=tol, atol=tol)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss(torch, rng, reduction):
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    compare(torch, lambda a, b: F.mse_loss(a, b, reduction=reduction),
            lambda a, b: torch.nn.functional.mse_loss(a, b, reduction=reduction), [x, y])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_with_class_indices(torch, rng, reduction):
    logits, target = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    compare(torch, lambda a, t: F.cross_entropy(a, t, reduction=reduction),
            lambda a, t: torch.nn.functional.cross_entropy(a, t, reduction=reduction), [logits], [target])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_with_weight_ignore_index_and_extra_axes(torch, rng, reduction):
    logits = rng.standard_normal((3, 4, 5))  # (N, C, d): PyTorch's layout for a sequence of predictions
    target = rng.integers(0, 4, (3, 5))
    target[0, 1] = target[2, 4] = -100
    weight = rng.uniform(0.5, 2.0, 4)
    compare(torch, lambda a, t, w: F.cross_entropy(a, t, weight=w, reduction=reduction),
            lambda a, t, w: torch.nn.functional.cross_entropy(a, t, weight=w, reduction=reduction),
            [logits], [target, weight])
    compare(torch, lambda a, t: F.cross_entropy(a, t, ignore_index=2, reduction=reduction),
            lambda a, t: torch.nn.functional.cross_entropy(a, t, ignore_index=2, reduction=reduction),
            [logits], [np.where(target < 0, 0, target)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_with_class_probabilities_and_unbatched(torch, rng, reduction):
    logits = rng.standard_normal((4, 3))
    probs = rng.dirichlet(np.ones(3), 4)
    compare(torch, lambda a, p: F.cross_entropy(a, p, reduction=reduction),
            lambda a, p: torch.nn.functional.cross_entropy(a, p, reduction=reduction), [logits, probs])
    weight = rng.uniform(0.5, 2.0, 3)
    compare(torch, lambda a, p, w: F.cross_entropy(a, p, weight=w, reduction=reduction),
            lambda a, p, w: torch.nn.functional.cross_entropy(a, p, weight=w, reduction=reduction),
            [logits, probs], [weight])
    compare(torch, lambda a, t: F.cross_entropy(a, t, reduction=reduction),
            lambda a, t: torch.nn.functional.cross_entropy(a, t, reduction=reduction), [logits[0]], [np.int64(2)])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(torch, rng, reduction):
    log_probs, target = rng.standard_normal((5, 4)), rng.integers(0, 4, 5)
    weight = rng.uniform(0.5, 2.0, 4)
    compare(torch, lambda a, t, w: F.nll_loss(a, t, weight=w, reduction=reduction),
            lambda a, t, w: torch.nn.functional.nll_loss(a, t, weight=w, reduction=reduction),
            [log_probs], [target, weight])
    target[1] = -100
    compare(torch, lambda a, t: F.nll_loss(a, t, reduction=reduction),
            lambda a, t: torch.nn.functional.nll_loss(a, t, reduction=reduction), [log_probs], [target])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits(torch, rng, reduction):
    x, y = rng.standard_normal((4, 3)) * 3, rng.uniform(0, 1, (4, 3))
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    compare(torch, lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction),
            lambda a, b: bce(a, b, reduction=reduction), [x, y])
    weight, pos_weight = rng.uniform(0.5, 2.0, (1, 3)), rng.uniform(0.5, 3.0, 3)
    compare(torch, lambda a, b, w, pw: F.binary_cross_entropy_with_logits(a, b, w, reduction=reduction, pos_weight=pw),
            lambda a, b, w, pw: bce(a, b, w, reduction=reduction, pos_weight=pw), [x, y], [weight, pos_weight])


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 5), st.integers(1, 6), st.lists(st.integers(1, 3), max_size=2), st.sampled_from(REDUCTIONS))
def test_cross_entropy_random_shapes_match_torch(batch, classes, extra, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(batch * 10 + classes)
    logits = rng.standard_normal((batch, classes, *extra)) * 4
    target = rng.integers(0, classes, (batch, *extra))
    compare(torch, lambda a, t: F.cross_entropy(a, t, reduction=reduction),
            lambda a, t: torch.nn.functional.cross_entropy(a, t, reduction=reduction), [logits], [target])


def test_losses_stay_finite_for_huge_logits(torch):
    logits = np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 999.0]])
    target = np.array([1, 2])
    compare(torch, F.cross_entropy, torch.nn.functional.cross_entropy, [logits], [target])
    x = np.array([1000.0, -1000.0, 50.0, -50.0, 0.0])
    y = np.array([0.0, 1.0, 0.3, 1.0, 0.5])
    compare(torch, F.binary_cross_entropy_with_logits, torch.nn.functional.binary_cross_entropy_with_logits, [x, y])
    for dtype in (np.float32, np.float64):
        loss = F.cross_entropy(tl.Tensor(logits, dtype=dtype, requires_grad=True), target)
        loss.backward()
        assert loss.dtype == dtype and np.isfinite(loss.detach().numpy())


def test_functional_layers_match_torch(torch, rng):
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((2, 4)), rng.standard_normal(2)
    compare(torch, F.linear, torch.nn.functional.linear, [x, w, b])
    compare(torch, lambda a: F.softmax(a, axis=0), lambda a: torch.softmax(a, dim=0), [x])
    compare(torch, lambda a: F.log_softmax(a, axis=-1), lambda a: torch.log_softmax(a, dim=-1), [x])
    compare(torch, lambda a, i: F.embedding(i, a), lambda a, i: torch.nn.functional.embedding(i, a),
            [x], [np.array([[2, 0], [2, 1]])])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_losses_pass_gradcheck(device, reduction):
    """Without PyTorch: central differences against backward, with a random upstream gradient."""
    rng = np.random.default_rng(4)

    def leaf(shape):
        return tl.Tensor(rng.standard_normal(shape), device=device, requires_grad=True)

    target = tl.Tensor(np.array([2, 0, 1, -100]), device=device)
    assert tl.gradcheck(lambda a, b: F.mse_loss(a, b, reduction=reduction), [leaf((3, 2)), leaf((3, 2))])
    assert tl.gradcheck(lambda a: F.cross_entropy(a, target, reduction=reduction), [leaf((4, 3))])
    assert tl.gradcheck(lambda a, w: F.nll_loss(a, target, weight=w, reduction=reduction), [leaf((4, 3)), leaf(3)])
    probs = tl.Tensor(rng.dirichlet(np.ones(3), 4), device=device)
    assert tl.gradcheck(lambda a: F.cross_entropy(a, probs, reduction=reduction), [leaf((4, 3))])
    labels = tl.Tensor(rng.uniform(0, 1, (3, 2)), device=device, requires_grad=True)
    assert tl.gradcheck(lambda a, y: F.binary_cross_entropy_with_logits(a, y, pos_weight=np.array([1.0, 2.0]),
                                                                        reduction=reduction), [leaf((3, 2)), labels])


def test_bce_gradient_at_zero_logit_is_sigmoid_minus_target():
    x = tl.Tensor(np.zeros(3), requires_grad=True)
    F.binary_cross_entropy_with_logits(x, np.array([0.0, 0.5, 1.0]), reduction="sum").backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.5, 0.0, -0.5])


@pytest.mark.parametrize("loss", [F.mse_loss, F.binary_cross_entropy_with_logits])
def test_bad_reduction_is_named(loss):
    with pytest.raises(ValueError, match=r"reduction must be one of \('mean', 'sum', 'none'\), got 'avg'"):
        loss(tl.ones(2), tl.ones(2), reduction="avg")


def test_bad_reduction_is_named_for_class_losses():
    for loss in (F.cross_entropy, F.nll_loss):
        with pytest.raises(ValueError, match="got 'max'"):
            loss(tl.ones(2, 3), np.array([0, 1]), reduction="max")


def test_bad_targets_are_named():
    logits = tl.randn(4, 3)
    with pytest.raises(TypeError, match=r"dtype float32 and shape \(4,\).*input of shape \(4, 3\).*integer class"):
        F.cross_entropy(logits, tl.Tensor([0.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match=r"dtype int64 and shape \(5,\).*input of shape \(4, 3\).*shape \(4,\)"):
        F.cross_entropy(logits, np.array([0, 1, 2, 1, 0]))
    with pytest.raises(TypeError, match=r"nll_loss: target has dtype bool"):
        F.nll_loss(logits, np.array([True, False, True, True]))
    with pytest.raises(IndexError, match=r"target 3 is out of range for 3 classes"):
        F.cross_entropy(logits, np.array([0, 3, 1, 1]))
    with pytest.raises(IndexError, match=r"target -2 is out of range"):
        F.nll_loss(logits, np.array([0, -2, 1, 1]))
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        F.cross_entropy(logits, np.array([0, 1, 1, 1]), weight=np.ones(4))
    with pytest.raises(ValueError, match=r"target shape \(4, 2\) differs from input shape \(4, 3\)"):
        F.mse_loss(logits, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"target shape \(4,\) differs"):
        F.binary_cross_entropy_with_logits(logits, np.zeros(4))


def test_targets_on_another_device_are_refused(device):
    if device == "cpu":
        pytest.skip("needs a second device")
    with pytest.raises(RuntimeError, match="target is on"):
        F.cross_entropy(tl.randn(2, 3, device=device), tl.Tensor(np.array([0, 1])))
