"""Training helpers: gradient clipping by global norm, as `torch.nn.utils.clip_grad_norm_`."""

from __future__ import annotations

import math
from collections.abc import Iterable

from ...tensor import Tensor, no_grad, stack, zeros


def clip_grad_norm_(parameters: Tensor | Iterable[Tensor], max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale every gradient in place by min(1, max_norm / (total_norm + 1e-6)); return total_norm.

    total_norm is the `norm_type` norm of all gradients seen as one vector, returned as a 0-d Tensor
    on the gradients' device. The scaling multiplies by the clamped factor instead of testing it, so
    nothing waits on the device (unless `error_if_nonfinite` asks to look at the norm).
    """
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return zeros(())
    devices = {g.device for g in grads}
    if len(devices) > 1:
        raise RuntimeError(f"clip_grad_norm_: gradients are on several devices {sorted(devices)}; "
                           "clip each device's parameters separately")
    norm_type = float(norm_type)
    if not (norm_type > 0 or norm_type == -math.inf):
        raise ValueError(f"clip_grad_norm_: norm_type must be positive or +-inf, got {norm_type}")
    with no_grad():
        total = _vector_norm(stack([_vector_norm(g, norm_type) for g in grads]), norm_type)
        if error_if_nonfinite and not bool(total.isfinite()):
            raise RuntimeError(f"clip_grad_norm_: the total {norm_type}-norm of the gradients is not finite "
                               f"({total.item()})")
        scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale)
    return total


def _vector_norm(t: Tensor, norm_type: float) -> Tensor:
    """The `norm_type` norm of all elements: max |x| for inf, (sum |x|^p)^(1/p) otherwise."""
    if norm_type == 2.0:
        return (t * t).sum().sqrt()
    magnitude = t.abs()
    if math.isinf(norm_type):
        return magnitude.max() if norm_type > 0 else magnitude.min()
    if norm_type == 1.0:
        return magnitude.sum()
    return (magnitude**norm_type).sum() ** (1.0 / norm_type)
