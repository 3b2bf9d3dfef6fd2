"""Graph nodes and the backward walk.

A `Function` is one node of the computation graph: `forward` computes on backend arrays and saves
what `backward` needs; `backward` maps the gradients of the outputs to gradients of the inputs.
A tensor made by an op points at its node through `tensor.grad_fn`, and each node at its input
tensors, so the graph is read from the roots backwards. `tensor.py`'s `apply` creates the nodes;
this module knows tensors only through those two links and never imports `tensor.py`.

The backward walk, in three named steps (see `run_backward`):
1. `topological_order`: every node that leads to the root, inputs before users (one depth-first walk,
   also behind `walk_graph`);
2. `call_backward`: in reverse order, each node turns its outputs' gradients into its inputs';
3. `release`: the node's saved arrays are dropped at once, unless `retain_graph=True`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from .backend import array_module, device_of, use_device
from .errors import BackwardReturnError, FreedGraphError, InplaceModifiedError

if TYPE_CHECKING:
    from .tensor import Tensor


class _ThreadState(threading.local):
    """Grad mode, inference mode, anomaly detection and the current name scope: per thread, as in PyTorch."""

    grad_enabled = True
    inference = False
    detect_anomaly = False
    scope = ""


STATE = _ThreadState()
_Decorated = TypeVar("_Decorated", bound=Callable[..., Any])


def is_grad_enabled() -> bool:
    """False inside `no_grad()`: ops then record no graph."""
    return STATE.grad_enabled


class _GradMode(contextlib.ContextDecorator):
    """Sets grad mode (and inference mode, unless `inference` is None) inside a `with` block or a decorated
    function; re-entrant, restores the outer modes. The modes it saves are kept per thread, so one object
    (a decorated function) can be used by several threads at once."""

    def __init__(self, enabled: bool, inference: bool | None = None):
        self.enabled, self.inference = enabled, inference
        self._saved = threading.local()

    @property
    def _previous(self) -> list[tuple[bool, bool]]:
        """This thread's stack of (grad mode, inference mode) to restore."""
        stack = getattr(self._saved, "stack", None)
        if stack is None:
            stack = self._saved.stack = []
        return stack

    def __enter__(self):
        self._previous.append((STATE.grad_enabled, STATE.inference))
        STATE.grad_enabled = self.enabled
        if self.inference is not None:
            STATE.inference = self.inference
        return self

    def __exit__(self, *exc):
        STATE.grad_enabled, STATE.inference = self._previous.pop()
        return False


class set_grad_enabled(_GradMode):  # noqa: N801 - PyTorch's name
    """Grad mode on or off: as a context manager or decorator like `no_grad`, or called on its own to set
    the mode for the rest of the thread (as in PyTorch, the constructor already sets it)."""

    def __init__(self, mode: bool):
        super().__init__(bool(mode))
        self._before_init: bool | None = STATE.grad_enabled
        STATE.grad_enabled = self.enabled

    def __enter__(self):
        if self._before_init is not None:  # `with set_grad_enabled(m):` restores the mode from before the call
            self._previous.append((self._before_init, STATE.inference))
            self._before_init = None
            return self
        return super().__enter__()

    def __call__(self, func: _Decorated) -> _Decorated:
        if self._before_init is not None:  # decorating does not change the mode of the decorating code
            STATE.grad_enabled, self._before_init = self._before_init, None
        return super().__call__(func)


class inference_mode(_GradMode):  # noqa: N801 - PyTorch's name
    """As `no_grad` (context manager or decorator, `@inference_mode` or `@inference_mode()`), flagged so
    `is_inference_mode_enabled()` sees it. PyTorch also forbids using tensors made inside in a later
    backward; here they are ordinary tensors, since the engine has no cheaper path to offer for them."""

    def __new__(cls, mode: bool | Callable = True):
        if callable(mode):  # bare decorator: @inference_mode
            return cls(True)(mode)
        return super().__new__(cls)

    def __init__(self, mode: bool = True):
        super().__init__(not mode, bool(mode))


