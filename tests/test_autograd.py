"""The backward machinery: the walk, accumulation, freed graphs, grad mode, graph metadata,
tl.gradcheck catching a wrong backward and tl.detect_anomaly naming the op that made NaN/Inf."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinygrad_lstm as tl
from tinygrad_lstm import nn
from tinygrad_lstm.tensor import Function, apply


def _leaf(values, device, dtype=np.float64):
    return tl.Tensor(np.asarray(values, dtype=dtype), requires_grad=True, device=device)


class CountingIdentity(Function):
    """y = x, counting how often backward runs (to prove each node is visited once)."""

    calls = 0

    def forward(self, a):
        return a

    def backward(self, g):
        CountingIdentity.calls += 1
        return (g,)


# ---------------------------------------------------------------- the walk


def test_a_100000_op_chain_runs_without_recursion(device):
    x = _leaf([1.0, 2.0], device)
    z = x
    for _ in range(100_000):
        z = z + 1.0
    z.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(z.detach().numpy(), [100_001.0, 100_002.0])


def test_each_node_is_visited_once_in_a_graph_with_exponentially_many_paths(device):
    """z = z + z sixty times has 2**60 paths: a walk that followed paths instead of nodes would never end."""
    CountingIdentity.calls = 0
    x = _leaf([1.0], device)
    z = x
    for _ in range(60):
        z = apply(CountingIdentity, z)
        z = z + z
    z.sum().backward()
    assert CountingIdentity.calls == 60
    assert x.grad.item() == 2.0**60


def test_a_shared_node_runs_after_all_its_users_even_at_different_depths(device):
    """p0 reaches the output through three more ops than p1: Split must still wait for both gradients."""
    x = _leaf(np.linspace(-1, 1, 8).reshape(4, 2), device)
    w = _leaf([[0.5, -0.3], [0.2, 0.8]], device)

    def recurrence(x, w):
        p0, p1 = (x @ w.T).split(2)
        return (p1 + p0.tanh() @ w.T).tanh()

    assert tl.gradcheck(recurrence, [x, w])


RANDOM_OPS = {
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b * 0.5,
    "tanh": lambda a, b: a.tanh(),
    "sigmoid": lambda a, b: a.sigmoid() - b,
    "maximum": lambda a, b: tl.maximum(a, b * 0.9),
    "matmul": lambda a, b: (a.reshape(2, 2) @ b.reshape(2, 2)).reshape(4) * 0.5,
    "split-then-reuse": lambda a, b: tl.cat([a.split(2)[1].tanh(), a.split(2)[0] * b[:2]]),
    "index": lambda a, b: a[[3, 0, 0, 1]] * b,
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(program=st.lists(st.tuples(st.sampled_from(sorted(RANDOM_OPS)), st.integers(0, 5), st.integers(0, 5)),
                        min_size=1, max_size=12),
       seed=st.integers(0, 2**16))
def test_random_graphs_with_shared_nodes_have_correct_gradients(device, program, seed):
    """Random programs where any value may feed any later op: the walk must order every shared node right."""
    rng = np.random.default_rng(seed)
    leaves = [_leaf(rng.standard_normal(4), device) for _ in range(2)]

    def run(*inputs):
        values = list(inputs)
        for op, i, j in program:
            back = len(values)  # i and j count back from the newest value, so recent ones are reused often
            values.append(RANDOM_OPS[op](values[-1 - i % back], values[-1 - j % back]))
        return tuple(values[len(inputs):])

    assert tl.gradcheck(run, leaves, atol=1e-6, rtol=1e-4)


def test_diamond_gradients_are_summed_before_the_shared_node_runs(device):
    x = _leaf([0.5, -1.5], device)
    y = x.tanh()
    z = (y * y + y.exp() + 3 * y).sum()
    z.backward()
    t = np.tanh([0.5, -1.5])
    np.testing.assert_allclose(x.grad.numpy(), (2 * t + np.exp(t) + 3) * (1 - t**2))


def test_gradients_accumulate_across_backward_calls(device):
    x = _leaf([1.0, 2.0], device)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 + 2, 3 + 4])
    x.grad = None
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3, 3])


def test_a_leaf_used_twice_in_one_op_gets_both_gradients(device):
    x = _leaf([3.0], device)
    (x * x).backward()
    assert x.grad.item() == 6.0


def test_the_grad_of_a_leaf_is_its_own_array(device):
    """Accumulating must never write into an array the graph (or the user) still holds."""
    x = _leaf([1.0, 2.0], device)
    upstream = tl.Tensor([1.0, 1.0], dtype=np.float64, device=device)
    x.backward(upstream)
    x.backward(upstream)
    np.testing.assert_array_equal(upstream.numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


@pytest.mark.parametrize("make", [
    lambda d: nn.LSTM(3, 4, device=d), lambda d: nn.GRU(3, 4, device=d), lambda d: nn.RNN(3, 4, device=d),
    lambda d: nn.LSTM(3, 4, fused=False, device=d), lambda d: nn.Linear(3, 4, device=d)],
    ids=["lstm", "gru", "rnn", "lstm-composed", "linear"])
def test_gradients_kept_without_a_copy_belong_to_one_leaf_and_accumulate(device, make):
    """Ops with `fresh_gradients` hand their arrays to the leaves uncopied: no two leaves may then share memory
    (b_ih and b_hh get equal gradients), and a second backward must add into each exactly once."""
    module = make(device)
    x = tl.randn(5, 2, 3, device=device, requires_grad=True)
    leaves = [x, *module.parameters()]

    def backward():
        out = module(x)
        (out[0] if isinstance(out, tuple) else out).sum().backward()

    backward()
    first = [leaf.grad.numpy().copy() for leaf in leaves]
    for i, a in enumerate(leaves):
        for b in leaves[i + 1 :]:
            assert not np.shares_memory(a.grad.array, b.grad.array)
    backward()
    for leaf, once in zip(leaves, first, strict=True):
        np.testing.assert_allclose(leaf.grad.numpy(), 2 * once, rtol=1e-6)


def test_retain_graph_allows_a_second_backward(device):
    x = _leaf([1.0, 2.0], device)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])


def test_a_second_backward_through_a_freed_graph_raises_clearly(device):
    x = _leaf([1.0, 2.0], device)
    loss = (x * x).sum()
    loss.backward()
    with pytest.raises(RuntimeError, match=r"'Mul' a second time.*retain_graph=True"):
        loss.backward()


def test_backward_frees_the_saved_arrays(device):
    x = _leaf([1.0, 2.0], device)
    y = x.exp()
    z = (y * x).sum()
    assert y.grad_fn.saved is not None and z.grad_fn.inputs[0].grad_fn.saved is not None
    z.backward()
    assert y.grad_fn.saved is None and y.grad_fn.freed
    assert z.grad_fn.inputs[0].grad_fn.saved is None


def test_ops_that_saved_nothing_can_be_walked_again(device):
    """As in PyTorch: only nodes whose saved arrays were freed refuse a second walk."""
    x = _leaf([1.0, 2.0], device)
    loss = (x + 1.0).sum()
    loss.backward()
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_a_walk_that_raises_leaves_no_stale_gradients_behind(device):
    """After a backward aborted by detect_anomaly, the next backward must not see its half-done sums."""
    x = _leaf([0.0, 1.0], device)
    y = x * 1.0
    loss = y.sqrt().sum() + (y * 2).sum()
    with tl.detect_anomaly(), pytest.raises(FloatingPointError), np.errstate(divide="ignore"):
        loss.backward(retain_graph=True)
    x.grad = None
    (y * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_non_scalar_roots_need_a_gradient_of_their_shape(device):
    x = _leaf([[1.0, 2.0], [3.0, 4.0]], device)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"one-element output.*\(2, 2\)"):
        y.backward()
    with pytest.raises(ValueError, match=r"\(3,\).*\(2, 2\)"):
        y.backward(np.ones(3))
    y.backward([[1.0, 0.0], [0.0, 1.0]], retain_graph=True)
    np.testing.assert_array_equal(x.grad.numpy(), [[2, 0], [0, 2]])
    y.backward(tl.Tensor(np.ones((2, 2)), device=device))
    np.testing.assert_array_equal(x.grad.numpy(), [[4, 2], [2, 4]])


def test_a_one_element_non_scalar_root_needs_no_gradient(device):
    x = _leaf([[2.0]], device)
    (x * 3).backward()
    assert x.grad.item() == 3.0


def test_backward_on_a_tensor_that_does_not_require_grad_raises(device):
    x = tl.Tensor([1.0, 2.0], device=device)
    with pytest.raises(RuntimeError, match="does not require grad"):
        (x * 2).sum().backward()
    y = _leaf([1.0], device)
    with tl.no_grad(), pytest.raises(RuntimeError, match="does not require grad"):
        (y * 2).sum().backward()


def test_backward_of_a_leaf_sets_its_own_grad(device):
    x = _leaf([5.0], device)
    x.backward()
    assert x.grad.item() == 1.0


def test_a_wrong_number_of_gradients_from_backward_is_named(device):
    class Broken(Function):
        def forward(self, a, b):
            return a + b

        def backward(self, g):
            return (g,)

    x, y = _leaf([1.0], device), _leaf([2.0], device)
    with pytest.raises(TypeError, match="Broken.backward must return a tuple.*2 here.*1 values"):
        apply(Broken, x, y).sum().backward()


# ---------------------------------------------------------------- grad mode, detach, requires_grad_


def test_no_grad_records_no_graph_and_restores_the_mode(device):
    x = _leaf([1.0], device)
    assert tl.is_grad_enabled()
    with tl.no_grad():
        assert not tl.is_grad_enabled()
        y = x * 2
        with tl.enable_grad():
            assert tl.is_grad_enabled()
            z = x * 2
        assert not tl.is_grad_enabled()
    assert tl.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    assert z.requires_grad and z.grad_fn is not None


def test_no_grad_is_restored_after_an_exception():
    with pytest.raises(KeyError), tl.no_grad():
        raise KeyError
    assert tl.is_grad_enabled()


def test_no_grad_and_enable_grad_as_decorators(device):
    x = _leaf([1.0], device)

    @tl.no_grad()
    def infer(t):
        return t * 2

    @tl.no_grad
    def infer_bare(t):
        return t * 2

    @tl.enable_grad()
    def train(t):
        return t * 2

    assert not infer(x).requires_grad and not infer_bare(x).requires_grad
    with tl.no_grad():
        assert train(x).requires_grad
    assert infer.__name__ == "infer"
    assert tl.is_grad_enabled()


def test_one_no_grad_object_can_be_reused_and_nested(device):
    x = _leaf([1.0], device)
    mode = tl.no_grad()
    with mode:
        with mode:
            assert not (x * 2).requires_grad
        assert not tl.is_grad_enabled()
    assert tl.is_grad_enabled()


def test_detach_shares_data_and_stops_gradients(device):
    x = _leaf([1.0, 2.0], device)
    y = x * 2
    d = y.detach()
    assert d.is_leaf and not d.requires_grad and d.array is y.array
    (y * d).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), 2 * d.numpy())  # d counted as a constant


def test_requires_grad_(device):
    x = tl.Tensor([1.0], device=device)
    assert x.requires_grad_() is x and x.requires_grad
    x.requires_grad_(False)
    assert not x.requires_grad
    y = _leaf([1.0], device) * 2
    with pytest.raises(RuntimeError, match="only for leaves"):
        y.requires_grad_(False)
    with pytest.raises(TypeError, match="floating point"):
        tl.Tensor(np.arange(3), device=device).requires_grad_()


def test_retain_grad_keeps_non_leaf_gradients(device):
    x = _leaf([1.0, 2.0], device)
    y = (x * 3).retain_grad()
    z = y * y
    z.sum().backward()
    np.testing.assert_allclose(y.grad.numpy(), 2 * y.detach().numpy())
    assert z.grad is None


def test_retain_grads_covers_the_whole_graph(device):
    x = _leaf([1.0, 2.0], device)
    a = x.exp()
    b, c = (a * 2).split(1)
    loss = (b * c).sum()
    tl.retain_grads(loss)
    loss.backward()
    for t in (a, b, c, loss):
        assert t.grad is not None and t.grad.shape == t.shape
    assert loss.grad.item() == 1.0


# ---------------------------------------------------------------- graph metadata and walk_graph


def _ids(edges) -> list[tuple[int, int]]:
    """Edges by identity (== on tensors is elementwise, so lists of tensors are compared by id)."""
    return [(id(a), id(b)) for a, b in edges]


def test_walk_graph_lists_nodes_edges_and_order(device):
    x = _leaf([1.0, 2.0], device)
    x.name = "x"
    w = _leaf([3.0, 4.0], device)
    with tl.name_scope("layer"):
        h = (x * w).tag("product")
        out = h.tanh().sum()
    out.name = "loss"
    view = tl.walk_graph(out)
    assert [op.op for op in view.ops] == ["Mul", "Tanh", "Sum"]
    assert [t.name for t in view.tensors] == ["x", None, None, None, "loss"]
    assert [id(t) for t in view.tensors[:3]] == [id(x), id(w), id(h)] and view.tensors[-1] is out
    mul, tanh, total = view.ops
    expected = [(x, mul), (w, mul), (mul, h), (h, tanh), (tanh, view.tensors[3]), (view.tensors[3], total),
                (total, out)]
    assert _ids(view.edges) == _ids(expected)
    assert all(op.scope == "layer" for op in view.ops) and h.scope == "layer" and x.scope == ""
    assert h.tags == {"product"} and out.grad_fn is total and mul.inputs == (x, w)
    position = {id(t): i for i, t in enumerate(view.tensors)}
    for op in view.ops:  # topological: an op's inputs come before its outputs
        outputs = [b for a, b in view.edges if a is op]
        assert all(position[id(i)] < position[id(o)] for i in op.inputs for o in outputs)


def test_walk_graph_with_a_multi_output_op(device):
    x = _leaf([1.0, 2.0, 3.0, 4.0], device)
    first, second = x.split(2)
    out = first * second
    view = tl.walk_graph(out)
    split, mul = view.ops
    assert split.op == "Split" and split.num_outputs == 2
    assert _ids(view.edges) == _ids([(x, split), (split, first), (split, second), (first, mul), (second, mul),
                                     (mul, out)])
    assert first.grad_fn is split is second.grad_fn
    assert [id(t) for t in view.tensors] == [id(x), id(first), id(second), id(out)]
    only = tl.walk_graph(first)
    assert only.ops == [split] and _ids(only.edges) == _ids([(x, split), (split, first)])
    both = tl.walk_graph(second, first)
    assert both.ops == [split] and [id(t) for t in both.tensors] == [id(x), id(second), id(first)]


def test_walk_graph_lists_shared_nodes_once(device):
    x = _leaf([1.0], device)
    y = x.exp()
    view = tl.walk_graph(y * y + y, y)
    assert [op.op for op in view.ops] == ["Exp", "Mul", "Add"]
    assert len(view.tensors) == len({id(t) for t in view.tensors}) == 4


def test_walk_graph_of_a_leaf_and_under_no_grad(device):
    x = _leaf([1.0], device)
    assert tl.walk_graph(x).tensors[0] is x and len(tl.walk_graph(x).tensors) == 1 and tl.walk_graph(x).ops == []
    with tl.no_grad():
        y = x * 2
    assert tl.walk_graph(y).ops == []


def test_name_scopes_nest_and_are_checked():
    with tl.name_scope("step 1") as outer:
        with tl.name_scope("forget gate") as inner:
            t = tl.Tensor([1.0], requires_grad=True) * 2
        assert outer == "step 1" and inner == "step 1/forget gate"
    assert t.scope == "step 1/forget gate" and t.grad_fn.scope == "step 1/forget gate"
    for bad in ("", "a/b", 3):
        with pytest.raises(ValueError, match="name scope"):
            with tl.name_scope(bad):
                pass
    with pytest.raises(TypeError, match="tags are strings"):
        t.tag(1)


def test_op_names_and_repr(device):
    x = _leaf([1.0], device)
    y = (x @ x).sigmoid()
    assert y.grad_fn.op == "Sigmoid" and "Sigmoid" in repr(y) and "grad_fn=<Sigmoid>" in repr(y)
    assert repr(y.grad_fn) == "<Sigmoid scope=''>"


# ---------------------------------------------------------------- gradcheck


class WrongSquare(Function):
    """x**2 with a deliberately wrong backward (3x instead of 2x)."""

    def forward(self, a):
        self.saved = a
        return a * a

    def backward(self, g):
        return (3 * g * self.saved,)


def test_gradcheck_passes_a_correct_backward(device):
    x = _leaf(np.linspace(-1, 1, 6).reshape(2, 3), device)
    assert tl.gradcheck(lambda t: (t * t).tanh(), [x])


def test_gradcheck_fails_on_a_wrong_backward_and_names_the_worst_element(device):
    x = _leaf([[0.1, -0.2, 0.3], [2.0, 0.5, -0.4]], device)
    with pytest.raises(AssertionError, match=r"input 0 \(shape \(2, 3\)\) at element \(1, 0\)"):
        tl.gradcheck(lambda t: apply(WrongSquare, t).sum(), [x])  # one output: the worst is the largest |x|


def test_gradcheck_checks_only_inputs_that_require_grad(device):
    x = _leaf([[1.0, 2.0], [3.0, 4.0]], device)
    constant = tl.Tensor(np.array([0.5, 2.0]), device=device)
    index = tl.Tensor(np.array([1, 0, 1]), device=device)
    assert tl.gradcheck(lambda a, c, i: a[i] * c, [x, constant, index])
    with pytest.raises(TypeError, match="float64"):
        tl.gradcheck(lambda a: a * 2, [tl.Tensor([1.0], requires_grad=True, device=device)])
    with pytest.raises(ValueError, match="requires_grad"):
        tl.gradcheck(lambda a: a * 2, [constant])


def test_gradcheck_of_a_multi_output_function(device):
    x = _leaf(np.linspace(-1, 1, 6), device)
    assert tl.gradcheck(lambda t: t.split([2, 4]), [x])
    assert tl.gradcheck(lambda t: (t.exp(), t.sum()), [x])


def test_gradcheck_works_under_no_grad(device):
    x = _leaf([1.0, 2.0], device)
    with tl.no_grad():
        assert tl.gradcheck(lambda t: t.exp(), [x])


def test_gradcheck_treats_nan_as_a_failure(device):
    x = _leaf([-1.0, 2.0], device)
    with np.errstate(invalid="ignore"), pytest.raises(AssertionError, match="element"):
        tl.gradcheck(lambda t: t.sqrt(), [x])


# ---------------------------------------------------------------- detect_anomaly


def test_detect_anomaly_names_the_forward_op_and_its_scope(device):
    x = _leaf([1.0, -1.0], device)
    with tl.detect_anomaly(), np.errstate(invalid="ignore"):
        y = x * 2  # fine
        with tl.name_scope("cell"), tl.name_scope("candidate"):
            with pytest.raises(FloatingPointError, match=r"forward of op 'Log' in name scope 'cell/candidate'"):
                y.log()
    assert y.detach().numpy().tolist() == [2.0, -2.0]


def test_detect_anomaly_names_the_backward_op(device):
    x = _leaf([0.0, 4.0], device)
    with tl.name_scope("norm"):
        y = x.sqrt()  # finite forward; d sqrt / dx = inf at 0
    loss = y.sum()
    with tl.detect_anomaly(), np.errstate(divide="ignore"):
        with pytest.raises(FloatingPointError, match=r"backward of op 'Sqrt' in name scope 'norm'"):
            loss.backward()


def test_without_detect_anomaly_nan_passes_silently(device):
    x = _leaf([-1.0], device)
    with np.errstate(invalid="ignore"):
        y = x.log()
    assert np.isnan(y.item())
    with tl.detect_anomaly():
        pass
    with np.errstate(invalid="ignore"):
        x.log().sum().backward()  # the mode was switched off again
