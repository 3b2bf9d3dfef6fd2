"""The sequence layers' PyTorch options: bidirectional, dropout, proj_size, packed sequences, batch 0.

Every comparison is against PyTorch in float64 to 1e-9, values and every gradient (a random upstream
gradient), with PyTorch's state_dict loaded into ours and ours loaded back into PyTorch's.
"""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tinygrad_lstm as tl
from tinygrad_lstm import nn
from tinygrad_lstm.nn import functional as F
from tinygrad_lstm.nn.utils import rnn as rnn_utils

STEPS, BATCH, INPUT, HIDDEN, PROJ = 6, 4, 3, 5, 2
LENGTHS = [4, 6, 1, 3]  # unsorted, the longest not first
TOL = 1e-9
KINDS = ["rnn", "gru", "lstm_fused", "lstm_composed"]


def _modules(torch, kind, device, **options):
    """Ours (float64, on `device`) and PyTorch's, sharing PyTorch's weights; ours' state_dict loads back into torch."""
    base = kind.split("_")[0]
    theirs = getattr(torch.nn, base.upper())(INPUT, HIDDEN, **options).double()
    if base == "lstm":
        options["fused"] = kind == "lstm_fused"
    ours = getattr(nn, base.upper())(INPUT, HIDDEN, dtype=np.float64, device=device, **options)
    state = {key: value.detach().numpy() for key, value in theirs.state_dict().items()}
    ours.load_state_dict(state)
    assert list(ours.state_dict()) == list(theirs.state_dict())  # PyTorch's names, in PyTorch's order
    back = getattr(torch.nn, base.upper())(INPUT, HIDDEN, **{k: v for k, v in options.items() if k != "fused"})
    back.double().load_state_dict({k: torch.tensor(v.detach().numpy()) for k, v in ours.state_dict().items()})
    return ours, theirs


def _leaf(torch, data, device):
    return tl.Tensor(data, device=device, requires_grad=True), torch.tensor(data, requires_grad=True)


def _states(torch, kind, layers, batch, device, rng, proj=0):
    """Random initial states (h0, and c0 for an LSTM) on both sides, or None."""
    sizes = [proj or HIDDEN, HIDDEN] if kind.startswith("lstm") else [HIDDEN]
    pairs = [_leaf(torch, rng.standard_normal((layers, batch, size)), device) for size in sizes]
    if kind.startswith("lstm"):
        return pairs, (pairs[0][0], pairs[1][0]), (pairs[0][1], pairs[1][1])
    return pairs, pairs[0][0], pairs[0][1]


def _flat(result):
    output, state = result
    output = output.data if isinstance(output, tuple) else output
    return [output, *(state if isinstance(state, tuple) else (state,))]


def _compare(torch, ours_result, torch_result, leaves, ours, theirs, rng, device):
    """Values, then one random upstream gradient backpropagated: the leaves' and every parameter's gradient."""
    ours_outs, torch_outs = _flat(ours_result), _flat(torch_result)
    ours_total, torch_total = 0, 0
    for o, t in zip(ours_outs, torch_outs, strict=True):
        assert o.shape == tuple(t.shape)
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=0, atol=TOL)
        u = rng.standard_normal(o.shape)
        ours_total = ours_total + (o * tl.Tensor(u, device=device)).sum()
        torch_total = torch_total + (t * torch.tensor(u)).sum()
    ours_total.backward()
    torch_total.backward()
    for mine, its in leaves:
        np.testing.assert_allclose(mine.grad.numpy(), its.grad.numpy(), rtol=0, atol=TOL)
    theirs_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), theirs_params[name].grad.numpy(), rtol=0, atol=TOL, err_msg=name)


