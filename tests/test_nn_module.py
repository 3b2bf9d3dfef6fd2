"""nn.Module and nn.Parameter: discovery, names, state_dicts, devices, modes and repr, as PyTorch."""

import numpy as np
import pytest

import tinygrad_lstm as tl
from tinygrad_lstm import nn


class Block(nn.Module):
    def __init__(self, dtype=None, device=None):
        super().__init__()
        self.proj = nn.Linear(3, 4, dtype=dtype, device=device)
        self.scale = nn.Parameter(tl.ones(4, dtype=dtype, device=device))
        self.act = nn.Tanh()
        self.not_a_parameter = tl.ones(2)

    def forward(self, x):
        return self.act(self.proj(x)) * self.scale


class Net(nn.Module):
    def __init__(self, dtype=None, device=None):
        super().__init__()
        self.block = Block(dtype, device)
        self.head = nn.Linear(4, 2, bias=False, dtype=dtype, device=device)

    def forward(self, x):
        return self.head(self.block(x))


def test_parameter_is_a_leaf_that_requires_grad():
    p = nn.Parameter(np.zeros((2, 3)))
    assert p.requires_grad and p.is_leaf and p.dtype == np.float64
    assert nn.Parameter(tl.ones(2)).dtype == np.float32
    assert repr(p).startswith("Parameter containing:\ntensor(")
    assert not nn.Parameter(tl.ones(2), requires_grad=False).requires_grad
    with pytest.raises(TypeError, match="floating point"):
        nn.Parameter(np.arange(3))


def test_parameters_and_submodules_are_found_by_attribute_with_dotted_names():
    net = Net()
    # a module's own parameters first, then its children's, in assignment order (as PyTorch)
    assert [n for n, _ in net.named_parameters()] == ["block.scale", "block.proj.weight", "block.proj.bias",
                                                       "head.weight"]
    assert [n for n, _ in net.named_modules()] == ["", "block", "block.proj", "block.act", "head"]
    assert list(net.children()) == [net.block, net.head]
    assert len(list(net.modules())) == 5
    assert [n for n, _ in net.block.named_parameters(recurse=False)] == ["scale"]
    assert net.head.bias is None and "head.bias" not in dict(net.named_parameters())
    assert net.block.proj.weight.name == "weight"  # parameters are named after their attribute


def test_shared_parameters_and_modules_are_listed_once():
    shared = nn.Linear(2, 2)
    seq = nn.Sequential(shared, nn.Tanh(), shared)
    assert len(list(seq.parameters())) == 2
    assert [n for n, _ in seq.named_modules()] == ["", "0", "1"]


def test_reassigning_an_attribute_replaces_the_registration():
    net = Net()
    net.head = tl.ones(2)  # a plain tensor is not a parameter
    assert "head.weight" not in dict(net.named_parameters()) and net.head.shape == (2,)
    del net.block
    assert list(net.parameters()) == []


def test_forgetting_super_init_is_a_clear_error():
    class Broken(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(2))

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Broken()


def test_state_dict_maps_names_to_detached_tensors_sharing_the_data():
    net = Net()
    state = net.state_dict()
    assert list(state) == [n for n, _ in net.named_parameters()]
    for name, p in net.named_parameters():
        assert isinstance(state[name], tl.Tensor) and not isinstance(state[name], nn.Parameter)
        assert not state[name].requires_grad and state[name].is_leaf
        np.testing.assert_array_equal(state[name].detach().numpy(), p.detach().numpy())
    net.head.weight.array[...] = 7.0
    assert (state["head.weight"].numpy() == 7.0).all()


def test_load_state_dict_accepts_tensors_and_arrays_and_copies_in_place():
    source, target = Net(dtype=np.float64), Net()
    weight_before = target.head.weight
    arrays = {k: v.numpy() for k, v in source.state_dict().items()}  # float64 arrays into a float32 module
    arrays["head.weight"] = source.state_dict()["head.weight"]  # and one Tensor
    assert target.load_state_dict(arrays) == ([], [])
    assert target.head.weight is weight_before and target.head.weight.dtype == np.float32
    for name, p in target.named_parameters():
        np.testing.assert_allclose(p.detach().numpy(), source.state_dict()[name].detach().numpy(), rtol=1e-7)
    arrays["block.scale"][...] = 0  # the module holds a copy, not the caller's array
    assert (target.block.scale.detach().numpy() == 1).all()


