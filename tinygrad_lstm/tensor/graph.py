"""Graph nodes and the backward walk.

A `Function` is one node of the computation graph: `forward` computes on backend arrays and saves
what `backward` needs; `backward` maps the gradients of the outputs to gradients of the inputs.
Each node also records the metadata the graph renderer reads: its op name, the name scope it was
created in and its inputs.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .tensor import Tensor


class _State:
    """Process-wide switches: grad mode, anomaly detection and the current name scope."""

    grad_enabled = True
    detect_anomaly = False
    scope = ""


def is_grad_enabled() -> bool:
    return _State.grad_enabled


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._previous: list[bool] = []

    def __enter__(self):
        self._previous.append(_State.grad_enabled)
        _State.grad_enabled = self.enabled
        return self

    def __exit__(self, *exc):
        _State.grad_enabled = self._previous.pop()
        return False


def no_grad() -> _GradMode:
    """Context manager and decorator: ops inside record no graph (inference, optimizer updates)."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Context manager and decorator: record the graph again inside a `no_grad` block."""
    return _GradMode(True)


@contextlib.contextmanager
def name_scope(name: str):
    """Tensors and ops created inside record the scope path ("step 1/forget gate"); the renderer groups by it."""
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"a name scope must be a non-empty string without '/', got {name!r}")
    outer = _State.scope
    _State.scope = f"{outer}/{name}" if outer else name
    try:
        yield _State.scope
    finally:
        _State.scope = outer


@contextlib.contextmanager
def detect_anomaly():
    """Inside, the first op whose forward or backward produces NaN/Inf raises, naming the op and its scope."""
    previous = _State.detect_anomaly
    _State.detect_anomaly = True
    try:
        yield
    finally:
        _State.detect_anomaly = previous


def _check_finite(xp, array, what: str, fn: Function) -> None:
    if array is not None and np.issubdtype(array.dtype, np.inexact) and not bool(xp.isfinite(array).all()):
        where = f" in name scope {fn.scope!r}" if fn.scope else ""
        raise FloatingPointError(f"anomaly: the {what} of op {fn.op!r}{where} produced NaN or Inf")


class Function:
    """One graph node. Subclasses implement `forward(*arrays, **params)` and `backward(*grad_outputs)`.

    `backward` returns one gradient per input (None where not needed; `self.needs_grad[i]` says
    which are) and must not modify the gradients it is given.
    """

    __slots__ = ("inputs", "saved", "needs_grad", "scope", "xp", "device", "freed", "grad_out", "__dict__")

    #: how many tensors `forward` returned (a tuple for multi-output ops)
    num_outputs = 1

    @property
    def op(self) -> str:
        """The op's name, as the renderer shows it."""
        return type(self).__name__

    def forward(self, *arrays, **params):
        raise NotImplementedError(f"{type(self).__name__} must define forward")

    def backward(self, *grad_outputs):
        raise NotImplementedError(f"{type(self).__name__} must define backward")

    def __repr__(self) -> str:
        return f"<{self.op} scope={self.scope!r}>"


def as_array(value):
    """NumPy turns 0-d results into scalars; keep them arrays so every op and gradient is an array."""
    return np.asarray(value) if isinstance(value, np.generic) else value


def _accumulate(slots: list, index: int, grad) -> None:
    """Add `grad` into slots[index]; slots hold (array, owned) so only our own sums are updated in place."""
    entry = slots[index]
    if entry is None:
        slots[index] = (grad, False)
    elif entry[1]:
        entry[0].__iadd__(grad)
    else:
        slots[index] = (as_array(entry[0] + grad), True)


