"""Graph nodes and the backward walk.

A `Function` is one node of the computation graph: `forward` computes on backend arrays and saves
what `backward` needs; `backward` maps the gradients of the outputs to gradients of the inputs.
Each node also records the metadata the graph renderer reads: its op name, the name scope it was
created in and its inputs (tensors add their own `.name` and `.tags`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .backend import array_module, device_of, use_device

if TYPE_CHECKING:
    from .tensor import Tensor


class _State:
    """Process-wide switches: grad mode, anomaly detection and the current name scope."""

    grad_enabled = True
    detect_anomaly = False
    scope = ""


def is_grad_enabled() -> bool:
    """False inside `no_grad()`: ops then record no graph."""
    return _State.grad_enabled


class _GradMode(contextlib.ContextDecorator):
    """Sets grad mode inside a `with` block or a decorated function; re-entrant, restores the outer mode."""

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


def no_grad(func: Callable | None = None):
    """Context manager and decorator (`@no_grad()` or `@no_grad`): ops inside record no graph."""
    mode = _GradMode(False)
    return mode if func is None else mode(func)


def enable_grad(func: Callable | None = None):
    """Context manager and decorator: record the graph again inside a `no_grad` block."""
    mode = _GradMode(True)
    return mode if func is None else mode(func)


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
    """Inside, the first op whose forward or backward produces NaN/Inf raises, naming the op and its scope.

    It costs one finiteness check per array, so it is for debugging, not for training runs.
    """
    previous = _State.detect_anomaly
    _State.detect_anomaly = True
    try:
        yield
    finally:
        _State.detect_anomaly = previous


def _check_finite(array, what: str, fn: Function) -> None:
    if array is None or not np.issubdtype(array.dtype, np.inexact):
        return
    if not bool(array_module(device_of(array)).isfinite(array).all()):
        where = f" in name scope {fn.scope!r}" if fn.scope else ""
        raise FloatingPointError(f"anomaly: the {what} of op {fn.op!r}{where} produced NaN or Inf")


class Function:
    """One graph node. Subclasses implement `forward(*arrays, **params)` and `backward(*grad_outputs)`.

    `forward` keeps the arrays `backward` needs in `self.saved` (freed after a backward unless
    `retain_graph=True`; a second backward through a node whose arrays were freed raises).
    `backward` returns one gradient per input (None where `self.needs_grad[i]` is False) and must
    not modify the gradients it is given. A multi-output op returns a tuple from `forward`, and its
    `backward` gets None for the outputs that received no gradient. `self.xp` is the array module
    and `self.device` the device of the outputs. `apply` creates nodes, so subclasses define no `__init__`.
    """

    __slots__ = ("inputs", "saved", "needs_grad", "scope", "xp", "device", "freed", "num_outputs", "__dict__")

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


def _sum_into(entry: tuple | None, grad) -> tuple:
    """Add `grad` to a pending (array, owned) entry; only arrays this walk made (owned) are updated in place."""
    if entry is None:
        return (grad, False)
    if entry[1]:
        entry[0].__iadd__(grad)
        return entry
    return (as_array(entry[0] + grad), True)


def topological_functions(root: Tensor) -> list[Function]:
    """The graph's nodes that lead to `root`, inputs before users, each once.

    Iterative depth-first search, so deep graphs (100 000 ops) do not hit Python's recursion limit.
    """
    order: list[Function] = []
    if root._ctx is None:
        return order
    visited: set[int] = set()
    stack: list[tuple[Function, bool]] = [(root._ctx, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)  # every input's node was finished above this marker
            continue
        if id(fn) in visited:
            continue  # pushed twice before it was expanded: the later copy is stale
        visited.add(id(fn))  # mark on expansion, not on push, or a shared node can finish after a user
        stack.append((fn, True))
        for t in fn.inputs:
            ctx = t._ctx
            if ctx is not None and id(ctx) not in visited:
                stack.append((ctx, False))
    return order


def _bad_backward(fn: Function, returned) -> None:
    got = f"{len(returned)} values" if isinstance(returned, tuple) else f"a {type(returned).__name__}"
    raise TypeError(
        f"{fn.op}.backward must return a tuple with one gradient (or None) per input, "
        f"{len(fn.inputs)} here; it returned {got}"
    )


def run_backward(root: Tensor, grad, retain_graph: bool) -> None:
    """Walk the graph from `root` once, in reverse topological order, accumulating into leaves' `.grad`.

    Gradients waiting for a node live in dicts local to this walk, so a walk that raises half way
    (an anomaly, a freed graph) leaves nothing behind that could leak into the next one.
    """
    order = topological_functions(root)
    pending: dict[int, list] = {}  # id(fn) -> [(array, owned) or None, one per output]
    leaves: dict[int, tuple] = {}  # id(leaf) -> (leaf, (array, owned))
    retained: dict[tuple[int, int], Tensor] = {}  # (id(fn), output index) -> a non-leaf that keeps .grad
    anomaly = _State.detect_anomaly

    def deliver(t: Tensor, g) -> None:
        ctx = t._ctx
        if ctx is None:
            entry = leaves.get(id(t))
            leaves[id(t)] = (t, _sum_into(None if entry is None else entry[1], g))
            return
        slots = pending.get(id(ctx))
        if slots is None:
            slots = pending[id(ctx)] = [None] * ctx.num_outputs
        slots[t._index] = _sum_into(slots[t._index], g)
        if t._retains_grad:
            retained[(id(ctx), t._index)] = t

    deliver(root, as_array(grad))
    for fn in reversed(order):
        slots = pending.pop(id(fn), None)
        if slots is None:
            continue  # no path carried a gradient here
        if fn.freed:
            raise RuntimeError(
                f"trying to backward through op {fn.op!r} a second time, but the arrays it saved were freed "
                "by the first backward; pass retain_graph=True to the first backward() call"
            )
        grads = [None if s is None else s[0] for s in slots]
        if retained:
            for i, g in enumerate(grads):
                t = retained.get((id(fn), i))
                if t is not None and g is not None:
                    t._store_grad(g)
        if fn.device == "cpu":
            input_grads = fn.backward(*grads)
        else:
            with use_device(fn.device):
                input_grads = fn.backward(*grads)
        if not retain_graph and fn.saved is not None:  # ops that saved nothing can run again, as in PyTorch
            fn.saved = None
            fn.freed = True
        inputs = fn.inputs
        if type(input_grads) is not tuple or len(input_grads) != len(inputs):
            _bad_backward(fn, input_grads)
        for t, g in zip(inputs, input_grads, strict=True):
            if g is None or not t.requires_grad:
                continue
            if isinstance(g, np.generic):
                g = np.asarray(g)
            if anomaly:
                _check_finite(g, "backward", fn)
            deliver(t, g)
    for leaf, (g, owned) in leaves.values():
        leaf._store_grad(g, owned)


@dataclass
class GraphView:
    """What `walk_graph` returns: the tensors and ops that lead to the roots, and the edges between them.

    `tensors` and `ops` are in topological order (inputs before their users). Edges are
    (tensor, op) for an op's inputs, in argument order, and (op, tensor) for its outputs.
    """

    tensors: list[Tensor] = field(default_factory=list)
    ops: list[Function] = field(default_factory=list)
    edges: list[tuple[Any, Any]] = field(default_factory=list)


def walk_graph(*roots: Tensor) -> GraphView:
    """List every tensor and op that leads to `roots`, inputs before their users, each once.

    This is the public way to read a graph (the renderer uses it): each op carries `.op` (its name),
    `.scope` and `.inputs`; each tensor `.name`, `.scope`, `.tags`, `.is_leaf`, `.requires_grad` and
    `.grad_fn` (the op that made it). Only ops that recorded a graph (some input required grad) appear.
    """
    view = GraphView()
    seen_tensors: set[int] = set()
    seen_ops: set[int] = set()
    stack: list[tuple[Tensor, bool]] = [(r, False) for r in reversed(roots)]
    while stack:
        t, expanded = stack.pop()
        ctx = t._ctx
        if expanded:
            if ctx is not None:
                if id(ctx) not in seen_ops:
                    seen_ops.add(id(ctx))
                    view.ops.append(ctx)
                    view.edges.extend((inp, ctx) for inp in ctx.inputs)
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


def _tensor_class():
    from .tensor import Tensor  # tensor.py imports this module, so bind the class on first use

    global _Tensor
    _Tensor = Tensor
    return Tensor


_Tensor = None


def apply(fn_class: type[Function], *inputs: Tensor, **params):
    """Run one op on tensors of one device; link a graph node when grad mode is on and an input requires grad.

    Returns a Tensor, or a tuple of Tensors when `forward` returns a tuple (multi-output ops).
    This is the hot path of the engine: keep it lean (benchmarks/overhead.py times it).
    """
    first = inputs[0]
    device = first.device
    needs_grad = False
    for t in inputs:
        if t.device != device:
            raise RuntimeError(
                f"{fn_class.__name__}: tensors are on different devices, {device!r} and {t.device!r}; "
                "move them to one device with .to(device) first"
            )
        if t.requires_grad:
            needs_grad = True
    fn = fn_class.__new__(fn_class)
    fn.device = device
    fn.xp = first._xp
    fn.scope = _State.scope
    fn.saved = None
    if device == "cpu":
        out = fn.forward(*[t.data for t in inputs], **params)
    else:
        with use_device(device):
            out = fn.forward(*[t.data for t in inputs], **params)
    ctx = None
    if needs_grad and _State.grad_enabled:
        ctx = fn
        fn.inputs = inputs
        fn.needs_grad = tuple([t.requires_grad for t in inputs])
        fn.freed = False
    make = (_Tensor or _tensor_class())._make
    device = fn.device  # an op that moves data (ToDevice) sets the device of its outputs
    if type(out) is not tuple:
        fn.num_outputs = 1
        if isinstance(out, np.generic):
            out = np.asarray(out)
        if _State.detect_anomaly:
            _check_finite(out, "forward", fn)
        return make(out, device, ctx, 0)
    fn.num_outputs = len(out)
    if _State.detect_anomaly:
        for o in out:
            _check_finite(o, "forward", fn)
    return tuple(make(as_array(o), device, ctx, i) for i, o in enumerate(out))
