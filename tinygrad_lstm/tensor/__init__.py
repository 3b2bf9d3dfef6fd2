"""The autograd engine: backend arrays, graph nodes, primitive ops and the backward walk."""

from .backend import ElementwiseKernel, array_module
from .creation import arange, full, manual_seed, ones, ones_like, rand, randn, zeros, zeros_like
from .gradcheck import gradcheck
from .graph import (
    Function,
    GraphView,
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    name_scope,
    no_grad,
    retain_grads,
    walk_graph,
)
from .serialization import load, save
from .tensor import Tensor, apply, cat, linear, matmul, maximum, minimum, stack, where

__all__ = [
    "ElementwiseKernel", "Function", "GraphView", "Tensor", "apply", "arange", "array_module", "cat",
    "detect_anomaly", "enable_grad", "full", "gradcheck", "is_grad_enabled", "linear", "load", "manual_seed",
    "matmul", "maximum", "minimum", "name_scope", "no_grad", "ones", "ones_like", "rand", "randn", "retain_grads",
    "save", "stack", "walk_graph", "where", "zeros", "zeros_like",
]
