"""Optimizers and clip_grad_norm_ against PyTorch: float64 trajectories over many steps, state, errors."""

import math

import numpy as np
import pytest

import tinygrad_lstm as tl
from tinygrad_lstm import nn

STEPS = 20
SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.5),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
    dict(lr=0.1, momentum=0.5, dampening=0.1, weight_decay=0.1),
    dict(lr=0.1, weight_decay=0.3),
]
ADAM_CONFIGS = [
    dict(),
    dict(lr=0.05, weight_decay=0.1),
    dict(lr=0.05, betas=(0.5, 0.9), eps=1e-3),  # 1 - beta1 >= 0.5 takes lerp's other branch
    dict(lr=0.02, amsgrad=True, weight_decay=0.01),
]
ADAMW_CONFIGS = [dict(), dict(lr=0.05, weight_decay=0.1), dict(lr=0.05, weight_decay=0.2, amsgrad=True)]
CASES = ([("SGD", c) for c in SGD_CONFIGS] + [("Adam", c) for c in ADAM_CONFIGS]
         + [("AdamW", c) for c in ADAMW_CONFIGS])


def shapes_and_gradients(seed=0, steps=STEPS):
    rng = np.random.default_rng(seed)
    shapes = [(4, 3), (4,), (2, 4)]
    initial = [rng.standard_normal(s) for s in shapes]
    grads = [[rng.standard_normal(s) * (0.1 if k % 3 else 1.0) for s in shapes] for k in range(steps)]
    return initial, grads


def run_ours(name, config, initial, grads, device="cpu"):
    params = [nn.Parameter(w, device=device) for w in initial]
    opt = getattr(nn.optim, name)(params, **config)
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = tl.Tensor(g, device=device)
        opt.step()
    return params, opt


def run_torch(torch, name, config, initial, grads):
    params = [torch.nn.Parameter(torch.tensor(w)) for w in initial]
    opt = getattr(torch.optim, name)(params, foreach=False, **config)
    trajectory = []
    for step_grads in grads:
        for p, g in zip(params, step_grads, strict=True):
            p.grad = torch.tensor(g)
        opt.step()
        trajectory.append([p.detach().numpy().copy() for p in params])
    return params, opt, trajectory


@pytest.mark.parametrize(("name", "config"), CASES, ids=[f"{n}-{c}" for n, c in CASES])
def test_float64_trajectory_matches_torch_step_by_step(torch, name, config, device):
    initial, grads = shapes_and_gradients()
    _, _, trajectory = run_torch(torch, name, config, initial, grads)
    params = [nn.Parameter(w, device=device) for w in initial]
    opt = getattr(nn.optim, name)(params, **config)
    for step_grads, expected in zip(grads, trajectory, strict=True):
        for p, g in zip(params, step_grads, strict=True):
            p.grad = tl.Tensor(g, device=device)
        opt.step()
        for p, e in zip(params, expected, strict=True):
            np.testing.assert_allclose(p.detach().numpy(), e, rtol=1e-12, atol=1e-12)


def test_training_a_model_end_to_end_matches_torch(torch, device):
    """Our gradients and our Adam together follow PyTorch's float64 run of the same model."""
    ours = nn.Sequential(nn.Linear(3, 8, dtype=np.float64, device=device), nn.Tanh(),
                         nn.Linear(8, 4, dtype=np.float64, device=device))
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4)).double()
    theirs.load_state_dict({k: torch.tensor(v.numpy()) for k, v in ours.state_dict().items()})
    opt = nn.optim.AdamW(ours.parameters(), lr=0.05)
    ref_opt = torch.optim.AdamW(theirs.parameters(), lr=0.05, foreach=False)
    rng = np.random.default_rng(5)
    for _ in range(STEPS):
        x, y = rng.standard_normal((6, 3)), rng.integers(0, 4, 6)
        opt.zero_grad()
        nn.F.cross_entropy(ours(tl.Tensor(x, device=device)), y).backward()
        ref_opt.zero_grad()
        torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y)).backward()
        opt.step()
        ref_opt.step()
    for name, value in theirs.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name].numpy(), value.numpy(), rtol=1e-10, atol=1e-12)


def test_param_groups_match_torch(torch, device):
    initial, grads = shapes_and_gradients(seed=1)
    params = [nn.Parameter(w, device=device) for w in initial]
    ref = [torch.nn.Parameter(torch.tensor(w)) for w in initial]
    opt = nn.optim.SGD([{"params": params[:2]}, {"params": params[2:], "lr": 0.5, "nesterov": False}],
                       lr=0.1, momentum=0.9)
    ref_opt = torch.optim.SGD([{"params": ref[:2]}, {"params": ref[2:], "lr": 0.5}], lr=0.1, momentum=0.9,
                              foreach=False)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    for step_grads in grads:
        for p, r, g in zip(params, ref, step_grads, strict=True):
            p.grad, r.grad = tl.Tensor(g, device=device), torch.tensor(g)
        opt.step()
        ref_opt.step()
    for p, r in zip(params, ref, strict=True):
        np.testing.assert_allclose(p.detach().numpy(), r.detach().numpy(), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [params[0]]})
    with pytest.raises(ValueError, match=r"unknown hyperparameters \['betas'\]"):
        nn.optim.SGD([{"params": params[:1], "betas": (0.9, 0.99)}], lr=0.1)


