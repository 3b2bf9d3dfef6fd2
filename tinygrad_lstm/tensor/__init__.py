"""The autograd engine: backend arrays, graph nodes, primitive ops and the backward walk.

`tl.tensor(data)` is PyTorch's factory, and `tl.tensor` is also this package: the package is made
callable (calling it is `creation.tensor`), so both keep their names and `tinygrad_lstm.tensor.tensor`
stays the module that defines `Tensor`.
"""

import sys
import types

from . import autograd, creation, errors, ops
from .backend import ElementwiseKernel, array_module
from .creation import (
    arange,
    as_tensor,
    empty,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    zeros,
    zeros_like,
)
from .gradcheck import gradcheck
from .graph import (
    Function,
    GraphView,
    detect_anomaly,
    enable_grad,
    inference_mode,
    is_grad_enabled,
    is_inference_mode_enabled,
    name_scope,
    no_grad,
    retain_grads,
    set_grad_enabled,
    walk_graph,
)
from .serialization import load, save, write_atomically
from .tensor import HookHandle, Tensor, apply, cat, linear, matmul, maximum, minimum, stack, where

__all__ = [
    "ElementwiseKernel", "Function", "GraphView", "HookHandle", "Tensor", "apply", "arange", "array_module",
    "as_tensor", "autograd", "cat", "detect_anomaly", "empty", "enable_grad", "errors", "eye", "from_numpy", "full",
    "full_like", "gradcheck", "inference_mode", "is_grad_enabled", "is_inference_mode_enabled", "linear", "linspace",
    "load", "manual_seed", "matmul", "maximum", "minimum", "name_scope", "no_grad", "ops", "ones", "ones_like", "rand",
    "rand_like", "randint", "randn", "randn_like", "retain_grads", "save", "set_grad_enabled", "stack", "walk_graph",
    "write_atomically", "where", "zeros", "zeros_like",
]


class _CallablePackage(types.ModuleType):
    def __call__(self, data, *, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        """`tl.tensor(data)`: a new tensor with PyTorch's dtype inference (see `creation.tensor`)."""
        return creation.tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


sys.modules[__name__].__class__ = _CallablePackage
