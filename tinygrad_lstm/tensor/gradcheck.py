"""Numerical gradient checking: central differences against backward, with a random upstream gradient."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .backend import to_numpy
from .graph import enable_grad, no_grad
from .tensor import Tensor


def _outputs(result) -> list[Tensor]:
    outputs = list(result) if isinstance(result, tuple | list) else [result]
    for o in outputs:
        if not isinstance(o, Tensor):
            raise TypeError(f"gradcheck: fn must return a Tensor or a tuple of Tensors, got a {type(o).__name__}")
    return outputs


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check backward of `fn(*inputs)` against float64 central differences.

    Every input that is a Tensor with `requires_grad=True` is checked and must be float64; other
    inputs (index tensors, masks, numbers) are passed through. The outputs (a Tensor or a tuple
    of them) are weighted by a random upstream gradient, so every vector-Jacobian product is
    exercised, not only that of `.sum()`. Returns True, or raises AssertionError naming the input
    and the worst element. The caller's tensors (their data and `.grad`) are left as they were.
    """
    inputs = list(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input is a Tensor with requires_grad=True")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck needs float64 tensors: input {i} is {inputs[i].dtype} (use .double())")
        inputs[i] = Tensor(inputs[i], requires_grad=True)  # a private leaf, with its own copy of the data to nudge
    rng = np.random.default_rng(seed)

    with enable_grad():
        outputs = _outputs(fn(*inputs))
        upstream = [rng.standard_normal(o.shape) for o in outputs]
        total = None
        for o, u in zip(outputs, upstream, strict=True):
            if o.requires_grad:
                term = (o * Tensor(u, dtype=np.float64, device=o.device)).sum()
                total = term if total is None else total + term
        if total is None:
            raise ValueError("gradcheck: no output depends on an input that requires grad")
        total.backward()

    def weighted_sum() -> float:
        results = _outputs(fn(*inputs))
        return sum(float((to_numpy(o.array) * u).sum()) for o, u in zip(results, upstream, strict=True))

    for i in checked:
        t = inputs[i]
        analytic = np.zeros(t.shape) if t.grad is None else to_numpy(t.grad.array)
        if analytic.shape != t.shape:
            raise AssertionError(f"gradcheck failed for input {i}: backward gives a gradient of shape "
                                 f"{analytic.shape} for an input of shape {t.shape}")
        numeric = np.zeros(t.shape)
        flat = t.array.reshape(-1)
        with no_grad():
            for k in range(flat.size):
                original = flat[k].item()
                flat[k] = original + eps
                plus = weighted_sum()
                flat[k] = original - eps
                minus = weighted_sum()
                flat[k] = original
                numeric.reshape(-1)[k] = (plus - minus) / (2 * eps)
        excess = np.abs(analytic - numeric) - (atol + rtol * np.abs(numeric))
        excess = np.where(np.isnan(excess), np.inf, excess)  # a NaN on either side is a failure, not a pass
        if excess.size and excess.max() > 0:
            worst = np.unravel_index(int(np.argmax(excess)), t.shape)
            raise AssertionError(
                f"gradcheck failed for input {i} (shape {t.shape}) at element {tuple(int(n) for n in worst)}: "
                f"backward gives {analytic[worst]:.10g}, central differences give {numeric[worst]:.10g}"
            )
    return True
