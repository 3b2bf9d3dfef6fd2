"""Graph ops behind in-place assignment that is recorded in the graph (`y[index] = value` with grad on)."""

from __future__ import annotations

from .graph import Function
from .ops import unbroadcast


class IndexPut(Function):
    """`a` with `a[index] = value`: the gradient of `a` is zero where it was overwritten, `value`'s is
    the upstream gradient there (summed back to `value`'s shape)."""

    def forward(self, a, value, index=None):
        self.saved = index
        self.value_shape = value.shape
        out = a.copy()
        out[index] = value
        return out

    def backward(self, g):
        index = self.saved
        ga = gv = None
        if self.needs_grad[0]:
            ga = g.copy()
            ga[index] = 0
        if self.needs_grad[1]:
            gv = unbroadcast(g[index], self.value_shape)
        return ga, gv
