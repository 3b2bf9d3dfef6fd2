"""The graph renderer: clusters per step and gate, the highway as one connected bold chain, parameters once,
gradient norms, folding, and rendering with and without Graphviz's `dot` program.

Tests read the DOT source (`graph.source`), so they check what the picture is made of, not pixels.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict, deque
from dataclasses import dataclass, field

import graphviz
import numpy as np
import pytest

import tinygrad_lstm as tl
from tinygrad_lstm import nn, viz
from tinygrad_lstm.experiments import unrolled_cell  # the `graph` command's unroll: the README's pictures
from tinygrad_lstm.nn.rnn import lstm_step  # the cells' own step: the drawn graph is the real one
from tinygrad_lstm.tensor import apply
from tinygrad_lstm.viz.folding import find_repeated_scope, hidden_numbers
from tinygrad_lstm.viz.highway import highway_path

GATES = ("forget gate", "input gate", "candidate", "output gate")
HAS_DOT = shutil.which("dot") is not None


# ---------------------------------------------------------------- the library's LSTM step, unrolled by hand


def make_lstm_parameters(input_size: int, hidden_size: int, device: str = "cpu") -> list[tl.Tensor]:
    tl.manual_seed(0)
    shapes = {"weight_ih": (4 * hidden_size, input_size), "weight_hh": (4 * hidden_size, hidden_size),
              "bias_ih": (4 * hidden_size,), "bias_hh": (4 * hidden_size,)}
    params = []
    for name, shape in shapes.items():
        p = (tl.randn(*shape, device=device) * 0.5).detach().requires_grad_()
        p.name = name
        params.append(p)
    return params


def unroll(steps: int, input_size: int = 3, hidden_size: int = 4, device: str = "cpu"):
    params = make_lstm_parameters(input_size, hidden_size, device)
    h, c = tl.zeros(1, hidden_size, device=device), tl.zeros(1, hidden_size, device=device)
    h.name, c.name = "h0", "c0"
    for t in range(1, steps + 1):
        x = tl.randn(1, input_size, device=device)
        x.name = f"x_{t}"
        with tl.name_scope(f"step {t}"):
            h, c = lstm_step(x, h, c, *params)
    return h, c, params


def unroll_cell(cell: nn.Module, steps: int, input_size: int = 3):
    """Run an nn cell over `steps` random inputs (the cell opens a "step t" scope per call); returns the last state."""
    state = None
    for t in range(1, steps + 1):
        x = tl.randn(1, input_size)
        x.name = f"x_{t}"
        state = cell(x, state)
    return state


# ---------------------------------------------------------------- reading the DOT source

NODE = re.compile(r"^\s*(\w+) \[(.*)\]$")
EDGE = re.compile(r"^\s*(\w+) -> (\w+)(?: \[(.*)\])?$")
SUBGRAPH = re.compile(r'^\s*subgraph "?(cluster_[^"]*)"? \{$')


@dataclass
class Dot:
    nodes: dict[str, str] = field(default_factory=dict)  # id -> attribute text
    clusters_of: dict[str, tuple[str, ...]] = field(default_factory=dict)  # id -> enclosing clusters, outer first
    clusters: dict[str, str] = field(default_factory=dict)  # cluster name -> its attribute line
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # (tail, head, attribute text)

    def find(self, pattern: str) -> list[str]:
        """Ids of the nodes whose attributes match `pattern`."""
        return [key for key, attrs in self.nodes.items() if re.search(pattern, attrs)]

    def highway_edges(self) -> list[tuple[str, str]]:
        return [(a, b) for a, b, attrs in self.edges if "class=highway" in attrs]


def parse(source: str) -> Dot:
    dot, stack = Dot(), []
    for line in source.splitlines():
        if m := SUBGRAPH.match(line):
            stack.append(m.group(1))
            dot.clusters[m.group(1)] = ""
        elif line.strip() == "}":
            if stack:
                stack.pop()
        elif m := EDGE.match(line):
            dot.edges.append((m.group(1), m.group(2), m.group(3) or ""))
        elif m := NODE.match(line):
            if m.group(1) not in ("graph", "node", "edge"):
                dot.nodes[m.group(1)] = m.group(2)
                dot.clusters_of[m.group(1)] = tuple(stack)
        elif stack and line.strip().startswith(("color=", "label=", "fillcolor=")):
            dot.clusters[stack[-1]] = line.strip()
    return dot


def reachable(edges: list[tuple[str, str]], start: str) -> set[str]:
    nxt = defaultdict(list)
    for a, b in edges:
        nxt[a].append(b)
    seen, queue = {start}, deque([start])
    while queue:
        for b in nxt[queue.popleft()]:
            if b not in seen:
                seen.add(b)
                queue.append(b)
    return seen


def named(dot: Dot, name: str, where: str = "") -> str:
    """The one node titled `name` (bold) whose tooltip mentions `where`."""
    keys = [k for k in dot.find(rf"<B>{re.escape(name)}</B>") if where in dot.nodes[k]]
    assert len(keys) == 1, f"expected one node {name!r} {where!r}, found {keys}"
    return keys[0]


# ---------------------------------------------------------------- structure


def test_draw_graph_returns_a_digraph_that_displays_in_jupyter():
    h, c, _ = unroll(1)
    graph = viz.draw_graph(h, c)
    assert isinstance(graph, graphviz.Digraph)
    assert hasattr(graph, "_repr_mimebundle_")


def test_every_step_is_a_cluster_with_one_cluster_per_gate_inside():
    steps = 3
    h, c, _ = unroll(steps)
    dot = parse(viz.draw_graph(h, c).source)
    for t in range(1, steps + 1):
        step = f"cluster_step {t}"
        assert f'label="step {t}"' in dot.clusters[step]
        for gate in GATES:
            cluster = f"{step}/{gate}"
            assert re.search(f'label="?{gate}"? ', dot.clusters[cluster])
            members = [k for k, where in dot.clusters_of.items() if where == (step, cluster)]
            assert members, f"no node inside {cluster}"
    # each gate's nonlinearity sits in its own gate's cluster
    forget = [k for k in dot.find(r"<B>Sigmoid") if dot.clusters_of[k][-1:] == ("cluster_step 2/forget gate",)]
    assert len(forget) == 1
    candidate = [k for k in dot.find(r"<B>Tanh") if dot.clusters_of[k][-1:] == ("cluster_step 2/candidate",)]
    assert len(candidate) == 1


def test_steps_are_chained_left_to_right_by_invisible_edges():
    h, c, _ = unroll(3)
    dot = parse(viz.draw_graph(h, c).source)
    invisible = [(a, b) for a, b, attrs in dot.edges if "style=invis" in attrs]
    for t in (1, 2):
        assert any(dot.clusters_of[a][:1] == (f"cluster_step {t}",)
                   and dot.clusters_of[b][:1] == (f"cluster_step {t + 1}",) for a, b in invisible)


def test_ops_show_their_name_and_output_shape():
    h, c, _ = unroll(1, input_size=3, hidden_size=5)
    dot = parse(viz.draw_graph(h, c).source)
    gate_inputs = dot.find(r"<B>GateInputs</B>")  # x W_ih^T + h W_hh^T + b for all four gates, one node ...
    assert len(gate_inputs) == 1 and "4 × 1×5" in dot.nodes[gate_inputs[0]]  # ... with one output per gate
    assert dot.find(r"<B>Split</B>") == []
    assert len(dot.find(r"<B>Sigmoid σ</B>")) == 3 and len(dot.find(r"<B>Tanh</B>")) == 2


def test_parameters_and_inputs_appear_once_outside_the_step_clusters():
    steps = 4
    h, c, params = unroll(steps)
    dot = parse(viz.draw_graph(h, c).source)
    for p in params:
        key = named(dot, p.name)
        assert dot.clusters_of[key] == ()
        assert "rounded,filled" in dot.nodes[key]  # the parameter style
        users = {b for a, b, _ in dot.edges if a == key}
        steps_used = {dot.clusters_of[u][0] for u in users}
        assert steps_used == {f"cluster_step {t}" for t in range(1, steps + 1)}
    for t in range(1, steps + 1):
        assert dot.clusters_of[named(dot, f"x_{t}")] == ()


def test_inputs_parameters_intermediates_and_outputs_are_styled_apart():
    h, c, _ = unroll(1)
    dot = parse(viz.draw_graph(h, c).source)
    fill = {key: re.search(r'fillcolor="([^"]+)"', attrs).group(1) for key, attrs in dot.nodes.items()
            if "fillcolor" in attrs}
    kinds = {fill[named(dot, "x_1")], fill[named(dot, "weight_ih")], fill[dot.find(r"<B>Sigmoid")[0]],
             fill[named(dot, "h")]}
    assert len(kinds) == 4
    assert "peripheries=2" in dot.nodes[named(dot, "h")]  # the roots
    legend = dot.nodes["legend"]
    for entry in ("input", "parameter", "output", "highway"):
        assert entry in legend


# ---------------------------------------------------------------- the highway


def assert_highway_chain(dot: Dot, start: str, end: str, steps: int) -> None:
    edges = dot.highway_edges()
    assert len(edges) >= 2 * steps
    assert end in reachable(edges, start)
    for a, b in edges:  # the edges join highway nodes
        assert "class=highway" in dot.nodes[a] and "class=highway" in dot.nodes[b]
        assert "weight=" in next(attrs for x, y, attrs in dot.edges if (x, y) == (a, b))


@pytest.mark.parametrize("steps", [1, 3, 6])
def test_the_cell_state_highway_is_one_connected_chain_from_c0_to_the_last_c(steps):
    h, c, _ = unroll(steps)
    dot = parse(viz.draw_graph(h, c).source)
    assert_highway_chain(dot, named(dot, "c0"), named(dot, "c", f"step {steps}/"), steps)
    highway = dot.find("class=highway")
    assert all("group=highway0" in dot.nodes[k] for k in highway)  # one straight line...
    assert all(dot.clusters_of[k] == () for k in highway)  # ...in its own lane beside the step boxes
    # the direct route only: c_prev -> f * c_prev -> + -> c, never the detour through h and the gates
    assert len(highway) == 1 + 3 * steps
    for k in highway:
        assert re.search(r"<B>(c0|c|Mul ×|Add \+)</B>", dot.nodes[k]), dot.nodes[k]
    assert not any("class=highway" in dot.nodes[k] for k in dot.find(r"<B>(Sigmoid|Tanh|MatMul|h)\b"))


def test_highway_path_keeps_only_the_shortest_routes_between_tagged_tensors():
    a = tl.randn(3, requires_grad=True).tag("highway")
    direct = a * 0.5
    squashed = a.tanh()
    detour = (squashed * 2).sigmoid()
    b = (direct + detour).tag("highway")
    nodes, edges = highway_path(tl.walk_graph(b))
    assert {id(a), id(direct.grad_fn), id(direct), id(b.grad_fn), id(b)} <= nodes
    assert not {id(squashed), id(squashed.grad_fn), id(detour), id(detour.grad_fn)} & nodes
    assert (id(a), id(direct.grad_fn)) in edges and (id(b.grad_fn), id(b)) in edges
    assert len(nodes) == 5 and len(edges) == 4  # a, Mul, direct, Add, b


def test_highway_path_is_empty_without_tags():
    x = tl.randn(3, requires_grad=True)
    assert highway_path(tl.walk_graph((x * 2).sum())) == (set(), set())


# ---------------------------------------------------------------- gradients and values


def test_show_grad_puts_gradient_norms_in_labels_and_colours_edges_by_them(device):
    h, c, params = unroll(3, device=device)
    loss = (h * h).sum() + c.sum()
    loss.name = "loss"
    tl.retain_grads(loss)
    loss.backward()
    dot = parse(viz.draw_graph(loss, show_grad=True).source)
    for p in params:
        norm = float(np.linalg.norm(p.grad.numpy().astype(np.float64)))
        assert f"grad {norm:.2e}" in dot.nodes[named(dot, p.name)]
    c_norm = float(np.linalg.norm(c.grad.numpy().astype(np.float64)))
    assert f"grad {c_norm:.2e}" in dot.nodes[named(dot, "c", "step 3/")]
    colours = {re.search(r'color="([^"]+)"', attrs).group(1) for _, _, attrs in dot.edges
               if "style=invis" not in attrs and "color=" in attrs}
    assert len(colours) >= 4  # a scale, not one colour
    assert "gradient norm" in dot.nodes["legend"]
    assert len(dot.highway_edges()) >= 6  # the highway keeps its class when coloured by gradient


def test_show_grad_without_any_gradient_says_to_run_backward():
    h, c, _ = unroll(1)
    with pytest.raises(ValueError, match="backward"):
        viz.draw_graph(h, show_grad=True)


def test_show_data_prints_small_tensors_values():
    h, c, _ = unroll(1, input_size=3, hidden_size=5)
    dot = parse(viz.draw_graph(h, c, show_data=True).source)
    assert "[[0. 0. 0. 0. 0.]]" in dot.nodes[named(dot, "c0")]
    values = np.array2string(c.detach().numpy(), precision=3, threshold=6, edgeitems=2, suppress_small=True)
    assert values in dot.nodes[named(dot, "c")]
    assert "..." in dot.nodes[named(dot, "weight_ih")]  # 20 x 3 values: abbreviated
    assert "[[" not in dot.nodes[named(dot, "weight_hh")]  # 20 x 5 values: too many to show
    plain = parse(viz.draw_graph(h, c).source)
    assert "[[" not in plain.nodes[named(plain, "c0")]


# ---------------------------------------------------------------- folding long unrolls


def test_fold_keeps_the_first_and_last_steps_and_elides_the_middle():
    steps, keep = 12, 2
    h, c, _ = unroll(steps)
    dot = parse(viz.draw_graph(h, c, fold=keep).source)
    shown = {name for name in dot.clusters if name.count("/") == 0}
    assert shown == {f"cluster_step {t}" for t in (1, 2, 11, 12)}
    elided = dot.find(r"\.\.\. 8 steps \.\.\.")
    assert len(elided) == 1
    assert any(b == elided[0] for _, b, _ in dot.edges) and any(a == elided[0] for a, _, _ in dot.edges)
    assert not dot.find(r"<B>x_5</B>")  # inputs of elided steps go with them
    assert_highway_chain(dot, named(dot, "c0"), named(dot, "c", f"step {steps}/"), 2 * keep)
    assert elided[0] in reachable(dot.highway_edges(), named(dot, "c0"))
    assert len(dot.find(r"<B>weight_hh</B>")) == 1


def test_fold_leaves_short_unrolls_alone():
    h, c, _ = unroll(4)
    assert viz.draw_graph(h, c, fold=2).source == viz.draw_graph(h, c).source


def test_repeated_scopes_are_found_generically():
    scopes = [("t 1", "gate"), ("t 2", "gate"), ("t 3",), ()]
    found = find_repeated_scope(scopes)
    assert (found.depth, found.word, found.numbers) == (0, "t", (1, 2, 3))
    assert found.label(5) == "... 5 ts ..."
    stacked = [(f"layer {k}", f"step {t}") for k in range(2) for t in range(2)]
    assert find_repeated_scope(stacked).word == "step"
    assert find_repeated_scope([("forget gate",), ()]) is None
    assert hidden_numbers(find_repeated_scope([(f"step {t}",) for t in range(10)]), 3) == {3, 4, 5, 6}


# ---------------------------------------------------------------- the real nn cells


def test_nn_lstm_cell_unrolled_draws_gates_per_step_and_the_highway():
    tl.manual_seed(0)
    h, c = unroll_cell(nn.LSTMCell(3, 4), 3)
    dot = parse(viz.draw_graph(h, c).source)
    for t in (1, 2, 3):
        for gate in GATES:
            assert f"cluster_step {t}/{gate}" in dot.clusters
    assert_highway_chain(dot, named(dot, "c0"), named(dot, "c", "step 3/"), 3)
    for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        assert len(dot.find(rf"<B>{p}</B>")) == 1


def test_nn_gru_cell_carries_its_hidden_state_on_the_highway():
    tl.manual_seed(0)
    h = unroll_cell(nn.GRUCell(3, 4), 3)
    dot = parse(viz.draw_graph(h).source)
    assert {"cluster_step 3/reset gate", "cluster_step 3/update gate"} <= set(dot.clusters)
    assert_highway_chain(dot, named(dot, "h0"), named(dot, "h", "step 3/"), 3)


def test_nn_rnn_cell_has_no_highway():
    tl.manual_seed(0)
    h = unroll_cell(nn.RNNCell(3, 4), 3)
    source = viz.draw_graph(h).source
    assert "class=highway" not in source
    assert "highway" not in parse(source).nodes["legend"]
    assert 'subgraph "cluster_step 3' in source


def test_stacked_lstm_layers_get_one_highway_each():
    tl.manual_seed(0)
    model = nn.LSTM(2, 3, num_layers=2, fused=False)
    x = tl.randn(3, 1, 2)
    _, (h_n, c_n) = model(x)
    dot = parse(viz.draw_graph(h_n, c_n).source)
    assert "cluster_layer 1/step 2/forget gate" in dot.clusters
    groups = {re.search(r"group=(\w+)", dot.nodes[k]).group(1) for k in dot.find("class=highway")}
    assert len(groups) == 2


# ---------------------------------------------------------------- arguments


def test_bad_arguments_are_named():
    h, c, _ = unroll(1)
    with pytest.raises(ValueError, match="at least one"):
        viz.draw_graph()
    with pytest.raises(TypeError, match="Tensors"):
        viz.draw_graph(h.detach().numpy())
    with pytest.raises(ValueError, match="rankdir"):
        viz.draw_graph(h, rankdir="sideways")
    with pytest.raises(ValueError, match="fold"):
        viz.draw_graph(h, fold=0)
    with pytest.raises(ValueError, match="format"):
        viz.render(viz.draw_graph(h), "/tmp/x", format="jpeg")
    with pytest.raises(TypeError, match="Digraph"):
        viz.render("digraph {}", "/tmp/x")
    with pytest.raises(ValueError, match="ends in .svg but format is 'png'"):
        viz.render(viz.draw_graph(h), "/tmp/x.svg", format="png")


# ---------------------------------------------------------------- rendering


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot program is not installed")
def test_render_svg_keeps_the_highway_class_and_png_is_an_image(tmp_path):
    h, c, _ = unroll(2)
    graph = viz.draw_graph(h, c)
    svg = viz.render(graph, tmp_path / "lstm.svg")
    assert svg == str(tmp_path / "lstm.svg")
    text = open(svg, encoding="utf-8").read()
    assert text.count('class="node highway"') == 1 + 3 * 2
    assert text.count('class="edge highway"') == 3 * 2
    png = viz.render(graph, tmp_path / "lstm", format="png")
    assert png.endswith("lstm.png")
    with open(png, "rb") as file:
        assert file.read(8) == b"\x89PNG\r\n\x1a\n"


def test_render_dot_writes_the_source(tmp_path):
    h, c, _ = unroll(1)
    graph = viz.draw_graph(h, c)
    path = viz.render(graph, tmp_path / "sub" / "lstm.dot", format="dot")
    assert open(path, encoding="utf-8").read() == graph.source


def test_render_without_graphviz_writes_the_dot_source_and_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: None)
    h, c, _ = unroll(1)
    graph = viz.draw_graph(h, c)
    with pytest.raises(viz.GraphvizNotInstalledError) as info:
        viz.render(graph, tmp_path / "lstm.svg")
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    for hint in ("apt-get install graphviz", "brew install graphviz", "conda install -c conda-forge graphviz"):
        assert hint in message
    assert str(tmp_path / "lstm.dot") in message
    assert (tmp_path / "lstm.dot").read_text(encoding="utf-8") == graph.source
    assert not (tmp_path / "lstm.svg").exists()


def test_render_turns_graphviz_executable_not_found_into_the_same_error(tmp_path, monkeypatch):
    def missing(*args, **kwargs):
        raise graphviz.ExecutableNotFound(["dot"])

    monkeypatch.setattr(shutil, "which", lambda name, *args, **kwargs: "/usr/bin/dot")
    monkeypatch.setattr(graphviz.Digraph, "pipe", missing)
    h, _, _ = unroll(1)
    with pytest.raises(viz.GraphvizNotInstalledError, match="apt-get install graphviz"):
        viz.render(viz.draw_graph(h), tmp_path / "lstm.png", format="png")
    assert (tmp_path / "lstm.dot").exists()


# ---------------------------------------------------------------- any model, readably


class Twice(tl.Function):
    """A stand-in for a fused layer: one node that records what it computed inside."""

    def forward(self, x):
        self.details = {"steps": 7, "gates": ("first gate", "second gate")}
        return x * 2

    def backward(self, grad):
        return (grad * 2,)


def test_a_node_with_details_is_a_box_listing_them():
    x = tl.randn(2, 3, requires_grad=True)
    dot = parse(viz.draw_graph(apply(Twice, x).sum()).source)
    (key,) = dot.find(r"<B>Twice</B>")
    assert "steps: 7" in dot.nodes[key] and "gates: first gate, second gate" in dot.nodes[key]
    assert "shape=box" in dot.nodes[key]
    plain = parse(viz.draw_graph((x * 2).sum()).source)
    assert not [k for k, attrs in plain.nodes.items() if "steps:" in attrs]


def test_the_fused_lstm_layer_is_drawn_as_what_it_computed():
    tl.manual_seed(0)
    output, _ = nn.LSTM(3, 4)(tl.randn(5, 1, 3))
    fused_op = next(op for op in tl.walk_graph(output).ops if "LSTM" in op.op)
    details = getattr(fused_op, "details", None)
    if not details:
        pytest.skip("this fused LSTM node does not record its details yet")
    (key,) = parse(viz.draw_graph(output.sum()).source).find(re.escape(fused_op.op))
    attrs = parse(viz.draw_graph(output.sum()).source).nodes[key]
    assert "shape=box" in attrs and all(f"{name}: " in attrs for name in details)
    assert "forget gate" in attrs and "5" in attrs  # its gates and its steps


def test_parameters_are_labelled_with_their_module_path_from_params():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(2, 3)
            self.head = nn.Linear(3, 1)

        def forward(self, x):
            output, _ = self.lstm(x)
            return self.head(output)

    tl.manual_seed(0)
    model = Tiny()
    loss = model(tl.randn(4, 1, 2)).sum()
    for params in (dict(model.named_parameters()), model.named_parameters()):
        dot = parse(viz.draw_graph(loss, params=params).source)
        for name in ("lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0", "head.weight", "head.bias"):
            assert len(dot.find(rf"<B>{re.escape(name)}</B>")) == 1, name
    with pytest.raises(TypeError, match="params"):
        viz.draw_graph(loss, params={"w": np.zeros(3)})


def test_unnamed_inputs_are_told_apart_by_position_and_named_ones_by_name():
    a, b, w = tl.randn(2), tl.randn(2), tl.randn(2, requires_grad=True)
    dot = parse(viz.draw_graph((a * w + b * w).sum()).source)
    assert len(dot.find(r"<B>input 1</B>")) == 1 and len(dot.find(r"<B>input 2</B>")) == 1
    a.name = "tokens"
    dot = parse(viz.draw_graph((a * w).sum()).source)
    assert dot.find(r"<B>tokens</B>") and not dot.find(r"<B>input 1</B>")


def _gate_order(source: str) -> dict[str, list[str]]:
    order = defaultdict(list)
    for path in (m.group(1) for line in source.splitlines() if (m := SUBGRAPH.match(line))):
        parts = path.removeprefix("cluster_").split("/")
        if len(parts) >= 2 and parts[-1] in (*GATES, "cell state"):
            order["/".join(parts[:-1])].append(parts[-1])
    return order


ARTICLE_ORDER = ["forget gate", "input gate", "candidate", "cell state", "output gate"]


@pytest.mark.parametrize("build", ["plain ops", "nn.LSTMCell", "nn.LSTM(fused=False)"])
def test_each_step_draws_its_gates_in_the_article_order(build):
    tl.manual_seed(0)
    if build == "plain ops":
        roots = unroll(4)[:2]
    elif build == "nn.LSTMCell":
        roots = unroll_cell(nn.LSTMCell(3, 4), 4)
    else:
        _, roots = nn.LSTM(3, 4, fused=False)(tl.randn(4, 1, 3))
    order = _gate_order(viz.draw_graph(*roots).source)
    assert len(order) == 4
    assert all(gates == ARTICLE_ORDER for gates in order.values()), order


def test_big_graphs_fold_automatically_saying_so_and_fold_none_draws_everything():
    h, c, _ = unroll(60)
    auto = viz.draw_graph(h, c)
    assert auto.comment.startswith("folded:") and "of 60 steps" in auto.comment
    dot = parse(auto.source)
    assert len(dot.nodes) <= viz.draw.AUTO_FOLD_NODES
    steps = {cluster.split("/")[0] for cluster in dot.clusters}
    assert "cluster_step 1" in steps and "cluster_step 60" in steps and "cluster_step 30" not in steps
    everything = viz.draw_graph(h, c, fold=None)
    assert not everything.comment and "cluster_step 30" in parse(everything.source).clusters
    small = viz.draw_graph(*unroll(3)[:2])
    assert not small.comment


def test_grad_range_fixes_the_colour_scale_across_pictures():
    def picture(scale: float, grad_range):
        w = tl.randn(3, requires_grad=True)
        loss = ((w * 1.0) * scale).sum()
        tl.retain_grads(loss)
        loss.backward()
        return parse(viz.draw_graph(loss, show_grad=True, grad_range=grad_range).source)

    def edge_colours(dot):
        return {re.search(r'color="(#\w+)"', attrs).group(1) for _, _, attrs in dot.edges if "grad " in attrs}

    def legend_ticks(dot):
        return re.findall(r"1e-?\d+", dot.nodes["legend"])

    fixed = (1e-3, 1e3)
    assert edge_colours(picture(1.0, fixed)) != edge_colours(picture(100.0, fixed))  # bigger gradient, redder
    ticks = legend_ticks(picture(1.0, fixed))
    assert ticks == legend_ticks(picture(100.0, fixed)) and ticks[0] == "1e-3" and ticks[-1] == "1e3"
    assert legend_ticks(picture(1.0, None)) != legend_ticks(picture(100.0, None))  # each rescaled to itself
    with pytest.raises(ValueError, match="grad_range"):
        viz.draw_graph(tl.randn(2, requires_grad=True).sum(), grad_range=(1.0, 0.1))


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot program is not installed")
def test_render_takes_the_format_from_the_suffix(tmp_path):
    graph = viz.draw_graph(unroll(1)[0])
    assert open(viz.render(graph, tmp_path / "a.png"), "rb").read(4) == b"\x89PNG"
    assert viz.render(graph, tmp_path / "b.dot") == str(tmp_path / "b.dot")
    assert (tmp_path / "b.dot").read_text().startswith("digraph")
    assert viz.render(graph, tmp_path / "c").endswith("c.svg")
    (tmp_path / "afile").write_text("")
    with pytest.raises(ValueError, match="afile"):
        viz.render(graph, tmp_path / "afile" / "x.svg")


def test_a_step_scope_opened_twice_is_one_box():
    params = make_lstm_parameters(3, 4)
    h, c = tl.zeros(1, 4), tl.zeros(1, 4)
    for t in (1, 2):
        with tl.name_scope(f"step {t}"), tl.name_scope(f"step {t}"):  # a loop's scope around a cell's own
            h, c = lstm_step(tl.randn(1, 3), h, c, *params)
    clusters = parse(viz.draw_graph(h, c).source).clusters
    assert "cluster_step 2/forget gate" in clusters and not [k for k in clusters if "step 1/step 1" in k]


def test_a_users_own_cell_loop_gets_a_box_per_call_with_the_gates_in_order():
    tl.manual_seed(0)
    cell, state = nn.LSTMCell(3, 4), None
    for _ in range(3):
        state = cell(tl.randn(1, 3), state)  # no scope of the user's own
    if not any("step" in op.scope for op in tl.walk_graph(*state).ops):
        pytest.skip("this nn.LSTMCell does not open a 'step N' scope per call yet")
    order = _gate_order(viz.draw_graph(*state).source)
    assert sorted(order) == ["step 1", "step 2", "step 3"]
    assert all(gates == ARTICLE_ORDER for gates in order.values()), order


def test_an_ordering_edge_never_runs_against_the_flow():
    """Scope "late" feeds "early" but is emitted after it (it also holds the last ops): ordering "late" after
    "early" would close a cycle, which dot breaks by reversing an edge somewhere."""
    w = tl.randn(3, requires_grad=True)
    with tl.name_scope("late"):
        u = w.sigmoid()
    with tl.name_scope("early"):
        v = u.tanh()
    with tl.name_scope("late"):
        out = (v * 2).sum()
    dot = parse(viz.draw_graph(out).source)
    assert list(dot.clusters) == ["cluster_early", "cluster_late"]
    edges = [(a, b) for a, b, _ in dot.edges]
    assert not [(a, b) for a, b in edges if a in reachable(edges, b)]


# ---------------------------------------------------------------- the picture dot lays out


def _layout(graph: graphviz.Digraph) -> dict:
    """Graphviz's own layout (-Tjson): positions in points, y upwards; edges name their nodes by _gvid."""
    return json.loads(graph.pipe(format="json"))