CONFIGS = [  # num_layers, bidirectional, proj_size, batch_first, give_state, dropout (inactive: eval mode)
    (1, True, 0, False, True, 0.0),
    (2, True, 0, True, False, 0.5),
    (2, False, PROJ, False, True, 0.0),
    (2, True, PROJ, True, True, 0.3),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers, bidirectional, proj, batch_first, give_state, p", CONFIGS)
def test_options_match_torch(device, torch, kind, layers, bidirectional, proj, batch_first, give_state, p):
    if proj and not kind.startswith("lstm"):
        pytest.skip("proj_size is an LSTM option")
    rng = np.random.default_rng(layers + 2 * bidirectional + proj)
    options = {"num_layers": layers, "bidirectional": bidirectional, "batch_first": batch_first, "dropout": p}
    if proj:
        options["proj_size"] = proj
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dropout with one layer warns on both sides
        ours, theirs = _modules(torch, kind, device, **options)
    ours.eval(), theirs.eval()
    x, tx = _leaf(torch, rng.standard_normal((BATCH, STEPS, INPUT) if batch_first else (STEPS, BATCH, INPUT)), device)
    pairs, state, torch_state = _states(torch, kind, layers * (1 + bidirectional), BATCH, device, rng, proj)
    if not give_state:
        pairs, state, torch_state = [], None, None
    _compare(torch, ours(x, state), theirs(tx, torch_state), [(x, tx), *pairs], ours, theirs, rng, device)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bidirectional, proj, enforce_sorted", [(True, 0, False), (False, PROJ, True),
                                                                 (True, PROJ, False)])
def test_packed_sequences_match_torch(device, torch, kind, bidirectional, proj, enforce_sorted):
    """Unequal lengths: the packed output, h_n at each sequence's true last step, and every gradient."""
    if proj and not kind.startswith("lstm"):
        pytest.skip("proj_size is an LSTM option")
    rng = np.random.default_rng(7)
    options = {"num_layers": 2, "bidirectional": bidirectional, **({"proj_size": proj} if proj else {})}
    ours, theirs = _modules(torch, kind, device, **options)
    lengths = sorted(LENGTHS, reverse=True) if enforce_sorted else LENGTHS
    x, tx = _leaf(torch, rng.standard_normal((STEPS, BATCH, INPUT)), device)
    pairs, state, torch_state = _states(torch, kind, 2 * (1 + bidirectional), BATCH, device, rng, proj)
    packed = rnn_utils.pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)
    torch_packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), enforce_sorted=enforce_sorted)
    ours_result, torch_result = ours(packed, state), theirs(torch_packed, torch_state)
    assert isinstance(ours_result[0], rnn_utils.PackedSequence)
    padded, out_lengths = rnn_utils.pad_packed_sequence(ours_result[0], batch_first=True)
    torch_padded, _ = torch.nn.utils.rnn.pad_packed_sequence(torch_result[0], batch_first=True)
    np.testing.assert_allclose(padded.detach().numpy(), torch_padded.detach().numpy(), rtol=0, atol=TOL)
    assert out_lengths.tolist() == lengths
    _compare(torch, ours_result, torch_result, [(x, tx), *pairs], ours, theirs, rng, device)


@pytest.mark.parametrize("kind", KINDS)
def test_h_n_is_the_state_at_each_sequence_own_last_step(device, kind):
    """Packing a sequence with padding after it gives the h_n of the sequence run alone."""
    rng = np.random.default_rng(3)
    base = kind.split("_")[0]
    options = {"fused": kind == "lstm_fused"} if base == "lstm" else {}
    layer = getattr(nn, base.upper())(INPUT, HIDDEN, bidirectional=True, dtype=np.float64, device=device, **options)
    x = rng.standard_normal((STEPS, 2, INPUT))
    packed = rnn_utils.pack_padded_sequence(tl.Tensor(x, device=device), [STEPS, 2])
    _, state = layer(packed)
    _, alone = layer(tl.Tensor(x[:2, 1], device=device))
    h_n = state[0] if isinstance(state, tuple) else state
    alone = alone[0] if isinstance(alone, tuple) else alone
    np.testing.assert_allclose(h_n.detach().numpy()[:, 1], alone.detach().numpy(), rtol=0, atol=TOL)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bidirectional, proj", [(False, 0), (True, PROJ)])