def test_state_dict_has_torchs_layout(torch, device):
    initial, grads = shapes_and_gradients(steps=3)
    _, opt = run_ours("Adam", dict(lr=0.01), initial, grads, device)
    _, ref_opt, _ = run_torch(torch, "Adam", dict(lr=0.01), initial, grads)
    ours, theirs = opt.state_dict(), ref_opt.state_dict()
    assert sorted(ours) == ["param_groups", "state"]
    assert list(ours["state"]) == list(theirs["state"]) == [0, 1, 2]
    assert ours["param_groups"][0]["params"] == theirs["param_groups"][0]["params"]
    assert set(ours["param_groups"][0]) <= set(theirs["param_groups"][0])
    for index, entry in ours["state"].items():
        assert sorted(entry) == sorted(theirs["state"][index])
        assert entry["step"] == 3 == int(theirs["state"][index]["step"])
        for key in ("exp_avg", "exp_avg_sq"):
            np.testing.assert_allclose(entry[key].numpy(), theirs["state"][index][key].numpy(), rtol=1e-12)


@pytest.mark.parametrize(("name", "config"), [("SGD", SGD_CONFIGS[3]), ("Adam", ADAM_CONFIGS[3])])
def test_state_dict_round_trips_through_save_and_load(tmp_path, name, config, device):
    """Resuming from a saved optimizer continues exactly as the uninterrupted run."""
    initial, grads = shapes_and_gradients(seed=2)
    straight, _ = run_ours(name, config, initial, grads, device)
    first, opt = run_ours(name, config, initial, grads[:7], device)
    snapshot = opt.state_dict()
    path = tl.save({"optimizer": snapshot, "params": {str(i): p for i, p in enumerate(first)}}, tmp_path / "opt")
    opt.step()  # the snapshot is a copy: later steps do not leak into it
    loaded = tl.load(path)
    resumed = [nn.Parameter(loaded["params"][str(i)], device=device) for i in range(len(first))]
    fresh = getattr(nn.optim, name)(resumed, lr=123.0)  # hyperparameters come back from the state too
    fresh.load_state_dict(loaded["optimizer"])
    assert fresh.param_groups[0]["lr"] == config["lr"]
    assert fresh.param_groups[0].keys() == opt.param_groups[0].keys()
    for step_grads in grads[7:]:
        for p, g in zip(resumed, step_grads, strict=True):
            p.grad = tl.Tensor(g, device=device)
        fresh.step()
    for a, b in zip(straight, resumed, strict=True):
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_load_state_dict_names_what_does_not_fit():
    initial, grads = shapes_and_gradients(steps=2)
    _, opt = run_ours("Adam", {}, initial, grads)
    state = opt.state_dict()
    with pytest.raises(ValueError, match="group 0 has 3 parameters in the state, 2 in the optimizer"):
        nn.optim.Adam([nn.Parameter(w) for w in initial[:2]]).load_state_dict(state)
    with pytest.raises(ValueError, match="1 parameter groups, the optimizer 2"):
        params = [nn.Parameter(w) for w in initial]
        nn.optim.Adam([{"params": params[:1]}, {"params": params[1:]}]).load_state_dict(state)
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 0 has shape \(4, 3\).*shape \(3, 4\)"):
        nn.optim.Adam([nn.Parameter(np.zeros((3, 4))), *[nn.Parameter(w) for w in initial[1:]]]).load_state_dict(state)
    with pytest.raises(ValueError, match="hyperparameters"):
        nn.optim.SGD([nn.Parameter(w) for w in initial], lr=0.1).load_state_dict(state)


def test_step_updates_in_place_without_touching_grads_or_the_host(device, monkeypatch):
    """No .item()/.numpy()/float() in step: hyperparameters are Python numbers, state stays on the device."""
    params = [nn.Parameter(tl.randn(3, 2, device=device)), nn.Parameter(tl.randn(2, device=device))]
    data_before = [p.array for p in params]
    for p in params:
        p.grad = tl.ones_like(p)
    grads_before = [p.grad.numpy().copy() for p in params]
    for method in ("item", "numpy", "tolist", "__float__", "__bool__"):
        monkeypatch.setattr(tl.Tensor, method, lambda *a: pytest.fail("step() synchronised with the host"))
    for opt in (nn.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1),
                nn.optim.Adam(params, weight_decay=0.1, amsgrad=True), nn.optim.AdamW(params)):
        opt.step()
        opt.step()
    monkeypatch.undo()
    assert all(p.array is d for p, d in zip(params, data_before, strict=True))  # updated in place
    assert all(p.dtype == np.float32 for p in params)
    for p, g in zip(params, grads_before, strict=True):
        np.testing.assert_array_equal(p.grad.numpy(), g)
    state = opt.state_dict()["state"][0]
    assert state["exp_avg"].device == params[0].device and state["exp_avg"].dtype == np.float32


