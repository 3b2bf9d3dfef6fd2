"""tinygrad-lstm: a from-scratch reverse-mode autograd engine on NumPy/CuPy, for learning and training LSTMs."""

from . import cuda
from .tensor import (
    Function,
    Tensor,
    arange,
    cat,
    detect_anomaly,
    enable_grad,
    full,
    gradcheck,
    is_grad_enabled,
    linear,
    load,
    manual_seed,
    matmul,
    maximum,
    minimum,
    name_scope,
    no_grad,
    ones,
    ones_like,
    rand,
    randn,
    retain_grads,
    save,
    stack,
    walk_graph,
    where,
    zeros,
    zeros_like,
)

__version__ = "0.1.0"

__all__ = [
    "Function", "Tensor", "arange", "cat", "cuda", "detect_anomaly", "enable_grad", "full", "gradcheck",
    "is_grad_enabled", "linear", "load", "manual_seed", "matmul", "maximum", "minimum", "name_scope", "no_grad",
    "ones", "ones_like", "rand", "randn", "retain_grads", "save", "stack", "walk_graph", "where", "zeros",
    "zeros_like",
]
