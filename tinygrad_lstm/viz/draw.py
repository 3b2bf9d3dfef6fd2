"""`draw_graph`: a computation graph as a Graphviz picture a learner can read.

Ops and tensors become nodes, name scopes nested clusters (a time step, and the gates inside it), the
highway (the path of a state tagged "highway") one bold straight line in a lane of its own beside the
steps. An op and its anonymous outputs share a node: the op's label carries the output's shape, gradient
norm and values, and the edges leaving the op carry the tensor. Tensors with an identity (inputs,
parameters, named or tagged tensors, the roots) get nodes of their own. Parameters are leaves, so each
appears once however many steps use it. An op that records `details` (a fused layer: what it computed
inside, e.g. its steps and gates) is a box listing them.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ..tensor import GraphView, Tensor, walk_graph
from .folding import INDEXED_PART, RepeatedScope, find_repeated_scope, hidden_numbers
from .highway import highway_path
from .render import graphviz  # the package, imported when a graph is first drawn
from .style import (
    CLUSTER_FILLS,
    DETAILS_COLOR,
    EDGE_COLOR,
    FONT,
    GRAD_TEXT_COLOR,
    HIGHWAY_COLOR,
    KIND_STYLES,
    MAX_SHOWN_VALUES,
    PARAMETER_EDGE_COLOR,
    SHAPE_COLOR,
    STEP_BORDER,
    STEP_FILL,
    SYMBOLS,
    VALUES_COLOR,
    GradScale,
    format_shape,
    format_values,
    html_label,
    legend_label,
    op_kind,
)

RANKDIRS = ("LR", "TB", "RL", "BT")
#: fold="auto" folds a graph of more drawn nodes than this, which Graphviz's dot lays out in a few seconds
#: (measured with dot 2.43 on the 2-core development VM, shared, 2026-12-02, CPU time of `dot -Tsvg`, the
#: `graph` command's LSTM cell: 30 steps, 429 nodes, 1.3 s; 37 steps, 527 nodes, 2.8 s; 60 steps folded to
#: 18 + 18, 2.4 s; unfolded, 45 steps took 5-7 s and 60 steps 21 s. Layout time grows with the nodes and
#: edges, so the bound is in nodes, whatever the cell)
AUTO_FOLD_NODES = 540


@dataclass
class _Node:
    key: str
    kind: str
    title: str
    scope: tuple[str, ...]
    tooltip: str
    tensor: Tensor | None = None  # the tensor whose shape, gradient and values the label shows
    highway: bool = False
    outputs: list[Tensor] = field(default_factory=list)  # an op's outputs (anonymous ones travel on its edges)
    position: int | None = None  # for a folded node: the first repeat it stands in for
    details: dict = field(default_factory=dict)  # what a fused op computed inside (its steps, its gates...)


@dataclass
class _Edge:
    tail: str
    head: str
    tensor: Tensor  # the tensor the edge carries
    highway: bool = False


@dataclass
class _Picture:
    nodes: dict[str, _Node] = field(default_factory=dict)  # in topological order
    edges: list[_Edge] = field(default_factory=list)


def draw_graph(*roots: Tensor, params: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] | None = None,
               show_grad: bool = False, grad_range: tuple[float, float] | None = None, show_data: bool = False,
               rankdir: str = "LR", fold: int | str | None = "auto") -> graphviz.Digraph:
    """Draw the graph that leads to `roots` as a `graphviz.Digraph` (displays inline in Jupyter).

    params: names for the parameters, e.g. `dict(model.named_parameters())` (as torchviz's make_dot takes
    them): a parameter is labelled with its module path ("lstm.weight_hh_l0"), else with its `.name`.
    show_grad: each tensor's gradient norm in its label and edges coloured by it on a log scale (run
    `tl.retain_grads(root)` before `root.backward()` so intermediates keep `.grad`).
    grad_range: (smallest, largest) norm of the colour scale, fixed so that pictures compare by colour;
    by default the scale spans the norms of this graph.
    show_data: the values of small tensors in their labels.
    fold: "auto" keeps a big unroll readable (and quick to lay out) by folding it when it has more than
    AUTO_FOLD_NODES nodes; k keeps the first and last k repeated scopes ("step 1", "step 2", ...) and elides
    the rest; None draws everything. When folded, `graph.comment` says what was left out.
    """
    _check_arguments(roots, rankdir, fold, grad_range)
    view = walk_graph(*roots)
    picture = _build(view, {id(r) for r in roots}, _parameter_names(params))
    repeated = find_repeated_scope(n.scope for n in picture.nodes.values())
    note = ""
    keep = _fold_width(picture, repeated, fold)
    if keep is not None and repeated is not None and hidden_numbers(repeated, keep):
        note = (f"folded: the first and last {keep} of {len(repeated.numbers)} {repeated.word}s drawn, "
                f"{len(hidden_numbers(repeated, keep))} elided ({len(picture.nodes)} nodes unfolded)")
        picture = _fold(picture, repeated, keep)
    scale, norms = None, {}
    if show_grad:
        norms = _grad_norms(picture)
        if not norms:
            raise ValueError("show_grad=True but no tensor in the graph has a .grad: call "
                             "tl.retain_grads(root) and root.backward() before drawing")
        scale = GradScale(list(norms.values()), grad_range)
    return _emit(picture, repeated, rankdir, scale, norms, show_data, note)


def _parameter_names(params) -> dict[int, str]:
    """id(parameter) -> its name, from a mapping or (name, tensor) pairs such as `model.named_parameters()`."""
    if params is None:
        return {}
    pairs = params.items() if isinstance(params, Mapping) else params
    names = {}
    for name, tensor in pairs:
        if not isinstance(tensor, Tensor):
            raise TypeError(f"params must map names to Tensors; {name!r} is a {type(tensor).__name__}")
        names[id(tensor)] = str(name)
    return names


def _fold_width(picture: _Picture, repeated: RepeatedScope | None, fold) -> int | None:
    """How many repeats to keep at each end: fold=k, or for "auto" as many as fit in AUTO_FOLD_NODES."""
    if repeated is None or fold is None or fold is False:
        return None
    if fold != "auto" and fold is not True:
        return fold
    if len(picture.nodes) <= AUTO_FOLD_NODES:
        return None
    inside = sum(repeated.number_of(n.scope) is not None for n in picture.nodes.values())
    per_repeat = inside / len(repeated.numbers)
    return max(1, int((AUTO_FOLD_NODES - (len(picture.nodes) - inside)) / (2 * per_repeat)))


def _check_arguments(roots: tuple, rankdir: str, fold, grad_range) -> None:
    if not roots:
        raise ValueError("draw_graph needs at least one tensor to draw the graph of")
    for root in roots:
        if not isinstance(root, Tensor):
            raise TypeError(f"draw_graph takes Tensors, got {type(root).__name__}")
    if rankdir not in RANKDIRS:
        raise ValueError(f"rankdir must be one of {RANKDIRS}, got {rankdir!r}")
    if not (fold is None or isinstance(fold, bool) or fold == "auto" or (isinstance(fold, int) and fold >= 1)):
        raise ValueError(f"fold must be 'auto', None or a positive number of steps to keep at each end, got {fold!r}")
    if grad_range is not None:
        low, high = grad_range
        if not 0 < low < high:
            raise ValueError(f"grad_range must be (smallest, largest) with 0 < smallest < largest, got {grad_range}")


def _scope(path: str) -> tuple[str, ...]:
    """The scope path as parts; a part repeated directly inside itself is one box ("step 1/step 1/forget gate",
    when a loop opens the step scope that the cell it calls opens too, is "step 1/forget gate")."""
    parts: list[str] = []
    for part in path.split("/") if path else ():
        if not parts or parts[-1] != part:
            parts.append(part)
    return tuple(parts)


def _tensor_node(key: str, t: Tensor, is_root: bool, highway: bool, parameter_names: dict[int, str]) -> _Node:
    """Leaves stand outside the clusters (a parameter once for all steps), except for anonymous scalar
    constants (the 1 in 1 - z), which belong to the formula that made them."""
    scope = _scope(t.scope)
    if is_root:
        kind = "output"
    elif not t.is_leaf:
        kind = "tensor"
    elif t.requires_grad:
        kind, scope = "parameter", ()
    elif t.numel() == 1 and not t.name and not t.tags:
        value = t.item()
        return _Node(key, "constant", f"{value:g}" if isinstance(value, float) else str(value), scope,
                     f"constant in {t.scope or 'no scope'}", highway=highway)
    else:
        kind, scope = "input", ()
    title = parameter_names.get(id(t)) if kind == "parameter" else None
    title = title or t.name or ("" if kind == "tensor" else kind)
    tooltip = f"{t.name or kind} {format_shape(t.shape)}" + (f" in {t.scope}" if t.scope else "")
    return _Node(key, kind, title, scope, tooltip, tensor=t, highway=highway)


def _build(view: GraphView, root_ids: set[int], parameter_names: dict[int, str]) -> _Picture:
    """Nodes and edges from the graph: merge each op with its one anonymous output, mark the highway."""
    on_highway, highway_edges = highway_path(view)
    producer = {id(b): a for a, b in view.edges if not isinstance(a, Tensor)}
    op_keys = {id(op): f"op{i}" for i, op in enumerate(view.ops)}
    picture, key_of = _Picture(), {}
    for i, t in enumerate(view.tensors):
        op = producer.get(id(t))
        if op is not None and op_keys[id(op)] not in picture.nodes:
            symbol = SYMBOLS.get(op.op)
            details = dict(getattr(op, "details", None) or {})
            picture.nodes[op_keys[id(op)]] = _Node(
                op_keys[id(op)], "details" if details else op_kind(op.op), f"{op.op} {symbol}" if symbol else op.op,
                _scope(op.scope), f"{op.op} in {op.scope or 'no scope'}", highway=id(op) in on_highway,
                details=details)
        if op is not None:
            picture.nodes[op_keys[id(op)]].outputs.append(t)
        if t.is_leaf or id(t) in root_ids or t.name or t.tags:
            key_of[id(t)] = f"t{i}"
            picture.nodes[f"t{i}"] = _tensor_node(f"t{i}", t, id(t) in root_ids, id(t) in on_highway, parameter_names)
        else:
            key_of[id(t)] = op_keys[id(op)]
    for op in view.ops:  # an op with one anonymous output shows that tensor's gradient and values
        node = picture.nodes[op_keys[id(op)]]
        if len(node.outputs) == 1 and key_of[id(node.outputs[0])] == node.key:
            node.tensor = node.outputs[0]
    unnamed_inputs = [n for n in picture.nodes.values()
                      if n.kind == "input" and n.tensor is not None and not n.tensor.name]
    if len(unnamed_inputs) > 1:  # told apart by position, in the order the graph uses them
        for k, node in enumerate(unnamed_inputs, 1):
            node.title = f"input {k}"
    for a, b in view.edges:
        if isinstance(a, Tensor):
            picture.edges.append(_Edge(key_of[id(a)], op_keys[id(b)], a, (id(a), id(b)) in highway_edges))
        elif key_of[id(b)] != op_keys[id(a)]:
            picture.edges.append(_Edge(op_keys[id(a)], key_of[id(b)], b, (id(a), id(b)) in highway_edges))
    return picture


def _fold(picture: _Picture, repeated: RepeatedScope, keep: int) -> _Picture:
    """Replace the middle repeats by one elided node per enclosing scope, keeping the edges across."""
    hidden = hidden_numbers(repeated, keep)
    if not hidden:
        return picture
    group = {key: n.scope[: repeated.depth] if n.kind != "output" and repeated.number_of(n.scope) in hidden else None
             for key, n in picture.nodes.items()}
    heads: defaultdict[str, list[str]] = defaultdict(list)
    for e in picture.edges:
        heads[e.tail].append(e.head)
    for key in reversed(picture.nodes):  # users first: absorb nodes that only feed elided steps (their inputs)
        node = picture.nodes[key]
        if (group[key] is None and node.kind != "output" and len(node.scope) <= repeated.depth and heads[key]
                and all(group[h] is not None for h in heads[key])):
            group[key] = group[heads[key][0]]
    folded = _Picture()
    elided_key: dict[tuple[str, ...], str] = {}  # the scope a folded node stands for -> its key
    numbers: defaultdict[tuple[str, ...], set[int | None]] = defaultdict(set)
    for key, node in picture.nodes.items():
        prefix = group[key]
        if prefix is None:
            folded.nodes[key] = node
            continue
        if prefix not in elided_key:
            elided_key[prefix] = f"elided{len(elided_key)}"
            folded.nodes[elided_key[prefix]] = _Node(elided_key[prefix], "elided", "", prefix, "folded steps",
                                                     position=min(hidden))
        numbers[prefix].add(repeated.number_of(node.scope))
        folded.nodes[elided_key[prefix]].highway |= node.highway
    for prefix, key in elided_key.items():
        folded.nodes[key].title = repeated.label(len(numbers[prefix] - {None}))
    merged: dict[tuple[str, str], _Edge] = {}
    for e in picture.edges:
        tail_group, head_group = group[e.tail], group[e.head]
        tail = e.tail if tail_group is None else elided_key[tail_group]
        head = e.head if head_group is None else elided_key[head_group]
        if tail == head:
            continue
        if tail == e.tail and head == e.head:
            folded.edges.append(e)
        elif (tail, head) in merged:
            merged[(tail, head)].highway |= e.highway
        else:
            merged[(tail, head)] = _Edge(tail, head, e.tensor, e.highway)
            folded.edges.append(merged[(tail, head)])
    return folded


def _step_order(picture: _Picture, repeated: RepeatedScope | None) -> list[tuple[str, str]]:
    """Invisible edges from the ends of each repeat to the starts of the next, so steps line up in order.

    A step's weight views (split, transpose) do not depend on the step before; without these edges dot
    ranks them early and stacks the steps on top of each other instead of side by side. The highway is
    left out: it runs in its own lane, and the steps should all hang on the same side of it.
    """
    if repeated is None:
        return []
    units = defaultdict(list)
    for key, node in picture.nodes.items():
        number = node.position if node.kind == "elided" else repeated.number_of(node.scope)
        if number is not None and (node.kind == "elided" or not node.highway):
            units[(node.scope[: repeated.depth], number)].append(key)
    unit_of = {key: unit for unit, keys in units.items() for key in keys}
    fed_inside, feeds_inside = set(), set()
    for e in picture.edges:
        if e.tail in unit_of and unit_of.get(e.head) == unit_of[e.tail]:
            feeds_inside.add(e.tail)
            fed_inside.add(e.head)
    ordered = sorted(units)
    edges: list[tuple[str, str]] = []
    for before, after in zip(ordered, ordered[1:], strict=False):
        if before[0] == after[0]:
            ends = [key for key in units[before] if key not in feeds_inside]
            starts = [key for key in units[after] if key not in fed_inside]
            edges.extend((a, b) for a in ends for b in starts)
    return edges


def _grad_norms(picture: _Picture) -> dict[int, float]:
    """id(tensor) -> the norm of its gradient, for every drawn tensor that has one."""
    tensors = [n.tensor for n in picture.nodes.values() if n.tensor is not None] + [e.tensor for e in picture.edges]
    norms = {}
    for t in tensors:
        if t.grad is not None and id(t) not in norms:
            norms[id(t)] = float(np.linalg.norm(t.grad.numpy().astype(np.float64).ravel()))
    return norms


def _label(node: _Node, norms: dict[int, float], show_grad: bool, show_data: bool) -> str:
    """Title, shape, and on request the gradient norm and the values of the tensor the node shows."""
    t = node.tensor
    lines = [(textwrap.fill(f"{key}: {_detail(value)}", 44), DETAILS_COLOR) for key, value in node.details.items()]
    if t is not None:
        lines.append((format_shape(t.shape), SHAPE_COLOR))
        if show_grad:
            norm = norms.get(id(t))
            lines.append(("no grad" if norm is None else f"grad {norm:.2e}", GRAD_TEXT_COLOR))
        if show_data and t.numel() <= MAX_SHOWN_VALUES:
            lines.append((format_values(t.detach().numpy()), VALUES_COLOR))
    elif node.outputs:  # an op whose outputs have nodes of their own, or a split into pieces
        shapes = [format_shape(piece.shape) for piece in node.outputs]
        summary = f"{len(shapes)} × {shapes[0]}" if len(shapes) > 1 and len(set(shapes)) == 1 else ", ".join(shapes)
        lines.append((summary, SHAPE_COLOR))
    if not node.title and lines:  # an anonymous tensor: its shape is its title
        return html_label(lines[0][0], lines[1:], bold=False)
    return html_label(node.title, lines, bold=node.kind != "constant")


def _detail(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def _flow_order(picture: _Picture) -> dict[str, int]:
    """Each node's longest distance (in edges) to the outputs: the larger, the earlier its result is made.

    Sibling clusters are emitted in this order (ties: in order of appearance), the same in every step: an
    LSTM step's gates that feed the cell state (forget, input, candidate) come before the cell state, and
    the cell state before the output gate that reads it, as the article has them. `_scope_order` makes
    the picture keep that order.
    """
    heads = defaultdict(list)
    for e in picture.edges:
        heads[e.tail].append(e.head)
    distance: dict[str, int] = {}
    for key in reversed(picture.nodes):  # users before their inputs: nodes are in topological order
        distance[key] = max((distance.get(h, 0) + 1 for h in heads[key]), default=0)
    return distance


def _scope_order(picture: _Picture, repeated: RepeatedScope | None,
                 children: Mapping[tuple[str, ...], list[tuple[str, ...]]]) -> list[tuple[str, str]]:
    """Invisible edges that lay named sibling scopes out along the flow in the order they are emitted: each
    starts at least one rank after the one before (the gates of every step left to right in the article's
    order, as its figure draws them).

    Clusters that share ranks are stacked across the flow in an order that dot's crossing heuristics pick
    anew in every step, whatever the emitted order or any edge between the clusters' nodes says; ranks it
    keeps. A pair whose later scope feeds the earlier one is left to the data flow (an edge would close
    a cycle).
    """
    inside: defaultdict[tuple[str, ...], list[str]] = defaultdict(list)  # a cluster -> its nodes, nested too
    for key, node in picture.nodes.items():
        scope = _placement(node, repeated)
        for depth in range(1, len(scope) + 1):
            inside[scope[:depth]].append(key)
    tails, heads = defaultdict(set), defaultdict(list)
    for e in picture.edges:
        tails[e.head].add(e.tail)
        heads[e.tail].append(e.head)

    def sources(path: tuple[str, ...]) -> list[str]:  # the nodes a cluster starts with: its leftmost rank
        members = set(inside[path])
        return [key for key in inside[path] if not tails[key] & members]

    def reaches(starts: list[str], targets: set[str]) -> bool:
        seen, todo = set(starts), list(starts)
        while todo:
            key = todo.pop()
            if key in targets:
                return True
            fresh = [h for h in heads[key] if h not in seen]
            seen.update(fresh)
            todo.extend(fresh)
        return False

    edges: list[tuple[str, str]] = []
    for kids in children.values():
        named = [kid for kid in kids if INDEXED_PART.match(kid[-1]) is None]
        for before, after in zip(named, named[1:], strict=False):
            firsts, nexts = sources(before), sources(after)
            if not reaches(nexts, set(firsts)):
                edges.extend((a, b) for a in firsts for b in nexts)
    return edges


def _highway_groups(picture: _Picture) -> dict[str, str]:
    """Each connected stretch of highway gets its own Graphviz `group`, so dot lays it out straight."""
    parent = {key: key for key, n in picture.nodes.items() if n.highway}

    def find(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for e in picture.edges:
        if e.highway and e.tail in parent and e.head in parent:
            parent[find(e.tail)] = find(e.head)
    roots: dict[str, str] = {}
    return {key: roots.setdefault(find(key), f"highway{len(roots)}") for key in parent}


def _placement(node: _Node, repeated: RepeatedScope | None) -> tuple[str, ...]:
    """The cluster a node is drawn in: its scope, except that the highway runs in one lane beside the steps.

    Graphviz routes an edge around, never through, a cluster it does not belong to, so a highway whose
    nodes sat inside the step boxes would bend at every step; lifted out, it is one straight line.
    """
    if node.highway and repeated is not None and repeated.number_of(node.scope) is not None:
        return node.scope[: repeated.depth]
    return node.scope


def _emit(picture: _Picture, repeated: RepeatedScope | None, rankdir: str, scale: GradScale | None,
          norms: dict[int, float], show_data: bool, note: str) -> graphviz.Digraph:
    graph = graphviz.Digraph(
        "computation_graph",
        comment=note or None,
        # concentrate bundles the edges a parameter sends to every step into one trunk: without it, dot lays
        # those long edges out one by one, ten times slower on a big graph. mclimit: crossing minimisation
        # cut short; 0.1 let a few sizes of unroll take 5x longer, 1 is slower still
        graph_attr={"rankdir": rankdir, "fontname": FONT, "newrank": "true", "concentrate": "true",
                    "mclimit": "0.3", "nodesep": "0.2", "ranksep": "0.25"},
        node_attr={"fontname": FONT, "fontsize": "10", "height": "0.3", "margin": "0.06,0.03"},
        edge_attr={"color": EDGE_COLOR, "arrowsize": "0.6"},
    )
    groups = _highway_groups(picture)
    members: defaultdict[tuple[str, ...], list[_Node]] = defaultdict(list)
    children: defaultdict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
    for node in picture.nodes.values():
        scope = _placement(node, repeated)
        members[scope].append(node)
        for depth in range(1, len(scope) + 1):
            if scope[:depth] not in children[scope[: depth - 1]]:
                children[scope[: depth - 1]].append(scope[:depth])
    distance = _flow_order(picture)
    reach: dict[tuple[str, ...], int] = {}  # a cluster -> the smallest `distance` of its nodes
    for node in picture.nodes.values():  # a cluster's result is ready when its last node's is
        scope = _placement(node, repeated)
        for depth in range(1, len(scope) + 1):
            reach[scope[:depth]] = min(reach.get(scope[:depth], distance[node.key]), distance[node.key])
    for kids in children.values():
        kids.sort(key=lambda child: -reach[child])  # stable: ties stay in order of appearance
    fills: dict[str, str] = {}  # one colour per scope name, so "forget gate" looks the same in every step

    def add_nodes(container: graphviz.Digraph, path: tuple[str, ...]) -> None:
        for node in members[path]:
            attrs = dict(KIND_STYLES[node.kind], tooltip=graphviz.escape(node.tooltip))
            if node.kind == "pointwise" and (scale is not None or show_data):
                attrs["shape"] = "ellipse"  # a circle around three lines of text grows too big
            if node.highway:
                attrs.update({"class": "highway", "color": HIGHWAY_COLOR, "penwidth": "3",
                              "group": groups[node.key], "fontcolor": HIGHWAY_COLOR})
            container.node(node.key, _label(node, norms, scale is not None, show_data), **attrs)
        for child in children[path]:
            name = child[-1]
            indexed = INDEXED_PART.match(name) is not None
            fill = STEP_FILL if indexed else fills.setdefault(name, CLUSTER_FILLS[len(fills) % len(CLUSTER_FILLS)])
            with container.subgraph(name="cluster_" + "/".join(child)) as sub:
                sub.attr(label=graphviz.escape(name), style="rounded,filled", fillcolor=fill,
                         color=STEP_BORDER if indexed else fill, fontsize="12" if indexed else "10",
                         fontname=FONT, labeljust="l", margin="6")
                add_nodes(sub, child)

    add_nodes(graph, ())
    kinds = [k for k in KIND_STYLES if any(n.kind == k for n in picture.nodes.values())]
    graph.node("legend", legend_label(kinds, bool(groups), scale), shape="plaintext", fontsize="9")
    for e in picture.edges:
        graph.edge(e.tail, e.head, **_edge_attributes(e, picture, scale, norms))
    # the ports keep concentrate from merging an invisible ordering edge into a drawn edge of the same node
    # (which would then be drawn only up to where they part)
    for tail, head in _step_order(picture, repeated) + _scope_order(picture, repeated, children):
        graph.edge(tail, head, style="invis", weight="0", tailport="e", headport="w")
    return graph



def _edge_attributes(e: _Edge, picture: _Picture, scale: GradScale | None, norms: dict[int, float]) -> dict:
    attrs: dict[str, str] = {}
    if picture.nodes[e.tail].kind == "parameter":
        # a parameter feeds every step: its edges stay faint (its gradient is in its label) and leave the
        # ranks to the steps, so the parameters gather at one side instead of pulling the steps apart
        attrs.update(constraint="false", weight="0", color=PARAMETER_EDGE_COLOR, penwidth="0.7")
    elif scale is not None:
        norm = norms.get(id(e.tensor))
        attrs.update(color=scale.color(norm), penwidth=f"{scale.penwidth(norm):.2f}",
                     tooltip="no grad" if norm is None else f"grad {norm:.2e}")
    if e.highway:
        attrs.update({"class": "highway", "weight": "100", "penwidth": "3.5"})
        attrs.setdefault("color", HIGHWAY_COLOR)
    elif any(picture.nodes[k].kind == "elided" and picture.nodes[k].highway for k in (e.tail, e.head)):
        attrs["weight"] = "0"  # a folded stretch of highway stays in the highway's lane
    return attrs
