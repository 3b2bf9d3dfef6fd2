"""See a computation graph: gates grouped and named, the cell-state highway, the gradients flowing back.

`draw_graph(*roots)` returns a `graphviz.Digraph` (it displays inline in Jupyter); `render(graph, path)`
writes it to a file. Generic: it reads only the graph's metadata (`tl.walk_graph`), name scopes and the
tag "highway" a recurrent cell puts on the state it carries from step to step.
"""

from .draw import draw_graph
from .render import GraphvizNotInstalledError, GraphvizPackageMissingError, render

__all__ = ["GraphvizNotInstalledError", "GraphvizPackageMissingError", "draw_graph", "render"]
