"""Colours, shapes and labels: the article's picture language (yellow layers, pink pointwise ops, one bold
highway), plus the gradient colour scale and the legend."""

from __future__ import annotations

import html
import math

import numpy as np

FONT = "Helvetica"
HIGHWAY_COLOR = "#1565c0"
EDGE_COLOR = "#5f6b7a"
PARAMETER_EDGE_COLOR = "#b9aee0"
NO_GRAD_COLOR = "#c8c8c8"
SHAPE_COLOR = "#555555"
GRAD_TEXT_COLOR = "#a50f15"
VALUES_COLOR = "#1b5e20"
DETAILS_COLOR = "#4e342e"

#: ops the article draws as pink circles (pointwise) and as yellow boxes (neural-network layers)
POINTWISE_OPS = {"Add", "Sub", "Mul", "Div", "Neg", "Pow", "Maximum", "Minimum", "Where"}
LAYER_OPS = {"Sigmoid", "Tanh", "Relu", "Exp", "Log", "Sqrt", "Abs", "Clip", "Softmax", "LogSoftmax", "MatMul"}
SYMBOLS = {"Add": "+", "Sub": "−", "Mul": "×", "Div": "÷", "Neg": "−", "Pow": "^", "MatMul": "@", "Sigmoid": "σ"}

KIND_STYLES = {
    "input": {"shape": "ellipse", "style": "filled", "fillcolor": "#d8f0d8"},
    "parameter": {"shape": "box", "style": "rounded,filled", "fillcolor": "#e4dbf7"},
    "constant": {"shape": "plaintext", "fontsize": "9", "height": "0.2", "width": "0.2"},
    "tensor": {"shape": "ellipse", "style": "filled", "fillcolor": "#ffffff", "fontsize": "9"},
    "output": {"shape": "ellipse", "style": "filled", "fillcolor": "#ffd8a8", "peripheries": "2"},
    "pointwise": {"shape": "circle", "style": "filled", "fillcolor": "#f8c8d8", "margin": "0.02"},
    "layer": {"shape": "box", "style": "filled", "fillcolor": "#fde9a9"},
    "op": {"shape": "box", "style": "filled", "fillcolor": "#eeeeee", "fontsize": "9"},
    "details": {"shape": "box", "style": "filled,bold", "fillcolor": "#fde9a9", "margin": "0.12,0.08"},
    "elided": {"shape": "box", "style": "dashed,rounded", "fillcolor": "#ffffff"},
}
LEGEND_NAMES = {
    "input": "input", "parameter": "parameter (shown once)", "tensor": "tensor", "output": "output",
    "pointwise": "pointwise op", "layer": "layer op", "op": "other op", "elided": "folded steps",
    "details": "fused op (what it computed, inside)",
}
#: cluster fills, handed out in order of first appearance of a scope name (so "forget gate" keeps one colour)
CLUSTER_FILLS = ["#fff3e0", "#e3f2fd", "#e8f5e9", "#fce4ec", "#f3e5f5", "#e0f7fa", "#fffde7", "#efebe9"]
STEP_FILL = "#fafafa"
STEP_BORDER = "#9e9e9e"
#: gradient magnitude, small to large: grey fading to deep red
GRAD_PALETTE = ["#d9d9d9", "#fcbba1", "#fb6a4a", "#cb181d", "#67000d"]
MAX_SHOWN_VALUES = 64
LEGEND_TICKS = 6  # at most this many decades labelled on the gradient colour bar


def op_kind(op_name: str) -> str:
    if op_name in POINTWISE_OPS:
        return "pointwise"
    return "layer" if op_name in LAYER_OPS else "op"


def format_shape(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape)) if shape else "scalar"


def format_values(array: np.ndarray) -> str:
    """A small tensor's values, rounded, long rows elided in the middle."""
    return np.array2string(array, precision=3, threshold=6, edgeitems=2, suppress_small=True, max_line_width=48)


