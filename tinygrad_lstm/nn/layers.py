"""Feed-forward layers as PyTorch's: Linear, activations, Sequential, Embedding, Dropout."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

from ..tensor import Tensor, zeros
from . import functional as F
from . import init
from .module import Module, Parameter


class Linear(Module):
    """y = x @ weight.T + bias; weight (out_features, in_features), both drawn from U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=None, device: str | None = None):
        super().__init__()
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
        named = modules[0].items() if len(modules) == 1 and isinstance(modules[0], Mapping) else \
            ((str(i), m) for i, m in enumerate(modules))
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