def topological_functions(root: Tensor) -> list[Function]:
    """The graph's nodes that lead to `root` and need a gradient, inputs before users, each once.

    Iterative depth-first search, so deep graphs (100 000 ops) do not hit Python's recursion limit.
    """
    order: list[Function] = []
    if root._ctx is None:
        return order
    visited = {id(root._ctx)}
    stack: list[tuple[Function, bool]] = [(root._ctx, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        stack.append((fn, True))
        for t in fn.inputs:
            ctx = t._ctx
            if ctx is not None and t.requires_grad and id(ctx) not in visited:
                visited.add(id(ctx))
                stack.append((ctx, False))
    return order


def run_backward(root: Tensor, grad, retain_graph: bool) -> None:
    """Walk the graph from `root` once, in reverse topological order, accumulating into leaves' `.grad`."""
    order = topological_functions(root)
    leaves: dict[int, list] = {}  # id(leaf) -> [leaf, [(array, owned)]]
    retained: dict[tuple[int, int], Tensor] = {}
    anomaly = _State.detect_anomaly

    def deliver(t: Tensor, g) -> None:
        g = as_array(g)
        ctx = t._ctx
        if ctx is None:
            entry = leaves.get(id(t))
            if entry is None:
                leaves[id(t)] = [t, [(g, False)]]
            else:
                _accumulate(entry[1], 0, g)
        else:
            if ctx.grad_out is None:
                ctx.grad_out = [None] * ctx.num_outputs
            _accumulate(ctx.grad_out, t._index, g)
            if t._retains_grad:
                retained[(id(ctx), t._index)] = t

    deliver(root, grad)
    for fn in reversed(order):
        slots = fn.grad_out
        fn.grad_out = None
        if slots is None:
            continue  # no path carried a gradient here
        if fn.freed:
            raise RuntimeError(
                f"trying to backward through op {fn.op!r} a second time: its saved arrays were freed "
                "after the first backward; pass retain_graph=True to the first backward call"
            )
        grads = [None if s is None else s[0] for s in slots]
        if retained:
            for i, g in enumerate(grads):
                t = retained.get((id(fn), i))
                if t is not None and g is not None:
                    t._store_grad(g)
        input_grads = fn.backward(*grads)
        if not retain_graph:
            fn.saved = None
            fn.freed = True
        for t, g in zip(fn.inputs, input_grads):
            if g is None or not t.requires_grad:
                continue
            if anomaly:
                _check_finite(fn.xp, g, "backward", fn)
            deliver(t, g)
    for leaf, slots in leaves.values():
        g, owned = slots[0]
        leaf._store_grad(g, owned)


@dataclass
class GraphView:
    """What `walk_graph` returns: the tensors and ops that lead to the roots, and the edges between them.

    Edges are (tensor, op) for an op's inputs, in argument order, and (op, tensor) for its outputs.
    """

    tensors: list[Tensor] = field(default_factory=list)
    ops: list[Function] = field(default_factory=list)
    edges: list[tuple[Any, Any]] = field(default_factory=list)


def walk_graph(*roots: Tensor) -> GraphView:
    """List every tensor and op that leads to `roots`, inputs before their users, each once.

    This is the public way to read a graph (the renderer uses it): each op carries `.op` (its name),
    `.scope` and `.inputs`; each tensor `.name`, `.scope`, `.tags`, `.is_leaf`, `.requires_grad`.
    """
    view = GraphView()
    seen_tensors: set[int] = set()
    seen_ops: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        t, expanded = stack.pop()
        ctx = t._ctx
        if expanded:
            if ctx is not None and id(ctx) not in seen_ops:
                seen_ops.add(id(ctx))
                view.ops.append(ctx)
                view.edges.extend((inp, ctx) for inp in ctx.inputs)
            if ctx is not None:
                view.edges.append((ctx, t))
            view.tensors.append(t)
            continue
        if id(t) in seen_tensors:
            continue
        seen_tensors.add(id(t))
        stack.append((t, True))
        if ctx is not None:
            stack.extend((inp, False) for inp in reversed(ctx.inputs) if id(inp) not in seen_tensors)
    return view


def retain_grads(*roots: Tensor) -> None:
    """Make every tensor that leads to `roots` keep its `.grad` on the next backward (for `show_grad`)."""
    for t in walk_graph(*roots).tensors:
        if not t.is_leaf:
            t.retain_grad()


def apply(fn_class: type[Function], *inputs: Tensor, **params):
    """Run one op: check devices, compute forward, and link a graph node when a gradient is needed."""
    from .tensor import Tensor

    device = inputs[0].device
    for t in inputs:
        if t.device != device:
            raise RuntimeError(
                f"{fn_class.__name__}: tensors are on different devices, {device!r} and {t.device!r}; "
                "move them with .to(device) first"
            )
    fn = fn_class.__new__(fn_class)
    fn.device = device
    fn.xp = inputs[0]._xp
    if device == "cpu":
        out = fn.forward(*[t.data for t in inputs], **params)
    else:
        from .backend import use_device

        with use_device(device):
            out = fn.forward(*[t.data for t in inputs], **params)
    needs_grad = _State.grad_enabled and any(t.requires_grad for t in inputs)
    if needs_grad:
        fn.inputs = inputs
        fn.needs_grad = tuple(t.requires_grad for t in inputs)
        fn.scope = _State.scope
        fn.freed = False
        fn.grad_out = None
    else:
        fn.scope = _State.scope
        fn.saved = None
    if not isinstance(out, tuple):
        out = as_array(out)
        if _State.detect_anomaly:
            _check_finite(fn.xp, out, "forward", fn)
        return Tensor._make(out, device, fn if needs_grad else None, 0)
    fn.num_outputs = len(out)
    if _State.detect_anomaly:
        for o in out:
            _check_finite(fn.xp, o, "forward", fn)
    return tuple(Tensor._make(o, device, fn if needs_grad else None, i) for i, o in enumerate(out))
