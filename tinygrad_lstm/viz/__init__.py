"""See a computation graph: gates grouped and named, the cell-state highway, the gradients flowing back.

`draw_graph(*roots)` returns a `graphviz.Digraph` (it displays inline in Jupyter); `render(graph, path)`
writes it to a file; `explore(root, path)` writes an HTML page that replays the backward pass over it.
Generic: it reads only the graph's metadata (`tl.walk_graph`), name scopes and the tag "highway" a
recurrent cell puts on the state it carries from step to step.
"""

from .draw import draw_graph
from .explore import FOLD_ABOVE_OPS, ExplorerPage, explore, explorer_page
from .render import GraphvizNotInstalledError, GraphvizPackageMissingError, render

__all__ = ["FOLD_ABOVE_OPS", "ExplorerPage", "GraphvizNotInstalledError", "GraphvizPackageMissingError", "draw_graph",
           "explore", "explorer_page", "render"]
