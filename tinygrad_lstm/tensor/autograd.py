"""`tl.autograd`: gradients of outputs with respect to chosen inputs, without touching any `.grad`."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import NotSupportedError, StateError
from .graph import run_backward
from .tensor import Tensor


def _as_list(value, name: str) -> list:
    items = [value] if isinstance(value, Tensor) else list(value)
    for item in items:
        if not isinstance(item, Tensor):
            raise TypeError(f"autograd.grad: {name} must be Tensors, got {type(item).__name__}")
    return items


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Tensor | Sequence[Tensor | None] | None = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """d(outputs)/d(inputs), weighted by `grad_outputs` (ones for one-element outputs), as a tuple of Tensors.

    As `torch.autograd.grad`, first order: no leaf's `.grad` changes, the graph is freed unless
    `retain_graph=True`, and an input no output depends on raises unless `allow_unused=True` (then None).
    """
    if create_graph:
        raise NotSupportedError("autograd.grad(create_graph=True): higher-order gradients are not supported; "
                                "the gradients returned here are outside the graph")
    outputs, inputs = _as_list(outputs, "outputs"), _as_list(inputs, "inputs")
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    else:
        grad_outputs = [grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"autograd.grad: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for t in inputs:
        if not t.requires_grad:
            raise StateError(f"autograd.grad: an input (shape {t.shape}) does not require grad")
    roots = [o._root_gradient(g, "autograd.grad") for o, g in zip(outputs, grad_outputs, strict=True)]
    found = run_backward(outputs, roots, bool(retain_graph), inputs=inputs)
    result = []
    for t, g in zip(inputs, found, strict=True):
        if g is None and not allow_unused:
            raise StateError(f"autograd.grad: one of the inputs (shape {t.shape}) was not used to compute the "
                             "outputs; pass allow_unused=True to get None for it")
        result.append(None if g is None else Tensor._make(g.copy(), t.device, None))
    return tuple(result)
