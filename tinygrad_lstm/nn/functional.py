"""Stateless layers and losses, as `torch.nn.functional`, composed from Tensor ops (so autograd is free).

Losses take `reduction="mean" | "sum" | "none"`. Class indices are integer tensors or arrays; a
target that is on the wrong device, of the wrong dtype or shape, or out of range raises at once,
naming what it got and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..tensor import Tensor, arange, maximum, minimum, rand, where
from ..tensor import linear as tensor_linear

REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------- activations and layers


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def relu(x: Tensor) -> Tensor:
    return x.relu()


def softmax(x: Tensor, dim: int | None = None, *, axis: int | None = None) -> Tensor:
    """Softmax over `dim` (or NumPy's `axis`); the last axis when neither is given."""
    return x.softmax(dim, axis=axis)


def log_softmax(x: Tensor, dim: int | None = None, *, axis: int | None = None) -> Tensor:
    return x.log_softmax(dim, axis=axis)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """x where x > 0, negative_slope * x elsewhere (the gradient at 0 is negative_slope, as PyTorch)."""
    return where(x > 0, x, x * negative_slope)


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """x where x > 0, alpha * (e^x - 1) elsewhere; the exponential only sees x <= 0, so it never overflows."""
    return where(x > 0, x, alpha * (x.clip(max=0.0).exp() - 1))


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """x * Phi(x), Phi the standard normal CDF (through erf); approximate="tanh" is the tanh formula."""
    if approximate == "tanh":
        return 0.5 * x * (1 + (math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)).tanh())
    if approximate != "none":
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * x * (1 + (x * (1 / math.sqrt(2))).erf())


def silu(x: Tensor) -> Tensor:
    """x * sigmoid(x) (also called swish)."""
    return x * x.sigmoid()


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + e^(beta x)) / beta, and x itself where beta x > threshold (as PyTorch), without overflow."""
    scaled = x * beta
    smooth = ((-scaled.abs()).exp() + 1).log() + maximum(scaled, 0.0)  # log(1 + e^s) for any s
    return where(scaled > threshold, x, smooth * (1 / beta))


def logsigmoid(x: Tensor) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), finite for any x."""
    return minimum(x, 0.0) - ((-x.abs()).exp() + 1).log()