def is_inference_mode_enabled() -> bool:
    return STATE.inference


def no_grad(func: Callable | None = None):
    """Context manager and decorator (`@no_grad()` or `@no_grad`): ops inside record no graph."""
    mode = _GradMode(False)
    return mode if func is None else mode(func)


def enable_grad(func: Callable | None = None):
    """Context manager and decorator: record the graph again inside a `no_grad` block."""
    mode = _GradMode(True)
    return mode if func is None else mode(func)


class name_scope:  # noqa: N801 - used as a function, as contextlib's would be
    """Tensors and ops created inside record the scope path ("step 1/forget gate"); the renderer groups by it.

    `with name_scope(name) as path:`. A plain class, not a generator context: a composed LSTM step enters six
    (~0.4 us each, against ~1.5 us for a contextlib one).
    """

    __slots__ = ("name", "outer")

    def __init__(self, name: str):
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"a name scope must be a non-empty string without '/', got {name!r}")
        self.name = name

    def __enter__(self) -> str:
        self.outer = outer = STATE.scope
        STATE.scope = f"{outer}/{self.name}" if outer else self.name
        return STATE.scope

    def __exit__(self, *exc_info) -> None:
        STATE.scope = self.outer


@contextlib.contextmanager
def detect_anomaly():
    """Inside, the first op whose forward or backward produces NaN/Inf raises, naming the op and its scope.

    It costs one finiteness check per array, so it is for debugging, not for training runs.
    """
    previous = STATE.detect_anomaly
    STATE.detect_anomaly = True
    try:
        yield
    finally:
        STATE.detect_anomaly = previous


def is_finite(array) -> bool:
    """False if a float `array` holds NaN or Inf; integer and bool arrays always are finite."""
    if array is None or not np.issubdtype(array.dtype, np.inexact):
        return True
    return bool(array_module(device_of(array)).isfinite(array).all())


def _in_scope(fn: Function) -> str:
    return f" in name scope {fn.scope!r}" if fn.scope else ""


def _origin(t: Tensor) -> str:
    """Where a tensor's NaN/Inf came from, for the anomaly message."""
    what = f"tensor {t.name!r}" if t.name else "tensor"
    if t.grad_fn is None:
        return f"the {what} of shape {t.shape} is a leaf: the NaN or Inf came in with data given to the graph"
    return (f"the {what} of shape {t.shape} was made by op {t.grad_fn.op!r}{_in_scope(t.grad_fn)} "
            "before detect_anomaly was on")


def check_finite(array, what: str, fn: Function, inputs: Iterable[Tensor] = ()) -> None:
    """Anomaly mode: raise FloatingPointError if `array`, made by the `what` ("forward", "backward") of `fn`,
    holds NaN or Inf.

    The op is blamed only when its inputs were finite; when one was not, the op only passed the NaN on, and
    the message says where it came from instead (a leaf, or a tensor computed before anomaly mode was on).
    """
    if is_finite(array):
        return
    for i, t in enumerate(inputs):
        if not is_finite(t.array):
            raise FloatingPointError(f"anomaly: input {i} of op {fn.op!r}{_in_scope(fn)} already holds NaN or Inf "
                                     f"(seen in its {what}): {_origin(t)}")
    raise FloatingPointError(f"anomaly: the {what} of op {fn.op!r}{_in_scope(fn)} produced NaN or Inf "
                             "from finite inputs")


class VersionCounter:
    """How many times a storage was changed in place, shared by every tensor that views that storage.

    A node that saved arrays for backward remembers the versions of its inputs (and a counter for each
    output it saved), so a backward through data changed since raises instead of computing from it.
    `last_op` names the in-place op that changed it last, for the error message.
    """

    __slots__ = ("value", "last_op")

    def __init__(self, value: int = 0, last_op: str = ""):
        self.value, self.last_op = value, last_op