def _drawn_scope_order(layout: dict, rankdir: str) -> dict[str, list[str]]:
    """Each cluster's named sub-clusters in the order the picture shows them: by where each begins along
    the flow (its left side, or its top with rankdir TB); two that begin at the same place fail."""
    begins = defaultdict(list)
    for obj in layout["objects"]:
        parts = obj.get("name", "").removeprefix("cluster_").split("/")
        if obj.get("name", "").startswith("cluster_") and len(parts) >= 2 and not re.search(r" \d+$", parts[-1]):
            left, _, _, top = map(float, obj["bb"].split(","))
            begins["/".join(parts[:-1])].append((left if rankdir == "LR" else -top, parts[-1]))
    for pairs in begins.values():
        assert len({at for at, _ in pairs}) == len(pairs), pairs
    return {scope: [name for _, name in sorted(pairs)] for scope, pairs in begins.items()}


GRU_ORDER = ["reset gate", "candidate", "update gate"]  # the order of the flow: z mixes n into the state last


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot program is not installed")
@pytest.mark.parametrize("build, rankdir, steps, order", [
    ("graph --steps 4", "LR", ["step 1", "step 2", "step 3", "step 4"], ARTICLE_ORDER),
    ("graph --steps 3 --rankdir TB", "TB", ["step 1", "step 2", "step 3"], ARTICLE_ORDER),
    ("nn.LSTM(num_layers=2, fused=False)", "LR", [f"layer {k}/step {t}" for k in (0, 1) for t in (1, 2, 3)],
     ARTICLE_ORDER),
    ("graph --cell gru --steps 4", "LR", ["step 1", "step 2", "step 3", "step 4"], GRU_ORDER),
])
def test_the_laid_out_picture_keeps_the_gates_in_order_in_every_step(build, rankdir, steps, order):
    """Dot stacks clusters that share ranks in an order of its own, a different one in each step; the
    gates begin one after another along the flow instead, in the order the DOT lists them."""
    tl.manual_seed(0)
    if build.startswith("nn.LSTM"):
        _, roots = nn.LSTM(3, 4, num_layers=2, fused=False)(tl.randn(3, 1, 3))
    else:
        roots = (unrolled_cell("gru" if "gru" in build else "lstm", len(steps)),)
    graph = viz.draw_graph(*roots, rankdir=rankdir)
    drawn = _drawn_scope_order(_layout(graph), rankdir)
    assert sorted(drawn) == sorted(steps)
    assert all(gates == order for gates in drawn.values()), drawn