def layer_norm(x: Tensor, normalized_shape: int | Sequence[int], weight: Tensor | None = None,
               bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """Normalize over the last len(normalized_shape) axes (biased variance, as PyTorch), then scale and shift."""
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if x.shape[x.ndim - len(shape):] != shape:
        raise ValueError(f"layer_norm: input of shape {x.shape} does not end in normalized_shape {shape}")
    axes = tuple(range(x.ndim - len(shape), x.ndim))
    centered = x - x.mean(axis=axes, keepdims=True)
    variance = (centered * centered).mean(axis=axes, keepdims=True)
    out = centered / (variance + eps).sqrt()
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight.T + bias, with weight laid out (out_features, in_features) as PyTorch: one node (`tl.linear`)."""
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out_features, in_features), got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input of shape {x.shape} does not end in in_features={weight.shape[1]} "
                         f"(weight has shape {weight.shape})")
    return tensor_linear(x, weight, bias)


def dropout(x: Tensor, p: float = 0.5, training: bool = True) -> Tensor:
    """Inverted dropout: zero each element with probability p and scale the rest by 1/(1-p), so eval is identity."""
    _check_probability(p)
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    keep = rand(x.shape, dtype=x.dtype, device=x.device) >= p
    return x * (keep.to(x.dtype) * (1.0 / (1.0 - p)))


def _check_probability(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")


def embedding(indices, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of `weight` (num_embeddings, dim) picked by integer `indices`; out-of-range indices raise.

    Rows picked at `padding_idx` take no gradient, as PyTorch's.
    """
    num = weight.shape[0]
    host = _host_values(indices)
    indices = _beside(indices, weight, "embedding: indices")
    if not np.issubdtype(indices.dtype, np.integer):
        raise TypeError(f"embedding: indices must have an integer dtype, got {indices.dtype}")
    bad = _first_outside(indices, num, host=host)
    if bad is not None:
        raise IndexError(f"embedding: index {bad} is out of range for num_embeddings={num} (valid: 0..{num - 1})")
    rows = weight[indices if host is None else host]  # host indices are range-checked on the host: no sync
    if padding_idx is None:
        return rows
    padding_idx = padding_idx % num
    return where((indices != padding_idx).unsqueeze(-1), rows, rows.detach())


def _beside(value, ref: Tensor, what: str) -> Tensor:
    """Indices or targets as a Tensor on `ref`'s device: integer arrays stay integer, float ones take its dtype.

    Lists and host arrays are moved; a Tensor on another device is refused (moving it silently would hide a bug).
    """
    if isinstance(value, Tensor):
        if value.device != ref.device:
            raise RuntimeError(f"{what} is on {value.device!r}, but the tensors it goes with are on {ref.device!r}")
        return value
    value = value if hasattr(value, "dtype") else np.asarray(value)
    floating = np.issubdtype(value.dtype, np.floating)
    return Tensor(value, dtype=ref.dtype if floating else None, device=ref.device)


def _host_values(value) -> np.ndarray | None:
    """Indices or targets the caller gave as host data (lists, NumPy, CPU tensors) as a NumPy array, else None."""
    if isinstance(value, Tensor):
        return value.array if value.device == "cpu" else None
    if isinstance(value, np.ndarray) or not hasattr(value, "dtype"):
        return np.asarray(value)
    return None


def _first_outside(indices: Tensor, size: int, ignore: int | None = None, host: np.ndarray | None = None) -> int | None:
    """The first index outside [0, size) (skipping `ignore`), or None; checked because fancy indexing
    would wrap negative indices (and CuPy wraps every out-of-range one) silently. Checked on the `host`
    copy when the caller gave one, else on the device (one sync)."""
    data = indices.array if host is None else host
    outside = (data < 0) | (data >= size)
    if ignore is not None:
        outside &= data != ignore
    if not bool(outside.any()):
        return None
    return int(data[outside].reshape(-1)[0])


# ---------------------------------------------------------------- losses


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_reduction(name: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _like(value, ref: Tensor, what: str) -> Tensor:
    """A target or weight as a float Tensor beside `ref` (arrays and numbers are converted)."""
    if isinstance(value, Tensor):
        if value.device != ref.device:
            raise RuntimeError(f"{what} is on {value.device!r} but the input is on {ref.device!r}")
        return value
    return Tensor(value, dtype=ref.dtype, device=ref.device)


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:  # noqa: A002 - PyTorch's name
    """Mean squared error (input - target)^2; input and target must have the same shape."""
    _check_reduction("mse_loss", reduction)
    target = _like(target, input, "mse_loss: target")
    if target.shape != input.shape:
        raise ValueError(f"mse_loss: target shape {target.shape} differs from input shape {input.shape}")
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:  # noqa: A002 - PyTorch's name
    """Mean absolute error |input - target|; input and target must have the same shape."""
    _check_reduction("l1_loss", reduction)
    target = _like(target, input, "l1_loss: target")
    if target.shape != input.shape:
        raise ValueError(f"l1_loss: target shape {target.shape} differs from input shape {input.shape}")
    return _reduce((input - target).abs(), reduction)


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, reduction: str = "mean",  # noqa: A002
                                     pos_weight=None) -> Tensor:
    """-[y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))], computed without overflow for any logit x.

    With softplus(-x) = log(1 + e^-x) = log(1 + e^-|x|) + max(-x, 0), the loss is
    (1 - y) x + (1 + (pos_weight - 1) y) softplus(-x); nothing here grows beyond |x|.
    """
    _check_reduction("binary_cross_entropy_with_logits", reduction)
    target = _like(target, input, "binary_cross_entropy_with_logits: target")
    if target.shape != input.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: target shape {target.shape} differs from "
                         f"input shape {input.shape}")
    softplus_neg = (1 + (-input.abs()).exp()).log() + maximum(-input, 0.0)
    if pos_weight is not None:
        pos_weight = _like(pos_weight, input, "binary_cross_entropy_with_logits: pos_weight")
        softplus_neg = softplus_neg * (1 + (pos_weight - 1) * target)
    loss = (1 - target) * input + softplus_neg
    if weight is not None:
        loss = loss * _like(weight, input, "binary_cross_entropy_with_logits: weight")
    return _reduce(loss, reduction)


def _num_classes(name: str, input: Tensor) -> int:  # noqa: A002
    if input.ndim == 0:
        raise ValueError(f"{name}: input must have a class axis, got a 0-d tensor")
    return input.shape[1] if input.ndim >= 2 else input.shape[0]