class Function:
    """One graph node. Subclasses implement `forward(*arrays, **params)` and `backward(*grad_outputs)`.

    `forward` keeps the arrays `backward` needs in `self.saved`. `backward` returns one gradient per
    input (None where `self.needs_grad[i]` is False) and must not modify the gradients it is given.
    A multi-output op returns a tuple from `forward`, and its `backward` gets None for the outputs that
    received no gradient. `apply` (in tensor.py) creates nodes, so subclasses define no `__init__`.
    """

    __slots__ = ("inputs", "needs_grad", "saved", "freed", "num_outputs", "scope", "device", "xp", "details",
                 "saved_versions", "saved_outputs")
    inputs: tuple[Tensor, ...]  # the tensors forward was called on (only kept when the node is in a graph)
    needs_grad: tuple[bool, ...]  # per input: does backward have to compute its gradient?
    saved: Any  # what forward kept for backward; None once a backward released it
    freed: bool  # True after a backward released `saved` (a second backward then raises)
    num_outputs: int
    scope: str  # the name scope the op ran in ("step 1/forget gate")
    device: str  # where the outputs live ("cpu", "cuda:0")
    xp: ModuleType  # the array module of that device: ops compute with xp.*, never with NumPy directly
    details: dict[str, Any]  # what a fused node computed inside, for renderers ({"steps": 3, "gates": (...)})
    saved_versions: tuple[int, ...] | None  # per input, its version if `saved` holds its data, else -1;
    # None when the node saved nothing
    saved_outputs: tuple[tuple[int, VersionCounter], ...]  # (output index, counter) of outputs kept in `saved`,
    # added when such an output first gets a counter (before anything can change it)
    fresh_gradients = False
    """True when `backward` returns arrays it allocated itself, each for one input only: the walk may then keep
    them as they are (as a leaf's .grad, or to sum into) instead of copying, as PyTorch's AccumulateGrad takes a
    gradient nobody else holds. Set it only on ops whose backward never returns a view, a saved array or one of
    its gradient inputs."""

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


# ---------------------------------------------------------------- reading the graph