def test_load_state_dict_names_missing_unexpected_and_misshapen_keys_and_changes_nothing():
    net = Net()
    good = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    before = {k: v.copy() for k, v in good.items()}
    missing = {k: v for k, v in good.items() if k != "block.scale"}
    with pytest.raises(KeyError, match=r"missing keys \['block.scale'\]"):
        net.load_state_dict(missing)
    with pytest.raises(KeyError, match=r"unexpected keys \['extra.weight'\]"):
        net.load_state_dict({**good, "extra.weight": np.zeros(2)})
    bad_shape = {k: v + 1 for k, v in good.items()}
    bad_shape["head.weight"] = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"'head.weight' has shape \(3, 4\).*shape \(2, 4\)"):
        net.load_state_dict(bad_shape)
    for name, value in net.state_dict().items():  # nothing was half-loaded
        np.testing.assert_array_equal(value.numpy(), before[name])
    with pytest.raises(TypeError, match="dict"):
        net.load_state_dict([("head.weight", np.zeros((2, 4)))])


def test_load_state_dict_not_strict_reports_missing_and_unexpected():
    net = Net()
    state = {"head.weight": np.full((2, 4), 3.0), "other": np.zeros(1)}
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert unexpected == ["other"] and "block.scale" in missing and "head.weight" not in missing
    assert (net.head.weight.detach().numpy() == 3.0).all()
    with pytest.raises(ValueError, match="head.weight"):
        net.load_state_dict({"head.weight": np.zeros(8)}, strict=False)


def test_constructors_take_dtype_and_device(device):
    net = Net(dtype=np.float64, device=device)
    assert all(p.dtype == np.float64 and p.device == tl.Tensor(0.0, device=device).device for p in net.parameters())
    default = Net()
    assert all(p.dtype == np.float32 and p.device == "cpu" for p in default.parameters())
    out = net(tl.randn(5, 3, dtype=np.float64, device=device))
    assert out.shape == (5, 2) and out.dtype == np.float64


def test_to_moves_and_casts_in_place_keeping_parameter_identity(device):
    net = Net()
    params = list(net.parameters())
    net(tl.randn(2, 3)).sum().backward()
    assert net.to(device) is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.device == params[0].device for p in net.parameters())
    net.double()
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in params)
    assert all(p.requires_grad and p.is_leaf for p in params)
    out = net(tl.randn(2, 3, dtype=np.float64, device=params[0].device))
    assert out.dtype == np.float64
    net.float().cpu()
    assert all(p.dtype == np.float32 and p.device == "cpu" for p in params)


def test_train_and_eval_set_the_flag_on_every_module():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net and not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_zero_grad_and_requires_grad_():
    net = Net()
    net(tl.randn(2, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.numpy().any() for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not net(tl.randn(2, 3)).requires_grad
    net.requires_grad_()
    assert net(tl.randn(2, 3)).requires_grad


def test_apply_visits_children_first_then_the_module():
    visited = []
    Net().apply(lambda m: visited.append(type(m).__name__))
    assert visited == ["Linear", "Tanh", "Block", "Linear", "Net"]


def test_repr_is_pytorchs(torch):
    ours = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Sigmoid(), nn.ReLU(), nn.Linear(2, 1, bias=False),
                         nn.Embedding(10, 3), nn.Embedding(5, 2, padding_idx=0))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh(), torch.nn.Sigmoid(), torch.nn.ReLU(),
                                 torch.nn.Linear(2, 1, bias=False), torch.nn.Embedding(10, 3),
                                 torch.nn.Embedding(5, 2, padding_idx=0))
    assert repr(ours) == repr(theirs)
    nested = nn.Sequential(nn.Sequential(nn.Linear(1, 1)))
    assert repr(nested) == repr(torch.nn.Sequential(torch.nn.Sequential(torch.nn.Linear(1, 1))))
    assert repr(Net()).startswith("Net(\n  (block): Block(\n    (proj): Linear(in_features=3")
