"""The engine's errors, one small hierarchy.

Each class is the exception PyTorch raises for the same mistake (`RuntimeError`, `IndexError`) and
also the Python class this project raised before (`ValueError`, `TypeError`), so `except` clauses
written for either keep working. All of them are `TensorError`s, to catch the engine's errors at once.
"""

from __future__ import annotations


class TensorError(Exception):
    """Base of every error the engine raises on purpose."""


class ShapeError(TensorError, RuntimeError, ValueError):
    """Shapes that do not fit: broadcasting, matmul, reshape, cat, a gradient of the wrong shape."""


class AxisError(TensorError, IndexError, ValueError):
    """An axis (dim) out of range for the tensor's rank: PyTorch's "Dimension out of range" IndexError."""


class IndexingError(TensorError, IndexError):
    """An index out of range or of an unsupported kind."""


class DTypeError(TensorError, RuntimeError, TypeError):
    """A dtype an op or factory cannot take (strings, objects, complex; grad on integers)."""


class DeviceError(TensorError, RuntimeError):
    """Tensors of one op on different devices."""


class ArgumentError(TensorError, RuntimeError, ValueError):
    """An argument out of its range (a negative size, a zero step, both `dim` and `axis` given)."""


class StateError(TensorError, RuntimeError):
    """The graph or a tensor is in a state the call cannot use (backward without grad, a freed graph)."""


class FreedGraphError(StateError):
    """A second backward through a node whose saved arrays the first one freed."""


class InplaceError(StateError):
    """An in-place op PyTorch refuses: on a leaf that requires grad outside `no_grad()`, on a broadcast view."""


class InplaceModifiedError(StateError):
    """A backward through data that was changed in place after the node saved it."""


class BackwardReturnError(StateError, TypeError):
    """A custom Function's backward returned the wrong number or kind of gradients."""


class NotSupportedError(TensorError, NotImplementedError):
    """A PyTorch feature this engine does not have (create_graph=True); the message says what to do."""
