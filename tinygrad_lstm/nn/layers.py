"""Feed-forward layers as PyTorch's: Linear, activations, Sequential, ModuleList, ModuleDict, Embedding,
Dropout, LayerNorm, and the loss modules."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from ..tensor import Tensor, errors, ones, zeros
from . import functional as F
from . import init
from .module import Module, Parameter


def _check_sizes(layer: str, **sizes) -> None:
    """Layer sizes are non-negative integers; a bad one is named (not "negative dimensions are not allowed")."""
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise errors.ArgumentError(f"{layer}: {name} must be a non-negative integer, got {value!r}")


class Linear(Module):
    """y = x @ weight.T + bias; weight (out_features, in_features), both drawn from U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None, device: str | None = None):
        super().__init__()
        _check_sizes("Linear", in_features=in_features, out_features=out_features)
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(zeros(out_features, in_features, dtype=dtype, device=device))
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # PyTorch's default: bound 1/sqrt(in_features)
        if bias:
            self.bias = Parameter(zeros(out_features, dtype=dtype, device=device))
            if in_features > 0:
                bound = 1 / math.sqrt(in_features)
                init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class _ParameterFree(Module):
    """A layer without parameters: it takes dtype=/device= like every constructor and has nothing to place."""

    def __init__(self, dtype=None, device: str | None = None):
        super().__init__()


class Sigmoid(_ParameterFree):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Tanh(_ParameterFree):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class ReLU(_ParameterFree):
    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Sequential(Module):
    """Modules applied in order, named "0", "1", ... (or by the keys of one dict argument)."""

    def __init__(self, *modules: Module | Mapping[str, Module], dtype=None, device: str | None = None):
        super().__init__()
        named: Iterable[tuple[str, Any]]  # add_module refuses what is not a Module
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            named = modules[0].items()
        else:
            named = ((str(i), m) for i, m in enumerate(modules))
        for name, module in named:
            self.add_module(name, module)
        for target in (dtype, device):  # given, they move/cast the children as Module.to does
            if target is not None:
                self.to(target)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice) -> Module:
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(dict(items[index]))
        if not -len(items) <= index < len(items):
            raise IndexError(f"index {index} is out of range for a Sequential of {len(items)} modules")
        return items[index][1]


class Embedding(Module):
    """A lookup table: integer indices -> rows of weight (num_embeddings, embedding_dim), drawn from N(0, 1)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, dtype=None,
                 device: str | None = None):
        super().__init__()
        _check_sizes("Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ValueError(f"padding_idx {padding_idx} is out of range for num_embeddings={num_embeddings}")
        self.num_embeddings = num_embeddings
        self.embedding_dim = embedding_dim
        self.padding_idx = None if padding_idx is None else padding_idx % num_embeddings
        self.weight = Parameter(zeros(num_embeddings, embedding_dim, dtype=dtype, device=device))
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.array[self.padding_idx] = 0

    def forward(self, indices) -> Tensor:
        return F.embedding(indices, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        padding = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{padding}"


class Dropout(Module):
    """Zero each element with probability p while training (scaling the rest by 1/(1-p)); identity in eval."""

    def __init__(self, p: float = 0.5, dtype=None, device: str | None = None):
        super().__init__()
        F._check_probability(p)
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class ModuleList(Module):
    """A list of modules whose parameters the parent finds (a plain Python list would hide them)."""

    def __init__(self, modules: Iterable[Module] | None = None):
        super().__init__()
        for module in modules or ():
            self.append(module)

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for module in modules:
            self.append(module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice) -> Module | ModuleList:
        items = list(self._modules.values())
        if isinstance(index, slice):
            return ModuleList(items[index])
        if not -len(items) <= index < len(items):
            raise IndexError(f"index {index} is out of range for a ModuleList of {len(items)} modules")
        return items[index]

    def __setitem__(self, index: int, module: Module) -> None:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for a ModuleList of {len(self)} modules")
        self.add_module(str(index % len(self)), module)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("a ModuleList has no forward(); iterate over it and call its modules")


class ModuleDict(Module):
    """A dict of modules (name -> Module) whose parameters the parent finds."""

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def update(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]]) -> None:
        for name, module in (modules.items() if isinstance(modules, Mapping) else modules):
            self[name] = module

    def __getitem__(self, name: str) -> Module:
        if name not in self._modules:
            raise KeyError(f"ModuleDict has no module {name!r}; it has {list(self._modules)}")
        return self._modules[name]

    def __setitem__(self, name: str, module: Module) -> None:
        if not isinstance(name, str):
            raise TypeError(f"ModuleDict keys are strings, got {name!r}")
        self.add_module(name, module)

    def __delitem__(self, name: str) -> None:
        delattr(self, name)

    def __contains__(self, name: object) -> bool:
        return name in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def forward(self, *args, **kwargs):
        raise NotImplementedError("a ModuleDict has no forward(); call its modules by name")


class LayerNorm(Module):
    """Normalize over the last axes (`normalized_shape`) to zero mean and unit variance, then scale and shift."""

    def __init__(self, normalized_shape: int | Sequence[int], eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, dtype=None, device: str | None = None):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if any(not isinstance(n, int) or n <= 0 for n in shape):
            raise ValueError(f"LayerNorm: normalized_shape must be positive integers, got {normalized_shape!r}")
        self.normalized_shape, self.eps, self.elementwise_affine = shape, eps, elementwise_affine
        self.weight = Parameter(ones(shape, dtype=dtype, device=device)) if elementwise_affine else None
        self.bias = Parameter(zeros(shape, dtype=dtype, device=device)) if elementwise_affine and bias else None
        for name in ("weight", "bias"):
            if getattr(self, name) is None:
                self.register_parameter(name, None)

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


def _activation(name: str, function, doc: str, **defaults):
    """A parameter-free Module that calls F.`function` with its constructor's keyword arguments."""

    def __init__(self, *args, dtype=None, device: str | None = None, **kwargs):
        Module.__init__(self)
        names = list(defaults)
        if len(args) > len(names):
            raise TypeError(f"{name}() takes at most {len(names)} positional arguments, got {len(args)}")
        settings = {**defaults, **dict(zip(names, args, strict=False)), **kwargs}
        unknown = set(settings) - set(defaults)
        if unknown:
            raise TypeError(f"{name}() got unexpected arguments {sorted(unknown)}")
        object.__setattr__(self, "settings", settings)

    def forward(self, x: Tensor) -> Tensor:
        return function(x, **self.settings)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.settings.items())

    return type(name, (Module,), {"__init__": __init__, "forward": forward, "extra_repr": extra_repr,
                                  "__doc__": doc, "__module__": __name__})


