"""Optimizers as PyTorch's single-tensor (foreach=False) implementations: SGD, Adam, AdamW.

Each update is the same sequence of operations as PyTorch's, written with the public in-place ops
(`p.add_`, `buf.mul_`) under `no_grad()`, as a hand-written training loop would; a float64 run
follows PyTorch's trajectory to rounding (PyTorch fuses some multiply-adds; NumPy rounds them
twice). Hyperparameters stay Python floats and the step count a Python int: `step()` never waits
on the device. The learning-rate schedules are in `lr_scheduler` (`nn.optim.lr_scheduler`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..tensor import Tensor, enable_grad, maximum, no_grad, zeros_like
from . import lr_scheduler  # noqa: F401 - reached as nn.optim.lr_scheduler, as torch.optim.lr_scheduler

ParamsT = Iterable[Tensor] | Iterable[Mapping]


class Optimizer:
    """Holds parameter groups (dicts of params + hyperparameters) and per-parameter state."""

    def __init__(self, params: ParamsT, defaults: dict):
        self.defaults = defaults
        self.param_groups: list[dict] = []
        self.state: dict[Tensor, dict] = {}
        if isinstance(params, Tensor):
            raise TypeError("params must be an iterable of Tensors (e.g. model.parameters()), not a single Tensor")
        groups: list[Any] = list(params)  # Tensors, or dicts of them (checked by add_param_group)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: Mapping) -> None:
        """Add parameters with their own hyperparameters (the rest come from the defaults)."""
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"optimizer can only optimize Tensors, got {type(p).__name__}")
            if not p.is_leaf:
                raise ValueError("optimizer can't optimize a non-leaf Tensor (the result of an op); pass parameters")
            if id(p) in seen:
                raise ValueError("a parameter appears in more than one parameter group (or twice in one)")
            seen.add(id(p))
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"unknown hyperparameters {sorted(unknown)} for {type(self).__name__}")
        self.param_groups.append({**self.defaults, **group, "params": params})

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.zero_()

    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Update every parameter that has a gradient; `closure` re-evaluates the loss first, as PyTorch."""
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        with no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self._update(p, p.grad, self.state.setdefault(p, {}), group)
        return loss

    def _update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define _update(p, grad, state, group): its update rule")

    # ------------------------------------------------------------ state

    def state_dict(self) -> dict:
        """{"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]}, as PyTorch.

        Parameters are numbered in group order; the state arrays are copies (a snapshot), as Tensors.
        """
        index: dict[int, int] = {}  # id(parameter) -> its number
        groups = []
        for group in self.param_groups:
            for p in group["params"]:
                index[id(p)] = len(index)
            groups.append({**group, "params": [index[id(p)] for p in group["params"]]})
        state = {}
        for p, entry in self.state.items():
            state[index[id(p)]] = {key: value if key == "step" else Tensor(value) for key, value in entry.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Restore hyperparameters and state, onto each parameter's device and dtype.

        Accepts what `state_dict` returns and what `tl.load` gives back for it (int keys as strings
        "0", lists of groups as dicts keyed "0", "1", ..., numbers and tuples as NumPy arrays).
        """
        saved_groups = _as_list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"load_state_dict: the state has {len(saved_groups)} parameter groups, "
                             f"the optimizer {len(self.param_groups)}")
        params = []
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
            if set(saved) != set(group):
                raise ValueError(f"load_state_dict: parameter group {i} has hyperparameters {sorted(saved)}, but "
                                 f"{type(self).__name__} uses {sorted(group)}")
            count = len(_plain(saved["params"]))
            if count != len(group["params"]):
                raise ValueError(f"load_state_dict: parameter group {i} has {count} parameters in the state, "
                                 f"{len(group['params'])} in the optimizer")
            params.extend(group["params"])
        state = {}
        for key, entry in state_dict.get("state", {}).items():  # tl.load drops an empty "state"
            index = int(key)
            if not 0 <= index < len(params):
                raise KeyError(f"load_state_dict: state for parameter {index}, but the optimizer has {len(params)}")
            state[params[index]] = {name: _restore(name, value, params[index], index) for name, value in entry.items()}
        for saved, group in zip(saved_groups, self.param_groups, strict=True):
            group.update({k: _plain(v) for k, v in saved.items() if k != "params"})
        self.state = state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params")
        return "\n".join(lines) + "\n)"


def _as_list(groups) -> list:
    """Groups as saved (a list) or as `tl.load` returns them (a dict keyed "0", "1", ...)."""
    if isinstance(groups, Mapping):
        return [groups[k] for k in sorted(groups, key=int)]
    return list(groups)


def _plain(value):
    """Arrays (as `tl.load` returns hyperparameters) back to Python numbers and tuples; Python values pass."""
    if hasattr(value, "tolist"):
        value = value.tolist()
        return tuple(value) if isinstance(value, list) else value
    return value


def _restore(name: str, value, p: Tensor, index: int):
    if name == "step":
        return int(_plain(value))
    shape = tuple(value.shape)
    if shape != p.shape:
        raise ValueError(f"load_state_dict: state {name!r} of parameter {index} has shape {shape}, "
                         f"but the parameter has shape {p.shape}")
    return Tensor(value, dtype=p.dtype, device=p.device)


def _check_hyperparameters(lr: float, weight_decay: float, eps: float = 0.0) -> None:
    if lr < 0:
        raise ValueError(f"invalid learning rate {lr} (must be >= 0)")
    if weight_decay < 0:
        raise ValueError(f"invalid weight_decay {weight_decay} (must be >= 0)")
    if eps < 0:
        raise ValueError(f"invalid eps {eps} (must be >= 0)")


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum (PyTorch's form, dampening, Nesterov) and L2 decay."""

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False):
        _check_hyperparameters(lr, weight_decay)
        if momentum < 0:
            raise ValueError(f"invalid momentum {momentum} (must be >= 0)")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    def _update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        if weight_decay != 0:
            grad = grad + weight_decay * p
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.clone()
            else:
                buf.mul_(momentum).add_(grad, alpha=1 - group["dampening"])
            grad = grad + momentum * buf if group["nesterov"] else buf
        p.sub_(group["lr"] * grad)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; `weight_decay` adds L2 to the gradient (AdamW decouples it)."""

    decoupled_weight_decay = False

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False):
        _check_hyperparameters(lr, weight_decay, eps)
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"invalid beta parameter at index {i}: {beta} (must be in [0, 1))")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

    def _update(self, p: Tensor, grad: Tensor, state: dict, group: dict) -> None:
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = zeros_like(p)
            state["exp_avg_sq"] = zeros_like(p)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = zeros_like(p)
        state["step"] += 1
        step, exp_avg, exp_avg_sq = state["step"], state["exp_avg"], state["exp_avg_sq"]
        if weight_decay != 0:
            if self.decoupled_weight_decay:
                p.mul_(1 - lr * weight_decay)
            else:
                grad = grad + weight_decay * p
        _lerp_(exp_avg, grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).add_((1 - beta2) * grad * grad)
        bias_correction1 = 1 - beta1**step
        bias_correction2_sqrt = (1 - beta2**step) ** 0.5
        second_moment = exp_avg_sq
        if group["amsgrad"]:
            second_moment = state["max_exp_avg_sq"].copy_(maximum(state["max_exp_avg_sq"], exp_avg_sq))
        denom = second_moment.sqrt() / bias_correction2_sqrt + group["eps"]
        p.add_(-(lr / bias_correction1) * exp_avg / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): p *= 1 - lr * weight_decay before the step."""

    decoupled_weight_decay = True

    def __init__(self, params: ParamsT, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


def _lerp_(start: Tensor, end: Tensor, weight: float) -> None:
    """start += weight * (end - start) in place, in PyTorch's two-sided form (exact at weight 0 and 1)."""
    if weight < 0.5:
        start.add_(weight * (end - start))
    else:
        start.copy_(end - (end - start) * (1 - weight))
