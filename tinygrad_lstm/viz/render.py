"""`render`: write a drawn graph to SVG, PNG, PDF or DOT, with a helpful error when Graphviz is missing.

The `graphviz` Python package is imported only when a graph is drawn or rendered, so the engine, nn and
every command that draws nothing work without it (GPU clusters often lack it and cannot install it).
"""

from __future__ import annotations

import importlib
import os
import shutil
from typing import TYPE_CHECKING

from ..tensor import write_atomically

FORMATS = ("svg", "png", "pdf", "dot")
INSTALL_HINT = (
    "install Graphviz's `dot` program: `apt-get install graphviz` (Debian/Ubuntu), `brew install graphviz` "
    "(macOS) or `conda install -c conda-forge graphviz`; then render again"
)


class GraphvizNotInstalledError(RuntimeError):
    """Graphviz's `dot` program is missing: the DOT source was written instead."""


class GraphvizPackageMissingError(RuntimeError):
    """The `graphviz` Python package is missing: graphs cannot be drawn until it is installed."""


class _LazyGraphviz:
    """The `graphviz` package, imported on first use; without it, a clear error says what to install."""

    def __getattr__(self, name: str):
        try:
            module = importlib.import_module("graphviz")
        except ImportError as exc:
            raise GraphvizPackageMissingError(
                "drawing a graph needs the `graphviz` Python package, which is not installed: "
                f"pip install graphviz; to render pictures, also {INSTALL_HINT}"
            ) from exc
        return getattr(module, name)


if TYPE_CHECKING:  # type checkers see the package itself (graphviz.Digraph in annotations)
    import graphviz
else:
    graphviz = _LazyGraphviz()


def render(graph: graphviz.Digraph, path: str | os.PathLike, format: str | None = None) -> str:  # noqa: A002
    """Write `graph` to `path` as `format` ("svg", "png", "pdf" or "dot") and return the path written.

    Without `format`, the path's suffix says it (".png" writes a PNG; ".gv" is DOT), and a path without a
    suffix gets ".svg". Without Graphviz's `dot` program the DOT source is written next to it (".dot") and
    `GraphvizNotInstalledError` says how to install Graphviz.
    """
    if not isinstance(graph, graphviz.Digraph):
        raise TypeError(f"render takes the graphviz.Digraph from draw_graph, got {type(graph).__name__}")
    if format is not None and format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    known = {**{f: f for f in FORMATS}, "gv": "dot"}
    if suffix not in known:
        path = f"{path}.{format or 'svg'}"
        format = format or "svg"  # noqa: A001
    elif format is None:
        format = known[suffix]  # noqa: A001
    elif known[suffix] != format:
        raise ValueError(f"render: {path!r} ends in .{suffix} but format is {format!r}; make them agree")
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"render: cannot create the folder for {path!r}: {exc.strerror or exc}") from None
    if format == "dot":
        write_atomically(path, graph.source.encode())
        return path
    try:
        if shutil.which("dot") is None:
            raise graphviz.ExecutableNotFound(["dot"])
        image = graph.pipe(format=format)
    except graphviz.ExecutableNotFound as exc:
        source_path = os.path.splitext(path)[0] + ".dot"
        write_atomically(source_path, graph.source.encode())
        raise GraphvizNotInstalledError(
            f"cannot render {format.upper()}: Graphviz's `dot` program was not found; the graph's DOT source "
            f"was written to {source_path}. To render pictures, {INSTALL_HINT}"
        ) from exc
    except graphviz.CalledProcessError as exc:
        reason = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"Graphviz's dot could not lay out the graph ({reason[-1] if reason else exc}); "
                           f"render format='dot' to keep the source, or draw fewer steps (fold=)") from None
    write_atomically(path, image)
    return path