def _points(pos: str) -> list[tuple[float, float]]:
    """The points of an edge's spline(s) ("e,x,y" is where its arrow tip ends)."""
    return [tuple(map(float, p.removeprefix("e,").removeprefix("s,").split(",")))
            for p in pos.replace(";", " ").split()]


def _ends(pos: str) -> tuple[tuple[float, float], tuple[float, float]]:
    points = [p for p in pos.replace(";", " ").split() if not p.startswith(("e,", "s,"))]
    tip = [p for p in pos.split(";")[-1].split() if p.startswith("e,")]
    return _points(points[0])[0], _points(tip[0] if tip else points[-1])[0]


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot program is not installed")
@pytest.mark.parametrize("kind, steps, fold", [("lstm", 3, None), ("lstm", 8, 2), ("gru", 9, 3)])
def test_every_drawn_edge_reaches_its_nodes(kind, steps, fold):
    """concentrate bundles edges that share a node into one trunk; an edge bundled with an invisible
    ordering edge was drawn only from where the two parted (the forget gate's edge to the cell state began
    in mid-air). Each edge begins at its tail or where a drawn edge of the same tail parts from it, ends
    likewise, and the highway never shares a trunk."""
    layout = _layout(viz.draw_graph(unrolled_cell(kind, steps), fold=fold))
    objects = {obj["_gvid"]: obj for obj in layout["objects"]}
    drawn = [e for e in layout["edges"] if e.get("style") != "invis"]
    parallel = {(e["tail"], e["head"]) for e in drawn if "pos" in e}  # concentrate draws a pair once
    assert all("pos" in e or (e["tail"], e["head"]) in parallel for e in drawn)
    drawn = [e for e in drawn if "pos" in e]
    leaving, entering = defaultdict(list), defaultdict(list)
    for e in drawn:
        leaving[e["tail"]].append(e)
        entering[e["head"]].append(e)

    def at_node(point, gvid, slack=6.0) -> bool:
        obj = objects[gvid]
        x, y = map(float, obj["pos"].split(","))
        return (abs(point[0] - x) <= float(obj["width"]) * 36 + slack
                and abs(point[1] - y) <= float(obj["height"]) * 36 + slack)

    def on_another(point, edge, others, slack=6.0) -> bool:
        return any(abs(point[0] - x) <= slack and abs(point[1] - y) <= slack
                   for other in others if other is not edge for x, y in _points(other["pos"]))

    cut = []
    for e in drawn:
        first, last = _ends(e["pos"])
        bundled = "highway" not in e.get("class", "")
        if not ((at_node(first, e["tail"]) or bundled and on_another(first, e, leaving[e["tail"]]))
                and (at_node(last, e["head"]) or bundled and on_another(last, e, entering[e["head"]]))):
            cut.append((objects[e["tail"]]["name"], objects[e["head"]]["name"]))
    assert not cut