def test_zero_grad_and_closure():
    p = nn.Parameter(np.array([1.0, 2.0]))
    opt = nn.optim.SGD([p], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert float(loss) == 5.0
    np.testing.assert_array_equal(p.detach().numpy(), [0.0, 0.0])  # p - 0.5 * 2p
    opt.zero_grad()
    assert p.grad is None
    p.grad = tl.ones(2, dtype=np.float64)
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(p.grad.numpy(), [0.0, 0.0])


def test_parameters_without_grad_are_skipped():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    a.grad = tl.ones(2, dtype=np.float64)
    nn.optim.Adam([a, b], lr=0.1).step()
    assert (a.detach().numpy() < 1).all() and (b.detach().numpy() == 1).all()


def test_bad_hyperparameters_and_params_are_refused():
    params = [nn.Parameter(np.ones(2))]
    for make, message in [
        (lambda: nn.optim.SGD(params, lr=-1.0), "learning rate -1.0"),
        (lambda: nn.optim.SGD(params, lr=0.1, momentum=-0.5), "momentum -0.5"),
        (lambda: nn.optim.SGD(params, lr=0.1, nesterov=True), "Nesterov momentum requires"),
        (lambda: nn.optim.SGD(params, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "zero dampening"),
        (lambda: nn.optim.Adam(params, betas=(0.9, 1.0)), "beta parameter at index 1: 1.0"),
        (lambda: nn.optim.Adam(params, eps=-1e-8), "eps"),
        (lambda: nn.optim.AdamW(params, weight_decay=-0.1), "weight_decay -0.1"),
        (lambda: nn.optim.Adam([]), "empty parameter list"),
        (lambda: nn.optim.Adam([params[0] * 2]), "non-leaf"),
        (lambda: nn.optim.Adam(params + params), "more than one parameter group"),
    ]:
        with pytest.raises(ValueError, match=message):
            make()
    with pytest.raises(TypeError, match="not a single Tensor"):
        nn.optim.Adam(params[0])
    with pytest.raises(TypeError, match="got ndarray"):
        nn.optim.Adam([np.ones(2)])


# ---------------------------------------------------------------- clip_grad_norm_


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(torch, norm_type, max_norm, device):
    rng = np.random.default_rng(7)
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    ours = [nn.Parameter(np.zeros(g.shape), device=device) for g in grads]
    theirs = [torch.nn.Parameter(torch.zeros(g.shape, dtype=torch.float64)) for g in grads]
    for p, r, g in zip(ours, theirs, grads, strict=True):
        p.grad, r.grad = tl.Tensor(g, device=device), torch.tensor(g)
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type, foreach=False)
    assert isinstance(total, tl.Tensor) and total.shape == ()
    np.testing.assert_allclose(total.numpy(), ref.numpy(), rtol=1e-12)
    for p, r in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(p.grad.numpy(), r.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_clip_grad_norm_stays_on_the_device(device, monkeypatch):
    params = [nn.Parameter(tl.zeros(3, 2, device=device)), nn.Parameter(tl.zeros(4, device=device))]
    for p in params:
        p.grad = tl.full((p.shape), 2.0, device=device)
    monkeypatch.setattr(tl.Tensor, "item", lambda *a: pytest.fail("clip_grad_norm_ synchronised with the host"))
    total = nn.utils.clip_grad_norm_(iter(params), max_norm=1.0)
    monkeypatch.undo()
    assert total.device == params[0].device and total.dtype == np.float32
    np.testing.assert_allclose(float(total), math.sqrt(10 * 4), rtol=1e-6)
    clipped = math.sqrt(sum(float((p.grad * p.grad).sum()) for p in params))
    np.testing.assert_allclose(clipped, 1.0, rtol=1e-5)


def test_clip_grad_norm_edge_cases():
    p = nn.Parameter(np.ones(2))
    assert float(nn.utils.clip_grad_norm_([p], 1.0)) == 0.0  # no gradients at all
    p.grad = tl.Tensor(np.array([np.inf, 1.0]))
    with pytest.raises(RuntimeError, match="not finite"):
        nn.utils.clip_grad_norm_(p, 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="norm_type"):
        nn.utils.clip_grad_norm_(p, 1.0, norm_type=0)