def test_batch_of_zero_sequences_matches_torch(device, torch, kind, bidirectional, proj):
    if proj and not kind.startswith("lstm"):
        pytest.skip("proj_size is an LSTM option")
    options = {"num_layers": 2, "bidirectional": bidirectional, **({"proj_size": proj} if proj else {})}
    ours, theirs = _modules(torch, kind, device, **options)
    x = tl.zeros(STEPS, 0, INPUT, dtype=np.float64, device=device)
    ours_outs, torch_outs = _flat(ours(x)), _flat(theirs(torch.zeros(STEPS, 0, INPUT, dtype=torch.float64)))
    assert [o.shape for o in ours_outs] == [tuple(t.shape) for t in torch_outs]
    sum(o.sum() for o in ours_outs).backward()
    assert all(float(np.abs(p.grad.numpy()).max(initial=0)) == 0 for p in ours.parameters())


def test_dropout_acts_between_layers_in_training_only(device):
    """In training, a 2-layer LSTM with dropout is layer 1, F.dropout (same random numbers), layer 2."""
    rng = np.random.default_rng(5)
    stacked = nn.LSTM(INPUT, HIDDEN, num_layers=2, dropout=0.5, dtype=np.float64, device=device)
    first = nn.LSTM(INPUT, HIDDEN, dtype=np.float64, device=device)
    second = nn.LSTM(HIDDEN, HIDDEN, dtype=np.float64, device=device)
    state = stacked.state_dict()
    first.load_state_dict({k: v for k, v in state.items() if k.endswith("_l0")})
    second.load_state_dict({k.replace("_l1", "_l0"): v for k, v in state.items() if k.endswith("_l1")})
    x = tl.Tensor(rng.standard_normal((STEPS, BATCH, INPUT)), device=device)
    tl.manual_seed(11)
    output, _ = stacked(x)
    tl.manual_seed(11)
    expected, _ = second(F.dropout(first(x)[0], 0.5))
    np.testing.assert_allclose(output.detach().numpy(), expected.detach().numpy(), rtol=0, atol=TOL)
    stacked.eval()
    evaluated, _ = stacked(x)
    np.testing.assert_allclose(evaluated.detach().numpy(), second(first(x)[0])[0].detach().numpy(), rtol=0, atol=TOL)
    assert not np.allclose(evaluated.detach().numpy(), output.detach().numpy())


def test_gradcheck_through_dropout_projection_and_packing(device):
    """Every option at once, fused, against central differences (the dropout mask re-seeded for each run)."""
    rng = np.random.default_rng(9)
    layer = nn.LSTM(2, 2, num_layers=2, dropout=0.4, bidirectional=True, proj_size=1, fused=True,
                    dtype=np.float64, device=device)
    x = tl.Tensor(rng.standard_normal((4, 3, 2)), device=device, requires_grad=True)

    def run(x, *parameters):  # gradcheck nudges the parameters' data in place
        tl.manual_seed(1)
        output, (h, c) = layer(rnn_utils.pack_padded_sequence(x, [2, 4, 1], enforce_sorted=False))
        return output.data, h, c

    assert tl.gradcheck(run, [x, *layer.parameters()])


def test_packing_helpers_match_torch(device, torch):
    rng = np.random.default_rng(2)
    sequences = [rng.standard_normal((n, 2)) for n in LENGTHS]
    ours = [tl.Tensor(s, device=device, requires_grad=True) for s in sequences]
    theirs = [torch.tensor(s, requires_grad=True) for s in sequences]
    for side in ("right", "left"):
        np.testing.assert_array_equal(rnn_utils.pad_sequence(ours, batch_first=True, padding_value=-1,
                                                             padding_side=side).detach().numpy(),
                                      torch.nn.utils.rnn.pad_sequence(theirs, batch_first=True, padding_value=-1,
                                                                      padding_side=side).detach().numpy())
    packed = rnn_utils.pack_sequence(ours, enforce_sorted=False)
    torch_packed = torch.nn.utils.rnn.pack_sequence(theirs, enforce_sorted=False)
    np.testing.assert_array_equal(packed.data.detach().numpy(), torch_packed.data.detach().numpy())
    assert packed.batch_sizes.tolist() == torch_packed.batch_sizes.tolist()
    assert packed.sorted_indices.tolist() == torch_packed.sorted_indices.tolist()
    padded, lengths = rnn_utils.pad_packed_sequence(packed, padding_value=7.0, total_length=8)
    torch_padded, torch_lengths = torch.nn.utils.rnn.pad_packed_sequence(torch_packed, padding_value=7.0,
                                                                         total_length=8)
    np.testing.assert_array_equal(padded.detach().numpy(), torch_padded.detach().numpy())
    assert lengths.tolist() == torch_lengths.tolist()
    u = rng.standard_normal(padded.shape)
    (padded * tl.Tensor(u, device=device)).sum().backward()
    (torch_padded * torch.tensor(u)).sum().backward()
    for mine, its in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(mine.grad.numpy(), its.grad.numpy())


