"""Numerical gradient checking: central differences against backward, with a random upstream gradient."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .backend import to_numpy
from .graph import no_grad
from .tensor import Tensor


def _outputs(result) -> list[Tensor]:
    return list(result) if isinstance(result, tuple | list) else [result]


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check backward of `fn` at `inputs` (float64 tensors) against central differences.

    The outputs are weighted by a random upstream gradient `u`, so every vector-Jacobian product
    is exercised, not only that of `.sum()`. Returns True, or raises naming the worst element.
    """
    inputs = list(inputs)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor) or t.dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 Tensors (input {i} is {getattr(t, 'dtype', type(t).__name__)})")
    checked = [t for t in inputs if t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input has requires_grad=True")
    rng = np.random.default_rng(seed)
    outputs = _outputs(fn(*inputs))
    upstream = [rng.standard_normal(o.shape) for o in outputs]

    def weighted_sum() -> float:
        return sum(float((to_numpy(o.data) * u).sum()) for o, u in zip(_outputs(fn(*inputs)), upstream))

    for t in checked:
        t.grad = None
    total = None
    for o, u in zip(outputs, upstream):
        if o.requires_grad:
            term = (o * Tensor(u, device=o.device, dtype=np.float64)).sum()
            total = term if total is None else total + term
    if total is None:
        raise ValueError("gradcheck: no output depends on an input that requires grad")
    total.backward()

    for index, t in enumerate(inputs):
        if not t.requires_grad:
            continue
        analytic = np.zeros(t.shape) if t.grad is None else to_numpy(t.grad.data)
        numeric = np.zeros(t.shape)
        t.data = t._xp.ascontiguousarray(t.data)
        flat = t.data.reshape(-1)
        with no_grad():
            for k in range(flat.size):
                original = flat[k].item()
                flat[k] = original + eps
                plus = weighted_sum()
                flat[k] = original - eps
                minus = weighted_sum()
                flat[k] = original
                numeric.reshape(-1)[k] = (plus - minus) / (2 * eps)
        error = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        if error.size and error.max() > 0:
            worst = np.unravel_index(int(np.argmax(error)), t.shape)
            raise AssertionError(
                f"gradcheck failed for input {index} (shape {t.shape}) at element {tuple(int(i) for i in worst)}: "
                f"backward gives {analytic[worst]:.10g}, central differences give {numeric[worst]:.10g}"
            )
    return True