def topological_order(last: Iterable[Function]) -> list[Function]:
    """Every node that leads to the nodes `last`, inputs before users, each once.

    Iterative depth-first search, so deep graphs (100 000 ops) do not hit Python's recursion limit.
    """
    order: list[Function] = []
    visited: set[int] = set()
    stack: list[tuple[Function, bool]] = [(fn, False) for fn in reversed(list(last))]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)  # every input's node was finished above this marker
            continue
        if id(fn) in visited:
            continue  # pushed twice before it was expanded: the later copy is stale
        visited.add(id(fn))  # mark on expansion, not on push, or a shared node can finish after a user
        stack.append((fn, True))
        for t in reversed(fn.inputs):
            producer = t.grad_fn
            if producer is not None and id(producer) not in visited:
                stack.append((producer, False))
    return order


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
    `.scope`, `.inputs` and `.details`; each tensor `.name`, `.scope`, `.tags`, `.is_leaf`,
    `.requires_grad` and `.grad_fn` (the op that made it). Only ops that recorded a graph appear.
    """
    view = GraphView()
    seen: set[int] = set()

    def add(t: Tensor) -> None:
        if id(t) in seen:
            return
        seen.add(id(t))
        view.tensors.append(t)
        if t.grad_fn is not None:
            view.edges.append((t.grad_fn, t))

    view.ops = topological_order(r.grad_fn for r in roots if r.grad_fn is not None)
    for fn in view.ops:
        for t in fn.inputs:
            add(t)  # an op's inputs come after their own producers, which are earlier in the order
        view.edges.extend((t, fn) for t in fn.inputs)
    for r in roots:
        add(r)
    return view


def retain_grads(*roots: Tensor) -> None:
    """Make every tensor that leads to `roots` keep its `.grad` on the next backward (for `show_grad`)."""
    for t in walk_graph(*roots).tensors:
        if not t.is_leaf:
            t.retain_grad()


# ---------------------------------------------------------------- the backward walk


class _Gradient:
    """A gradient being summed: `owned` once this walk made the array itself, so adding in place is safe."""

    __slots__ = ("array", "owned")

    def __init__(self, array, owned: bool = False):
        self.array, self.owned = array, owned

    def add(self, g) -> None:
        if self.owned:
            self.array += g
        else:
            self.array, self.owned = as_array(self.array + g), True


def describe_tensor(t: Tensor) -> str:
    """How error messages name a tensor: its name (parameters have one), shape and dtype; an unnamed
    tensor made from a named one by a few ops (weight.T) says so."""
    name = f"{t.name!r}, " if t.name else ""
    made: list[str] = []
    source = t
    while not source.name and source.grad_fn is not None and source.grad_fn.inputs and len(made) < 4:
        made.append(source.grad_fn.op)
        source = source.grad_fn.inputs[0]
    origin = f", made by {' <- '.join(made)} from {source.name!r}" if made and source.name else ""
    return f"{name}shape {t.shape}, {t.dtype}{origin}"


def check_versions(fn: Function, versions: tuple[int, ...]) -> None:
    """Raise if data this node saved for backward was changed in place since (PyTorch's rule and message);
    `versions` are the node's `saved_versions`."""
    problem = None
    for i, (t, saved) in enumerate(zip(fn.inputs, versions, strict=True)):
        counter = t._version_counter  # None: the storage was replaced (`.data = ...`), the saved one is intact
        if counter is not None and counter.value != saved and saved >= 0:
            problem = f"input {i} of op {fn.op!r} (the tensor {describe_tensor(t)})", counter.value, saved, counter
            break
    else:
        for index, counter in fn.saved_outputs:
            if counter.value:
                problem = f"output {index} of op {fn.op!r}", counter.value, 0, counter
                break
    if problem is not None:
        what, now, saved, counter = problem
        by = f", last changed by {counter.last_op}" if counter is not None and counter.last_op else ""
        raise InplaceModifiedError(
            f"one of the tensors needed for gradient computation has been modified by an in-place operation: "
            f"{what} is at version {now}{by}; expected version {saved} instead. Hint: run in-place updates "
            "(an optimizer step, p -= lr * p.grad) after backward(), or use out-of-place ops (x = x + y)"
        )


def call_backward(fn: Function, grad_outputs: list) -> tuple:
    """One node's backward, on its device; checks it returned one gradient (or None) per input."""
    if fn.freed:
        raise FreedGraphError(
            f"trying to backward through op {fn.op!r} a second time, but the arrays it saved were freed "
            "by the first backward; pass retain_graph=True to the first backward() call"
        )
    versions = fn.saved_versions
    if versions is not None:
        for t, saved in zip(fn.inputs, versions, strict=True):
            counter = t._version_counter
            if counter is not None and counter.value != saved and saved >= 0:
                check_versions(fn, versions)
        if fn.saved_outputs:
            check_versions(fn, versions)
    if fn.device == "cpu":
        grads = fn.backward(*grad_outputs)
    else:
        with use_device(fn.device):
            grads = fn.backward(*grad_outputs)
    if type(grads) is not tuple or len(grads) != len(fn.inputs):
        got = f"{len(grads)} values" if isinstance(grads, tuple) else f"a {type(grads).__name__}"
        raise BackwardReturnError(f"{fn.op}.backward must return a tuple with one gradient (or None) per input, "
                        f"{len(fn.inputs)} here; it returned {got}")
    return grads


def release(fn: Function) -> None:
    """Drop what the node saved for backward (ops that saved nothing can run again, as in PyTorch)."""
    if fn.saved is not None:
        fn.saved = None
        fn.freed = True


def run_backward(roots: list[Tensor], grads: list, retain_graph: bool,
                 inputs: list[Tensor] | None = None) -> list:
    """Walk the graph from `roots` once, in reverse topological order, accumulating into leaves' `.grad`.

    With `inputs` (what `autograd.grad` asks for), no `.grad` is touched: the gradient arrays of
    `inputs` are returned instead (None for an input no path reaches); without, the list is empty.
    Gradients waiting for a node live in dicts local to this walk, so a walk that raises half way
    (an anomaly, a freed graph) leaves nothing behind that could leak into the next one.
    """
    pending: dict[int, list[_Gradient | None]] = {}  # id(node) -> one summed gradient per output
    leaves: dict[int, tuple[Tensor, _Gradient]] = {}  # id(leaf) -> (leaf, its summed gradient)
    retained: dict[tuple[int, int], Tensor] = {}  # (id(node), output index) -> a non-leaf that keeps .grad
    hooked: dict[tuple[int, int], Tensor] = {}  # (id(node), output index) -> a non-leaf with hooks
    anomaly = STATE.detect_anomaly

    def deliver(t: Tensor, g, owned: bool = False) -> None:
        fn = t.grad_fn
        if fn is None:
            entry = leaves.get(id(t))
            if entry is None:
                leaves[id(t)] = (t, _Gradient(g, owned))
            else:
                entry[1].add(g)
            return
        slots = pending.get(id(fn))
        if slots is None:
            slots = pending[id(fn)] = [None] * fn.num_outputs
        slot = slots[t._output_index]
        if slot is None:
            slots[t._output_index] = _Gradient(g, owned)
        else:
            slot.add(g)
        if t.retains_grad:
            retained[(id(fn), t._output_index)] = t
        if t._hooks is not None:
            hooked[(id(fn), t._output_index)] = t

    wanted: dict[tuple[int, int], int] = {}  # (id(node), output index) -> position of a non-leaf in `inputs`
    found: list = [None] * len(inputs or ())
    if inputs is not None:
        retained = {}
        for position, t in enumerate(inputs):
            if t.grad_fn is not None:
                wanted[(id(t.grad_fn), t._output_index)] = position
    for root, grad in zip(roots, grads, strict=True):
        if anomaly and not is_finite(grad):
            raise FloatingPointError("anomaly: the gradient given to backward() holds NaN or Inf (no op made it)")
        deliver(root, as_array(grad))
    order = topological_order([r.grad_fn for r in roots if r.grad_fn is not None])
    for fn in reversed(order):
        slots = pending.pop(id(fn), None)
        if slots is None:
            continue  # no path carried a gradient here
        grad_outputs = [None if s is None else s.array for s in slots]
        if anomaly:
            for i, s in enumerate(slots):
                if s is not None and s.owned and not is_finite(s.array):  # each part was finite: the sum overflowed
                    raise FloatingPointError(f"anomaly: the gradients reaching output {i} of op {fn.op!r}"
                                             f"{_in_scope(fn)} are finite, but their sum overflowed to Inf")
        watched = hooked or retained or inputs is not None  # a non-leaf's gradient is wanted as it passes
        for i, g in enumerate(grad_outputs) if watched else ():
            if g is None:
                continue
            if hooked and (id(fn), i) in hooked:
                g = grad_outputs[i] = hooked[(id(fn), i)]._run_hooks(g)
            if inputs is not None:
                if (id(fn), i) in wanted:
                    found[wanted[(id(fn), i)]] = g
                continue
            keeper = retained.get((id(fn), i)) if retained else None
            if keeper is not None:
                keeper._accumulate_grad(g)
        input_grads = call_backward(fn, grad_outputs)
        if not retain_graph:
            release(fn)
        fresh = fn.fresh_gradients
        for t, g in zip(fn.inputs, input_grads, strict=True):
            if g is None or not t.requires_grad:
                continue
            g = as_array(g)
            if anomaly:
                check_finite(g, "backward", fn, fn.inputs)
            deliver(t, g, fresh)
    if inputs is not None:
        for position, t in enumerate(inputs):
            if t.grad_fn is None and id(t) in leaves:
                g = leaves[id(t)][1].array
                found[position] = g if t._hooks is None else t._run_hooks(g)
        return found
    for leaf, g in leaves.values():
        if leaf._hooks is None:
            leaf._accumulate_grad(g.array, g.owned)
        else:
            hooked_grad = leaf._run_hooks(g.array)
            leaf._accumulate_grad(hooked_grad, g.owned and hooked_grad is g.array)
    return found