LeakyReLU = _activation("LeakyReLU", F.leaky_relu, "max(0, x) + negative_slope * min(0, x).", negative_slope=0.01)
ELU = _activation("ELU", F.elu, "x for x > 0, alpha * (exp(x) - 1) otherwise.", alpha=1.0)
GELU = _activation("GELU", F.gelu, "x * Phi(x) (approximate='tanh' for the tanh form).", approximate="none")
SiLU = _activation("SiLU", F.silu, "x * sigmoid(x).")
Softplus = _activation("Softplus", F.softplus, "log(1 + exp(beta * x)) / beta, linear above threshold.",
                       beta=1.0, threshold=20.0)
LogSigmoid = _activation("LogSigmoid", F.logsigmoid, "log(sigmoid(x)), finite for any x.")
Softmax = _activation("Softmax", F.softmax, "softmax over `dim`.", dim=None)
LogSoftmax = _activation("LogSoftmax", F.log_softmax, "log-softmax over `dim`.", dim=None)


def _loss(name: str, function, doc: str, **defaults):
    """A loss Module that calls F.`function`(input, target, ...) with its constructor's keyword arguments."""

    def __init__(self, *args, **kwargs):
        Module.__init__(self)
        names = list(defaults)
        settings = {**defaults, **dict(zip(names, args, strict=False)), **kwargs}
        unknown = set(settings) - set(defaults)
        if unknown or len(args) > len(names):
            raise TypeError(f"{name}() got unexpected arguments {sorted(unknown) or args}")
        for key, value in settings.items():
            object.__setattr__(self, key, value)
        object.__setattr__(self, "settings", settings)

    def forward(self, input: Tensor, target) -> Tensor:  # noqa: A002 - PyTorch's name
        return function(input, target, **self.settings)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.settings.items() if v is not None)

    return type(name, (Module,), {"__init__": __init__, "forward": forward, "extra_repr": extra_repr,
                                  "__doc__": doc, "__module__": __name__})


MSELoss = _loss("MSELoss", F.mse_loss, "Mean squared error; see F.mse_loss.", reduction="mean")
L1Loss = _loss("L1Loss", F.l1_loss, "Mean absolute error; see F.l1_loss.", reduction="mean")
CrossEntropyLoss = _loss("CrossEntropyLoss", F.cross_entropy, "Softmax cross-entropy of logits; see F.cross_entropy.",
                         weight=None, ignore_index=-100, reduction="mean")
NLLLoss = _loss("NLLLoss", F.nll_loss, "Negative log-likelihood of log-probabilities; see F.nll_loss.",
                weight=None, ignore_index=-100, reduction="mean")
BCEWithLogitsLoss = _loss("BCEWithLogitsLoss", F.binary_cross_entropy_with_logits,
                          "Binary cross-entropy of logits; see F.binary_cross_entropy_with_logits.",
                          weight=None, reduction="mean", pos_weight=None)
