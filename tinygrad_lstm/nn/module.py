"""`Module` and `Parameter`, as PyTorch: parameters and submodules found by attribute, dotted names, state_dicts."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np

from ..tensor import Tensor, no_grad


class Parameter(Tensor):
    """A Tensor that a Module owns and trains: always a leaf that requires grad."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True, dtype=None, device: str | None = None,
                 name: str | None = None):
        super().__init__(data.detach() if isinstance(data, Tensor) else data, requires_grad=requires_grad,
                         dtype=dtype if dtype is not None else getattr(data, "dtype", None), device=device, name=name)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of layers. Assign Parameters and Modules as attributes; they are found by name."""

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() before assigning {name!r}")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            if value.name is None:
                value.name = name
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def register_parameter(self, name: str, value: Parameter | None) -> None:
        """Declare `name` as a parameter slot; None records an absent one (e.g. bias=False)."""
        if value is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, value)

    # ------------------------------------------------------------ running

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ------------------------------------------------------------ traversal

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Dotted names as PyTorch ("rnn.weight_ih_l0"); a parameter shared by two modules is listed once."""
        seen: set[int] = set()
        for module_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    # ------------------------------------------------------------ modes and devices

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def to(self, target) -> Module:
        """Move (or cast) every parameter in place, keeping the Parameter objects optimizers hold."""
        with no_grad():
            for p in self.parameters():
                moved = p.to(target)
                p.data, p.device, p._xp = moved.data, moved.device, moved._xp
                if p.grad is not None:
                    p.grad = p.grad.to(target)
        return self

    def cpu(self) -> Module:
        return self.to("cpu")

    def cuda(self, device: int | str = 0) -> Module:
        return self.to(device if isinstance(device, str) else f"cuda:{device}")

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    # ------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Tensor]:
        """name -> detached Tensor sharing the parameter's data."""
        return {name: p.detach() for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping, strict: bool = True) -> tuple[list[str], list[str]]:
        """Copy values (Tensors or arrays) into the parameters; returns (missing, unexpected) when not strict."""
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            parts = []
            if missing:
                parts.append(f"missing keys {missing}")
            if unexpected:
                parts.append(f"unexpected keys {unexpected}")
            raise KeyError(f"load_state_dict for {type(self).__name__}: " + "; ".join(parts))
        for name, p in own.items():
            if name not in state:
                continue
            value = state[name]
            value = value.numpy() if isinstance(value, Tensor) else value
            shape = tuple(np.shape(value))
            if shape != p.shape:
                raise ValueError(f"load_state_dict: key {name!r} has shape {shape} in the state, "
                                 f"but the parameter has shape {p.shape}")
            p.data[...] = p._xp.asarray(value, dtype=p.dtype)
        return missing, unexpected

    # ------------------------------------------------------------ repr

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