def _check_class_target(name: str, input: Tensor, target: Tensor, ignore_index: int,  # noqa: A002
                        host: np.ndarray | None = None) -> None:
    """Class indices: integers in [0, C) (or `ignore_index`) of shape (N, d1, ...) for input (N, C, d1, ...)."""
    expected = (input.shape[0],) + input.shape[2:] if input.ndim >= 2 else ()
    if not np.issubdtype(target.dtype, np.integer) or target.shape != expected:
        wanted = f"integer class indices of shape {expected}"
        if name == "cross_entropy":
            wanted += f" or float class probabilities of shape {input.shape}"
        message = (f"{name}: target has dtype {target.dtype} and shape {target.shape}, "
                   f"but input of shape {input.shape} needs {wanted}")
        raise (ValueError if np.issubdtype(target.dtype, np.integer) else TypeError)(message)
    num_classes = _num_classes(name, input)
    bad = _first_outside(target, num_classes, ignore=ignore_index, host=host)
    if bad is not None:
        raise IndexError(f"{name}: target {bad} is out of range for {num_classes} classes "
                         f"(valid: 0..{num_classes - 1})")


def _class_weight(name: str, weight, input: Tensor) -> Tensor | None:  # noqa: A002
    if weight is None:
        return None
    weight = _like(weight, input, f"{name}: weight")
    num_classes = _num_classes(name, input)
    if weight.shape != (num_classes,):
        raise ValueError(f"{name}: weight must have shape ({num_classes},) (one per class), got {weight.shape}")
    return weight


def _class_axis_last(x: Tensor) -> Tensor:
    """(C,) -> (1, C) and (N, C, d1, ...) -> (N * d1 * ..., C): one row of class scores per target."""
    if x.ndim == 1:
        return x.unsqueeze(0)
    if x.ndim > 2:
        x = x.permute(0, *range(2, x.ndim), 1)
    return x.reshape(-1, x.shape[-1])


def _picked_nll(log_probs: Tensor, target: Tensor, weight: Tensor | None, ignore_index: int,
                reduction: str, host: np.ndarray | None = None) -> Tensor:
    """-log_probs[n, target[n]] (times the class weight); "mean" divides by the total weight of the
    targets that count (their number without `weight`), as PyTorch; `ignore_index` targets count for nothing.
    With the `host` copy of the target, the picking indices are made (and range-checked) on the host."""
    rows = _class_axis_last(log_probs)
    flat_target = target.reshape(-1)
    counts = flat_target != ignore_index
    safe_target: Tensor | np.ndarray
    positions: Tensor | np.ndarray
    if host is None:
        safe_target, positions = where(counts, flat_target, 0), arange(len(flat_target), device=rows.device)
    else:
        flat_host = host.reshape(-1)
        safe_target, positions = np.where(flat_host != ignore_index, flat_host, 0), np.arange(len(flat_host))
    weights = counts.to(log_probs.dtype)
    if weight is not None:
        weights = weights * weight[safe_target]
    losses = -rows[positions, safe_target] * weights
    if reduction == "mean":
        return losses.sum() / weights.sum()
    if reduction == "sum":
        return losses.sum()
    return losses.reshape(target.shape)


def nll_loss(input: Tensor, target, weight=None, ignore_index: int = -100,  # noqa: A002 - PyTorch's name
             reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities `input` (N, C, ...) at class indices `target` (N, ...)."""
    _check_reduction("nll_loss", reduction)
    host = _host_values(target)
    target = _beside(target, input, "nll_loss: target")
    _check_class_target("nll_loss", input, target, ignore_index, host)
    return _picked_nll(input, target, _class_weight("nll_loss", weight, input), ignore_index, reduction, host)


def cross_entropy(input: Tensor, target, weight=None, ignore_index: int = -100,  # noqa: A002 - PyTorch's name
                  reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of logits `input` (N, C, ...) against class indices (N, ...) or class
    probabilities (a float target of the input's shape); log_softmax keeps logits of +-1000 finite."""
    _check_reduction("cross_entropy", reduction)
    host = _host_values(target)
    target = _beside(target, input, "cross_entropy: target")
    weight = _class_weight("cross_entropy", weight, input)
    class_axis = 1 if input.ndim >= 2 else 0
    if np.issubdtype(target.dtype, np.floating) and target.shape == input.shape:
        terms = input.log_softmax(axis=class_axis) * target
        if weight is not None:
            terms = terms * weight.reshape(weight.shape + (1,) * (input.ndim - class_axis - 1))
        return _reduce(-terms.sum(axis=class_axis), reduction)
    _check_class_target("cross_entropy", input, target, ignore_index, host)
    return _picked_nll(input.log_softmax(axis=class_axis), target, weight, ignore_index, reduction, host)
