"""`Module` and `Parameter`, as PyTorch: parameters and submodules found by attribute, dotted names, state_dicts."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..tensor import HookHandle, Tensor, no_grad


def _from_torch(value):
    """A torch tensor as a NumPy array (torch is only looked at when the caller already imported it)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return value


class Parameter(Tensor):
    """A Tensor that a Module owns and trains: a leaf that requires grad."""

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True, dtype=None, device: str | None = None,
                 name: str | None = None):
        super().__init__(data.detach() if isinstance(data, Tensor) else data, requires_grad=requires_grad,
                         dtype=dtype if dtype is not None else getattr(data, "dtype", None), device=device, name=name)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


_M = TypeVar("_M", bound="Module")  # methods that return `self` keep its class, as PyTorch types them


class Module:
    """Base class of layers. Assign Parameters and Modules as attributes; they are found by name."""

    _parameters: dict[str, Parameter]
    _modules: dict[str, Module]
    _buffers: dict[str, Tensor | None]
    _forward_pre_hooks: dict[int, Callable]
    _forward_hooks: dict[int, Callable]
    training: bool

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_forward_pre_hooks", {})
        object.__setattr__(self, "_forward_hooks", {})
        object.__setattr__(self, "training", True)

    if TYPE_CHECKING:  # registered parameters, buffers and submodules are plain attributes at run time
        def __getattr__(self, name: str) -> Any:
            """Attributes a layer registers by a computed name (`weight_ih_l0`), as PyTorch types them."""

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 f"before assigning {name!r}")
        if name in self._buffers:  # assigning a registered buffer replaces it, as PyTorch
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"buffer {name!r} must be a Tensor or None, got {type(value).__name__}")
            self._buffers[name] = value
            object.__setattr__(self, name, value)
            return
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
        self._buffers.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """A tensor the module keeps but does not train (running statistics, masks): moved by `to()`,
        saved in `state_dict()` unless `persistent=False`, never returned by `parameters()`."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"register_buffer: a buffer name is a non-empty string without '.', got {name!r}")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer({name!r}): expected a Tensor or None, got {type(tensor).__name__}")
        if name in self._parameters or name in self._modules:
            raise KeyError(f"register_buffer: {name!r} is already a parameter or submodule")
        self._parameters.pop(name, None)
        self._buffers[name] = tensor
        if not persistent:
            object.__setattr__(self, "_non_persistent", self.__dict__.get("_non_persistent", set()) | {name})
        object.__setattr__(self, name, tensor)

    def register_parameter(self, name: str, value: Parameter | None) -> None:
        """Declare `name` as a parameter slot; None records an absent one (e.g. bias=False)."""
        if value is not None and not isinstance(value, Parameter):
            raise TypeError(f"register_parameter({name!r}): expected a Parameter or None, got {type(value).__name__}")
        setattr(self, name, value)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register a submodule under a name that need not be an identifier ("0" in Sequential)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"add_module({name!r}): expected a Module, got {type(module).__name__}")
        setattr(self, name, module)

    # ------------------------------------------------------------ running

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        if not self._forward_pre_hooks and not self._forward_hooks:
            return self.forward(*args, **kwargs)
        for hook in list(self._forward_pre_hooks.values()):
            changed = hook(self, args)
            if changed is not None:
                args = changed if isinstance(changed, tuple) else (changed,)
        output = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            changed = hook(self, args, output)
            if changed is not None:
                output = changed
        return output

    def register_forward_hook(self, hook: Callable) -> HookHandle:
        """`hook(module, inputs, output)` runs after every forward; a value it returns replaces the output."""
        handle = HookHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook: Callable) -> HookHandle:
        """`hook(module, inputs)` runs before every forward; a value it returns replaces the inputs."""
        handle = HookHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    # ------------------------------------------------------------ traversal

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every submodule, depth first, each once (a shared submodule under its first name)."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            stack.extend(reversed([(f"{name}.{child_name}" if name else child_name, child)
                                   for child_name, child in module._modules.items()]))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        yield from self._modules.values()

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """Dotted names as PyTorch ("rnn.weight_ih_l0"); a parameter shared by two modules is listed once."""
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        seen: set[int] = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, b in module._buffers.items():
                if b is not None and id(b) not in seen:
                    seen.add(id(b))
                    yield (f"{module_name}.{name}" if module_name else name), b

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def _persistent_buffers(self) -> Iterator[tuple[str, Tensor]]:
        for module_name, module in self.named_modules():
            skip = module.__dict__.get("_non_persistent", set())
            for name, b in module._buffers.items():
                if b is not None and name not in skip:
                    yield (f"{module_name}.{name}" if module_name else name), b

    def apply(self: _M, fn: Callable[[Module], None]) -> _M:
        """Call `fn` on every submodule and then on this module (custom initialisation)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------ modes and devices

    def train(self: _M, mode: bool = True) -> _M:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self: _M) -> _M:
        return self.train(False)

    def requires_grad_(self: _M, flag: bool = True) -> _M:
        """Freeze (False) or unfreeze every parameter."""
        for p in self.parameters():
            p.requires_grad_(flag)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.array[...] = 0

    def to(self: _M, target) -> _M:
        """Move (or cast) every parameter and buffer in place, keeping the objects optimizers hold.

        A cast changes floating point tensors only (an integer buffer keeps its dtype), as PyTorch.
        """
        moves_only = isinstance(target, str) and (target == "cpu" or target.startswith("cuda"))
        with no_grad():
            for t in [*self.parameters(), *self.buffers()]:
                if not moves_only and t.dtype.kind != "f":
                    continue
                t.data = t.to(target)  # new storage, the same Tensor object
                if t.grad is not None:
                    t.grad = t.grad.to(target)
        return self

    def cpu(self: _M) -> _M:
        return self.to("cpu")

    def cuda(self: _M, device: int | str = 0) -> _M:
        return self.to(device if isinstance(device, str) else f"cuda:{device}")

    def float(self: _M) -> _M:
        return self.to(np.float32)

    def double(self: _M) -> _M:
        return self.to(np.float64)

    # ------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Tensor]:
        """name -> detached Tensor sharing the parameter's (or persistent buffer's) data; save it with `tl.save`."""
        state = {name: p.detach() for name, p in self.named_parameters()}
        state.update((name, b.detach()) for name, b in self._persistent_buffers())
        return state

    def load_state_dict(self, state: Mapping, strict: bool = True) -> tuple[list[str], list[str]]:
        """Copy values (Tensors, NumPy or CuPy arrays, torch tensors; any device) into the parameters and
        buffers in place, so optimizers keep holding the same objects.

        Every key, shape and value is checked and converted before anything is copied, so a bad state
        leaves the module untouched. `strict=False` skips missing and unexpected keys and returns them
        as (missing, unexpected); shapes must match either way.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict expects a dict of name -> array, got {type(state).__name__}")
        own: dict[str, Tensor] = dict(self.named_parameters())
        own.update(self._persistent_buffers())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            parts = [f"missing keys {missing}"] if missing else []
            parts += [f"unexpected keys {unexpected}"] if unexpected else []
            raise KeyError(f"load_state_dict for {type(self).__name__}: " + "; ".join(parts))
        values = {}
        for name, p in own.items():
            if name not in state:
                continue
            value = _from_torch(state[name])
            if isinstance(value, Mapping):
                raise TypeError(f"load_state_dict: key {name!r} holds a nested dict, not an array")
            shape = tuple(value.shape) if hasattr(value, "shape") else np.shape(value)
            if shape != p.shape:
                raise ValueError(f"load_state_dict: key {name!r} has shape {shape} in the state, "
                                 f"but the parameter has shape {p.shape}")
            try:
                values[name] = Tensor(value, dtype=p.dtype, device=p.device)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"load_state_dict: key {name!r} cannot be read as {p.dtype} numbers: {exc}") from None
        with no_grad():
            for name, value in values.items():
                own[name].copy_(value)
        return missing, unexpected

    # ------------------------------------------------------------ repr

    def extra_repr(self) -> str:
        """The constructor arguments shown inside the parentheses of `repr`."""
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        children = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self._modules.items()]
        if not children and len(lines) <= 1:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines + children) + "\n)"