def test_reverse_permutation_reverses_each_sequence_within_its_length():
    sizes = [4, 3, 2, 1, 1]  # lengths 5, 3, 2, 1
    order = rnn_utils.reversed_in_time(sizes)
    assert sorted(order.tolist()) == list(range(11))
    assert order[order].tolist() == list(range(11))
    assert order[:4].tolist() == [10, 7 + 1, 4 + 2, 3]  # step 0 of each sequence <- its last step


# ---------------------------------------------------------------- bad arguments and inputs


@pytest.mark.parametrize("options, message", [
    ({"dropout": -0.1}, "dropout must be a number in \\[0, 1\\]"),
    ({"dropout": 1.5}, "dropout must be a number in \\[0, 1\\]"),
    ({"dropout": True}, "dropout must be a number"),
    ({"proj_size": HIDDEN}, "proj_size \\(5\\) must be smaller than hidden_size \\(5\\)"),
    ({"proj_size": -1}, "proj_size must be a positive integer, or 0"),
    ({"bidirectional": 1}, "bidirectional must be True or False"),
])
def test_bad_options_are_named(options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        nn.LSTM(INPUT, HIDDEN, num_layers=2, **options)


def test_hidden_size_zero_is_refused_as_in_torch(torch):
    with pytest.raises(ValueError):
        torch.nn.LSTM(INPUT, 0)
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        nn.LSTM(INPUT, 0)


def test_dropout_with_one_layer_warns():
    with pytest.warns(UserWarning, match="between layers only"):
        nn.GRU(INPUT, HIDDEN, dropout=0.2)


@pytest.mark.parametrize("lengths, enforce_sorted, message", [
    ([6, 4, 3, 5], True, "not in decreasing order"),
    ([7, 4, 3, 1], False, "longer than the sequence \\(6 steps\\)"),
    ([6, 0, 3, 1], False, "at least 1"),
    ([6, 3, 1], False, "3 lengths for a batch of 4"),
    ([6.0, 3.0, 2.0, 1.0], False, "1-D list of ints"),
])
def test_bad_lengths_are_named(lengths, enforce_sorted, message):
    x = tl.zeros(STEPS, BATCH, INPUT)
    with pytest.raises((ValueError, TypeError), match=message):
        rnn_utils.pack_padded_sequence(x, lengths, enforce_sorted=enforce_sorted)


def test_bad_inputs_to_the_new_options_are_named():
    layer = nn.LSTM(INPUT, HIDDEN, num_layers=2, bidirectional=True, proj_size=PROJ)
    x = tl.zeros(STEPS, BATCH, INPUT)
    with pytest.raises(ValueError, match=r"initial state h0 has shape \(2, 4, 2\), expected \(4, 4, 2\) "
                                         r"\(2 \* num_layers 4"):
        layer(x, (tl.zeros(2, BATCH, PROJ), tl.zeros(4, BATCH, HIDDEN)))
    with pytest.raises(ValueError, match=r"initial state c0 has shape \(4, 4, 2\), expected \(4, 4, 5\)"):
        layer(x, (tl.zeros(4, BATCH, PROJ), tl.zeros(4, BATCH, PROJ)))
    packed = rnn_utils.pack_padded_sequence(tl.zeros(STEPS, BATCH, INPUT + 1), [6, 5, 2, 1])
    with pytest.raises(ValueError, match="PackedSequence's data must be \\(sum\\(lengths\\), input_size 3\\)"):
        layer(packed)
    with pytest.raises(TypeError, match="PackedSequence data has dtype float64"):
        layer(rnn_utils.pack_padded_sequence(tl.zeros(STEPS, BATCH, INPUT, dtype=np.float64), [6, 5, 2, 1]))
    with pytest.raises(ValueError, match="batch_sizes \\[3, 4\\] must be positive, non-increasing"):
        layer(rnn_utils.PackedSequence(tl.zeros(7, INPUT), tl.Tensor(np.array([3, 4]))))


def test_graph_names_the_reverse_direction_and_the_projection():
    layer = nn.LSTM(INPUT, HIDDEN, bidirectional=True, proj_size=PROJ, fused=False)
    output, _ = layer(tl.randn(3, 2, INPUT))
    scopes = {op.scope for op in tl.walk_graph(output).ops}
    assert "reverse/step 3/forget gate" in scopes
    assert "step 1/projection" in scopes and "reverse/step 1/projection" in scopes


@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_bidirectional_input_matches_torch(device, torch, kind):
    rng = np.random.default_rng(4)
    proj = {"proj_size": PROJ} if kind.startswith("lstm") else {}
    ours, theirs = _modules(torch, kind, device, num_layers=2, bidirectional=True, **proj)
    x, tx = _leaf(torch, rng.standard_normal((STEPS, INPUT)), device)
    sizes = [PROJ, HIDDEN] if proj else [HIDDEN]
    pairs = [_leaf(torch, rng.standard_normal((4, size)), device) for size in sizes]
    state = tuple(p for p, _ in pairs) if proj else pairs[0][0]
    torch_state = tuple(t for _, t in pairs) if proj else pairs[0][1]
    _compare(torch, ours(x, state), theirs(tx, torch_state), [(x, tx), *pairs], ours, theirs, rng, device)


def test_readme_example_of_the_options():
    """The README's example, as written there: shapes of the packed output, h_n, c_n and the padded output."""
    from tinygrad_lstm.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    lstm = nn.LSTM(3, 8, num_layers=2, bidirectional=True, dropout=0.2, proj_size=4)
    assert "weight_hr_l0_reverse" in lstm.state_dict()
    packed = pack_padded_sequence(tl.randn(7, 3, 3), lengths=[5, 7, 2], enforce_sorted=False)
    out, (h_n, c_n) = lstm(packed)
    padded, lengths = pad_packed_sequence(out)
    assert out.data.shape == (14, 8) and h_n.shape == (4, 3, 4) and c_n.shape == (4, 3, 8)
    assert padded.shape == (7, 3, 8) and lengths.tolist() == [5, 7, 2]
    assert np.all(padded.detach().numpy()[2:, 2] == 0) and np.all(padded.detach().numpy()[5:, 0] == 0)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lengths=st.lists(st.integers(1, 5), min_size=1, max_size=4), bidirectional=st.booleans(),
       batch_first=st.booleans(), seed=st.integers(0, 2**16))
def test_random_packed_batches_match_torch(torch, lengths, bidirectional, batch_first, seed):
    """Random batches of unequal lengths through packing, a GRU layer and unpacking: values and input gradients."""
    rng = np.random.default_rng(seed)
    ours, theirs = _modules(torch, "gru", "cpu", bidirectional=bidirectional)
    steps = max(lengths)
    data = rng.standard_normal((len(lengths), steps, INPUT) if batch_first else (steps, len(lengths), INPUT))
    x, tx = _leaf(torch, data, "cpu")
    output, h_n = ours(rnn_utils.pack_padded_sequence(x, lengths, batch_first, enforce_sorted=False))
    t_output, t_h_n = theirs(torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first,
                                                                      enforce_sorted=False))
    padded, _ = rnn_utils.pad_packed_sequence(output, batch_first)
    t_padded, _ = torch.nn.utils.rnn.pad_packed_sequence(t_output, batch_first)
    _compare(torch, (padded, h_n), (t_padded, t_h_n), [(x, tx)], ours, theirs, rng, "cpu")