def html_label(title: str, lines: list[tuple[str, str]], bold: bool = True) -> str:
    """An HTML-like Graphviz label: a title, then small coloured lines (text, colour)."""
    parts = [f"<B>{html.escape(title)}</B>" if bold else html.escape(title)]
    for text, color in lines:
        body = html.escape(text).replace("\n", '<BR ALIGN="LEFT"/>')
        parts.append(f'<FONT POINT-SIZE="8" COLOR="{color}">{body}</FONT>')
    return "<" + "<BR/>".join(parts) + ">"


def _mix(a: str, b: str, w: float) -> str:
    ca = [int(a[i : i + 2], 16) for i in (1, 3, 5)]
    cb = [int(b[i : i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * w):02x}" for x, y in zip(ca, cb, strict=True))


class GradScale:
    """Maps a gradient norm to a colour and a pen width on a log scale spanning the graph's norms, or the
    fixed (smallest, largest) `span` given, so that pictures drawn with one span compare by colour."""

    def __init__(self, norms: list[float], span: tuple[float, float] | None = None):
        positive = [n for n in norms if n > 0 and math.isfinite(n)] if span is None else list(span)
        self.low = math.floor(math.log10(min(positive))) if positive else -1
        self.high = max(math.ceil(math.log10(max(positive))) if positive else 0, self.low + 1)

    def position(self, norm: float) -> float:
        """0 for the smallest decade, 1 for the largest."""
        return min(max((math.log10(norm) - self.low) / (self.high - self.low), 0.0), 1.0)

    def color(self, norm: float | None) -> str:
        if norm is None or not norm > 0 or not math.isfinite(norm):
            return NO_GRAD_COLOR
        x = self.position(norm) * (len(GRAD_PALETTE) - 1)
        i = min(int(x), len(GRAD_PALETTE) - 2)
        return _mix(GRAD_PALETTE[i], GRAD_PALETTE[i + 1], x - i)

    def penwidth(self, norm: float | None) -> float:
        if norm is None or not norm > 0 or not math.isfinite(norm):
            return 0.8
        return 0.8 + 2.7 * self.position(norm)


def legend_label(kinds: list[str], highway: bool, scale: GradScale | None) -> str:
    """One HTML table: a swatch per node kind present, the highway, and the gradient colour bar."""
    rows = ['<TR><TD COLSPAN="2"><B>legend</B></TD></TR>']
    for kind in (k for k in kinds if k in LEGEND_NAMES):
        fill = KIND_STYLES[kind].get("fillcolor", "#ffffff")
        rows.append(f'<TR><TD BGCOLOR="{fill}" BORDER="1" WIDTH="18"> </TD>'
                    f'<TD ALIGN="LEFT">{html.escape(LEGEND_NAMES[kind])}</TD></TR>')
    if highway:
        rows.append(f'<TR><TD BGCOLOR="{HIGHWAY_COLOR}" WIDTH="18"> </TD>'
                    '<TD ALIGN="LEFT">highway (state path)</TD></TR>')
    if scale is not None:
        span = scale.high - scale.low
        decades = sorted({scale.low + round(span * i / (LEGEND_TICKS - 1)) for i in range(LEGEND_TICKS)})
        cells = "".join(f'<TD BGCOLOR="{scale.color(10.0 ** d)}" WIDTH="14"> </TD>' for d in decades)
        ticks = "".join(f'<TD><FONT POINT-SIZE="7">1e{d}</FONT></TD>' for d in decades)
        rows.append('<TR><TD COLSPAN="2">gradient norm (log scale)</TD></TR>')
        rows.append(f'<TR><TD COLSPAN="2"><TABLE BORDER="0" CELLSPACING="0">'
                    f'<TR>{cells}</TR><TR>{ticks}</TR></TABLE></TD></TR>')
        rows.append(f'<TR><TD BGCOLOR="{NO_GRAD_COLOR}" WIDTH="18"> </TD>'
                    '<TD ALIGN="LEFT">zero or no gradient</TD></TR>')
    return '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="2" CELLPADDING="2">' + "".join(rows) + "</TABLE>>"
