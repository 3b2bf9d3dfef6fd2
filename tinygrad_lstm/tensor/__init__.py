"""The autograd engine: backend arrays, graph nodes, primitive ops and the backward walk."""

from .backend import array_module
from .creation import arange, full, manual_seed, ones, ones_like, rand, randn, zeros, zeros_like
from .fused import fused_lstm, fused_lstm_cell
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
from .tensor import Tensor, apply, cat, matmul, maximum, minimum, stack, where

__all__ = [
    "Function", "GraphView", "Tensor", "apply", "arange", "array_module", "cat", "detect_anomaly", "enable_grad",
    "full", "fused_lstm", "fused_lstm_cell", "gradcheck", "is_grad_enabled", "load", "manual_seed", "matmul", "maximum",
    "minimum", "name_scope", "no_grad", "ones", "ones_like", "rand", "randn", "retain_grads", "save", "stack",
    "walk_graph", "where", "zeros", "zeros_like",
]
