"""`explore`: watch backprop happen, in one self-contained HTML page.

The page shows the graph `draw_graph` lays out (Graphviz SVG, inline) and replays the engine's backward
walk over it node by node: the op being processed is highlighted, the edges it sends gradient along light
up, and each node takes the colour of its gradient (fixed log scale) once all of it has arrived. Hover or
click a node for its op, scope, shape and summaries of its value and gradient; for a sigmoid's output,
the fraction of units near 0 and near 1. Per-step inputs (leaves used by one repeated scope only, the
x_t of an unrolled cell) get a bar chart of the gradient norm that reaches them.

Generic like `draw_graph`: it reads only `tl.walk_graph`, op names and scopes. The walk's order is the
engine's: `walk_graph`'s op order reversed (tests/test_explore.py checks it against the engine).
Scripts, styles and pictures are inline, so the file opens without network access; without JavaScript
it is a still picture with a note saying so.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from dataclasses import dataclass
from importlib import resources

import numpy as np

from ..tensor import GraphView, Tensor, walk_graph, write_atomically
from .draw import draw_graph
from .folding import RepeatedScope, find_repeated_scope, hidden_numbers
from .render import graphviz  # the package, imported when a graph is first drawn
from .style import GradScale

#: above this many ops a picture is folded by default, and the whole graph is not laid out at all: a 45-step
#: LSTM cell (10 ops a step), which `dot` lays out in about 4 s on the 2-core development VM (38 steps, 539
#: nodes: 3.6 s, measured 2026-12-02); folded, any length takes under half a second.
FOLD_ABOVE_OPS = 450
#: repeats (time steps) kept at each end of a folded picture
FOLD_KEEP = 2
#: a sigmoid output below this counts as "near 0", above 1 minus this as "near 1"
SATURATION = 0.1
LEGEND_LABELS = 6  # at most this many decades labelled on the gradient legend
VALUE_PALETTE = ("#2166ac", "#f7f7f7", "#b2182b")  # negative, zero, positive mean value
NODE_TITLE = re.compile(r'<g id="[^"]*" class="node[^"]*">\s*<title>([^<]*)</title>')
EDGE_TITLE = re.compile(r'<g id="[^"]*" class="edge[^"]*">\s*<title>([^<]*)</title>')
CLUSTER_LINE = re.compile(r'^\s*subgraph "?cluster_(.*?)"? \{$')
ELIDED_LINE = re.compile(r"^\s*(elided\d+) \[")
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


@dataclass
class ExplorerPage:
    """A finished explorer page: `.html` (the file's text), `.save(path)`, and it displays inline in Jupyter."""

    html: str

    def save(self, path: str | os.PathLike) -> str:
        """Write the page (atomically) and return the path; a path without a suffix gets ".html"."""
        path = os.fspath(path)
        if not os.path.splitext(path)[1]:
            path += ".html"
        write_atomically(path, self.html.encode("utf-8"))
        return path

    def _repr_html_(self) -> str:
        """Jupyter shows the page in a sandboxed iframe, so its script and styles stay its own."""
        return (f'<iframe srcdoc="{html.escape(self.html, quote=True)}" style="width:100%;height:720px;border:0" '
                'sandbox="allow-scripts"></iframe>')


def explore(root: Tensor | dict[str, Tensor], path: str | os.PathLike, fold: bool | None = None) -> str:
    """Write the explorer page for the graph behind `root` (after `tl.retain_grads(root)` and `root.backward()`)
    to `path` and return the path. `root` may be a dict {title: root} to show several graphs side by side
    (an RNN beside an LSTM). fold: None folds long graphs (more than FOLD_ABOVE_OPS ops), True/False forces."""
    return explorer_page(root, fold).save(path)


def explorer_page(root: Tensor | dict[str, Tensor], fold: bool | None = None) -> ExplorerPage:
    """The explorer page as an object: `.save(path)` writes it, and a notebook displays it inline."""
    roots = root if isinstance(root, dict) else {"": root}
    if not roots:
        raise ValueError("explore needs at least one tensor to show the graph of")
    panels = [_panel(title, r, fold) for title, r in roots.items()]
    return ExplorerPage(_page(panels, _colour(panels)))


class _Graph:
    """The walked graph with the lookups the explorer needs: who made and who uses each tensor, the walk."""

    def __init__(self, root: Tensor):
        self.root = root
        self.view = view = walk_graph(root)
        self.op_index = {id(op): i for i, op in enumerate(view.ops)}
        self.tensor_index = {id(t): i for i, t in enumerate(view.tensors)}
        self.producer = {id(t): self.op_index[id(op)] for op, t in view.edges if not isinstance(op, Tensor)}
        self.outputs: list[list[int]] = [[] for _ in view.ops]
        for i, t in enumerate(view.tensors):
            if id(t) in self.producer:
                self.outputs[self.producer[id(t)]].append(i)
        self.users: list[list[int]] = [[] for _ in view.tensors]
        for i, op in enumerate(view.ops):
            for t in op.inputs:
                self.users[self.tensor_index[id(t)]].append(i)
        # the engine's backward walk: the ops in reverse topological order, skipping those no gradient reached
        self.walk = [i for i in reversed(range(len(view.ops)))
                     if any(view.tensors[j].grad is not None for j in self.outputs[i])]
        step_of = {op: s for s, op in enumerate(self.walk)}
        # a gradient has arrived once every op the tensor feeds has sent its part back (the root's: from the start)
        self.arrival = [max((step_of[u] for u in self.users[i] if u in step_of), default=-1)
                        if t.grad is not None else None for i, t in enumerate(view.tensors)]


def _panel(title: str, root: Tensor, fold: bool | None) -> dict:
    """One graph: its pictures (whole and/or folded), node summaries, the walk and the per-step chart."""
    if not isinstance(root, Tensor):
        where = f" ({title})" if title else ""
        raise TypeError(f"explore takes a Tensor or a dict of Tensors, got {type(root).__name__}{where}")
    g = _Graph(root)
    _check_root(title, root, g.view)
    foldable = _foldable(g.view)
    large = len(g.view.ops) > FOLD_ABOVE_OPS
    if fold and not foldable:
        raise ValueError(f"explore: fold=True but the graph{f' {title!r}' if title else ''} has no repeated "
                         "scopes (\"step 1\", \"step 2\", ...) long enough to fold")
    folded_first = foldable and (large if fold is None else fold)
    variants = ["folded" if folded_first else "whole"]
    if foldable and not large:  # the other picture too, when the whole graph is quick to lay out
        variants.append("whole" if folded_first else "folded")
    return {"title": title, "ops": [{"op": op.op, "scope": op.scope} for op in g.view.ops], "walk": g.walk,
            "tensors": [_tensor_summary(t, g.arrival[i]) for i, t in enumerate(g.view.tensors)],
            "pictures": {name: _picture(g, name == "folded") for name in variants}, "shown": variants[0],
            "large": large and foldable, "chart": _step_chart(g)}


def _check_root(title: str, root: Tensor, view: GraphView) -> None:
    where = f" ({title})" if title else ""
    if root.grad_fn is None:
        raise ValueError(f"explore{where}: the root has no graph (it is a leaf, or was made under no_grad)")
    if root.grad is None or not any(t.grad is not None for t in view.tensors if t is not root and not t.is_leaf):
        raise ValueError(f"explore{where}: the graph has no gradients to show; call tl.retain_grads(root), "
                         "then root.backward(), before exploring")


def _repeated(view: GraphView) -> RepeatedScope | None:
    return find_repeated_scope(tuple(op.scope.split("/")) for op in view.ops if op.scope)


def _foldable(view: GraphView) -> bool:
    repeated = _repeated(view)
    return repeated is not None and bool(hidden_numbers(repeated, FOLD_KEEP))


def _stats(array: np.ndarray) -> dict:
    """min, mean, max and norm; None for a value that is not finite (JSON has no NaN)."""
    a = np.asarray(array, dtype=np.float64).ravel()
    if a.size == 0:
        return {"min": 0.0, "mean": 0.0, "max": 0.0, "norm": 0.0}
    stats = {"min": a.min(), "mean": a.mean(), "max": a.max(), "norm": np.linalg.norm(a)}
    return {k: float(v) if math.isfinite(v) else None for k, v in stats.items()}


def _tensor_summary(t: Tensor, arrival: int | None) -> dict:
    values = t.detach().numpy()
    summary = {"name": t.name or "", "shape": list(t.shape), "size": int(values.size), "value": _stats(values),
               "grad": None if t.grad is None else _stats(t.grad.numpy()), "arrival": arrival,
               "requiresGrad": t.requires_grad}
    if t.grad_fn is not None and t.grad_fn.op == "Sigmoid" and values.size:
        summary["saturation"] = {"near0": float((values < SATURATION).mean()),
                                 "near1": float((values > 1 - SATURATION).mean()), "threshold": SATURATION}
    return summary


def _picture(g: _Graph, folded: bool) -> dict:
    """Lay the graph out with `draw_graph` and map its nodes back to the ops and tensors they show: keys
    "op<i>" and "t<i>" index `walk_graph`'s lists, "elided<j>" stand for folded steps; an anonymous tensor
    shares its op's node. Each walk step names the node processed and the edges its gradient goes along."""
    view = g.view
    graph = draw_graph(g.root, fold=FOLD_KEEP if folded else None)
    svg = graph.pipe(format="svg").decode("utf-8")
    svg = svg[svg.index("<svg"):]
    keys = {html.unescape(k) for k in NODE_TITLE.findall(svg)}
    edges = {html.unescape(k) for k in EDGE_TITLE.findall(svg)}
    elided = _elided_scopes(graph)

    def node_of_op(i: int) -> str:
        return f"op{i}" if f"op{i}" in keys else _elided_for(view.ops[i].scope, elided)

    def node_of_tensor(i: int) -> str:
        t = view.tensors[i]
        if f"t{i}" in keys:
            return f"t{i}"
        return node_of_op(g.producer[id(t)]) if id(t) in g.producer else _elided_for(t.scope, elided)

    shows: dict[str, list[int]] = {}  # node key -> the tensors whose value and gradient it shows
    for i in range(len(view.tensors)):
        shows.setdefault(node_of_tensor(i), []).append(i)
    nodes: dict[str, dict] = {key: {"kind": "elided", "title": "folded steps", "scope": "/".join(scope),
                                    "tensors": [], "ops": []} for scope, key in elided.items()}
    for i, op in enumerate(view.ops):
        key = node_of_op(i)
        if key in nodes:
            nodes[key]["ops"].append(i)
        else:
            nodes[key] = {"kind": "op", "title": op.op, "scope": op.scope, "tensors": shows.get(key, []), "ops": [i]}
    for key, members in shows.items():
        if key.startswith("t"):
            t = view.tensors[members[0]]
            kind = "root" if t is g.root else "leaf" if t.is_leaf else "tensor"
            nodes[key] = {"kind": kind, "title": t.name or kind, "scope": t.scope, "tensors": members, "ops": []}
    steps = []
    for i in g.walk:
        op, key = view.ops[i], node_of_op(i)
        lit = []  # [edge title, index of the tensor it carries]
        for t in op.inputs:
            j = g.tensor_index[id(t)]
            tail = node_of_tensor(j)
            if t.requires_grad and f"{tail}->{key}" in edges:
                lit.append([f"{tail}->{key}", j])
        for j in g.outputs[i]:  # an output with a node of its own hands its gradient to the op
            if f"{key}->{node_of_tensor(j)}" in edges:
                lit.append([f"{key}->{node_of_tensor(j)}", j])
        steps.append({"node": key, "edges": lit})
    return {"nodes": nodes, "steps": steps, "svg": svg}


def _elided_scopes(graph: graphviz.Digraph) -> dict[tuple[str, ...], str]:
    """The scope (cluster path) each folded-steps node of a drawn graph sits in."""
    clusters: list[tuple[str, ...]] = [()]
    found = {}
    for line in graph.source.splitlines():
        if (match := CLUSTER_LINE.match(line)) is not None:
            clusters.append(tuple(match.group(1).split("/")))
        elif line.strip() == "}" and len(clusters) > 1:
            clusters.pop()
        elif (match := ELIDED_LINE.match(line)) is not None:
            found[clusters[-1]] = match.group(1)
    return found


def _elided_for(scope: str, elided: dict[tuple[str, ...], str]) -> str:
    """The folded-steps node standing in for a hidden op or tensor: the one in the longest enclosing scope."""
    if not elided:
        raise ValueError(f"a node in scope {scope!r} is missing from the picture and no folded node stands in for it")
    parts = tuple(scope.split("/")) if scope else ()
    enclosing = [prefix for prefix in elided if parts[: len(prefix)] == prefix]
    return elided[max(enclosing, key=len)] if enclosing else next(iter(elided.values()))


def _step_chart(g: _Graph) -> dict | None:
    """The gradient norm reaching each repeat's (time step's) inputs: the leaves with a gradient that feed
    ops of one repeat only, like the x_t of an unrolled cell. None when the graph has no such inputs."""
    repeated = _repeated(g.view)
    if repeated is None:
        return None
    bars: dict[int, dict] = {}
    for i, t in enumerate(g.view.tensors):
        if not t.is_leaf or t.grad is None or not g.users[i]:
            continue
        numbers = {repeated.number_of(tuple(g.view.ops[u].scope.split("/"))) for u in g.users[i]}
        number = numbers.pop() if len(numbers) == 1 else None
        if number is None:
            continue
        bar = bars.setdefault(number, {"squares": 0.0, "arrival": -1, "inputs": []})
        bar["squares"] += float(np.linalg.norm(t.grad.numpy().astype(np.float64).ravel())) ** 2
        bar["arrival"] = max(bar["arrival"], g.arrival[i])
        bar["inputs"].append(t.name or f"t{i}")
    if not bars:
        return None
    return {"word": repeated.word, "bars": [{"number": n, "norm": math.sqrt(b["squares"]), "arrival": b["arrival"],
                                            "inputs": b["inputs"]} for n, b in sorted(bars.items())]}


def _decades(norms: list[float]) -> tuple[int, int]:
    scale = GradScale(norms)
    return scale.low, scale.high


def _colour(panels: list[dict]) -> dict:
    """Colours on scales fixed for the whole page (so graphs side by side compare): gradients on GradScale's
    log scale, mean values on a diverging scale; each node's colour is that of all the tensors it shows."""
    grad_norms, means = [], []
    for panel in panels:
        tensors = panel["tensors"]
        grad_norms += [t["grad"]["norm"] for t in tensors if t["grad"] is not None and t["grad"]["norm"] is not None]
        for picture in panel["pictures"].values():
            for node in picture["nodes"].values():
                members = [tensors[i] for i in node["tensors"]]
                graded = [t for t in members if t["grad"] is not None and t["grad"]["norm"] is not None]
                node["gradNorm"] = math.sqrt(sum(t["grad"]["norm"] ** 2 for t in graded)) if graded else None
                node["arrival"] = max(t["arrival"] for t in graded) if graded else None
                finite = [t for t in members if t["value"]["mean"] is not None]
                size = sum(t["size"] for t in finite)
                node["mean"] = sum(t["value"]["mean"] * t["size"] for t in finite) / size if size else None
                if node["mean"] is not None and node["kind"] != "root":
                    means.append(abs(node["mean"]))
    scale = GradScale(grad_norms)
    spread = float(np.percentile(means, 95)) if means else 1.0
    spread = spread if spread > 0 else 1.0
    for panel in panels:
        for t in panel["tensors"]:
            t["gradColor"] = None if t["grad"] is None else scale.color(t["grad"]["norm"])  # None: not finite
        for picture in panel["pictures"].values():
            for node in picture["nodes"].values():
                node["gradColor"] = None if node["gradNorm"] is None else scale.color(node["gradNorm"])
                node["valueColor"] = None if node["mean"] is None else _value_color(node["mean"] / spread)
    bars = [b["norm"] for p in panels if p["chart"] for b in p["chart"]["bars"] if b["norm"] > 0]
    low, high = _decades(bars) if bars else (0, 1)
    for panel in panels:
        if panel["chart"]:
            panel["chart"].update(low=low, high=high)
    decades = list(range(scale.low, scale.high + 1))
    every = math.ceil(len(decades) / LEGEND_LABELS)
    return {"grad": [{"label": f"1e{d}" if k % every == 0 else "", "color": scale.color(10.0 ** d)}
                     for k, d in enumerate(decades)],
            "value": [{"label": f"{x * spread:+.2g}" if x else "0", "color": _value_color(x)}
                      for x in (-1, -0.5, 0, 0.5, 1)], "saturation": SATURATION}


def _value_color(x: float) -> str:
    """-1 blue, 0 near white, +1 red (clipped)."""
    x = min(max(x, -1.0), 1.0)
    low, mid, high = ([int(c[k : k + 2], 16) for k in (1, 3, 5)] for c in VALUE_PALETTE)
    end, w = (high, x) if x >= 0 else (low, -x)
    return "#" + "".join(f"{round(a + (b - a) * w):02x}" for a, b in zip(mid, end, strict=True))


def _asset(name: str) -> str:
    return (resources.files(__package__) / "assets" / name).read_text(encoding="utf-8")


def _page(panels: list[dict], legend: dict) -> str:
    """The HTML: pictures inline (the first of each panel visible, so without JavaScript it is a still
    picture), the data as JSON, the script and styles from viz/assets."""
    sections = []
    for n, panel in enumerate(panels):
        pictures = "".join(
            f'<div class="picture" data-variant="{name}"{"" if name == panel["shown"] else " hidden"}>'
            f'{picture.pop("svg")}</div>' for name, picture in panel["pictures"].items())
        heading = f"<h2>{html.escape(panel['title'])}</h2>" if panel["title"] else ""
        sections.append(f'<section class="panel" data-panel="{n}">{heading}{pictures}'
                        '<div class="chart js-only"></div></section>')
    data = json.dumps({"panels": panels, "legend": legend}, separators=(",", ":"), allow_nan=False)
    data = data.replace("</", "<\\/")
    title = " vs ".join(p["title"] for p in panels if p["title"]) or "computation graph"
    parts = {"title": html.escape(title), "style": _asset("explore.css"), "panels": "".join(sections),
             "data": data, "script": _asset("explore.js")}
    return PLACEHOLDER.sub(lambda match: parts[match.group(1)], _asset("explore.html"))
